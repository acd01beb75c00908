#!/usr/bin/python3
"""vigil watch on processes that are not its children (issue 2).

The watched process is started detached, in its own session, by an intermediate
shell that exits at once: neither the test nor vigil is its parent, so waitid()
cannot give its exit status. Each one blocks reading a FIFO until vigil has
printed "attached", so no run depends on timing.

Where the exit status of a non-child comes from: the kernel's process-events
connector (netlink). Before Linux 6.6 listening needed CAP_NET_ADMIN; since 6.6
(commit "connector/cn_proc: Allow non-root users access") any user may listen.
So dropping privileges (setpriv to another uid, or capsh --drop=cap_net_admin)
does NOT take the connector away on a current kernel. What reliably does is a
new network namespace: the connector's kernel socket exists only in the initial
one, so vigil's subscription fails and the exit status must be reported as
unknown. The "no connector" tests therefore run vigil as an unprivileged user
inside `unshare --net`; a separate test checks that, in the initial namespace,
an unprivileged vigil reports exactly what the kernel lets it see.
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


def events(text):
    return {e["kind"]: e for e in vt.json_lines(text)}


class WatchCase(vt.VigilTestCase):
    def blocker(self, then="", user=None, name="go"):
        """A detached process blocked on a FIFO; writing to it runs `then`."""
        fifo = vt.make_fifo(self.path(name))
        pid = self.detached("read x < %s%s" % (fifo, "; " + then if then else ""), user=user)
        return pid, fifo

    def watch(self, pid, *extra, exe=None, prefix=(), env=None, state=None):
        return self.start("watch", "--pid", pid, "--json", "--state-dir", state or self.state,
                          *extra, exe=exe, prefix=prefix, env=env)

    def check_attached(self, p, pid):
        att = p.wait_json("attached")
        self.assertEqual(att["pid"], pid)
        self.assertEqual(att["v"], 1)
        return att


class TestWatchNonChild(WatchCase):
    """As root: the connector gives the exit status of any process."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("exit status of a non-child needs the process connector (run as root)")

    def run_to_end(self, then, kill=None):
        pid, fifo = self.blocker(then)
        p = self.watch(pid)
        self.check_attached(p, pid)
        if kill:
            os.kill(pid, kill)
        else:
            vt.release_fifo(fifo)
        rc = p.finish()
        self.assertNoCrash(p.err)
        ev = events(p.out)
        self.assertIn("exited", ev, p.out + p.err)
        self.assertIn("finished", ev, p.out + p.err)
        self.assertEqual(ev["exited"]["pid"], pid)
        self.assertEqual(ev["finished"]["pid"], pid)
        return rc, ev, p

    def test_exit_3_is_failed(self):
        rc, ev, p = self.run_to_end("exit 3")
        self.assertEqual(ev["exited"]["exit_code"], 3, p.out)
        self.assertIsNone(ev["exited"]["signal"])
        self.assertEqual(ev["finished"]["outcome"], "failed")
        self.assertEqual(ev["finished"]["exit_code"], 3)
        self.assertEqual(rc, 1, p.err)

    def test_exit_0_is_succeeded(self):
        rc, ev, p = self.run_to_end("exit 0")
        self.assertEqual(ev["exited"]["exit_code"], 0, p.out)
        self.assertEqual(ev["finished"]["outcome"], "succeeded")
        self.assertEqual(rc, 0, p.err)

    def test_sigkill_is_failed(self):
        rc, ev, p = self.run_to_end("exit 0", kill=signal.SIGKILL)
        self.assertIsNone(ev["exited"]["exit_code"], p.out)
        self.assertEqual(ev["exited"]["signal"], "SIGKILL")
        self.assertEqual(ev["finished"]["signal"], "SIGKILL")
        self.assertEqual(ev["finished"]["outcome"], "failed")
        self.assertEqual(rc, 1, p.err)

    def test_bare_pid_argument(self):
        """`vigil watch --json PID` is the same as --pid PID."""
        pid, fifo = self.blocker("exit 3")
        p = self.start("watch", "--json", "--state-dir", self.state, pid)
        self.check_attached(p, pid)
        vt.release_fifo(fifo)
        self.assertEqual(p.finish(), 1, p.err)
        self.assertEqual(events(p.out)["finished"]["exit_code"], 3)


def kernel_lets_user_listen(user, home):
    """Can this user subscribe to the process connector (Linux >= 6.6), here?"""
    probe = ("import socket\n"
             "s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)\n"  # NETLINK_CONNECTOR
             "s.bind((0, 1))\n")                                                # CN_IDX_PROC
    r = vt.run(user.cmd([sys.executable, "-c", probe]), env=user.env(home))
    return r.returncode == 0


class TestWatchUnprivileged(WatchCase):
    """vigil as a throwaway user, watching that user's process (not its child)."""

    def setUp(self):
        super().setUp()
        why = vt.user_tools_missing()
        if why:
            self.skipTest(why)
        self.user = vt.make_user(self)
        # The build tree may be unreadable to the user (e.g. under /root).
        self.exe = vt.install_copy(self.path("inst"))
        self.ustate = self.path("ustate")
        os.mkdir(self.ustate, 0o700)
        os.chown(self.ustate, self.user.uid, self.user.gid)
        self.uenv = self.user.env(self.tmp, self.ustate)

    def assert_unprivileged(self, pid):
        with open("/proc/%d/status" % pid) as f:
            st = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        self.assertEqual(int(st["Uid"].split()[1]), self.user.uid)
        self.assertEqual(int(st["CapEff"].strip(), 16), 0, "vigil still has capabilities")

    def watch_as_user(self, then, netns):
        pid, fifo = self.blocker(then, user=self.user)
        p = self.watch(pid, exe=self.exe, prefix=self.user.cmd([], netns=netns),
                       env=self.uenv, state=self.ustate)
        self.check_attached(p, pid)
        self.assert_unprivileged(p.p.pid)
        vt.release_fifo(fifo)
        rc = p.finish()
        self.assertNoCrash(p.err)
        return rc, events(p.out), p

    def test_no_connector_means_unknown(self):
        r = vt.run(["unshare", "--net", "--", "true"])
        if r.returncode != 0:
            self.skipTest("cannot create a network namespace here: " + r.stderr.strip())
        rc, ev, p = self.watch_as_user("exit 3", netns=True)
        self.assertIn("finished", ev, p.out + p.err)
        self.assertIsNone(ev["exited"]["exit_code"], p.out)
        self.assertIsNone(ev["exited"]["signal"])
        self.assertIsNone(ev["finished"]["exit_code"])
        self.assertEqual(ev["finished"]["outcome"], "unknown")
        self.assertEqual(rc, 4, p.err)
        # It says why, instead of guessing.
        self.assertIn("connector", p.err)

    def test_initial_netns_reports_what_the_kernel_allows(self):
        rc, ev, p = self.watch_as_user("exit 3", netns=False)
        self.assertIn("finished", ev, p.out + p.err)
        if kernel_lets_user_listen(self.user, self.tmp):
            self.assertEqual(ev["exited"]["exit_code"], 3, p.out)
            self.assertEqual(ev["finished"]["outcome"], "failed")
            self.assertEqual(rc, 1, p.err)
        else:
            self.assertIsNone(ev["exited"]["exit_code"], p.out)
            self.assertEqual(ev["finished"]["outcome"], "unknown")
            self.assertEqual(rc, 4, p.err)


class TestPidFileReuse(WatchCase):
    """A pid file older than the process it names: the PID was reused."""

    def watch_file(self, pidfile):
        return self.start("watch", "--pid-file", pidfile, "--json", "--state-dir", self.state)

    def test_reused_pid_is_not_attached(self):
        pid, _ = self.blocker()
        pidfile = self.write("job.pid", "%d\n" % pid)
        old = time.time() - 60  # written a minute before the process started
        os.utime(pidfile, (old, old))
        p = self.watch_file(pidfile)
        warn = p.wait_for("err", lambda l: "reused" in l, what="reused-PID warning")
        self.assertIn(pidfile, warn)
        self.assertIn(str(pid), warn)
        self.assertTrue(p.running(), "vigil watch gave up instead of waiting")
        self.assertNotIn('"attached"', p.out)
        # Once the file is written again (after the process started), it is believed.
        now = time.time()
        os.utime(pidfile, (now, now))
        self.assertEqual(p.wait_json("attached")["pid"], pid)
        p.stop()
        self.assertEqual(p.out.count('"attached"'), 1, p.out)
        self.assertTrue(vt.proc_alive(pid), "vigil must not touch the process")

    def test_reused_pid_never_attached_without_change(self):
        """The brief's form: give vigil time, stop it, no attached line at all."""
        pid, _ = self.blocker()
        pidfile = self.write("job.pid", "%d\n" % pid)
        old = time.time() - 3600
        os.utime(pidfile, (old, old))
        p = self.watch_file(pidfile)
        p.wait_for("err", lambda l: "reused" in l, what="reused-PID warning")
        # Nothing is expected to happen: wait a bounded while for anything that would.
        with self.assertRaises(AssertionError):
            p.wait_for("out", lambda l: '"attached"' in l, timeout=2)
        p.stop()
        self.assertNotIn('"attached"', p.out)
        self.assertNoCrash(p.err)

    def test_fresh_pid_file_is_attached(self):
        """Control: the same set-up with an honest mtime attaches."""
        pid, fifo = self.blocker("exit 3")
        pidfile = self.write("job.pid", "%d\n" % pid)
        p = self.watch_file(pidfile)
        self.assertEqual(p.wait_json("attached")["pid"], pid)
        if os.geteuid() == 0:
            vt.release_fifo(fifo)
            fin = p.wait_json("finished")
            self.assertEqual(fin["exit_code"], 3)
        p.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
