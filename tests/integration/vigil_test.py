"""Shared helpers for vigil's integration tests (python3 stdlib only).

    import vigil_test as vt

    vt.VIGIL                    the binary: env VIGIL, else VIGIL_BUILD_ROOT/core/vigil
    vt.BUILD_ROOT               the build folder (plugins in BUILD_ROOT/plugins)
    vt.VigilTestCase            unittest.TestCase with self.tmp (a temp folder, removed
                                afterwards), self.state (a state folder inside it),
                                self.vigil(...) and cleanup of what the test started
    vt.run(args, ...)           run to completion with a timeout -> CompletedProcess (text)
    vt.Proc(args, ...)          a background vigil: wait_for() lines on stdout/stderr,
                                stop() it; every wait is bounded
    vt.json_lines(text)         parse JSON lines (non-JSON lines are ignored)
    vt.spawn_detached(cmd)      start `sh -c CMD` in its own session, NOT a child of the
                                test (nor of vigil): returns its PID
    vt.make_user(testcase)      a throwaway unprivileged system user, deleted afterwards
    vt.vigil_group(testcase)    group vigil's gid (created for the test when missing)
    vt.ask_socket(path, data)   one raw request on the agent's control socket -> answer
    vt.install_copy(dest)       copy the binary and plugins to DEST/bin/vigil and
                                DEST/plugins/*.so (root-owned, readable by everyone)
    vt.wait_until(fn, timeout)  poll fn() until it returns something true (bounded)
    VigilTestCase.write_agent_ini() / start_agent()
                                an agent on self.conf (conf.d) and self.state,
                                started and waited for its first load

Every wait has a deadline; nothing here blocks forever.
"""

import grp
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("VIGIL_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))


def _find_vigil():
    exe = os.environ.get("VIGIL")
    if exe:
        return os.path.abspath(exe)
    root = os.environ.get("VIGIL_BUILD_ROOT")
    candidates = [os.path.join(root, "core", "vigil")] if root else []
    for name in sorted(os.listdir(SOURCE_ROOT)):
        if name.startswith("build"):
            candidates.append(os.path.join(SOURCE_ROOT, name, "core", "vigil"))
    for c in candidates:
        if os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise SystemExit("vigil_test: set VIGIL (the binary) or VIGIL_BUILD_ROOT (the build folder)")


VIGIL = _find_vigil()
BUILD_ROOT = os.environ.get("VIGIL_BUILD_ROOT") or os.path.dirname(os.path.dirname(VIGIL))
PLUGIN_DIR = os.path.join(BUILD_ROOT, "plugins")

# Default bound for one vigil command; generous for sanitizer builds.
TIMEOUT = 30
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "Segmentation fault", "core dumped")


def base_env(state_dir=None, extra=None):
    """A predictable environment: no terminal, no colour, the given state folder."""
    env = dict(os.environ)
    env.pop("XDG_RUNTIME_DIR", None)
    env["NO_COLOR"] = "1"
    env["LC_ALL"] = "C"
    if state_dir:
        env["VIGIL_STATE_DIR"] = state_dir
    if extra:
        env.update(extra)
    return env


def run(args, timeout=TIMEOUT, env=None, cwd=None, input_text=None):
    """Run to completion; a hang is a test failure, not a stuck CI job."""
    try:
        return subprocess.run(args, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=env, cwd=cwd, input=input_text,
                              stdin=None if input_text is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("%s did not finish within %ss\nstdout: %s\nstderr: %s"
                             % (" ".join(map(str, args)), timeout, e.stdout, e.stderr))


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def wait_until(fn, timeout=10.0, interval=0.05, what="condition"):
    """Poll fn() until it returns something true; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


class Proc:
    """A background process whose stdout and stderr are read as they come."""

    def __init__(self, args, env=None, cwd=None):
        self.args = [str(a) for a in args]
        self.p = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, cwd=cwd)
        self.out = ""
        self.err = ""
        self.sel = selectors.DefaultSelector()
        for f, name in ((self.p.stdout, "out"), (self.p.stderr, "err")):
            os.set_blocking(f.fileno(), False)
            self.sel.register(f, selectors.EVENT_READ, name)

    def _pump(self, timeout):
        if not self.sel.get_map():
            time.sleep(min(timeout, 0.05))
            return
        for key, _ in self.sel.select(timeout):
            data = os.read(key.fileobj.fileno(), 65536)
            if not data:
                self.sel.unregister(key.fileobj)
                continue
            text = data.decode("utf-8", "replace")
            if key.data == "out":
                self.out += text
            else:
                self.err += text

    def wait_for(self, stream, pred, timeout=TIMEOUT, what=None):
        """Wait until pred(line) holds for a complete line of stream ("out"/"err");
        returns that line. Fails if the process ends first or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.out if stream == "out" else self.err
            for line in text.splitlines(keepends=True):
                if line.endswith("\n") and pred(line.rstrip("\n")):
                    return line.rstrip("\n")
            left = deadline - time.monotonic()
            if left <= 0 or (not self.sel.get_map() and self.p.poll() is not None):
                raise AssertionError("%s: no %s line on std%s (timeout %ss)\nstdout: %s\nstderr: %s"
                                     % (" ".join(self.args), what or "matching", stream,
                                        timeout, self.out, self.err))
            self._pump(min(left, 0.2))

    def wait_json(self, kind, timeout=TIMEOUT):
        line = self.wait_for("out", lambda l: _is_kind(l, kind), timeout, '"%s" event' % kind)
        return json.loads(line)

    def finish(self, timeout=TIMEOUT):
        """Wait for the process to end on its own; returns its exit status."""
        deadline = time.monotonic() + timeout
        while self.sel.get_map() and time.monotonic() < deadline:
            self._pump(min(0.2, max(deadline - time.monotonic(), 0)))
        try:
            rc = self.p.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not end within %ss\nstdout: %s\nstderr: %s"
                                 % (" ".join(self.args), timeout, self.out, self.err))
        self._drain()
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal it, wait (bounded, SIGKILL as a last resort); returns the status."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)
        self._drain()
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)
        self._drain()

    def _drain(self):
        deadline = time.monotonic() + 5
        while self.sel.get_map() and time.monotonic() < deadline:
            self._pump(0.1)
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fileobj)
        self.p.stdout.close()
        self.p.stderr.close()

    def running(self):
        return self.p.poll() is None


def _is_kind(line, kind):
    if not line.startswith("{"):
        return False
    try:
        return json.loads(line).get("kind") == kind
    except ValueError:
        return False


# ------------------------------------------------------------------ processes

def _stat_fields(pid):
    """The fields of /proc/PID/stat from the third (state) on, or None when the
    process is gone. comm may hold spaces and ')', never the line's last ')'."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def proc_start_time(pid):
    """Field 22 of /proc/PID/stat, or None when the process is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def proc_state(pid):
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def proc_alive(pid):
    s = proc_state(pid)
    return s is not None and s not in "ZX"


def spawn_detached(cmd, user=None, cwd=None):
    """Start `sh -c CMD` in a new session, detached: an intermediate shell (in
    its own session, setsid) backgrounds it and exits at once, so the process is
    re-parented to init (or a subreaper) and is neither our child nor vigil's.
    stdin/stdout/stderr go to /dev/null. user: a User from make_user, or None.
    Returns (pid, start_time); the caller kills it (see VigilTestCase.track)."""
    quoted = "'" + cmd.replace("'", "'\\''") + "'"
    script = "sh -c %s </dev/null >/dev/null 2>&1 & echo $!" % quoted
    kw = {}
    if user is not None:
        kw = dict(user=user.uid, group=user.gid, extra_groups=[])
    p = subprocess.run(["/bin/sh", "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                       text=True, timeout=TIMEOUT, start_new_session=True, cwd=cwd, **kw)
    pid = int(p.stdout.strip())
    start = proc_start_time(pid)
    if start is None:
        raise AssertionError("detached process %d ended at once: %s" % (pid, cmd))
    # The background job must be the shell running CMD itself, not a wrapper. It
    # may still be between fork and exec (its cmdline empty or the parent's): wait.
    deadline = time.monotonic() + 10
    while True:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        if argv[:3] == [b"sh", b"-c", cmd.encode()]:
            break
        if time.monotonic() >= deadline:
            raise AssertionError("pid %d runs %r, not sh -c %r" % (pid, argv, cmd))
        time.sleep(0.01)
    if os.getppid() == pid or _ppid(pid) == os.getpid():
        raise AssertionError("pid %d is still our child" % pid)
    return pid, start


def _ppid(pid):
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _pgid(pid):
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def kill_if_same(pid, start, sig=signal.SIGKILL):
    """Kill (pid, start) only: a reused PID is left alone. With its process
    group when that is not ours (a detached shell's `sleep` would outlive it)."""
    if start is None or proc_start_time(pid) != start:
        return
    pgid = _pgid(pid)
    try:
        if pgid and pgid > 1 and pgid != os.getpgrp():
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def pgroup_members(pgid):
    """PIDs of live (non-zombie) processes in process group pgid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            out.append(int(name))
    return out


def make_fifo(path, mode=0o666):
    os.mkfifo(path)
    os.chmod(path, mode)
    return path


def release_fifo(path, text="go\n", timeout=TIMEOUT):
    """Write to a FIFO once its reader has opened it (bounded: no blocking open)."""
    def try_open():
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno == 6:  # ENXIO: no reader yet
                return None
            raise
    fd = wait_until(try_open, timeout, what="a reader on " + path)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# ---------------------------------------------------------- users and layout

class User:
    def __init__(self, name, uid, gid):
        self.name, self.uid, self.gid = name, uid, gid

    def cmd(self, args, netns=False):
        """args run as this user with no supplementary groups and no capabilities
        (setpriv changes all uids from 0, so the kernel clears every capability).
        netns: first enter a new network namespace (as root), see test_watch.py."""
        base = ["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid),
                "--clear-groups", "--"]
        pre = ["unshare", "--net", "--"] if netns else []
        return pre + base + [str(a) for a in args]

    def env(self, home, state_dir=None):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LC_ALL": "C",
               "NO_COLOR": "1", "USER": self.name, "LOGNAME": self.name}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "MSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        if state_dir:
            env["VIGIL_STATE_DIR"] = state_dir
        return env


def user_tools_missing():
    """Why unprivileged-user tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (to create a throwaway user)"
    for tool in ("useradd", "userdel", "setpriv"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            return "%s not installed" % tool
    return None


def make_user(testcase):
    """Create vigiltest-<random> (system user, no home, no login shell); it is
    deleted when the test ends."""
    name = "vigiltest-" + uuid.uuid4().hex[:8]
    r = run(["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", name])
    if r.returncode != 0:
        testcase.skipTest("useradd failed: " + r.stderr.strip())
    testcase.addCleanup(_del_user, name, testcase)
    import pwd
    pw = pwd.getpwnam(name)
    return User(name, pw.pw_uid, pw.pw_gid)


def _del_user(name, testcase):
    kill = getattr(testcase, "_kill_tracked", None)
    if kill:
        kill()
    # The test kills what it started (by PID) before this runs; -f in case a
    # process of the user is still exiting.
    run(["userdel", "-f", name], timeout=20)


def vigil_group(testcase):
    """The gid of group vigil. When missing it is created and removed when the
    test ends; the test is skipped when it cannot be created."""
    try:
        return grp.getgrnam("vigil").gr_gid
    except KeyError:
        pass
    r = run(["groupadd", "-r", "vigil"])
    if r.returncode != 0:
        testcase.skipTest("groupadd vigil failed: " + r.stderr)
    testcase.addCleanup(run, ["groupdel", "vigil"])
    return grp.getgrnam("vigil").gr_gid


def ask_socket(path, data, timeout=10, turned_away=False):
    """Send raw bytes on a unix socket, return the whole answer (a reset
    raises). turned_away: the agent may have answered and closed before the
    request went out (a broken pipe, as vigil's own client tolerates): read the
    answer anyway."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        try:
            s.sendall(data)
        except BrokenPipeError:
            if not turned_away:
                raise
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode("utf-8", "replace")
            out += chunk
    finally:
        s.close()


def install_copy(dest, extra_plugins=()):
    """DEST/bin/vigil and DEST/plugins/*.so: root-owned, folders 755, files 755/644,
    so any user can run it (the build tree may sit under /root) and the plugin
    folder passes vigil's trust check (not group/other-writable). vigil finds
    ../plugins next to its binary. Returns the copied binary's path."""
    bindir = os.path.join(dest, "bin")
    plugdir = os.path.join(dest, "plugins")
    for d in (dest, bindir, plugdir):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    exe = os.path.join(bindir, "vigil")
    shutil.copyfile(VIGIL, exe)
    os.chmod(exe, 0o755)
    sos = [os.path.join(PLUGIN_DIR, n) for n in os.listdir(PLUGIN_DIR) if n.endswith(".so")]
    if not sos:
        raise AssertionError("no plugins in " + PLUGIN_DIR)
    for so in sos + list(extra_plugins):
        target = os.path.join(plugdir, os.path.basename(so))
        shutil.copyfile(so, target)
        os.chmod(target, 0o644)
    return exe


# ------------------------------------------------------------------ test case

class VigilTestCase(unittest.TestCase):
    """self.tmp: a fresh folder (mode 755, so a test user can enter it);
    self.state: a state folder; self.vigil(args): run the build's vigil with
    that state folder. Processes registered with track() are killed at the end."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vigil-itest-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.state = os.path.join(self.tmp, "state")
        os.mkdir(self.state, 0o700)
        self.env = base_env(self.state)
        self._tracked = []
        self.addCleanup(self._kill_tracked)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write(self, name, text, mode=0o644):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def vigil(self, *args, timeout=TIMEOUT, exe=None):
        r = run([exe or VIGIL] + [str(a) for a in args], timeout=timeout, env=self.env,
                cwd=self.tmp)
        self.assertNoCrash(r.stderr)
        return r

    def start(self, *args, exe=None, env=None, prefix=()):
        p = Proc(list(prefix) + [exe or VIGIL] + [str(a) for a in args],
                 env=env or self.env, cwd=self.tmp)
        self.addCleanup(p.kill)
        return p

    def write_agent_ini(self, agent_keys="", defaults="notify = json\n"):
        """self.conf (conf.d, created when missing) and vigil.ini naming it,
        self.state and a spool folder, agent_keys added to [agent], then a
        [defaults] section unless defaults is empty. Returns the ini's path."""
        self.conf = self.path("conf.d")
        os.makedirs(self.conf, exist_ok=True)
        text = "[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s\n%s" % (
            self.conf, self.state, self.path("spool"), agent_keys)
        if defaults:
            text += "\n[defaults]\n" + defaults
        return self.write("vigil.ini", text)

    def start_agent(self, ini=None, **kw):
        """`vigil agent --config INI` (self.ini by default; kw as for start),
        once it has loaded conf.d; stopped when the test ends, then its stderr
        checked for crashes."""
        a = self.start("agent", "--config", ini or self.ini, **kw)
        a.wait_for("err", lambda l: "loaded:" in l, what="the first load")
        self.addCleanup(lambda: self.assertNoCrash(a.err))
        self.addCleanup(a.stop)
        return a

    def track(self, pid, start):
        self._tracked.append((pid, start))
        return pid

    def detached(self, cmd, user=None):
        pid, start = spawn_detached(cmd, user=user, cwd=self.tmp)
        self.track(pid, start)
        return pid

    def _kill_tracked(self):
        for pid, start in self._tracked:
            kill_if_same(pid, start)

    def assertNoCrash(self, stderr):
        for mark in SANITIZER_MARKS:
            self.assertNotIn(mark, stderr, "vigil crashed or a sanitizer complained:\n" + stderr)

    def assertUsageError(self, r, *needles):
        """Exit 2, a message on stderr holding every needle, no crash."""
        msg = "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout, r.stderr)
        self.assertEqual(r.returncode, 2, msg)
        self.assertTrue(r.stderr.strip(), "nothing on stderr\n" + msg)
        for n in needles:
            self.assertIn(n, r.stderr, msg)
        self.assertNoCrash(r.stderr)

    def status_json(self, name, exe=None, prefix=(), env=None):
        r = run(list(prefix) + [exe or VIGIL, "status", "--json", name], env=env or self.env,
                cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        recs = json_lines(r.stdout)
        self.assertEqual(len(recs), 1, r.stdout)
        return recs[0]

    def wait_finished(self, name, timeout=TIMEOUT, **kw):
        """Poll vigil status until the job is finished (bounded)."""
        last = {}

        def done():
            last["r"] = self.status_json(name, **kw)
            return last["r"] if last["r"]["state"] == "finished" else None
        try:
            rec = wait_until(done, timeout, 0.1, "job %s to finish" % name)
        except AssertionError:
            raise AssertionError("job %s not finished after %ss: %r" % (name, timeout, last.get("r")))
        self.assertSupervisorClean(name, rec, kw.get("env"))
        return rec

    def assertSupervisorClean(self, name, rec, env=None):
        """vigil run's supervisor writes its own stderr to LOG.vigil: once it has
        exited, no crash or sanitizer report (leaks show at exit) may be there."""
        state = (env or self.env).get("VIGIL_STATE_DIR", self.state)
        owner = 0
        try:
            with open(os.path.join(state, name + ".run")) as f:
                for line in f:
                    if line.startswith("owner_pid="):
                        owner = int(line.split("=", 1)[1])
        except OSError:
            pass
        if owner > 0:
            wait_until(lambda: not proc_alive(owner), TIMEOUT, what="the supervisor to exit")
        try:
            with open(rec["log"] + ".vigil", errors="replace") as f:
                self.assertNoCrash(f.read())
        except FileNotFoundError:
            pass


class HookReceiver:
    """tests/integration/http_receiver.py on a free loopback port, logging every
    request; `mode` is its answer ("200", "500", "503:SECONDS", "down-for:S"...)."""

    def __init__(self, tmp, mode="200"):
        import sys
        self.log = os.path.join(tmp, "requests.jsonl")
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "http_receiver.py"),
                                   "--log", self.log, "--mode", mode],
                                  stdout=subprocess.PIPE, text=True)
        self.port = int(self.p.stdout.readline())
        self.url = "http://127.0.0.1:%d" % self.port

    def mode(self, m):
        import urllib.request
        urllib.request.urlopen(urllib.request.Request(self.url + "/_mode", data=m.encode()),
                               timeout=10).read()

    def requests(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def bodies(self, path=None):
        return [json.loads(r["body"]) for r in self.requests()
                if path is None or r["path"] == path]

    def ids(self):
        return [b["id"] for b in self.bodies()]

    def stop(self):
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()
