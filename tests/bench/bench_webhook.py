#!/usr/bin/python3
"""Benchmark: N events through the webhook notifier to a loopback receiver, with
the spool's fsync on, against the same receiver fed by curl in a shell loop.

    bench_webhook.py [--events 10000] [--curl-events 1000] [--spool-dir DIR]

The receiver is bench_http_sink.c (compiled here with cc): one epoll thread,
keep-alive, one write per answer, so that the receiver is not what is being
measured (a python http.server answers ~1,500-3,000 requests/s on one
connection). It is first measured alone with wrk (one connection, as vigil
uses by default, and eight), when wrk is installed. It logs the wall-clock
time of each 2xx it sends; latency is that time minus the event's own `time`.

Events come from a log detector: an N-line log read from its start with
--failure matching every line, so vigil emits one `match` event per line. The
spool lives on a real disk (default under /var/tmp) so fsync costs what it
costs in production.

Prints one table row per variant: events/s (first event to last 2xx), p50/p99
latency, and whether the receiver saw the events in event order. Exit status 1
when the default variant (one in flight, strictly ordered) delivers less than
2,000/s.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

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


class Sink:
    """bench_http_sink: (answer time, event) per request, from its log."""

    def __init__(self, tmp):
        exe = os.path.join(tmp, "sink")
        subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-O2",
                        "-o", exe, os.path.join(HERE, "bench_http_sink.c")], check=True)
        self.tmp = tmp
        self.n = 0
        self.exe = exe
        self.start()

    def start(self):
        self.n += 1
        self.log = os.path.join(self.tmp, "sink%d.log" % self.n)
        self.p = subprocess.Popen([self.exe, self.log], stdout=subprocess.PIPE, text=True)
        self.port = int(self.p.stdout.readline())
        self.url = "http://127.0.0.1:%d/bench" % self.port

    def stop(self):
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()

    def restart(self):
        """A fresh log (and process) per variant."""
        self.stop()
        self.start()

    def rows(self):
        out = []
        with open(self.log) as f:
            for line in f:
                t, _, body = line.rstrip("\n").partition(" ")
                try:
                    out.append((json.loads(body), float(t)))
                except ValueError:
                    pass
        return out

    def wait_kind(self, kind, count, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rows = [r for r in self.rows() if r[0].get("kind") == kind]
            if len({e["id"] for e, _ in rows}) >= count:
                return rows
            time.sleep(0.2)
        return None


def wrk_rate(url, conns):
    """Requests/s of the receiver alone, or None without wrk."""
    if not shutil.which("wrk"):
        return None
    r = subprocess.run(["wrk", "-t1", "-c%d" % conns, "-d3s", url], capture_output=True,
                       text=True)
    m = re.search(r"Requests/sec:\s+([0-9.]+)", r.stdout)
    return float(m.group(1)) if m else None


def parse_time(s):
    return time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + \
        int(s[20:23]) / 1000.0


def stats(rows):
    lat = sorted(recv - parse_time(ev["time"]) for ev, recv in rows)
    first = min(parse_time(ev["time"]) for ev, _ in rows)
    last = max(recv for _, recv in rows)
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
    # In order: the receiver got line 0, 1, 2... (each line's first arrival).
    seen, order = set(), []
    for ev, _ in rows:
        if ev["id"] not in seen:
            seen.add(ev["id"])
            m = re.search(r"line (\d+)", ev.get("line") or ev.get("message") or "")
            order.append(int(m.group(1)) if m else -1)
    return (len(seen) / (last - first), pct(0.50), pct(0.99),
            order == sorted(order) and -1 not in order)


def run_vigil(vigil, sink, tmp, n, spool_dir, parallel):
    sink.restart()
    log = os.path.join(tmp, "job.log")
    with open(log, "w") as f:
        for i in range(n):
            f.write("ERR line %d\n" % i)
    ini = os.path.join(tmp, "vigil.ini")
    with open(ini, "w") as f:
        f.write("[notifier hook]\ntype = webhook\nurl = %s\non = match\n%s"
                % (sink.url, "parallel = %d\n" % parallel if parallel else ""))
    os.chmod(ini, 0o600)
    state = tempfile.mkdtemp(dir=spool_dir)
    target = subprocess.Popen(["sleep", "600"])
    env = dict(os.environ, VIGIL_CONFIG=ini)
    plugin_dir = os.path.join(os.path.dirname(os.path.dirname(vigil)), "plugins")
    args = [vigil, "watch", "--plugin-dir", os.environ.get("VIGIL_PLUGIN_DIR", plugin_dir),
            "--state-dir", state, "--pid", str(target.pid), "--log", log, "--from", "start",
            "--failure", "ERR", "--notify", "hook", "--deliver-timeout", "120s"]
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        rows = sink.wait_kind("match", n, 300)
    finally:
        target.kill()
        target.wait()
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        err = p.stderr.read()
        p.stderr.close()
        shutil.rmtree(state, ignore_errors=True)
    if rows is None:
        sys.exit("vigil did not deliver all %d: %s" % (n, err[-2000:]))
    return stats(rows)


def run_curl(sink, tmp, n):
    sink.restart()
    script = os.path.join(tmp, "loop.sh")
    with open(script, "w") as f:
        f.write('i=0\nwhile [ $i -lt %d ]; do\n'
                '  t=$(date -u +%%Y-%%m-%%dT%%H:%%M:%%S.%%3NZ)\n'
                '  curl -s -o /dev/null -X POST -H "Content-Type: application/json" '
                '--data-binary "{\\"v\\":1,\\"id\\":\\"curl$i\\",\\"time\\":\\"$t\\",'
                '\\"kind\\":\\"match\\",\\"line\\":\\"line $i\\"}" %s\n'
                '  i=$((i+1))\ndone\n' % (n, sink.url))
    subprocess.run(["sh", script], check=True)
    return stats(sink.wait_kind("match", n, 60))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--curl-events", type=int, default=1000)
    ap.add_argument("--spool-dir", default="/var/tmp")
    a = ap.parse_args()
    vigil = find_vigil()
    tmp = tempfile.mkdtemp(prefix="vigil-bench-")
    sink = Sink(tmp)
    try:
        alone = [(c, wrk_rate(sink.url, c)) for c in (1, 8)]
        rows = [("vigil webhook (default: 1 in flight)", a.events,
                 run_vigil(vigil, sink, tmp, a.events, a.spool_dir, 0)),
                ("vigil webhook, parallel = 8", a.events,
                 run_vigil(vigil, sink, tmp, a.events, a.spool_dir, 8)),
                ("curl in a shell loop (baseline)", a.curl_events,
                 run_curl(sink, tmp, a.curl_events))]
    finally:
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for c, rate in alone:
        print("receiver alone (wrk, %d connection%s): %s" % (
            c, "s" if c > 1 else "", "%.0f requests/s" % rate if rate else "wrk not installed"))
    print("%-38s %7s %9s %8s %8s %9s" % ("variant", "events", "events/s", "p50 ms", "p99 ms",
                                         "in order"))
    for name, n, (rate, p50, p99, ordered) in rows:
        print("%-38s %7d %9.0f %8.1f %8.1f %9s" % (name, n, rate, p50, p99,
                                                  "yes" if ordered else "no"))
    return 0 if rows[0][2][0] >= 2000 else 1


if __name__ == "__main__":
    sys.exit(main())
