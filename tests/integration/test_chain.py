#!/usr/bin/python3
"""Chaining: `vigil run --after NAME` waits for job NAME's current run and
starts its command only when that run succeeded; `--after-any NAME` starts
whatever the outcome. Real jobs held by FIFOs, so nothing depends on timing."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


class TestChain(vt.VigilTestCase):
    def run_job(self, name, script, *flags):
        r = self.vigil("run", "--name", name, *flags, "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r

    def held_job(self, name, after_release):
        """Job NAME blocks on a FIFO; after release it runs after_release."""
        fifo = self.path(name + ".go")
        vt.make_fifo(fifo)
        self.run_job(name, "read x < %s; %s" % (fifo, after_release))
        vt.wait_until(lambda: self.status_json(name)["state"] == "running", vt.TIMEOUT,
                      what="%s to run" % name)
        return fifo

    def wait_waiting(self, name):
        def waiting():
            rec = self.status_json(name)
            return rec if rec["state"] == "waiting" else None
        return vt.wait_until(waiting, vt.TIMEOUT, what="%s to wait" % name)

    def journal(self, name):
        with open(os.path.join(self.state, name + ".journal")) as f:
            return [json.loads(ln) for ln in f if ln.strip()]

    def test_starts_after_success(self):
        a_end, b_start = self.path("a_end"), self.path("b_start")
        fifo = self.held_job("A", "date +%%s%%N > %s" % a_end)
        r = self.run_job("B", "date +%%s%%N > %s" % b_start, "--after", "A")
        self.assertIn("B waits for A", r.stdout)
        rec = self.wait_waiting("B")
        self.assertIn("waiting for A", rec["last_event"])
        r = self.vigil("status")
        self.assertRegex(r.stdout, r"B .*waiting.*waiting for A")
        self.assertFalse(os.path.exists(b_start), "B started before A ended")
        vt.release_fifo(fifo)
        self.assertEqual(self.wait_finished("A")["outcome"], "succeeded")
        rec = self.wait_finished("B")
        self.assertEqual(rec["outcome"], "succeeded", rec)
        with open(a_end) as fa, open(b_start) as fb:
            self.assertGreaterEqual(int(fb.read()), int(fa.read()))
        kinds = [e["kind"] for e in self.journal("B")]
        self.assertEqual(kinds[0], "waiting")
        self.assertEqual(kinds.count("finished"), 1)

    def test_failed_predecessor_never_starts(self):
        marker = self.path("b_ran")
        fifo = self.held_job("A", "exit 3")
        self.run_job("B", "touch %s" % marker, "--after", "A", "--notify", "json")
        self.wait_waiting("B")
        watch = self.start("watch", "B")
        watch.wait_for("out", lambda out: "waiting" in out and "for A" in out,
                       what="the waiting event in vigil watch B")
        vt.release_fifo(fifo)
        rec = self.wait_finished("B")
        self.assertEqual(rec["outcome"], "failed")
        self.assertEqual(rec["reason"], "after: A failed (exit 3)")
        self.assertFalse(os.path.exists(marker), "B's command ran")
        self.assertEqual(watch.finish(), 1, watch.out + watch.err)
        self.assertIn("after: A failed (exit 3)", watch.out)
        finished = [e for e in self.journal("B") if e["kind"] == "finished"]
        self.assertEqual(len(finished), 1)
        self.assertEqual(finished[0]["outcome"], "failed")
        with open(rec["log"] + ".vigil") as f:
            notified = [e for e in vt.json_lines(f.read()) if e.get("kind") == "finished"]
        self.assertEqual([e["reason"] for e in notified], ["after: A failed (exit 3)"])
        r = self.vigil("history", "--json", "B")
        self.assertIn("after: A failed (exit 3)", r.stdout)

    def test_after_any_starts_whatever_the_outcome(self):
        marker = self.path("b_ran")
        fifo = self.held_job("A", "exit 3")
        self.run_job("B", "touch %s" % marker, "--after-any", "A")
        self.wait_waiting("B")
        vt.release_fifo(fifo)
        self.assertEqual(self.wait_finished("A")["outcome"], "failed")
        self.assertEqual(self.wait_finished("B")["outcome"], "succeeded")
        self.assertTrue(os.path.exists(marker))

    def test_two_predecessors_and_finished_one(self):
        """A run already finished when vigil run is called counts with its outcome."""
        marker = self.path("c_ran")
        self.run_job("A", "exit 0")
        self.assertEqual(self.wait_finished("A")["outcome"], "succeeded")
        fifo = self.held_job("B", "exit 0")
        self.run_job("C", "touch %s" % marker, "--after", "A", "--after", "B")
        rec = self.wait_waiting("C")
        self.assertIn("waiting for A, B", rec["last_event"])
        vt.release_fifo(fifo)
        self.assertEqual(self.wait_finished("C")["outcome"], "succeeded")
        self.assertTrue(os.path.exists(marker))

    def test_unknown_predecessor_is_a_usage_error(self):
        r = self.vigil("run", "--name", "B", "--after", "nosuchjob", "--", "true")
        self.assertUsageError(r, "nosuchjob", "no job named")
        r = self.vigil("run", "--name", "B", "--after", "B", "--", "true")
        self.assertUsageError(r, "itself")
        r = self.vigil("run", "--name", "B", "--after")
        self.assertUsageError(r, "--after")
        self.assertFalse(os.path.exists(os.path.join(self.state, "B.run")))


if __name__ == "__main__":
    unittest.main()
