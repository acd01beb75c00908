#!/usr/bin/python3
"""`vigil run`, one truth per job (DESIGN.md): the values of `-c FILE` hold
unless a flag overrides them (name, log, and a [log] detector that follows the
job's own output); runs of one name are numbered 1, 2, ... across invocations,
also after `vigil forget` (the history remembers), and every place that carries
the number agrees; after `--retry-command` the `attached` event shows the
command that actually runs."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


class TestRunFix(vt.VigilTestCase):
    def run_ok(self, *args):
        r = self.vigil("run", "--state-dir", self.state, *args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def journal(self, name):
        with open(os.path.join(self.state, name + ".journal")) as f:
            return [json.loads(line) for line in f if line.strip()]

    def read(self, path):
        with open(path) as f:
            return f.read()

    def default_logs(self):
        logs = os.path.join(self.state, "logs")
        return sorted(n for n in os.listdir(logs) if n.endswith(".log")) \
            if os.path.isdir(logs) else []

    # ---------------------------------------------------------- 1. -c FILE
    def test_file_name_and_log_hold_without_flags(self):
        custom = self.path("out", "custom.log")
        os.mkdir(self.path("out"))
        ini = self.write("job.ini", "[monitor]\nname = nightly\nlog = %s\n" % custom)
        out = self.run_ok("-c", ini, "--", "sh", "-c", "echo hello-from-job")
        self.assertIn("started nightly", out)
        self.assertIn("log:      " + custom, out)
        st = self.wait_finished("nightly")
        self.assertEqual((st["outcome"], st["log"]), ("succeeded", custom), st)
        self.assertEqual(self.read(custom), "hello-from-job\n")
        self.assertEqual(self.default_logs(), [])
        self.assertFalse(os.path.exists(os.path.join(self.state, "sh.run")))

    def test_file_alone_names_and_runs_the_job(self):
        # The INI contract: name defaults to the file name without .ini, and
        # the file's command = runs when nothing follows --.
        ini = self.write("nightly-export.ini",
                         "[monitor]\ncommand = echo from-the-file; exit 3\n")
        out = self.run_ok("-c", ini)
        self.assertIn("started nightly-export", out)
        st = self.wait_finished("nightly-export")
        self.assertEqual((st["outcome"], st["exit_code"]), ("failed", 3), st)
        self.assertEqual(self.read(st["log"]), "from-the-file\n")
        r = self.vigil("run", "--state-dir", self.state, "-c", self.write("empty.ini", ""))
        self.assertUsageError(r, "no command")

    def test_flags_win_over_the_file(self):
        custom = self.path("custom.log")
        ini = self.write("job.ini", "[monitor]\nname = nightly\nlog = %s\n" % custom)
        mine = self.path("mine.log")
        out = self.run_ok("-c", ini, "--name", "flagged", "--log", mine, "--",
                          "sh", "-c", "echo from-flags")
        self.assertIn("started flagged", out)
        st = self.wait_finished("flagged")
        self.assertEqual(st["log"], mine, st)
        self.assertEqual(self.read(mine), "from-flags\n")
        self.assertFalse(os.path.exists(custom))
        self.assertFalse(os.path.exists(os.path.join(self.state, "nightly.run")))

    def test_log_section_follows_the_files_log(self):
        custom = self.path("custom.log")
        ini = self.write("job.ini", "[monitor]\nname = scan\nlog = %s\n\n"
                         "[log]\nfailure = boom\n" % custom)
        self.run_ok("-c", ini, "--", "sh", "-c", "echo boom; exit 0")
        st = self.wait_finished("scan")
        self.assertEqual((st["outcome"], st["exit_code"], st["log"]), ("failed", 0, custom), st)
        self.assertEqual(self.read(custom), "boom\n")
        matches = [e for e in self.journal("scan") if e["kind"] == "match"]
        self.assertEqual([m["line"] for m in matches], ["boom"], matches)

    # ------------------------------------------------------- 2. run numbers
    def run_numbered(self, name):
        self.run_ok("--name", name, "--", "sh", "-c", 'echo "$VIGIL_RUN" >> runs.txt')
        return self.wait_finished(name)

    def test_runs_numbered_across_invocations_and_forget(self):
        for n in (1, 2, 3):
            st = self.run_numbered("nightly")
            self.assertEqual(st["run"], n, st)
            self.assertEqual({e["run"] for e in self.journal("nightly")}, {n})
        r = self.vigil("forget", "nightly")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.state, "nightly.run")))
        st = self.run_numbered("nightly")  # the history remembers
        self.assertEqual(st["run"], 4, st)
        self.assertEqual(self.read(self.path("runs.txt")).split(), ["1", "2", "3", "4"])
        r = self.vigil("history", "--json", "nightly")
        self.assertEqual(r.returncode, 0, r.stderr)
        runs = vt.json_lines(r.stdout)[0]["runs"]
        self.assertEqual([x["run"] for x in runs], [1, 2, 3, 4], runs)
        self.assertEqual({e["run"] for e in self.journal("nightly")}, {4})

    # --------------------------------------------- 3. attached after a retry
    def test_attached_shows_the_retry_command(self):
        self.run_ok("--name", "resume", "--retry", "2", "--retry-delay", "1s",
                    "--retry-command", "echo resumed >> trail; exit 1",
                    "--", "sh", "-c", "echo first >> trail; exit 1")
        st = self.wait_finished("resume", timeout=60)
        self.assertEqual((st["outcome"], st["attempt"]), ("failed", 3), st)
        self.assertEqual(self.read(self.path("trail")), "first\nresumed\nresumed\n")
        attached = [e for e in self.journal("resume") if e["kind"] == "attached"]
        self.assertEqual([e["cmdline"] for e in attached],
                         ["sh -c 'echo first >> trail; exit 1'"]
                         + ["echo resumed >> trail; exit 1"] * 2, attached)
        for e in attached:
            self.assertIn(e["cmdline"], e["message"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
