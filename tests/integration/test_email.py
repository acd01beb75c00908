#!/usr/bin/python3
"""The email notifier against a real SMTP server on loopback
(tests/integration/smtp_receiver.py, Debian's python3-aiosmtpd): the mail of a
finished `vigil run`, parsed with Python's email package: headers (From, To,
Subject, Date, Message-ID), the body (outcome, exit status, log tail), and no
header injected by a CR/LF in a log line or a monitor name.

`--notify email:ADDRESS` cannot name the server, so a [notifier mail] in a
vigil.ini given through VIGIL_CONFIG does."""

import email
import email.policy
import email.utils
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


from vigil_test import PLUGIN_DIR as PLUGINS, VIGIL, wait_until  # noqa: E402


def have_aiosmtpd():
    r = subprocess.run([sys.executable, "-c", "import aiosmtpd"], capture_output=True)
    return r.returncode == 0



@unittest.skipUnless(have_aiosmtpd(), "python3-aiosmtpd is not installed")
class EmailTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-email-")
        self.mail = os.path.join(self.tmp, "mail")
        self.smtp = subprocess.Popen([sys.executable, os.path.join(HERE, "smtp_receiver.py"),
                                      "--dir", self.mail], stdout=subprocess.PIPE, text=True)
        self.port = int(self.smtp.stdout.readline())
        self.state = os.path.join(self.tmp, "state")

    def tearDown(self):
        self.smtp.terminate()
        try:
            self.smtp.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.smtp.kill()
            self.smtp.wait()
        self.smtp.stdout.close()
        # The supervisor of `vigil run` exits once delivered (or at its
        # deliver_timeout); stop any left behind.
        subprocess.run([VIGIL, "stop", "--state-dir", self.state, "--force", "nightly"],
                       capture_output=True, timeout=30)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def ini(self, extra=""):
        path = os.path.join(self.tmp, "vigil.ini")
        with open(path, "w") as f:
            f.write("[notifier mail]\ntype = email\nurl = smtp://127.0.0.1:%d\n"
                    "from = Vigil <vigil@example.com>\nto = ops@example.com\n"
                    "to = dev@example.com\non = finished\n%s" % (self.port, extra))
        os.chmod(path, 0o600)
        return path

    def run_job(self, ini, script, name="nightly"):
        env = dict(os.environ, VIGIL_CONFIG=ini)
        r = subprocess.run([VIGIL, "run", "--state-dir", self.state, "--plugin-dir", PLUGINS,
                            "--name", name, "--notify", "mail",
                            "--log", os.path.join(self.tmp, "job.log"), "--failure", "ERR",
                            "--", "sh", "-c", script],
                           env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def messages(self):
        if not os.path.isdir(self.mail):
            return []
        return sorted(f for f in os.listdir(self.mail) if f.endswith(".eml"))

    def parse(self, name):
        with open(os.path.join(self.mail, name), "rb") as f:
            raw = f.read()
        return raw, email.message_from_bytes(raw, policy=email.policy.default)

    def test_finished_run_mail(self):
        self.run_job(self.ini(), 'echo "step one done"; echo "step two done"; '
                     'printf "ERR disk \\r\\nBcc: evil@attacker.example\\n"; exit 3')
        name = wait_until(self.messages, timeout=30, what="the mail")[0]
        raw, msg = self.parse(name)
        # Envelope and headers.
        self.assertIn("X-Envelope-To: ops@example.com, dev@example.com", raw.decode("latin-1"))
        self.assertEqual(msg["From"].addresses[0].addr_spec, "vigil@example.com")
        self.assertEqual(sorted(a.addr_spec for a in msg["To"].addresses),
                         ["dev@example.com", "ops@example.com"])
        self.assertIn("nightly", msg["Subject"])
        self.assertIn("failed", msg["Subject"])
        date = email.utils.parsedate_to_datetime(msg["Date"])
        self.assertIsNotNone(date.tzinfo)
        self.assertLess(abs(time.time() - date.timestamp()), 120)
        self.assertRegex(msg["Message-ID"], r"^<[0-9a-f]{32}@[^<>@\s]+>$")
        # No injected header: the CR/LF of the log line stayed in the body.
        self.assertIsNone(msg["Bcc"])
        self.assertNotIn(b"\nBcc:", raw)
        for k, v in msg.items():
            self.assertNotIn("attacker", str(v), k)
        # Body: outcome, exit status, the log's last lines.
        self.assertEqual(msg.get_content_type(), "text/plain")
        body = msg.get_content()
        self.assertIn("failed", body)
        self.assertRegex(body, r"(?i)exit (status|code)\D*3")
        self.assertIn("step one done", body)
        self.assertIn("step two done", body)
        self.assertIn("ERR disk", body)
        print("mail %s: From: %s | To: %s | Subject: %s | Date: %s | Message-ID: %s"
              % (name, msg["From"], msg["To"], msg["Subject"], msg["Date"],
                 msg["Message-ID"]))

    def test_utf8_subject_and_name_refused_with_crlf(self):
        # A monitor name cannot carry CR/LF at all: refused before anything runs.
        env = dict(os.environ, VIGIL_CONFIG=self.ini())
        r = subprocess.run([VIGIL, "run", "--state-dir", self.state, "--plugin-dir", PLUGINS,
                            "--name", "x\r\nBcc: evil@attacker.example", "--notify", "mail",
                            "--", "true"], env=env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a job name", r.stderr)
        # A subject template with non-ASCII text and a bare CR of its own (an INI
        # value cannot hold a LF).
        self.run_job(self.ini("subject = Jöb {summary}\rBcc: evil@attacker.example\n"),
                     "echo fine; exit 0")
        name = wait_until(self.messages, timeout=30, what="the mail")[0]
        raw, msg = self.parse(name)
        self.assertIsNone(msg["Bcc"])
        self.assertNotIn(b"\nBcc:", raw)
        self.assertIn("Jöb", msg["Subject"])
        self.assertIn("succeeded", msg.get_content())


if __name__ == "__main__":
    unittest.main(verbosity=2)
