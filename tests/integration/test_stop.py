#!/usr/bin/python3
"""vigil stop NAME [--grace DUR] [--force]: SIGTERM to the job's process group,
SIGKILL after the grace; the supervisor records how the job ended."""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

# Ignores SIGTERM for real: the shell traps it, and the loop's short sleeps (which
# do die of the group's SIGTERM) are restarted. "ready" is printed once the trap is set.
STUBBORN = "trap '' TERM; echo ready; while :; do sleep 0.2; done"


class StopCase(vt.VigilTestCase):
    def start_job(self, name, *cmd):
        r = self.vigil("run", "--state-dir", self.state, "--name", name, "--", *cmd)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        pid = int(re.search(r"\(pid (\d+)\)", r.stdout).group(1))
        self.track(pid, vt.proc_start_time(pid))
        self.log = self.status_json(name)["log"]
        return pid

    def log_has(self, text):
        try:
            with open(self.log) as f:
                return text in f.read()
        except FileNotFoundError:
            return False

    def stop(self, *args):
        t0 = time.monotonic()
        r = self.vigil("stop", *args)
        return r, time.monotonic() - t0

    def assert_group_gone(self, pgid):
        vt.wait_until(lambda: not vt.pgroup_members(pgid), 10,
                      what="process group %d to be gone" % pgid)


class TestStop(StopCase):
    def test_ignores_sigterm_killed_after_grace(self):
        pid = self.start_job("stubborn", "sh", "-c", STUBBORN)
        vt.wait_until(lambda: self.log_has("ready\n"), what="the job to set its trap")
        r, took = self.stop("stubborn", "--grace", "1s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"stubborn \(pid %d\): still running .* after SIGTERM; "
                         r"killed with SIGKILL" % pid)
        self.assertGreaterEqual(took, 0.9, "SIGKILL came before the grace ended")
        self.assertIn("stubborn: failed (killed by SIGKILL)", r.stdout)
        st = self.wait_finished("stubborn")
        self.assertEqual(st["signal"], "SIGKILL", st)
        self.assertIsNone(st["exit_code"])
        self.assertEqual(st["outcome"], "failed")
        self.assert_group_gone(pid)

    def test_exits_on_sigterm(self):
        pid = self.start_job("polite", "sleep", "60")
        r, _ = self.stop("polite")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("polite (pid %d): stopped by SIGTERM" % pid, r.stdout)
        self.assertNotIn("SIGKILL", r.stdout)
        self.assertIn("polite: failed (killed by SIGTERM)", r.stdout)
        st = self.wait_finished("polite")
        self.assertEqual(st["signal"], "SIGTERM", st)
        self.assertEqual(st["outcome"], "failed")
        self.assertFalse(vt.proc_alive(pid))

    def test_sigterm_reaches_the_whole_group(self):
        """The shell exits on SIGTERM; its child (a sleep) must not be left behind."""
        pid = self.start_job("tree", "sh", "-c", "sleep 60 & echo ready; wait")
        vt.wait_until(lambda: self.log_has("ready\n"), what="the job's child")
        self.assertGreaterEqual(len(vt.pgroup_members(pid)), 2)
        r, _ = self.stop("tree")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("stopped by SIGTERM", r.stdout)
        self.wait_finished("tree")
        self.assert_group_gone(pid)

    def test_force(self):
        pid = self.start_job("forced", "sh", "-c", STUBBORN)
        vt.wait_until(lambda: self.log_has("ready\n"), what="the job to set its trap")
        r, _ = self.stop("forced", "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("forced (pid %d): killed with SIGKILL" % pid, r.stdout)
        self.assertNotIn("after SIGTERM", r.stdout)
        st = self.wait_finished("forced")
        self.assertEqual(st["signal"], "SIGKILL", st)
        self.assertEqual(st["outcome"], "failed")
        self.assert_group_gone(pid)

    def test_stop_finished_job(self):
        self.start_job("done", "true")
        self.wait_finished("done")
        r, _ = self.stop("done")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("done is not running", r.stdout)

    def test_stop_unknown_job(self):
        r, _ = self.stop("nosuchjob")
        self.assertUsageError(r, "nosuchjob")

    def test_bad_grace(self):
        pid = self.start_job("g", "sleep", "60")
        r, _ = self.stop("g", "--grace", "soon")
        self.assertUsageError(r, "soon")
        self.assertTrue(vt.proc_alive(pid), "a bad flag must not stop the job")
        r, _ = self.stop("g", "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_finished("g")


if __name__ == "__main__":
    unittest.main(verbosity=2)
