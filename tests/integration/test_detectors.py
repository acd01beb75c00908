#!/usr/bin/env python3
"""Detectors and policies end to end: the real binary, real writers, real files.

Each test runs `vigil watch ... --json` as a subprocess and reads its JSON lines
(every line must parse: that is how invalid UTF-8 in a log is checked too).
Every wait is bounded; waits are on events, not on sleeps.
"""
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
EXAMPLES = os.path.join(SOURCE_ROOT, 'conf', 'examples')
WAIT = 15.0  # upper bound for any single wait


class Watch:
    """A `vigil watch` subprocess whose stdout JSON lines are collected."""

    def __init__(self, args, tmp, json_flag=True):
        self.events = []  # (monotonic time, dict)
        self.bad = []     # lines that were not valid UTF-8 JSON
        self.cond = threading.Condition()
        argv = [VIGIL, 'watch'] + list(args) + ['--state-dir', os.path.join(tmp, 'state')]
        if json_flag:
            argv.append('--json')
        self.stderr_path = os.path.join(tmp, 'vigil-%d.stderr' % id(self))
        self.stderr = open(self.stderr_path, 'wb')
        env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, 'xdg-state'),
                   XDG_RUNTIME_DIR=os.path.join(tmp, 'xdg-run'))
        os.makedirs(env['XDG_RUNTIME_DIR'], exist_ok=True)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr,
                                     stdin=subprocess.DEVNULL, env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            now = time.monotonic()
            try:
                ev = json.loads(raw.decode('utf-8'))
            except (UnicodeDecodeError, ValueError):
                with self.cond:
                    self.bad.append(raw)
                    self.cond.notify_all()
                continue
            with self.cond:
                self.events.append((now, ev))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def kinds(self):
        with self.cond:
            return [e['kind'] for _, e in self.events]

    def of_kind(self, kind):
        with self.cond:
            return [e for _, e in self.events if e['kind'] == kind]

    def wait_for(self, pred, timeout=WAIT, what='event'):
        """First event matching pred (already seen or to come), with its arrival time."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, e in self.events:
                    if pred(e):
                        return t, e
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    raise AssertionError('no %s within %.0fs; got %s; stderr: %s' % (
                        what, timeout, [e['kind'] for _, e in self.events], self.err()))
                self.cond.wait(min(left, 0.2))

    def wait_kind(self, kind, timeout=WAIT):
        return self.wait_for(lambda e: e['kind'] == kind, timeout, kind)

    def wait_count(self, kind, n, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while sum(1 for _, e in self.events if e['kind'] == kind) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError('fewer than %d %s events within %.0fs: %s' % (
                        n, kind, timeout, [e['kind'] for _, e in self.events]))
                self.cond.wait(min(left, 0.2))

    def count(self, pred):
        with self.cond:
            return sum(1 for _, e in self.events if pred(e))

    def wait_exit(self, timeout=WAIT):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = 'still running %.0fs after finished (killed)' % timeout
        self.reader.join(timeout)
        return rc

    def err(self):
        self.stderr.flush()
        with open(self.stderr_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')[-2000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        self.proc.stdout.close()
        self.stderr.close()


def python_job(code):
    """A child Python process running `code` (the job being watched)."""
    return subprocess.Popen([sys.executable, '-c', code], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE)


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='vigil-det-')
        self.procs = []
        self.watches = []

    def tearDown(self):
        self.doCleanups()  # umounts first, so rmtree below can remove the folders
        for w in self.watches:
            w.close()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stdout:
                p.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def watch(self, *args, json_flag=True):
        w = Watch(args, self.tmp, json_flag)
        self.watches.append(w)
        return w

    def job(self, code):
        p = python_job(code)
        self.procs.append(p)
        return p

    def sleeper(self, secs=120):
        p = subprocess.Popen(['sleep', str(secs)], stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def log_watch(self, log, *extra):
        """A watch on a long-lived sleeper following `log` from its start."""
        s = self.sleeper()
        return self.watch('--pid', str(s.pid), '--log', log, '--from', 'start', *extra)

    def assert_json_clean(self, w):
        self.assertEqual(w.bad, [], 'vigil printed lines that are not UTF-8 JSON')


SLOW_WRITER = r'''
import os, sys, time
path, n = sys.argv[1] if len(sys.argv) > 1 else %r, 5
time.sleep(0.3)
with open(path, 'w') as f:            # one descriptor, as json.dump would
    for i in range(n):
        f.write('{"chunk": %%d, "pad": "%%s"}\n' %% (i, 'x' * 1000))
        f.flush()
        time.sleep(0.3)
    print('last-write', os.path.getsize(path), flush=True)
time.sleep(0.2)
sys.exit(0)
'''


class TestFile(Base):
    def test_slow_writer_succeeds_once_stable(self):
        out = self.path('out.json')
        job = self.job(SLOW_WRITER % out)
        w = self.watch('--pid', str(job.pid), '--file', out, '--stable-for', '1s')
        line = job.stdout.readline().decode()
        t_last = time.monotonic()
        self.assertTrue(line.startswith('last-write'), line)
        size = int(line.split()[1])
        t_file, ev = w.wait_kind('file')
        self.assertEqual(ev['path'], out)
        self.assertEqual(ev['size'], size, 'file reported before the writer was done')
        self.assertGreaterEqual(t_file, t_last - 0.05)
        t_fin, fin = w.wait_kind('finished')
        self.assertEqual(w.wait_exit(), 0, w.err())
        self.assertEqual(fin['outcome'], 'succeeded')
        self.assertIn(out, fin['reason'])
        kinds = w.kinds()
        self.assertLess(kinds.index('file'), kinds.index('finished'))
        self.assertEqual(kinds.count('file'), 1)
        self.assert_json_clean(w)

    def test_job_without_file_fails_naming_it(self):
        out = self.path('never.json')
        job = self.job('import time; time.sleep(0.5)')
        w = self.watch('--pid', str(job.pid), '--file', out, '--stable-for', '1s')
        _, fin = w.wait_kind('finished')
        self.assertEqual(w.wait_exit(), 1, w.err())
        self.assertEqual(fin['outcome'], 'failed')
        self.assertEqual(fin['exit_code'], 0)
        self.assertEqual(w.of_kind('file'), [])
        self.assertIn(out, fin['reason'], 'the reason should name the missing file')


class TestLog(Base):
    def test_pattern_split_across_two_writes(self):
        log = self.path('app.log')
        open(log, 'wb').close()
        w = self.log_watch(log, '--success', 'job completed id=42$', '--failure', 'sentinel')
        w.wait_kind('attached')
        with open(log, 'ab', buffering=0) as f:
            f.write(b'noise line\njob comp')
            # vigil sees the partial line: it must neither match nor drop it
            time.sleep(0.5)  # the scenario: vigil reads the half line first
            self.assertEqual(w.of_kind('match'), [])
            f.write(b'leted id=42\n')
        _, ev = w.wait_kind('match')
        self.assertEqual(ev['pattern'], 'success')
        self.assertEqual(ev['line'], 'job completed id=42')
        with open(log, 'ab') as f:
            f.write(b'sentinel failed\n')
        w.wait_for(lambda e: e['kind'] == 'match' and 'sentinel' in e['line'])
        self.assertEqual(w.count(lambda e: e['kind'] == 'match'), 2, w.of_kind('match'))
        self.assert_json_clean(w)

    def test_ten_megabyte_line(self):
        log = self.path('big.log')
        open(log, 'wb').close()
        w = self.log_watch(log, '--failure', 'failed', '--success', 'after completed')
        w.wait_kind('attached')
        with open(log, 'ab') as f:
            f.write(b'step failed: ' + b'A' * (10 * 1024 * 1024) + b'\n')
            f.write(b'after completed\n')
        _, big = w.wait_for(lambda e: e['kind'] == 'match' and e['pattern'] == 'failure')
        self.assertTrue(big.get('truncated'), 'a 10 MB line must be flagged truncated')
        self.assertTrue(big['line'].startswith('step failed: AAAA'))
        self.assertLess(len(big['line']), 1024 * 1024)
        _, after = w.wait_for(lambda e: e['kind'] == 'match' and e['pattern'] == 'success')
        self.assertEqual(after['line'], 'after completed')
        self.assertFalse(after.get('truncated'))
        self.assertIsNone(w.proc.poll(), 'vigil died: ' + w.err())
        self.assertEqual(w.count(lambda e: e['kind'] == 'match'), 2)
        self.assert_json_clean(w)

    def test_invalid_utf8_in_matched_line(self):
        log = self.path('bin.log')
        open(log, 'wb').close()
        w = self.log_watch(log, '--failure', 'error')
        w.wait_kind('attached')
        with open(log, 'ab') as f:
            f.write(b'error \xff\xfe\xc3( bad \x00 \x1b[31m id=7\n')
            f.write(b'error plain id=8\n')
        w.wait_for(lambda e: e['kind'] == 'match' and 'id=8' in e['line'])
        _, ev = w.wait_for(lambda e: e['kind'] == 'match' and 'id=7' in e['line'])
        self.assertTrue(ev['line'].startswith('error '))
        # the event round-trips through JSON as valid UTF-8
        json.loads(json.dumps(ev, ensure_ascii=False).encode('utf-8').decode('utf-8'))
        self.assert_json_clean(w)

    def test_log_deleted_and_recreated(self):
        log = self.path('re.log')
        with open(log, 'wb') as f:
            f.write(b'start\n')
        w = self.log_watch(log, '--failure', 'failed id=[0-9]+')
        w.wait_kind('attached')
        with open(log, 'ab') as f:
            f.write(b'first failed id=1\n')
        w.wait_for(lambda e: e['kind'] == 'match' and 'id=1' in e['line'])
        os.unlink(log)
        with open(log, 'wb') as f:
            f.write(b'second failed id=2\n')
        w.wait_for(lambda e: e['kind'] == 'match' and 'id=2' in e['line'])
        os.unlink(log)
        with open(log, 'wb') as f:
            f.write(b'third failed id=3\n')
        w.wait_for(lambda e: e['kind'] == 'match' and 'id=3' in e['line'])
        ids = sorted(re.search(r'id=(\d+)', e['line']).group(1) for e in w.of_kind('match'))
        self.assertEqual(ids, ['1', '2', '3'])
        self.assert_json_clean(w)

    def test_log_that_does_not_exist_yet(self):
        log = self.path('later', 'app.log')
        w = self.log_watch(log, '--success', 'ready id=9')
        w.wait_kind('attached')
        os.makedirs(os.path.dirname(log))
        with open(log, 'wb') as f:
            f.write(b'ready id=9\n')
        w.wait_for(lambda e: e['kind'] == 'match' and 'id=9' in e['line'])

    def test_stalled_once_then_again_after_output(self):
        log = self.path('stall.log')
        with open(log, 'wb') as f:
            f.write(b'working\n')
        w = self.log_watch(log, '--stall', '1s')
        t0, _ = w.wait_kind('attached')
        t1, ev = w.wait_kind('stalled', 5)
        self.assertGreaterEqual(ev['silent_for'], 0.9)
        # silent for 2.5 s more: still one stalled event, not one per second
        time.sleep(2.5)
        self.assertEqual(len(w.of_kind('stalled')), 1, w.kinds())
        with open(log, 'ab') as f:
            f.write(b'more output\n')
        w.wait_count('stalled', 2, 5)


IGNORE_TERM = r'''
import signal, time, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print('ready', flush=True)
time.sleep(60)
'''


class TestPolicies(Base):
    def test_timeout_term_then_kill_after_grace(self):
        job = self.job(IGNORE_TERM)
        self.assertEqual(job.stdout.readline().strip(), b'ready')
        w = self.watch('--pid', str(job.pid), '--timeout', '1s', '--on-timeout', 'term',
                       '--kill-grace', '1s')
        t_to, to = w.wait_kind('timeout')
        self.assertEqual(to['limit'], 1)
        t_ex, ex = w.wait_kind('exited')
        _, fin = w.wait_kind('finished')
        self.assertEqual(w.wait_exit(), 3, w.err())
        self.assertEqual(job.wait(5), -signal.SIGKILL, 'SIGTERM is ignored: only SIGKILL ends it')
        self.assertEqual(ex['signal'], 'SIGKILL')
        self.assertGreaterEqual(t_ex - t_to, 0.9, 'killed before the grace was over')
        self.assertLess(t_ex - t_to, 5)
        self.assertEqual(fin['outcome'], 'timed_out')
        print('\ntimeout: timeout->exited %.3fs, kinds %s' % (t_ex - t_to, w.kinds()))


class TestPressure(Base):
    def monitor_file(self, pid, body):
        ini = self.path('mon.ini')
        with open(ini, 'w') as f:
            f.write('[monitor]\nname = pressure-test\npid = %d\n\n[pressure]\n%s' % (pid, body))
        return ini

    def test_disk_threshold_on_tmpfs(self):
        if os.geteuid() != 0:
            self.skipTest('needs root to mount a small tmpfs')
        mnt = self.path('mnt')
        os.mkdir(mnt)
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'vigil-test', mnt],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest('cannot mount tmpfs here: ' + r.stderr.decode().strip())
        self.addCleanup(subprocess.run, ['umount', '-l', mnt])
        s = self.sleeper()
        ini = self.monitor_file(s.pid, 'disk = %s:4M\ninterval = 100ms\nhysteresis = 5%%\n' % mnt)
        w = self.watch('-c', ini)
        w.wait_kind('attached')
        fill = os.path.join(mnt, 'fill')
        with open(fill, 'wb') as f:
            f.write(b'\0' * (6 * 1024 * 1024))
        _, p = w.wait_kind('pressure')
        self.assertEqual(p['resource'], 'disk')
        self.assertEqual(p['path'], mnt)
        os.unlink(fill)
        _, rec = w.wait_kind('recovered')
        self.assertEqual(rec['resource'], 'disk')
        self.assertEqual(len(w.of_kind('pressure')), 1)
        print('\ndisk (tmpfs 8M, min free 4M): %s' % w.kinds())

    def write_meminfo(self, proc, avail_kb):
        tmp = os.path.join(proc, 'meminfo.tmp')
        with open(tmp, 'w') as f:
            f.write('MemTotal:        8000000 kB\nMemFree:          100000 kB\n'
                    'MemAvailable:    %d kB\nBuffers:           1000 kB\n' % avail_kb)
        os.rename(tmp, os.path.join(proc, 'meminfo'))

    def test_memory_threshold_through_proc_dir(self):
        proc = self.path('proc')
        os.mkdir(proc)
        self.write_meminfo(proc, 4000000)
        s = self.sleeper()
        ini = self.monitor_file(s.pid, 'memory = 1G\nproc_dir = %s\ninterval = 100ms\n' % proc)
        w = self.watch('-c', ini)
        w.wait_kind('attached')
        time.sleep(0.5)  # several samples above the threshold: no event
        self.assertEqual(w.of_kind('pressure'), [])
        self.write_meminfo(proc, 500000)
        _, p = w.wait_kind('pressure')
        self.assertEqual(p['resource'], 'memory')
        # just above the threshold, inside the hysteresis band: no recovery yet
        self.write_meminfo(proc, 1060000)
        time.sleep(0.5)
        self.assertEqual(w.of_kind('recovered'), [], 'recovered inside the hysteresis band')
        self.write_meminfo(proc, 4000000)
        w.wait_kind('recovered')
        self.assertEqual(len(w.of_kind('pressure')), 1)
        print('\nmemory (fake meminfo): %s' % w.kinds())


class TestExamples(Base):
    def examples(self):
        names = sorted(n for n in os.listdir(EXAMPLES) if n.endswith('.ini'))
        self.assertGreaterEqual(len(names), 3)
        return names

    def test_examples_check_ok(self):
        for name in self.examples():
            p = os.path.join(EXAMPLES, name)
            r = subprocess.run([VIGIL, 'check', p], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn('OK', r.stdout + r.stderr)

    def rewrite(self, name, subs):
        with open(os.path.join(EXAMPLES, name)) as f:
            text = f.read()
        for pat, rep in subs:
            text, n = re.subn(pat, lambda m: rep, text, flags=re.M)
            self.assertGreater(n, 0, '%s: %s not found' % (name, pat))
        out = self.path(name)
        with open(out, 'w') as f:
            f.write(text)
        r = subprocess.run([VIGIL, 'check', out], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return out

    def report(self, name, w, rc):
        print('\nexample %s: exit %s, events: %s' % (name, rc, ' '.join(w.kinds())))
        for e in w.of_kind('finished'):
            print('  finished: %s (%s)' % (e['outcome'], e['reason']))

    def test_database_export_example(self):
        data = self.path('data')
        os.mkdir(data)
        pidf, log = self.path('db-export.pid'), self.path('db-export.log')
        ini = self.rewrite('database-export.ini', [
            (r'^pid_file = \S+', 'pid_file = ' + pidf),
            (r'^path = /data/export/', 'path = %s/' % data),
            (r'^path = /var/log/db-export.log', 'path = ' + log),
            (r'^stable_for = 5s', 'stable_for = 500ms'),
            (r'^notify = stdout', 'notify = json'),
        ])
        open(log, 'w').close()
        w = self.watch('-c', ini, json_flag=False)
        job = self.job(r'''
import os, time
open(%r, 'w').write('%%d\n' %% os.getpid())
time.sleep(0.5)
log = open(%r, 'a', buffering=1)
log.write('export started\n')
with open(%r, 'w') as out:
    for pct in (25, 50, 75, 100):
        out.write('{"rows": [%%s]}\n' %% ','.join(['1'] * 400)); out.flush()
        log.write('%%d%%%% done\n' %% pct)
        time.sleep(0.2)
log.write('export completed\n')
time.sleep(0.8)
''' % (pidf, log, os.path.join(data, 'export-20240101.json')))
        _, fin = w.wait_kind('finished', 20)
        rc = w.wait_exit(5)
        job.wait(5)
        self.report('database-export.ini', w, rc)
        self.assertEqual(fin['outcome'], 'succeeded', fin)
        self.assertEqual(rc, 0)
        kinds = w.kinds()
        for k in ('attached', 'progress', 'file', 'match', 'exited', 'finished'):
            self.assertIn(k, kinds)

    def test_backup_example(self):
        target = self.path('backup')
        os.mkdir(target)
        mounted = False
        if os.geteuid() == 0:
            mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=8m', 'vigil-bk', target],
                                     capture_output=True).returncode == 0
            if mounted:
                self.addCleanup(subprocess.run, ['umount', '-l', target])
        ini = self.rewrite('backup.ini', [
            (r'^match = .*$', 'match = ^fake-restic-backup'),
            (r'^disk = /backup:', 'disk = %s:' % target),
            (r'^inodes = /backup:', 'inodes = %s:' % target),
            (r'^disk = /:2G', 'disk = /:1K'),  # this machine's root: not the point here
            (r'^interval = 30s', 'interval = 100ms'),
            (r'^notify = stdout', 'notify = json'),
        ])
        # a backup writing 7.8 MB into the (8 MB when mounted) target, then cleaning up
        script = self.path('fake-restic-backup')
        with open(script, 'w') as f:
            f.write('#!/bin/sh\nsleep 0.5\nhead -c 7800000 /dev/zero > %s/blob\n'
                    'sleep 1\nrm %s/blob\nsleep 1\nexit 0\n' % (target, target))
        os.chmod(script, 0o755)
        job = subprocess.Popen(['bash', '-c', 'exec -a fake-restic-backup sh %s' % script])
        self.procs.append(job)
        w = self.watch('-c', ini, json_flag=False)
        _, fin = w.wait_kind('finished', 20)
        rc = w.wait_exit(5)
        self.report('backup.ini', w, rc)
        kinds = w.kinds()
        self.assertIn('attached', kinds)
        if mounted:
            self.assertEqual(kinds.count('pressure'), 1, kinds)
            self.assertEqual(kinds.count('recovered'), 1, kinds)
        self.assertEqual(fin['outcome'], 'succeeded', fin)
        self.assertEqual(rc, 0, 'vigil watch should exit with the outcome')

    def test_build_example(self):
        log = self.path('build.log')
        script = self.path('fake-make.sh')
        with open(script, 'w') as f:
            f.write('#!/bin/sh\nexec >> %s 2>&1\nfor p in 10 40 70 100; do\n'
                    '  echo "[ $p%%] Building CXX object src/f$p.o"; sleep 0.2\ndone\n'
                    'echo "BUILD SUCCESSFUL"\n' % log)
        ini = self.rewrite('build.ini', [
            (r'^command = .*$', 'command = sh ' + script),
            (r'^path = /var/log/build/build.log', 'path = ' + log),
            (r'^notify = stdout', 'notify = json'),
        ])
        w = self.watch('-c', ini, json_flag=False)
        _, fin = w.wait_kind('finished', 20)
        rc = w.wait_exit()
        self.report('build.ini', w, rc)
        self.assertEqual(fin['outcome'], 'succeeded', fin)
        # progress is coalesced to one event a second: first, increasing, last
        values = [e['value'] for e in w.of_kind('progress')]
        self.assertEqual(values[0], 10)
        self.assertEqual(values[-1], 100)
        self.assertEqual(values, sorted(values))

    def test_build_example_failing(self):
        log = self.path('build.log')
        script = self.path('fake-make.sh')
        with open(script, 'w') as f:
            f.write('#!/bin/sh\nexec >> %s 2>&1\necho "[ 10%%] Building"\n'
                    'echo "src/a.c:3:1: error: expected ;"\n'
                    'echo "make: *** [all] Error 1"\nexit 2\n' % log)
        ini = self.rewrite('build.ini', [
            (r'^command = .*$', 'command = sh ' + script),
            (r'^path = /var/log/build/build.log', 'path = ' + log),
            (r'^notify = stdout', 'notify = json'),
        ])
        w = self.watch('-c', ini, json_flag=False)
        _, fin = w.wait_kind('finished', 20)
        rc = w.wait_exit()
        self.report('build.ini (failing build)', w, rc)
        self.assertEqual(rc, 1)
        self.assertEqual(fin['outcome'], 'failed')
        self.assertEqual(fin['exit_code'], 2)


if __name__ == '__main__':
    unittest.main(verbosity=2)
