#!/usr/bin/env python3
"""A log rotated 20 times by Debian's logrotate while 100,000 lines are written.

Every success and failure line (each with a unique id) must be reported by
`vigil watch --log ... --json` exactly once, in `create` mode (rename, the
writer reopens its file) and in `copytruncate` mode (the writer keeps its
descriptor; vigil recovers the bytes it had not read from LOG.1).
The counts are printed for the closing note: expected, reported, missing,
duplicated.
"""
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get('VIGIL_SOURCE_ROOT', os.path.normpath(os.path.join(HERE, '..', '..')))
from vigil_test import VIGIL  # noqa: E402
LOGROTATE = shutil.which('logrotate') or '/usr/sbin/logrotate'

LINES = 100000
BATCH = 400
ROTATIONS = 20
ROTATE_EVERY = 4800       # lines written between two rotations: all 20 happen mid-write
SUCCESS_EVERY = 100       # line i is a success line when i % 100 == 0
FAILURE_OFFSET = 50       # ... and a failure line when i % 100 == 50

# The writer prints how many lines it has written after each batch, so the test
# can rotate at known points while the writer keeps going.
WRITER = r'''
import os, sys, time
path, mode, lines, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def line(i):
    if i %% %(s)d == 0:
        return 'line %%06d job %%d completed id=S%%d\n' %% (i, i, i)
    if i %% %(s)d == %(f)d:
        return 'line %%06d job %%d failed id=F%%d\n' %% (i, i, i)
    return 'line %%06d ordinary output, nothing to see here %%s\n' %% (i, 'x' * (i %% 40))
fd = None
if mode == 'copytruncate':   # a daemon that never reopens its log
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
i = 0
while i < lines:
    chunk = ''.join(line(j) for j in range(i, min(i + batch, lines))).encode()
    if mode == 'create':     # reopen per batch: follows the rename+create rotation
        f = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.write(f, chunk)
        os.close(f)
    else:
        os.write(fd, chunk)
    i = min(i + batch, lines)
    print(i, flush=True)
    time.sleep(0.004)
''' % {'s': SUCCESS_EVERY, 'f': FAILURE_OFFSET}


def expected_ids():
    ids = set()
    for i in range(LINES):
        if i % SUCCESS_EVERY == 0:
            ids.add('S%d' % i)
        elif i % SUCCESS_EVERY == FAILURE_OFFSET:
            ids.add('F%d' % i)
    return ids


def id_ranges(ids):
    """[(first, last), ...] of runs of consecutive pattern lines (ids 50 apart)."""
    nums = sorted(int(s[1:]) for s in ids)
    runs = []
    for n in nums:
        if runs and n - runs[-1][1] == SUCCESS_EVERY - FAILURE_OFFSET:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return [tuple(r) for r in runs]


def ids_on_disk(folder):
    """The pattern ids present in app.log and its rotated copies, including
    app.log-DATE.backup: when the writer recreates app.log between logrotate's
    rename and its create, logrotate renames the writer's file to that name."""
    ids = set()
    for n in os.listdir(folder):
        if n == 'app.log' or n.startswith('app.log.') or n.startswith('app.log-'):
            with open(os.path.join(folder, n), 'rb') as f:
                ids.update(m.decode() for m in re.findall(rb'id=([SF][0-9]+)\n', f.read()))
    return ids


class Collector:
    """Reads vigil's JSON lines; counts match ids."""

    def __init__(self, proc):
        self.proc = proc
        self.ids = collections.Counter()
        self.bad = 0
        self.kinds = collections.Counter()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        for raw in self.proc.stdout:
            try:
                ev = json.loads(raw.decode('utf-8'))
            except (UnicodeDecodeError, ValueError):
                with self.cond:
                    self.bad += 1
                continue
            with self.cond:
                self.kinds[ev['kind']] += 1
                if ev['kind'] == 'match':
                    m = re.search(r'id=([SF]\d+)$', ev['line'])
                    self.ids[m.group(1) if m else '?' + ev['line'][:40]] += 1
                self.cond.notify_all()

    def wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))
            return True


class TestRotation(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='vigil-rot-')
        os.chmod(self.tmp, 0o700)  # logrotate refuses insecure parent folders
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout:
                p.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def rotate_while_writing(self, mode):
        if not os.access(LOGROTATE, os.X_OK):
            self.skipTest('logrotate is not installed (apt-get install logrotate)')
        log = os.path.join(self.tmp, 'app.log')
        conf = os.path.join(self.tmp, 'logrotate.conf')
        state = os.path.join(self.tmp, 'logrotate.state')
        with open(conf, 'w') as f:
            f.write('%s {\n    %s\n    rotate %d\n    missingok\n    nocompress\n}\n'
                    % (log, mode, ROTATIONS + 5))
        open(log, 'w').close()
        sleeper = self.start(['sleep', '600'])
        stderr = open(os.path.join(self.tmp, 'vigil.stderr'), 'w+')
        vigil = self.start([VIGIL, 'watch', '--pid', str(sleeper.pid), '--log', log,
                            '--from', 'start', '--success', r'completed id=S[0-9]+$',
                            '--failure', r'failed id=F[0-9]+$', '--json',
                            '--state-dir', os.path.join(self.tmp, 'state')],
                           stdout=subprocess.PIPE, stderr=stderr)
        col = Collector(vigil)
        self.assertTrue(col.wait(lambda: col.kinds['attached'] > 0, 10), 'vigil did not attach')

        writer = self.start([sys.executable, '-c', WRITER, log, mode, str(LINES), str(BATCH)],
                            stdout=subprocess.PIPE)
        rotations, next_at = 0, ROTATE_EVERY
        for out in writer.stdout:
            if int(out) >= next_at and rotations < ROTATIONS:
                r = subprocess.run([LOGROTATE, '-f', '-s', state, conf],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
                rotations += 1
                next_at += ROTATE_EVERY
        self.assertEqual(writer.wait(60), 0)
        self.assertEqual(rotations, ROTATIONS)
        rotated = [n for n in os.listdir(self.tmp) if n.startswith('app.log.')]
        self.assertEqual(len(rotated), ROTATIONS, 'logrotate did not rotate 20 times')

        expected = expected_ids()
        on_disk = ids_on_disk(self.tmp)
        col.wait(lambda: len(on_disk - set(col.ids)) == 0, 20)
        # then a little longer, so that a late duplicate would be seen
        col.wait(lambda: False, 1.0)
        alive = vigil.poll() is None
        vigil.terminate()
        vigil.wait(10)
        col.thread.join(10)
        stderr.seek(0)
        err = stderr.read()[-2000:]
        stderr.close()

        reported = set(col.ids)
        on_disk = ids_on_disk(self.tmp)
        lost_by_rotation = expected - on_disk   # copytruncate's copy-to-truncate window
        missing = on_disk - reported            # there to read, not reported: vigil's
        unexpected = reported - expected
        duplicated = sum(c - 1 for c in col.ids.values() if c > 1)
        print('\nrotation (%s): %d lines, %d rotations: expected %d, reported %d '
              '(distinct %d), missing %d, duplicated %d, unexpected %d, bad json %d; '
              'not on disk (lost by logrotate itself) %d, of those reported anyway %d'
              % (mode, LINES, rotations, len(expected), sum(col.ids.values()), len(reported),
                 len(missing), duplicated, len(unexpected), col.bad, len(lost_by_rotation),
                 len(lost_by_rotation & reported)))
        if missing:
            print('  missing id ranges (step 50): %s' % id_ranges(missing))
            print('  vigil stderr (end): %s' % err.strip()[-400:])
        if lost_by_rotation:
            print('  not on disk id ranges: %s' % id_ranges(lost_by_rotation))
        self.assertTrue(alive, 'vigil exited during the test: ' + err)
        self.assertEqual(col.bad, 0)
        self.assertEqual(unexpected, set())
        if mode == 'create':
            self.assertEqual(lost_by_rotation, set(), 'create mode loses nothing on disk')
        self.assertEqual(len(missing), 0, 'lines on disk that vigil did not report')
        self.assertEqual(duplicated, 0, 'lines reported twice')

    def test_logrotate_create(self):
        self.rotate_while_writing('create')

    def test_logrotate_copytruncate(self):
        self.rotate_while_writing('copytruncate')


if __name__ == '__main__':
    unittest.main(verbosity=2)
