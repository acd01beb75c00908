#!/usr/bin/python3
"""A `command =` job runs like the same command in a crontab of its `user =`
(issue 11, item 3): `user`, `group`, `working_directory` and `environment` in
[monitor]. Here (no systemd as PID 1) through the direct fallback: the agent's
child drops to the user and group before exec. tests/system/ checks the
transient-unit path under a real systemd."""
import grp
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

# One line the test parses: who, where and with what the job ran.
REPORT = ('echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) pwd=$(pwd) foo=$FOO '
          'bar=$BAR home=$HOME user=$USER"; touch made-by-job')


def parse_report(text):
    line = [ln for ln in text.splitlines() if ln.startswith("uid=")]
    if len(line) != 1:
        raise AssertionError("no report line in the job's log:\n" + text)
    return dict(kv.split("=", 1) for kv in line[0].split(" ") if "=" in kv)


@unittest.skipIf(vt.user_tools_missing(), vt.user_tools_missing() or "")
class JobIdentityTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.user = vt.make_user(self)
        self.work = self.path("work")
        os.mkdir(self.work, 0o700)
        os.chown(self.work, self.user.uid, self.user.gid)
        self.log = self.path("job.log")

    def make_group(self):
        name = "vigiltestg-" + os.urandom(4).hex()
        r = vt.run(["groupadd", "-r", name])
        if r.returncode != 0:
            self.skipTest("groupadd failed: " + r.stderr.strip())
        self.addCleanup(vt.run, ["groupdel", name])
        return grp.getgrnam(name).gr_gid, name

    def watch(self, keys, expect_rc=0):
        ini = self.write("job.ini", "[monitor]\ncommand = %s\nlog = %s\n%s"
                         % (REPORT, self.log, keys))
        r = self.vigil("watch", "--state-dir", self.state, "-c", ini)
        self.assertEqual(r.returncode, expect_rc, r.stdout + r.stderr)
        return r

    def report(self):
        with open(self.log) as f:
            return parse_report(f.read())

    def test_user_working_directory_environment(self):
        self.watch("user = %s\nworking_directory = %s\nenvironment = FOO=hello world\n"
                   "environment = BAR=2\n" % (self.user.name, self.work))
        rep = self.report()
        self.assertEqual((rep["uid"], rep["gid"], rep["groups"]),
                         (str(self.user.uid), str(self.user.gid), str(self.user.gid)), rep)
        self.assertEqual((rep["pwd"], rep["foo"], rep["bar"]), (self.work, "hello", "2"), rep)
        self.assertEqual(rep["user"], self.user.name, rep)
        made = os.stat(os.path.join(self.work, "made-by-job"))
        self.assertEqual((made.st_uid, made.st_gid), (self.user.uid, self.user.gid))
        with open(self.log) as f:
            self.assertIn("foo=hello world bar=2", f.read())

    def test_hooks_run_as_the_job(self):
        # before_retry and on_failure are the job's clean-up steps: the job's
        # user, group, folder and environment, not the agent's root.
        ini = self.write("job.ini", "[monitor]\ncommand = exit 3\nlog = %s\nuser = %s\n"
                         "working_directory = %s\nenvironment = FOO=bar\nretry = 1\n"
                         "retry_delay = 1s\nbefore_retry = echo $(id -u) $(id -g) $(pwd) "
                         "$FOO > before\non_failure = id -u > failure\n"
                         % (self.log, self.user.name, self.work))
        r = self.vigil("watch", "--state-dir", self.state, "-c", ini)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        with open(os.path.join(self.work, "before")) as f:
            self.assertEqual(f.read().split(), [str(self.user.uid), str(self.user.gid),
                                                self.work, "bar"])
        with open(os.path.join(self.work, "failure")) as f:
            self.assertEqual(f.read().strip(), str(self.user.uid))
        self.assertEqual(os.stat(os.path.join(self.work, "before")).st_uid, self.user.uid)

    def test_user_alone_starts_in_home_or_root(self):
        """Like cron: HOME from the account, started there ("/" when it is missing:
        the throwaway user has no home folder)."""
        self.watch("user = %d\n" % self.user.uid, expect_rc=1)  # touch fails in "/"
        rep = self.report()
        self.assertEqual((rep["uid"], rep["pwd"], rep["user"]),
                         (str(self.user.uid), "/", self.user.name), rep)
        self.assertEqual(rep["home"], os.path.expanduser("~" + self.user.name), rep)

    def test_group_without_user(self):
        gid, name = self.make_group()
        self.watch("group = %s\nworking_directory = %s\n" % (name, self.tmp))
        rep = self.report()
        self.assertEqual((rep["uid"], rep["gid"], rep["groups"]), ("0", str(gid), str(gid)), rep)
        self.assertEqual(rep["pwd"], self.tmp, rep)

    def test_user_and_group(self):
        gid, name = self.make_group()
        self.watch("user = %s\ngroup = %s\nworking_directory = %s\n"
                   % (self.user.name, gid, self.tmp), expect_rc=1)  # tmp: not writable
        rep = self.report()
        self.assertEqual((rep["uid"], rep["gid"], rep["groups"]),
                         (str(self.user.uid), str(gid), str(gid)), rep)

    def test_unknown_user_refused_at_start(self):
        r = self.watch("user = vigil-no-such-user\n", expect_rc=2)
        self.assertIn('user "vigil-no-such-user": no such user', r.stderr)
        self.assertFalse(os.path.exists(self.log) and os.path.getsize(self.log))

    def test_working_directory_the_user_cannot_enter(self):
        os.chmod(self.work, 0o700)
        os.chown(self.work, 0, 0)
        r = self.watch("user = %s\nworking_directory = %s\n" % (self.user.name, self.work),
                       expect_rc=2)
        self.assertIn("working_directory: Permission denied", r.stderr)


class EnvironmentSyntaxTest(vt.VigilTestCase):
    def test_bad_entries_refused_by_check(self):
        for bad in ("1FOO=x", "FOO", "=x", "FO-O=x"):
            ini = self.write("bad.ini", "[monitor]\ncommand = true\nenvironment = %s\n" % bad)
            r = self.vigil("check", ini)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("environment", r.stdout + r.stderr, bad)
            self.assertIn("NAME=VALUE", r.stdout + r.stderr, bad)

    def test_good_entries_accepted(self):
        ini = self.write("ok.ini", "[monitor]\ncommand = true\nuser = nobody\ngroup = nogroup\n"
                         "working_directory = /\nenvironment = _A1=x=y\nenvironment = B=\n")
        r = self.vigil("check", ini)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
