#!/usr/bin/python3
"""Bad input: every mistake exits 2 with a message on stderr that names the
file, line and key where there is one, and nothing crashes (the sanitizer CI run
runs these too: assertNoCrash looks for sanitizer reports). Bad pid files are
not errors but states to wait through: vigil warns, naming the file, and waits."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

# A valid target; the config errors below are found before anything is watched.
# (If one were not, the bounded run() would turn the wait into a failure.)
HEAD = "[monitor]\npid = 1\n"
SHORT = 15


class BadInput(vt.VigilTestCase):
    def check(self, *files, exe=None):
        return self.vigil("check", *files, exe=exe, timeout=SHORT)

    def assert_config_error(self, text, line, *needles, name="m.ini"):
        """vigil check and vigil watch -c both refuse the file with FILE:LINE: ..."""
        f = self.write(name, text)
        where = "%s:%d:" % (f, line)
        self.assertUsageError(self.check(f), where, *needles)
        r = self.vigil("watch", "--state-dir", self.state, "-c", f, timeout=SHORT)
        self.assertUsageError(r, where, *needles)
        return f


class TestConfigFiles(BadInput):
    def test_unknown_key(self):
        self.assert_config_error(HEAD + "bogus = 3\n", 3, "[monitor]", "bogus", "unknown key")

    def test_unknown_key_in_plugin_section(self):
        self.assert_config_error(HEAD + "[log]\npath = /tmp/x.log\nfrobnicate = yes\n", 5,
                                 "[log]", "frobnicate")

    def test_unknown_section(self):
        self.assert_config_error(HEAD + "\n[nosuch]\nx = 1\n", 4, "nosuch")

    def test_bad_duration(self):
        self.assert_config_error(HEAD + "[log]\npath = /tmp/x.log\nstall = 10 minutes\n", 5,
                                 "[log]", "stall", "10 minutes")

    def test_bad_duration_in_monitor(self):
        self.assert_config_error(HEAD + "timeout = soon\n", 3, "[monitor]", "timeout", "soon")

    def test_plugin_name_with_slash(self):
        for section in ("../evil", "foo/bar", "/etc/passwd"):
            with self.subTest(section=section):
                self.assert_config_error(HEAD + "[%s]\nx = 1\n" % section, 3, section,
                                         "not a plugin name")

    def test_plugin_path_escape_never_loaded(self):
        """A real plugin sits where [../evil] would point: it must still be refused
        by name, never opened (the message would then be about its descriptor)."""
        root = self.path("inst")
        exe = vt.install_copy(root)
        for src, dst in (("file.so", os.path.join(root, "evil.so")),
                         ("file.so", os.path.join(root, "plugins", "foo", "bar.so"))):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(os.path.join(vt.PLUGIN_DIR, src), "rb") as i, open(dst, "wb") as o:
                o.write(i.read())
        for section in ("../evil", "foo/bar"):
            with self.subTest(section=section):
                f = self.write("m.ini", HEAD + "[%s]\npath = /tmp/x\n" % section)
                r = self.check(f, exe=exe)
                self.assertUsageError(r, "%s:3:" % f, "not a plugin name")
                self.assertNotIn("descriptor", r.stderr)

    def test_other_abi_version(self):
        bad = os.path.join(vt.BUILD_ROOT, "tests", "unit", "bad_abi.so")
        if not os.path.exists(bad):
            self.skipTest("tests/unit/bad_abi.so not built")
        # `vigil check` takes no --plugin-dir: it loads from ../plugins next to
        # its binary, so give it a copied layout with bad_abi.so beside the real ones.
        exe = vt.install_copy(self.path("inst"), extra_plugins=[bad])
        f = self.write("m.ini", HEAD + "[bad_abi]\n")
        r = self.check(f, exe=exe)
        self.assertUsageError(r, "%s:3:" % f, "bad_abi", "ABI")
        # The same refusal when watching (which has --plugin-dir too).
        r = self.vigil("watch", "--state-dir", self.state, "-c", f, exe=exe, timeout=SHORT)
        self.assertUsageError(r, "%s:3:" % f, "ABI")
        r = self.vigil("watch", "--state-dir", self.state, "--plugin-dir",
                       self.path("inst", "plugins"), "-c", f, timeout=SHORT)
        self.assertUsageError(r, "%s:3:" % f, "ABI")

    def test_no_descriptor_symbol(self):
        bad = os.path.join(vt.BUILD_ROOT, "tests", "unit", "no_symbol.so")
        if not os.path.exists(bad):
            self.skipTest("tests/unit/no_symbol.so not built")
        exe = vt.install_copy(self.path("inst"), extra_plugins=[bad])
        f = self.write("m.ini", HEAD + "[no_symbol]\n")
        self.assertUsageError(self.check(f, exe=exe), "%s:3:" % f, "no_symbol", "not a vigil plugin")

    def test_untrusted_plugin_folder(self):
        root = self.path("inst")
        exe = vt.install_copy(root)
        os.chmod(os.path.join(root, "plugins"), 0o777)
        f = self.write("m.ini", HEAD)
        self.assertUsageError(self.check(f, exe=exe), "not trusted")

    def test_missing_config_file(self):
        self.assertUsageError(self.check("/nonexistent.ini"), "/nonexistent.ini")
        r = self.vigil("watch", "--state-dir", self.state, "-c", "/nonexistent.ini",
                       timeout=SHORT)
        self.assertUsageError(r, "/nonexistent.ini")

    def test_not_text(self):
        f = self.path("bin.ini")
        with open(f, "wb") as o:
            o.write(b"[monitor]\npid = 1\x00\xff\xfe\n" + bytes(range(256)) * 8)
        self.assertUsageError(self.check(f), f)

    def test_overlong_line(self):
        self.assertUsageError(self.check(self.write("m.ini", HEAD + "name = " + "x" * 100000 + "\n")),
                              "m.ini:3:")

    def test_syntax_errors(self):
        for text, line in (("[monitor\npid = 1\n", 1), ("pid = 1\n", 1),
                           (HEAD + "[monitor]\n", 3), (HEAD + "just words\n", 3)):
            with self.subTest(text=text):
                self.assertUsageError(self.check(self.write("m.ini", text)), "m.ini:%d:" % line)

    def test_check_valid_file(self):
        f = self.write("ok.ini", HEAD)
        r = self.check(f)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s: OK\n" % f)
        full = self.write("full.ini", "[monitor]\nname = nightly\npid_file = /run/x.pid\n"
                          "expected = 15m\ntimeout = 1h30m\non_timeout = term\n"
                          "success = exit and not failure\n[log]\npath = /var/log/x.log\n"
                          "success = done\nfailure = error|failed\nprogress = ([0-9]+)%\n"
                          "stall = 10m\n")
        r = self.check(f, full)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "%s: OK\n%s: OK\n" % (f, full))

    def test_check_reports_each_file(self):
        good = self.write("good.ini", HEAD)
        bad = self.write("bad.ini", HEAD + "bogus = 1\n")
        r = self.check(good, bad)
        self.assertUsageError(r, "%s:3:" % bad)
        self.assertIn("%s: OK" % good, r.stdout)
        self.assertNotIn("%s: OK" % bad, r.stdout)


class TestCommandLine(BadInput):
    def watch(self, *args):
        return self.vigil("watch", "--state-dir", self.state, *args, timeout=SHORT)

    def test_bad_pids(self):
        for args in (["--pid", "0"], ["--pid", "-1"], ["--pid", "abc"], ["--pid", "12x"],
                     ["--pid", "99999999"], ["99999999"], ["0"]):
            with self.subTest(args=args):
                self.assertUsageError(self.watch(*args), args[-1])

    def test_no_target(self):
        self.assertUsageError(self.watch())

    def test_two_targets(self):
        self.assertUsageError(self.watch("1", "2"), "one target")

    def test_unknown_flag(self):
        self.assertUsageError(self.watch("--bogus"), "--bogus")
        self.assertUsageError(self.vigil("run", "--bogus", "--", "true"), "--bogus")
        self.assertUsageError(self.vigil("status", "--bogus"), "--bogus")
        self.assertUsageError(self.vigil("logs", "--bogus", "x"), "--bogus")
        self.assertUsageError(self.vigil("stop", "--bogus", "x"), "--bogus")

    def test_missing_flag_value(self):
        self.assertUsageError(self.watch("--pid"), "--pid")

    def test_unknown_command(self):
        self.assertUsageError(self.vigil("frobnicate"), "frobnicate")

    def test_run_without_command(self):
        for args in ([], ["--name", "x"], ["--name", "x", "--"]):
            with self.subTest(args=args):
                r = self.vigil("run", "--state-dir", self.state, *args)
                self.assertUsageError(r, "no command")

    def test_run_bad_name(self):
        r = self.vigil("run", "--state-dir", self.state, "--name", "../x", "--", "true")
        self.assertUsageError(r, "../x")

    def test_help_everywhere(self):
        for cmd in ("watch", "run", "status", "logs", "stop", "check", "plugins"):
            with self.subTest(cmd=cmd):
                r = self.vigil(cmd, "--help")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("usage: vigil " + cmd, r.stdout)


class TestBadPidFiles(BadInput):
    """Not errors: vigil warns (naming the file) and waits for it to change."""

    def watch_file(self, pidfile):
        return self.start("watch", "--pid-file", pidfile, "--json", "--state-dir", self.state)

    def assert_warns_and_waits(self, content, needle):
        f = self.write("job.pid", content)
        p = self.watch_file(f)
        line = p.wait_for("err", lambda l: f in l and "warning" in l, what="a warning")
        self.assertIn(needle, line)
        self.assertTrue(p.running(), "vigil gave up instead of waiting:\n" + p.err)
        self.assertNotIn('"attached"', p.out)
        p.stop()
        self.assertNoCrash(p.err)
        return line

    def test_garbage(self):
        self.assert_warns_and_waits("garbage\n", "garbage")

    def test_binary_garbage(self):
        self.assert_warns_and_waits("\x01\x02\xff\n", "not a PID")

    def test_empty(self):
        self.assert_warns_and_waits("", "empty")

    def test_names_no_process(self):
        gone = subprocess.Popen(["true"])
        gone.wait(vt.TIMEOUT)
        self.assertFalse(vt.proc_alive(gone.pid))
        self.assert_warns_and_waits("%d\n" % gone.pid, "does not exist")

    def test_pid_zero(self):
        self.assert_warns_and_waits("0\n", "not a valid PID")

    def test_garbage_then_valid(self):
        """After the warning, a good pid file is picked up (no restart needed)."""
        f = self.write("job.pid", "garbage\n")
        p = self.watch_file(f)
        p.wait_for("err", lambda l: f in l, what="a warning")
        fifo = vt.make_fifo(self.path("go"))
        pid = self.detached("read x < %s" % fifo)
        tmp = f + ".new"
        with open(tmp, "w") as o:
            o.write("%d\n" % pid)
        os.rename(tmp, f)
        self.assertEqual(p.wait_json("attached")["pid"], pid)
        p.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
