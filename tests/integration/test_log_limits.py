"""A hostile log pattern cannot freeze the agent (issue 10, item 4).

One monitor's failure pattern backtracks catastrophically (`(a+)+$|ERROR`) on
thousands of lines shaped to trigger it, written while the test runs; the
other monitors of the same agent must carry on as if it were not there: a
short job's exit is reported promptly, a timeout fires, the control socket
answers. The pattern that hits PCRE2's limits is reported once, as a warning
for its monitor, and the lines after the hostile ones are still matched."""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

EVIL_LINE = "a" * 30 + "b\n"  # (a+)+$ tries 2^30 ways on each of these
EVIL_BATCH = 2000

# Generous bounds for a loaded 2-core machine under sanitizers: a frozen loop
# (what this guards against) takes minutes, not seconds.
PROMPT_S = 2.0
CONTROL_S = 5.0


class EvilWriter(threading.Thread):
    """Keeps appending batches of hostile lines until stopped, so the agent
    is busy with them during every measurement."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.halt = threading.Event()
        self.batches = 0

    def run(self):
        while not self.halt.is_set():
            with open(self.path, "a") as f:
                f.write(EVIL_LINE * EVIL_BATCH)
            self.batches += 1
            self.halt.wait(0.2)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LogLimitsTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.ini = self.write_agent_ini()

    def monitor(self, name, text):
        with open(os.path.join(self.conf, name + ".ini"), "w") as f:
            f.write(text)

    def event(self, agent, monitor, kind, timeout=vt.TIMEOUT):
        def seen():
            agent._pump(0.05)
            return [e for e in vt.json_lines(agent.out)
                    if e.get("monitor") == monitor and e.get("kind") == kind]
        return vt.wait_until(seen, timeout, 0.01, "%s %s" % (monitor, kind))[0]

    def test_evil_pattern_does_not_hold_the_loop(self):
        evil_log = self.write("evil.log", "")
        evil_pid = self.path("evil.pid")
        short_pid = self.path("short.pid")
        slow_pid = self.path("slow.pid")
        go = self.path("go")
        self.monitor("evil", "[monitor]\npid_file = %s\n\n[log]\npath = %s\n"
                     "failure = (a+)+$|ERROR\n" % (evil_pid, evil_log))
        self.monitor("short", "[monitor]\npid_file = %s\n" % short_pid)
        self.monitor("slow", "[monitor]\npid_file = %s\ntimeout = 1s\non_timeout = notify\n"
                     % slow_pid)
        vt.make_fifo(go)
        a = self.start_agent()
        self.detached("echo $$ > %s; sleep 600; true" % evil_pid)
        self.event(a, "evil", "attached")

        writer = EvilWriter(evil_log)
        self.addCleanup(writer.halt.set)
        writer.start()
        # The agent is chewing on hostile lines from here on.
        a.wait_for("err", lambda l: "evil" in l and "limit" in l, what="the limit warning")
        cpu_before = cpu_seconds(a.p.pid)

        # A short job ends: reported at once although the evil monitor is busy.
        job = self.detached("echo $$ > %s; read x < %s; exit 3" % (short_pid, go))
        self.event(a, "short", "attached")
        vt.release_fifo(go)
        vt.wait_until(lambda: not vt.proc_alive(job), vt.TIMEOUT, 0.005, "the short job to end")
        ended = time.monotonic()
        fin = self.event(a, "short", "finished")
        took = time.monotonic() - ended
        self.assertLess(took, PROMPT_S, "the short job's end was reported %.2f s late" % took)
        sys.stderr.write("short job's end reported after %.3f s\n" % took)
        self.assertEqual(fin["outcome"], "failed")

        # The control socket answers while the evil monitor is still busy.
        t0 = time.monotonic()
        r = self.vigil("reload", timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(took, CONTROL_S, "vigil reload took %.2f s" % took)
        sys.stderr.write("vigil reload answered in %.3f s\n" % took)

        # A timeout fires on time: 1 s limit, reported within PROMPT_S of it.
        self.detached("echo $$ > %s; sleep 600; true" % slow_pid)
        att = time.monotonic()
        self.event(a, "slow", "attached")
        self.event(a, "slow", "timeout", timeout=vt.TIMEOUT)
        took = time.monotonic() - att
        self.assertLess(took, 1.0 + PROMPT_S, "the 1 s timeout fired after %.2f s" % took)
        sys.stderr.write("1 s timeout reported after %.3f s\n" % took)

        # All of that while the agent was busy matching hostile lines.
        busy = cpu_seconds(a.p.pid) - cpu_before
        sys.stderr.write("agent CPU meanwhile: %.2f s\n" % busy)
        self.assertGreater(busy, 0.1, "the agent was not kept busy: the test proves nothing")
        writer.halt.set()
        writer.join(10)

        # Nothing after the hostile lines is lost: a real failure line still counts.
        with open(evil_log, "a") as f:
            f.write("ERROR: the real one\n")
        m = self.event(a, "evil", "match", timeout=vt.TIMEOUT)
        self.assertEqual(m["line"], "ERROR: the real one")
        self.assertEqual(m["pattern"], "failure")

        warnings = [l for l in a.err.splitlines() if "evil" in l and "limit" in l]
        self.assertEqual(len(warnings), 1, "the limit warning is not once:\n" + a.err)


if __name__ == "__main__":
    unittest.main()
