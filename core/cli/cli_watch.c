/* vigil watch: attach to a process in the foreground until it ends; the exit
 * status tells the outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_session.h"
#include "lib/proc.h"
#include "base/state.h"

static const char usage[] =
	"usage: vigil watch [TARGET] [DETECTORS] [POLICY] [--notify SPEC]... [--name NAME] [-c FILE]\n"
	"\n"
	"Attach to a running process (any process, not only vigil's) and report until it ends.\n"
	"\n"
	"TARGET      PID | --pid PID | --pid-file FILE | --match REGEX\n"
	"            NAME: a job of vigil run; its events from the start of its current run\n"
	"            (its journal), then the exit status of its outcome, also when it has ended\n"
	"DETECTORS   --file PATH [--min-size SIZE] [--stable-for DUR] [--deadline DUR]\n"
	"            --log PATH [--success RE] [--failure RE] [--progress RE] [--stall DUR]\n"
	"                       [--from start|end]\n"
	"            --disk PATH:MIN_FREE  --inodes PATH:MIN_FREE  --memory MIN_AVAILABLE\n"
	"            --pressure-interval DUR (disk and memory sampling; default 10s)\n"
	"POLICY      --timeout DUR  --expected DUR|auto  --on-timeout notify|term|kill\n"
	"            --kill-grace DUR  --rule EXPR (e.g. \"exit and file and not failure\")\n"
	"            --min-duration DUR|auto (a shorter run is reported too_fast)\n"
	"            --on-failure CMD (sh -c, the event as JSON on stdin)  --hook-timeout DUR\n"
	"NOTIFY      --notify stdout|json|webhook:URL|email:ADDRESS|NAME (repeatable), --json\n"
	"OTHER       -c FILE (a monitor .ini; flags win)  --deliver-timeout DUR\n"
	"            --state-dir DIR  --plugin-dir DIR\n"
	"DUR         30s, 15m, 2h, 1h30m, 7d    SIZE  5G, 512M, 10%\n"
	"\n"
	"Exit status: 0 succeeded, 1 failed, 3 timed out, 4 unknown, 2 usage or config error.\n";

/* A bare argument: a PID, or the name of a job that vigil run started. */
static int bare_target(struct cli_job *job, const char *arg, const char *state_dir)
{
	struct raw_section *s = raw_ini_section(&job->ini, "monitor");
	char err[200], num[32];
	pid_t pid;
	struct run_record r;

	if (arg[0] >= '0' && arg[0] <= '9') {
		if (proc_parse_pid(arg, &pid, err, sizeof(err)) != 0) {
			fprintf(stderr, "vigil watch: %s\n", err);
			return EXIT_USAGE;
		}
	} else {
		/* A job's run is its owner's to decide: follow its journal (see
		 * follow_job), never attach and judge it a second time. */
		if (!state_dir || state_read(state_dir, arg, &r) != 0) {
			fprintf(stderr, "vigil watch: no job named \"%s\" (see vigil status)\n", arg);
			return EXIT_USAGE;
		}
		job->status_job = arg;
		return 0;
	}
	snprintf(num, sizeof(num), "%d", (int)pid);
	raw_section_set(s, "pid", num, 0);
	return 0;
}

/* The notifier specs of the job's `notify` keys ("json, oncall" is two). */
static size_t notify_specs(struct cli_job *job, char *buf, size_t len, const char **specs,
			   size_t max)
{
	struct raw_section *s = raw_ini_section(&job->ini, "monitor");
	size_t n = 0, used = 0;

	for (size_t i = 0; i < s->n_kv; i++) {
		if (strcmp(s->kv[i].key, "notify") != 0 || used >= len)
			continue;
		char *p = buf + used, *save = NULL;

		used += (size_t)snprintf(p, len - used, "%s", s->kv[i].value) + 1;
		for (char *t = strtok_r(p, ", \t", &save); t && n < max; t = strtok_r(NULL, ", \t", &save))
			specs[n++] = t;
	}
	return n;
}

/* vigil watch NAME: the events of the job's current run as its owner records
 * them, printed as for a PID, and the exit status of its outcome. */
static int follow_job(struct cli_job *job, const char *state_dir)
{
	char buf[4096];
	const char *specs[16];
	size_t n;

	if (job->json)
		return session_follow(state_dir, job->status_job, (const char *[]){"json"}, 1, NULL);
	n = notify_specs(job, buf, sizeof(buf), specs, 16);
	if (n == 0)
		specs[n++] = "stdout";
	return session_follow(state_dir, job->status_job, specs, n, NULL);
}

static void default_name_and_notify(struct cli_job *job)
{
	struct raw_section *s = raw_ini_section(&job->ini, "monitor");
	bool has_name = false, has_notify = false;
	char name[64];

	for (size_t i = 0; i < s->n_kv; i++) {
		has_name |= strcmp(s->kv[i].key, "name") == 0;
		has_notify |= strcmp(s->kv[i].key, "notify") == 0;
	}
	if (job->json)
		raw_section_set(s, "notify", "json", 0);
	else if (!has_notify)
		raw_section_set(s, "notify", "stdout", 0);
	if (!has_name && !job->config_file) {
		for (size_t i = 0; i < s->n_kv; i++) {
			const char *v = s->kv[i].value, *base = strrchr(v, '/');

			if (strcmp(s->kv[i].key, "pid") == 0) {
				snprintf(name, sizeof(name), "pid-%s", v);
				raw_section_set(s, "name", name, 0);
				return;
			}
			if (strcmp(s->kv[i].key, "pid_file") == 0) {
				/* /run/export.pid -> export */
				snprintf(name, sizeof(name), "%s", base ? base + 1 : v);
				name[strcspn(name, ".")] = '\0';
				if (name[0] && strspn(name, "abcdefghijklmnopqrstuvwxyz"
						      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-@") ==
						       strlen(name)) {
					raw_section_set(s, "name", name, 0);
					return;
				}
			}
		}
		raw_section_set(s, "name", "watch", 0);
	}
}

int cli_watch(int argc, char **argv)
{
	struct cli_job job;
	struct session s;
	const char *state_dir;
	int rc = cli_job_parse(&job, argc, argv, false, usage);

	if (rc)
		goto out;
	state_dir = job.argc == 1 ? cli_state_dir_for(job.argv[0]) : cli_state_dir();
	if (job.argc > 1) {
		fprintf(stderr, "vigil watch: one target only, got \"%s\" and \"%s\"\n", job.argv[0],
			job.argv[1]);
		rc = EXIT_USAGE;
		goto out;
	}
	if (job.argc == 1 && (rc = bare_target(&job, job.argv[0], state_dir)))
		goto out;
	if (job.status_job) {
		rc = follow_job(&job, state_dir);
		goto out;
	}
	default_name_and_notify(&job);
	if ((rc = cli_job_config(&job, false)))
		goto out;
	rc = session_open(&s, &job, state_dir);
	if (rc == 0)
		monitor_set_single_run(s.m);
	if (rc == 0)
		rc = session_run(&s, isatty(STDERR_FILENO));
	session_close(&s);
out:
	cli_job_free(&job);
	return rc < 0 ? 0 : rc;
}
