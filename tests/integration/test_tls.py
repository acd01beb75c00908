#!/usr/bin/python3
"""TLS of the webhook and email notifiers against loopback servers that use
certificates made here with openssl: a private CA, a server certificate for
127.0.0.1 and localhost signed by it, one for another name signed by it, and a
second, unrelated CA.

For https://, SMTPS and STARTTLS: verification fails with an unknown CA (the
system store) and with the unrelated CA as `ca_file`, and when the certificate
names another host; each failure is reported with curl's reason and the
notification stays in the spool, and a later vigil with the right `ca_file`
delivers that same event. With `ca_file` naming the private CA it passes.

A real `vigil watch` of a real process: the notifier is a [notifier NAME] of a
vigil.ini given through VIGIL_CONFIG, `on = finished`, so one notification
per run; `--notify json` shows the event id that must arrive."""

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import tempfile
import shutil
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vigil_test as vt  # noqa: E402

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
UNKNOWN_CA = "unable to get local issuer certificate"
WRONG_NAME = "no alternative certificate subject name matches"


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr))


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
            "-subj", "/CN=vigil test " + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, name + ".pem")


def make_server_cert(d, name, ca, san):
    """NAME.pem (the certificate) and NAME.key, signed by CA for SAN."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/CN=" + name, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName = %s\nextendedKeyUsage = serverAuth\n"
                "basicConstraints = CA:FALSE\n" % san)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext",
            "-out", name + ".pem", cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def have_aiosmtpd():
    r = subprocess.run([PYTHON, "-c", "import aiosmtpd"], capture_output=True)
    return r.returncode == 0


class Server:
    """A receiver script in the background; its port is its first line."""

    def __init__(self, args):
        self.p = subprocess.Popen([PYTHON] + args, stdout=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        line = self.p.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError("receiver did not start: %r" % line)
        self.port = int(line)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self.p.stdout.close()


class TlsTest(vt.VigilTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="vigil-tls-certs-")
        d = cls.certs
        cls.ca = make_ca(d, "ca")
        cls.other_ca = make_ca(d, "otherca")
        cls.good = make_server_cert(d, "server", "ca", "IP:127.0.0.1, DNS:localhost")
        cls.misnamed = make_server_cert(d, "misnamed", "ca", "DNS:elsewhere.example")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)

    # ------------------------------------------------------------ helpers

    def https_receiver(self, cert):
        log = self.path("requests-%d.jsonl" % len(os.listdir(self.tmp)))
        srv = Server([os.path.join(HERE, "http_receiver.py"), "--log", log,
                      "--tls-cert", cert[0], "--tls-key", cert[1]])
        self.addCleanup(srv.stop)
        srv.log = log
        return srv

    def smtp_receiver(self, mode, cert):
        mail = self.path("mail-%s-%d" % (mode, len(os.listdir(self.tmp))))
        srv = Server([os.path.join(HERE, "smtp_receiver.py"), "--dir", mail, "--tls", mode,
                      "--tls-cert", cert[0], "--tls-key", cert[1]])
        self.addCleanup(srv.stop)
        srv.mail = mail
        return srv

    def notifier_ini(self, section):
        return self.write("vigil.ini", "[notifier hook]\n%son = finished\n" % section, 0o600)

    def watch(self, section):
        """`vigil watch` of a process that ends: returns (Proc, finished event)."""
        ini = self.notifier_ini(section)
        target = subprocess.Popen(["sleep", "300"])
        self.addCleanup(lambda: (target.poll() is None and target.kill(), target.wait()))
        env = dict(self.env, VIGIL_CONFIG=ini)
        # --state-dir (not only VIGIL_STATE_DIR) keeps the spool in it too.
        p = self.start("watch", "--state-dir", self.state, "--plugin-dir", vt.PLUGIN_DIR,
                       "--pid", target.pid,
                       "--notify", "hook", "--notify", "json", "--deliver-timeout", "60s",
                       env=env)
        p.wait_json("attached")
        target.kill()
        target.wait()
        return p, p.wait_json("finished")

    def spooled(self):
        d = os.path.join(self.state, "spool", "hook")
        if not os.path.isdir(d):
            return []
        return [f for f in os.listdir(d) if not f.startswith(".") and f != "dead"]

    def assertRefused(self, section, reason):
        """Delivery fails with `reason`, is kept for retry; returns the event."""
        p, fin = self.watch(section)
        line = p.wait_for("err", lambda l: "not delivered" in l, what="a failed delivery")
        self.assertIn(reason, line)
        p.stop(signal.SIGTERM)
        self.assertNoCrash(p.err)
        self.assertNotIn("delivered to", p.err)
        self.assertNotIn("dead-lettered", p.err)
        self.assertTrue(self.spooled(), "the notification was not kept:\n" + p.err)
        print("%s: %s" % (self._testMethodName, line.strip()))
        return fin

    def assertDelivered(self, section, received, fin=None):
        """Delivery passes: received(event id) finds it at the receiver. With
        fin, that event was spooled earlier and must be the one delivered."""
        p, new = self.watch(section)
        ids = [new["id"]] + ([fin["id"]] if fin else [])
        vt.wait_until(lambda: all(received(i) for i in ids), vt.TIMEOUT,
                      what="delivery of %s" % ids)
        self.assertIn(p.finish(), (1, 4))  # killed: failed, or unknown where the exit is not seen
        self.assertNoCrash(p.err)
        self.assertNotIn("not delivered", p.err)
        self.assertEqual(self.spooled(), [])

    def https_ids(self, srv):
        def has(event_id):
            with open(srv.log) as f:
                return any(json.loads(json.loads(l)["body"])["id"] == event_id
                           for l in f if l.strip())
        return has

    def mail_ids(self, srv):
        def has(event_id):
            if not os.path.isdir(srv.mail):
                return False
            for n in os.listdir(srv.mail):
                if n.endswith(".eml"):
                    with open(os.path.join(srv.mail, n), "rb") as f:
                        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
                    if msg["X-Vigil-Event-Id"] == event_id:
                        return True
            return False
        return has

    # ------------------------------------------------------------ webhook

    def test_https_unknown_ca_kept_then_delivered_with_ca_file(self):
        srv = self.https_receiver(self.good)
        url = "url = https://127.0.0.1:%d/hook\ntype = webhook\n" % srv.port
        fin = self.assertRefused(url, UNKNOWN_CA)
        self.assertRefused(url + "ca_file = %s\n" % self.other_ca, UNKNOWN_CA)
        self.assertDelivered(url + "ca_file = %s\n" % self.ca, self.https_ids(srv), fin)

    def test_https_localhost_name_verified(self):
        srv = self.https_receiver(self.good)
        self.assertDelivered("type = webhook\nurl = https://localhost:%d/hook\nca_file = %s\n"
                             % (srv.port, self.ca), self.https_ids(srv))

    def test_https_wrong_name_refused(self):
        srv = self.https_receiver(self.misnamed)
        self.assertRefused("type = webhook\nurl = https://127.0.0.1:%d/hook\nca_file = %s\n"
                           % (srv.port, self.ca), WRONG_NAME)

    def test_missing_ca_file_is_a_config_error(self):
        missing = self.path("no-such-ca.pem")
        ini = self.notifier_ini("type = webhook\nurl = https://127.0.0.1:1/hook\n"
                                "ca_file = %s\n" % missing)
        env = dict(self.env, VIGIL_CONFIG=ini)
        r = vt.run([vt.VIGIL, "watch", "--state-dir", self.state, "--plugin-dir",
                    vt.PLUGIN_DIR, "--pid", str(os.getpid()),
                    "--notify", "hook"], env=env)
        self.assertUsageError(r, "ca_file", missing, "No such file or directory")

    # ------------------------------------------------------------ e-mail

    def mail_section(self, srv, scheme, extra=""):
        return ("type = email\nurl = %s://127.0.0.1:%d\nfrom = vigil@example.com\n"
                "to = ops@example.com\n%s" % (scheme, srv.port, extra))

    @unittest.skipUnless(have_aiosmtpd(), "python3-aiosmtpd is not installed")
    def test_smtps(self):
        srv = self.smtp_receiver("smtps", self.good)
        fin = self.assertRefused(self.mail_section(srv, "smtps"), UNKNOWN_CA)
        self.assertRefused(self.mail_section(srv, "smtps", "ca_file = %s\n" % self.other_ca),
                           UNKNOWN_CA)
        self.assertDelivered(self.mail_section(srv, "smtps", "ca_file = %s\n" % self.ca),
                             self.mail_ids(srv), fin)

    @unittest.skipUnless(have_aiosmtpd(), "python3-aiosmtpd is not installed")
    def test_starttls(self):
        srv = self.smtp_receiver("starttls", self.good)
        tls = "starttls = required\n"
        fin = self.assertRefused(self.mail_section(srv, "smtp", tls), UNKNOWN_CA)
        self.assertRefused(self.mail_section(srv, "smtp", tls + "ca_file = %s\n"
                                             % self.other_ca), UNKNOWN_CA)
        # opportunistic (the default) still verifies what it is offered.
        self.assertRefused(self.mail_section(srv, "smtp"), UNKNOWN_CA)
        self.assertDelivered(self.mail_section(srv, "smtp", tls + "ca_file = %s\n" % self.ca),
                             self.mail_ids(srv), fin)

    @unittest.skipUnless(have_aiosmtpd(), "python3-aiosmtpd is not installed")
    def test_smtps_and_starttls_wrong_name_refused(self):
        for mode, scheme in (("smtps", "smtps"), ("starttls", "smtp")):
            srv = self.smtp_receiver(mode, self.misnamed)
            self.assertRefused(self.mail_section(srv, scheme, "ca_file = %s\n" % self.ca),
                               WRONG_NAME)


if __name__ == "__main__":
    unittest.main(verbosity=2)
