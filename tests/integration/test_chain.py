#!/usr/bin/python3
"""Chaining: `vigil run --after NAME` waits for job NAME's current run and
starts its command only when that run succeeded; `--after-any NAME` starts
whatever the outcome. `after =` / `after_any =` in [monitor] do the same for
`vigil run -c FILE` and for the agent's monitors. Real jobs held by FIFOs, so
nothing depends on timing."""
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

    def test_run_config_file_after_and_flags(self):
        """after = in -c FILE; a flag adds to it."""
        marker = self.path("b_ran")
        fifo_a = self.held_job("A", "exit 0")
        fifo_c = self.held_job("C", "exit 3")
        cfg = self.write("B.ini", "[monitor]\nafter = A\ncommand = touch %s\n" % marker)
        r = self.vigil("run", "-c", cfg, "--after-any", "C")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("B waits for A, C", r.stdout)
        self.assertIn("waiting for A, C", self.wait_waiting("B")["last_event"])
        vt.release_fifo(fifo_a)
        self.assertEqual(self.wait_finished("A")["outcome"], "succeeded")
        self.assertEqual(self.status_json("B")["state"], "waiting", "B did not wait for C")
        self.assertFalse(os.path.exists(marker), "B started before C ended")
        vt.release_fifo(fifo_c)
        self.assertEqual(self.wait_finished("C")["outcome"], "failed")
        self.assertEqual(self.wait_finished("B")["outcome"], "succeeded")
        self.assertTrue(os.path.exists(marker))

    def test_check_after_needs_a_command(self):
        for key in ("after", "after_any"):
            f = self.write("bad.ini", "[monitor]\npid = 1\n%s = A\n" % key)
            r = self.vigil("check", f)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("%s:3: [monitor] %s:" % (f, key), r.stderr)
            self.assertIn("command", r.stderr)


def release_if_held(fifo):
    """Cleanup: a job still blocked on its FIFO ends (the agent leaves its
    jobs running when it stops)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    os.write(fd, b"go\n")
    os.close(fd)


class TestAgentChain(vt.VigilTestCase):
    """after = / after_any = in the agent's monitors: B waits for A's current
    run; the records are in the agent's state folder."""

    def setUp(self):
        super().setUp()
        self.ini = self.write_agent_ini()
        self.marker = self.path("b_ran")

    def monitor(self, name, text):
        self.write("conf.d/%s.ini" % name, "[monitor]\n" + text)

    def held(self, name, then):
        """Monitor NAME's command blocks on a FIFO, then runs `then`."""
        fifo = vt.make_fifo(self.path(name + ".go"))
        self.addCleanup(release_if_held, fifo)
        self.monitor(name, "command = read x < %s; %s\n" % (fifo, then))
        return fifo

    def dependent(self, keys="after = A\n", name="B"):
        self.monitor(name, "command = touch %s\n%s" % (self.marker, keys))

    def state_is(self, name, state):
        def check():
            rec = self.status_json(name)
            return rec if rec["state"] == state else None
        return vt.wait_until(check, vt.TIMEOUT, what="%s to be %s" % (name, state))

    def kinds(self, name):
        with open(os.path.join(self.state, name + ".journal")) as f:
            return [json.loads(ln)["kind"] for ln in f if ln.strip()]

    def test_starts_after_success(self):
        fifo = self.held("A", "exit 0")
        self.dependent()
        self.start_agent()
        self.state_is("A", "running")
        rec = self.state_is("B", "waiting")
        self.assertIn("waiting for A", rec["last_event"])
        self.assertRegex(self.vigil("status", "B").stdout, r"B .*waiting.*waiting for A")
        self.assertFalse(os.path.exists(self.marker), "B started before A ended")
        vt.release_fifo(fifo)
        self.assertEqual(self.state_is("A", "finished")["outcome"], "succeeded")
        rec = self.state_is("B", "finished")
        self.assertEqual(rec["outcome"], "succeeded", rec)
        self.assertTrue(os.path.exists(self.marker))
        self.assertEqual(self.kinds("B")[0], "waiting")

    def test_failed_predecessor_never_starts(self):
        fifo = self.held("A", "exit 3")
        self.dependent()
        self.start_agent()
        self.state_is("B", "waiting")
        vt.release_fifo(fifo)
        rec = self.state_is("B", "finished")
        self.assertEqual(rec["outcome"], "failed", rec)
        self.assertIn("after: A failed (exit 3)", rec["reason"])
        self.assertFalse(os.path.exists(self.marker), "B's command ran")
        kinds = self.kinds("B")
        self.assertEqual((kinds.count("waiting"), kinds.count("finished")), (1, 1), kinds)
        self.assertNotIn("attached", kinds)

    def test_after_any_starts_whatever_the_outcome(self):
        fifo = self.held("A", "exit 3")
        self.dependent("after_any = A\n")
        self.start_agent()
        self.state_is("B", "waiting")
        vt.release_fifo(fifo)
        self.assertEqual(self.state_is("A", "finished")["outcome"], "failed")
        self.assertEqual(self.state_is("B", "finished")["outcome"], "succeeded")
        self.assertTrue(os.path.exists(self.marker))

    def test_dependent_listed_before_its_predecessor(self):
        """conf.d is read in name order: B.ini waits for Z, which starts later
        in the same load (not for Z's record of an earlier life, nor none)."""
        fifo = self.held("Z", "exit 0")
        self.dependent("after = Z\n")
        self.start_agent()
        self.assertIn("waiting for Z", self.state_is("B", "waiting")["last_event"])
        vt.release_fifo(fifo)
        self.assertEqual(self.state_is("B", "finished")["outcome"], "succeeded")

    def test_unknown_predecessor_fails_the_run(self):
        self.dependent("after = nosuch\n")
        a = self.start_agent()
        rec = self.state_is("B", "finished")
        self.assertEqual((rec["outcome"], rec["reason"]),
                         ("failed", "after: nosuch: no such job"), rec)
        a.wait_for("err", lambda ln: "B.ini" in ln and "nosuch" in ln,
                   what="an error naming the file")
        self.assertFalse(os.path.exists(self.marker))

    def test_a_cycle_fails_both_runs(self):
        self.monitor("A", "command = true\nafter = B\n")
        self.dependent("after = A\n")
        a = self.start_agent()
        for name in ("A", "B"):
            rec = self.state_is(name, "finished")
            self.assertEqual((rec["outcome"], rec["reason"]),
                             ("failed", "after: a cycle: the job waits for itself"), rec)
        a.wait_for("err", lambda ln: "B.ini" in ln and "cycle" in ln,
                   what="an error naming the file")
        self.assertFalse(os.path.exists(self.marker))

    def test_stop_while_waiting(self):
        self.held("A", "exit 0")
        self.dependent()
        self.start_agent()
        self.state_is("B", "waiting")
        r = self.vigil("stop", "B")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("after: stopped while waiting", r.stdout)
        self.assertIn("B: ended by the agent before its process started", r.stdout)
        rec = self.state_is("B", "finished")
        self.assertEqual((rec["outcome"], rec["reason"]),
                         ("failed", "after: stopped while waiting"), rec)
        self.assertEqual(self.status_json("A")["state"], "running")
        self.assertFalse(os.path.exists(self.marker))

    def test_reload_while_waiting_leaks_nothing(self):
        """A changed B is rebuilt on each reload: the old one's watches go,
        the new one waits for the same run, under the same run number."""
        fifo = self.held("A", "exit 0")
        self.dependent()
        a = self.start_agent()
        self.state_is("B", "waiting")

        def fds():
            return len(os.listdir("/proc/%d/fd" % a.p.pid))
        counts = []
        for i in range(4):
            self.dependent("after = A\n# change %d\n" % i)
            r = self.vigil("reload")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("changed=1", r.stdout)
            rec = self.state_is("B", "waiting")
            counts.append(fds())
        vt.wait_until(lambda: fds() <= counts[0], vt.TIMEOUT,
                      what="no more fds than after the first reload: %r" % counts)
        self.assertEqual(rec["run"], 1, rec)
        vt.release_fifo(fifo)
        rec = self.state_is("B", "finished")
        self.assertEqual((rec["outcome"], rec["run"]), ("succeeded", 1), rec)
        self.assertEqual(self.kinds("B").count("finished"), 1)

    def test_restart_does_not_wait_again(self):
        """A run already started (adopted from its record) goes on."""
        fifo_a = self.held("A", "exit 0")
        fifo_b = vt.make_fifo(self.path("B.go"))
        self.addCleanup(release_if_held, fifo_b)
        self.monitor("B", "command = touch %s; read x < %s\nafter = A\n"
                     % (self.marker, fifo_b))
        a = self.start_agent()
        self.state_is("B", "waiting")
        vt.release_fifo(fifo_a)
        pid = self.state_is("B", "running")["pid"]
        self.assertEqual(a.stop(), 0)
        self.start_agent()
        self.state_is("A", "running")  # a command of the agent: a new run
        rec = self.status_json("B")
        self.assertEqual((rec["state"], rec["run"], rec["pid"]), ("running", 1, pid), rec)
        vt.release_fifo(fifo_b)
        self.assertEqual(self.state_is("B", "finished")["outcome"], "succeeded")
        # this life's journal (begun when it adopted the run): no second wait
        self.assertNotIn("waiting", self.kinds("B"))


if __name__ == "__main__":
    unittest.main()
