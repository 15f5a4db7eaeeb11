#!/usr/bin/env python3
"""Generate Segment events and check `esctl scan` output against them.

Used by esctl_cli_test.sh.  Subcommands:

  gen N SEED PREFIX     N events, one JSON object per line, on stdout.
                        Mixed types; tricky strings (quotes, control
                        characters, UTF-8); numbers whose text must survive
                        exactly; distinct timestamps in shuffled order.
  check IN SCAN         SCAN (esctl scan output) holds exactly the events of
                        IN, in timestamp order, every field round-tripped;
                        properties byte for byte.
  range IN SCAN FROM TO SCAN holds exactly the events of IN with
                        FROM <= timestamp < TO (ISO 8601), in order.
  ids SCAN              the messageIds of SCAN, one per line.
  iso IN K              the timestamp of the K-th event of IN in time order,
                        as ISO 8601 UTC with microseconds.

Exit status 1 with a message on the first mismatch.
"""
import datetime
import json
import random
import sys

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_iso_us(s):
    """Microseconds since the epoch of an ISO 8601 string."""
    t = datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    d = t - EPOCH
    return (d.days * 86400 + d.seconds) * 1000000 + d.microseconds


def format_us(us, offset_min=0):
    """ISO 8601 with microseconds, in the given UTC offset."""
    tz = datetime.timezone(datetime.timedelta(minutes=offset_min))
    t = EPOCH + datetime.timedelta(microseconds=us)
    s = t.astimezone(tz).isoformat(timespec="microseconds")
    return s.replace("+00:00", "Z")


def compact(v):
    """The compact JSON text esctl stores for a value (yajl re-serialised)."""
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


TRICKY = ['plain', 'q"uote', 'back\\slash', 'new\nline\ttab', 'ctl\x01\x1f',
          'caf\u00e9 \u20ac \U0001F600', '</script>', '']


def gen(n, seed, prefix):
    rng = random.Random(seed)
    base = 1795514400000000  # 2026-11-24T10:00:00Z
    stamps = rng.sample(range(0, 3600 * 1000000), n)
    for i in range(n):
        kind = rng.choice(["track", "track", "track", "page", "identify",
                           "screen", "alias", "group"])
        word = rng.choice(TRICKY)
        ev = {"type": kind, "messageId": "%s-%d" % (prefix, i)}
        ts = base + stamps[i]
        ev["timestamp"] = format_us(ts, rng.choice([0, 0, 120, -330]))
        if rng.random() < 0.7:
            ev["userId"] = "user-%d" % rng.randrange(20)
        if rng.random() < 0.7 or "userId" not in ev:
            ev["anonymousId"] = "anon-%d" % rng.randrange(50)
        # Number tokens that a double would change are spliced in as text.
        raw = {"big": "123456789012345678901234567890",
               "i64": "-9223372036854775808",
               "f": "1.50e+10"}
        props = {"i": i, "word": word, "nested": {"a": [1, True, None]}}
        if kind == "track":
            ev["event"] = "Event " + word
            ev["context"] = {"page": {"path": "/t/%d" % i}}
        elif kind in ("page", "screen"):
            ev["name"] = "Page " + word
            props["path"] = "/p/%d" % i
            props["url"] = "https://example.com/p/%d" % i
        elif kind == "alias":
            ev["userId"] = "user-%d" % i
            ev["previousId"] = "anon-%d" % i
        elif kind == "group":
            ev["groupId"] = "group-%d" % rng.randrange(5)
        if kind in ("identify", "group"):
            ev["traits"] = props
        elif kind != "alias":
            ev["properties"] = props
        line = json.dumps(ev, ensure_ascii=False)
        key = '"traits": ' if kind in ("identify", "group") else \
              '"properties": '
        if kind != "alias":
            # Put the raw numbers first inside the object, as text.
            extra = ", ".join('"%s": %s' % kv for kv in raw.items())
            line = line.replace(key + "{", key + "{" + extra + ", ", 1)
        print(line)


def load(path):
    with open(path, encoding="utf-8") as f:
        return [(line.rstrip("\n"), json.loads(line)) for line in f
                if line.strip()]


def fail(msg):
    print("events.py: " + msg, file=sys.stderr)
    sys.exit(1)


def expected_props(ev):
    """The exact properties text esctl must store for an input event."""
    kind = ev["type"]
    v = ev.get("traits") if kind in ("identify", "group") else \
        ev.get("properties")
    if kind == "alias" or v is None:
        return None
    raw = {"big": "123456789012345678901234567890",
           "i64": "-9223372036854775808", "f": "1.50e+10"}
    inner = compact({k: x for k, x in v.items() if k not in raw})
    spliced = ",".join('"%s":%s' % kv for kv in raw.items())
    return "{" + spliced + ("," + inner[1:] if inner != "{}" else "}")


def check_event(inp, out_line, out):
    mid = inp["messageId"]
    def eq(field, want, got):
        if want != got:
            fail("%s: %s: want %r, got %r" % (mid, field, want, got))
    eq("type", inp["type"], out["type"])
    name = inp.get("event", inp.get("name"))
    if inp["type"] in ("identify", "alias", "group"):
        name = None
    eq("event", name, out["event"])
    eq("timestamp", parse_iso_us(inp["timestamp"]),
       parse_iso_us(out["timestamp"]))
    eq("userId", inp.get("userId"), out["userId"])
    eq("anonymousId", inp.get("anonymousId"), out["anonymousId"])
    eq("previousId", inp.get("previousId"), out.get("previousId"))
    eq("groupId", inp.get("groupId"), out.get("groupId"))
    props = expected_props(inp)
    if props is None:
        eq("properties", None, out["properties"])
    else:
        want = '"properties":' + props
        at = out_line.find(want)
        if at < 0 or out_line[at + len(want)] not in ",}":
            fail("%s: properties not byte for byte: want %s in %s"
                 % (mid, props, out_line))
    path = None
    if inp["type"] in ("page", "screen"):
        path = inp["properties"]["path"]
    elif "context" in inp:
        path = inp["context"]["page"]["path"]
    eq("path", path, out.get("context", {}).get("page", {}).get("path"))
    if not out.get("receivedAt"):
        fail("%s: no receivedAt" % mid)


def check(in_path, scan_path, lo=None, hi=None):
    inputs = [ev for _, ev in load(in_path)]
    if lo is not None:
        inputs = [ev for ev in inputs
                  if lo <= parse_iso_us(ev["timestamp"]) < hi]
    inputs.sort(key=lambda ev: parse_iso_us(ev["timestamp"]))
    outputs = load(scan_path)
    if len(outputs) != len(inputs):
        fail("scan has %d events, want %d" % (len(outputs), len(inputs)))
    for inp, (line, out) in zip(inputs, outputs):
        if inp["messageId"] != out["messageId"]:
            fail("order: want %s, got %s" % (inp["messageId"],
                                              out["messageId"]))
        check_event(inp, line, out)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "gen" and len(argv) == 5:
        gen(int(argv[2]), int(argv[3]), argv[4])
    elif cmd == "check" and len(argv) == 4:
        check(argv[2], argv[3])
    elif cmd == "range" and len(argv) == 6:
        check(argv[2], argv[3], parse_iso_us(argv[4]), parse_iso_us(argv[5]))
    elif cmd == "ids" and len(argv) == 3:
        for _, ev in load(argv[2]):
            print(ev["messageId"])
    elif cmd == "iso" and len(argv) == 4:
        stamps = sorted(parse_iso_us(ev["timestamp"])
                        for _, ev in load(argv[2]))
        print(format_us(stamps[int(argv[3])]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
