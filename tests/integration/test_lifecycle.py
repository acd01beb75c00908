#!/usr/bin/python3
"""One truth per job (issue 9): limits that fire on processes older than the
limit, the event journal that `vigil watch NAME` and `vigil logs -f NAME`
follow to the owner's outcome, the wait for a target, stopped jobs."""
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


def kinds(text):
    return [e.get("kind") for e in vt.json_lines(text)]


class LifecycleCase(vt.VigilTestCase):
    def run_job(self, name, *cmd, extra=()):
        r = self.vigil("run", "--name", name, *extra, "--", *cmd)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"started %s \(pid (\d+)\)" % re.escape(name), r.stdout)
        self.assertTrue(m, r.stdout)
        return int(m.group(1))

    def old_process(self, age=1.5):
        """A process that is not ours and already older than `age` seconds."""
        t0 = time.monotonic()
        pid = self.detached("sleep 300")
        vt.wait_until(lambda: time.monotonic() - t0 > age, 10, 0.05, "the process to age")
        return pid


class TestLimits(LifecycleCase):
    def test_timeout_kill_fires_on_an_old_process(self):
        # Before: the delay went negative, the timer was refused, the hung job ran
        # on. vigil watch counts from attaching (DESIGN.md): the old process gets
        # the limit from now, then is killed.
        pid = self.old_process(age=3)
        r = self.vigil("watch", pid, "--timeout", "1s", "--on-timeout", "kill", "--json")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        ev = vt.json_lines(r.stdout)
        timeout = [e for e in ev if e["kind"] == "timeout"]
        self.assertEqual(len(timeout), 1, r.stdout)
        self.assertIs(timeout[0]["late"], False)
        self.assertGreaterEqual(timeout[0]["elapsed"], timeout[0]["limit"])
        self.assertLess(timeout[0]["elapsed"], 3, "counted from the process start, not attach")
        fin = ev[-1]
        self.assertEqual((fin["kind"], fin["outcome"]), ("finished", "timed_out"))
        vt.wait_until(lambda: not vt.proc_alive(pid), 10, what="the process to be killed")

    def test_expected_overdue_on_an_old_process(self):
        pid = self.old_process(age=3)
        p = self.start("watch", pid, "--expected", "1s", "--json")
        ev = p.wait_json("overdue", timeout=15)
        self.assertIs(ev["late"], False)
        self.assertGreaterEqual(ev["elapsed"], ev["limit"])
        os.kill(pid, signal.SIGKILL)
        self.assertIn(p.finish(), (1, 4), p.err)  # killed, or unknown without the connector

    def test_pid_file_wait_says_so_and_times_out(self):
        pidfile = self.path("job.pid")
        p = self.start("watch", "--pid-file", pidfile, "--timeout", "2s", "--json")
        ev = p.wait_json("waiting", timeout=10)
        self.assertIn(pidfile, ev["for"])
        self.assertEqual(p.finish(), 3, p.out + p.err)
        self.assertEqual(kinds(p.out).count("waiting"), 1, p.out)
        fin = vt.json_lines(p.out)[-1]
        self.assertEqual((fin["kind"], fin["outcome"]), ("finished", "timed_out"))

    def test_match_wait_says_so_and_times_out(self):
        pattern = "no-such-process-%d-[x]" % os.getpid()
        r = self.vigil("watch", "--match", pattern, "--timeout", "1s")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        waiting = [l for l in r.stdout.splitlines() if " waiting: " in l]
        self.assertEqual(len(waiting), 1, r.stdout)
        self.assertIn(pattern, waiting[0])
        self.assertIn("timed_out", r.stdout)

    def test_wait_counts_against_the_timeout(self):
        pidfile = self.path("late.pid")
        p = self.start("watch", "--pid-file", pidfile, "--timeout", "3s",
                       "--on-timeout", "kill", "--json")
        p.wait_json("waiting", timeout=10)
        t0 = time.monotonic()
        vt.wait_until(lambda: time.monotonic() - t0 > 1.5, 10, 0.05, "part of the wait to pass")
        pid = self.detached("sleep 300")
        self.write("late.pid", "%d\n" % pid)
        p.wait_json("attached", timeout=15)
        t_attached = time.monotonic()
        ev = p.wait_json("timeout", timeout=15)
        # Counted from the start of the wait: the process itself had less than
        # the limit (it was attached at least 1.5 s into the 3 s).
        self.assertGreaterEqual(ev["elapsed"], ev["limit"], ev)
        self.assertLess(time.monotonic() - t_attached, 2.9, ev)
        self.assertEqual(p.finish(), 3, p.out + p.err)


class TestJournal(LifecycleCase):
    def test_watch_name_of_a_finished_job_gives_its_outcome(self):
        self.run_job("j", "sh", "-c", "echo error >&2; exit 0", extra=("--failure", "error"))
        st = self.wait_finished("j")
        self.assertEqual(st["outcome"], "failed")
        r = self.vigil("watch", "j", "--json")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        ev = vt.json_lines(r.stdout)
        self.assertEqual([e["kind"] for e in ev], ["attached", "match", "exited", "finished"])
        self.assertEqual(ev[-1]["outcome"], "failed")
        text = self.vigil("watch", "j")
        self.assertEqual(text.returncode, 1, text.stdout + text.stderr)
        self.assertIn("finished: failed", text.stdout)

    def test_watch_name_of_a_running_job_agrees_with_status(self):
        fifo = vt.make_fifo(self.path("go"))
        self.run_job("r", "sh", "-c", "read x < %s; echo 50%%; echo error >&2; exit 0" % fifo,
                     extra=("--failure", "error", "--progress", "([0-9]+)%"))
        p = self.start("watch", "r", "--json")
        p.wait_json("attached", timeout=15)
        vt.release_fifo(fifo)
        self.assertEqual(p.finish(), 1, p.out + p.err)
        got = kinds(p.out)
        for k in ("attached", "progress", "match", "exited", "finished"):
            self.assertIn(k, got, p.out)
        self.assertEqual(got.count("finished"), 1, p.out)
        self.assertEqual(self.wait_finished("r")["outcome"], "failed")

    def test_logs_follow_ends_with_the_outcome(self):
        fifo = vt.make_fifo(self.path("go"))
        self.run_job("l", "sh", "-c", "echo started; read x < %s; echo done; exit 7" % fifo)
        p = self.start("logs", "-f", "l")
        p.wait_for("out", lambda l: l == "started", what="the first log line")
        vt.release_fifo(fifo)
        self.assertEqual(p.finish(), 1, p.out + p.err)
        lines = p.out.splitlines()
        self.assertIn("done", lines)
        self.assertTrue(lines[-1].startswith("finished: failed"), p.out)
        self.assertIn("exit 7", lines[-1])

    def test_logs_follow_of_a_finished_job(self):
        self.run_job("ok", "sh", "-c", "echo fine")
        self.wait_finished("ok")
        r = self.vigil("logs", "-f", "ok")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.splitlines()[0], "fine")
        self.assertTrue(r.stdout.splitlines()[-1].startswith("finished: succeeded"), r.stdout)


class TestStopped(LifecycleCase):
    def test_sigstop_shows_stopped_and_continued(self):
        pid = self.run_job("s", "sleep", "300")
        self.addCleanup(lambda: vt.proc_alive(pid) and os.kill(pid, signal.SIGKILL))
        vt.wait_until(lambda: self.status_json("s")["state"] == "running", 15, 0.05, "running")
        os.kill(pid, signal.SIGSTOP)
        vt.wait_until(lambda: self.status_json("s")["state"] == "stopped", 15, 0.05,
                      "status stopped")
        self.assertIn("SIGSTOP", self.status_json("s")["last_event"])
        os.kill(pid, signal.SIGCONT)
        vt.wait_until(lambda: self.status_json("s")["state"] == "running", 15, 0.05,
                      "status running again")
        os.kill(pid, signal.SIGKILL)
        self.assertEqual(self.wait_finished("s")["outcome"], "failed")
        r = self.vigil("watch", "s", "--json")
        got = kinds(r.stdout)
        self.assertLess(got.index("stopped"), got.index("continued"), r.stdout)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
