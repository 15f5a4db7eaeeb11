#!/usr/bin/env python3
"""Takeover time of one tenant on the loopback cluster (docs/SCALING.md).

Usage: bench/takeover.py BUILD_DIR EVENTS [EVENTS...]

For each size: starts scripts/cluster.sh (s3rver behind the SigV4 proxy,
three nodes, HAProxy) in a scratch directory, loads EVENTS events into
tenant01 on its node (POST /v1/batch, 500 events a request), then moves
the tenant twice and times it:
  planned:   `cluster.sh drain` of the owner (seal, upload, release), then
             the first request through HAProxy until its first 200;
  unplanned: 2,000 more events sent to the new owner in 100-event
             batches (acknowledged, in its WAL chunks), at once SIGKILL
             of it, then the first request until a 200: the lease TTL
             (3 s here) plus the takeover, which replays that tail.
Each takeover's own time is the new owner's es_cluster_takeover_seconds,
split into es_cluster_takeover_step_seconds (lease, restore of the
segments, replay of the old holder's chunks; the rest is the claim, the
load and the manifest put).  Prints one JSON line per size.
"""
import base64
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts", "cluster.sh")
TAIL = 2000  # events the killed owner acknowledged after its last seal


def sh(env, *args):
    return subprocess.run(["bash", CLUSTER, *args], env=env, check=True,
                          capture_output=True, text=True).stdout


def post(url, path, key, body):
    u = url.replace("http://", "")
    c = http.client.HTTPConnection(u, timeout=120)
    auth = base64.b64encode((key + ":").encode()).decode()
    c.request("POST", path, body=body, headers={
        "Content-Type": "application/json", "Authorization": "Basic " + auth})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def metrics(url):
    u = url.replace("http://", "")
    c = http.client.HTTPConnection(u, timeout=10)
    c.request("GET", "/metrics")
    t = c.getresponse().read().decode()
    c.close()
    return t


def owner(cl, tenant):
    for n, node in cl["nodes"].items():
        try:
            m = metrics(node["ingest_url"])
        except OSError:
            continue
        if re.search(r'^es_cluster_tenant\{tenant="%s",state="held"\}' % tenant,
                     m, re.M):
            return n, m
    return None, None


def first_200(cl, key, tag):
    t0 = time.monotonic()
    i = 0
    while True:
        ev = json.dumps({"userId": "probe", "event": "Probe",
                         "messageId": "%s-%d" % (tag, i)})
        if post(cl["ingest_url"], "/v1/track", key, ev) == 200:
            return time.monotonic() - t0
        i += 1
        time.sleep(0.02)


def takeover_s(m, tenant):
    x = re.search(r'^es_cluster_takeover_seconds\{tenant="%s"\} ([0-9.]+)' %
                  tenant, m, re.M)
    r = re.search(r'^es_cluster_restored_rows\{tenant="%s"\} ([0-9]+)' %
                  tenant, m, re.M)
    return float(x.group(1)), int(r.group(1))


def steps(m, tenant):
    """The takeover's steps (lease, restore, replay) and events replayed."""
    out = {}
    for step in ("lease", "restore", "replay"):
        x = re.search(r'^es_cluster_takeover_step_seconds\{tenant="%s",'
                      r'step="%s"\} ([0-9.]+)' % (tenant, step), m, re.M)
        out[step + "_s"] = float(x.group(1)) if x else None
    x = re.search(r'^es_cluster_replayed_events\{tenant="%s"\} ([0-9]+)' %
                  tenant, m, re.M)
    out["replayed_events"] = int(x.group(1)) if x else None
    return out


def run(build, n):
    scratch = tempfile.mkdtemp(prefix="es-takeover-")
    d = os.path.join(scratch, "c")
    env = dict(os.environ, ES_BUILD=build, ES_SYNC="none", LEASE_TTL_MS="3000")
    cl = json.loads(sh(env, "up", d).strip().splitlines()[-1])
    try:
        key = [k for k, t in cl["keys"].items() if t == "tenant01"][0]
        token = [k for k, t in cl["tokens"].items() if t == "tenant01"][0]
        first_200(cl, key, "warm")
        own, _ = owner(cl, "tenant01")
        url = cl["nodes"][own]["ingest_url"]
        t0 = time.monotonic()
        retries = 0
        for b in range(0, n, 500):
            batch = [{"type": "track", "userId": "u%d" % (i % 1000),
                      "event": "Order Completed", "messageId": "e%d" % i,
                      "properties": {"i": i, "path": "/p/%d" % (i % 50)}}
                     for i in range(b, min(n, b + 500))]
            body = json.dumps({"batch": batch})
            st = post(url, "/v1/batch", key, body)
            while st in (429, 503):  # overloaded: retry as the SDKs do
                retries += 1
                time.sleep(0.2)
                st = post(url, "/v1/batch", key, body)
            assert st == 200, st
        load_s = time.monotonic() - t0
        # planned move
        t0 = time.monotonic()
        sh(env, "drain", d, own)
        drain_s = time.monotonic() - t0
        planned_s = first_200(cl, key, "planned")
        own2, m = owner(cl, "tenant01")
        planned_own, rows = takeover_s(m, "tenant01")
        planned_steps = steps(m, "tenant01")
        # unplanned: SIGKILL the new owner, with a tail of TAIL events it
        # acknowledged but had not sealed (in its WAL chunks only: the
        # takeover replays them)
        url2 = cl["nodes"][own2]["ingest_url"]
        for b in range(0, TAIL, 100):
            batch = [{"type": "track", "userId": "t%d" % i, "event": "Tail",
                      "messageId": "tail%d" % i} for i in range(b, b + 100)]
            st = post(url2, "/v1/batch", key, json.dumps({"batch": batch}))
            assert st == 200, st
        sh(env, "kill", d, own2)
        unplanned_s = first_200(cl, key, "unplanned")
        own3, m = owner(cl, "tenant01")
        unplanned_own, rows3 = takeover_s(m, "tenant01")
        unplanned_steps = steps(m, "tenant01")
        # every event is there
        # (the new owner's es-queryd looks for new tenants once a second)
        u = cl["query_url"].replace("http://", "")
        count = 0
        for _ in range(100):
            c = http.client.HTTPConnection(u, timeout=60)
            c.request("POST", "/v1/query", body="{}",
                      headers={"Authorization": "Bearer " + token})
            got = json.loads(c.getresponse().read()).get("rows") or []
            c.close()
            count = got[0]["count"] if got else 0
            if count >= n + TAIL + 3:  # and the three probes
                break
            time.sleep(0.1)
        print(json.dumps({
            "events": n, "load_s": round(load_s, 2), "load_retries": retries,
            "drain_s": round(drain_s, 2),
            "planned_first_200_s": round(planned_s, 3),
            "planned_takeover_s": planned_own, "restored_rows": rows,
            "planned_steps": planned_steps,
            "unplanned_first_200_s": round(unplanned_s, 3),
            "unplanned_takeover_s": unplanned_own,
            "unplanned_steps": unplanned_steps,
            "restored_rows_after_kill": rows3,
            "count_after": count, "count_wanted": n + TAIL + 3}),
            flush=True)
    finally:
        sh(env, "down", d)
        subprocess.run(["rm", "-rf", scratch])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    for n in sys.argv[2:]:
        run(os.path.abspath(sys.argv[1]), int(n))


if __name__ == "__main__":
    main()
