#!/usr/bin/python3
"""What vigil status, stop and metrics show of a job, with real jobs:
progress, usual duration, learned expected and ETA in status; stop during a
retry delay or an --after wait ends the run; metrics reads the spool of the
state folder in use (VIGIL_STATE_DIR); a missed run fires an alert in Debian's
prometheus-alertmanager and the next run resolves it."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402
import test_alertmanager as tam  # noqa: E402  (its Alertmanager on loopback)

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Receiver = vt.HookReceiver


class TestMetricsSpool(vt.VigilTestCase):
    def test_metrics_reads_the_spool_of_vigil_state_dir(self):
        """A notification refused for good lands in STATE/spool/NAME/dead when
        the state folder comes from VIGIL_STATE_DIR; vigil metrics counts it
        there, as vigil status does."""
        rec = Receiver(self.tmp, "400")
        self.addCleanup(rec.stop)
        r = self.vigil("run", "--name", "spooled", "--notify", "webhook:%s/h" % rec.url,
                       "--", "sh", "-c", "exit 0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_finished("spooled")
        dead = os.path.join(self.state, "spool")
        vt.wait_until(lambda: any(os.listdir(os.path.join(dead, d, "dead"))
                                  for d in os.listdir(dead)
                                  if os.path.isdir(os.path.join(dead, d, "dead"))),
                      vt.TIMEOUT, what="a dead letter in " + dead)
        m = self.vigil("metrics")
        self.assertEqual(m.returncode, 0, m.stderr)
        self.assertRegex(m.stdout, r'(?m)^vigil_notifications_dead_total\{notifier="[^"]+"\} [1-9][0-9]*$')


class TestStatusView(vt.VigilTestCase):
    def run_to_end(self, name, script, *flags):
        r = self.vigil("run", "--name", name, *flags, "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return self.wait_finished(name)

    def status_text(self, name):
        r = self.vigil("status", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_learning_and_usual_duration(self):
        """expected = auto with 3 successful runs: learning (3/5 runs), and
        the usual duration (p50 of the successful runs) from the history."""
        for _ in range(3):
            self.run_to_end("nightly", "sleep 0.2", "--expected", "auto")
        rec = self.run_to_end("nightly", "exit 4", "--expected", "auto")  # not counted
        self.assertTrue(rec["expected_auto"], rec)
        self.assertEqual(rec["learned_runs"], 3, rec)
        self.assertGreaterEqual(rec["usual"], 0.2)
        self.assertLess(rec["usual"], vt.TIMEOUT)
        text = self.status_text("nightly")
        self.assertRegex(text, r"expected\s+learning \(3/5 runs\)")
        self.assertRegex(text, r"usual\s+[0-9.]+s? .*p50 of 3 successful runs")
        for _ in range(2):
            self.run_to_end("nightly", "sleep 0.2", "--expected", "auto")
        # The next run learns from those 5: status shows what it uses.
        fifo = self.path("go")
        vt.make_fifo(fifo)
        r = self.vigil("run", "--name", "nightly", "--expected", "auto", "--",
                       "sh", "-c", "read x < %s" % fifo)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        rec = vt.wait_until(lambda: (lambda x: x if x["state"] == "running" else None)(
            self.status_json("nightly")), vt.TIMEOUT, 0.1, "nightly to run")
        self.assertGreater(rec["expected"], 0.2)  # p95 x 1.5
        self.assertEqual(rec["learned_runs"], 5)
        self.assertRegex(self.status_text("nightly"), r"expected\s+\S+ \(learned from 5 runs\)")
        vt.release_fifo(fifo)
        self.wait_finished("nightly")

    def test_progress_and_eta_while_running_then_last_value(self):
        """A job printing steady progress: status shows the current value and
        an ETA from the progress rate while it runs, the last value after."""
        fifo = self.path("go")
        vt.make_fifo(fifo)
        # about 20 % a second for 5 s (progress events come at most about
        # once a second), then it waits to be released.
        script = ("i=0; while [ $i -lt 98 ]; do i=$((i+2)); echo \"$i%%\"; sleep 0.1; done; "
                  "read x < %s; echo 100%%" % fifo)
        r = self.vigil("run", "--name", "copy", "--progress", "([0-9]+)%", "--",
                       "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        def steady():
            rec = self.status_json("copy")
            return rec if rec["eta_from"] == "progress" else None
        rec = vt.wait_until(steady, vt.TIMEOUT, 0.1, "an ETA from the progress rate")
        self.assertEqual(rec["state"], "running")
        self.assertGreater(rec["progress"], 0)
        self.assertLess(rec["progress"], 100)
        # Once steady it stays so: a later sample only extends the same rate.
        text = self.status_text("copy")
        self.assertRegex(text, r"progress\s+\d+%")
        self.assertRegex(text, r"eta\s+\d\d:\d\d:\d\d .*progress rate")
        self.assertRegex(self.vigil("status").stdout, r"copy .* \d+% eta ")
        vt.release_fifo(fifo)
        rec = self.wait_finished("copy")
        self.assertEqual(rec["progress"], 100)
        self.assertIsNone(rec["eta"])
        self.assertRegex(self.status_text("copy"), r"progress\s+100%")

    def test_eta_from_the_usual_duration(self):
        """No progress: a running job's ETA is its start plus the usual run."""
        self.run_to_end("batch", "sleep 0.5")
        fifo = self.path("go")
        vt.make_fifo(fifo)
        r = self.vigil("run", "--name", "batch", "--", "sh", "-c", "read x < %s" % fifo)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        rec = vt.wait_until(lambda: (lambda x: x if x["state"] == "running" else None)(
            self.status_json("batch")), vt.TIMEOUT, 0.1, "batch to run")
        self.assertEqual(rec["eta_from"], "usual")
        self.assertIsNotNone(rec["eta"])
        self.assertRegex(self.status_text("batch"), r"eta\s+\d\d:\d\d:\d\d .*usual")
        vt.release_fifo(fifo)
        self.wait_finished("batch")


class TestStopBetweenAttempts(vt.VigilTestCase):
    """vigil stop of a job of vigil run that has no process right now: the run
    ends (one `finished`, failed, with the reason) and nothing starts again."""

    def run_job(self, name, script, *flags):
        r = self.vigil("run", "--name", name, *flags, "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def journal(self, name):
        with open(os.path.join(self.state, name + ".journal")) as f:
            return [json.loads(ln) for ln in f if ln.strip()]

    def wait_state(self, name, state):
        return vt.wait_until(lambda: self.status_json(name)["state"] == state, vt.TIMEOUT,
                             what="%s to be %s" % (name, state))

    def assertStoppedRun(self, name, reason):
        r = self.vigil("stop", name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("not running", r.stdout)
        rec = self.wait_finished(name)
        self.assertEqual(rec["outcome"], "failed")
        self.assertIn(reason, rec["reason"])
        self.assertIn(reason, r.stdout)
        kinds = [e["kind"] for e in self.journal(name)]
        self.assertEqual(kinds.count("finished"), 1, kinds)
        return kinds

    def test_stop_during_the_retry_delay(self):
        attempts = self.path("attempts")
        self.run_job("flaky", "echo x >> %s; exit 1" % attempts, "--retry", "3",
                     "--retry-delay", "1h")
        self.wait_state("flaky", "retrying")
        kinds = self.assertStoppedRun("flaky", "stopped during the retry delay")
        self.assertEqual(kinds.count("attached"), 1, kinds)
        with open(attempts) as f:
            self.assertEqual(f.read(), "x\n")  # no second attempt

    def test_stop_while_waiting_for_another_job(self):
        fifo = self.path("go")
        vt.make_fifo(fifo)
        marker = self.path("b_ran")
        self.run_job("A", "read x < %s" % fifo)
        vt.wait_until(lambda: self.status_json("A")["state"] == "running", vt.TIMEOUT,
                      what="A to run")
        self.run_job("B", "touch %s" % marker, "--after", "A")
        self.wait_state("B", "waiting")
        kinds = self.assertStoppedRun("B", "stopped while waiting")
        self.assertNotIn("attached", kinds)
        vt.release_fifo(fifo)
        self.assertEqual(self.wait_finished("A")["outcome"], "succeeded")
        self.assertFalse(os.path.exists(marker))


@unittest.skipUnless(tam.AM, "prometheus-alertmanager is not installed (apt-get install "
                             "prometheus-alertmanager)")
class TestMissedAlert(vt.VigilTestCase):
    """An agent monitor with every = 2s, grace = 1s and no run: `missed` fires
    vigil_missed in a real Alertmanager, one alert per monitor (no run label),
    and the next run's `attached` resolves it."""

    def setUp(self):
        super().setUp()
        self.am = tam.AlertmanagerTest("alerts")  # its setUp starts Alertmanager
        self.am.setUp()
        self.addCleanup(self.am.tearDown)

    def active(self):
        return [a for a in self.am.alerts("vigil_missed") if a["status"]["state"] == "active"
                and a["endsAt"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())]

    def count(self, agent, kind):
        agent._pump(0.05)
        return sum(1 for e in vt.json_lines(agent.out) if e.get("kind") == kind)

    def test_missed_fires_and_the_next_run_resolves(self):
        self.ini = self.write_agent_ini(defaults="notify = json, am\n")
        with open(self.ini, "a") as f:
            f.write("\n[notifier am]\ntype = webhook\nformat = alertmanager\nurl = %s\n"
                    % self.am.url)
        os.chmod(self.ini, 0o600)  # the url may hold a secret
        pidfile = self.path("nightly.pid")
        with open(os.path.join(self.conf, "nightly.ini"), "w") as f:
            f.write("[monitor]\npid_file = %s\nevery = 2s\ngrace = 1s\n" % pidfile)
        agent = self.start_agent()
        for n in (1, 2):  # a second period: still one alert, for the monitor
            vt.wait_until(lambda: self.count(agent, "missed") >= n, vt.TIMEOUT, 0.1,
                          "missed event %d" % n)
            firing = vt.wait_until(self.active, vt.TIMEOUT, 0.1, "vigil_missed active")
            self.assertEqual(len(firing), 1, firing)
            labels = firing[0]["labels"]
            self.assertEqual(labels["monitor"], "nightly")
            self.assertEqual(labels["kind"], "missed")
            self.assertNotIn("run", labels)
        print("firing: %s" % firing[0]["labels"])
        self.detached("echo $$ > %s; sleep 60" % pidfile)  # no missed while it runs
        agent.wait_for("out", lambda l: '"kind":"attached"' in l, what="the run")
        vt.wait_until(lambda: not self.active(), vt.TIMEOUT, 0.1, "vigil_missed resolved")


if __name__ == "__main__":
    unittest.main(verbosity=2)
