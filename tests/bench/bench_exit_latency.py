#!/usr/bin/env python3
"""Exit-detection latency: vigil watch against `tail --pid` (the usual baseline).

Each run starts a target process in its own session (not a child of vigil or tail:
vigil attaches to it as to any foreign process), then, side by side on that same
process:
  vigil watch --json PID        (latency: until its `finished` line arrives on our pipe)
  tail --pid=PID -f /dev/null   (latency: until tail exits)
The target writes time.monotonic_ns() to a pipe right before _exit(); the harness
stamps arrivals with time.monotonic_ns(): one clock (CLOCK_MONOTONIC) for both ends.

The exit is triggered at a random point of tail's 1 s polling period, so the baseline
is measured fairly (its latency is spread over [0, 1 s), not pinned near one end).
Every run also checks that vigil reported the target's real exit code (needs root:
vigil reads foreign exit codes from the kernel's process-events connector).

Usage: bench_exit_latency.py --vigil PATH [--runs N] [--seed N]
Exit status: 0 targets met, 1 targets missed, 2 the benchmark itself failed.
"""

import argparse
import json
import math
import os
import random
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time

TARGET_P99_MS = 5.0
TARGET_RATIO = 100.0
RUN_TIMEOUT_S = 10.0


def target_main(go_fd, ts_fd, code):
    """The watched process: wait for the go byte, stamp the time, exit at once."""
    os.read(go_fd, 1)
    t = time.monotonic_ns()
    os.write(ts_fd, str(t).encode())
    os._exit(code)


class BenchError(Exception):
    pass


def wait_for_tail_ready(tail, deadline):
    """tail is polling once /dev/null is open (its fd 3) and it sleeps."""
    fd3 = f"/proc/{tail.pid}/fd/3"
    while time.monotonic() < deadline:
        try:
            if os.readlink(fd3) == "/dev/null":
                with open(f"/proc/{tail.pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                if state == "S":
                    return
        except OSError:
            pass
        if tail.poll() is not None:
            raise BenchError(f"tail exited early with {tail.returncode}")
        time.sleep(0.001)
    raise BenchError("tail did not start")


def read_until_attached(vigil, buf, deadline):
    """Read vigil's JSON lines until the `attached` event; returns the rest."""
    sel = selectors.DefaultSelector()
    sel.register(vigil.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                ev = json.loads(line)
                if ev.get("kind") == "attached":
                    return buf
                if ev.get("kind") == "finished":
                    raise BenchError(f"vigil finished before attaching: {ev}")
            if sel.select(deadline - time.monotonic()):
                chunk = os.read(vigil.stdout.fileno(), 65536)
                if not chunk:
                    raise BenchError(f"vigil closed its output, rc={vigil.wait()}")
                buf += chunk
    finally:
        sel.close()
    raise BenchError("vigil did not attach")


def collect(vigil, tail, target_fd, buf, deadline):
    """Wait for vigil's `finished` line, tail's exit and the target's own pidfd
    (the floor: the kernel's wake-up seen by this harness); stamp each arrival."""
    sel = selectors.DefaultSelector()
    tail_fd = os.pidfd_open(tail.pid)
    sel.register(vigil.stdout, selectors.EVENT_READ, "vigil")
    sel.register(tail_fd, selectors.EVENT_READ, "tail")
    sel.register(target_fd, selectors.EVENT_READ, "floor")
    at = {}
    finished = None
    try:
        while not {"vigil", "tail", "floor"} <= at.keys() and time.monotonic() < deadline:
            for key, _ in sel.select(deadline - time.monotonic()):
                now = time.monotonic_ns()
                if key.data != "vigil":
                    at[key.data] = now
                    sel.unregister(key.fileobj)
                    continue
                chunk = os.read(vigil.stdout.fileno(), 65536)
                if not chunk:
                    sel.unregister(vigil.stdout)
                    if "vigil" not in at:
                        raise BenchError("vigil ended without a finished line")
                    continue
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    ev = json.loads(line)
                    if ev.get("kind") == "exited" and "exited" not in at:
                        at["exited"] = now
                    if ev.get("kind") == "finished" and "vigil" not in at:
                        at["vigil"], finished = now, ev
    finally:
        sel.close()
        os.close(tail_fd)
    if not {"vigil", "tail", "floor"} <= at.keys():
        raise BenchError("timed out waiting for vigil or tail")
    return at, finished


def reap_in_background(proc):
    """Reap the target the moment it exits: a zombie still answers kill(pid, 0),
    which would hold tail back for nothing."""
    t = threading.Thread(target=proc.wait, daemon=True)
    t.start()
    return t


def target_command(target_bin, go_r, ts_w, code):
    if target_bin:
        return [target_bin, str(go_r), str(ts_w), str(code)]
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), "--target",
            str(go_r), str(ts_w), str(code)]


def one_run(vigil_path, target_bin, state_dir, code, rng):
    go_r, go_w = os.pipe()
    ts_r, ts_w = os.pipe()
    procs = []
    try:
        target = subprocess.Popen(
            target_command(target_bin, go_r, ts_w, code),
            pass_fds=(go_r, ts_w), start_new_session=True,
            stdin=subprocess.DEVNULL)
        procs.append(target)
        os.close(go_r)
        os.close(ts_w)
        go_r = ts_w = -1
        reaper = reap_in_background(target)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        vigil = subprocess.Popen(
            [vigil_path, "watch", "--json", "--state-dir", state_dir, str(target.pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        procs.append(vigil)
        tail = subprocess.Popen(
            ["tail", f"--pid={target.pid}", "-f", "/dev/null"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        procs.append(tail)
        buf = read_until_attached(vigil, b"", deadline)
        wait_for_tail_ready(tail, deadline)
        # A random phase of tail's one-second poll.
        time.sleep(rng.random())
        target_fd = os.pidfd_open(target.pid)
        try:
            os.write(go_w, b"x")
            at, finished = collect(vigil, tail, target_fd, buf, deadline)
        finally:
            os.close(target_fd)
        reaper.join(RUN_TIMEOUT_S)
        exited_at = int(os.read(ts_r, 64))
        if finished.get("exit_code") != code:
            raise BenchError(f"vigil reported exit_code {finished.get('exit_code')}, "
                f"the target exited {code} (run as root?)")
        rc = vigil.wait(RUN_TIMEOUT_S)
        want_rc = 0 if code == 0 else 1
        if rc != want_rc:
            raise BenchError(f"vigil watch exited {rc}, expected {want_rc}")
        return {k: (v - exited_at) / 1e6 for k, v in at.items()}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for p in procs:
            if p.stdout:
                p.stdout.close()
        for fd in (go_r, go_w, ts_r, ts_w):
            if fd >= 0:
                os.close(fd)


def percentile(sorted_ms, p):
    """Nearest rank: the smallest value with at least p% of the samples at or below it."""
    rank = max(1, math.ceil(p / 100.0 * len(sorted_ms)))
    return sorted_ms[rank - 1]


def summary(samples):
    s = sorted(samples)
    return len(s), s[0], percentile(s, 50), percentile(s, 99)


def print_table(ms):
    rows = [("vigil watch --json PID (`finished` line)", "vigil"),
            ("vigil watch --json PID (`exited` line, for reference)", "exited"),
            ("tail --pid=PID -f /dev/null (baseline)", "tail"),
            ("pidfd in this harness (floor, for reference)", "floor")]
    print("| tool | runs | min (ms) | p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|---:|")
    stats = {}
    for title, key in rows:
        n, lo, p50, p99 = summary(ms[key])
        stats[key] = (p50, p99)
        print(f"| {title} | {n} | {lo:.3f} | {p50:.3f} | {p99:.3f} |")
    v50, v99 = stats["vigil"]
    t50, _ = stats["tail"]
    ratio = t50 / v50 if v50 > 0 else float("inf")
    print()
    print(f"ratio baseline_p50 / vigil_p50 = {ratio:.0f}x")
    ok_p99 = v99 <= TARGET_P99_MS
    ok_ratio = ratio >= TARGET_RATIO
    print(f"target vigil p99 <= {TARGET_P99_MS:g} ms: {'met' if ok_p99 else 'MISSED'}"
          f" ({v99:.3f} ms)")
    print(f"target ratio >= {TARGET_RATIO:g}x: {'met' if ok_ratio else 'MISSED'}"
          f" ({ratio:.0f}x)")
    return ok_p99 and ok_ratio


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--target":
        target_main(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vigil", required=True, help="the vigil binary")
    ap.add_argument("--target", dest="target_bin", default=None,
                    help="the watched program (bench_exit_target, built by run.sh); "
                    "default: this script in Python, which exits more slowly")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--state-dir-parent", default=None,
                    help="where vigil's temporary state folder goes (default: /run "
                    "when root, like vigil's own default, else $TMPDIR)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    if shutil.which("tail") is None:
        print("bench: tail not found", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("bench: run as root: vigil needs it to read a foreign process's exit code",
            file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    ms = {"vigil": [], "exited": [], "tail": [], "floor": []}
    parent = args.state_dir_parent
    if parent is None and os.path.isdir("/run") and os.access("/run", os.W_OK):
        parent = "/run"
    with tempfile.TemporaryDirectory(prefix="vigil-bench-", dir=parent) as state_dir:
        for i in range(args.runs):
            try:
                run = one_run(args.vigil, args.target_bin, state_dir, i % 100 + 1, rng)
            except (BenchError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                print(f"bench: run {i + 1}: {e}", file=sys.stderr)
                return 2
            run.setdefault("exited", run["vigil"])
            for k, v in run.items():
                ms[k].append(v)
            print(f"run {i + 1:3d}/{args.runs}: vigil {run['vigil']:8.3f} ms   "
                  f"tail {run['tail']:8.3f} ms   floor {run['floor']:8.3f} ms",
                  file=sys.stderr)
    print(f"Exit-detection latency, {args.runs} runs, same processes for both tools "
        f"(CLOCK_MONOTONIC, from the target's exit to the tool's report)")
    print()
    return 0 if print_table(ms) else 1


if __name__ == "__main__":
    sys.exit(main())
