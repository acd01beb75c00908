#!/usr/bin/python3
"""Learned durations: `expected = auto` arms no limit while the history holds
fewer than 5 successful runs, then the p95 of them times expected_margin; a run
longer than that gets its `overdue` event (real jobs, real history files).
Missed runs: a recurring agent monitor with `every`/`grace` says `missed`."""
import datetime
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


class TestLearnedExpected(vt.VigilTestCase):
    def run_job(self, name, script, *flags):
        r = vt.run([vt.VIGIL, "run", "--name", name, "--expected", "auto"] + list(flags) +
                   ["--", "sh", "-c", script], env=self.env, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def journal_kinds(self, name):
        try:
            with open(os.path.join(self.state, name + ".journal")) as f:
                return [json.loads(ln)["kind"] for ln in f if ln.strip()]
        except FileNotFoundError:
            return []

    def test_learning_then_overdue(self):
        for i in range(5):
            self.run_job("nightly", "exit 0")
            rec = self.wait_finished("nightly")
            self.assertEqual(rec["outcome"], "succeeded")
            # Runs 1..5 saw at most 4 successful runs before them: no limit yet.
            self.assertIsNone(rec["expected"], "run %d: %r" % (i + 1, rec))
            self.assertNotIn("overdue", self.journal_kinds("nightly"))
        fifo = self.path("go")
        vt.make_fifo(fifo)
        self.run_job("nightly", "read x < %s" % fifo)
        vt.wait_until(lambda: "overdue" in self.journal_kinds("nightly"), vt.TIMEOUT,
                      what="the overdue event of the slow run")
        rec = self.status_json("nightly")
        self.assertEqual(rec["state"], "running")
        # 1.5 x the p95 of five runs of `exit 0`: well under the test's timeout.
        self.assertGreater(rec["expected"], 0)
        self.assertLess(rec["expected"], vt.TIMEOUT)
        vt.release_fifo(fifo)
        rec = self.wait_finished("nightly")
        self.assertEqual(rec["outcome"], "succeeded")

    def finished_event(self, name):
        with open(os.path.join(self.state, name + ".journal")) as f:
            return [json.loads(ln) for ln in f if '"finished"' in ln][-1]

    def test_min_duration_too_fast(self):
        """A run shorter than min_duration says too_fast; its outcome stays its
        criteria's (a fast success is still a success, a fast failure a failure)."""
        for script, outcome in (("exit 0", "succeeded"), ("exit 1", "failed")):
            self.run_job("quick", script, "--min-duration", "30s")
            rec = self.wait_finished("quick")
            self.assertEqual(rec["outcome"], outcome)
            self.assertIn("too_fast", rec["reason"])
            self.assertIs(self.finished_event("quick")["too_fast"], True)
        self.run_job("slow", "exit 0", "--min-duration", "1ms")
        self.wait_finished("slow")
        self.assertNotIn("too_fast", self.finished_event("slow"))

    def test_min_duration_auto(self):
        """auto: nothing flagged while learning; then the p5 of the successful
        runs (1 s each) divided by expected_margin (1.5): a 0 s run is too fast."""
        for _ in range(5):
            self.run_job("usual", "sleep 1", "--min-duration", "auto")
            rec = self.wait_finished("usual")
            self.assertNotIn("too_fast", rec["reason"])
        self.run_job("usual", "exit 0", "--min-duration", "auto")
        rec = self.wait_finished("usual")
        self.assertEqual(rec["outcome"], "succeeded")
        self.assertIn("too_fast", rec["reason"])
        self.assertIs(self.finished_event("usual")["too_fast"], True)

    def test_bad_values_refused(self):
        r = self.vigil("run", "--name", "x", "--expected", "soon", "--", "true")
        self.assertUsageError(r, "expected", "auto")
        ini = self.write("m.ini", "[monitor]\ncommand = true\nexpected = auto\n"
                         "expected_margin = 0.5\n")
        r = self.vigil("check", ini)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("expected_margin", r.stdout + r.stderr)
        r = self.vigil("run", "--name", "x", "--min-duration", "quick", "--", "true")
        self.assertUsageError(r, "min_duration", "auto")



def event_time(e):
    t = datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


class AgentEvents:
    """An agent of the test's own, and the events of its monitor `nightly`."""

    def setUp(self):
        super().setUp()
        self.ini = self.write_agent_ini()

    def events(self, agent, kind=None):
        agent._pump(0.05)
        return [e for e in vt.json_lines(agent.out)
                if e.get("monitor") == "nightly" and kind in (None, e["kind"])]

    def wait_events(self, agent, kind, n, what):
        return vt.wait_until(lambda: self.events(agent, kind)[n - 1:] and
                             self.events(agent, kind), 30, what=what)


class TestMissedRuns(AgentEvents, vt.VigilTestCase):
    """every = 2s, grace = 1s on a pid_file monitor of the agent: `missed` when
    no run starts, at most once per period, and a run re-arms it."""

    def test_missed_then_resolved_by_a_run(self):
        pidfile = self.path("nightly.pid")
        with open(os.path.join(self.conf, "nightly.ini"), "w") as f:
            f.write("[monitor]\npid_file = %s\nevery = 2s\ngrace = 1s\n" % pidfile)
        a = self.start_agent()
        missed = self.wait_events(a, "missed", 2, "two missed events")
        self.assertEqual(missed[0]["every"], 2)
        # Once per period at most.
        self.assertGreaterEqual(event_time(missed[1]) - event_time(missed[0]), 1.9)
        self.detached("echo $$ > %s; sleep 1" % pidfile)
        attached = self.wait_events(a, "attached", 1, "the run")[0]
        self.wait_events(a, "finished", 1, "the run's end")
        n_before = len([e for e in self.events(a, "missed")
                        if event_time(e) <= event_time(attached)])
        later = self.wait_events(a, "missed", n_before + 1, "the missed after the run")
        # The run re-armed it: nothing missed within every + grace of its start.
        self.assertGreaterEqual(event_time(later[n_before]) - event_time(attached), 2.9)


def due_time(e):
    """The scheduled time of a schedule's `missed` event (local time, with
    its UTC offset)."""
    return datetime.datetime.strptime(e["due"], "%Y-%m-%dT%H:%M:%S%z").timestamp()


class TestScheduledRuns(AgentEvents, vt.VigilTestCase):
    """schedule = "*/2 * * * * *" (every even second; six fields, seconds
    first), grace = 1s: a `missed` event per scheduled time with no run, never
    before the time + grace; a run covers its time."""

    def test_missed_per_scheduled_time(self):
        pidfile = self.path("nightly.pid")
        with open(os.path.join(self.conf, "nightly.ini"), "w") as f:
            f.write("[monitor]\npid_file = %s\nschedule = */2 * * * * *\ngrace = 1s\n"
                    % pidfile)
        a = self.start_agent()
        missed = self.wait_events(a, "missed", 2, "two missed events")
        for e in missed[:2]:
            self.assertEqual((e["schedule"], e["grace"]), ("*/2 * * * * *", 1), e)
            self.assertEqual(due_time(e) % 2, 0, e)
            self.assertGreaterEqual(event_time(e), due_time(e) + 1 - 0.01, e)
        # One per scheduled time, in order, none skipped.
        self.assertEqual(due_time(missed[1]) - due_time(missed[0]), 2, missed[:2])
        self.detached("echo $$ > %s; sleep 1" % pidfile)
        attached = self.wait_events(a, "attached", 1, "the run")[0]
        n_before = len([e for e in self.events(a, "missed")
                        if event_time(e) <= event_time(attached)])
        later = self.wait_events(a, "missed", n_before + 1, "a missed after the run")
        # The run covered the time it started at (within the grace): the next
        # missed one is a later time.
        self.assertGreater(due_time(later[n_before]), event_time(attached) - 1, later)

    def test_bad_schedules_are_refused_with_file_line_key(self):
        bad = self.write("bad.ini", "[monitor]\npid_file = /run/x.pid\n"
                         "schedule = 61 * * * *\n")
        both = self.write("both.ini", "[monitor]\npid_file = /run/x.pid\nevery = 1h\n"
                          "schedule = @daily\n")
        r = self.vigil("check", bad, both)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:3: [monitor] schedule: minute: \"61\"" % bad, r.stderr)
        self.assertIn("%s:4: [monitor] schedule: set every or schedule, not both" % both,
                      r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
