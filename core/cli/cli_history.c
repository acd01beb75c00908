/* vigil history NAME: the finished runs of a job or monitor, with the p50/p95
 * of successful durations and the success rate. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/event_json.h"
#include "base/history.h"
#include "base/state.h"
#include "cli.h"

static const char usage[] =
	"usage: vigil history [--json] [--last N] NAME\n"
	"\n"
	"The finished runs of job or monitor NAME, oldest first: run, start, duration,\n"
	"outcome, exit status; then the median (p50) and p95 of the durations of the\n"
	"successful runs and the success rate, over the runs shown. --last N shows the\n"
	"last N runs only. --json prints one object: monitor, runs (as the history file\n"
	"keeps them), p50, p95, success_rate, corrupt.\n"
	"History folder: $VIGIL_HISTORY_DIR, else STATE_DIR/history when --state-dir or\n"
	"VIGIL_STATE_DIR is given, else /var/lib/vigil/history (root) or\n"
	"$XDG_STATE_HOME/vigil/history; at most history_keep runs ($VIGIL_HISTORY_KEEP,\n"
	"default 1000) are kept per monitor.\n";

struct history_stats {
	double p50, p95; /* -1: no successful run */
	double success_rate; /* -1: no run */
};

static void stats_of(const struct history *h, struct history_stats *s)
{
	size_t ok = 0;

	for (size_t i = 0; i < h->n; i++)
		ok += strcmp(h->v[i].outcome, "succeeded") == 0;
	s->p50 = history_success_quantile(h, 0.50);
	s->p95 = history_success_quantile(h, 0.95);
	s->success_rate = h->n ? (double)ok / (double)h->n : -1;
}

static void put_num(struct buf *b, const char *key, double v)
{
	buf_printf(b, v >= 0 ? ",\"%s\":%.3f" : ",\"%s\":null", key, v);
}

static void print_json(const char *name, const struct history *h, const struct history_stats *s)
{
	struct buf b;

	buf_init(&b);
	buf_puts(&b, "{\"monitor\":");
	json_put_string(&b, name, strlen(name));
	buf_puts(&b, ",\"runs\":[");
	for (size_t i = 0; i < h->n; i++) {
		if (i)
			buf_putc(&b, ',');
		history_entry_json(&b, name, &h->v[i]);
		b.len--; /* the line's newline */
	}
	buf_putc(&b, ']');
	put_num(&b, "p50", s->p50);
	put_num(&b, "p95", s->p95);
	put_num(&b, "success_rate", s->success_rate);
	buf_printf(&b, ",\"corrupt\":%zu}\n", h->corrupt);
	fwrite(b.p, 1, b.len, stdout);
	buf_free(&b);
}

static const char *duration_text(double seconds, char *buf, size_t len)
{
	if (seconds < 0)
		return snprintf(buf, len, "-"), buf;
	if (seconds < 10)
		return snprintf(buf, len, "%.2fs", seconds), buf;
	return cli_format_elapsed((long long)(seconds * 1000), buf, len);
}

static void print_row(const struct history_entry *e)
{
	char start[40], dur[32], exit_text[32];

	if (!e->start_ms || event_time_rfc3339(e->start_ms, start, sizeof(start)) != 0)
		snprintf(start, sizeof(start), "-");
	if (e->signal[0])
		snprintf(exit_text, sizeof(exit_text), "%s", e->signal);
	else if (e->exit_code >= 0)
		snprintf(exit_text, sizeof(exit_text), "%d", e->exit_code);
	else
		snprintf(exit_text, sizeof(exit_text), "-");
	printf("%6llu  %-24s  %10s  %-9s  %s\n", (unsigned long long)e->run, start,
	       duration_text(e->duration, dur, sizeof(dur)), e->outcome, exit_text);
}

static void print_table(const struct history *h, const struct history_stats *s)
{
	char p50[32], p95[32];

	printf("%6s  %-24s  %10s  %-9s  %s\n", "RUN", "START", "DURATION", "OUTCOME", "EXIT");
	for (size_t i = 0; i < h->n; i++)
		print_row(&h->v[i]);
	printf("\n%zu runs, success rate %.0f%%, successful runs: p50 %s, p95 %s\n", h->n,
	       100.0 * s->success_rate, duration_text(s->p50, p50, sizeof(p50)),
	       duration_text(s->p95, p95, sizeof(p95)));
}

/* Keep the last n entries only. */
static void keep_last(struct history *h, size_t n)
{
	if (n >= h->n)
		return;
	memmove(h->v, h->v + (h->n - n), n * sizeof(*h->v));
	h->n = n;
}

static int parse_args(int argc, char **argv, bool *json, size_t *last, const char **name)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"last", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'}, {0}};
	char *end;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hn:", opts, NULL)) != -1) {
		if (c == 'j') {
			*json = true;
		} else if (c == 'l' || c == 'n') {
			*last = strtoul(optarg, &end, 10);
			if (*end || !*optarg || *last == 0 || optarg[0] == '-')
				return fprintf(stderr, "vigil history: --last needs a positive number, "
					       "not \"%s\"\n", optarg), EXIT_USAGE;
		} else if (c == 'h') {
			return fputs(usage, stdout), -1;
		} else {
			return fprintf(stderr, "vigil history: unknown option or missing value: %s "
				       "(see vigil history --help)\n", argv[optind - 1]), EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		return fputs(usage, stderr), EXIT_USAGE;
	*name = argv[optind];
	return 0;
}

/* A name is known when it has a history file or a run record. */
static bool name_known(const char *state_dir, const char *hdir, const char *name)
{
	struct run_record r;
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s.jsonl", hdir, name) >= sizeof(path))
		return false;
	return access(path, F_OK) == 0 || state_read(state_dir, name, &r) == 0;
}

int cli_history(int argc, char **argv)
{
	const char *name = NULL, *sdir;
	char hdir[4096];
	bool json = false;
	size_t last = 0;
	struct history h;
	struct history_stats s;
	int rc = parse_args(argc, argv, &json, &last, &name);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (!(sdir = cli_state_dir()))
		return EXIT_USAGE;
	history_dir(sdir, hdir, sizeof(hdir));
	if (strchr(name, '/') || name[0] == '.' || !name_known(sdir, hdir, name))
		return fprintf(stderr, "vigil history: no job or monitor named \"%s\" "
			       "(no history in %s)\n", name, hdir), EXIT_USAGE;
	if ((rc = history_read(hdir, name, &h)) != 0)
		return fprintf(stderr, "vigil history: %s/%s.jsonl: %s\n", hdir, name,
			       strerror(-rc)), EXIT_USAGE;
	if (h.corrupt)
		fprintf(stderr, "vigil history: %zu corrupt line(s) skipped in %s/%s.jsonl\n",
			h.corrupt, hdir, name);
	if (last)
		keep_last(&h, last);
	stats_of(&h, &s);
	if (json)
		print_json(name, &h, &s);
	else if (h.n == 0)
		printf("%s: no finished runs yet\n", name);
	else
		print_table(&h, &s);
	history_free(&h);
	return 0;
}
