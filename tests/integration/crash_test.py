#!/usr/bin/env python3
"""crash_test.py -- kill `esctl append` with SIGKILL and check what survives.

usage: crash_test.py [ESCTL]    (or ESCTL=path in the environment)

Each round starts `esctl append --data DIR --tenant crash --batch B` fed by
a generator of events with unique messageIds ("r<round>-<i>", timestamps
increasing with round and i), reads its "durable N" lines, and kills it with
SIGKILL after a random delay, counted from its start (so the kill may fall
in es_open's recovery) or, in most rounds, from its first acknowledgement
(so it falls while batches are in flight).  Then `esctl scan` must show,
for that round, exactly the first M events sent, where

    last acknowledged N  <=  M  <=  min(N + B, events fully sent)

(a batch in flight may survive, but only whole and only in order), no
duplicates anywhere, every earlier round unchanged, and time order.  Every
4 rounds (and after the last) `esctl verify` must pass and `esctl flush`
seals the store, which accumulates across rounds, so that recovery meets
segments and WAL alike.

Seeded: the seed is printed; set ES_CRASH_SEED to replay one, and
ES_CRASH_ROUNDS to change the number of rounds (default 20).  The kill
timing still depends on the machine, so a replay explores the same
schedule, not necessarily the same interleaving.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TENANT = "crash"
BASE_US = 1795514400000000  # 2026-11-24T10:00:00Z
LINES_MAX = 200000          # per round; the input normally outlives the kill
CHUNK_LINES = 64            # lines per write(2) to esctl's stdin
CHUNK_PAUSE_S = 0.005       # between chunks: keeps the store small enough
                            # to scan every round, and lets batches go out
                            # partial when stdin runs dry


class Failure(Exception):
    pass


def iso(us):
    s, frac = divmod(us, 1000000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + \
        ".%06dZ" % frac


def event_line(rnd, i):
    return json.dumps({
        "type": "track", "event": "Crash Test", "messageId": "r%d-%d" % (rnd, i),
        "userId": "user-%d" % (i % 7), "timestamp": iso(BASE_US + rnd * 10**9 + i),
        "properties": {"round": rnd, "i": i, "pad": "x" * (i % 50)},
    }, separators=(",", ":")) + "\n"


class Feeder(threading.Thread):
    """Writes events to the child's stdin; counts the lines fully written."""

    def __init__(self, rnd, fd):
        super().__init__(daemon=True)
        self.rnd, self.fd, self.sent = rnd, fd, 0

    def run(self):
        try:
            while self.sent < LINES_MAX:
                data = "".join(event_line(self.rnd, self.sent + k)
                               for k in range(CHUNK_LINES)).encode()
                view, done = memoryview(data), 0
                while done < len(data):
                    n = os.write(self.fd, view[done:])
                    # lines count as sent once whole in the pipe: a kill
                    # can end a chunk's write part way, after esctl read
                    # (and maybe stored) the whole lines before the break
                    self.sent += data.count(b"\n", done, done + n)
                    done += n
                time.sleep(CHUNK_PAUSE_S)
        except OSError:  # EPIPE once the child is dead
            pass
        finally:
            os.close(self.fd)


class Acks(threading.Thread):
    """Reads "durable N" lines; remembers the last N."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.durable, self.bad = stream, 0, None
        self.first = threading.Event()  # set at the first acknowledgement

    def run(self):
        for raw in self.stream:
            line = raw.decode(errors="replace").rstrip("\n")
            parts = line.split(" ")
            if len(parts) != 2 or parts[0] != "durable" or \
                    not parts[1].isdigit() or int(parts[1]) <= self.durable:
                self.bad = self.bad or line
            else:
                self.durable = int(parts[1])
                self.first.set()
        self.first.set()  # EOF: nothing more to wait for


def run_round(esctl, data, rnd, batch, after_ack, delay):
    """
    One append killed `delay` seconds after its start, or after its first
    acknowledgement when after_ack: returns (acknowledged, sent, status).
    """
    proc = subprocess.Popen(
        [esctl, "append", "--data", data, "--tenant", TENANT,
         "--batch", str(batch)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    feeder = Feeder(rnd, os.dup(proc.stdin.fileno()))
    proc.stdin.close()
    acks = Acks(proc.stdout)
    feeder.start()
    acks.start()
    if after_ack:
        acks.first.wait(timeout=10)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    status = proc.wait()
    acks.join()
    feeder.join()
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.close()
    proc.stderr.close()
    if acks.bad is not None:
        raise Failure("round %d: bad acknowledgement line %r" % (rnd, acks.bad))
    if status not in (0, -signal.SIGKILL):
        raise Failure("round %d: esctl append exited %d: %s" % (rnd, status, err))
    if status == 0 and acks.durable != feeder.sent:
        raise Failure("round %d: exit 0 with %d of %d acknowledged"
                      % (rnd, acks.durable, feeder.sent))
    return acks.durable, feeder.sent, status


def esctl_ok(esctl, *args):
    r = subprocess.run([esctl, *args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise Failure("esctl %s exited %d: %s%s" % (
            " ".join(args), r.returncode, r.stdout.decode(errors="replace"),
            r.stderr.decode(errors="replace")))
    return r.stdout.decode()


def check_store(esctl, data, kept, rnd, acked, sent, batch):
    """Scan and check every round so far; returns this round's count M."""
    per_round = {}
    seen = set()
    last_ts = None
    r = subprocess.run([esctl, "scan", "--data", data, "--tenant", TENANT],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace")
        # A kill while the first round's esctl was still creating the store
        # leaves none (its ESDB file is written last): read commands never
        # create one, so "no store" is the right answer -- as long as nothing
        # was ever acknowledged.
        if "no store in" in err and acked == 0 and not any(kept.values()):
            return 0
        raise Failure("esctl scan exited %d: %s%s" % (
            r.returncode, r.stdout.decode(errors="replace"), err))
    for line in r.stdout.decode().splitlines():
        ev = json.loads(line)
        mid = ev["messageId"]
        if mid in seen:
            raise Failure("round %d: %s stored twice" % (rnd, mid))
        seen.add(mid)
        if last_ts is not None and ev["timestamp"] < last_ts:
            raise Failure("round %d: %s out of time order" % (rnd, mid))
        last_ts = ev["timestamp"]
        r, i = (int(x) for x in mid[1:].split("-"))
        if ev["userId"] != "user-%d" % (i % 7) or \
                ev["timestamp"] != iso(BASE_US + r * 10**9 + i):
            raise Failure("round %d: %s has wrong fields: %s" % (rnd, mid, line))
        per_round.setdefault(r, []).append(i)
    for r, idx in per_round.items():
        if r > rnd:
            raise Failure("round %d: events of a future round %d" % (rnd, r))
        if idx != list(range(len(idx))):
            raise Failure("round %d: round %d's events are not a prefix "
                          "(%d events, first gap near %d)" % (
                              rnd, r, len(idx),
                              next(k for k, v in enumerate(idx) if k != v)))
    for r, m in kept.items():
        if len(per_round.get(r, [])) != m:
            raise Failure("round %d: round %d had %d events, now %d" % (
                rnd, r, m, len(per_round.get(r, []))))
    m = len(per_round.get(rnd, []))
    if m < acked:
        raise Failure("round %d: %d acknowledged but only %d stored"
                      % (rnd, acked, m))
    if m > sent:
        raise Failure("round %d: %d stored but only %d sent" % (rnd, m, sent))
    if m > acked + batch:
        raise Failure("round %d: %d stored, more than %d acknowledged + one "
                      "batch of %d" % (rnd, m, acked, batch))
    return m


def main(argv):
    esctl = argv[1] if len(argv) > 1 else os.environ.get("ESCTL", "")
    if not os.access(esctl, os.X_OK):
        print(__doc__, file=sys.stderr)
        return 2
    seed = int(os.environ.get("ES_CRASH_SEED") or
               random.SystemRandom().randrange(1 << 32))
    rounds = int(os.environ.get("ES_CRASH_ROUNDS", "20"))
    print("crash_test: seed %d (replay: ES_CRASH_SEED=%d), %d rounds"
          % (seed, seed, rounds), flush=True)
    rng = random.Random(seed)
    work = tempfile.mkdtemp(prefix="esctl_crash.")
    data = os.path.join(work, "data")
    kept = {}
    started = time.monotonic()
    try:
        for rnd in range(rounds):
            batch = rng.choice([1, 5, 32, 100, 100, 1000])
            # Most kills land while batches flow; some during es_open.
            after_ack = rng.random() < 0.75
            delay = rng.uniform(0.0, 0.3)
            acked, sent, status = run_round(esctl, data, rnd, batch,
                                            after_ack, delay)
            m = check_store(esctl, data, kept, rnd, acked, sent, batch)
            kept[rnd] = m
            # verify reads every WAL file whole (64 MiB each, and every open
            # starts one), so it runs every few rounds, before the flush
            # that lets the library reclaim them.
            flushed = rnd % 4 == 3 or rnd == rounds - 1
            if flushed:
                esctl_ok(esctl, "verify", "--data", data)
                esctl_ok(esctl, "flush", "--data", data)
            print("round %2d: batch %4d, killed %.3fs after %s%s: durable "
                  "%d, stored %d, sent %d%s" % (
                      rnd, batch, delay, "1st ack" if after_ack else "start",
                      "" if status else " (had exited)",
                      acked, m, sent, ", verified, flushed" if flushed else ""),
                  flush=True)
        total = sum(kept.values())
        print("crash_test: ok, %d events survive %d kills in %.1fs (seed %d)"
              % (total, rounds, time.monotonic() - started, seed))
        return 0
    except Failure as e:
        print("FAIL (seed %d): %s" % (seed, e), file=sys.stderr)
        print("data directory kept at %s" % data, file=sys.stderr)
        work = None
        return 1
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
