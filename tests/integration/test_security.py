"""Hostile neighbours and hostile input (issue 10): a second, real user plants
links where vigil (as root, or as another user) creates files, and talks to the
agent's control socket. Every attack must leave its target untouched and be
refused with a message that names the folder and the reason. Root only: it
creates throwaway users (and group vigil when missing)."""

import os
import shutil
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

PRECIOUS = "precious: root's own data\n"


def remove_any(path):
    if os.path.islink(path):
        os.unlink(path)
    else:
        shutil.rmtree(path, True)


@unittest.skipIf(vt.user_tools_missing(), vt.user_tools_missing() or "")
class PlantedLinksTest(vt.VigilTestCase):
    """vigil run as root with its files in a folder the attacker owns."""

    def setUp(self):
        super().setUp()
        self.attacker = vt.make_user(self)
        self.shared = self.path("shared")
        os.mkdir(self.shared)
        os.chown(self.shared, self.attacker.uid, self.attacker.gid)
        self.target = self.write("target", PRECIOUS, mode=0o644)

    def plant(self, name, to=None):
        """The attacker, as themselves, links shared/NAME to the target."""
        link = os.path.join(self.shared, name)
        r = vt.run(self.attacker.cmd(["ln", "-s", to or self.target, link]))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.islink(link))
        return link

    def assertUntouched(self, path=None):
        with open(path or self.target) as f:
            self.assertEqual(f.read(), PRECIOUS)

    def test_pid_file_temp_link(self):
        # before: fopen("job.pid.tmp", "w") truncated the target, wrote the PID
        # into it, and rename() made the link the pid file.
        self.plant("job.pid.tmp")
        pid_file = os.path.join(self.shared, "job.pid")
        r = self.vigil("run", "--name", "job", "--pid-file", pid_file,
                       "--log", self.path("job.log"), "--", "sh", "-c", "echo $$")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_finished("job")
        self.assertUntouched()
        self.assertFalse(os.path.islink(pid_file))
        with open(pid_file) as f:
            self.assertTrue(f.read().strip().isdigit())

    def test_pid_file_link(self):
        # A link at the pid file itself is replaced, not written through.
        pid_file = self.plant("job.pid")
        r = self.vigil("run", "--name", "job", "--pid-file", pid_file,
                       "--log", self.path("job.log"), "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_finished("job")
        self.assertUntouched()
        self.assertFalse(os.path.islink(pid_file))

    def test_log_link(self):
        # before: the job's output was appended to the target.
        log = self.plant("job.log")
        r = self.vigil("run", "--name", "job", "--log", log, "--", "echo", "clobbered")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("a symbolic link in %s, a folder others can write: refused"
                      % self.shared, r.stderr)
        self.assertUntouched()

    def test_supervisor_log_link(self):
        # before: the supervisor's own stderr (NAME.log.vigil) went to the target.
        self.plant("job.log.vigil")
        log = os.path.join(self.shared, "job.log")
        r = self.vigil("run", "--name", "job", "--log", log, "--", "echo", "clobbered")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("job.log.vigil: a symbolic link in %s" % self.shared, r.stderr)
        self.assertUntouched()

    def test_log_hard_link_and_foreign_file(self):
        # A regular file of the attacker's, or a hard link the attacker made to
        # a file of theirs: not ours to append to either.
        log = os.path.join(self.shared, "job.log")
        r = vt.run(self.attacker.cmd(["sh", "-c", "echo mine > %s; chmod 666 %s" % (log, log)]))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.vigil("run", "--name", "job", "--log", log, "--", "echo", "leaked")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("owned by another user in %s" % self.shared, r.stderr)
        with open(log) as f:
            self.assertEqual(f.read(), "mine\n")

    def test_own_folder_still_works(self):
        # The trusted case is unchanged: root's own folder, links allowed.
        real = self.path("real.log")
        os.symlink(real, self.path("link.log"))
        r = self.vigil("run", "--name", "job", "--log", self.path("link.log"),
                       "--", "echo", "hello")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.wait_finished("job")["outcome"], "succeeded")
        with open(real) as f:
            self.assertEqual(f.read(), "hello\n")


@unittest.skipIf(vt.user_tools_missing(), vt.user_tools_missing() or "")
class FallbackStateFolderTest(vt.VigilTestCase):
    """A user without XDG_RUNTIME_DIR falls back to /tmp/vigil-UID: another user
    may have made it first."""

    def setUp(self):
        super().setUp()
        self.attacker = vt.make_user(self)
        self.victim = vt.make_user(self)
        self.exe = vt.install_copy(self.path("inst"))
        self.home = self.path("home")
        os.mkdir(self.home, 0o700)
        os.chown(self.home, self.victim.uid, self.victim.gid)
        self.precious = os.path.join(self.home, "precious")
        with open(self.precious, "w") as f:
            f.write(PRECIOUS)
        os.chown(self.precious, self.victim.uid, self.victim.gid)
        # uids of deleted test users come back: start from nothing, leave nothing
        self.fallback = "/tmp/vigil-%d" % self.victim.uid
        remove_any(self.fallback)
        self.addCleanup(remove_any, self.fallback)

    def as_victim(self, *args):
        env = self.victim.env(self.home)  # no XDG_RUNTIME_DIR, no VIGIL_STATE_DIR
        return vt.run(self.victim.cmd([self.exe] + list(args)), env=env, cwd=self.home)

    def test_folder_made_by_another_user(self):
        # before: used as is; the planted link turned the pid file's write into
        # an overwrite of the victim's file, and records could be forged.
        r = vt.run(self.attacker.cmd(["sh", "-c", "mkdir -m 777 %s && ln -s %s %s/job.pid.tmp"
                                      % (self.fallback, self.precious, self.fallback)]))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.as_victim("run", "--name", "job", "--", "true")
        self.assertNoCrash(r.stderr)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("state folder %s" % self.fallback, r.stderr)
        self.assertIn("owned by uid %d" % self.attacker.uid, r.stderr)
        self.assertUntouched()
        self.assertEqual(sorted(os.listdir(self.fallback)), ["job.pid.tmp"])
        r = self.as_victim("status")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("state folder %s" % self.fallback, r.stderr)

    def test_folder_writable_by_others(self):
        os.mkdir(self.fallback)
        os.chown(self.fallback, self.victim.uid, self.victim.gid)
        os.chmod(self.fallback, 0o777)
        r = self.as_victim("run", "--name", "job", "--", "true")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("state folder %s: writable by others" % self.fallback, r.stderr)

    def test_folder_is_a_link(self):
        mine = os.path.join(self.home, "elsewhere")
        r = vt.run(self.attacker.cmd(["ln", "-s", mine, self.fallback]))
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.as_victim("run", "--name", "job", "--", "true")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("state folder %s: a symbolic link" % self.fallback, r.stderr)

    def test_own_fallback_folder_works(self):
        r = self.as_victim("run", "--name", "job", "--", "true")
        self.assertEqual(r.returncode, 0, r.stderr)
        vt.wait_until(lambda: "finished" in self.as_victim("status", "job").stdout,
                      what="the job finished")
        st = os.lstat(self.fallback)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (self.victim.uid, 0o700))

    def assertUntouched(self):
        with open(self.precious) as f:
            self.assertEqual(f.read(), PRECIOUS)


@unittest.skipIf(vt.user_tools_missing(), vt.user_tools_missing() or "")
class AgentInputTest(vt.VigilTestCase):
    """The agent's conf.d and control socket against hostile bytes and peers."""

    def setUp(self):
        super().setUp()
        os.chmod(self.state, 0o755)
        self.vigil_gid = vt.vigil_group(self)
        ini = self.write_agent_ini(defaults="")
        with open(os.path.join(self.conf, "nul.ini"), "wb") as f:
            f.write(b"[monitor]\nmatch = x\n\0bogus = 1\n")
        with open(os.path.join(self.conf, "fine.ini"), "w") as f:
            f.write("[monitor]\nmatch = x\n")
        self.agent = self.start_agent(ini)
        self.sock = os.path.join(self.state, "control.sock")

    def test_nul_in_conf_d(self):
        # before: cut at the NUL, loaded, "1 added".
        nul = os.path.join(self.conf, "nul.ini")
        self.agent.wait_for("err", lambda l: l.endswith("%s:3: a NUL byte: not a text file" % nul),
                            what="the NUL reported")
        loaded = self.agent.wait_for("err", lambda l: "loaded:" in l)
        self.assertIn("1 added", loaded)
        self.assertIn("1 broken", loaded)
        r = self.vigil("check", nul)
        self.assertIn("%s:3: a NUL byte: not a text file" % nul, r.stderr)

    def test_nul_in_socket_check(self):
        # before: "ok".
        body = b"[monitor]\nmatch = x\n\0bogus = 1\n"
        out = vt.ask_socket(self.sock, b"check f.ini %d\n" % len(body) + body)
        self.assertTrue(out.startswith("error: invalid\n"), out)
        self.assertIn("f.ini:3: a NUL byte: not a text file", out)

    def test_busy_answer_not_reset(self):
        # before: with 64 idle clients held, a client that sent its request got
        # ECONNRESET instead of the answer.
        idle = []
        self.addCleanup(lambda: [s.close() for s in idle])
        for _ in range(64):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.sock)
            idle.append(s)
        for _ in range(5):
            self.assertEqual(vt.ask_socket(self.sock, b"status\n", turned_away=True), "error: busy\n")
        r = self.vigil("reload")
        self.assertEqual((r.returncode, r.stderr), (1, "vigil reload: error: busy\n"))
        # The idle ones time out on their own (nothing closed here): then the
        # agent serves again.
        vt.wait_until(lambda: vt.ask_socket(self.sock, b"status\n", turned_away=True).startswith("ok"),
                      timeout=60,
                      what="idle clients timed out")
        idle[0].settimeout(10)
        self.assertEqual(idle[0].recv(100), b"")

    def test_long_success_chain(self):
        # before: accepted by vigil check (and crashed the evaluator when longer).
        body = "[monitor]\nmatch = x\nsuccess = exit\n" + "  and exit and exit\n" * 10000
        f = self.write("long.ini", body)
        r = self.vigil("check", f)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("%s:3: [monitor] success: expression too long" % f, r.stderr)

    def test_big_check_request(self):
        # 256 KB of continuation lines: refused by its shape, cheaply, and the
        # agent answers the next client.
        body = (b"[monitor]\nmatch = x\nsuccess = exit\n" + b"  or exit\n" * 30000)[:256 * 1024]
        out = vt.ask_socket(self.sock, b"check f.ini %d\n" % len(body) + body, timeout=30)
        self.assertEqual(out, "error: check: more than 2000 lines: not a monitor file\n")
        self.assertTrue(vt.ask_socket(self.sock, b"status\n").startswith("ok"))


@unittest.skipIf(vt.user_tools_missing(), vt.user_tools_missing() or "")
class SocketPeersTest(vt.VigilTestCase):
    """The socket as a non-member (refused by the kernel: mode 0660, group vigil)
    and as a member of group vigil."""

    def setUp(self):
        super().setUp()
        os.chmod(self.state, 0o755)
        self.vigil_gid = vt.vigil_group(self)
        self.user = vt.make_user(self)
        ini = self.write_agent_ini(defaults="")
        self.agent = self.start("agent", "--config", ini)
        self.agent.wait_for("err", lambda l: "loaded:" in l, what="the first load")
        self.addCleanup(self.agent.stop)
        self.sock = os.path.join(self.state, "control.sock")
        self.exe = vt.install_copy(self.path("inst"))

    def raw(self, groups):
        """A raw connection and request as the user: the answer, or the error."""
        code = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n"
                " s.connect(%r); s.sendall(b'reload\\n'); print(s.recv(200).decode())\n"
                "except OSError as e:\n print('OSError', e.errno)\n" % self.sock)
        cmd = ["setpriv", "--reuid", str(self.user.uid), "--regid", str(self.user.gid)]
        cmd += ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
        return vt.run(cmd + ["--", "python3", "-c", code], env=self.user.env("/"))

    def test_non_member_refused(self):
        r = self.raw(None)
        self.assertEqual(r.stdout.strip(), "OSError 13", r.stderr)

    def test_member_allowed(self):
        r = self.raw([self.vigil_gid])
        self.assertTrue(r.stdout.startswith("ok"), r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
