#!/usr/bin/env python3
"""Log matching throughput: vigil catching up on a 1 GiB log against GNU grep.

For each match rate (percent of lines matching), a log is generated once and
cached in /tmp (regenerated when missing or of another size). Then, on the same
file, with the same pattern `completed|finished|error|failed`:
  grep -E -c RE FILE                                   (the baseline)
  vigil watch --pid SLEEPER --log FILE --from start --failure RE --json
vigil is timed from its start until it has read the log and reported grep's
count of matches. Every match is one JSON event on vigil's stdout, which grep -c never
prints: at 1% (about 100,000 events per GiB) that is part of the cost, so a low
rate (0.01%) is measured too, where reading and matching dominate.
The page cache is warmed first and each tool runs --repeat times (best kept).

With match_window (the default 10s) a burst of matches is a few events: the
clock stops when vigil has read the whole log (its descriptor's offset), and
the count is checked afterwards in `finished`. With match_window 0s every match
is its own event and the clock also waits for all of them on stdout.

Usage: bench_log.py --vigil PATH [--size BYTES] [--rates 1,0.01]
                    [--windows default,0s] [--repeat N]
Exit status: 0 target met (vigil >= 1.0x grep at every rate, default window), 1 missed,
2 the benchmark failed.
"""
import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import time

PATTERN = 'completed|finished|error|failed'
TARGET_RATIO = 1.0
GIB = 1 << 30

WORDS = [b'INFO', b'DEBUG', b'WARN', b'TRACE']
MATCHING = [b'job %d completed in %d ms', b'step %d finished ok %d', b'ERROR disk %d: write error %d',
            b'task %d failed with code %d']


def make_block(rate, lines=40000):
    """About `lines` log lines of 80-130 bytes, `rate` percent of them matching."""
    out = []
    every = max(1, int(round(100.0 / rate)))
    for i in range(lines):
        ts = b'2024-05-01T12:%02d:%02d.%03dZ ' % (i // 3600 % 60, i // 60 % 60, i % 1000)
        if i % every == every // 2:
            body = MATCHING[i % len(MATCHING)] % (i, i * 7 % 1000)
        else:
            body = b'%s worker-%d processed batch %d rows=%d bytes=%d checksum=%08x' % (
                WORDS[i % 4], i % 16, i, i * 13 % 10000, i * 977 % 100000, i * 2654435761 % (1 << 32))
        out.append(ts + body + b'\n')
    return b''.join(out)


def log_path(size, rate):
    return '/tmp/vigil-bench-log-%d-%s.log' % (size, ('%g' % rate).replace('.', '_'))


def ensure_log(size, rate):
    path = log_path(size, rate)
    if os.path.exists(path) and os.path.getsize(path) == size:
        return path
    block = make_block(rate)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        left = size
        while left > 0:
            # cut at a line end so the last line is whole
            cut = len(block) if len(block) <= left else block.rfind(b'\n', 0, left) + 1
            chunk = block[:cut] if cut > 0 else b'x' * (left - 1) + b'\n'
            f.write(chunk)
            left -= len(chunk)
    os.rename(tmp, path)
    return path


def warm(path):
    with open(path, 'rb') as f:
        while f.read(16 << 20):
            pass


def time_grep(path):
    t0 = time.monotonic()
    r = subprocess.run(['grep', '-E', '-c', PATTERN, path], capture_output=True, check=False)
    t = time.monotonic() - t0
    if r.returncode not in (0, 1):
        raise RuntimeError('grep failed: %s' % r.stderr.decode())
    return t, int(r.stdout)


def log_fd_pos(pid, path):
    """Where vigil's descriptor of path is (bytes read), or -1 while none is open."""
    try:
        for fd in os.listdir('/proc/%d/fd' % pid):
            try:
                if os.readlink('/proc/%d/fd/%s' % (pid, fd)) != path:
                    continue
                with open('/proc/%d/fdinfo/%s' % (pid, fd)) as f:
                    return int(f.readline().split()[1])
            except OSError:
                continue
    except OSError:
        pass
    return -1


def count_matches(buf):
    """Matching lines that the complete JSON lines of buf report (a coalesced
    event stands for `repeats` of them); the finished event's failure_lines."""
    seen, finished = 0, None
    for line in buf.split(b'\n'):
        if b'"kind":"match"' in line:
            seen += json.loads(line).get('repeats', 1)
        elif b'"kind":"finished"' in line:
            finished = json.loads(line).get('failure_lines')
    return seen, finished


def job_ini(state_dir, window):
    """-c FILE for the match_window setting (None: the built-in default)."""
    path = os.path.join(state_dir, 'bench-window.ini')
    with open(path, 'w') as f:
        f.write('[monitor]\n' + ('match_window = %s\n' % window if window is not None else ''))
    return path


def time_vigil(vigil, path, want, state_dir, window):
    """Seconds until vigil has read the whole log and, with every match its own
    event (match_window 0), printed them all. With coalescing the held count
    is reported when the window ends: that is checked after the clock stops,
    in `finished` (failure_lines) once the watched process is gone."""
    size = os.path.getsize(path)
    # A fresh state folder per run: the log detector keeps its position there
    # (a second watch of the same monitor resumes where the first stopped).
    state_dir = tempfile.mkdtemp(dir=state_dir)
    sleeper = subprocess.Popen(['sleep', '3600'], stdin=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        p = subprocess.Popen([vigil, 'watch', '-c', job_ini(state_dir, window),
                              '--pid', str(sleeper.pid), '--log', path,
                              '--from', 'start', '--failure', PATTERN, '--json',
                              '--state-dir', state_dir],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
        fd, seen, tail, t_read, t = p.stdout.fileno(), 0, b'', None, None
        deadline = t0 + 600
        while t is None:
            if select.select([fd], [], [], 0.005)[0]:
                data = os.read(fd, 1 << 20)
                if not data:
                    raise RuntimeError('vigil ended after %d of %d matches' % (seen, want))
                buf = tail + data
                cut = buf.rfind(b'\n') + 1
                seen += count_matches(buf[:cut])[0]
                tail = buf[cut:]
            if t_read is None and log_fd_pos(p.pid, path) >= size:
                t_read = time.monotonic()
            if t_read is not None and (seen >= want or window not in ('0', '0s')):
                t = time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError('vigil too slow: %d of %d matches in 600 s' % (seen, want))
        sleeper.kill()
        rest = tail + p.stdout.read()
        p.wait(60)
        p.stdout.close()
        more, finished = count_matches(rest)
        if seen + more != want or finished != want:
            raise RuntimeError('vigil reported %d matches (finished: %s), grep %d'
                               % (seen + more, finished, want))
        return t - t0, want
    finally:
        sleeper.kill()
        sleeper.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vigil', required=True)
    ap.add_argument('--size', type=int, default=GIB)
    ap.add_argument('--rates', default='1,0.01')
    ap.add_argument('--windows', default='default,0s',
                    help='match_window values to run (default: the built-in one)')
    ap.add_argument('--repeat', type=int, default=2)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix='vigil-bench-log-') as state:
        for rate in [float(x) for x in a.rates.split(',')]:
            path = ensure_log(a.size, rate)
            warm(path)
            g = min(time_grep(path) for _ in range(a.repeat))
            for w in a.windows.split(','):
                window = None if w == 'default' else w
                v = min(time_vigil(a.vigil, path, g[1], state, window) for _ in range(a.repeat))
                mb = a.size / 1e6
                rows.append((rate, w, g[1], mb / g[0], mb / v[0], g[0] / v[0], g[0], v[0]))
    print('\n### log matching: catch-up on %.2f GiB, pattern `%s`\n' % (a.size / GIB, PATTERN))
    print('command: `%s`\n' % ' '.join(sys.argv))
    print('| match rate | match_window | matches | grep -E -c | vigil watch --from start '
          '| vigil / grep |')
    print('|---:|---:|---:|---:|---:|---:|')
    for rate, w, n, gmb, vmb, ratio, gt, vt in rows:
        print('| %g%% | %s | %d | %.0f MB/s (%.2f s) | %.0f MB/s (%.2f s) | %.2fx |'
              % (rate, w, n, gmb, gt, vmb, vt, ratio))
    judged = [r for r in rows if r[1] == 'default'] or rows
    ok = all(r[5] >= TARGET_RATIO for r in judged)
    print('\ntarget: vigil >= %.1fx grep at every rate (match_window %s): %s'
          % (TARGET_RATIO, judged[0][1], 'met' if ok else 'MISSED'))
    return 0 if ok else 1


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print('bench_log: %s' % e, file=sys.stderr)
        sys.exit(2)
