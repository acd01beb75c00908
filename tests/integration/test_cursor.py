#!/usr/bin/env python3
"""The log detector's position survives a restart (issue 12, item 3).

An agent is SIGKILLed while its job writes a burst of failure lines; lines
are written and the log is rotated by logrotate while no agent runs; a new
agent resumes from the saved position: every failure line is reported exactly
once over both agents' outputs, and the run's outcome is `failed`
(match_window = 0s: every match is an event of its own, to be counted).
The same holds for two `vigil watch -c` on one monitor and state folder."""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

import vigil_test as vt

LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"
FAILURE_EVERY = 5

# Reads commands on stdin: "W A B" appends lines A..B-1 (reopening the log per
# batch, as a writer that follows rename+create rotation does) and answers
# "done B"; "exit" ends it.
WRITER = r'''
import os, sys, time
path = sys.argv[1]
def line(i):
    if i %% %d == 0:
        return 'line %%06d job failed id=F%%d\n' %% (i, i)
    return 'line %%06d ordinary output\n' %% i
for cmd in sys.stdin:
    parts = cmd.split()
    if parts[0] == 'exit':
        break
    a, b = int(parts[1]), int(parts[2])
    for s in range(a, b, 10):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, ''.join(line(j) for j in range(s, min(s + 10, b))).encode())
        os.close(fd)
        time.sleep(0.001)
    print('done', b, flush=True)
''' % FAILURE_EVERY


def failure_ids(a, b):
    return {"F%d" % i for i in range(a, b) if i % FAILURE_EVERY == 0}


def match_ids(text):
    ids = collections.Counter()
    for ev in vt.json_lines(text):
        if ev.get("kind") == "match":
            m = re.search(r"id=(F\d+)$", ev["line"])
            ids[m.group(1) if m else ev["line"]] += 1
    return ids


def in_epoll_wait(pid):
    """A stopped process parked in its loop's epoll wait, between two turns."""
    with open("/proc/%d/wchan" % pid) as f:
        return "epoll" in f.read()


class TestCursor(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.log = self.path("logs", "app.log")
        os.mkdir(self.path("logs"), 0o700)  # logrotate refuses insecure folders
        open(self.log, "w").close()
        self.writer = subprocess.Popen([sys.executable, "-c", WRITER, self.log],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.writer.wait)
        self.addCleanup(self.writer.kill)

    def write_lines(self, a, b, wait=True):
        self.writer.stdin.write("W %d %d\n" % (a, b))
        self.writer.stdin.flush()
        if wait:
            self.assertEqual(self.writer.stdout.readline().split(), ["done", str(b)])

    def rotate(self):
        if not os.access(LOGROTATE, os.X_OK):
            self.skipTest("logrotate is not installed")
        conf = self.write("lr.conf", "%s {\n    create\n    rotate 5\n    nocompress\n}\n"
                          % self.log)
        r = subprocess.run([LOGROTATE, "-f", "-s", self.path("lr.state"), conf],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def kill_between_turns(self, p):
        """SIGKILL p between two loop turns: what it reported is what it saved
        (a kill inside a turn may repeat that turn's lines)."""
        for _ in range(1000):
            os.kill(p.pid, signal.SIGSTOP)
            vt.wait_until(lambda: vt.proc_state(p.pid) in ("T", "t"), what="stopped")
            if in_epoll_wait(p.pid):
                break
            os.kill(p.pid, signal.SIGCONT)
        p.kill()
        p.wait(vt.TIMEOUT)

    def monitor_ini(self):
        return self.write("conf.d/m.ini", "[monitor]\npid = %d\nnotify = json\nmatch_window = 0s\n\n[log]\n"
                          "path = %s\nfailure = failed id=F[0-9]+$\n"
                          % (self.writer.pid, self.log))

    def agent(self, n):
        """An agent writing its events to a file: a pipe that the test does not
        read fast enough would hold them in the agent, and a SIGKILL lose them."""
        ini = self.write("vigil.ini", "[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s\n"
                         % (self.path("conf.d"), self.state, self.path("spool")))
        out = self.path("agent%d.out" % n)
        with open(out, "w") as f, open(self.path("agent%d.err" % n), "w") as e:
            a = subprocess.Popen([vt.VIGIL, "agent", "--plugin-dir", vt.PLUGIN_DIR,
                                  "--config", ini], stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=e, env=self.env, cwd=self.tmp)
        self.addCleanup(a.wait)
        self.addCleanup(a.kill)
        self.wait_out(n, '"attached"')
        return a

    def read_out(self, n, name="out"):
        with open(self.path("agent%d.%s" % (n, name))) as f:
            return f.read()

    def wait_out(self, n, needle):
        vt.wait_until(lambda: needle in self.read_out(n), vt.TIMEOUT, what=needle)
        return self.read_out(n)

    def check_once(self, outs, total):
        ids = collections.Counter()
        for text in outs:
            ids.update(match_ids(text))
        want = failure_ids(0, total)
        print("\ncursor: %d failure lines written, %d reported (distinct %d), missing %d, "
              "repeated %d" % (len(want), sum(ids.values()), len(ids), len(want - set(ids)),
                               sum(c - 1 for c in ids.values() if c > 1)))
        self.assertEqual(set(ids) - want, set(), "reported what was never written")
        missing = sorted(int(i[1:]) for i in want - set(ids))
        self.assertEqual(missing, [], "failure lines not reported")
        self.assertEqual([i for i, c in ids.items() if c > 1], [], "reported twice")

    def test_agent_killed_during_burst(self):
        os.mkdir(self.path("conf.d"))
        self.monitor_ini()
        a1 = self.agent(1)
        self.write_lines(0, 3000, wait=False)
        self.wait_out(1, '"match"')
        self.kill_between_turns(a1)
        self.assertEqual(self.writer.stdout.readline().split(), ["done", "3000"])
        # while no agent runs: more lines, a rotation, more lines
        self.write_lines(3000, 4000)
        self.rotate()
        self.write_lines(4000, 5000)
        a2 = self.agent(2)
        self.wait_out(2, "id=F4995")
        self.writer.stdin.write("exit\n")
        self.writer.stdin.flush()
        self.writer.wait(vt.TIMEOUT)
        fin = [e for e in vt.json_lines(self.wait_out(2, '"finished"'))
               if e["kind"] == "finished"][0]
        a2.terminate()
        a2.wait(vt.TIMEOUT)
        self.assertNoCrash(self.read_out(1, "err") + self.read_out(2, "err"))
        self.check_once([self.read_out(1), self.read_out(2)], 5000)
        self.assertEqual(fin["outcome"], "failed")

    def test_watch_again_resumes(self):
        ini = self.write("job.ini", "[monitor]\nname = job\npid = %d\nmatch_window = 0s\n\n[log]\npath = %s\n"
                         "failure = failed id=F[0-9]+$\n" % (self.writer.pid, self.log))
        w1 = self.start("watch", "--plugin-dir", vt.PLUGIN_DIR, "-c", ini, "--notify", "json")
        w1.wait_json("attached")
        self.write_lines(0, 1000)
        w1.wait_for("out", lambda l: "id=F995" in l, what="the first lines")
        w1.stop()
        self.write_lines(1000, 2000)
        self.rotate()
        self.write_lines(2000, 2500)
        w2 = self.start("watch", "--plugin-dir", vt.PLUGIN_DIR, "-c", ini, "--notify", "json")
        w2.wait_for("out", lambda l: "id=F2495" in l, what="the lines written meanwhile")
        w2.stop()
        self.assertNoCrash(w1.err + w2.err)
        self.check_once([w1.out, w2.out], 2500)


if __name__ == "__main__":
    unittest.main(verbosity=2)
