"""Hundreds of monitors that watch folders: one agent, 300 pid_file monitors or
300 [file] detectors, and every one of them starts and reports.

The kernel allows each user 128 inotify instances (fs.inotify.max_user_instances);
with one per monitor, an agent stopped starting monitors at about 120 ("cannot
start: inotify: Too many open files"). The pid and file plugins each share one
instance among all their monitors now. Some folders exist only later (the
detectors wait for them), and some monitors share a folder (their watches are
one kernel watch): real processes write the pid files, real files appear."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

N = 300
# Each kind in the test of both in one agent: over the limit alone too.
N_MIX = 150
# The last N_SHARED monitors watch one common folder, each its own file in it.
N_SHARED = 20
# Every LATE-th monitor's folder is made only after the agent has started.
LATE = 10
TOO_MANY = "Too many open files"
# Bound for all N to report (2 cores shared with other work).
REPORT_S = 120
# inotify instances the agent may hold: a few (the core's, one per plugin),
# never one per monitor.
FEW = 4


def inotify_instances(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:inotify"
        except OSError:
            pass
    return n


class Events:
    """The agent's JSON events, parsed once each as they come."""

    def __init__(self, agent):
        self.agent = agent
        self.done = 0  # characters of agent.out already parsed
        self.seen = []

    def pump(self):
        self.agent._pump(0.05)
        end = self.agent.out.rfind("\n") + 1
        self.seen += vt.json_lines(self.agent.out[self.done:end])
        self.done = end
        if TOO_MANY in self.agent.err:
            raise AssertionError("the agent ran out of inotify instances:\n" + self.agent.err)
        if not self.agent.running():
            raise AssertionError("the agent ended (status %s):\n%s"
                                 % (self.agent.p.returncode, self.agent.err[-4000:]))

    def monitors_with(self, kind):
        return {e["monitor"] for e in self.seen if e["kind"] == kind}

    def wait_all(self, kind, names):
        def all_there():
            self.pump()
            return not (names - self.monitors_with(kind))
        try:
            vt.wait_until(all_there, REPORT_S, 0.1, "%d monitors' %s" % (len(names), kind))
        except AssertionError:
            if TOO_MANY in self.agent.err or not self.agent.running():
                raise
            missing = sorted(names - self.monitors_with(kind))
            raise AssertionError("%d of %d monitors without %s: %s...\nstderr: %s"
                                 % (len(missing), len(names), kind, missing[:10],
                                    self.agent.err[-4000:]))


class ManyWatchesTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.ini = self.write_agent_ini()

    def layout(self, top, prefix, filename, n):
        """n watched paths under top: top/PREFIXi/FILENAME, the last N_SHARED in
        top/shared/. Returns {monitor: path}; folders made now but the late ones."""
        paths = {}
        for i in range(n):
            name = "%s%d" % (prefix, i)
            if i >= n - N_SHARED:
                folder, base = os.path.join(top, "shared"), "%d-%s" % (i, filename)
            else:
                folder, base = os.path.join(top, name), filename
            if i % LATE:
                os.makedirs(folder, exist_ok=True)
            paths[name] = os.path.join(folder, base)
        return paths

    def monitors(self, paths, body):
        for name, path in paths.items():
            with open(os.path.join(self.conf, name + ".ini"), "w") as f:
                f.write(body % path)
        return paths

    def pid_monitors(self, n):
        return self.monitors(self.layout(self.path("pids"), "p", "x.pid", n),
                             "[monitor]\npid_file = %s\n")

    def file_monitors(self, n):
        return self.monitors(self.layout(self.path("out"), "f", "out.txt", n),
                             "[monitor]\n[file out]\npath = %s\nstable_for = 0\n")

    def late_folders(self, paths):
        for path in paths.values():
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def pids_attach(self, ev, paths):
        """The late folders appear, then a process for each pid file writes it
        and stays (a shell blocked in `read` on a FIFO nobody writes: no child
        left behind when it is killed): every monitor attaches to its own."""
        self.late_folders(paths)
        fifo = vt.make_fifo(self.path("never"))
        pids = {}
        for name, path in paths.items():
            pids[name] = self.detached("echo $$ > %s; read x < %s" % (path, fifo))
            ev.pump()
        ev.wait_all("attached", set(paths))
        for e in ev.seen:
            if e["kind"] == "attached" and e["monitor"] in pids:
                self.assertEqual(e["pid"], pids[e["monitor"]], e)

    def files_appear(self, ev, paths):
        """Once every targetless run has begun, the late folders and then the
        files appear: every monitor reports its own."""
        ev.wait_all("attached", set(paths))
        self.late_folders(paths)
        for name, path in paths.items():
            with open(path, "w") as f:
                f.write(name + "\n")
        ev.wait_all("file", set(paths))
        for e in ev.seen:
            if e["kind"] == "file":
                self.assertEqual(e["path"], paths[e["monitor"]], e)

    def assertFewInstances(self, agent):
        self.assertNotIn(TOO_MANY, agent.err)
        self.assertLessEqual(inotify_instances(agent.p.pid), FEW)

    def test_many_pid_files(self):
        paths = self.pid_monitors(N)
        a = self.start_agent()
        self.pids_attach(Events(a), paths)
        self.assertFewInstances(a)

    def test_many_files(self):
        paths = self.file_monitors(N)
        a = self.start_agent()
        self.files_appear(Events(a), paths)
        self.assertFewInstances(a)

    def test_both_in_one_agent(self):
        """The two plugins' shared states side by side in one agent."""
        pids, files = self.pid_monitors(N_MIX), self.file_monitors(N_MIX)
        a = self.start_agent()
        ev = Events(a)
        self.files_appear(ev, files)
        self.pids_attach(ev, pids)
        self.assertFewInstances(a)


if __name__ == "__main__":
    unittest.main(verbosity=2)
