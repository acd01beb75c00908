#!/usr/bin/python3
"""vigil metrics with the real systems: Debian's promtool accepts the output;
a real Prometheus server scraping it over loopback (served by a tiny HTTP
server) answers a query for vigil_last_run_exit_code with the job's exit code;
Debian's prometheus-node-exporter reads it as a textfile. Skipped when those
packages are missing (apt-get install prometheus prometheus-node-exporter)."""
import datetime
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def prometheus_query(case, target, query):
    """A real Prometheus (started by case.serve_background) scraping
    127.0.0.1:TARGET every second: the result of QUERY once it has one."""
    port = free_port()
    conf = case.write("prometheus.yml", (
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: vigil\n    static_configs:\n"
        "      - targets: ['127.0.0.1:%d']\n") % target)
    case.serve_background(["prometheus", "--config.file", conf,
                           "--storage.tsdb.path", case.path("tsdb"),
                           "--web.listen-address", "127.0.0.1:%d" % port])
    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(query))

    def answered():
        try:
            res = json.loads(http_get(url))["data"]["result"]
        except (OSError, ValueError, KeyError):
            return None
        return res or None
    return vt.wait_until(answered, 90, 0.5, "Prometheus to scrape %d and answer" % target)


def node_exporter_scrape(case, textfile_dir):
    """Debian's node exporter (textfile collector only) reading TEXTFILE_DIR:
    its /metrics once it answers."""
    port = free_port()
    case.serve_background(["prometheus-node-exporter", "--collector.disable-defaults",
                           "--collector.textfile", "--collector.textfile.directory",
                           textfile_dir, "--web.listen-address", "127.0.0.1:%d" % port])

    def scraped():
        try:
            return http_get("http://127.0.0.1:%d/metrics" % port)
        except OSError:
            return None
    return vt.wait_until(scraped, 60, 0.2, "node_exporter to answer")


class TestMetrics(vt.VigilTestCase):
    def run_to_end(self, name, script):
        r = vt.run([vt.VIGIL, "run", "--name", name, "--", "sh", "-c", script], env=self.env,
                   cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return self.wait_finished(name)

    def metrics(self):
        r = self.vigil("metrics")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def jobs(self):
        self.run_to_end("backup", "exit 0")
        self.run_to_end("backup", "exit 3")
        self.run_to_end("export", "exit 0")

    def serve_background(self, args):
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             cwd=self.tmp)
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stderr.close()))
        return p

    def test_values(self):
        self.jobs()
        m = self.metrics()
        for line in ('vigil_last_run_outcome{monitor="backup",outcome="failed"} 1',
                     'vigil_last_run_outcome{monitor="backup",outcome="succeeded"} 0',
                     'vigil_last_run_exit_code{monitor="backup"} 3',
                     'vigil_last_run_exit_code{monitor="export"} 0',
                     'vigil_running{monitor="backup"} 0',
                     'vigil_runs_total{monitor="backup",outcome="succeeded"} 1',
                     'vigil_runs_total{monitor="backup",outcome="failed"} 1'):
            self.assertIn(line + "\n", m)
        self.assertIn("# TYPE vigil_runs_total counter\n", m)
        self.assertIn("# HELP vigil_last_run_duration_seconds ", m)
        st = self.status_json("backup")
        end = [ln for ln in m.splitlines()
               if ln.startswith('vigil_last_run_end_timestamp_seconds{monitor="backup"}')]
        self.assertEqual(len(end), 1)
        self.assertIn(end[0].split()[1][:10], str(vt_time(st["ended"])))

    def test_running_job(self):
        fifo = os.path.join(self.tmp, "go")
        vt.make_fifo(fifo)
        r = vt.run([vt.VIGIL, "run", "--name", "slow", "--", "sh", "-c", "read x < %s" % fifo],
                   env=self.env, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        vt.wait_until(lambda: 'vigil_running{monitor="slow"} 1\n' in self.metrics(),
                      vt.TIMEOUT, what="slow to show as running")
        vt.release_fifo(fifo)
        self.wait_finished("slow")
        self.assertIn('vigil_running{monitor="slow"} 0\n', self.metrics())

    @unittest.skipUnless(shutil.which("promtool"), "promtool missing (Debian: prometheus)")
    def test_promtool_check_metrics(self):
        self.jobs()
        r = subprocess.run(["promtool", "check", "metrics"], input=self.metrics(), text=True,
                           capture_output=True, timeout=vt.TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def serve_file(self, folder):
        """A tiny HTTP server on loopback serving folder (the scrape target)."""
        handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=folder)  # noqa
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        return srv.server_address[1]

    @unittest.skipUnless(shutil.which("prometheus"), "prometheus missing (Debian: prometheus)")
    def test_prometheus_scrapes_and_answers(self):
        self.jobs()
        site = os.path.join(self.tmp, "site")
        os.mkdir(site)
        with open(os.path.join(site, "metrics"), "w") as f:
            f.write(self.metrics())
        target = self.serve_file(site)
        res = prometheus_query(self, target, 'vigil_last_run_exit_code{monitor="backup"}')
        self.assertEqual(len(res), 1, res)
        self.assertEqual(res[0]["metric"]["monitor"], "backup")
        self.assertEqual(res[0]["value"][1], "3")

    @unittest.skipUnless(shutil.which("prometheus-node-exporter"),
                         "prometheus-node-exporter missing (Debian: prometheus-node-exporter)")
    def test_node_exporter_textfile(self):
        self.jobs()
        tdir = os.path.join(self.tmp, "textfile")
        os.mkdir(tdir)
        with open(os.path.join(tdir, "vigil.prom.tmp"), "w") as f:
            f.write(self.metrics())
        os.rename(os.path.join(tdir, "vigil.prom.tmp"), os.path.join(tdir, "vigil.prom"))
        body = node_exporter_scrape(self, tdir)
        self.assertIn('vigil_last_run_exit_code{monitor="backup"} 3\n', body)
        self.assertIn('vigil_runs_total{monitor="export",outcome="succeeded"} 1\n', body)
        self.assertIn("node_textfile_scrape_error 0\n", body)


def vt_time(rfc3339):
    """Seconds since the epoch of an RFC 3339 UTC time with milliseconds."""
    t = datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp())


if __name__ == "__main__":
    unittest.main(verbosity=2)
