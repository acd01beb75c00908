"""Who sees what (issue 11, "Access"), with real users: a root agent on a
folder laid out like /run/vigil (0750 root:vigil, the package's layout), its
records, journals and job logs 0640 root:vigil. A member of group vigil reaches
the agent with a plain `vigil status` (no --state-dir); a user outside the
group sees only their own jobs, also when they name the agent's folder. Prints
the access table (user kind x command -> result). Root only: it creates
throwaway users, and group vigil when missing."""

import os
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vigil_test as vt  # noqa: E402

LOOP = "echo started; while :; do sleep 0.2; done"


@unittest.skipIf(vt.user_tools_missing(), vt.user_tools_missing() or "")
class AccessTest(vt.VigilTestCase):
    def setUp(self):
        super().setUp()
        self.gid = vt.vigil_group(self)
        self.sys = self.shared_dir("run-vigil")  # like /run/vigil
        lib = self.shared_dir("lib-vigil")      # like /var/lib/vigil
        self.logs = os.path.join(lib, "logs")
        os.mkdir(self.logs, 0o750)
        os.chown(self.logs, 0, self.gid)
        self.exe = vt.install_copy(self.path("inst"))
        self.member, self.other, self.owner = (vt.make_user(self) for _ in range(3))
        self.start_agent(lib)

    def shared_dir(self, name):
        d = self.path(name)
        os.mkdir(d)
        os.chown(d, 0, self.gid)
        os.chmod(d, 0o750)
        return d

    def start_agent(self, lib):
        conf = self.path("conf.d")
        os.mkdir(conf)
        for name in ("nightly", "backup"):
            with open(os.path.join(conf, name + ".ini"), "w") as f:
                f.write("[monitor]\ncommand = %s\nlog = %s/%s.log\nnotify = json\n"
                        % (LOOP, self.logs, name))
        ini = self.write("vigil.ini", "[agent]\nconf_dir = %s\nstate_dir = %s\nspool_dir = %s\n"
                         % (conf, self.sys, os.path.join(lib, "spool")))
        # As the unit runs it: root, group vigil (Group=vigil).
        self.agent = self.start("agent", "--config", ini, exe=self.exe, prefix=(
            "setpriv", "--regid", str(self.gid), "--clear-groups", "--"))
        self.addCleanup(lambda: self.assertNoCrash(self.agent.err))
        self.addCleanup(self.agent.stop)
        for name in ("nightly", "backup"):
            line = self.agent.wait_for("out", lambda l: '"attached"' in l and '"%s"' % name in l,
                                       what=name + " attached")
            # the agent leaves its jobs running when it stops (a restart adopts
            # them): the test ends them
            pid = vt.json_lines(line)[0]["pid"]
            self.track(pid, vt.proc_start_time(pid))
            vt.wait_until(lambda: self.started(name), what=name + " started")

    def started(self, name):
        try:
            with open(os.path.join(self.logs, name + ".log")) as f:
                return "started" in f.read()
        except FileNotFoundError:
            return False

    # ------------------------------------------------------------ as whom

    def user_env(self, user):
        home = self.path("home-" + user.name)
        if not os.path.isdir(home):
            os.mkdir(home, 0o700)
            os.chown(home, user.uid, user.gid)
        env = user.env(home, os.path.join(home, "state"))
        env["VIGIL_SYSTEM_STATE_DIR"] = self.sys
        return env

    def as_user(self, who, *args):
        """who: "root" or a vt.User; the member gets group vigil as a
        supplementary group, as a login would give it."""
        if who == "root":
            # root's own folder is the agent's, as /run/vigil is
            env = vt.base_env(self.sys, {"VIGIL_SYSTEM_STATE_DIR": self.sys})
            r = vt.run([str(a) for a in args], env=env, cwd=self.tmp)
        else:
            groups = ["--groups", str(self.gid)] if who is self.member else ["--clear-groups"]
            cmd = ["setpriv", "--reuid", str(who.uid), "--regid", str(who.gid)] + groups
            r = vt.run(cmd + ["--"] + [str(a) for a in args], env=self.user_env(who), cwd="/")
        self.assertNoCrash(r.stderr)
        return r

    def vigil_as(self, who, *args):
        return self.as_user(who, self.exe, *args)

    def names(self, who, *extra):
        r = self.vigil_as(who, "status", "--json", *extra)
        return r, sorted(j["name"] for j in vt.json_lines(r.stdout) if "name" in j)

    # ------------------------------------------------------------ the table

    def test_access_table(self):
        kinds = [("root", "root"), ("member", self.member), ("non-member", self.other),
                 ("owner", self.owner)]
        mine = self.owner_job()
        self.root_jobs()
        table = []
        for kind, who in kinds:
            table.append((kind, self.row(kind, who)))
        table += self.stops(kinds, mine)
        print_table(table)

    def owner_job(self):
        r = self.vigil_as(self.owner, "run", "--name", "mine", "--", "sh", "-c", LOOP)
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = vt.wait_until(lambda: self.running(self.owner, "mine"), what="mine running")
        self.track(rec["pid"], vt.proc_start_time(rec["pid"]))
        home_state = os.path.join(self.path("home-" + self.owner.name), "state")
        st = os.stat(os.path.join(home_state, "mine.run"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)  # the owner's folder: theirs only
        return rec

    def running(self, who, name):
        r = self.vigil_as(who, "status", "--json", name)
        recs = vt.json_lines(r.stdout)
        return recs[0] if r.returncode == 0 and recs and recs[0]["state"] == "running" else None

    def root_jobs(self):
        """Root's own vigil run: 0640 root:vigil in the agent's folder, 0600 elsewhere."""
        for state, mode, gid in ((self.sys, 0o640, self.gid), (self.path("root-own"), 0o600, 0)):
            r = vt.run([self.exe, "run", "--state-dir", state, "--name", "rootjob", "--", "true"],
                       env=vt.base_env(state))
            self.assertEqual(r.returncode, 0, r.stderr)
            rec = os.path.join(state, "rootjob.run")
            vt.wait_until(lambda: finished(rec), what="rootjob finished in " + state)
            st = os.stat(rec)
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (mode, gid), state)

    def row(self, kind, who):
        """status, status NAME, logs NAME, reading the record: one user."""
        privileged = kind in ("root", "member")
        r, names = self.names(who)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = {"root": ["backup", "nightly", "rootjob"], "member": ["backup", "nightly", "rootjob"],
                "non-member": [], "owner": ["mine"]}[kind]
        self.assertEqual(names, want)
        cells = {"status": ",".join(names) or "(none)"}
        r, one = self.names(who, "nightly")
        self.assertEqual((r.returncode, one), (0, ["nightly"]) if privileged else (2, []))
        cells["status nightly"] = "ok" if r.returncode == 0 else "no such job"
        r = self.vigil_as(who, "logs", "nightly")
        self.assertEqual(r.returncode, 0 if privileged else 2, r.stderr)
        self.assertEqual("started" in r.stdout, privileged)
        cells["logs nightly"] = "ok" if r.returncode == 0 else "no such job"
        cells["cat nightly.run"] = self.read_record(who, privileged)
        cells["status --state-dir"] = self.named_folder(who, privileged)
        return cells

    def read_record(self, who, privileged):
        r = self.as_user(who, "cat", os.path.join(self.sys, "nightly.run"))
        self.assertEqual(r.returncode == 0, privileged, r.stderr)
        self.assertEqual("command=" in r.stdout, privileged)
        return "ok" if r.returncode == 0 else "Permission denied"

    def named_folder(self, who, privileged):
        """Naming the agent's folder gives an outsider nothing either."""
        r = self.vigil_as(who, "status", "--json", "--state-dir", self.sys)
        self.assertEqual("nightly" in r.stdout, privileged, r.stderr)
        if privileged:
            return "ok"
        self.assertEqual(r.returncode, 2)
        self.assertIn("Permission denied", r.stderr)
        return "refused (Permission denied)"

    def stops(self, kinds, mine):
        """stop NAME: outsiders cannot stop the agent's job; the owner stops
        theirs; a member and root stop the agent's."""
        nightly = self.running("root", "nightly")
        backup = self.running("root", "backup")
        rows = []
        for kind, who in kinds[2:]:
            r = self.vigil_as(who, "stop", "nightly")
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertTrue(vt.proc_alive(nightly["pid"]))
            rows.append((kind, {"stop nightly": "no such job (still running)"}))
        r = self.vigil_as(self.owner, "stop", "mine")
        self.assertEqual(r.returncode, 0, r.stderr)
        vt.wait_until(lambda: not vt.proc_alive(mine["pid"]), what="mine stopped")
        rows.append(("owner", {"stop mine": "ok (stopped)"}))
        for kind, who, rec in (("member", self.member, nightly), ("root", "root", backup)):
            r = self.vigil_as(who, "stop", rec["name"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("sent by the agent", r.stdout)
            vt.wait_until(lambda: not vt.proc_alive(rec["pid"]), what=rec["name"] + " stopped")
            rows.append((kind, {"stop " + rec["name"]: "ok (stopped)"}))
        r = self.vigil_as(self.member, "reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows.append(("member", {"reload": "ok"}))
        return rows

    def test_modes(self):
        """What the agent writes is root's and group vigil's only."""
        vt.wait_until(lambda: all(os.path.exists(os.path.join(self.sys, "nightly" + ext))
                                  for ext in (".run", ".journal")), what="record and journal")
        for path in ("nightly.run", "nightly.journal"):
            st = os.stat(os.path.join(self.sys, path))
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid), (0o640, 0, self.gid),
                             path)
        st = os.stat(os.path.join(self.logs, "nightly.log"))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o640, self.gid))
        st = os.stat(os.path.join(self.sys, "control.sock"))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_gid), (0o660, self.gid))


def finished(record):
    try:
        with open(record) as f:
            return "state=finished" in f.read()
    except FileNotFoundError:
        return False


def print_table(rows):
    merged = {}
    for kind, cells in rows:
        merged.setdefault(kind, {}).update(cells)
    cols = []
    for cells in merged.values():
        cols += [c for c in cells if c not in cols]
    print("\naccess table (agent folder 0750 root:vigil, records 0640 root:vigil):",
          file=sys.stderr)
    for kind, cells in merged.items():
        for c in cols:
            if c in cells:
                print("  %-10s  %-20s  %s" % (kind, c, cells[c]), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
