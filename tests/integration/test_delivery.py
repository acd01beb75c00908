#!/usr/bin/python3
"""Delivery through the spool against a real loopback HTTP receiver
(tests/integration/http_receiver.py): receiver down then up, vigil SIGKILLed
with notifications pending, a hanging receiver, a full spool disk, `on`.

Events come from a log detector reading a prepared log from its start with
--failure matching every line: one `match` event per line. `--notify json`
(never spooled) gives the ground truth of what was emitted."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("VIGIL_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))


import vigil_test as vt  # noqa: E402
from vigil_test import PLUGIN_DIR as PLUGINS, VIGIL, wait_until  # noqa: E402



Receiver = vt.HookReceiver


class DeliveryTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-delivery-")
        self.state = os.path.join(self.tmp, "state")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def target(self):
        p = subprocess.Popen(["sleep", "300"])
        self.procs.append(p)
        return p

    def ini(self, text):
        path = os.path.join(self.tmp, "vigil.ini")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def joblog(self, n, name="job.log"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            for i in range(n):
                f.write("ERR line %d\n" % i)
        return path

    def watch(self, target, log, notify, ini=None, deliver="60s", state=None):
        args = [VIGIL, "watch", "--plugin-dir", PLUGINS, "--state-dir", state or self.state,
                "--pid", str(target.pid), "--log", log, "--from", "start", "--failure", "ERR",
                "--deliver-timeout", deliver]
        for n in notify:
            args += ["--notify", n]
        each = os.path.join(self.tmp, "each-match.ini")  # one event per line, to count
        with open(each, "w") as f:
            f.write("[monitor]\nmatch_window = 0s\n")
        args += ["-c", each]
        env = dict(os.environ, VIGIL_CONFIG=ini or "/dev/null", NO_COLOR="1")
        if not ini:
            env.pop("VIGIL_CONFIG")
        p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.procs.append(p)
        return p

    def pending(self, name):
        """Records not yet delivered, as `vigil status --json` counts them."""
        st = subprocess.run([VIGIL, "status", "--state-dir", self.state, "--json"],
                            capture_output=True, text=True, timeout=30)
        for c in (json.loads(l) for l in st.stdout.splitlines() if '"notifier"' in l):
            if c["notifier"] == name:
                return c["pending"]
        return 0

    def spool_files(self, name):
        d = os.path.join(self.state, "spool", name)
        return sorted(f for f in os.listdir(d) if not f.startswith(".") and f != "dead") \
            if os.path.isdir(d) else []

    def finish(self, target, p, timeout=90):
        target.kill()
        target.wait()
        out, err = p.communicate(timeout=timeout)
        return out, err

    # ---------------------------------------------------------------- tests

    def test_receiver_down_10s_then_up(self):
        rec = Receiver(self.tmp, "down-for:10")
        try:
            ini = self.ini("[notifier strict]\ntype = webhook\nurl = %s/strict\non = match\n"
                           "\n[notifier fast]\ntype = webhook\nurl = %s/fast\n"
                           "on = match\nparallel = 8\n" % (rec.url, rec.url))
            t = self.target()
            p = self.watch(t, self.joblog(50), ["strict", "fast", "json"], ini)
            start = time.monotonic()
            wait_until(lambda: len({b["id"] for b in rec.bodies("/strict")}) >= 50 and
                       len({b["id"] for b in rec.bodies("/fast")}) >= 50, timeout=120, what="deliveries")
            self.assertGreaterEqual(time.monotonic() - start, 9.0)
            out, err = self.finish(t, p)
            sent = [e["id"] for e in map(json.loads, out.splitlines()) if e["kind"] == "match"]
            self.assertEqual(len(sent), 50)
            strict = [b["id"] for b in rec.bodies("/strict")]
            fast = [b["id"] for b in rec.bodies("/fast")]
            # The default (one in flight): received exactly in event order, each
            # once (connections refused while down are never recorded).
            self.assertEqual(strict, sent)
            # parallel = 8 trades order for throughput: all of them, in any order.
            self.assertEqual(sorted(set(fast)), sorted(sent))
            pos = {i: k for k, i in enumerate(sent)}
            moved = max(abs(pos[i] - k) for k, i in enumerate(fast))
            self.assertIn("not delivered", err)
            self.assertEqual(self.spool_files("strict") + self.spool_files("fast"), [])
            print("down 10s then up: sent %d, delivered %d, duplicated %d, lost %d "
                  "(default, in order); parallel = 8: delivered %d, lost %d, out of place "
                  "by up to %d" % (len(sent), len(set(strict)), len(strict) - len(set(strict)),
                                   len(set(sent) - set(strict)), len(set(fast)),
                                   len(set(sent) - set(fast)), moved))
        finally:
            rec.stop()

    def test_sigkill_with_100_pending(self):
        rec = Receiver(self.tmp, "hang")
        try:
            ini = self.ini("[notifier hook]\ntype = webhook\nurl = %s/k\non = match\n"
                           "max_age = 1h\n" % rec.url)
            t = self.target()
            p = self.watch(t, self.joblog(100), ["hook", "json"], ini)
            wait_until(lambda: self.pending("hook") == 100, timeout=60, what="100 spooled")
            wait_until(lambda: len(rec.requests()) >= 1, timeout=30, what="first attempts")
            p.send_signal(signal.SIGKILL)
            p.wait()
            sent = [e["id"] for e in map(json.loads, p.stdout.read().splitlines())
                    if e["kind"] == "match"]
            in_flight = {b["id"] for b in rec.bodies()}
            n_before = len(rec.requests())
            rec.mode("200")
            # A new process adopts the dead one's files and delivers them.
            t2 = self.target()
            p2 = self.watch(t2, self.joblog(0, "empty.log"), ["hook"], ini)
            wait_until(lambda: not self.spool_files("hook"), timeout=60, what="spool drained")
            out, err = self.finish(t2, p2)
            # Requests of the killed process still in the receiver's accept
            # queue are answered after the switch too: count every receipt.
            got = [b["id"] for b in rec.bodies()]
            after = got[n_before:]  # answered 200 (mode switched)
            delivered = set(after)
            dup = {i for i in delivered if got.count(i) > 1}
            lost = set(sent) - delivered
            print("SIGKILL with 100 pending: sent %d, delivered %d, duplicated %d "
                  "(ids %s, in flight at the kill: %s), lost %d, in order: %s"
                  % (len(sent), len(delivered & set(sent)), len(dup),
                     sorted(sent.index(i) for i in dup), sorted(sent.index(i) for i in in_flight),
                     len(lost), after == sent))
            self.assertEqual(len(sent), 100)
            self.assertEqual(lost, set())
            # The receiver hung from the start: only the oldest was in flight
            # at the kill, and only it may arrive twice (same event id).
            self.assertEqual(in_flight, {sent[0]})
            self.assertLessEqual(dup, in_flight)
            # The new process sends them all, once each, in event order.
            self.assertEqual(after, sent)
            self.assertIn("replaying 100 notification(s)", err)
        finally:
            rec.stop()

    def test_hanging_receiver_times_out_stdout_unaffected(self):
        rec = Receiver(self.tmp, "hang")
        try:
            ini = self.ini("[notifier slow]\ntype = webhook\nurl = %s/h\ntimeout = 1s\n"
                           "on = finished\n" % rec.url)
            t = self.target()
            p = self.watch(t, self.joblog(3), ["slow", "json"], ini, deliver="4s")
            first = [json.loads(p.stdout.readline())["kind"] for _ in range(4)]
            self.assertIn("attached", first)
            t.kill()
            t.wait()
            out, err = p.communicate(timeout=30)
            kinds = first + [json.loads(l)["kind"] for l in out.splitlines()]
            self.assertIn("finished", kinds)
            self.assertRegex(err, r"not delivered \(attempt 1\): .*([Tt]imeout|timed out)")
            self.assertIn("left for retry", err)
            self.assertEqual(len(self.spool_files("slow")), 1)
            st = subprocess.run([VIGIL, "status", "--state-dir", self.state, "--json"],
                                capture_output=True, text=True, timeout=30)
            counts = [json.loads(l) for l in st.stdout.splitlines() if '"notifier"' in l]
            self.assertEqual(counts, [{"notifier": "slow", "pending": 1, "dead": 0}])
        finally:
            rec.stop()

    def test_permanent_failure_dead_letter_and_on_filter(self):
        rec = Receiver(self.tmp, "400")
        try:
            ini = self.ini("[notifier picky]\ntype = webhook\nurl = %s/p\n"
                           "on = failed, timeout\n" % rec.url)
            t = self.target()
            p = self.watch(t, self.joblog(2), ["picky", "json"], ini)
            # The target is attached and both ERR lines seen before it goes:
            # else the run ends unknown (killed before the pid detector found
            # it, or no failure seen), which `on` filters out. The log is read
            # at start, so the matches may come before `attached`.
            kinds = []
            while kinds.count("match") < 2 or "attached" not in kinds:
                line = p.stdout.readline()
                self.assertTrue(line, "vigil ended early")
                kinds.append(json.loads(line)["kind"])
            out, err = self.finish(t, p)
            bodies = rec.bodies()
            self.assertTrue(bodies, "nothing received; vigil said: %s\n%s" % (out[-1500:], err))
            # Only the failed finish (ERR lines are failures), not matches.
            self.assertEqual([b["kind"] for b in bodies], ["finished"])
            self.assertEqual(bodies[0]["outcome"], "failed")
            self.assertRegex(err, r"event %s \(finished of .*\) dead-lettered, refused for "
                                  r"good: .*400.*rejected by receiver" % bodies[0]["id"])
            dead = os.path.join(self.state, "spool", "picky", "dead")
            self.assertEqual(len(os.listdir(dead)), 1)
            st = subprocess.run([VIGIL, "status", "--state-dir", self.state],
                                capture_output=True, text=True, timeout=30)
            self.assertRegex(st.stdout, r"picky\s+0\s+1")
        finally:
            rec.stop()

    @unittest.skipUnless(os.geteuid() == 0, "mounting a tmpfs needs root")
    def test_full_spool_disk(self):
        rec = Receiver(self.tmp, "200")
        mnt = os.path.join(self.tmp, "small")
        os.makedirs(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt])
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here")
        try:
            # Fill it so the spool folder can be made but no notification fits.
            os.makedirs(os.path.join(mnt, "spool"))
            fd = os.open(os.path.join(mnt, "fill"), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"x" * 4096)
            except OSError:
                pass
            os.close(fd)
            ini = self.ini("[notifier hook]\ntype = webhook\nurl = %s/f\non = match\n"
                           % rec.url)
            t = self.target()
            p = self.watch(t, self.joblog(20), ["hook", "json"], ini, state=mnt)
            wait_until(lambda: len({b["id"] for b in rec.bodies()}) >= 20, timeout=60, what="deliveries")
            out, err = self.finish(t, p)
            matches = [l for l in out.splitlines() if json.loads(l)["kind"] == "match"]
            self.assertEqual(len(matches), 20)  # stdout got every event
            self.assertEqual(err.count("cannot write to the spool"), 1)
            self.assertIn("No space left on device", err)
        finally:
            subprocess.run(["umount", "-l", mnt])
            rec.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
