#!/usr/bin/python3
"""A loopback HTTP receiver for vigil's webhook tests (python3 stdlib only).

    http_receiver.py --log FILE [--mode MODE] [--tls-cert PEM --tls-key PEM]

Listens on 127.0.0.1, on a free port, and prints that port as the first line of
stdout (flushed). With --tls-cert and --tls-key it speaks HTTPS with that
certificate (its chain in the PEM file); a client that rejects it is dropped
and nothing is recorded. Every request other than the control endpoints is appended to
FILE as one JSON object per line:

    {"method": "POST", "path": "/hook?x=1", "headers": {"Name": "value", ...},
     "body": "<text, latin-1 decoded>", "body_b64": "<base64 of the raw body>"}

(repeated header names are joined with ", ").

Modes, set with --mode or at runtime by POST /_mode with the mode as the body:
    200           answer 200 "ok" (the default)
    500           answer 500
    429:N         answer 429 with Retry-After: N (also 503:N)
    400           answer 400 with the body "bad request: rejected by receiver"
    CODE          any other status code, e.g. 404
    hang          read the request, record it, then never answer (until the
                  client gives up or the mode changes)
    close         record the request, then close the connection without answering
    down-for:N    for N seconds from now close every connection at once (nothing
                  recorded), then answer 200

Control endpoints (never recorded):
    POST /_mode       change the mode; answers 200 "mode MODE"
    GET  /_requests   the recorded JSON lines, as text
"""

import argparse
import base64
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, log_path, mode):
        self.lock = threading.Lock()
        self.log_path = log_path
        self.set_mode(mode)
        open(log_path, "a").close()

    def set_mode(self, mode):
        mode = mode.strip()
        with getattr(self, "lock", threading.Lock()):
            self.mode = mode
            self.down_until = 0.0
            if mode.startswith("down-for:"):
                self.down_until = time.monotonic() + float(mode.split(":", 1)[1])

    def current(self):
        with self.lock:
            if self.mode.startswith("down-for:"):
                return "down" if time.monotonic() < self.down_until else "200"
            return self.mode

    def record(self, entry):
        with self.lock:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()

    def lines(self):
        with self.lock:
            with open(self.log_path) as f:
                return f.read()


class Handler(BaseHTTPRequestHandler):
    # Answers go out in two writes (headers, body): without TCP_NODELAY each
    # request waits for the peer's delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "vigil-test-receiver/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        # The TLS handshake runs here, in the connection's own thread, so a
        # client that stalls or rejects the certificate never blocks accept().
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _answer(self, code, body=b"", extra=()):
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self):
        st = self.server.state
        if self.path == "/_mode" and self.command == "POST":
            mode = self._body().decode()
            st.set_mode(mode)
            return self._answer(200, ("mode " + mode).encode())
        if self.path == "/_requests" and self.command == "GET":
            return self._answer(200, st.lines().encode())
        mode = st.current()
        if mode == "down":
            return self._drop()
        body = self._body()
        hdrs = {}
        for k, v in self.headers.items():
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        st.record({"method": self.command, "path": self.path, "headers": hdrs,
                   "body": body.decode("latin-1"),
                   "body_b64": base64.b64encode(body).decode()})
        if mode == "close":
            return self._drop()
        if mode == "hang":
            while st.current() == "hang":
                time.sleep(0.05)
            return self._drop()
        code, _, retry = mode.partition(":")
        code = int(code)
        extra = [("Retry-After", retry)] if retry else []
        text = b"ok" if code < 300 else b"bad request: rejected by receiver" \
            if code == 400 else ("error %d" % code).encode()
        self._answer(code, text, extra)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A failed TLS handshake (the client refused our certificate) is what
        # the TLS tests provoke: not worth a traceback.
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def tls_wrap(srv, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                 do_handshake_on_connect=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True, help="JSON lines file of requests")
    ap.add_argument("--mode", default="200")
    ap.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS")
    ap.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        tls_wrap(srv, args.tls_cert, args.tls_key)
    srv.state = State(args.log, args.mode)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
