"""vigil check on folders and a vigil.ini in effect (named notifiers, [defaults],
plugin_path) whatever the order of its arguments; and a reload after a broken
[notifier NAME] (it used to log a spurious "already defined")."""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


class CheckTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.etc = self.path("etc")
        self.conf = os.path.join(self.etc, "conf.d")
        os.makedirs(self.conf)
        self.ini = self.write("etc/vigil.ini",
                              "[agent]\nconf_dir = %s\n\n[defaults]\nnotify = team\n\n"
                              "[notifier team]\ntype = stdout\nformat = json\n" % self.conf)

    def monitor(self, name, text):
        return self.write("etc/conf.d/" + name, text)

    def check(self, *args):
        r = self.vigil("check", *args)
        self.assertNoCrash(r.stderr)
        return r

    def test_empty_conf_d_is_clean(self):
        r = self.check(self.conf)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.check("--config", self.ini, self.conf)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_command_keys_without_a_command(self):
        # they would do nothing: said, with file, line and key
        bad = self.monitor("watch.ini", "[monitor]\npid_file = /run/x.pid\nuser = nobody\n"
                           "retry = 2\n")
        r = self.check(bad)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:3: [monitor] user: only for a command vigil starts" % bad, r.stderr)
        self.assertIn("%s:4: [monitor] retry: only for a command vigil starts" % bad, r.stderr)
        # from [defaults] (meant for the command monitors), not an error
        ok = self.monitor("watch.ini", "[monitor]\npid_file = /run/x.pid\n")
        ini = self.write("etc/vigil2.ini", "[agent]\nconf_dir = %s\n\n[defaults]\nretry = 1\n"
                         % self.conf)
        r = self.check("--config", ini, ok)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_folder_and_named_notifier_in_any_order(self):
        good = self.monitor("good.ini", "[monitor]\npid_file = /run/x.pid\nnotify = team\n")
        bad = self.monitor("bad.ini", "[monitor]\npid_file = /run/y.pid\nbogus = 1\n")
        self.write("etc/conf.d/notes.txt", "not a monitor\n")
        for args in ([self.etc], [self.conf, self.ini], [good, bad, self.ini],
                     ["--config", self.ini, self.conf], [self.conf, "--config", self.ini]):
            r = self.check(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn("%s:3: [monitor] bogus:" % bad, r.stderr, args)
            self.assertIn("%s: OK" % good, r.stdout, args)
            self.assertNotIn("notes.txt", r.stdout + r.stderr, args)
        # The monitor first, vigil.ini after it: its notifier is known all the same.
        r = self.check(good, self.ini)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        os.unlink(bad)
        r = self.check(self.etc)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_defaults_of_vigil_ini_apply(self):
        # [defaults] notify = team: without vigil.ini the monitor is fine, with a
        # vigil.ini whose default names an unknown notifier it is not.
        mon = self.monitor("m.ini", "[monitor]\npid_file = /run/x.pid\n")
        other = self.write("other.ini", "[defaults]\nnotify = nowhere\n")
        r = self.check(mon, "--config", other)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("nowhere", r.stderr)
        self.assertIn(mon, r.stderr)

    def test_no_argument_checks_the_config_in_effect(self):
        # Without arguments: vigil.ini in effect ($VIGIL_CONFIG, as for watch
        # and run; else the installed one) and its conf_dir.
        self.monitor("bad.ini", "[monitor]\npid_file = /run/x.pid\nnotify = nobody\n")
        self.env["VIGIL_CONFIG"] = self.ini
        r = self.check()
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertRegex(r.stderr, r"bad.ini:[0-9]+: \[monitor\] notify: unknown notifier")
        self.assertIn("%s: OK" % self.ini, r.stdout)
        r = self.check("--config", self.ini)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("nobody", r.stderr)

    @unittest.skipUnless(shutil.which("make") and shutil.which("cc")
                         and shutil.which("pkg-config"), "the example plugins need a compiler")
    def test_plugin_path_of_vigil_ini(self):
        from test_plugins import build_example
        plug = self.path("plug")
        os.mkdir(plug, 0o755)
        build_example(plug)
        mon = self.monitor("m.ini", "[monitor]\npid_file = /run/x.pid\nnotify = example_jsonl\n"
                           "\n[example_ready]\npath = status\n")
        r = self.check(mon, self.ini)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("example_jsonl", r.stderr)
        with open(self.ini) as f:
            text = f.read()
        with open(self.ini, "w") as f:
            f.write(text.replace("[agent]\n", "[agent]\nplugin_path = %s\n" % plug))
        r = self.check(mon, self.ini)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class ReloadNotifierTest(vt.VigilTestCase):
    def test_reload_after_broken_notifier(self):
        conf = self.path("conf.d")
        os.mkdir(conf)
        ini = self.write("vigil.ini", "[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s\n\n"
                         "[notifier hook]\ntype = webhook\nurl = notaurl\n"
                         % (conf, self.state, self.path("spool")))
        a = self.start("agent", "--config", ini)
        self.addCleanup(lambda: self.assertNoCrash(a.err))
        self.addCleanup(a.stop)
        a.wait_for("err", lambda l: "loaded:" in l, what="the first load")
        self.assertIn("[notifier hook]", a.err)
        r = self.vigil("reload")
        self.assertNotIn("already defined", r.stdout + r.stderr)
        # Still broken: said again, and the reload fails.
        self.assertIn("[notifier hook]", r.stdout)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        # Fixed, the same name is defined now (no restart needed: it never ran).
        with open(ini, "w") as f:
            f.write("[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s\n\n"
                    "[notifier hook]\ntype = stdout\n" % (conf, self.state, self.path("spool")))
        self.write("conf.d/m.ini", "[monitor]\npid_file = %s\nnotify = hook\n"
                   % self.path("m.pid"))
        r = self.vigil("reload")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("added=1", r.stdout)
        a._pump(0.2)
        self.assertNotIn("already defined", a.err)


if __name__ == "__main__":
    unittest.main()
