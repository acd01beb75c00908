# The phases of tests/system/run.sh, in order; each one leaves the container in
# the state the next expects. $old, $new: the two .deb names in /mnt/debs.
# shellcheck shell=bash

job_pid() { inside vigil status --json systest | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
job_running() { inside vigil status --json systest | grep -q '"state": *"running"'; }
not() { ! "$@"; }
journal_has() { inside journalctl -u vigil --no-pager | grep -qF "$1"; }
clijob_finished() { inside vigil status clijob | grep -q finished; }
job_tmp_file_is_its_users() { test "$(inside stat -c %U /tmp/vigil-systest)" = vigiljob; }
job_starts() { inside grep -c '^start ' /var/lib/vigil/systest.log; }

phase_install() {
	phase install
	inside dpkg -i "/mnt/debs/$old" | sed 's/^/    | /'
	check "started on install, READY reached (active/running)" wait_for 30 unit_is active/running
	say "unit: $(unit_state), MainPID $(inside systemctl show -p MainPID --value vigil)"
	check "vigil.ini 0640 root:vigil" \
		test "$(inside stat -c '%a %U:%G' /etc/vigil/vigil.ini)" = "640 root:vigil"
	check "logrotate accepts the job-log snippet" inside logrotate -d /etc/logrotate.d/vigil
	say "$(inside systemd-analyze security vigil --no-pager | tail -n 1)"
	# vigil.ini(5)'s [notifier] with a secret, in the shipped 0640 root:vigil file.
	inside cp -p /etc/vigil/vigil.ini /root/vigil.ini.orig
	in_sh 'printf "[notifier hook]\ntype = webhook\nurl = http://127.0.0.1:9/x\nsecret = s3cret\n" >>/etc/vigil/vigil.ini'
	check "a secret in vigil.ini 0640 root:vigil is accepted" inside vigil check /etc/vigil/vigil.ini
	inside cp -p /root/vigil.ini.orig /etc/vigil/vigil.ini
}

# A job that reports its PID and writes where a backup job would, as its user.
phase_monitor() {
	phase monitor
	in_sh 'useradd -r -M -s /usr/sbin/nologin vigiljob &&
		install -d -o vigiljob -m 0755 /var/backups/vigil-systest'
	in_sh 'cat >/etc/vigil/conf.d/systest.ini <<EOF
[monitor]
command = echo "start \$\$ as \$(id -un)"; echo ok >/tmp/vigil-systest; date >/var/backups/vigil-systest/stamp; exec sleep 3600
user = vigiljob
log = /var/lib/vigil/systest.log
notify = json
EOF'
	check "systemctl reload vigil adds the monitor" inside systemctl reload vigil
	check "the job runs and its run is reported" wait_for 30 job_running
	job_running || inside journalctl -u vigil --no-pager -n 30 | sed 's/^/    | agent: /'
	inside vigil status systest | sed 's/^/    | /'
	check "the job started once" test "$(job_starts)" = 1
	check "the job runs as its user =, its \$\$ expanded by sh (not systemd)" \
		inside grep -q '^start [0-9][0-9]* as vigiljob$' /var/lib/vigil/systest.log
	check "the job wrote /var/backups" wait_for 30 inside test -s /var/backups/vigil-systest/stamp
	check "the job wrote the host's /tmp, as its user" wait_for 30 job_tmp_file_is_its_users
	say "job unit: $(inside systemctl list-units --no-legend 'vigil-job-*' | head -n 1)"
	inside cat /var/lib/vigil/systest.log | sed 's/^/    | log: /'
}

phase_reload() {
	phase reload
	in_sh 'printf "[monitor]\nmatch = x\ntimeout = soon\n" >/etc/vigil/conf.d/broken.ini'
	check "systemctl reload fails on a broken file" not inside systemctl reload vigil
	inside vigil reload | sed 's/^/    | /' || true
	check "the diagnostics name FILE:LINE: [section] key" \
		journal_has "broken.ini:3: [monitor] timeout"
	check "the agent still runs" unit_is active/running
	inside rm /etc/vigil/conf.d/broken.ini
	check "systemctl reload succeeds once fixed" inside systemctl reload vigil
}

phase_upgrade() {
	local pid main
	phase upgrade
	pid=$(job_pid)
	main=$(inside systemctl show -p MainPID --value vigil)
	say "before: agent $main, job $pid"
	inside apt-get install -y "/mnt/debs/$new" 2>&1 | grep -v '^W:' | sed 's/^/    | /'
	check "running again after the upgrade" wait_for 30 unit_is active/running
	check "the agent is the new one" \
		test "$(inside systemctl show -p MainPID --value vigil)" != "$main"
	check "monitoring continues" wait_for 30 job_running
	say "after: agent $(inside systemctl show -p MainPID --value vigil), job $(job_pid)"
	check "the job kept running (same PID $pid)" test "$(job_pid)" = "$pid"
	check "the job was not started twice" test "$(job_starts)" = 1
}

# A root `vigil run` job too: its log and record are the admin's, not the agent's.
phase_remove() {
	phase remove
	check "root's vigil run job" inside vigil run --name clijob -- true
	check "its record says finished" \
		wait_for 30 clijob_finished
	inside apt-get remove -y vigil 2>&1 | grep -v '^W:' | sed 's/^/    | /'
	check "the unit is stopped" \
		test "$(inside systemctl show -p ActiveState --value vigil)" = inactive
	check "no agent process left" not inside pgrep -x vigil
	check "conffiles stay after remove" inside test -f /etc/vigil/vigil.ini
}

phase_purge() {
	phase purge
	inside dpkg --purge vigil 2>&1 | sed 's/^/    | /'
	say "what remains:"
	inside find /etc/vigil /etc/logrotate.d/vigil /var/lib/vigil /run/vigil 2>/dev/null |
		sed 's/^/    | /' || true # find: some of them are gone, as they should
	check "conffiles gone" not inside test -e /etc/vigil/vigil.ini -o -e /etc/logrotate.d/vigil
	check "the agent's spool gone" not inside test -e /var/lib/vigil/spool
	check "the agent's monitor records gone" not inside test -e /run/vigil/systest.run
	check "root's vigil run record kept" inside test -f /run/vigil/clijob.run
	check "the admin's monitor file kept" inside test -f /etc/vigil/conf.d/systest.ini
	check "root's vigil run log kept" inside test -f /var/lib/vigil/logs/clijob.log
	check "group vigil kept (system groups are not removed)" inside getent group vigil
}
