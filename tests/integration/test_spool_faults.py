#!/usr/bin/python3
"""A corrupted spool loses only its damaged records (issue 10, item 5).

A real `vigil watch` spools one `match` notification per line of a prepared
log while the loopback HTTP receiver (http_receiver.py) refuses every
connection; vigil gives up and exits with them pending. The test then damages
a segment file the way a disk or a crash does (a flipped byte in the first
record, a bad length, a bad record magic, a cut tail), starts a second vigil
with the receiver up, and checks that every intact record arrives exactly
once, in event order, that the log counts the damaged records and bytes
exactly, and that those bytes are in dead/.

Segment layout (core/engine/spool.h): "VIGILSG2", then per record a 24-byte
header (magic ff fe 'V' 'r', u32 index, count, payload length, payload CRC,
header CRC) and the payload (the JSON line, then the type line)."""

import collections
import json
import os
import re
import struct
import subprocess
import sys
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vigil_test as vt  # noqa: E402

N_EVENTS = 40
HDR = 24


class Receiver(vt.HookReceiver):
    """Refusing every connection until up() is called."""

    def __init__(self, tmp):
        super().__init__(tmp, "down-for:3600")

    def up(self):
        self.mode("200")


def frames(path):
    """[(offset, size, event id)] of a segment's records, in file order."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"VIGILSG2", data[:8]
    out, off = [], 8
    while off < len(data):
        magic, index, count, length = struct.unpack_from("<4sIII", data, off)
        assert magic == b"\xff\xfeVr" and index == len(out), (off, magic, index)
        line = data[off + HDR:off + HDR + length].split(b"\n", 1)[0]
        out.append((off, HDR + length, json.loads(line)["id"]))
        off += HDR + length
    return out


def poke(path, at, data):
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


class SpoolFaultsTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.rec = Receiver(self.tmp)
        self.addCleanup(self.rec.stop)
        self.ini = self.write("vigil.ini", "[notifier hook]\ntype = webhook\nurl = %s/h\n"
                              "on = match\nmax_age = 1h\n" % self.rec.url, 0o600)
        self.spool = os.path.join(self.state, "spool", "hook")

    def each_match(self):
        """One event per matching line (match_window = 0s), to count them."""
        path = os.path.join(self.tmp, "each-match.ini")
        with open(path, "w") as f:
            f.write("[monitor]\nmatch_window = 0s\n")
        return path

    def watch(self, log):
        target = subprocess.Popen(["sleep", "300"])
        self.addCleanup(target.wait)
        self.addCleanup(target.kill)
        args = [vt.VIGIL, "watch", "--plugin-dir", vt.PLUGIN_DIR, "--state-dir", self.state,
                "--pid", str(target.pid), "--log", log, "--from", "start",
                "--failure", "ERR", "--deliver-timeout", "2s",
                "--notify", "hook", "--notify", "json", "-c", self.each_match()]
        env = dict(os.environ, VIGIL_CONFIG=self.ini, NO_COLOR="1")
        p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        self.addCleanup(p.kill)
        return target, p

    def finish(self, target, p):
        target.kill()
        target.wait()
        return p.communicate(timeout=vt.TIMEOUT)

    def pending(self):
        st = subprocess.run([vt.VIGIL, "status", "--state-dir", self.state, "--json"],
                            capture_output=True, text=True, timeout=30)
        return sum(c["pending"] for c in vt.json_lines(st.stdout) if c.get("notifier") == "hook")

    def segments(self):
        return sorted(os.path.join(self.spool, f) for f in os.listdir(self.spool)
                      if not f.startswith(".") and f != "dead")

    def spool_while_down(self):
        """Run vigil with the receiver down: N_EVENTS notifications left in the
        spool. Returns their ids in event order (from --notify json)."""
        log = self.write("job.log", "".join("ERR line %d\n" % i for i in range(N_EVENTS)))
        target, p = self.watch(log)
        vt.wait_until(lambda: self.pending() == N_EVENTS, timeout=60, what="all spooled")
        out, err = self.finish(target, p)
        sent = [e["id"] for e in vt.json_lines(out) if e.get("kind") == "match"]
        self.assertEqual(len(sent), N_EVENTS, err)
        self.assertEqual(self.rec.ids(), [])
        self.assertEqual(self.pending(), N_EVENTS)
        return sent

    def replay(self, sent, lost, bad_bytes):
        """Receiver up, a second vigil: every record but `lost` delivered once,
        in order; the log's counts exact; the damaged bytes in dead/."""
        self.rec.up()
        target, p = self.watch(self.write("empty.log", ""))
        vt.wait_until(lambda: not self.segments(), timeout=90, what="spool drained")
        vt.wait_until(lambda: len(self.rec.ids()) >= N_EVENTS - len(lost), timeout=30,
                      what="deliveries recorded")
        out, err = self.finish(target, p)
        got = self.rec.ids()
        want = [i for i in sent if i not in lost]
        dups = [i for i, n in collections.Counter(got).items() if n > 1]
        print("%s: sent %d, damaged %d (%d bytes), delivered %d, duplicated %d, "
              "intact lost %d" % (self._testMethodName, len(sent), len(lost), bad_bytes,
                                   len(set(got)), len(dups), len(set(want) - set(got))))
        self.assertEqual(got, want)
        m = re.search(r"(\d+) record\(s\) in \S+ unreadable \(torn by a crash or corrupt, "
                      r"(\d+) damaged bytes\)", err)
        self.assertIsNotNone(m, err)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (len(lost), bad_bytes))
        self.assertIn("replaying %d notification(s)" % len(want), err)
        dead = os.path.join(self.spool, "dead")
        buried = [f for f in os.listdir(dead) if ".bad." in f]
        self.assertEqual(sum(os.path.getsize(os.path.join(dead, f)) for f in buried),
                         bad_bytes)
        self.assertEqual(self.pending(), 0)

    # ----------------------------------------------------------------- tests

    def test_flipped_byte_in_first_record(self):
        sent = self.spool_while_down()
        seg = self.segments()[0]
        off, size, first = frames(seg)[0]
        poke(seg, off + HDR + 20, b"#")  # inside its JSON line
        self.replay(sent, {first}, size)

    def test_bad_length(self):
        sent = self.spool_while_down()
        seg = self.segments()[0]
        fr = frames(seg)
        off, size, victim = fr[len(fr) // 2]
        poke(seg, off + 12, b"\x00\x00\x10\x00")  # 1 MB: past the end
        self.replay(sent, {victim}, size)

    def test_bad_magic_in_two_records(self):
        sent = self.spool_while_down()
        seg = self.segments()[-1]
        fr = frames(seg)
        victims = [fr[0], fr[-1]] if len(fr) > 1 else [fr[0]]
        for off, _, _ in victims:
            poke(seg, off, b"XX")
        self.replay(sent, {v[2] for v in victims}, sum(v[1] for v in victims))

    def test_truncated_tail(self):
        sent = self.spool_while_down()
        seg = self.segments()[0]
        fr = frames(seg)
        cut = len(fr) // 2
        os.truncate(seg, fr[cut][0] + 30)
        self.replay(sent, {f[2] for f in fr[cut:]}, 30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
