#!/usr/bin/env python3
"""A SigV4-checking proxy in front of s3rver (which checks no v4 signature).

Every request is verified with botocore's own signer before it is passed
on: the proxy rebuilds an AWSRequest from what it received (method, path as
sent, query, the headers named in SignedHeaders, the x-amz-date) and asks
botocore.auth.S3SigV4Auth for the signature; a mismatch is answered 403
SignatureDoesNotMatch and never reaches s3rver.  It also refuses what real
S3 refuses and curl might get wrong: a missing or wrong
x-amz-content-sha256, an x-amz-* header left out of SignedHeaders, a
header sent empty, a credential scope for another region or service.

Faults for retry tests, set by POST /__fault (JSON body) or the
SIGV4_PROXY_FAULT environment variable ("k:kind", kind 503 or drop):
  {"k": 3, "kind": "503"}   the 3rd request from now is answered 503 SlowDown
  {"k": 2, "kind": "drop"}  the 2nd request from now: connection closed
                            without an answer (after forwarding it, so a
                            put takes effect: the in-doubt case)
  {"k": 1, "kind": "503", "count": 3}  requests 1..3 from now fail
With SIGV4_PROXY_CONDITIONAL=1 in its environment the proxy also does
what s3rver does not: the conditional writes of AWS S3 on a single PUT,
If-None-Match: * (412 when the key exists) and If-Match: ETAG (412 when
the object's etag differs, 404 when there is none), every mutation
serialised so that the check and the write are one step
(scripts/cluster.sh: tenant leases, docs/SCALING.md).
GET /__stats answers {"requests": n, "rejected": n, "faults": n, "parts": n,
"uploads": n, "completes": n} (the last three count multipart requests).

Usage: sigv4_proxy.py UPSTREAM_PORT ACCESS_KEY SECRET REGION
It listens on a free port of 127.0.0.1 and prints "PORT <n>" when ready.
"""
import hashlib
import http.client
import http.server
import json
import os
import sys
import threading
import urllib.parse

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

UPSTREAM, ACCESS, SECRET, REGION = (int(sys.argv[1]), sys.argv[2],
                                    sys.argv[3], sys.argv[4])
LOCK = threading.Lock()
STATE = {"requests": 0, "rejected": 0, "faults": 0, "parts": 0,
         "uploads": 0, "completes": 0, "k": 0, "kind": "",
         "count": 1}
if os.environ.get("SIGV4_PROXY_FAULT"):
    k, kind = os.environ["SIGV4_PROXY_FAULT"].split(":")
    STATE["k"], STATE["kind"] = int(k), kind


class FixedDateSigner(S3SigV4Auth):
    """botocore's S3 signer, but with the request's own x-amz-date and the
    headers the client chose to sign (botocore would pick its own set)."""

    def __init__(self, creds, region, amz_date, signed):
        super().__init__(creds, "s3", region)
        self._amz_date = amz_date
        self._signed = signed

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in self._signed:
            out[name] = request.headers[name]
        return out

    def payload(self, request):
        return request.headers["x-amz-content-sha256"]


def check(method, raw_path, headers, body):
    """Returns None if the request is validly signed, else a reason."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no AWS4-HMAC-SHA256 Authorization"
    parts = dict(p.strip().split("=", 1) for p in auth[17:].split(","))
    cred = parts.get("Credential", "").split("/")
    if len(cred) != 5 or cred[0] != ACCESS or cred[2] != REGION or \
            cred[3] != "s3" or cred[4] != "aws4_request":
        return "bad credential scope %s" % parts.get("Credential")
    signed = parts.get("SignedHeaders", "").split(";")
    lower = {k.lower(): v for k, v in headers.items()}
    for name, value in lower.items():
        if name.startswith("x-amz-") and name not in signed:
            return "header %s is not signed" % name
    for name in signed:
        if name not in lower:
            return "signed header %s was not sent" % name
        if lower[name].strip() == "":
            return "signed header %s is empty" % name
    if "host" not in signed or "x-amz-date" not in signed:
        return "host or x-amz-date not signed"
    sha = lower.get("x-amz-content-sha256")
    if sha is None:
        return "no x-amz-content-sha256"
    if sha != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 does not match the body"
    if lower["x-amz-date"][:8] != cred[1]:
        return "x-amz-date is not the credential's day"
    # The URL as botocore would be asked to sign it: the path as sent
    # (S3 signs the single-encoded path exactly), the query parsed.
    # S3 decodes the path and query it received and signs their canonical
    # encodings (RFC 3986 unreserved kept, '/' kept in the path), so a
    # client that signed anything else is refused, as S3 would.
    path, _, query = raw_path.partition("?")
    path = urllib.parse.quote(urllib.parse.unquote(path), safe="/~")
    url = "http://%s%s" % (lower["host"], path)
    params = [(urllib.parse.unquote(k), urllib.parse.unquote(v))
              for k, _, v in (p.partition("=") for p in query.split("&") if p)]
    if params:
        url += "?" + "&".join(
            "%s=%s" % (urllib.parse.quote(k, safe="~"),
                       urllib.parse.quote(v, safe="~")) for k, v in params)
    req = AWSRequest(method=method, url=url, data=body)
    for name in signed:
        req.headers[name] = lower[name]
    signer = FixedDateSigner(Credentials(ACCESS, SECRET), REGION,
                             lower["x-amz-date"], signed)
    req.context["timestamp"] = lower["x-amz-date"]
    canonical = signer.canonical_request(req)
    string_to_sign = signer.string_to_sign(req, canonical)
    want = signer.signature(string_to_sign, req)
    if want != parts.get("Signature"):
        return "signature mismatch; canonical request was:\n" + canonical
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="application/xml"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def control(self, body):
        if self.command == "POST" and self.path == "/__fault":
            spec = json.loads(body or b"{}")
            with LOCK:
                STATE["k"], STATE["kind"] = int(spec.get("k", 0)), \
                    spec.get("kind", "")
                STATE["count"] = int(spec.get("count", 1))
            self.reply(200, "{}", "application/json")
        else:
            with LOCK:
                stats = {k: STATE[k] for k in ("requests", "rejected",
                                               "faults", "parts", "uploads",
                                               "completes")}
            self.reply(200, json.dumps(stats), "application/json")

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path.startswith("/__"):
            return self.control(body)
        query = urllib.parse.urlsplit(self.path).query
        with LOCK:
            STATE["requests"] += 1
            if self.command == "PUT" and "partNumber=" in query:
                STATE["parts"] += 1
            elif self.command == "POST" and query.startswith("uploads"):
                STATE["uploads"] += 1
            elif self.command == "POST" and "uploadId=" in query:
                STATE["completes"] += 1
            fault = None
            if STATE["k"] > 1:
                STATE["k"] -= 1
            elif STATE["k"] == 1 and STATE["count"] > 0:
                STATE["count"] -= 1
                fault = STATE["kind"]
                STATE["faults"] += 1
                if STATE["count"] == 0:
                    STATE["k"] = 0
        if fault == "503":
            return self.reply(503, "<Error><Code>SlowDown</Code><Message>"
                              "injected by the proxy</Message></Error>")
        reason = check(self.command, self.path, self.headers, body)
        if reason is not None:
            with LOCK:
                STATE["rejected"] += 1
            sys.stderr.write("sigv4_proxy: 403 %s %s: %s\n" %
                             (self.command, self.path, reason))
            esc = reason.replace("&", "&amp;").replace("<", "&lt;")
            return self.reply(403, "<Error><Code>SignatureDoesNotMatch</Code>"
                              "<Message>%s</Message></Error>" % esc)
        if CONDITIONAL and self.command in ("PUT", "POST", "DELETE"):
            with COND_LOCK:  # the check and the write as one step
                refusal = precondition(self.command, self.path, self.headers)
                if refusal is None:
                    status, headers, data = forward(self.command, self.path,
                                                    self.headers, body)
            if refusal is not None:
                return self.reply(refusal[0], refusal[1])
        else:
            status, headers, data = forward(self.command, self.path,
                                            self.headers, body)
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("connection", "transfer-encoding",
                                    "content-length", "keep-alive"):
                self.send_header(name, value)
            if name.lower() == "content-length" and self.command == "HEAD":
                self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


CONDITIONAL = os.environ.get("SIGV4_PROXY_CONDITIONAL") == "1"
COND_LOCK = threading.Lock()


def precondition(method, path, headers):
    """S3's answer to a conditional single PUT whose condition fails, as
    (status, body); None when it holds or there is none."""
    inm, im = headers.get("If-None-Match"), headers.get("If-Match")
    if method != "PUT" or "?" in path or (inm is None and im is None):
        return None
    plain = {k: v for k, v in headers.items()
             if k.lower() not in ("if-none-match", "if-match", "content-type")}
    status, hdrs, _ = forward("HEAD", path, plain, b"")
    etag = dict((k.lower(), v) for k, v in hdrs).get("etag")
    failed = ("<Error><Code>PreconditionFailed</Code><Message>At least one "
              "of the pre-conditions you specified did not hold</Message>"
              "</Error>")
    if inm is not None and inm.strip() == "*" and status == 200:
        return (412, failed)
    if im is not None:
        if status == 404:
            return (404, "<Error><Code>NoSuchKey</Code></Error>")
        if etag is None or etag.strip('"') != im.strip().strip('"'):
            return (412, failed)
    return None


def forward(method, path, headers, body):
    conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
    out = {k: v for k, v in headers.items()
           if k.lower() not in ("connection", "expect", "content-length")}
    out["Content-Length"] = str(len(body))
    conn.request(method, path, body=body, headers=out)
    resp = conn.getresponse()
    data = resp.read()
    hdrs = resp.getheaders()
    conn.close()
    return resp.status, hdrs, data


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
