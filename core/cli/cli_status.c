/* vigil status: running and finished jobs from the state folder. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "cli.h"
#include "agent/control.h"
#include "base/event_json.h"
#include "lib/proc.h"
#include "engine/spool.h"
#include "base/state.h"

static const char usage[] =
	"usage: vigil status [--json] [NAME]\n"
	"\n"
	"Jobs and monitors with their state, elapsed time, progress and outcome.\n"
	"--json prints one JSON object per job: name, run, state, pid, started, ended,\n"
	"elapsed (seconds), expected, exit_code, signal, outcome, reason, log, command,\n"
	"last_event.\n"
	"When an agent runs (its control socket is in the state folder), its monitors come\n"
	"from it (state waiting: between runs of a pid_file or match monitor), and the\n"
	"state folder adds the jobs of vigil run.\n";

static int64_t wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A "running" record whose writer died is not running any more. */
static const char *effective_state(const struct run_record *r)
{
	if (strcmp(r->state, "finished") == 0)
		return "finished";
	if (!state_writer_alive(r))
		return "lost";
	return r->state;
}

static int64_t elapsed_ms(const struct run_record *r)
{
	if (!r->started_ms)
		return 0;
	return (r->ended_ms ? r->ended_ms : wall_now_ms()) - r->started_ms;
}

static void print_json(const struct run_record *r)
{
	struct buf b;
	char sig[32], t[40];

	buf_init(&b);
	buf_puts(&b, "{\"name\":");
	json_put_string(&b, r->name, strlen(r->name));
	buf_printf(&b, ",\"run\":%llu,\"state\":\"%s\",\"pid\":", (unsigned long long)r->run,
		   effective_state(r));
	buf_printf(&b, r->pid ? "%d" : "null", (int)r->pid);
	buf_puts(&b, ",\"started\":");
	if (r->started_ms && event_time_rfc3339(r->started_ms, t, sizeof(t)) == 0)
		buf_printf(&b, "\"%s\"", t);
	else
		buf_puts(&b, "null");
	buf_puts(&b, ",\"ended\":");
	if (r->ended_ms && event_time_rfc3339(r->ended_ms, t, sizeof(t)) == 0)
		buf_printf(&b, "\"%s\"", t);
	else
		buf_puts(&b, "null");
	buf_printf(&b, ",\"elapsed\":%.3f,\"expected\":", (double)elapsed_ms(r) / 1000.0);
	buf_printf(&b, r->expected_ms ? "%.3f" : "null", (double)r->expected_ms / 1000.0);
	buf_puts(&b, ",\"exit_code\":");
	buf_printf(&b, r->exit_code >= 0 && r->signal == 0 ? "%d" : "null", r->exit_code);
	buf_puts(&b, ",\"signal\":");
	if (r->signal > 0)
		buf_printf(&b, "\"%s\"", proc_signal_name(r->signal, sig, sizeof(sig)));
	else
		buf_puts(&b, "null");
	buf_puts(&b, ",\"outcome\":");
	if (r->outcome[0])
		json_put_string(&b, r->outcome, strlen(r->outcome));
	else
		buf_puts(&b, "null");
	const char *keys[] = {"reason", "log", "command", "last_event"};
	const char *vals[] = {r->reason, r->log, r->command, r->last_event};
	for (size_t i = 0; i < 4; i++) {
		buf_printf(&b, ",\"%s\":", keys[i]);
		json_put_string(&b, vals[i], strlen(vals[i]));
	}
	buf_puts(&b, "}\n");
	fwrite(b.p, 1, b.len, stdout);
	buf_free(&b);
}

static void progress_cell(const struct run_record *r, char *buf, size_t len)
{
	double pct = r->progress;
	char bar[16];
	int fill;

	if (pct < 0 && r->expected_ms > 0 && strcmp(effective_state(r), "running") == 0)
		pct = 100.0 * (double)elapsed_ms(r) / (double)r->expected_ms;
	if (pct < 0 || strcmp(effective_state(r), "running") != 0) {
		snprintf(buf, len, "-");
		return;
	}
	fill = pct >= 100 ? 10 : (int)(pct / 10);
	for (int i = 0; i < 10; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[10] = '\0';
	snprintf(buf, len, "%s %3.0f%%", bar, pct);
}

static void print_table(const struct run_record *v, size_t n)
{
	bool color = isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	int w = 4;

	for (size_t i = 0; i < n; i++)
		if ((int)strlen(v[i].name) > w)
			w = (int)strlen(v[i].name);
	printf("%-*s  %4s  %7s  %-9s  %-10s  %-15s  %s\n", w, "NAME", "RUN", "PID", "STATE",
	       "ELAPSED", "PROGRESS", "OUTCOME / LAST EVENT");
	for (size_t i = 0; i < n; i++) {
		const struct run_record *r = &v[i];
		const char *st = effective_state(r);
		char el[32], prog[32], pid[16];
		const char *col = "";

		progress_cell(r, prog, sizeof(prog));
		if (color)
			col = strcmp(r->outcome, "succeeded") == 0 ? "\033[32m"
			      : r->outcome[0] && strcmp(r->outcome, "unknown") != 0 ? "\033[31m"
			      : "";
		snprintf(pid, sizeof(pid), r->pid > 0 && strcmp(st, "waiting") ? "%d" : "-", (int)r->pid);
		if (strcmp(st, "waiting") == 0 || !r->started_ms)
			snprintf(el, sizeof(el), "-");
		else
			cli_format_elapsed(elapsed_ms(r), el, sizeof(el));
		printf("%-*s  %4llu  %7s  %-9s  %-10s  %-15s  %s%s%s%s%.60s\n", w, r->name,
		       (unsigned long long)r->run, pid, st, el, prog, col, r->outcome,
		       color && *col ? "\033[0m" : "", r->outcome[0] ? "  " : "",
		       r->outcome[0] ? r->reason : r->last_event);
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct run_record *)a)->name, ((const struct run_record *)b)->name);
}

/* The agent's monitors, plus the state folder's records it does not own (vigil
 * run's jobs). -errno when no agent answers: the caller reads the folder. */
static int agent_list(const char *dir, struct run_record **out, size_t *n)
{
	struct run_record *v, *sv = NULL;
	size_t sn = 0;
	char *reply = NULL;
	long long agent_pid;
	int rc = control_request(dir, "status", NULL, 0, &reply);

	if (rc == 0 && !control_reply_ok(reply))
		rc = -EIO;
	if (rc == 0)
		rc = control_parse_records(reply, &v, n);
	agent_pid = rc == 0 ? control_reply_num(reply, "pid") : -1;
	free(reply);
	if (rc != 0)
		return rc;
	if (state_list(dir, &sv, &sn) == 0) {
		for (size_t i = 0; i < sn; i++) {
			bool dup = sv[i].owner_pid == agent_pid;
			struct run_record *grown;

			for (size_t k = 0; k < *n && !dup; k++)
				dup = strcmp(v[k].name, sv[i].name) == 0;
			if (dup || !(grown = realloc(v, (*n + 1) * sizeof(*v))))
				continue;
			v = grown;
			v[(*n)++] = sv[i];
		}
		free(sv);
	}
	qsort(v, *n, sizeof(*v), by_name);
	*out = v;
	return 0;
}

struct spool_show {
	bool json;
	bool header;
};

static void show_spool(void *data, const char *name, size_t pending, size_t dead)
{
	struct spool_show *ss = data;

	if (!pending && !dead)
		return;
	if (ss->json) {
		struct buf b;

		buf_init(&b);
		buf_puts(&b, "{\"notifier\":");
		json_put_string(&b, name, strlen(name));
		buf_printf(&b, ",\"pending\":%zu,\"dead\":%zu}\n", pending, dead);
		fwrite(b.p, 1, b.len, stdout);
		buf_free(&b);
		return;
	}
	if (!ss->header)
		printf("\n%-24s  %8s  %8s\n", "NOTIFIER", "PENDING", "DEAD");
	ss->header = true;
	printf("%-24s  %8zu  %8zu\n", name, pending, dead);
}

/* The spool of this state folder: DIR/spool with --state-dir, else the default. */
static void print_spool(bool json)
{
	struct spool_show ss = {.json = json};
	char root[4096];

	if (cli_globals.state_dir)
		snprintf(root, sizeof(root), "%s/spool", cli_globals.state_dir);
	else
		spool_default_dir(root, sizeof(root));
	spool_count_all(root, show_spool, &ss);
}

int cli_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
		{"state-dir", required_argument, NULL, 's'}, {0}};
	bool json = false;
	struct run_record *v;
	size_t n;
	const char *dir;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 's')
			cli_globals.state_dir = optarg;
		else if (c == 'h')
			return fputs(usage, stdout), 0;
		else
			return fprintf(stderr, "vigil status: unknown option %s (see vigil status --help)\n",
				       argv[optind - 1]), EXIT_USAGE;
	}
	dir = cli_state_dir();
	if (!dir)
		return EXIT_USAGE;
	if (agent_list(dir, &v, &n) != 0 && state_list(dir, &v, &n) != 0)
		return EXIT_USAGE;
	if (optind < argc) {
		size_t k = 0;

		for (size_t i = 0; i < n; i++)
			if (strcmp(v[i].name, argv[optind]) == 0)
				v[k++] = v[i];
		if (k == 0) {
			fprintf(stderr, "vigil status: no job named \"%s\"\n", argv[optind]);
			free(v);
			return EXIT_USAGE;
		}
		n = k;
	}
	if (json)
		for (size_t i = 0; i < n; i++)
			print_json(&v[i]);
	else if (n == 0)
		printf("no jobs (start one with vigil run, or watch one with vigil watch)\n");
	else
		print_table(v, n);
	if (optind >= argc)
		print_spool(json);
	free(v);
	return 0;
}
