"""Monitors without a process target (detectors only: a log, a heartbeat file)
and [notifier NAME] sections inside a monitor file (issue 11, item 7).

A targetless run starts with the monitor and ends by its detectors (a success or
failure line, every watched file there, a file's deadline) or its timeout; in
the agent the next run starts when one ends. Notifiers defined in a monitor
file are that file's own: a loopback HTTP receiver (http_receiver.py) shows
where each monitor's events go."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Receiver(vt.HookReceiver):
    """Stopped by the test's cleanup."""

    def __init__(self, testcase):
        super().__init__(testcase.tmp)
        testcase.addCleanup(self.stop)

    def wait_kind(self, path, kind, run=None):
        def seen():
            return [b for b in self.bodies(path)
                    if b.get("kind") == kind and (run is None or b.get("run") == run)]
        return vt.wait_until(seen, 20, what="%s %s at %s" % (kind, run, path))[0]


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


class TargetlessWatchTest(vt.VigilTestCase):
    def watch(self, ini):
        """vigil watch -c INI in the background, once its run has begun."""
        w = self.start("watch", "-c", ini)
        w.wait_json("attached")
        return w

    def log_monitor(self, extra=""):
        self.log = self.write("app.log", "")
        return self.write("app.ini", "[monitor]\nnotify = json\n%s\n[log app]\npath = %s\n"
                          "success = ^DONE\nfailure = ^ERROR\n" % (extra, self.log))

    def test_log_success_line(self):
        w = self.watch(self.log_monitor())
        append(self.log, "working\nDONE all\n")
        self.assertEqual(w.finish(), 0, w.err)
        fin = [e for e in vt.json_lines(w.out) if e["kind"] == "finished"]
        self.assertEqual(len(fin), 1, w.out)
        self.assertEqual(fin[0]["outcome"], "succeeded")
        self.assertIn("success line seen", fin[0]["reason"])
        self.assertNoCrash(w.err)

    def test_log_failure_line(self):
        w = self.watch(self.log_monitor())
        append(self.log, "ERROR disk full\n")
        self.assertEqual(w.finish(), 1, w.err)
        fin = [e for e in vt.json_lines(w.out) if e["kind"] == "finished"][0]
        self.assertEqual(fin["outcome"], "failed")
        self.assertIn("ERROR disk full", fin["reason"])

    def test_timeout_passes(self):
        w = self.watch(self.log_monitor("timeout = 1s"))
        self.assertEqual(w.finish(), 3, w.err)
        fin = [e for e in vt.json_lines(w.out) if e["kind"] == "finished"][0]
        self.assertEqual(fin["outcome"], "timed_out")
        self.assertNotIn("SIGTERM", fin["reason"])

    def heartbeat(self, keys):
        self.beat = self.path("heartbeat")
        return self.write("hb.ini", "[monitor]\nnotify = json\n\n[file hb]\npath = %s\n"
                          "stable_for = 0s\n%s" % (self.beat, keys))

    def test_file_deadline_passes(self):
        w = self.watch(self.heartbeat("deadline = 1s\n"))
        self.assertEqual(w.finish(), 3, w.err)
        kinds = [e["kind"] for e in vt.json_lines(w.out)]
        self.assertIn("overdue", kinds)
        fin = [e for e in vt.json_lines(w.out) if e["kind"] == "finished"][0]
        self.assertEqual(fin["outcome"], "timed_out")
        self.assertIn("missing", fin["reason"])

    def test_file_appears(self):
        w = self.watch(self.heartbeat("deadline = 1h\n"))
        append(self.beat, "alive\n")
        self.assertEqual(w.finish(), 0, w.err)
        fin = [e for e in vt.json_lines(w.out) if e["kind"] == "finished"][0]
        self.assertEqual(fin["outcome"], "succeeded")

    def test_check_accepts_detectors_only(self):
        r = self.vigil("check", self.log_monitor())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        bare = self.write("bare.ini", "[monitor]\nnotify = json\n")
        r = self.vigil("check", bare)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("no target", r.stdout + r.stderr)


class TargetlessAgentTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.ini = self.write_agent_ini()

    def wait_event(self, agent, monitor, kind, run):
        def seen():
            agent._pump(0.05)
            return [e for e in vt.json_lines(agent.out) if e.get("monitor") == monitor
                    and e["kind"] == kind and e["run"] == run]
        return vt.wait_until(seen, 20, what="%s run %d %s" % (monitor, run, kind))[0]

    def test_recurring_heartbeat(self):
        log = self.write("beat.log", "")
        with open(os.path.join(self.conf, "beat.ini"), "w") as f:
            f.write("[monitor]\n[log beat]\npath = %s\nsuccess = ^OK\nfailure = ^FAIL\n" % log)
        a = self.start_agent()
        self.wait_event(a, "beat", "attached", 1)
        append(log, "OK 1\n")
        self.assertEqual(self.wait_event(a, "beat", "finished", 1)["outcome"], "succeeded")
        self.wait_event(a, "beat", "attached", 2)
        append(log, "FAIL 2\n")
        self.assertEqual(self.wait_event(a, "beat", "finished", 2)["outcome"], "failed")
        self.wait_event(a, "beat", "attached", 3)
        st = vt.json_lines(self.vigil("status", "--json", "beat").stdout)[0]
        self.assertEqual(st["run"], 3)
        self.assertEqual(st["state"], "running")


NOTIFIER = "[notifier hook]\ntype = webhook\nurl = %s\n"


class MonitorNotifierTest(vt.VigilTestCase):
    def monitor_file(self, folder, name, url, mode=0o600):
        os.makedirs(folder, exist_ok=True)
        log = self.write(name + ".log", "")
        path = os.path.join(folder, name + ".ini")
        with open(path, "w") as f:
            f.write("[monitor]\nnotify = hook\n\n" + NOTIFIER % url +
                    "\n[log app]\npath = %s\nsuccess = ^DONE\n" % log)
        os.chmod(path, mode)
        return path, log

    def test_watch_and_check(self):
        rx = Receiver(self)
        ini, log = self.monitor_file(self.tmp, "one", rx.url + "/one")
        r = self.vigil("check", ini)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        w = self.start("watch", "-c", ini)
        rx.wait_kind("/one", "attached")
        append(log, "DONE\n")
        self.assertEqual(w.finish(), 0, w.err)
        self.assertEqual(rx.wait_kind("/one", "finished")["outcome"], "succeeded")
        self.assertNoCrash(w.err)

    def test_secret_rule(self):
        ini, _ = self.monitor_file(self.tmp, "open", "http://127.0.0.1:9/x", mode=0o644)
        r = self.vigil("check", ini)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("secret", r.stdout + r.stderr)
        r = self.vigil("watch", "-c", ini)
        self.assertUsageError(r, "secret")
        gid = vt.vigil_group(self)
        os.chown(ini, 0, gid)
        os.chmod(ini, 0o640)
        r = self.vigil("check", ini)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_unknown_and_unnamed(self):
        path = self.write("bad.ini", "[monitor]\nnotify = nosuch\n[notifier]\ntype = webhook\n"
                          "[log app]\npath = %s\nsuccess = x\n" % self.path("x.log"), 0o600)
        r = self.vigil("check", path)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("[notifier NAME]", r.stdout + r.stderr)
        self.assertIn("nosuch", r.stdout + r.stderr)

    def test_agent_two_files_same_name(self):
        rx = Receiver(self)
        self.ini = self.write_agent_ini(defaults="")
        _, log1 = self.monitor_file(self.conf, "one", rx.url + "/one")
        _, log2 = self.monitor_file(self.conf, "two", rx.url + "/two")
        a = self.start_agent()
        self.assertNotIn("already defined", a.err)
        rx.wait_kind("/one", "attached", 1)
        rx.wait_kind("/two", "attached", 1)
        append(log1, "DONE\n")
        append(log2, "DONE\n")
        self.assertEqual(rx.wait_kind("/one", "finished", 1)["monitor"], "one")
        self.assertEqual(rx.wait_kind("/two", "finished", 1)["monitor"], "two")
        self.assertEqual({b["monitor"] for b in rx.bodies("/one")}, {"one"})
        self.assertEqual({b["monitor"] for b in rx.bodies("/two")}, {"two"})
        # A reload of a changed file takes its new definition.
        path = os.path.join(self.conf, "two.ini")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace(rx.url + "/two", rx.url + "/three"))
        r = self.vigil("reload")
        a._pump(0.1)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + a.err)
        rx.wait_kind("/three", "attached")
        self.assertNotIn("already defined", a.err)


if __name__ == "__main__":
    unittest.main()
