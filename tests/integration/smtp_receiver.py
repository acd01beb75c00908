#!/usr/bin/python3
"""A loopback SMTP receiver for vigil's email tests (Debian's python3-aiosmtpd).

    smtp_receiver.py --dir DIR [--reply-code 451|550]
                     [--tls smtps|starttls --tls-cert PEM --tls-key PEM]

Listens on 127.0.0.1 on a free port and prints that port as the first line of
stdout (flushed). Each accepted message is written to DIR as NNNN.eml (the
exact bytes of DATA, with X-Envelope-From / X-Envelope-To lines in front),
written to a temporary name and renamed, so a .eml file is always complete.
With --reply-code, every RCPT TO is answered with that code instead (451: a
temporary failure, 550: a permanent one) and nothing is saved.
With --tls smtps the server speaks TLS from the first byte (SMTPS); with
--tls starttls it offers STARTTLS and refuses MAIL before it (530).
Stops on SIGTERM or SIGINT.
"""

import argparse
import logging
import os
import signal
import socket
import ssl
import sys

from aiosmtpd.controller import Controller


class Saver:
    def __init__(self, folder, reply_code):
        self.folder = folder
        self.reply_code = reply_code
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reply_code:
            text = "try again later" if self.reply_code < 500 else "no such user"
            return "%d %s" % (self.reply_code, text)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = os.path.join(self.folder, "%04d.eml" % self.count)
        head = "X-Envelope-From: %s\r\nX-Envelope-To: %s\r\n" % (
            envelope.mail_from, ", ".join(envelope.rcpt_tos))
        with open(name + ".tmp", "wb") as f:
            f.write(head.encode() + envelope.original_content)
        os.rename(name + ".tmp", name)
        return "250 Message accepted"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_kwargs(args):
    """Controller arguments for --tls: SMTPS wraps the listening socket,
    STARTTLS is offered and required by the SMTP session."""
    if not args.tls:
        return {}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    # Refused handshakes are what the TLS tests provoke: no tracebacks.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    if args.tls == "smtps":
        return {"ssl_context": ctx}
    return {"tls_context": ctx, "require_starttls": True}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--reply-code", type=int, default=0)
    ap.add_argument("--tls", choices=("smtps", "starttls"))
    ap.add_argument("--tls-cert", help="PEM certificate (chain), with --tls")
    ap.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    # Blocked before any thread starts (threads inherit the mask) and taken
    # with sigwait: a Python handler that sets an Event can deadlock when the
    # signal lands while the main thread holds the Event's lock, which is
    # exactly when a test stops the receiver right after reading its port.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    ctl = Controller(Saver(args.dir, args.reply_code), hostname="127.0.0.1",
                     port=free_port(), **tls_kwargs(args))
    ctl.start()
    print(ctl.port, flush=True)
    signal.sigwait(stop_signals)
    ctl.stop()


if __name__ == "__main__":
    sys.exit(main())
