#!/usr/bin/python3
"""Small things: stable_for honoured across several open/close cycles (and the
size reported is the one that held still); job names start with a letter or a
digit; vigil forget NAME and vigil prune --older-than DUR clean up what finished
jobs leave, never a running job's files."""
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


class TestStableFor(vt.VigilTestCase):
    def test_several_closes_count_once_stable(self):
        target = subprocess.Popen(["sleep", "120"], stdin=subprocess.DEVNULL)
        self.addCleanup(target.wait, 10)
        self.addCleanup(target.kill)
        out = self.path("out.json")
        w = self.start("watch", "--pid", target.pid, "--file", out, "--stable-for", "2s",
                       "--notify", "json")
        w.wait_json("attached")
        # A writer that opens, appends and closes three times: the first close
        # is not the end, and the size that counts is the last one.
        for _ in range(3):
            with open(out, "ab") as f:
                f.write(b"x" * 1000)
            time.sleep(0.1)
        ev = w.wait_json("file")
        self.assertEqual(ev["size"], 3000, ev)
        self.assertEqual(os.path.getsize(out), 3000)
        target.kill()
        w.wait_json("finished")
        self.assertEqual(w.out.count('"kind":"file"'), 1, w.out)


class TestNames(vt.VigilTestCase):
    def test_run_name_must_start_with_letter_or_digit(self):
        for bad in ("-x", ".hidden", "_x", "@x"):
            r = self.vigil("run", "--name", bad, "--", "true")
            self.assertUsageError(r, "not a job name", "starting with a letter or digit")
        self.assertEqual(os.listdir(self.state), [])

    def test_config_name_must_start_with_letter_or_digit(self):
        job = self.write("job.ini", "[monitor]\nname = -x\ncommand = true\n")
        r = self.vigil("check", job)
        self.assertUsageError(r, "name", "starting with a letter or digit")

    def test_good_names_still_work(self):
        r = self.vigil("run", "--name", "7up.v2_x-y@z", "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_finished("7up.v2_x-y@z")


class TestForget(vt.VigilTestCase):
    def run_job(self, name, *cmd):
        r = self.vigil("run", "--name", name, "--", *cmd)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return int(re.search(r"\(pid (\d+)\)", r.stdout).group(1))

    def files_of(self, name, log):
        return [p for p in (os.path.join(self.state, name + ".run"),
                            os.path.join(self.state, name + ".pid"),
                            os.path.join(self.state, name + ".journal"),
                            log, log + ".vigil") if os.path.exists(p)]

    def test_forget_finished_job(self):
        self.run_job("done", "sh", "-c", "echo hello")
        log = self.wait_finished("done")["log"]
        self.assertGreaterEqual(len(self.files_of("done", log)), 4, self.files_of("done", log))
        r = self.vigil("forget", "done")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("forgot done", r.stdout)
        self.assertEqual(self.files_of("done", log), [])
        self.assertUsageError(self.vigil("forget", "done"), "no job named")

    def test_forget_refuses_a_running_job(self):
        pid = self.run_job("busy", "sleep", "600")
        self.track(pid, vt.proc_start_time(pid))
        log = self.status_json("busy")["log"]
        before = self.files_of("busy", log)
        r = self.vigil("forget", "busy")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("is running", r.stderr)
        self.assertEqual(self.files_of("busy", log), before)
        self.vigil("stop", "busy")
        self.wait_finished("busy")
        self.assertEqual(self.vigil("forget", "busy").returncode, 0)

    def test_forget_bad_input(self):
        self.assertUsageError(self.vigil("forget", "nosuch"), "no job named")
        self.assertUsageError(self.vigil("forget"), "usage")
        self.assertUsageError(self.vigil("forget", "../x"), "no job named")

    def test_prune_older_than(self):
        self.run_job("old1", "true")
        self.run_job("old2", "false")
        logs = [self.wait_finished(n)["log"] for n in ("old1", "old2")]
        pid = self.run_job("live", "sleep", "600")
        self.track(pid, vt.proc_start_time(pid))
        r = self.vigil("prune", "--older-than", "1h")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("0 job(s) forgotten", r.stdout)
        self.assertTrue(self.files_of("old1", logs[0]))
        r = self.vigil("prune", "--older-than", "0s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 job(s) forgotten", r.stdout)
        self.assertEqual(self.files_of("old1", logs[0]) + self.files_of("old2", logs[1]), [])
        self.assertEqual(self.status_json("live")["state"], "running")
        self.assertUsageError(self.vigil("prune", "--older-than", "soon"), "not a duration")
        self.assertUsageError(self.vigil("prune"), "usage")


if __name__ == "__main__":
    unittest.main(verbosity=2)
