#!/usr/bin/python3
"""Secrets in `notify = webhook:URL` of a monitor file (issue 10, item 9).

A webhook URL holds a secret when it carries credentials (`user:password@` or
just `token@`) or a query (`?token=...`): such a spec in a monitor file that
group or others can read is refused like a [notifier] secret is, with
FILE:LINE: [monitor] notify: ... ; in a private (0600) file it is used. The
secret never shows in a diagnostic, a log line, stdout, the state folder or
`vigil status`, whatever goes wrong."""

import base64
import json
import os
import signal
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vigil_test as vt  # noqa: E402

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PW = "S3cretPW4711"
TOKEN = "T0kenXY9931"


class SecretsTest(vt.VigilTestCase):
    def monitor(self, notify, mode, pid=None):
        text = "[monitor]\npid = %d\nnotify = %s\n" % (pid or os.getpid(), notify)
        return self.write("job.ini", text, mode)

    def assertNoSecret(self, *texts):
        for t in texts:
            self.assertNotIn(PW, t)
            self.assertNotIn(TOKEN, t)

    def state_text(self):
        out = []
        for root, _, files in os.walk(self.state):
            for f in files:
                p = os.path.join(root, f)
                if os.path.isfile(p):
                    with open(p, "rb") as fh:
                        out.append(fh.read().decode("latin-1"))
        return "\n".join(out)

    def assertRefusedReadable(self, notify):
        for mode in (0o644, 0o640):
            path = self.monitor(notify, mode)
            want = "job.ini:3: [monitor] notify: holds a secret"
            r = self.vigil("check", path)
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(want, r.stdout + r.stderr)
            self.assertIn("chmod 600 %s" % path, r.stdout + r.stderr)
            self.assertNoSecret(r.stdout, r.stderr)
            r = self.vigil("watch", "--state-dir", self.state, "--plugin-dir", vt.PLUGIN_DIR,
                           "-c", path)
            self.assertUsageError(r, want)
            self.assertNoSecret(r.stdout, r.stderr)
        print("%s: %s" % (self._testMethodName, r.stderr.strip().splitlines()[0]))

    def test_credentials_in_readable_file_refused(self):
        self.assertRefusedReadable("json, webhook:https://user:%s@127.0.0.1:9/h" % PW)
        self.assertRefusedReadable("webhook:https://%s@127.0.0.1:9/h" % TOKEN)

    def test_query_token_in_readable_file_refused(self):
        self.assertRefusedReadable("webhook:https://127.0.0.1:9/h?token=%s" % TOKEN)

    def test_group_vigil_may_read_a_secret(self):
        """The package ships vigil.ini 0640 root:vigil: the agent's group may read
        a secret, no other group may, and nobody but the owner may write."""
        if os.geteuid() != 0:
            self.skipTest("needs root (groupadd, chgrp)")
        if vt.run(["getent", "group", "vigil"]).returncode != 0:
            r = vt.run(["groupadd", "-r", "vigil"])
            if r.returncode != 0:
                self.skipTest("groupadd vigil failed: " + r.stderr)
            self.addCleanup(vt.run, ["groupdel", "vigil"])
        import grp
        gid = grp.getgrnam("vigil").gr_gid
        notify = "webhook:https://user:%s@127.0.0.1:9/h" % PW
        path = self.monitor(notify, 0o640)
        os.chown(path, 0, gid)
        r = self.vigil("check", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for mode in (0o660, 0o644):
            os.chmod(path, mode)
            r = self.vigil("check", path)
            self.assertNotEqual(r.returncode, 0, "mode %o accepted" % mode)
            self.assertIn("or 640 with group vigil", r.stdout + r.stderr)
            self.assertNoSecret(r.stdout, r.stderr)

    def test_plain_url_in_readable_file_accepted(self):
        r = self.vigil("check", self.monitor("webhook:https://hooks.example/x/y", 0o644))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_private_file_used_secret_never_shown(self):
        log = self.path("requests.jsonl")
        srv = subprocess.Popen([PYTHON, os.path.join(HERE, "http_receiver.py"), "--log", log,
                                "--mode", "500"], stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (srv.kill(), srv.wait(), srv.stdout.close()))
        port = int(srv.stdout.readline())
        target = subprocess.Popen(["sleep", "300"])
        self.addCleanup(lambda: (target.poll() is None and target.kill(), target.wait()))
        path = self.monitor("json, webhook:http://user:%s@127.0.0.1:%d/hook?token=%s"
                            % (PW, port, TOKEN), 0o600, target.pid)
        p = self.start("watch", "--state-dir", self.state, "--plugin-dir", vt.PLUGIN_DIR,
                       "-c", path, "--deliver-timeout", "60s")
        p.wait_json("attached")
        p.wait_for("err", lambda l: "not delivered" in l, what="a failed delivery")
        # The credentials did reach the receiver: the URL was used as written.
        with open(log) as f:
            req = json.loads(f.readline())
        self.assertEqual(req["path"], "/hook?token=" + TOKEN)
        self.assertEqual(req["headers"]["Authorization"],
                         "Basic " + base64.b64encode(("user:" + PW).encode()).decode())
        st = self.vigil("status", "--json")
        target.kill()
        p.wait_json("finished")
        p.stop(signal.SIGTERM)
        self.assertNoCrash(p.err)
        self.assertNoSecret(p.out, p.err, st.stdout, st.stderr, self.state_text())

    def test_broken_specs_never_echo_the_secret(self):
        # Private file: the readable-file check must not hide the other errors.
        for notify in ("webhook:user:%s@127.0.0.1/h" % PW,           # no scheme
                       "webhook:ftp://user:%s@127.0.0.1/h" % PW,     # not http(s)
                       "webhook:https://127.0.0.1/h?token=%s, ," % TOKEN):  # empty spec
            path = self.monitor(notify, 0o600)
            r = self.vigil("check", path)
            self.assertNotEqual(r.returncode, 0, notify)
            self.assertIn("job.ini", r.stdout + r.stderr)
            self.assertNoSecret(r.stdout, r.stderr)
            r = self.vigil("watch", "--state-dir", self.state, "--plugin-dir", vt.PLUGIN_DIR,
                           "-c", path)
            self.assertUsageError(r)
            self.assertNoSecret(r.stdout, r.stderr)
            print("%s: %s" % (notify.split(":")[1], r.stderr.strip()))


if __name__ == "__main__":
    unittest.main(verbosity=2)
