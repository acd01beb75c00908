#!/usr/bin/python3
"""Match events that do not flood (issue 12, item 6).

A burst of matching lines becomes the first few `match` events plus one event
per `match_window` carrying how many it stands for (`repeats`); what is held
when the run ends is reported before `finished`, which counts every line
(`failure_lines`, `success_lines`). A webhook receives that handful, not one
POST per line. Real jobs, real log files, a real loopback HTTP receiver."""

import json
import os
import subprocess
import sys
import unittest
import urllib.request

import vigil_test as vt  # noqa: E402
from vigil_test import VigilTestCase, json_lines, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
LINES = 300


def matches(events):
    return [e for e in events if e["kind"] == "match"]


def repeats(events):
    """How many matching lines the match events stand for (no field: one)."""
    return sum(e.get("repeats", 1) for e in matches(events))


class Receiver(vt.HookReceiver):
    """The receiver, hooked at /hook."""

    def __init__(self, tmp):
        super().__init__(tmp)
        self.url += "/hook"


class FloodTest(VigilTestCase):
    def job_ini(self, command, window=None, target=None):
        """A monitor whose log detector reads job.log from its start."""
        log = self.path("job.log")
        lines = ["[monitor]", target or "command = %s" % command, "log = %s" % log]
        if window is not None:
            lines.append("match_window = %s" % window)
        lines += ["[log]", "path = %s" % log, "from = start", "failure = error",
                  "success = done"]
        return self.write("job.ini", "\n".join(lines) + "\n")

    def test_burst_is_a_handful(self):
        """Default window: 300 failure lines give 3 events of their own and one
        with the rest, before `finished`; the webhook gets the same handful."""
        rx = Receiver(self.tmp)
        self.addCleanup(rx.stop)
        ini = self.job_ini('for i in $(seq 1 %d); do echo "error number $i"; done' % LINES)
        r = self.vigil("watch", "-c", ini, "--json", "--notify", "webhook:" + rx.url)
        self.assertEqual(r.returncode, 1, r.stderr)
        events = json_lines(r.stdout)
        self.assertEqual(events[-1]["kind"], "finished")
        self.assertEqual(events[-1]["failure_lines"], LINES)
        self.assertEqual(events[-1]["success_lines"], 0)
        self.assertEqual(repeats(events), LINES)
        self.assertLessEqual(len(matches(events)), 5, r.stdout)
        held = [e for e in matches(events) if "repeats" in e]
        self.assertEqual(held[-1]["line"], "error number %d" % LINES)
        # the receiver: every event once, so the same few matches
        wait_until(lambda: any(b["kind"] == "finished" for b in rx.bodies()),
                   timeout=60, what="the finished webhook")
        got = rx.bodies()
        self.assertEqual(sorted(e["id"] for e in matches(got)),
                         sorted(e["id"] for e in matches(events)))
        self.assertEqual(repeats(got), LINES)

    def test_window_reports_while_running(self):
        """A burst while the process runs is reported when its window ends,
        without waiting for the end of the run."""
        sleeper = subprocess.Popen(["sleep", "600"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        with open(self.path("job.log"), "w") as f:
            f.writelines("error number %d\n" % i for i in range(1, LINES + 1))
        ini = self.job_ini(None, window="1s", target="pid = %d" % sleeper.pid)
        p = self.start("watch", "-c", ini, "--json")
        p.wait_for("out", lambda line: repeats(json_lines(p.out)) == LINES, timeout=60,
                   what="%d lines reported" % LINES)
        self.assertLessEqual(len(matches(json_lines(p.out))), 10, p.out)
        sleeper.kill()
        self.assertEqual(p.finish(), 1)
        events = json_lines(p.out)
        self.assertEqual(events[-1]["kind"], "finished")
        self.assertEqual(events[-1]["failure_lines"], LINES)
        self.assertEqual(repeats(events), LINES)

    def test_each_pattern_counts_apart(self):
        """Success and failure lines are bursts of their own."""
        ini = self.job_ini('for i in $(seq 1 50); do echo "error $i"; echo "done $i"; done')
        r = self.vigil("watch", "-c", ini, "--json")
        events = json_lines(r.stdout)
        fin = events[-1]
        self.assertEqual((fin["failure_lines"], fin["success_lines"]), (50, 50))
        for pattern in ("success", "failure"):
            mine = [e for e in matches(events) if e["pattern"] == pattern]
            self.assertEqual(repeats(mine), 50)
            self.assertLessEqual(len(mine), 5)

    def test_window_off(self):
        """match_window = 0s: one event per matching line, as before."""
        ini = self.job_ini('for i in $(seq 1 %d); do echo "error number $i"; done' % LINES,
                           window="0s")
        r = self.vigil("watch", "-c", ini, "--json")
        events = json_lines(r.stdout)
        self.assertEqual(len(matches(events)), LINES)
        self.assertFalse(any("repeats" in e for e in events))
        self.assertEqual(events[-1]["failure_lines"], LINES)


if __name__ == "__main__":
    unittest.main(verbosity=2)
