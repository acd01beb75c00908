#!/usr/bin/python3
"""The agent's metrics: `metrics_textfile` rewritten (atomically) when a run
changes something, read by Debian's prometheus-node-exporter (textfile
collector); `metrics_listen` serving GET /metrics inside the agent's loop,
scraped by a real Prometheus on loopback that answers a query. Bad requests
get an error, not the agent's attention forever."""
import os
import shutil
import socket
import sys
import unittest
import urllib.error

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
        return super().start_agent(self.write_agent_ini(agent_keys, defaults=""))

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
        body = test_metrics.node_exporter_scrape(self, self.tdir)
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
        res = test_metrics.prometheus_query(self, self.port,
                                            'vigil_last_run_exit_code{monitor="backup"}')
        self.assertEqual(len(res), 1, res)
        self.assertEqual(res[0]["metric"]["monitor"], "backup")
        self.assertEqual(res[0]["value"][1], "3")


if __name__ == "__main__":
    unittest.main(verbosity=2)
