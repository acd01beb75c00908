#!/usr/bin/python3
"""Retries are attempts of one run (DESIGN.md, "One truth per job"): a
`retrying` event between attempts, exactly one `finished` after the last, the
state `retrying` in vigil status during the delay, VIGIL_JOB / VIGIL_RUN /
VIGIL_ATTEMPT in the job's environment, `retry_command` for the attempts after
the first, and the `before_retry` / `on_failure` hooks (the event as JSON on
stdin, a time limit, their failure reported)."""
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = ("attached", "exited", "retrying", "finished")

# Fails until its third attempt; the count survives in a file. Each attempt
# notes what it saw in its environment.
FLAKY = ('n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; '
         'echo "job=$VIGIL_JOB run=$VIGIL_RUN attempt=$VIGIL_ATTEMPT" >> env.txt; '
         'test $n -ge 3')


class Receiver(vt.HookReceiver):
    """The receiver, hooked at /hook."""

    def __init__(self, tmp):
        super().__init__(tmp)
        self.url += "/hook"


class TestRetry(vt.VigilTestCase):
    def run_job(self, name, command, *flags):
        r = self.vigil("run", "--state-dir", self.state, "--name", name, *flags,
                       "--", "sh", "-c", command)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def journal(self, name):
        with open(os.path.join(self.state, name + ".journal")) as f:
            return [json.loads(line) for line in f if line.strip()]

    def kinds(self, name):
        return [e["kind"] for e in self.journal(name) if e["kind"] in KINDS]

    def read(self, name):
        with open(self.path(name)) as f:
            return f.read()

    def test_fails_twice_then_succeeds_one_finished(self):
        rx = Receiver(self.tmp)
        self.addCleanup(rx.stop)
        self.run_job("flaky", FLAKY, "--retry", "3", "--retry-delay", "1s",
                     "--notify", "webhook:" + rx.url)
        watch = self.start("watch", "flaky")
        st = self.wait_finished("flaky", timeout=60)
        self.assertEqual(watch.finish(60), 0, watch.out + watch.err)
        self.assertEqual(st["outcome"], "succeeded", st)
        self.assertEqual((st["run"], st["attempt"], st["attempts"]), (1, 3, 4), st)
        self.assertEqual(self.kinds("flaky"), ["attached", "exited", "retrying"] * 2
                         + ["attached", "exited", "finished"])
        events = self.journal("flaky")
        self.assertEqual({e["run"] for e in events}, {1}, events)
        retrying = [e for e in events if e["kind"] == "retrying"]
        self.assertEqual([(e["attempt"], e["attempts"]) for e in retrying], [(2, 4), (3, 4)])
        self.assertEqual([e["delay"] for e in retrying], [1, 2])  # doubled each time
        self.assertEqual(retrying[0]["exit_code"], 1)
        self.assertIsNone(retrying[0]["signal"])
        self.assertIn("exit 1", retrying[0]["reason"])
        fin = events[-1]
        self.assertEqual((fin["outcome"], fin["attempt"], fin["attempts"]),
                         ("succeeded", 3, 4), fin)
        self.assertEqual(self.read("env.txt").splitlines(),
                         ["job=flaky run=1 attempt=%d" % a for a in (1, 2, 3)])
        # The receiver hears the retries and one finished, the last thing sent.
        bodies = vt.wait_until(lambda: [b for b in rx.bodies() if b["kind"] == "finished"]
                               and rx.bodies(), 30, what="the finished notification")
        kinds = [b["kind"] for b in bodies if b["kind"] in KINDS]
        self.assertEqual(kinds.count("finished"), 1, kinds)
        self.assertEqual(kinds[-1], "finished", kinds)
        self.assertEqual(kinds.count("retrying"), 2, kinds)

    def test_status_says_retrying_during_the_delay(self):
        self.run_job("later", 'test -e again || { touch again; exit 4; }',
                     "--retry", "2", "--retry-delay", "4s")

        def retrying():
            r = self.vigil("status", "later")
            return r.stdout if "retrying" in r.stdout else None
        text = vt.wait_until(retrying, 20, 0.05, "status to say retrying")
        self.assertRegex(text, r"retrying 2/3 in [1-4]s")
        st = self.status_json("later")
        if st["state"] == "retrying":  # the delay may have ended meanwhile
            self.assertEqual((st["attempt"], st["attempts"]), (2, 3), st)
            self.assertIsNotNone(st["next_at"], st)
            self.assertIsNone(st["outcome"], st)
        st = self.wait_finished("later", timeout=60)
        self.assertEqual((st["outcome"], st["attempt"]), ("succeeded", 2), st)

    def test_agent_status_says_retrying_with_the_numbers(self):
        # An agent's monitor: vigil status asks the agent, whose reply must
        # carry the attempt numbers and the next start as the record does.
        self.ini = self.write_agent_ini()
        self.write("conf.d/later.ini", "[monitor]\ncommand = test -e again || "
                   "{ touch again; exit 4; }\nworking_directory = %s\nretry = 2\n"
                   "retry_delay = 6s\n" % self.tmp)
        self.start_agent()

        def retrying():
            st = self.status_json("later")
            return st if st["state"] == "retrying" else None
        st = vt.wait_until(retrying, 20, 0.05, "status to say retrying")
        self.assertEqual((st["attempt"], st["attempts"]), (2, 3), st)
        self.assertIsNotNone(st["next_at"], st)
        text = self.vigil("status", "later").stdout
        self.assertRegex(text, r"retrying 2/3 in [1-6]s")
        # (not wait_finished: the run's owner is the agent, which goes on)
        st = vt.wait_until(lambda: (lambda s: s if s["state"] == "finished" else None)(
            self.status_json("later")), 60, 0.1, "the run to finish")
        self.assertEqual((st["outcome"], st["attempt"], st["attempts"]),
                         ("succeeded", 2, 3), st)

    def test_retry_command_from_attempt_2(self):
        self.write("job.ini", "[monitor]\nretry = 2\nretry_delay = 1s\n"
                   "retry_command = echo resumed $VIGIL_ATTEMPT >> trail; exit 0\n")
        self.run_job("resume", "echo first >> trail; exit 1", "-c", self.path("job.ini"))
        st = self.wait_finished("resume", timeout=60)
        self.assertEqual((st["outcome"], st["attempt"]), ("succeeded", 2), st)
        self.assertEqual(self.read("trail"), "first\nresumed 2\n")

    def test_retry_command_flag(self):
        self.run_job("resume2", "echo first >> trail; exit 1", "--retry", "1",
                     "--retry-delay", "1s", "--retry-command", "echo again >> trail; exit 3")
        st = self.wait_finished("resume2", timeout=60)
        self.assertEqual((st["outcome"], st["exit_code"], st["attempt"]), ("failed", 3, 2), st)
        self.assertEqual(self.read("trail"), "first\nagain\n")

    def test_hooks_get_the_event_on_stdin(self):
        self.run_job("hooked", "exit 5", "--retry", "1", "--retry-delay", "1s",
                     "--before-retry", "cat > before.json; echo $VIGIL_JOB > before.env",
                     "--on-failure", "cat > failure.json")
        st = self.wait_finished("hooked", timeout=60)
        self.assertEqual(st["outcome"], "failed", st)
        before = json.loads(self.read("before.json"))
        self.assertEqual((before["kind"], before["attempt"], before["exit_code"]),
                         ("retrying", 2, 5), before)
        self.assertEqual(self.read("before.env"), "hooked\n")
        failure = json.loads(self.read("failure.json"))
        self.assertEqual((failure["kind"], failure["outcome"], failure["attempt"]),
                         ("finished", "failed", 2), failure)
        self.assertEqual(self.kinds("hooked").count("finished"), 1)

    def test_failing_and_hanging_hooks_reported_and_killed(self):
        self.run_job("hang", "exit 1", "--retry", "1", "--retry-delay", "1s",
                     "--hook-timeout", "1s", "--before-retry", "exit 3",
                     "--on-failure", "echo $$ > hook.pid; exec sleep 300")
        st = self.wait_finished("hang", timeout=60)
        self.assertEqual(st["outcome"], "failed", st)
        self.assertIn("before_retry failed (exit 3)", st["reason"])
        self.assertRegex(st["reason"], r"on_failure killed after 1s \(hook_timeout\)")
        pid = int(self.read("hook.pid"))
        self.assertFalse(vt.proc_alive(pid), "the hanging hook still runs")
        fin = self.journal("hang")[-1]
        self.assertEqual(fin["kind"], "finished")
        self.assertIn("on_failure killed", fin["reason"])

    def test_bad_hook_timeout_is_a_usage_error(self):
        r = self.vigil("run", "--state-dir", self.state, "--name", "bad",
                       "--hook-timeout", "soon", "--", "true")
        self.assertUsageError(r, "hook_timeout")


if __name__ == "__main__":
    unittest.main()
