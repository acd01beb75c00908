/* vigil forget NAME and vigil prune --older-than DUR: what finished jobs leave
 * in the state folder (run record, pid file, event journal) and their logs in
 * vigil's log folder. A job still running is never touched: its supervisor or
 * the agent would write again what we removed, and its log is being written. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "base/journal.h"
#include "base/state.h"
#include "lib/proc.h"

static const char forget_usage[] =
	"usage: vigil forget NAME\n"
	"\n"
	"Remove a finished job's run record, pid file, event journal and log (a log kept\n"
	"outside vigil's log folder stays). A running job is refused: stop it first.\n";

static const char prune_usage[] =
	"usage: vigil prune --older-than DUR\n"
	"\n"
	"vigil forget every job that finished more than DUR ago (e.g. 7d is 168h).\n";

/* Running for real: its writer lives, or its process is still the same one. */
static bool job_running(const struct run_record *r)
{
	if (strcmp(r->state, "finished") == 0)
		return false;
	return state_writer_alive(r) || (r->pid > 0 && proc_is_same(r->pid, r->start_time));
}

/* Unlink a regular file (never through a link); a missing one is fine. */
static void remove_file(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return;
	if (unlink(path) != 0)
		fprintf(stderr, "vigil: cannot remove %s: %s\n", path, strerror(errno));
}

/* The log and the supervisor's LOG.vigil, when they are in vigil's log folder:
 * a log the user placed elsewhere (--log, log =) is theirs to keep. */
static void remove_log(const char *log)
{
	char dir[PATH_MAX], path[PATH_MAX + 8];
	size_t n = strlen(cli_log_dir(dir, sizeof(dir)));

	if (!*log || strncmp(log, dir, n) != 0 || log[n] != '/' || strchr(log + n + 1, '/')) {
		if (*log)
			printf("  kept %s (not in %s)\n", log, dir);
		return;
	}
	remove_file(log);
	snprintf(path, sizeof(path), "%s.vigil", log);
	remove_file(path);
}

static void forget_record(const char *dir, const struct run_record *r)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s.pid", dir, r->name);
	remove_file(path);
	if (journal_path(dir, r->name, path, sizeof(path)) == 0)
		remove_file(path);
	remove_log(r->log);
	if (state_remove(dir, r->name) != 0 && errno != ENOENT)
		fprintf(stderr, "vigil: cannot remove the record of %s: %s\n", r->name,
			strerror(errno));
	printf("forgot %s\n", r->name);
}

int cli_forget(int argc, char **argv)
{
	const char *dir;
	struct run_record r;

	if (argc == 2 && cli_is_help(argv[1]))
		return fputs(forget_usage, stdout), 0;
	if (argc != 2 || argv[1][0] == '-')
		return fputs(forget_usage, stderr), EXIT_USAGE;
	if (!(dir = cli_state_dir()))
		return EXIT_USAGE;
	if (strchr(argv[1], '/') || state_read(dir, argv[1], &r) != 0) {
		fprintf(stderr, "vigil forget: no job named \"%s\"\n", argv[1]);
		return EXIT_USAGE;
	}
	if (job_running(&r)) {
		fprintf(stderr, "vigil forget: %s is running (pid %d): stop it first (vigil stop %s)\n",
			r.name, (int)r.pid, r.name);
		return 1;
	}
	forget_record(dir, &r);
	return 0;
}

static int64_t now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_prune(int argc, char **argv)
{
	struct run_record *v;
	const char *dir;
	int64_t age;
	size_t n, pruned = 0;

	if (argc == 2 && cli_is_help(argv[1]))
		return fputs(prune_usage, stdout), 0;
	if (argc != 3 || strcmp(argv[1], "--older-than") != 0)
		return fputs(prune_usage, stderr), EXIT_USAGE;
	if (config_parse_duration_ms(argv[2], &age) != 0 || age < 0) {
		fprintf(stderr, "vigil prune: --older-than: \"%s\" is not a duration "
			"(e.g. 30m, 12h, 168h)\n", argv[2]);
		return EXIT_USAGE;
	}
	if (!(dir = cli_state_dir()) || state_list(dir, &v, &n) != 0)
		return EXIT_USAGE;
	for (size_t i = 0; i < n; i++) {
		if (job_running(&v[i]) || strcmp(v[i].state, "finished") != 0 ||
		    v[i].ended_ms <= 0 || now_wall_ms() - v[i].ended_ms < age)
			continue;
		forget_record(dir, &v[i]);
		pruned++;
	}
	printf("%zu job(s) forgotten\n", pruned);
	free(v);
	return 0;
}
