"""Third-party plugins (issue 11, item 7): the example detector and notifier of
tests/plugin-example/ built out of tree against the public header with
pkg-config, loaded from a `plugin_path` folder of vigil.ini, used from a
monitor file (`notify = PLUGIN`, a [PLUGIN] detector section), their events
seen; the folders' search order and trust rules; `vigil plugins`."""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

EXAMPLE = os.path.join(vt.SOURCE_ROOT, "tests", "plugin-example")
NAMES = ("example_ready", "example_jsonl")


def build_example(out):
    """make in tests/plugin-example with OUT=out: the header from the source
    tree, the build folder's generated vigil-plugin.pc when there is one."""
    env = dict(os.environ)
    pc_dir = os.path.join(vt.BUILD_ROOT, "meson-private")
    if os.path.exists(os.path.join(pc_dir, "vigil-plugin.pc")):
        env["PKG_CONFIG_PATH"] = pc_dir
    r = subprocess.run(["make", "-C", EXAMPLE, "OUT=" + out,
                        "CPPFLAGS=-I" + os.path.join(vt.SOURCE_ROOT, "core", "include")],
                       capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        raise AssertionError("building the example plugins failed:\n" + r.stdout + r.stderr)
    for n in NAMES:
        os.chmod(os.path.join(out, n + ".so"), 0o644)


MONITOR = """[monitor]
name = ex
command = sh -c 'echo "progress 40" > status; while [ ! -e go ]; do sleep 0.05; done; echo done >> status'
notify = example_jsonl, json

[example_ready]
path = status
"""


@unittest.skipUnless(shutil.which("make") and shutil.which("cc") and shutil.which("pkg-config"),
                     "make, cc and pkg-config are needed to build the example plugins")
class ExamplePluginTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.plug = self.path("plug")
        os.mkdir(self.plug, 0o755)
        os.chmod(self.plug, 0o755)
        build_example(self.plug)
        # A missing folder first: skipped, not an error.
        self.ini = self.write("vigil.ini", "[agent]\nplugin_path = %s:%s\n"
                              % (self.path("nowhere"), self.plug))
        self.env["VIGIL_CONFIG"] = self.ini

    def read_events(self):
        try:
            with open(self.path("vigil-events.jsonl")) as f:
                return vt.json_lines(f.read())
        except FileNotFoundError:
            return []

    def test_example_detector_and_notifier(self):
        mon = self.write("ex.ini", MONITOR)
        p = self.start("watch", "--state-dir", self.state, "-c", mon)
        # The detector's int progress counts as percent while the job runs.
        vt.wait_until(lambda: "40%" in self.vigil("status", "--state-dir", self.state).stdout,
                      vt.TIMEOUT, 0.1, "progress 40% in vigil status")
        with open(self.path("go"), "w"):
            pass
        rc = p.finish()
        self.assertEqual(rc, 0, p.out + p.err)
        self.assertNoCrash(p.err)
        events = self.read_events()
        kinds = [e["kind"] for e in events]
        self.assertIn("progress", kinds, events)
        prog = [e for e in events if e["kind"] == "progress"][0]
        self.assertEqual((prog["value"], prog["unit"], prog["detector"]),
                         (40, "percent", "example_ready"))
        match = [e for e in events if e["kind"] == "match"]
        self.assertEqual(match[0]["pattern"], "success", events)
        self.assertEqual(events[-1]["kind"], "finished", events)
        self.assertEqual(events[-1]["outcome"], "succeeded", events)
        self.assertIn("success line seen", events[-1]["reason"])

    def test_plugins_lists_folders(self):
        r = self.vigil("plugins")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("plugin folder: %s (searched next)" % self.plug, r.stdout)
        self.assertIn("example_ready (detector, %s)" % self.plug, r.stdout)
        self.assertIn("example_jsonl (notifier, %s)" % self.plug, r.stdout)
        self.assertIn("stdout (notifier, ", r.stdout)  # the built-in ones stay

    def test_first_folder_wins(self):
        shutil.copyfile(os.path.join(vt.PLUGIN_DIR, "stdout.so"),
                        os.path.join(self.plug, "stdout.so"))
        os.chmod(os.path.join(self.plug, "stdout.so"), 0o644)
        r = self.vigil("plugins")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        shadowed = os.path.join(self.plug, "stdout.so")
        self.assertIn("%s is ignored" % shadowed, r.stderr)
        self.assertNotIn("stdout (notifier, %s)" % self.plug, r.stdout)

    def test_untrusted_folder(self):
        os.chmod(self.plug, 0o777)
        mon = self.write("ex.ini", MONITOR)
        r = self.vigil("watch", "--state-dir", self.state, "-c", mon)
        self.assertUsageError(r, "example_ready", "not trusted")
        r = self.vigil("plugins")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not trusted", r.stderr)
        self.assertNotIn("example_ready (detector", r.stdout)

    def test_notifier_plugin_needs_its_required_options(self):
        mon = self.write("ex.ini", MONITOR.replace("notify = example_jsonl, json",
                                                   "notify = webhook"))
        r = self.vigil("watch", "--state-dir", self.state, "-c", mon)
        self.assertUsageError(r, "url")


if __name__ == "__main__":
    unittest.main()
