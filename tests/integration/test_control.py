"""The agent's control socket: its mode and group, what peer credentials allow
(a user sees and stops only their own jobs unless root or in group vigil), and
malformed, oversized or idle requests, which get an error and never stop the
agent. Root only: it creates throwaway users (and group vigil when missing)."""

import os
import socket
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


@unittest.skipIf(vt.user_tools_missing(), vt.user_tools_missing() or "")
class ControlTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        os.chmod(self.state, 0o755)
        self.vigil_gid = vt.vigil_group(self)
        self.user = vt.make_user(self)
        self.member = vt.make_user(self)
        self.pids = self.path("pids")
        os.mkdir(self.pids)
        os.chmod(self.pids, 0o777)
        conf = self.path("conf.d")
        os.mkdir(conf)
        for name in ("mine", "roots", "other"):
            with open(os.path.join(conf, name + ".ini"), "w") as f:
                f.write("[monitor]\npid_file = %s/%s.pid\nnotify = json\n" % (self.pids, name))
        # A file the user owns: theirs even while nothing runs.
        with open(os.path.join(conf, "owned.ini"), "w") as f:
            f.write("[monitor]\npid_file = %s/owned.pid\n" % self.pids)
        os.chown(os.path.join(conf, "owned.ini"), self.user.uid, self.user.gid)
        ini = self.write("vigil.ini", "[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s\n"
                         % (conf, self.state, self.path("spool")))
        self.agent = self.start("agent", "--config", ini)
        self.agent.wait_for("err", lambda l: "loaded:" in l, what="the first load")
        self.addCleanup(lambda: self.assertNoCrash(self.agent.err))
        self.addCleanup(self.agent.stop)
        self.sock = os.path.join(self.state, "control.sock")
        self.exe = vt.install_copy(self.path("inst"))

    def as_user(self, user, *args, groups=None):
        cmd = ["setpriv", "--reuid", str(user.uid), "--regid", str(user.gid)]
        cmd += ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
        cmd += ["--", self.exe] + list(args)
        return vt.run(cmd, env=user.env("/", self.state))

    def names(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        return sorted(j["name"] for j in vt.json_lines(r.stdout))

    def running(self, name, user=None):
        pid = self.detached("echo $$ > %s/%s.pid; while :; do sleep 0.2; done" % (self.pids, name), user=user)
        self.agent.wait_for("out", lambda l: '"attached"' in l and '"monitor":"%s"' % name in l,
                            what="%s attached" % name)
        return pid

    def test_socket_mode_and_group(self):
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(st.st_gid, self.vigil_gid)
        # Not in group vigil: the kernel refuses the socket, and the records
        # (0600: this folder is not shared with group vigil) tell nothing either.
        r = self.as_user(self.user, "status", "--json")
        self.assertEqual(self.names(r), [])
        r = self.as_user(self.user, "reload")
        self.assertEqual(r.returncode, 2)
        self.assertIn("Permission denied", r.stderr)

    def test_peer_credentials(self):
        self.running("mine", user=self.user)
        root_pid = self.running("roots")
        # The operator opens the socket wider (as an ACL would): peer
        # credentials are what decides now.
        os.chmod(self.sock, 0o666)
        os.chmod(self.state, 0o711)  # no reading the folder around the agent
        r = self.as_user(self.user, "status", "--json")
        self.assertEqual(self.names(r), ["mine", "owned"])
        r = self.as_user(self.user, "stop", "roots")
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(vt.proc_alive(root_pid))
        r = self.as_user(self.user, "reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("permission denied", r.stderr)
        r = self.as_user(self.user, "stop", "mine")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sent by the agent", r.stdout)
        fin = self.agent.wait_json("finished")
        self.assertEqual((fin["monitor"], fin["signal"]), ("mine", "SIGTERM"))
        # A member of group vigil sees and may do everything.
        r = self.as_user(self.member, "status", "--json", groups=[self.vigil_gid])
        self.assertEqual(self.names(r), ["mine", "other", "owned", "roots"])
        r = self.as_user(self.member, "reload", groups=[self.vigil_gid])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.as_user(self.member, "stop", "roots", "--force", groups=[self.vigil_gid])
        self.assertEqual(r.returncode, 0, r.stderr)
        vt.wait_until(lambda: not vt.proc_alive(root_pid), what="roots killed")

    def test_bad_requests(self):
        cases = [
            (b"\x01\x02garbage\n", "error: malformed"),
            (b"frobnicate\n", "error: unknown request"),
            (b"stop\n", "error: unknown request"),
            (b"status a b c d e f\n", "error: malformed"),
            (b"x" * 70000, "error: request line too long"),
            (b"y" * 5000 + b"\n", "error: request line too long"),
            (b"check f.ini 99999999999\n", "error: check: file too large"),
            (b"check f.ini -1\n", "error: check: malformed length"),
            (b"check f.ini 3\nabcdef", "error: more data"),
            (b"stop nosuch\n", 'error: no monitor named "nosuch"'),
        ]
        for data, want in cases:
            self.assertTrue(vt.ask_socket(self.sock, data).startswith(want), (data[:40], want))
        # Idle clients: the rest are told "busy", and the agent lives on.
        idle = []
        for _ in range(70):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.sock)
            idle.append(s)
        idle[-1].settimeout(10)
        self.assertEqual(idle[-1].recv(100), b"error: busy\n")
        for s in idle:
            s.close()
        self.assertTrue(self.agent.running())

        # The agent sees the 70 closes asynchronously: until it has, a new client
        # may still be told "busy" (or reset, when turned away mid-request).
        def served():
            try:
                return vt.ask_socket(self.sock, b"status\n").startswith("ok pid=%d" % self.agent.p.pid)
            except ConnectionResetError:
                return False
        vt.wait_until(served, timeout=10, what="the agent serving again after the idle clients left")

    def test_check_through_the_socket(self):
        body = b"[monitor]\npid_file = /x\nbogus = 1\n"
        out = vt.ask_socket(self.sock, b"check f.ini %d\n" % len(body) + body)
        self.assertTrue(out.startswith("error: invalid\n"), out)
        self.assertIn("f.ini:3: [monitor] bogus", out)
        body = b"[monitor]\nmatch = x\nnotify = json\n"
        self.assertEqual(vt.ask_socket(self.sock, b"check g.ini %d\n" % len(body) + body), "ok\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
