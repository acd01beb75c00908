/* vigil stop NAME [--force] [--grace DUR]: SIGTERM (with SIGCONT, so that a
 * stopped job acts on it) to the job's whole process tree, then SIGKILL after a
 * grace. A job without a live supervisor is addressed through a pidfd after
 * checking its start time, so a reused PID is never signalled. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"
#include "agent/control.h"
#include "engine/engine.h"
#include "base/loop.h"
#include "lib/proc.h"
#include "base/state.h"

static const char usage[] =
	"usage: vigil stop NAME [--force] [--grace DUR]\n"
	"\n"
	"Stop a job: SIGTERM and SIGCONT to its whole process tree (what it started, setsid or\n"
	"not), then SIGKILL to what is still there after the grace (default 10s).\n"
	"--force sends SIGKILL at once.\n"
	"A monitor of the running agent is stopped by the agent (through its control socket;\n"
	"the grace is then the monitor's kill_grace); other jobs through the state folder.\n";

static int send_sig(int pidfd, pid_t pid, int sig)
{
	/* vigil run's jobs lead their own process group: signal all of it. */
	if (getpgid(pid) == pid)
		kill(-pid, sig);
	if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) != 0 && errno != ESRCH)
		return -errno;
	return 0;
}

static bool wait_exit(int pidfd, int64_t ms)
{
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	return poll(&p, 1, (int)ms) == 1;
}

/* The supervisor records the outcome just after the exit: show it. */
static void report_outcome(const char *dir, const char *name, uint64_t run)
{
	struct run_record r;

	for (int i = 0; i < 300; i++) { /* up to 30 s: a loaded machine */
		if (state_read(dir, name, &r) == 0 && r.run == run && strcmp(r.state, "finished") == 0) {
			printf("%s: %s (%s)\n", name, r.outcome, r.reason);
			return;
		}
		usleep(100000);
	}
}

static int parse_args(int argc, char **argv, const char **name, bool *force, int64_t *grace)
{
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i]))
			return fputs(usage, stdout), -1;
		if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
			*force = true;
		} else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
			if (config_parse_duration_ms(argv[++i], grace) != 0)
				return fprintf(stderr, "vigil stop: --grace: \"%s\" is not a duration\n",
					       argv[i]), EXIT_USAGE;
		} else if (argv[i][0] == '-') {
			return fprintf(stderr, "vigil stop: unknown option %s\n", argv[i]), EXIT_USAGE;
		} else if (!*name) {
			*name = argv[i];
		} else {
			return fprintf(stderr, "vigil stop: one job at a time\n"), EXIT_USAGE;
		}
	}
	if (!*name)
		return fputs(usage, stderr), EXIT_USAGE;
	return 0;
}

/* The agent's outcome for the run it stopped, once it has one. */
static void agent_outcome(const char *dir, const char *name, long long run)
{
	char line[300], *reply = NULL;
	struct run_record *v;
	size_t n;

	snprintf(line, sizeof(line), "status %s", name);
	for (int i = 0; i < 300; i++) { /* up to 30 s: a loaded machine */
		if (control_request(dir, line, NULL, 0, &reply) == 0 && control_reply_ok(reply) &&
		    control_parse_records(reply, &v, &n) == 0) {
			bool done = n == 1 && (long long)v[0].run == run && strcmp(v[0].state, "running");

			if (done)
				printf("%s: %s (%s)\n", name, v[0].outcome[0] ? v[0].outcome : v[0].state,
				       v[0].reason[0] ? v[0].reason : v[0].last_event);
			free(v);
			free(reply);
			if (done)
				return;
		} else {
			free(reply);
		}
		reply = NULL;
		usleep(100000);
	}
}

/* ------------------------------------------------------------ a whole tree */
/* vigil run's supervisor is a subreaper: every process of its job, setsid'd or
 * left behind by a daemonizing command, is among its descendants. */

static void signal_tree(pid_t supervisor, int sig)
{
	pid_t *v;
	size_t n;

	if (engine_descendants(&supervisor, 1, true, &v, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		kill(v[i], sig);
	/* a stopped process must run to act on the SIGTERM */
	for (size_t i = 0; sig != SIGKILL && i < n; i++)
		kill(v[i], SIGCONT);
	free(v);
}

/* Wait until no descendant of the supervisor lives: one pidfd at a time, a new
 * look at the tree after each exit. */
static bool tree_gone(pid_t supervisor, int64_t ms)
{
	int64_t deadline = loop_clock_ms() + ms;

	for (;;) {
		pid_t *v;
		size_t n;
		int fd;

		if (engine_descendants(&supervisor, 1, true, &v, &n) != 0)
			return false;
		fd = n ? (int)syscall(SYS_pidfd_open, v[0], 0) : -1;
		free(v);
		if (n == 0)
			return true;
		if (loop_clock_ms() >= deadline) {
			if (fd >= 0)
				close(fd);
			return false;
		}
		if (fd >= 0) {
			wait_exit(fd, deadline - loop_clock_ms());
			close(fd);
		}
	}
}

static bool tree_alive(pid_t supervisor)
{
	pid_t *v;
	size_t n = 0;

	if (engine_descendants(&supervisor, 1, true, &v, &n) == 0)
		free(v);
	return n > 0;
}

/* A job of vigil run whose supervisor still runs: end its whole tree. */
static int stop_tree(const char *dir, const struct run_record *r, bool force, int64_t grace)
{
	if (!tree_alive(r->supervisor)) {
		printf("%s is not running\n", r->name);
		return 0;
	}
	signal_tree(r->supervisor, force ? SIGKILL : SIGTERM);
	if (force) {
		printf("%s (pid %d): killed with SIGKILL\n", r->name, (int)r->pid);
	} else if (tree_gone(r->supervisor, grace)) {
		printf("%s (pid %d): stopped by SIGTERM\n", r->name, (int)r->pid);
	} else {
		signal_tree(r->supervisor, SIGKILL);
		printf("%s (pid %d): still running %lld ms after SIGTERM; killed with SIGKILL\n",
		       r->name, (int)r->pid, (long long)grace);
	}
	if (!tree_gone(r->supervisor, 5000))
		fprintf(stderr, "vigil stop: %s: processes still there after SIGKILL\n", r->name);
	report_outcome(dir, r->name, r->run);
	return 0;
}

/* A run still going: running, or stopped (SIGSTOP) but alive. */
static bool run_going(const struct run_record *r)
{
	return strcmp(r->state, "running") == 0 || strcmp(r->state, "stopped") == 0;
}

static bool supervised(const struct run_record *r)
{
	return run_going(r) && r->supervisor > 0 &&
	       r->owner_pid == r->supervisor && state_writer_alive(r);
}

/* Is pid a vigil like us? A record names its supervisor by pid only: a pid
 * reused by another program is never signalled. */
static bool is_vigil(pid_t pid)
{
	char path[64];
	struct stat self, other;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	return stat("/proc/self/exe", &self) == 0 && stat(path, &other) == 0 &&
	       self.st_dev == other.st_dev && self.st_ino == other.st_ino;
}

/* Between two attempts (retrying) or before the first (waiting for --after)
 * there is no process to stop: the supervisor ends the run on SIGTERM. */
static bool between_attempts(const struct run_record *r)
{
	return (strcmp(r->state, "retrying") == 0 || strcmp(r->state, "waiting") == 0) &&
	       r->supervisor > 0 && r->owner_pid == r->supervisor && state_writer_alive(r);
}

static int stop_supervisor(const char *dir, const struct run_record *r)
{
	int pidfd = (int)syscall(SYS_pidfd_open, r->supervisor, 0);
	int rc = pidfd < 0 || !is_vigil(r->supervisor) ? -ESRCH
		 : syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0) == 0 ? 0 : -errno;

	if (pidfd >= 0)
		close(pidfd);
	if (rc == -ESRCH) {
		printf("%s is not running (%s)\n", r->name, r->state);
		return 0;
	}
	if (rc) {
		fprintf(stderr, "vigil stop: cannot signal %s's supervisor (pid %d): %s\n", r->name,
			(int)r->supervisor, strerror(-rc));
		return 1;
	}
	printf("%s (run %llu, %s): SIGTERM sent to its supervisor (pid %d)\n", r->name,
	       (unsigned long long)r->run, r->state, (int)r->supervisor);
	report_outcome(dir, r->name, r->run);
	return 0;
}

/* 1: handled by the agent (rc set); 0: not an agent's monitor, or no agent. */
static int stop_via_agent(const char *dir, const char *name, bool force, int *rc)
{
	char line[300], *reply = NULL;
	long long pid, run;
	int pidfd;

	snprintf(line, sizeof(line), "stop %s%s", name, force ? " --force" : "");
	if (strlen(name) > 255 || strchr(name, ' ') ||
	    control_request(dir, line, NULL, 0, &reply) != 0)
		return 0;
	if (!control_reply_ok(reply)) {
		bool unknown = strstr(reply, "no monitor named") != NULL;

		if (!unknown)
			fprintf(stderr, "vigil stop: %s", strncmp(reply, "error: ", 7) ? reply : reply + 7);
		free(reply);
		*rc = 1;
		return !unknown;
	}
	pid = control_reply_num(reply, "pid");
	run = control_reply_num(reply, "run");
	free(reply);
	if (pid > 0)
		printf("%s (pid %lld): %s sent by the agent\n", name, pid,
		       force ? "SIGKILL" : "SIGTERM");
	else /* a run that had not started its process (after =) */
		printf("%s: ended by the agent before its process started\n", name);
	pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, (pid_t)pid, 0) : -1;
	if (pidfd >= 0) {
		/* The agent follows SIGTERM with SIGKILL after the monitor's grace. */
		wait_exit(pidfd, 120000);
		close(pidfd);
	}
	agent_outcome(dir, name, run);
	*rc = 0;
	return 1;
}

int cli_stop(int argc, char **argv)
{
	const char *name = NULL, *dir;
	bool force = false;
	int64_t grace = 10000;
	struct run_record r;
	int pidfd, rc = parse_args(argc, argv, &name, &force, &grace);

	if (rc)
		return rc < 0 ? 0 : rc;
	dir = cli_state_dir_for(name);
	if (dir && stop_via_agent(dir, name, force, &rc))
		return rc;
	if (!dir || state_read(dir, name, &r) != 0)
		return fprintf(stderr, "vigil stop: no job named \"%s\"\n", name), EXIT_USAGE;
	if (supervised(&r))
		return stop_tree(dir, &r, force, grace);
	if (between_attempts(&r))
		return stop_supervisor(dir, &r);
	if (!run_going(&r) || !proc_is_same(r.pid, r.start_time)) {
		printf("%s is not running (%s)\n", name, r.outcome[0] ? r.outcome : r.state);
		return 0;
	}
	pidfd = (int)syscall(SYS_pidfd_open, r.pid, 0);
	if (pidfd < 0 || !proc_is_same(r.pid, r.start_time)) {
		printf("%s is not running\n", name);
		return 0;
	}
	rc = send_sig(pidfd, r.pid, force ? SIGKILL : SIGTERM);
	if (rc) {
		fprintf(stderr, "vigil stop: cannot signal %s (pid %d): %s\n", name, (int)r.pid,
			strerror(-rc));
		close(pidfd);
		return 1;
	}
	if (force) {
		printf("%s (pid %d): killed with SIGKILL\n", name, (int)r.pid);
	} else if (wait_exit(pidfd, grace)) {
		printf("%s (pid %d): stopped by SIGTERM\n", name, (int)r.pid);
	} else {
		send_sig(pidfd, r.pid, SIGKILL);
		printf("%s (pid %d): still running %lld ms after SIGTERM; killed with SIGKILL\n", name,
		       (int)r.pid, (long long)grace);
	}
	wait_exit(pidfd, 5000);
	close(pidfd);
	if (r.owner_pid > 0 && r.owner_pid != r.pid)
		report_outcome(dir, name, r.run);
	return 0;
}
