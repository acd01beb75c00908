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
import signal
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

    def __init__(self, proc, id_re=r'id=([SF]\d+)$'):
        self.proc = proc
        self.id_re = id_re
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
                    m = re.search(self.id_re, ev['line'])
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
        # every match an event of its own, to be counted (no flood control)
        job = os.path.join(self.tmp, 'job.ini')
        with open(job, 'w') as f:
            f.write('[monitor]\nname = rot\nmatch_window = 0s\n')
        sleeper = self.start(['sleep', '600'])
        stderr = open(os.path.join(self.tmp, 'vigil.stderr'), 'w+')
        vigil = self.start([VIGIL, 'watch', '-c', job, '--pid', str(sleeper.pid), '--log', log,
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



class TestPausedRotation(unittest.TestCase):
    """vigil is stopped (SIGSTOP) while logrotate rotates the log three times,
    three times over, with each option: every line written is reported once
    when it goes on (compressed copies read through zlib); a copy deleted
    before vigil read it is reported as a warning with the bytes lost."""

    LINES_PER_STEP = 40

    def setUp(self):
        if not os.access(LOGROTATE, os.X_OK):
            self.skipTest('logrotate is not installed (apt-get install logrotate)')
        self.tmp = tempfile.mkdtemp(prefix='vigil-prot-')
        os.chmod(self.tmp, 0o700)  # logrotate refuses insecure parent folders
        self.log = os.path.join(self.tmp, 'app.log')
        self.next_id = 0
        self.fd = None
        self.vigil = None

    def tearDown(self):
        if self.vigil:
            if self.vigil.poll() is None:
                os.kill(self.vigil.pid, signal.SIGCONT)
                self.vigil.kill()
            self.vigil.wait()
            self.vigil.stdout.close()
        if self.fd is not None:
            os.close(self.fd)
        self.sleeper.kill()
        self.sleeper.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_lines(self, n):
        """Append n lines, each with its own id: reopening the log per write
        (create modes) or through one descriptor kept open (copytruncate)."""
        chunk = ''.join('line %d some output id=L%d\n' % (i, i)
                        for i in range(self.next_id, self.next_id + n)).encode()
        self.next_id += n
        if self.fd is not None:
            os.write(self.fd, chunk)
            return
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.write(fd, chunk)
        os.close(fd)

    def start_vigil(self):
        job = os.path.join(self.tmp, 'job.ini')
        with open(job, 'w') as f:
            f.write('[monitor]\nname = prot\nmatch_window = 0s\n')
        self.sleeper = subprocess.Popen(['sleep', '600'])
        self.stderr_path = os.path.join(self.tmp, 'vigil.stderr')
        with open(self.stderr_path, 'w') as stderr:
            self.vigil = subprocess.Popen(
                [VIGIL, 'watch', '-c', job, '--pid', str(self.sleeper.pid), '--log', self.log,
                 '--from', 'start', '--failure', r'id=L[0-9]+$', '--json',
                 '--state-dir', os.path.join(self.tmp, 'state')],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        col = Collector(self.vigil, r'id=(L\d+)$')
        self.assertTrue(col.wait(lambda: col.kinds['attached'] > 0, 30), 'vigil did not attach')
        return col

    def rotate(self, conf, dateext):
        if dateext:
            # one copy per second at most (LOG-DATE-SECONDS): wait for a second
            # after the one the last logrotate ended in (it may have named its
            # copy in that one, past the second it started in), and a tick
            # more (time() in C reads a coarse clock)
            last = int(getattr(self, 'rotated_at', 0))
            while int(time.time() - 0.05) <= last:
                time.sleep(0.02)
        r = subprocess.run([LOGROTATE, '-f', '-s', os.path.join(self.tmp, 'state.lr'), conf],
                           capture_output=True, text=True, timeout=30)
        self.rotated_at = time.time()
        self.assertEqual(r.returncode, 0, r.stderr)

    def paused_rotations(self, options, keep=20, copies_kept=True):
        """Three rounds of: stop vigil, three times (write, logrotate -f),
        write, continue vigil. Returns the collector and vigil's stderr."""
        conf = os.path.join(self.tmp, 'logrotate.conf')
        with open(conf, 'w') as f:
            f.write('%s {\n    %s\n    rotate %d\n    missingok\n    dateformat -%%Y%%m%%d-%%s\n}\n'
                    % (self.log, '\n    '.join(options), keep))
        open(self.log, 'w').close()
        if 'copytruncate' in options:
            self.fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        col = self.start_vigil()
        self.write_lines(self.LINES_PER_STEP)
        self.assertTrue(col.wait(lambda: len(col.ids) == self.next_id, 60), 'first lines')
        for _ in range(3):
            os.kill(self.vigil.pid, signal.SIGSTOP)
            for _ in range(3):
                self.write_lines(self.LINES_PER_STEP)
                self.rotate(conf, 'dateext' in options)
            self.write_lines(self.LINES_PER_STEP)
            os.kill(self.vigil.pid, signal.SIGCONT)
            # the last line written (in the log itself) is read last: then
            # vigil went through the copies; the next pause starts from there
            last = 'L%d' % (self.next_id - 1)
            self.assertTrue(col.wait(lambda: last in col.ids, 60), 'the last line')
        want = {'L%d' % i for i in range(self.next_id)}
        col.wait(lambda: False, 1.0)  # a little longer: a late duplicate would show
        self.assertIsNone(self.vigil.poll(), 'vigil exited during the test')
        self.vigil.terminate()
        self.vigil.wait(30)
        col.thread.join(30)
        with open(self.stderr_path) as f:
            err = f.read()
        reported = set(col.ids)
        missing = want - reported
        duplicated = sum(c - 1 for c in col.ids.values() if c > 1)
        print('\npaused rotation (%s): %d lines: reported %d, missing %d, repeated %d'
              % (', '.join(options), len(want), sum(col.ids.values()), len(missing),
                 duplicated))
        self.assertEqual(col.bad, 0)
        self.assertEqual(reported - want, set(), 'lines never written')
        self.assertEqual(duplicated, 0, 'lines reported twice: %s'
                         % sorted(k for k, c in col.ids.items() if c > 1)[:10])
        if copies_kept:
            self.assertEqual(sorted(missing), [], 'lines lost; stderr: ' + err[-600:])
        return col, err, missing

    def test_create(self):
        self.paused_rotations(['create'])

    def test_copytruncate(self):
        self.paused_rotations(['copytruncate'])

    def test_compress(self):
        self.paused_rotations(['create', 'compress'])

    def test_compress_delaycompress(self):
        self.paused_rotations(['create', 'compress', 'delaycompress'])

    def test_dateext(self):
        self.paused_rotations(['create', 'dateext'])

    def test_dateext_compress(self):
        self.paused_rotations(['create', 'dateext', 'compress'])

    def test_copytruncate_compress(self):
        self.paused_rotations(['copytruncate', 'compress'])

    def test_copytruncate_dateext_delaycompress(self):
        self.paused_rotations(['copytruncate', 'dateext', 'compress', 'delaycompress'])

    def test_copytruncate_fresh_log(self):
        """vigil has read nothing yet (empty log, offset 0): a burst written,
        copied and truncated while it is stopped is read from the copy."""
        conf = os.path.join(self.tmp, 'logrotate.conf')
        with open(conf, 'w') as f:
            f.write('%s {\n    copytruncate\n    rotate 5\n}\n' % self.log)
        open(self.log, 'w').close()
        self.fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        col = self.start_vigil()
        os.kill(self.vigil.pid, signal.SIGSTOP)
        self.write_lines(self.LINES_PER_STEP)
        self.rotate(conf, False)
        os.kill(self.vigil.pid, signal.SIGCONT)
        want = {'L%d' % i for i in range(self.next_id)}
        self.assertTrue(col.wait(lambda: set(col.ids) >= want, 60),
                        'burst lost: %s' % sorted(want - set(col.ids))[:5])
        col.wait(lambda: False, 1.0)
        self.assertEqual(sum(col.ids.values()), len(want), 'lines reported twice')

    def test_deleted_copy_warned(self):
        """rotate 1 and copytruncate: the copy holding what vigil had not read
        is deleted by the next rotations of the same pause: one warning per
        pause says so; the lines still on disk are reported once, and only
        the lines of the two deleted copies of each pause are missing."""
        col, err, missing = self.paused_rotations(['copytruncate'], keep=1, copies_kept=False)
        lost = [l for l in err.splitlines() if 'truncated' in l and 'lost' in l]
        self.assertEqual(len(lost), 3, err[-1000:])
        n = self.LINES_PER_STEP
        gone = set()
        for first in (n, 5 * n, 9 * n):   # each pause: the first two writes' copies
            gone |= {'L%d' % i for i in range(first, first + 2 * n)}
        self.assertEqual(sorted(missing), sorted(gone))


if __name__ == '__main__':
    unittest.main(verbosity=2)
