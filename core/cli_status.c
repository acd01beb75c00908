/* vigil status: running and finished jobs from the state folder. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "event_json.h"
#include "proc.h"
#include "state.h"

static const char usage[] =
	"usage: vigil status [--json] [NAME]\n"
	"\n"
	"Jobs and monitors with their state, elapsed time, progress and outcome.\n"
	"--json prints one JSON object per job: name, run, state, pid, started, ended,\n"
	"elapsed (seconds), expected, exit_code, signal, outcome, reason, log, command,\n"
	"last_event.\n";

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
	printf("%-*s  %7s  %-9s  %-10s  %-15s  %s\n", w, "NAME", "PID", "STATE", "ELAPSED",
	       "PROGRESS", "OUTCOME / LAST EVENT");
	for (size_t i = 0; i < n; i++) {
		const struct run_record *r = &v[i];
		const char *st = effective_state(r);
		char el[32], prog[32];
		const char *col = "";

		progress_cell(r, prog, sizeof(prog));
		if (color)
			col = strcmp(r->outcome, "succeeded") == 0 ? "\033[32m"
			      : r->outcome[0] && strcmp(r->outcome, "unknown") != 0 ? "\033[31m"
			      : "";
		printf("%-*s  %7d  %-9s  %-10s  %-15s  %s%s%s%s%.60s\n", w, r->name, (int)r->pid, st,
		       cli_format_elapsed(elapsed_ms(r), el, sizeof(el)), prog, col, r->outcome,
		       color && *col ? "\033[0m" : "", r->outcome[0] ? "  " : "",
		       r->outcome[0] ? r->reason : r->last_event);
	}
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
	if (!dir || state_list(dir, &v, &n) != 0)
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
	free(v);
	return 0;
}
