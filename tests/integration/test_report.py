#!/usr/bin/python3
"""The end-of-run report in `finished` (DESIGN.md, events: finished): peak
memory and CPU time (rusage for a job vigil started; sampled from /proc for a
process it only watches), an OOM kill told apart from a plain SIGKILL (the
kernel log, as root), the last progress value, and log_tail from the job's own
output with no log detector set. The text notifier shows them as one block."""
import json
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

MB = 1000 * 1000
# Touches every byte of 50 MiB (bytes * n fills them), then a fixed amount of
# CPU work: counted, not timed, so a loaded machine changes nothing.
HUNGRY = 'x = b"x" * (50 << 20)\nn = 0\nwhile n < 3000000: n += 1\nprint("fed")\n'
MEMCG = "/sys/fs/cgroup/memory"


class TestReport(vt.VigilTestCase):
    def run_job(self, name, *cmd, flags=()):
        r = self.vigil("run", "--state-dir", self.state, "--name", name, "--notify", "stdout",
                       *flags, "--", *cmd)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def finished(self, name):
        rec = self.wait_finished(name)
        with open(os.path.join(self.state, name + ".journal")) as f:
            events = [json.loads(line) for line in f if line.strip()]
        fin = [e for e in events if e["kind"] == "finished"]
        self.assertEqual(len(fin), 1, events)
        return fin[0], rec

    def text(self, rec):
        """What the stdout notifier wrote (vigil run: LOG.vigil)."""
        with open(rec["log"] + ".vigil", errors="replace") as f:
            return f.read()

    def test_peak_memory_and_cpu_of_a_job(self):
        self.run_job("hungry", "python3", "-c", HUNGRY)
        fin, rec = self.finished("hungry")
        self.assertEqual(fin["outcome"], "succeeded", fin)
        self.assertGreaterEqual(fin["peak_rss_bytes"], 50 * 1.048 * MB, fin)
        self.assertLess(fin["peak_rss_bytes"], 1000 * MB, fin)
        self.assertGreater(fin["cpu_seconds"], 0.05, fin)
        self.assertIs(fin["oom_killed"], False, fin)
        text = self.text(rec)
        self.assertRegex(text, r"\n  peak memory +[5-9][0-9]\.[0-9] MB\n", text)
        self.assertRegex(text, r"\n  CPU time +[0-9]+\.[0-9]{2} s\n", text)
        r = self.vigil("status", "--state-dir", self.state, "hungry")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\n  peak memory +[5-9][0-9]\.[0-9] MB\n", r.stdout)
        self.assertIn("\n  last lines:\n    fed\n", r.stdout)

    def test_a_sleeping_job_shows_little_cpu(self):
        self.run_job("sleepy", "sleep", "0.5")
        fin, _ = self.finished("sleepy")
        self.assertLess(fin["cpu_seconds"], 0.2, fin)
        self.assertLess(fin["peak_rss_bytes"], 50 * MB, fin)

    def test_log_tail_from_the_output_without_a_log_detector(self):
        self.run_job("talk", "sh", "-c", 'i=1; while [ $i -le 15 ]; do echo "line $i"; '
                     'i=$((i+1)); done; printf "10%%\\r50%%\\r90%%\\n"')
        fin, rec = self.finished("talk")
        self.assertEqual(fin["log_tail"], ["line %d" % i for i in range(7, 16)] + ["90%"], fin)
        self.assertIn("\n  last lines:\n    line 7\n", self.text(rec))

    def test_progress_is_the_last_value(self):
        self.run_job("prog", "sh", "-c", "echo 10%; echo 40%; echo 75%; echo done",
                     flags=("--progress", "([0-9]+)%"))
        fin, rec = self.finished("prog")
        self.assertEqual(fin["progress"], 75, fin)
        self.assertRegex(self.text(rec), r"\n  progress +75\n")

    def job_pid(self, name):
        return vt.wait_until(lambda: self.status_json(name).get("pid"), vt.TIMEOUT,
                             what="the job's pid")

    @unittest.skipUnless(os.geteuid() == 0, "the kernel log is read as root")
    def test_a_plain_sigkill_is_not_an_oom_kill(self):
        self.run_job("killed", "sleep", "300")
        os.kill(self.job_pid("killed"), signal.SIGKILL)
        fin, rec = self.finished("killed")
        self.assertEqual(fin["signal"], "SIGKILL", fin)
        self.assertIs(fin["oom_killed"], False, fin)
        self.assertRegex(self.text(rec), r"\n  exit status +killed by SIGKILL\n")

    def memory_cgroup(self):
        """A v1 memory cgroup limited to 32 MB, or skip."""
        if os.geteuid() != 0 or not os.path.isdir(MEMCG):
            self.skipTest("needs root and a v1 memory cgroup controller")
        cg = os.path.join(MEMCG, "vigil-test-%d" % os.getpid())
        try:
            os.mkdir(cg)
            with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
                f.write("32M")
        except OSError as e:
            self.skipTest("cannot make a memory cgroup: %s" % e)
        self.addCleanup(lambda: vt.wait_until(lambda: self._rmdir(cg), 10, what="cgroup gone"))
        return cg

    @staticmethod
    def _rmdir(path):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return True

    def test_an_oom_kill_in_a_memory_cgroup(self):
        cg = self.memory_cgroup()
        self.run_job("oom", "sh", "-c", 'echo $$ > %s/cgroup.procs && exec python3 -c '
                     '"x = bytearray(200 << 20)"' % cg)
        fin, rec = self.finished("oom")
        self.assertEqual(fin["outcome"], "failed", fin)
        self.assertEqual(fin["signal"], "SIGKILL", fin)
        self.assertIs(fin["oom_killed"], True, fin)
        self.assertIn("\n  exit status  killed by the OOM killer (SIGKILL)\n", self.text(rec))

    def test_a_watched_process_is_sampled(self):
        fifo = self.path("go")
        vt.make_fifo(fifo)
        ready = self.path("ready")
        code = ('x = b"x" * (50 << 20)\nopen(%r, "w").close()\nopen(%r).read()\n'
                % (ready, fifo))
        # Our child, not vigil's: vigil watch can only sample it.
        holder = subprocess.Popen([sys.executable, self.write("hold.py", code)])
        self.addCleanup(holder.wait, vt.TIMEOUT)
        self.addCleanup(holder.kill)
        pid = holder.pid
        vt.wait_until(lambda: os.path.exists(ready), vt.TIMEOUT, what="the allocation")
        w = self.start("watch", "--pid", pid, "--notify", "json")
        w.wait_json("attached")
        vt.release_fifo(fifo)
        fin = w.wait_json("finished")
        w.finish()
        self.assertGreaterEqual(fin["peak_rss_bytes"], 50 * 1.048 * MB, fin)
        self.assertIsNotNone(fin["cpu_seconds"], fin)

    def test_growth_after_attaching_is_sampled(self):
        # The memory is taken after vigil attached, so only the periodic
        # sampling (the pid plugin's shared timer) can see the peak: a zombie
        # has no VmHWM left to read at the end.
        fifo, grown = self.path("go"), self.path("grown")
        vt.make_fifo(fifo)
        code = ('import time\nopen(%r).read()\nx = b"x" * (60 << 20)\n'
                'open(%r, "w").close()\ntime.sleep(3)\n' % (fifo, grown))
        holder = subprocess.Popen([sys.executable, self.write("grow.py", code)])
        self.addCleanup(holder.wait, vt.TIMEOUT)
        self.addCleanup(holder.kill)
        w = self.start("watch", "--pid", holder.pid, "--notify", "json")
        w.wait_json("attached")
        vt.release_fifo(fifo)
        fin = w.wait_json("finished")
        w.finish()
        self.assertTrue(os.path.exists(grown))
        self.assertGreaterEqual(fin["peak_rss_bytes"], 60 * 1.048 * MB, fin)


if __name__ == "__main__":
    unittest.main(verbosity=2)
