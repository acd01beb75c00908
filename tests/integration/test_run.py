#!/usr/bin/python3
"""vigil run: a detached supervisor runs the command as its child, so its exit
status is always known; status, logs and the state folder tell about it."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


class RunCase(vt.VigilTestCase):
    def run_job(self, name, *cmd, exe=None, prefix=(), env=None, state=None, extra=()):
        state = state or self.state
        r = vt.run(list(prefix) + [exe or vt.VIGIL, "run", "--state-dir", state, "--name", name]
                   + list(extra) + ["--"] + list(cmd), env=env or self.env, cwd=self.tmp)
        self.assertNoCrash(r.stderr)
        self.assertEqual(r.returncode, 0, "vigil run failed: " + r.stdout + r.stderr)
        m = re.search(r"started %s \(pid (\d+)\)" % re.escape(name), r.stdout)
        self.assertTrue(m, r.stdout)
        return int(m.group(1)), r


class TestRun(RunCase):
    def test_exit_5_logged_and_failed(self):
        pid, r = self.run_job("t", "sh", "-c", "echo hi; exit 5")
        for follow in ("vigil status t", "vigil logs -f t", "vigil stop t"):
            self.assertIn(follow, r.stdout)
        st = self.wait_finished("t")
        self.assertEqual(st["pid"], pid)
        self.assertEqual(st["exit_code"], 5, st)
        self.assertIsNone(st["signal"])
        self.assertEqual(st["outcome"], "failed")
        self.assertTrue(st["log"].startswith(self.state), st["log"])
        logs = self.vigil("logs", "t")
        self.assertEqual(logs.returncode, 0, logs.stderr)
        self.assertIn("hi", logs.stdout.splitlines())
        with open(st["log"]) as f:
            self.assertIn("hi\n", f.read())

    def test_exit_0_succeeded(self):
        self.run_job("ok", "sh", "-c", "echo fine")
        st = self.wait_finished("ok")
        self.assertEqual(st["exit_code"], 0, st)
        self.assertEqual(st["outcome"], "succeeded")

    def test_killed_by_signal(self):
        self.run_job("k", "sh", "-c", "kill -KILL $$")
        st = self.wait_finished("k")
        self.assertIsNone(st["exit_code"], st)
        self.assertEqual(st["signal"], "SIGKILL")
        self.assertEqual(st["outcome"], "failed")

    def test_detached_and_running(self):
        """vigil run returns at once; the job runs on, in its own session, with
        stdin from /dev/null, reported running until it ends."""
        fifo = vt.make_fifo(self.path("go"))
        pid, r = self.run_job("slow", "sh", "-c", "read x < %s; exit 7" % fifo)
        self.track(pid, vt.proc_start_time(pid))
        st = self.status_json("slow")
        self.assertEqual(st["state"], "running", st)
        self.assertEqual(st["pid"], pid)
        self.assertIsNone(st["outcome"])
        self.assertNotEqual(os.getsid(pid), os.getsid(0), "the job shares our session")
        self.assertEqual(os.getpgid(pid), pid, "the job leads its own process group")
        self.assertEqual(os.readlink("/proc/%d/fd/0" % pid), "/dev/null")
        with open(self.path("state", "slow.pid")) as f:
            self.assertEqual(int(f.read()), pid)
        vt.release_fifo(fifo)
        st = self.wait_finished("slow")
        self.assertEqual(st["exit_code"], 7, st)

    def test_duplicate_running_name_refused(self):
        fifo = vt.make_fifo(self.path("go"))
        pid, _ = self.run_job("dup", "sh", "-c", "read x < %s" % fifo)
        self.track(pid, vt.proc_start_time(pid))
        r = self.vigil("run", "--state-dir", self.state, "--name", "dup", "--", "true")
        self.assertUsageError(r, "dup", "already running")
        vt.release_fifo(fifo)
        self.wait_finished("dup")

    def test_command_not_found(self):
        r = self.vigil("run", "--state-dir", self.state, "--name", "nf", "--",
                       self.path("no-such-command"))
        self.assertUsageError(r, "no-such-command")


class TestRunUnprivileged(RunCase):
    def setUp(self):
        super().setUp()
        why = vt.user_tools_missing()
        if why:
            self.skipTest(why)
        self.user = vt.make_user(self)
        self.exe = vt.install_copy(self.path("inst"))
        self.ustate = self.path("ustate")
        os.mkdir(self.ustate, 0o700)
        os.chown(self.ustate, self.user.uid, self.user.gid)
        self.uenv = self.user.env(self.tmp, self.ustate)
        self.uprefix = self.user.cmd([])

    def test_exit_5_as_user(self):
        pid, _ = self.run_job("t", "sh", "-c", "echo hi; exit 5", exe=self.exe,
                              prefix=self.uprefix, env=self.uenv, state=self.ustate)
        st = self.wait_finished("t", exe=self.exe, prefix=self.uprefix, env=self.uenv)
        self.assertEqual(st["pid"], pid)
        self.assertEqual(st["exit_code"], 5, st)
        self.assertEqual(st["outcome"], "failed")
        logs = vt.run(self.uprefix + [self.exe, "logs", "t"], env=self.uenv, cwd=self.tmp)
        self.assertEqual(logs.returncode, 0, logs.stderr)
        self.assertIn("hi", logs.stdout.splitlines())
        self.assertEqual(os.stat(st["log"]).st_uid, self.user.uid)
        self.assertEqual(os.stat(os.path.join(self.ustate, "t.run")).st_uid, self.user.uid)


if __name__ == "__main__":
    unittest.main(verbosity=2)
