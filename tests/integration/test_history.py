#!/usr/bin/python3
"""vigil history with real jobs: every finished `vigil run` is appended to the
monitor's history; `vigil history NAME` shows the runs with the p50/p95 of the
successful durations and the success rate; a corrupt line is skipped and
reported, never fatal; history_keep bounds the file; an unknown name is a
usage error."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


class TestHistory(vt.VigilTestCase):
    def run_to_end(self, name, script, env=None):
        """One `vigil run` of sh -c SCRIPT, waited for until its record says finished."""
        env = env or self.env
        r = vt.run([vt.VIGIL, "run", "--name", name, "--", "sh", "-c", script], env=env,
                   cwd=self.tmp)
        self.assertNoCrash(r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return self.wait_finished(name, env=env)

    def history_json(self, name, *extra, env=None):
        r = vt.run([vt.VIGIL, "history", "--json"] + list(extra) + [name], env=env or self.env,
                   cwd=self.tmp)
        self.assertNoCrash(r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        return vt.json_lines(r.stdout)[0], r.stderr

    def hist_file(self, name):
        return os.path.join(self.state, "history", name + ".jsonl")

    def test_outcomes_p50_and_success_rate(self):
        scripts = ["exit 0", "sleep 0.4; exit 0", "exit 7", "sleep 0.2", "kill -TERM $$"]
        for s in scripts:
            self.run_to_end("nightly", s)
        h, _ = self.history_json("nightly")
        runs = h["runs"]
        self.assertEqual([r["outcome"] for r in runs],
                         ["succeeded", "succeeded", "failed", "succeeded", "failed"])
        self.assertEqual([r["exit_code"] for r in runs], [0, 0, 7, 0, None])
        self.assertEqual(runs[4]["signal"], "SIGTERM")
        self.assertGreaterEqual(runs[1]["duration"], 0.4)
        for r in runs:
            self.assertEqual(r["monitor"], "nightly")
            self.assertLessEqual(r["start"], r["end"])
        ok = sorted(r["duration"] for r in runs if r["outcome"] == "succeeded")
        self.assertAlmostEqual(h["p50"], ok[1], places=3)  # nearest rank of 3
        self.assertAlmostEqual(h["p95"], ok[2], places=3)
        self.assertAlmostEqual(h["success_rate"], 0.6, places=3)
        self.assertEqual(h["corrupt"], 0)
        table = self.vigil("history", "nightly")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("5 runs, success rate 60%", table.stdout)
        self.assertRegex(table.stdout, r"failed\s+7\n")
        self.assertRegex(table.stdout, r"failed\s+SIGTERM\n")
        last2, _ = self.history_json("nightly", "--last", "2")
        self.assertEqual([r["outcome"] for r in last2["runs"]], ["succeeded", "failed"])
        self.assertAlmostEqual(last2["success_rate"], 0.5, places=3)

    def test_corrupt_line_skipped_and_reported(self):
        self.run_to_end("j", "exit 0")
        with open(self.hist_file("j"), "a") as f:
            f.write('{"monitor":"j","run":\n')   # a torn line
            f.write("\x00garbage\xff\n")
        self.run_to_end("j", "exit 2")
        h, err = self.history_json("j")
        self.assertEqual([r["exit_code"] for r in h["runs"]], [0, 2])
        self.assertEqual(h["corrupt"], 2)
        self.assertIn("2 corrupt line(s) skipped", err)
        table = self.vigil("history", "j")
        self.assertEqual(table.returncode, 0, table.stderr)
        self.assertIn("2 runs, success rate 50%", table.stdout)
        self.assertIn("corrupt", table.stderr)

    def test_history_keep_bounds_the_file(self):
        env = dict(self.env, VIGIL_HISTORY_KEEP="3")
        for code in range(7):
            self.run_to_end("b", "exit %d" % code, env=env)
            with open(self.hist_file("b")) as f:
                lines = [ln for ln in f if '"run"' in ln]
            self.assertLessEqual(len(lines), 3)
        h, _ = self.history_json("b", env=env)
        self.assertEqual([r["exit_code"] for r in h["runs"]], [4, 5, 6])
        # The totals survive compaction: metrics still count every run.
        m = self.vigil("metrics").stdout
        self.assertIn('vigil_runs_total{monitor="b",outcome="succeeded"} 1\n', m)
        self.assertIn('vigil_runs_total{monitor="b",outcome="failed"} 6\n', m)
        leftovers = [n for n in os.listdir(os.path.dirname(self.hist_file("b")))
                     if n != "b.jsonl"]
        self.assertEqual(leftovers, [])

    def test_unknown_name(self):
        self.assertUsageError(self.vigil("history", "no-such-job"), "no-such-job")
        self.assertUsageError(self.vigil("history"))
        self.assertUsageError(self.vigil("history", "--last", "x", "j"), "--last")

    def test_history_dir_override(self):
        hdir = os.path.join(self.tmp, "hist")
        env = dict(self.env, VIGIL_HISTORY_DIR=hdir)
        self.run_to_end("o", "exit 0", env=env)
        self.assertTrue(os.path.exists(os.path.join(hdir, "o.jsonl")))
        self.assertEqual(os.stat(os.path.join(hdir, "o.jsonl")).st_mode & 0o777, 0o600)
        h, _ = self.history_json("o", env=env)
        self.assertEqual(len(h["runs"]), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
