"""Progress as tools print it (issue 12, item 2): pv and dd redraw their
progress line with carriage returns and write no newline while they run.
vigil run's job output is the log: progress is reported while the tool runs,
and the last value at its end is the tool's last one (100 %), not the first
value of the whole '\\r' line."""

import json
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

SIZE = 4 * 1000 * 1000   # bytes copied, at RATE: about 4 s per job
RATE = "1m"


def journal_progress(path):
    """The progress events in a run's journal so far."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [e for e in vt.json_lines(text) if e.get("kind") == "progress"]


@unittest.skipUnless(shutil.which("pv"), "pv is not installed (apt-get install pv)")
class ProgressTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.src = self.path("src")
        with open(self.src, "wb") as f:
            f.write(os.urandom(SIZE))

    def run_job(self, name, progress, script):
        r = self.vigil("run", "--state-dir", self.state, "--name", name, "--progress", progress,
                       "--", "sh", "-c", script)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        rec = self.status_json(name)
        return rec["pid"], os.path.join(self.state, name + ".journal")

    def progress_while_running(self, pid, journal):
        """Progress events read from the journal while the job is still alive
        (the read comes first, then the check that it runs)."""
        def seen():
            events = journal_progress(journal)
            return events if events and vt.proc_alive(pid) else None
        try:
            return vt.wait_until(seen, vt.TIMEOUT, 0.05, "progress while the job runs")
        except AssertionError:
            raise AssertionError("no progress while the job ran; journal: %r"
                                 % journal_progress(journal))

    def test_pv(self):
        # pv -f: progress although stderr is not a terminal; -i: redraw 5x a second
        pid, journal = self.run_job(
            "pv", "([0-9]+)%", "pv -f -i 0.2 -L %s %s > /dev/null" % (RATE, self.src))
        during = self.progress_while_running(pid, journal)
        self.assertEqual(during[0]["unit"], "percent", during[0])
        self.assertLess(during[0]["value"], 100, during)
        rec = self.wait_finished("pv")
        self.assertEqual(rec["outcome"], "succeeded", rec)
        values = [e["value"] for e in journal_progress(journal)]
        self.assertGreaterEqual(values[-1], 99, values)
        self.assertEqual(values, sorted(values), "progress went back: %r" % values)
        fin = [e for e in vt.json_lines(open(journal).read()) if e.get("kind") == "finished"]
        self.assertEqual(len(fin), 1, fin)
        if "progress" in fin[0]:  # the finished event's field, where the core sets it
            self.assertGreaterEqual(fin[0]["progress"], 99, fin[0])

    def test_dd_status_progress(self):
        # dd knows no total: its byte count is the progress, compared with SIZE
        pid, journal = self.run_job(
            "dd", "^([0-9]+) bytes",
            "pv -q -L %s %s | dd of=/dev/null bs=64k iflag=fullblock status=progress"
            % (RATE, self.src))
        during = self.progress_while_running(pid, journal)
        self.assertEqual(during[0]["unit"], "count", during[0])
        self.assertLess(during[0]["value"], SIZE, during)
        rec = self.wait_finished("dd")
        self.assertEqual(rec["outcome"], "succeeded", rec)
        values = [e["value"] for e in journal_progress(journal)]
        self.assertGreaterEqual(values[-1], 0.99 * SIZE, values)
        self.assertEqual(values, sorted(values), "progress went back: %r" % values)


if __name__ == "__main__":
    unittest.main()
