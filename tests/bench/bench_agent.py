#!/usr/bin/env python3
"""One agent, many monitors: RSS, start-up time, idle CPU, and a mass exit.

N real sleeping processes (one process group, children of this harness, so
the agent watches them as foreign processes) and N monitor files `pid = PID`
in a conf.d. Measured:
  start-up   agent start -> "loaded:" logged, and -> N "attached" events
  RSS        VmRSS (and VmHWM) of the agent once every monitor is attached
  idle CPU   utime+stime of the agent over IDLE_S seconds, as % of one CPU,
             from SETTLE seconds after the last attach (the start-up's
             run records are written within a second of each attach)
  mass exit  SIGTERM to the whole group at once: "exited" events counted, each
             checked for a known exit status (signal SIGTERM), the last one's
             timestamp against the kill
Baseline, in the same run, on the same PIDs: N `tail --pid=PID -f /dev/null`
processes: summed VmRSS (and PSS), and when the last of them noticed.

Usage: bench_agent.py --vigil PATH [--n 10000] [--idle 10]
Run as root (exit statuses of foreign processes come from the kernel's
process-events connector; the harness raises RLIMIT_NOFILE for the agent).
Exit status: 0 targets met, 1 targets missed, 2 the benchmark failed.
"""

import argparse
import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

TARGET_RSS_MB = 64
TARGET_IDLE_CPU = 0.1
TARGET_LAST_EXIT_S = 2.0


def rss_kb(pid, key="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def forks_total():
    """Processes created on the machine since boot (/proc/stat): each fork, exec
    and exit is a process-events connector message the agent wakes up for."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("processes "):
                return int(line.split()[1])
    return 0


def cpu_ns(pid):
    """Time on a CPU in ns (schedstat: finer than the 10 ms of utime/stime)."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def count_lines(path, needle):
    with open(path, "rb") as f:
        return f.read().count(needle)


def wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def shell_spawn(n, cmd):
    """N background copies of cmd ({i}: the index) started by one shell that
    exits at once: in one new process group, reparented to us (the subreaper),
    never the agent's children. Returns their PIDs."""
    script = "\n".join("%s </dev/null >/dev/null 2>&1 &\necho $!" % cmd.format(i=i)
                       for i in range(n))
    r = subprocess.run(["/bin/sh", "-s"], input=script + "\n", stdout=subprocess.PIPE,
                       text=True, start_new_session=True, check=True, timeout=1800)
    return [int(x) for x in r.stdout.split()]


def spawn_sleepers(n):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans come to us
    pids = shell_spawn(n, "exec sleep 100000")
    return pids, os.getpgid(pids[0])


def spawn_tails(pids):
    """The baseline: one `tail --pid=PID -f /dev/null` per watched PID."""
    script = "\n".join("tail --pid=%d -f /dev/null </dev/null >/dev/null 2>&1 &\necho $!"
                       % p for p in pids)
    r = subprocess.run(["/bin/sh", "-s"], input=script + "\n", stdout=subprocess.PIPE,
                       text=True, start_new_session=True, check=True, timeout=1800)
    return [int(x) for x in r.stdout.split()]


def reap(pids):
    """Wait for each PID (ours as subreaper); returns when the last one ended."""
    for p in pids:
        try:
            os.waitpid(p, 0)
        except ChildProcessError:
            pass
    return time.monotonic()


def event_time(e):
    return datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()


def raise_nofile(n):
    want = min(int(open("/proc/sys/fs/nr_open").read()), max(n * 4 + 1024, 65536))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            print("warning: cannot raise RLIMIT_NOFILE to %d (hard %d)" % (want, hard))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after every monitor attached before the idle window")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--baseline-n", type=int, default=0,
                    help="tails for only the first K PIDs, RSS scaled to N (tail --pid "
                    "polls once a second: 10,000 of them swamp a small machine)")
    args = ap.parse_args()
    n = args.n
    if os.geteuid() != 0:
        print("note: not root: exit statuses will be unknown (no connector)")
    raise_nofile(n)
    tmp = tempfile.mkdtemp(prefix="vigil-bench-agent-")
    conf = os.path.join(tmp, "conf.d")
    os.mkdir(conf)
    ini = os.path.join(tmp, "vigil.ini")
    # Run records on tmpfs, as /run/vigil is on a systemd host (on a disk file
    # system every event's record rename costs about half a millisecond).
    state = tempfile.mkdtemp(prefix="vigil-bench-state-",
                             dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    with open(ini, "w") as f:
        f.write("[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s/spool\n"
                "[defaults]\nnotify = json\n" % (conf, state, tmp))
    results, agent, tails, pgid = {}, None, [], 0
    try:
        t = time.monotonic()
        pids, pgid = spawn_sleepers(n)
        print("spawned %d sleepers in %.1f s" % (n, time.monotonic() - t), flush=True)
        for i, p in enumerate(pids):
            with open(os.path.join(conf, "m%05d.ini" % i), "w") as f:
                f.write("[monitor]\npid = %d\n" % p)
        if not args.no_baseline:
            t = time.monotonic()
            k = min(args.baseline_n or n, n)
            tails = spawn_tails(pids[:k])
            print("spawned %d tails in %.1f s" % (k, time.monotonic() - t), flush=True)
            results["tail_n"] = k
            results["tail_rss_mb"] = sum(rss_kb(t) for t in tails) / 1024 * n / k
            results["tail_pss_mb"] = sum(pss_kb(t) for t in tails) / 1024 * n / k
        out = open(os.path.join(tmp, "events.jsonl"), "wb")
        err = open(os.path.join(tmp, "agent.log"), "wb")
        t0 = time.monotonic()
        agent = subprocess.Popen([args.vigil, "agent", "--config", ini], stdout=out,
                                 stderr=err, stdin=subprocess.DEVNULL)
        evpath, logpath = out.name, err.name
        wait_for(lambda: count_lines(logpath, b"loaded:"), 600, "the first load")
        results["startup_loaded_s"] = time.monotonic() - t0
        wait_for(lambda: count_lines(evpath, b'"kind":"attached"') >= n, 600,
                 "every monitor attached")
        results["startup_attached_s"] = time.monotonic() - t0
        results["agent_rss_mb"] = rss_kb(agent.pid) / 1024
        results["agent_hwm_mb"] = rss_kb(agent.pid, "VmHWM") / 1024
        results["agent_fds"] = len(os.listdir("/proc/%d/fd" % agent.pid))
        hz = os.sysconf("SC_CLK_TCK")
        # the start-up's tail first: each attach's run record is written
        # within a second, not in the turn that attached it
        time.sleep(args.settle)
        c0, w0, f0 = cpu_ns(agent.pid), time.monotonic(), forks_total()
        time.sleep(args.idle)
        c1, w1, f1 = cpu_ns(agent.pid), time.monotonic(), forks_total()
        results["idle_forks_per_s"] = (f1 - f0) / (w1 - w0)
        results["idle_cpu_pct"] = 100.0 * (c1 - c0) / 1e9 / (w1 - w0)
        c1 = cpu_ticks(agent.pid)

        kill_wall = time.time()
        kill_mono = time.monotonic()
        os.killpg(pgid, signal.SIGTERM)
        reaped = []
        reaper = threading.Thread(target=lambda: reaped.append(reap(pids)))
        reaper.start()
        tails_done = None
        if tails:
            tails_done = reap(tails) - kill_mono
        reaper.join(120)
        if reaped:
            results["kernel_last_exit_s"] = reaped[0] - kill_mono
        try:
            wait_for(lambda: count_lines(evpath, b'"kind":"exited"') >= n, 120,
                     "every exit reported")
        except RuntimeError:
            pass
        results["agent_cpu_mass_exit_s"] = (cpu_ticks(agent.pid) - c1) / hz
        exited = [json.loads(l) for l in open(evpath, "rb")
                  if b'"kind":"exited"' in l]
        known = [e for e in exited if e.get("signal") == "SIGTERM"]
        results["exits_reported"] = len(exited)
        results["exits_with_status"] = len(known)
        lat = sorted(event_time(e) - kill_wall for e in exited)
        results["last_exit_s"] = lat[-1] if lat else float("nan")
        results["p50_exit_s"] = lat[len(lat) // 2] if lat else float("nan")
        results["p90_exit_s"] = lat[len(lat) * 9 // 10] if lat else float("nan")
        if tails_done is not None:
            results["tail_last_exit_s"] = tails_done
        agent.send_signal(signal.SIGTERM)
        agent.wait(120)
        results["agent_exit"] = agent.returncode
        agent = None
    finally:
        if agent and agent.poll() is None:
            agent.kill()
            agent.wait()
        if pgid:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for t in tails:
            try:
                os.kill(t, signal.SIGKILL)
                os.waitpid(t, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        shutil.rmtree(tmp, True)
        shutil.rmtree(state, True)
    report(n, results)
    ok = (results["agent_rss_mb"] <= TARGET_RSS_MB and
          results["idle_cpu_pct"] <= TARGET_IDLE_CPU and
          results["exits_with_status"] == n and
          results["last_exit_s"] <= TARGET_LAST_EXIT_S)
    return 0 if ok else 1


def report(n, r):
    rows = [
        ("monitors / processes", "%d" % n, "",
         "%d tail --pid%s" % (r["tail_n"], " (RSS scaled to %d)" % n if r["tail_n"] < n else "")
         if "tail_rss_mb" in r else "-"),
        ("start-up: loaded", "%.2f s" % r["startup_loaded_s"], "", ""),
        ("start-up: all attached", "%.2f s" % r["startup_attached_s"], "", ""),
        ("RSS", "%.1f MB (peak %.1f)" % (r["agent_rss_mb"], r["agent_hwm_mb"]),
         "<= %d MB" % TARGET_RSS_MB,
         "%.0f MB summed (PSS %.0f MB)" % (r["tail_rss_mb"], r["tail_pss_mb"])
         if "tail_rss_mb" in r else "-"),
        ("open fds", "%d" % r["agent_fds"], "", "%d processes" % n),
        ("idle CPU", "%.3f %%" % r["idle_cpu_pct"], "<= %.1f %%" % TARGET_IDLE_CPU,
         "(machine: %.0f new processes/s)" % r["idle_forks_per_s"]),
        ("exits reported", "%d / %d" % (r["exits_reported"], n), "100 %", "no status"),
        ("... with exit status", "%d / %d" % (r["exits_with_status"], n), "100 %", "-"),
        ("last exit reported after kill", "%.2f s" % r["last_exit_s"],
         "<= %.1f s" % TARGET_LAST_EXIT_S,
         "%.2f s" % r["tail_last_exit_s"] if "tail_last_exit_s" in r else "-"),
        ("last process reaped (the floor)", "%.2f s" % r.get("kernel_last_exit_s", float("nan")),
         "", ""),
        ("exit reported after kill: p50 / p90", "%.2f s / %.2f s" % (r["p50_exit_s"],
                                                                    r["p90_exit_s"]), "", ""),
        ("agent CPU during mass exit", "%.2f s" % r["agent_cpu_mass_exit_s"], "", ""),
        ("agent exit status after SIGTERM", "%d" % r["agent_exit"], "0", ""),
    ]
    w = max(len(x[0]) for x in rows)
    print("%-*s  %-26s  %-10s  %s" % (w, "", "vigil agent", "target", "baseline"))
    for name, v, tgt, base in rows:
        print("%-*s  %-26s  %-10s  %s" % (w, name, v, tgt, base))


def on_term(signo, frame):
    raise RuntimeError("interrupted by signal %d" % signo)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    try:
        sys.exit(main())
    except RuntimeError as e:
        print("bench_agent: %s" % e, file=sys.stderr)
        sys.exit(2)
