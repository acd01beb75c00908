#!/usr/bin/python3
"""The agent's metrics: `metrics_textfile` rewritten (atomically) when a run
changes something, read by Debian's prometheus-node-exporter (textfile
collector); `metrics_listen` serving GET /metrics inside the agent's loop,
scraped by a real Prometheus on loopback that answers a query. Bad requests
get an error, not the agent's attention forever."""
import json
import os
import shutil
import socket
import sys
import unittest
import urllib.error
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402
import test_metrics  # noqa: E402
from test_metrics import free_port, http_get  # noqa: E402


class TestAgentMetrics(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.conf = self.path("conf.d")
        os.mkdir(self.conf)
        self.tdir = self.path("textfile")
        os.mkdir(self.tdir)
        self.prom = os.path.join(self.tdir, "vigil.prom")
        self.port = free_port()

    def start_agent(self, agent_keys):
        ini = self.write("vigil.ini", "[agent]\nconf_dir = %s\nstate_dir = %s\n"
                         "spool_dir = %s\n%s" % (self.conf, self.state, self.path("spool"),
                                                 agent_keys))
        a = self.start("agent", "--config", ini)
        a.wait_for("err", lambda l: "loaded:" in l, what="the first load")
        self.addCleanup(lambda: self.assertNoCrash(a.err))
        self.addCleanup(a.stop)
        return a

    def monitor(self, name, command):
        with open(os.path.join(self.conf, name + ".ini"), "w") as f:
            f.write("[monitor]\ncommand = %s\n" % command)

    def textfile(self):
        try:
            with open(self.prom) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    serve_background = test_metrics.TestMetrics.serve_background

    def test_textfile_follows_runs(self):
        self.monitor("backup", "exit 3")
        self.start_agent("metrics_textfile = %s\n" % self.prom)
        want = 'vigil_last_run_exit_code{monitor="backup"} 3\n'
        vt.wait_until(lambda: want in self.textfile(), vt.TIMEOUT, what="the textfile")
        text = self.textfile()
        self.assertIn('vigil_running{monitor="backup"} 0\n', text)
        self.assertIn('vigil_runs_total{monitor="backup",outcome="failed"} 1\n', text)
        self.assertEqual(os.stat(self.prom).st_mode & 0o777, 0o644)
        self.assertEqual([f for f in os.listdir(self.tdir)], ["vigil.prom"])
        if shutil.which("prometheus-node-exporter"):
            self.node_exporter_reads(want)

    def node_exporter_reads(self, want):
        port = free_port()
        self.serve_background(["prometheus-node-exporter", "--collector.disable-defaults",
                               "--collector.textfile", "--collector.textfile.directory",
                               self.tdir, "--web.listen-address", "127.0.0.1:%d" % port])

        def scraped():
            try:
                return http_get("http://127.0.0.1:%d/metrics" % port)
            except OSError:
                return None
        body = vt.wait_until(scraped, 60, 0.2, "node_exporter to answer")
        self.assertIn(want, body)
        self.assertIn("node_textfile_scrape_error 0\n", body)

    def test_listener_answers_and_refuses(self):
        self.monitor("backup", "exit 3")
        self.start_agent("metrics_listen = 127.0.0.1:%d\n" % self.port)
        base = "http://127.0.0.1:%d" % self.port
        want = 'vigil_last_run_exit_code{monitor="backup"} 3\n'
        vt.wait_until(lambda: want in http_get(base + "/metrics"), vt.TIMEOUT,
                      what="the listener to show the run")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            http_get(base + "/other")
        self.assertEqual(cm.exception.code, 404)
        # A request head larger than the bound: the connection is closed, the
        # agent goes on answering.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            try:
                s.sendall(b"GET /metrics HTTP/1.0\r\nX: " + b"a" * 10000)
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
        self.assertIn(want, http_get(base + "/metrics"))

    def test_listen_address_refused(self):
        ini = self.write("vigil.ini", "[agent]\nconf_dir = %s\nstate_dir = %s\n"
                         "metrics_listen = localhost\n" % (self.conf, self.state))
        r = self.vigil("agent", "--config", ini)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("metrics_listen", r.stderr)

    @unittest.skipUnless(shutil.which("prometheus"), "prometheus missing (Debian: prometheus)")
    def test_prometheus_scrapes_the_agent(self):
        self.monitor("backup", "exit 3")
        self.start_agent("metrics_listen = 127.0.0.1:%d\n" % self.port)
        port = free_port()
        conf = self.write("prometheus.yml", (
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: vigil\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n") % self.port)
        self.serve_background(["prometheus", "--config.file", conf,
                               "--storage.tsdb.path", self.path("tsdb"),
                               "--web.listen-address", "127.0.0.1:%d" % port])
        q = urllib.parse.quote('vigil_last_run_exit_code{monitor="backup"}')
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, q)

        def answered():
            try:
                res = json.loads(http_get(url))["data"]["result"]
            except (OSError, ValueError, KeyError):
                return None
            return res or None
        res = vt.wait_until(answered, 90, 0.5, "Prometheus to scrape the agent and answer")
        self.assertEqual(len(res), 1, res)
        self.assertEqual(res[0]["metric"]["monitor"], "backup")
        self.assertEqual(res[0]["value"][1], "3")


if __name__ == "__main__":
    unittest.main(verbosity=2)
