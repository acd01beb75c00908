#!/usr/bin/python3
"""Delivery that outlives its process (issue 9, item 5), against a real loopback
HTTP receiver (http_receiver.py):

- the receiver refuses past deliver_timeout: the `vigil run` supervisor stays,
  idle (no wakeups between backoff retries), `vigil status` shows what it still
  delivers; once the receiver answers, every event arrives once, in order, and
  the supervisor exits;
- the spool lives under the state folder in use (VIGIL_STATE_DIR, --state-dir),
  nothing is written to /var/lib/vigil/spool;
- an agent adopts what a `vigil watch` left in the spool of its state folder."""

import os
import subprocess
import time
import unittest

import vigil_test as vt
from test_delivery import Receiver

SYSTEM_SPOOL = "/var/lib/vigil/spool"
# A refusal asks for this many seconds before the next attempt: the supervisor
# must sleep through them.
RETRY_AFTER = 6


def ids_of(rx):
    return [b["id"] for b in rx.bodies()]


def tree(path):
    """Every file under path (names and sizes): what a run may have written there."""
    out = set()
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            try:
                out.add((p, os.stat(p).st_size))
            except OSError:
                pass
    return out


def voluntary_switches(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches for %d" % pid)


def segments(spool):
    """Segments still in the notifier folders under spool (not yet delivered)."""
    out = []
    for name in os.listdir(spool) if os.path.isdir(spool) else []:
        d = os.path.join(spool, name)
        out += [f for f in os.listdir(d) if not f.startswith(".") and f != "dead"]
    return out


class OutliveTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.system_before = tree(SYSTEM_SPOOL)
        self.rx = Receiver(self.tmp, "503:%d" % RETRY_AFTER)
        self.addCleanup(self.rx.stop)
        self.env["VIGIL_CONFIG"] = "/dev/null"
        self.gl = []  # global options before the subcommand

    def v(self, *args):
        return self.vigil(*self.gl, *args)

    def sj(self, name):
        r = self.v("status", "--json", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        return vt.json_lines(r.stdout)[0]

    def owner_pid(self, name):
        with open(os.path.join(self.state, name + ".run")) as f:
            for line in f:
                if line.startswith("owner_pid="):
                    return int(line.split("=", 1)[1])
        return 0

    def assert_idle(self, pid):
        """Between two refused attempts (RETRY_AFTER apart) the supervisor sleeps:
        some 2 s window right after an attempt shows no voluntary context switch.
        (A 200 ms poll would show about ten in every window.)"""
        seen = []
        for _ in range(3):
            n = len(ids_of(self.rx))
            vt.wait_until(lambda: len(ids_of(self.rx)) > n, RETRY_AFTER * 3, 0.05,
                          "the next attempt")
            for _ in range(2):  # the first window may still hold the answer's handling
                before = voluntary_switches(pid)
                time.sleep(2)
                seen.append(voluntary_switches(pid) - before)
                if seen[-1] == 0:
                    return
        self.fail("the supervisor woke up in every 2 s window: %r" % seen)

    def run_job(self, *extra):
        r = self.v("run", "--name", "j", "--plugin-dir", vt.PLUGIN_DIR, "--deliver-timeout",
                       "1s", "--notify", "webhook:%s/hook" % self.rx.url, *extra, "--",
                       "sh", "-c", "echo one; echo two; exit 0")
        self.assertEqual(r.returncode, 0, r.stderr)
        vt.wait_until(lambda: self.sj("j")["state"] == "finished", vt.TIMEOUT, 0.1,
                      "the job to finish")
        return self.owner_pid("j")

    def check_outlives(self, spool):
        sup = self.run_job()
        self.assertGreater(sup, 0)
        # Past deliver_timeout (1 s): a second refused attempt is RETRY_AFTER later.
        vt.wait_until(lambda: len(ids_of(self.rx)) >= 2, vt.TIMEOUT, 0.1, "a second attempt")
        self.assertTrue(vt.proc_alive(sup), "the supervisor gave up on its deliveries")
        rec = self.sj("j")
        self.assertEqual(rec["outcome"], "succeeded")
        self.assertGreater(rec["pending"], 0, rec)
        table = self.v("status").stdout
        self.assertRegex(table, r"j: \d+ notifications? pending \(webhook:\.\.\.\)")
        self.assertTrue(segments(spool), "nothing in %s" % spool)
        self.assert_idle(sup)
        attempted = len(ids_of(self.rx))
        self.rx.mode("200")
        vt.wait_until(lambda: not vt.proc_alive(sup), RETRY_AFTER * 4 + vt.TIMEOUT, 0.1,
                      "the supervisor to exit after delivering")
        self.assertSupervisorClean("j", rec)
        ids = ids_of(self.rx)
        every = list(dict.fromkeys(ids))  # first attempts come in event order
        self.assertEqual(ids[attempted:], every, "not every event once, in order")
        kinds = [b["kind"] for b in self.rx.bodies()[attempted:]]
        self.assertEqual(kinds[-1], "finished", kinds)
        self.assertEqual(self.sj("j")["pending"], 0)
        self.assertEqual(segments(spool), [])
        self.assertEqual(tree(SYSTEM_SPOOL), self.system_before, "written to " + SYSTEM_SPOOL)

    def test_supervisor_outlives_outage_env_state_dir(self):
        self.check_outlives(os.path.join(self.state, "spool"))

    def test_supervisor_outlives_outage_state_dir_flag(self):
        del self.env["VIGIL_STATE_DIR"]
        self.env["XDG_STATE_HOME"] = self.path("xdg")
        self.gl = ["--state-dir", self.state]
        self.check_outlives(os.path.join(self.state, "spool"))
        self.assertFalse(os.path.exists(self.path("xdg", "vigil", "spool", "webhook")))

    def test_agent_adopts_watch_leftover(self):
        hook = "webhook:%s/hook" % self.rx.url
        target = subprocess.Popen(["sleep", "300"])
        self.addCleanup(target.kill)
        w = self.start("watch", "--plugin-dir", vt.PLUGIN_DIR, "--pid", target.pid,
                       "--deliver-timeout", "1s", "--notify", hook, "--name", "w")
        vt.wait_until(lambda: ids_of(self.rx), vt.TIMEOUT, 0.1, "a first attempt")
        target.kill()
        target.wait()
        w.finish()
        self.assertIn("left for retry", w.err)
        spool = os.path.join(self.state, "spool")
        self.assertTrue(segments(spool), "watch left nothing in " + spool)
        left = list(dict.fromkeys(ids_of(self.rx)))

        conf = self.path("conf.d")
        os.mkdir(conf)
        self.write("conf.d/m.ini", "[monitor]\npid = %d\nnotify = %s\n" % (os.getpid(), hook))
        ini = self.write("vigil.ini", "[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s\n"
                         % (conf, self.state, self.path("agent-spool")))
        self.rx.mode("200")
        attempted = len(ids_of(self.rx))
        a = self.start("agent", "--plugin-dir", vt.PLUGIN_DIR, "--config", ini)
        self.addCleanup(a.stop)
        a.wait_for("err", lambda l: "adopted the spool" in l, what="the adoption")

        def delivered():
            got = [b for b in self.rx.bodies()[attempted:] if b["monitor"] == "w"]
            return got if got and got[-1]["kind"] == "finished" else None
        got = vt.wait_until(delivered, vt.TIMEOUT, 0.1, "the leftover delivered")
        self.assertEqual([b["id"] for b in got], left + [b["id"] for b in got][len(left):],
                         "not in event order")
        self.assertEqual(len({b["id"] for b in got}), len(got), "delivered twice")
        vt.wait_until(lambda: not segments(spool), vt.TIMEOUT, 0.1, "the old spool emptied")
        a.stop()
        self.assertNoCrash(a.err)
        self.assertEqual(tree(SYSTEM_SPOOL), self.system_before, "written to " + SYSTEM_SPOOL)


if __name__ == "__main__":
    unittest.main(verbosity=2)
