"""vigil agent from the build tree: conf.d with good and broken monitors, reload
(SIGHUP and `vigil reload`) adding, removing and changing monitors while unchanged
ones are left alone, recurring pid_file monitors, run numbers across a restart."""

import json
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


class AgentTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.ini = self.write_agent_ini()
        self.token = "vigil-agent-test-%d" % os.getpid()

    def monitor(self, name, text):
        with open(os.path.join(self.conf, name), "w") as f:
            f.write(text)

    def events(self, agent, monitor=None):
        out = []
        for e in vt.json_lines(agent.out):
            if monitor is None or e.get("monitor") == monitor:
                out.append(e)
        return out

    def wait_event(self, agent, monitor, kind, run):
        def seen():
            agent._pump(0.05)
            return [e for e in self.events(agent, monitor)
                    if e["kind"] == kind and e["run"] == run]
        return vt.wait_until(seen, 15, what="%s run %d %s" % (monitor, run, kind))[0]

    def job(self, pidfile, code=0):
        """A job that writes its pid file, waits a moment and exits with code."""
        return self.detached("echo $$ > %s; sleep 1; exit %d" % (pidfile, code))

    def grep_job(self):
        """A process whose argv[0] is the token (no shell around it to match)."""
        job = subprocess.Popen([self.token + "-grep", "1"], executable="/bin/sleep")
        self.addCleanup(job.wait, 10)
        self.addCleanup(job.kill)
        return job

    def status(self):
        r = self.vigil("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return {j["name"]: j for j in vt.json_lines(r.stdout)}

    def test_conf_d_reload_and_restart(self):
        nightly = self.path("nightly.pid")
        self.monitor("nightly.ini", "[monitor]\npid_file = %s\n" % nightly)
        self.monitor("grep.ini", "[monitor]\nmatch = ^%s-grep\n" % self.token)
        self.monitor("broken.ini", "[monitor]\npid_file = /x\nbogus = 1\n")
        a = self.start_agent()
        line = a.wait_for("err", lambda l: "broken.ini:3:" in l, what="the broken file")
        self.assertIn("bogus", line)
        self.assertIn("2 added", a.err)

        # A recurring pid_file monitor: two runs, two reports, its exit codes known.
        self.job(nightly, 0)
        self.assertEqual(self.wait_event(a, "nightly", "finished", 1)["outcome"], "succeeded")
        self.job(nightly, 3)
        fin = self.wait_event(a, "nightly", "finished", 2)
        self.assertEqual(fin["outcome"], "failed")
        if os.geteuid() == 0:
            self.assertEqual(fin["exit_code"], 3)

        # The match monitor runs once before the reload.
        self.grep_job()
        self.wait_event(a, "grep", "finished", 1)

        # Reload (SIGHUP): grep changed, extra added; nightly unchanged.
        before = len(self.events(a, "nightly"))
        self.monitor("grep.ini", "[monitor]\nmatch = ^%s-grep\nexpected = 1h\n" % self.token)
        self.monitor("extra.ini", "[monitor]\npid_file = %s\n" % self.path("extra.pid"))
        a.p.send_signal(signal.SIGHUP)
        a.wait_for("err", lambda l: "reload: 1 added, 1 changed, 0 removed, 1 unchanged, 1 broken"
                   in l, what="the reload summary")
        self.assertEqual(len(self.events(a, "nightly")), before, "an unchanged monitor repeated events")
        st = self.status()
        self.assertEqual(st["nightly"]["run"], 2)
        self.assertEqual(st["grep"]["run"], 1, "a changed monitor keeps its run number")
        self.assertIn("extra", st)

        # Unchanged and changed monitors continue their numbering.
        self.job(nightly, 0)
        self.wait_event(a, "nightly", "finished", 3)
        self.grep_job()
        self.wait_event(a, "grep", "finished", 2)

        # vigil reload: extra removed (and its record gone).
        os.unlink(os.path.join(self.conf, "extra.ini"))
        r = self.vigil("reload")
        # broken.ini is still broken: the reload applies the rest and fails.
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("removed=1", r.stdout)
        self.assertIn("unchanged=2", r.stdout)
        self.assertIn("broken.ini:3:", r.stdout)
        self.assertNotIn("extra", self.status())
        self.assertFalse(os.path.exists(os.path.join(self.state, "extra.run")))

        # A broken vigil.ini fails the reload too (it reported broken=0 before);
        # the monitors keep running; fixed, the reload succeeds.
        with open(self.ini) as f:
            good_ini = f.read()
        with open(self.ini, "w") as f:
            f.write(good_ini + "[agent\n")
        r = self.vigil("reload")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"broken=[1-9]")
        with open(self.ini, "w") as f:
            f.write(good_ini)
        os.unlink(os.path.join(self.conf, "broken.ini"))
        r = self.vigil("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # Human table: aligned columns, every monitor.
        table = self.vigil("status").stdout.splitlines()
        self.assertTrue(table[0].startswith("NAME"), table)
        self.assertEqual(sorted(l.split()[0] for l in table[1:]), ["grep", "nightly"])

        # SIGTERM: a clean stop; a restart continues the numbering.
        self.assertEqual(a.stop(), 0)
        self.assertIn("stopping", a.err)
        self.assertFalse(os.path.exists(os.path.join(self.state, "control.sock")))
        b = self.start_agent()
        self.job(nightly, 0)
        self.assertEqual(self.wait_event(b, "nightly", "finished", 4)["outcome"], "succeeded")
        self.assertEqual([e for e in self.events(b, "nightly") if e["run"] < 4], [])

    def test_second_agent_refused(self):
        self.monitor("one.ini", "[monitor]\npid_file = %s\n" % self.path("one.pid"))
        self.start_agent()
        r = self.vigil("agent", "--config", self.ini)
        self.assertEqual(r.returncode, 2)
        self.assertIn("another agent", r.stderr)

    def test_broken_vigil_ini(self):
        bad = self.write("bad.ini", "[agent]\nnope = 1\n")
        r = self.vigil("agent", "--config", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.ini:2:", r.stderr)

    def test_sd_notify(self):
        import socket
        path = self.path("notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        s.settimeout(15)
        self.addCleanup(s.close)
        env = dict(self.env, NOTIFY_SOCKET=path)
        a = self.start("agent", "--config", self.ini, env=env)
        self.assertEqual(s.recv(4096), b"READY=1")
        a.p.send_signal(signal.SIGHUP)
        msg = s.recv(4096).decode()
        self.assertTrue(msg.startswith("RELOADING=1\nMONOTONIC_USEC="), msg)
        self.assertEqual(s.recv(4096), b"READY=1")
        a.p.send_signal(signal.SIGTERM)
        self.assertEqual(s.recv(4096), b"STOPPING=1")
        self.assertEqual(a.finish(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
