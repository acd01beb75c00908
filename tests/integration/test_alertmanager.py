#!/usr/bin/python3
"""The webhook notifier's alertmanager format against Debian's
prometheus-alertmanager, started here on a loopback port with a null
receiver: a run whose log stalls fires vigil_stalled (seen in GET
/api/v2/alerts), and the run's finish resolves it."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

AM = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


from vigil_test import PLUGIN_DIR as PLUGINS, VIGIL  # noqa: E402

CONFIG = """route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = fn()
        except OSError:
            v = None
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


@unittest.skipUnless(AM, "prometheus-alertmanager is not installed (apt-get install "
                         "prometheus-alertmanager)")
class AlertmanagerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-am-")
        cfg = os.path.join(self.tmp, "am.yml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.am_log = open(os.path.join(self.tmp, "am.log"), "w")
        self.am = subprocess.Popen([AM, "--config.file=" + cfg,
                                    "--storage.path=" + os.path.join(self.tmp, "data"),
                                    "--cluster.listen-address=",
                                    "--web.listen-address=127.0.0.1:%d" % self.port],
                                   stdout=self.am_log, stderr=subprocess.STDOUT)
        self.procs = [self.am]
        wait_until(lambda: urllib.request.urlopen(self.url + "/-/ready", timeout=2)
                   .status == 200, 60, "alertmanager ready")

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        self.am_log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def alerts(self, name):
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as r:
            return [a for a in json.load(r) if a["labels"].get("alertname") == name]

    def test_stall_fires_and_finish_resolves(self):
        ini = os.path.join(self.tmp, "vigil.ini")
        with open(ini, "w") as f:
            f.write("[notifier am]\ntype = webhook\nformat = alertmanager\nurl = %s\n"
                    % self.url)
        os.chmod(ini, 0o600)
        log = os.path.join(self.tmp, "job.log")
        open(log, "w").close()
        target = subprocess.Popen(["sleep", "300"])
        self.procs.append(target)
        p = subprocess.Popen([VIGIL, "watch", "--plugin-dir", PLUGINS, "--state-dir",
                              os.path.join(self.tmp, "state"), "--pid", str(target.pid),
                              "--name", "nightly", "--log", log, "--stall", "1s",
                              "--notify", "am", "--notify", "json"],
                             env=dict(os.environ, VIGIL_CONFIG=ini),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        firing = wait_until(lambda: [a for a in self.alerts("vigil_stalled")
                                     if a["status"]["state"] == "active"], 30, "the alert")
        a = firing[0]
        self.assertEqual(a["labels"]["monitor"], "nightly")
        self.assertEqual(a["labels"]["kind"], "stalled")
        self.assertEqual(a["labels"]["host"], socket.gethostname())
        self.assertIn("severity", a["labels"])
        print("firing: %s labels=%s startsAt=%s endsAt=%s state=%s"
              % (a["labels"]["alertname"], a["labels"], a["startsAt"], a["endsAt"],
                 a["status"]["state"]))
        # The run finishes: the stall alert resolves (endsAt in the past, so it
        # leaves the active alerts).
        target.kill()
        target.wait()
        out, err = p.communicate(timeout=60)
        kinds = [json.loads(l)["kind"] for l in out.splitlines()]
        self.assertIn("stalled", kinds)
        self.assertIn("finished", kinds)
        self.assertNotIn("not delivered", err)
        wait_until(lambda: all(x["status"]["state"] != "active" or
                               x["endsAt"] < time.strftime("%Y-%m-%dT%H:%M:%S",
                                                           time.gmtime())
                               for x in self.alerts("vigil_stalled")), 30, "resolution")
        left = self.alerts("vigil_stalled")
        print("after the finish: vigil_stalled %s" % (
            "gone from the active alerts" if not left else
            "endsAt=%s state=%s" % (left[0]["endsAt"], left[0]["status"]["state"])))


if __name__ == "__main__":
    unittest.main(verbosity=2)
