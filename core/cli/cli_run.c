/* vigil run: nohup done right. A detached supervisor (its own session, stdin
 * from /dev/null) starts the command as its child, so the exit status is always
 * known; it writes the pid file, records the run in the state folder, notifies
 * and exits. The foreground process only reports where things are. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_after.h"
#include "cli_session.h"
#include "lib/proc.h"
#include "base/safe_file.h"
#include "base/state.h"

static const char usage[] =
	"usage: vigil run [--name NAME] [--log FILE] [--pid-file FILE] [DETECTORS] [POLICY]\n"
	"                 [--notify SPEC]... [-c FILE] -- CMD [ARG]...\n"
	"\n"
	"Start CMD in the background, detached from this terminal, with its output in a log\n"
	"file and a pid file; a supervisor records its exit status and notifies.\n"
	"\n"
	"  --name NAME       the job's name (default: the command's name)\n"
	"  --log FILE        where stdout and stderr go (default: the log folder, NAME.log)\n"
	"  --pid-file FILE   where the PID is written (default: the state folder, NAME.pid)\n"
	"DETECTORS   --success RE --failure RE --progress RE --stall DUR (on the job's log)\n"
	"            --file PATH [--min-size SIZE] [--stable-for DUR] [--deadline DUR]\n"
	"            --disk PATH:MIN_FREE  --inodes PATH:MIN_FREE  --memory MIN_AVAILABLE\n"
	"            --pressure-interval DUR (disk and memory sampling; default 10s)\n"
	"POLICY      --timeout DUR --expected DUR|auto --min-duration DUR|auto (too_fast)\n"
	"            --on-timeout notify|term|kill --kill-grace DUR --rule EXPR\n"
	"RETRY       --retry N (extra attempts) --retry-delay DUR (default 10s, doubled)\n"
	"            --retry-command CMD (sh -c, for the attempts after the first)\n"
	"HOOKS       --before-retry CMD --on-failure CMD (sh -c, the event as JSON on stdin)\n"
	"            --hook-timeout DUR (a hook is killed after it; default 60s)\n"
	"NOTIFY      --notify stdout|json|webhook:URL|email:ADDRESS|NAME (repeatable)\n"
	"AFTER       --after NAME (repeatable): start once job NAME's current run has ended,\n"
	"            only if it succeeded (else this run ends failed, never started);\n"
	"            --after-any NAME: start once it has ended, whatever the outcome\n"
	"            (they add to after = and after_any = of -c FILE)\n"
	"OTHER       -c FILE (a monitor .ini; flags win)  --deliver-timeout DUR\n"
	"            --state-dir DIR  --plugin-dir DIR\n"
	"DUR         30s, 15m, 2h, 1h30m, 7d    SIZE  5G, 512M, 10%\n"
	"\n"
	"The job sees VIGIL_JOB, VIGIL_RUN and VIGIL_ATTEMPT in its environment.\n"
	"Then: vigil status NAME, vigil logs -f NAME, vigil watch NAME, vigil stop NAME,\n"
	"vigil history NAME.\n";

/* A leading '-' or '.' would read as an option or a hidden file later. */
static bool name_ok(const char *name)
{
	if (!isalnum((unsigned char)name[0]) || strlen(name) > 100)
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || strchr("._-@", *c)))
			return false;
	return true;
}

/* The last value of key in a section as -c FILE and the flags left it. */
static const char *section_value(const struct raw_section *s, const char *key)
{
	const char *v = NULL;

	for (size_t k = 0; k < s->n_kv; k++)
		if (strcmp(s->kv[k].key, key) == 0)
			v = s->kv[k].value;
	return v;
}

/* --name, else the file's name =, else the file's name without .ini (the INI
 * contract's default), else the command's name. */
static int pick_name(struct cli_job *job, struct raw_section *mon)
{
	const char *name = section_value(mon, "name");

	if (!name) {
		const char *from = job->config_file ? job->config_file : job->argv[0];
		const char *slash = strrchr(from, '/');
		char *base = strdup(slash ? slash + 1 : from);
		size_t n = base ? strlen(base) : 0;

		if (!base)
			return fprintf(stderr, "vigil run: out of memory\n"), EXIT_USAGE;
		if (job->config_file && n > 4 && strcmp(base + n - 4, ".ini") == 0)
			base[n - 4] = '\0';
		raw_section_set(mon, "name", base, 0);
		free(base);
		name = section_value(mon, "name");
	}
	job->name = (char *)name;
	if (name_ok(name))
		return 0;
	fprintf(stderr, "vigil run: \"%s\" is not a job name (letters, digits, . _ - @, "
		"starting with a letter or digit; use --name)\n", name);
	return EXIT_USAGE;
}

/* A [log] detector without a path follows the job's own output, from its start. */
static void log_sections_follow(struct raw_ini *ini, const char *log)
{
	for (size_t i = 0; i < ini->n_sections; i++) {
		struct raw_section *s = &ini->sections[i];

		if (strcmp(s->plugin, "log") != 0 || section_value(s, "path"))
			continue;
		raw_section_set(s, "path", log, 0);
		raw_section_set(s, "from", "start", 0);
	}
}

/* Name, log (--log, else the file's log =, else the log folder), command, and
 * the [log] detectors' path. -c FILE's values hold unless a flag overrides
 * them: apply_flags already put the flags' values in place of the file's. */
static int fill_job(struct cli_job *job, char *log, size_t loglen)
{
	struct raw_section *mon = raw_ini_section(&job->ini, "monitor");
	const char *given;
	char *cmd, logdir[PATH_MAX];
	int rc;

	/* With -c FILE, its command = runs when nothing follows --. */
	if (job->argc == 0 && !section_value(mon, "command")) {
		fprintf(stderr, "vigil run: no command (vigil run [OPTIONS] -- CMD [ARG]... or "
			"command = in -c FILE)\n");
		return EXIT_USAGE;
	}
	if ((rc = pick_name(job, mon)))
		return rc;
	given = section_value(mon, "log");
	if (given)
		snprintf(log, loglen, "%s", given);
	else
		snprintf(log, loglen, "%s/%s.log", cli_log_dir(logdir, sizeof(logdir)), job->name);
	if (job->argc > 0) {
		cmd = cli_join_command(job->argc, job->argv);
		raw_section_set(mon, "command", cmd, 0);
		free(cmd);
	}
	if (!given)
		raw_section_set(mon, "log", log, 0);
	log_sections_follow(&job->ini, log);
	return 0;
}

static int refuse_running_duplicate(const char *state_dir, const char *name)
{
	struct run_record r;

	if (state_dir && state_read(state_dir, name, &r) == 0 && strcmp(r.state, "finished") != 0 &&
	    state_writer_alive(&r)) {
		fprintf(stderr, "vigil run: a job named %s is already running (pid %d); "
			"choose another --name or vigil stop %s\n", name, (int)r.pid, name);
		return EXIT_USAGE;
	}
	return 0;
}

struct started_info {
	const char *pid_file;
	int ready_fd;
};

/* A new file renamed over the old one, relative to the folder: a link planted
 * at the pid file or next to it is replaced, never written through. */
static void write_pid_file(const char *path, pid_t pid)
{
	char text[32], err[PATH_MAX + 128];
	int len = snprintf(text, sizeof(text), "%d\n", (int)pid);

	if (safe_file_replace(path, text, (size_t)len, 0644, err, sizeof(err)) != 0)
		fprintf(stderr, "vigil run: pid file: %s\n", err);
}

static void job_started(struct session *s, const char *err, void *arg)
{
	struct started_info *si = arg;

	if (!err)
		write_pid_file(si->pid_file, monitor_pid(s->m));
	if (si->ready_fd < 0)
		return; /* --after: the foreground was told already */
	if (err)
		dprintf(si->ready_fd, "E %s\n", err);
	else
		dprintf(si->ready_fd, "P %d\n", (int)monitor_pid(s->m));
	close(si->ready_fd);
}

/* --after: the foreground need not wait for the predecessors (it returns
 * once the record says waiting); true: the command may start (else the run
 * has ended, failed, without it). */
static bool wait_predecessors(struct session *s, struct cli_after *after,
			      struct started_info *si)
{
	char names[600];

	if (after->set.n == 0)
		return true;
	cli_after_begin(after, s);
	dprintf(si->ready_fd, "W %s\n", after_names(&after->set, names, sizeof(names)));
	close(si->ready_fd);
	si->ready_fd = -1;
	return cli_after_wait(after);
}

/* In the supervisor: detach, run the monitor, report readiness through fd. */
static int supervise(struct cli_job *job, struct cli_after *after, const char *state_dir,
		     const char *log, const char *pid_file, int ready_fd)
{
	struct session s;
	char sup_log[PATH_MAX + 8], err[PATH_MAX + 128];
	int fd, rc;

	setsid();
	/* What the job leaves behind (a daemon's worker) comes to us, not to init:
	 * the run lasts until it exits, and vigil stop reaches it. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		dup2(fd, 0);
	snprintf(sup_log, sizeof(sup_log), "%s.vigil", log);
	fd = safe_file_append(sup_log, 0640, err, sizeof(err));
	if (fd < 0) {
		dprintf(ready_fd, "E %s\n", err);
		return EXIT_USAGE;
	}
	dup2(fd, 1);
	dup2(fd, 2);
	close(fd);
	rc = session_open(&s, job, state_dir);
	if (rc == 0) {
		struct started_info si = {pid_file, ready_fd};

		monitor_set_supervisor(s.m, getpid(), log);
		/* this run follows the name's last one, not run 1 again */
		monitor_seed_run(s.m, state_last_run(state_dir, job->name));
		s.started = job_started;
		s.started_arg = &si;
		s.outlive = true; /* nobody waits for us: deliver everything */
		wait_predecessors(&s, after, &si);
		rc = session_run(&s, false); /* after a failed wait: delivers, exits */
	} else {
		dprintf(ready_fd, "E cannot start the supervisor (see %s)\n", sup_log);
	}
	session_close(&s);
	return rc;
}

static int report_started(struct cli_job *job, int ready_fd, const char *log,
			  const char *pid_file)
{
	char buf[1024];
	ssize_t n;
	size_t got = 0;

	while ((n = read(ready_fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	if (got > 2 && buf[0] == 'W') {
		buf[strcspn(buf, "\n")] = '\0';
		printf("%s waits for %s\n", job->name, buf + 2);
	} else if (got == 0 || buf[0] != 'P') {
		fprintf(stderr, "vigil run: %s", got > 2 ? buf + 2 : "the supervisor failed to start\n");
		return EXIT_USAGE;
	} else {
		printf("started %s (pid %d)\n", job->name, atoi(buf + 2));
	}
	printf("  log:      %s\n"
	       "  pid file: %s\n"
	       "  status:   vigil status %s\n"
	       "  follow:   vigil logs -f %s\n"
	       "  watch:    vigil watch %s\n"
	       "  stop:     vigil stop %s\n",
	       log, pid_file, job->name, job->name, job->name, job->name);
	return 0;
}

int cli_run(int argc, char **argv)
{
	struct cli_job job;
	struct cli_after after;
	char log[PATH_MAX], pid_file[PATH_MAX];
	const char *state_dir;
	int pipefd[2], rc = cli_after_take_flags(&after, &argc, argv);
	pid_t pid;

	if (rc) {
		cli_after_free(&after);
		return rc;
	}
	rc = cli_job_parse(&job, argc, argv, true, usage);
	if (rc)
		goto out;
	state_dir = cli_state_dir();
	if (!state_dir) {
		rc = EXIT_USAGE; /* said why: a folder we cannot trust or create */
		goto out;
	}
	if ((rc = fill_job(&job, log, sizeof(log))) ||
	    (rc = refuse_running_duplicate(state_dir, job.name)) ||
	    (rc = cli_job_config(&job, true)) ||
	    (rc = cli_after_check(&after, &job.mc, job.name)))
		goto out;
	job.mc.command_argv = job.argc ? job.argv : NULL; /* NULL: sh -c the file's command = */
	if (job.pid_file)
		snprintf(pid_file, sizeof(pid_file), "%s", job.pid_file);
	else
		snprintf(pid_file, sizeof(pid_file), "%s/%s.pid", state_dir ? state_dir : "/tmp",
			 job.name);
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		perror("vigil run: pipe");
		rc = EXIT_USAGE;
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		_exit(supervise(&job, &after, state_dir, log, pid_file, pipefd[1]));
	}
	close(pipefd[1]);
	rc = pid < 0 ? EXIT_USAGE : report_started(&job, pipefd[0], log, pid_file);
	close(pipefd[0]);
out:
	cli_job_free(&job);
	cli_after_free(&after);
	return rc < 0 ? 0 : rc;
}
