#!/usr/bin/python3
"""Benchmark: N events through the webhook notifier to a loopback receiver, with
the spool's fsync on, against the same receiver fed by curl in a shell loop.

    bench_webhook.py [--events 10000] [--curl-events 1000] [--spool-dir DIR]

Events come from a log detector: a 10,000-line log read from its start with
--failure matching every line, so vigil emits one `match` event per line. The
receiver notes the wall-clock time of each 2xx it sends; latency is that time
minus the event's own `time`. The spool lives on a real disk (default under
/var/tmp) so fsync costs what it costs in production.

Prints one table row per variant: events/s (first event to last 2xx) and p50/p99
latency. Exit status 1 when the default variant delivers less than 2,000/s.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("VIGIL_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))


def find_vigil():
    exe = os.environ.get("VIGIL")
    if exe:
        return exe
    build = os.environ.get("VIGIL_BUILD_ROOT")
    for b in ([build] if build else []) + sorted(
            os.path.join(ROOT, d) for d in os.listdir(ROOT) if d.startswith("build")):
        if os.access(os.path.join(b, "core", "vigil"), os.X_OK):
            return os.path.join(b, "core", "vigil")
    sys.exit("set VIGIL or VIGIL_BUILD_ROOT")


class Receiver:
    """Records (event id, event time, time of the 2xx) per request."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows = {}
        self.cond = threading.Condition(self.lock)
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                # Answer at once: without this, Nagle's algorithm on the answer's
                # second write meets the client's delayed ACK (40 ms a request).
                BaseHTTPRequestHandler.setup(self)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                self.wfile.flush()
                now = time.time()
                try:
                    ev = json.loads(body)
                except ValueError:
                    return
                with rec.cond:
                    rec.rows.setdefault(ev.get("id"), (ev, now))
                    rec.cond.notify_all()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.rows = {}

    def wait_kind(self, kind, count, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while sum(1 for e, _ in self.rows.values() if e.get("kind") == kind) < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 1.0))
        return True


def parse_time(s):
    return time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + \
        int(s[20:23]) / 1000.0


def stats(rows):
    lat = sorted(recv - parse_time(ev["time"]) for ev, recv in rows)
    first = min(parse_time(ev["time"]) for ev, _ in rows)
    last = max(recv for _, recv in rows)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    return len(rows) / (last - first), pct(0.50), pct(0.99)


def run_vigil(vigil, rec, tmp, n, spool_dir, parallel):
    log = os.path.join(tmp, "job.log")
    with open(log, "w") as f:
        for i in range(n):
            f.write("ERR line %d\n" % i)
    ini = os.path.join(tmp, "vigil.ini")
    with open(ini, "w") as f:
        f.write("[notifier hook]\ntype = webhook\nurl = http://127.0.0.1:%d/bench\n"
                "on = match\nparallel = %d\n" % (rec.port, parallel))
    os.chmod(ini, 0o600)
    state = tempfile.mkdtemp(dir=spool_dir)
    target = subprocess.Popen(["sleep", "600"])
    env = dict(os.environ, VIGIL_CONFIG=ini)
    plugin_dir = os.path.join(os.path.dirname(os.path.dirname(vigil)), "plugins")
    args = [vigil, "watch", "--plugin-dir", os.environ.get("VIGIL_PLUGIN_DIR", plugin_dir),
            "--state-dir", state, "--pid", str(target.pid), "--log", log, "--from", "start",
            "--failure", "ERR", "--notify", "hook", "--deliver-timeout", "120s"]
    rec.reset()
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ok = rec.wait_kind("match", n, 300)
    finally:
        target.kill()
        target.wait()
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(state, ignore_errors=True)
    if not ok:
        sys.exit("vigil delivered only %d of %d: %s" % (len(rec.rows), n,
                                                        p.stderr.read()[-2000:]))
    return stats([r for r in rec.rows.values() if r[0].get("kind") == "match"])


def run_curl(rec, tmp, n):
    script = os.path.join(tmp, "loop.sh")
    with open(script, "w") as f:
        f.write('i=0\nwhile [ $i -lt %d ]; do\n'
                '  t=$(date -u +%%Y-%%m-%%dT%%H:%%M:%%S.%%3NZ)\n'
                '  curl -s -o /dev/null -X POST -H "Content-Type: application/json" '
                '--data-binary "{\\"v\\":1,\\"id\\":\\"curl$i\\",\\"time\\":\\"$t\\",'
                '\\"kind\\":\\"match\\"}" http://127.0.0.1:%d/bench\n'
                '  i=$((i+1))\ndone\n' % (n, rec.port))
    rec.reset()
    subprocess.run(["sh", script], check=True)
    rec.wait_kind("match", n, 60)
    return stats(list(rec.rows.values()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--curl-events", type=int, default=1000)
    ap.add_argument("--spool-dir", default="/var/tmp")
    a = ap.parse_args()
    vigil = find_vigil()
    rec = Receiver()
    tmp = tempfile.mkdtemp(prefix="vigil-bench-")
    try:
        rows = [("vigil webhook, parallel=8 (default)", a.events,
                 run_vigil(vigil, rec, tmp, a.events, a.spool_dir, 8)),
                ("vigil webhook, parallel=1", a.events,
                 run_vigil(vigil, rec, tmp, a.events, a.spool_dir, 1)),
                ("curl in a shell loop (baseline)", a.curl_events,
                 run_curl(rec, tmp, a.curl_events))]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%-38s %8s %10s %9s %9s" % ("variant", "events", "events/s", "p50 ms", "p99 ms"))
    for name, n, (rate, p50, p99) in rows:
        print("%-38s %8d %10.0f %9.1f %9.1f" % (name, n, rate, p50, p99))
    return 0 if rows[0][2][0] >= 2000 else 1


if __name__ == "__main__":
    sys.exit(main())
