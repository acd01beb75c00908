#!/usr/bin/env python3
"""Idle cost: a monitor with pid, file, log and pressure detectors, idle 10 s.

  vigil watch --pid SLEEPER --file DIR/never.json --log DIR/idle.log
              --disk DIR:1K --memory 1M --json       (pressure interval: default)
After `attached` and a 1 s settle, for --seconds (10):
  wakeups: epoll_wait calls counted by `strace -c -f -e trace=epoll_wait,epoll_pwait -p PID`
           (each call returns once: calls ~ wakeups), and, without strace, the
           voluntary context switches from /proc/PID/status in a second window;
  CPU:     utime + stime from /proc/PID/stat over the strace-free window.
Target: <= 1 wakeup per second on average.

Usage: bench_idle.py --vigil PATH [--seconds N]
Exit status: 0 target met, 1 missed, 2 the benchmark failed.
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

TARGET_WAKEUPS_PER_S = 1.0


def cpu_ticks(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def vol_switches(pid):
    with open('/proc/%d/status' % pid) as f:
        return int(re.search(r'voluntary_ctxt_switches:\s+(\d+)', f.read()).group(1))


def strace_wakeups(pid, seconds):
    if not shutil.which('strace'):
        return None
    r = subprocess.run(['timeout', '-s', 'INT', str(seconds), 'strace', '-c', '-f',
                        '-e', 'trace=epoll_wait,epoll_pwait,epoll_pwait2', '-p', str(pid)],
                       capture_output=True, text=True)
    calls = 0
    for line in r.stderr.splitlines():
        m = re.match(r'\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(epoll_\w+)', line)
        if m:
            calls += int(m.group(1))
    if 'attach' in r.stderr and 'Operation not permitted' in r.stderr:
        return None
    return calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vigil', required=True)
    ap.add_argument('--seconds', type=int, default=10)
    a = ap.parse_args()
    hz = os.sysconf('SC_CLK_TCK')
    sleeper = subprocess.Popen(['sleep', '3600'], stdin=subprocess.DEVNULL)
    tmp = tempfile.mkdtemp(prefix='vigil-bench-idle-')
    p = None
    try:
        log = os.path.join(tmp, 'idle.log')
        with open(log, 'w') as f:
            f.write('started\n')
        p = subprocess.Popen([a.vigil, 'watch', '--pid', str(sleeper.pid),
                              '--file', os.path.join(tmp, 'never.json'), '--log', log,
                              '--success', 'done', '--disk', tmp + ':1K', '--memory', '1M',
                              '--json', '--state-dir', os.path.join(tmp, 'state')],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        ev = json.loads(p.stdout.readline())
        if ev['kind'] != 'attached':
            raise RuntimeError('first event is %s, not attached' % ev['kind'])
        time.sleep(1)
        calls = strace_wakeups(p.pid, a.seconds)
        time.sleep(0.5)
        c0, v0, t0 = cpu_ticks(p.pid), vol_switches(p.pid), time.monotonic()
        time.sleep(a.seconds)
        c1, v1, t1 = cpu_ticks(p.pid), vol_switches(p.pid), time.monotonic()
        if p.poll() is not None:
            raise RuntimeError('vigil ended during the measurement')
    finally:
        if p:
            p.terminate()
            p.wait(10)
        sleeper.kill()
        sleeper.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    el = t1 - t0
    cpu_ms = (c1 - c0) * 1000.0 / hz
    print('\n### idle cost: pid + file + log + pressure (default interval), %d s\n' % a.seconds)
    print('command: `%s`\n' % ' '.join(sys.argv))
    print('| measure | total | per second | target |')
    print('|---|---:|---:|---:|')
    per_s = None
    if calls is not None:
        per_s = calls / float(a.seconds)
        print('| epoll_wait calls (strace -c) | %d | %.2f | <= %.0f |' % (calls, per_s,
                                                                        TARGET_WAKEUPS_PER_S))
    vps = (v1 - v0) / el
    print('| voluntary context switches (/proc) | %d | %.2f | <= %.0f |' % (v1 - v0, vps,
                                                                          TARGET_WAKEUPS_PER_S))
    print('| CPU time utime+stime | %.0f ms | %.2f ms | - |' % (cpu_ms, cpu_ms / el))
    worst = max(x for x in (per_s, vps) if x is not None)
    ok = worst <= TARGET_WAKEUPS_PER_S
    print('\ntarget <= %.0f wakeup/s: %s' % (TARGET_WAKEUPS_PER_S, 'met' if ok else 'MISSED'))
    return 0 if ok else 1


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as e:
        print('bench_idle: %s' % e, file=sys.stderr)
        sys.exit(2)
