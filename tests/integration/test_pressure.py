"""Pressure that is not missed (issue 12, item 5): a disk filled in a few
seconds, well inside the default 10 s interval, is reported before the fill
ends, with a predicted time to full; --pressure-interval is the [pressure]
interval key on the command line."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

MIB = 1024 * 1024
TMPFS_MIB = 64
FILL_MIB = 62         # leaves 2 MiB free at the end
MIN_FREE_MIB = 32     # crossed with 30 MiB still to write
# One MiB per dd, paced: about 5 s for the fill on an idle machine, longer
# (never shorter) on a loaded one.
FILL = ('i=0; while [ $i -lt %d ]; do dd if=/dev/zero of=%s bs=1M count=1 seek=$i '
        'conv=notrunc status=none || exit 1; i=$((i+1)); sleep 0.08; done')


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class PressureTest(vt.VigilTestCase):
    def mount_tmpfs(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        mnt = self.path("mnt")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % TMPFS_MIB, "vigil-test",
                            mnt], capture_output=True, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount tmpfs here: " + r.stderr.strip())
        self.addCleanup(subprocess.run, ["umount", "-l", mnt])
        return mnt

    def watch_disk(self, mnt, *extra):
        target = self.detached("sleep 600")
        w = self.start("watch", "--pid", target, "--disk", "%s:%dM" % (mnt, MIN_FREE_MIB),
                       "--json", "--state-dir", self.state, *extra)
        w.wait_json("attached")
        return w

    def test_fast_fill_reported_before_it_ends(self):
        mnt = self.mount_tmpfs()
        w = self.watch_disk(mnt)  # the default interval: 10 s
        writer = subprocess.Popen(["sh", "-c", FILL % (FILL_MIB, os.path.join(mnt, "fill"))])
        self.addCleanup(writer.kill)
        p = w.wait_json("pressure", timeout=120)
        self.assertEqual(writer.wait(120), 0)
        final = free_bytes(mnt)
        self.assertEqual(p["resource"], "disk")
        self.assertEqual(p["path"], mnt)
        self.assertEqual(p["threshold"], MIN_FREE_MIB * MIB)
        self.assertLess(p["value"], MIN_FREE_MIB * MIB)
        # Sampled while the fill went on: clearly more free than at its end.
        self.assertGreater(p["value"], final + 4 * MIB,
                           "reported only after the fill ended: %r" % p)
        self.assertIsInstance(p["eta_full"], (int, float), p)
        self.assertGreater(p["eta_full"], 0)
        self.assertLess(p["eta_full"], 60, "a 5 s fill predicted as slow: %r" % p)
        self.assertIn(", full in about ", p["message"])
        print("\nfast fill (tmpfs %d MiB, %d MiB in ~5 s, min free %d MiB, default interval): "
              "reported at %.1f MiB free (end: %.1f MiB), eta_full %.1fs; %s"
              % (TMPFS_MIB, FILL_MIB, MIN_FREE_MIB, p["value"] / MIB, final / MIB,
                 p["eta_full"], p["message"]))
        w.stop()
        self.assertNoCrash(w.err)

    def test_pressure_interval_flag_is_the_ini_key(self):
        r = self.vigil("watch", "--pid", "1", "--disk", "/:1K", "--pressure-interval", "1ms",
                       "--state-dir", self.state)
        self.assertUsageError(r, "interval", "1ms")
        r = self.vigil("watch", "--pid", "1", "--disk", "/:1K", "--pressure-interval", "soon",
                       "--state-dir", self.state)
        self.assertUsageError(r, "soon")

    def test_pressure_interval_flag_wins_over_the_file(self):
        """-c FILE plus flags: the flag replaces the file's [pressure] interval."""
        mnt = self.mount_tmpfs()
        with open(os.path.join(mnt, "fill"), "wb") as f:
            f.write(b"\0" * (48 * MIB))
        target = self.detached("sleep 600")
        ini = self.write("mon.ini", "[monitor]\npid = %d\n\n[pressure]\ndisk = %s:%dM\n"
                         "interval = 1ms\n" % (target, mnt, MIN_FREE_MIB))
        r = self.vigil("watch", "-c", ini, "--state-dir", self.state)
        self.assertUsageError(r, "interval")
        w = self.start("watch", "-c", ini, "--pressure-interval", "200ms", "--json",
                       "--state-dir", self.state)
        p = w.wait_json("pressure")
        self.assertEqual(p["resource"], "disk")
        self.assertIsNone(p["eta_full"], "nothing was falling: %r" % p)
        w.stop()
        self.assertNoCrash(w.err)

if __name__ == "__main__":
    unittest.main(verbosity=2)
