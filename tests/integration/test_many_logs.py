#!/usr/bin/python3
"""An agent with hundreds of log monitors (more than fs.inotify.max_user_instances,
128 by default, allows inotify instances per user).

Each log detector once took an inotify instance of its own: past about 120
monitors the rest did not start ("cannot start: inotify: Too many open
files"). Here 300 detector-only monitors follow a log each; every log gets a
failure line and every monitor must report it. Real agent, real files."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

N = 300
TIMEOUT = 120  # 300 monitors on a busy 2-core machine


class Events:
    """The agent's JSON events, parsed once each as they arrive."""

    def __init__(self, agent):
        self.agent = agent
        self.done = 0  # characters of agent.out parsed
        self.by_kind = {}  # kind -> {monitor: [event]}

    def pump(self):
        self.agent._pump(0.05)
        end = self.agent.out.rfind("\n") + 1
        for line in self.agent.out[self.done:end].splitlines():
            if line.startswith("{"):
                e = json.loads(line)
                self.by_kind.setdefault(e["kind"], {}).setdefault(e.get("monitor"), []).append(e)
        self.done = end

    def monitors(self, kind, pred=lambda e: True):
        return {m for m, evs in self.by_kind.get(kind, {}).items() if any(map(pred, evs))}


class ManyLogsTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.ini = self.write_agent_ini()
        self.logs = {}
        for i in range(N):
            name = "m%03d" % i
            self.logs[name] = self.write("log%d.log" % i, "")
            with open(os.path.join(self.conf, name + ".ini"), "w") as f:
                f.write("[monitor]\n\n[log]\npath = %s\nfailure = ^FAILED\n" % self.logs[name])

    def wait_all(self, ev, kind, pred=lambda e: True, stop_on_error=True):
        """Every monitor has an event of kind (pred holding), or the agent logged
        an error (a monitor that cannot start): the set of monitors that have one."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            ev.pump()
            have = ev.monitors(kind, pred)
            if len(have) == N or (stop_on_error and ": error: " in ev.agent.err):
                return have
        return ev.monitors(kind, pred)

    def assertAllStarted(self, err):
        bad = [l for l in err.splitlines() if "cannot start" in l or "Too many open files" in l]
        self.assertEqual(len(bad), 0, "monitors that did not start, as: %s" % bad[:2])

    def test_every_log_monitor_starts_and_reports(self):
        a = self.start_agent()
        ev = Events(a)
        attached = self.wait_all(ev, "attached", lambda e: e["run"] == 1)
        self.assertAllStarted(a.err)
        self.assertEqual(sorted(set(self.logs) - attached), [],
                         "monitors without a first run; agent stderr:\n" + a.err[-4000:])

        for path in self.logs.values():
            with open(path, "a") as f:
                f.write("FAILED x\n")
        matched = self.wait_all(ev, "match", lambda e: e["run"] == 1 and
                                e.get("pattern") == "failure" and e.get("line") == "FAILED x",
                                stop_on_error=False)
        self.assertEqual(sorted(set(self.logs) - matched), [],
                         "monitors that did not report their line; agent stderr:\n"
                         + a.err[-4000:])
        failed = self.wait_all(ev, "finished", lambda e: e["run"] == 1 and
                               e["outcome"] == "failed", stop_on_error=False)
        self.assertEqual(sorted(set(self.logs) - failed), [])
        self.assertAllStarted(a.err)


if __name__ == "__main__":
    unittest.main()
