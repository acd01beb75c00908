#!/usr/bin/python3
"""A job owns its whole process tree: a daemonizing command is followed until the
processes it left have exited (descendants = wait | kill | leave); vigil stop
ends every process of the tree, setsid'd or stopped (SIGSTOP) ones included."""
import os
import re
import shutil
import signal
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


def marked_pids(mark):
    """Live processes whose command line holds mark, vigil itself aside (its
    supervisor's command line holds the job's)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if cmd.split(b"\0")[0] == vt.VIGIL.encode():
            continue
        if mark.encode() in cmd and vt.proc_alive(int(name)):
            out.append(int(name))
    return out


class TreeCase(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        # A copy of sleep whose name carries a marker: every process of the
        # tree shows it in its command line, whatever session it moved to.
        self.mark = "vtree" + uuid.uuid4().hex[:10]
        self.sleep = self.path("sleep-" + self.mark)
        shutil.copyfile(shutil.which("sleep"), self.sleep)
        os.chmod(self.sleep, 0o755)
        self.addCleanup(self.kill_marked)
        self.fifo = self.path("release")
        vt.make_fifo(self.fifo)

    def kill_marked(self):
        for pid in marked_pids(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def run_job(self, name, script, *extra):
        r = self.vigil("run", "--name", name, *extra, "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return int(re.search(r"\(pid (\d+)\)", r.stdout).group(1))

    def assert_runs_on(self, name, main_pid):
        """The main process is gone, its worker runs on: the job too."""
        vt.wait_until(lambda: not vt.proc_alive(main_pid), what="the main process to exit")
        vt.wait_until(lambda: marked_pids(self.mark), what="the worker")
        st = self.status_json(name)
        self.assertEqual(st["state"], "running", st)
        self.assertEqual(st["outcome"] or "", "", st)


class TestDaemonizing(TreeCase):
    def test_background_worker_decides(self):
        """sh -c 'worker & exit 0': not succeeded until the worker exits; the
        main process exited 0, so the last worker's exit 3 is the outcome."""
        main = self.run_job("bg", "(read x < %s; %s 0; exit 3) & exit 0"
                            % (self.fifo, self.sleep))
        self.assert_runs_on("bg", main)
        vt.release_fifo(self.fifo)
        st = self.wait_finished("bg")
        self.assertEqual(st["outcome"], "failed", st)
        self.assertEqual(st["exit_code"], 3, st)

    def test_double_fork_setsid(self):
        """(setsid worker &): the worker's parent exits at once, it moves to its
        own session; the run still lasts until it has exited."""
        main = self.run_job("df", "(setsid sh -c 'read x < %s; %s 0' &); exit 0"
                            % (self.fifo, self.sleep))
        self.assert_runs_on("df", main)
        vt.release_fifo(self.fifo)
        st = self.wait_finished("df")
        self.assertEqual(st["outcome"], "succeeded", st)
        self.assertEqual(marked_pids(self.mark), [])

    def test_main_failure_wins(self):
        """A main process that fails decides the run, once the tree is gone."""
        main = self.run_job("mf", "(read x < %s; %s 0) & exit 7" % (self.fifo, self.sleep))
        vt.wait_until(lambda: not vt.proc_alive(main), what="the main process to exit")
        self.assertEqual(self.status_json("mf")["state"], "running")
        vt.release_fifo(self.fifo)
        st = self.wait_finished("mf")
        self.assertEqual(st["outcome"], "failed", st)
        self.assertEqual(st["exit_code"], 7, st)

    def test_descendants_leave(self):
        """descendants = leave: the run ends with the main process."""
        job = self.write("leave.ini", "[monitor]\ndescendants = leave\n")
        self.run_job("lv", "%s 600 & exit 0" % self.sleep, "-c", job)
        st = self.wait_finished("lv")
        self.assertEqual(st["outcome"], "succeeded", st)
        self.assertTrue(marked_pids(self.mark), "the worker should have been left alone")

    def test_descendants_kill(self):
        """descendants = kill: what the main process left is ended; the outcome
        is the main process's."""
        job = self.write("kill.ini", "[monitor]\ndescendants = kill\n")
        self.run_job("kl", "setsid %s 600 & exit 0" % self.sleep, "-c", job)
        st = self.wait_finished("kl")
        self.assertEqual(st["outcome"], "succeeded", st)
        vt.wait_until(lambda: not marked_pids(self.mark), what="the leftover to be ended")

    def test_bad_descendants_value(self):
        job = self.write("bad.ini", "[monitor]\ndescendants = maybe\n")
        r = self.vigil("run", "-c", job, "--", "true")
        self.assertUsageError(r, "descendants", "wait, kill or leave")


class TestStopTree(TreeCase):
    def test_stop_ends_the_whole_tree(self):
        """Children, a setsid'd grandchild and a double-forked one: all gone."""
        self.run_job("tree", "setsid %s 600 & (%s 600 &); %s 600 & echo ready; wait"
                     % (self.sleep, self.sleep, self.sleep))
        vt.wait_until(lambda: len(marked_pids(self.mark)) >= 3, what="the tree to start")
        r = self.vigil("stop", "tree")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("stopped by SIGTERM", r.stdout)
        self.assertEqual(marked_pids(self.mark), [])
        self.wait_finished("tree")

    def test_stop_after_the_main_process_daemonized(self):
        main = self.run_job("daemon", "(setsid %s 600 &); exit 0" % self.sleep)
        self.assert_runs_on("daemon", main)
        r = self.vigil("stop", "daemon")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("not running", r.stdout)
        self.assertIn("stopped by SIGTERM", r.stdout)
        self.assertEqual(marked_pids(self.mark), [])
        st = self.wait_finished("daemon")
        self.assertEqual(st["outcome"], "failed", st)
        self.assertEqual(st["signal"], "SIGTERM", st)

    def test_stopped_job_ends_without_the_grace(self):
        """A SIGSTOPped job gets SIGCONT with the SIGTERM: no SIGKILL needed."""
        pid = self.run_job("frozen", "exec %s 600" % self.sleep)
        vt.wait_until(lambda: marked_pids(self.mark) == [pid], what="the job's exec")
        os.kill(pid, signal.SIGSTOP)
        vt.wait_until(lambda: vt.proc_state(pid) == "T", what="the job to stop")
        t0 = time.monotonic()
        r = self.vigil("stop", "frozen", "--grace", "120s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("stopped by SIGTERM", r.stdout)
        self.assertNotIn("SIGKILL", r.stdout)
        self.assertLess(time.monotonic() - t0, 100, "stop waited for the grace")
        st = self.wait_finished("frozen")
        self.assertEqual(st["signal"], "SIGTERM", st)


class TestAgentAdopts(TreeCase):
    """An agent that restarts follows the `command =` job its earlier life
    started (pid + start time) instead of starting it again."""

    def start_agent(self, ini):
        a = self.start("agent", "--config", ini)
        a.wait_for("err", lambda l: "loaded:" in l, what="the first load")
        self.addCleanup(lambda: self.assertNoCrash(a.err))
        self.addCleanup(a.kill)
        return a

    def test_restarts_adopt_the_running_job(self):
        conf = self.path("conf.d")
        os.mkdir(conf)
        ini = self.write("vigil.ini", "[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s\n"
                         % (conf, self.state, self.path("spool")))
        with open(os.path.join(conf, "long.ini"), "w") as f:
            f.write("[monitor]\ncommand = exec %s 600\ntimeout = 1h\nnotify = json\n" % self.sleep)
        agents = [self.start_agent(ini)]
        vt.wait_until(lambda: len(marked_pids(self.mark)) == 1, what="the job to start")
        pid = marked_pids(self.mark)[0]
        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGTERM):
            old = agents[-1]
            old.p.send_signal(sig)
            old.finish()
            agents.append(self.start_agent(ini))
            agents[-1].wait_for("err", lambda l: "following it" in l, what="the adoption")
            self.assertEqual(marked_pids(self.mark), [pid], "one copy, the same process")
            st = self.status_json("long")
            self.assertEqual((st["run"], st["pid"], st["state"]), (1, pid, "running"), st)
        os.kill(pid, signal.SIGTERM)
        last = agents[-1]
        last.wait_json("finished")
        for a in agents:
            a._pump(0.05)
        finished = [e for a in agents for e in vt.json_lines(a.out)
                    if e.get("kind") == "finished" and e.get("monitor") == "long"]
        self.assertEqual(len(finished), 1, finished)
        self.assertEqual(finished[0]["run"], 1)
        st = vt.wait_until(lambda: (lambda r: r if r["state"] == "finished" else None)(
            self.status_json("long")), what="the record to say finished")
        self.assertEqual(st["run"], 1, st)


if __name__ == "__main__":
    unittest.main(verbosity=2)
