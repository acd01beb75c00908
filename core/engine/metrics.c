/* See metrics.h. One series per monitor (or notifier): never a label per run. */
#include "metrics.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/history.h"
#include "base/state.h"
#include "spool.h"

/* What the metrics say of one monitor. */
struct monitor_facts {
	const char *name;
	bool has_last;          /* a finished run is known */
	int outcome;            /* history_outcome_index */
	int exit_code;          /* -1: unknown (or killed: 128 + signal below) */
	double duration, end_s;
	bool running;
	double progress;        /* percent, -1 unknown */
	uint64_t total[HISTORY_N_OUTCOMES];
};

/* Prometheus label value escaping: backslash, double quote, newline. */
static void put_label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			buf_puts(b, "\\n");
		else
			buf_putc(b, *v);
	}
}

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct buf *b, const char *metric, const char *label, const char *value, const char *label2,
		   const char *value2, double v)
{
	buf_printf(b, "%s{%s=\"", metric, label);
	put_label(b, value);
	if (label2) {
		buf_printf(b, "\",%s=\"", label2);
		put_label(b, value2);
	}
	buf_printf(b, "\"} %.15g\n", v);
}

/* The last finished run: the record when finished, else the history's last. */
static void last_run_of(const struct run_record *r, const struct history *h,
			struct monitor_facts *f)
{
	const struct history_entry *e = h->n ? &h->v[h->n - 1] : NULL;

	if (strcmp(r->state, "finished") == 0 && history_outcome_index(r->outcome) >= 0) {
		f->has_last = true;
		f->outcome = history_outcome_index(r->outcome);
		f->exit_code = r->signal > 0 ? 128 + r->signal : r->exit_code;
		f->duration = r->ended_ms > r->started_ms ? (double)(r->ended_ms - r->started_ms) / 1000 : 0;
		f->end_s = (double)r->ended_ms / 1000.0;
	} else if (e) {
		f->has_last = true;
		f->outcome = history_outcome_index(e->outcome);
		f->exit_code = e->signal[0] ? -1 : e->exit_code;
		f->duration = e->duration;
		f->end_s = (double)e->end_ms / 1000.0;
	}
}

static void facts_of(const struct run_record *r, const char *hdir, struct monitor_facts *f)
{
	struct history h;

	memset(f, 0, sizeof(*f));
	f->name = r->name;
	f->exit_code = -1;
	f->running = (strcmp(r->state, "running") == 0 || strcmp(r->state, "stopped") == 0) &&
		     state_writer_alive(r);
	f->progress = f->running ? r->progress : -1;
	if (history_read(hdir, r->name, &h) != 0)
		memset(&h, 0, sizeof(h));
	memcpy(f->total, h.total, sizeof(f->total));
	last_run_of(r, &h, f);
	history_free(&h);
}

static void print_last_runs(struct buf *b, const struct monitor_facts *f, size_t n)
{
	family(b, "vigil_last_run_outcome", "gauge",
	       "1 for the outcome of the monitor's last finished run, 0 for the others.");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; f[i].has_last && k < HISTORY_N_OUTCOMES; k++)
			sample(b, "vigil_last_run_outcome", "monitor", f[i].name, "outcome",
			       history_outcome_name(k), k == f[i].outcome);
	family(b, "vigil_last_run_exit_code", "gauge",
	       "Exit code of the last finished run (128 + signal number when killed).");
	for (size_t i = 0; i < n; i++)
		if (f[i].has_last && f[i].exit_code >= 0)
			sample(b, "vigil_last_run_exit_code", "monitor", f[i].name, NULL, NULL,
			       f[i].exit_code);
	family(b, "vigil_last_run_duration_seconds", "gauge", "Duration of the last finished run.");
	for (size_t i = 0; i < n; i++)
		if (f[i].has_last)
			sample(b, "vigil_last_run_duration_seconds", "monitor", f[i].name, NULL, NULL,
			       f[i].duration);
	family(b, "vigil_last_run_end_timestamp_seconds", "gauge",
	       "When the last finished run ended, in seconds since the epoch.");
	for (size_t i = 0; i < n; i++)
		if (f[i].has_last && f[i].end_s > 0)
			sample(b, "vigil_last_run_end_timestamp_seconds", "monitor", f[i].name, NULL,
			       NULL, f[i].end_s);
}

static void print_runs(struct buf *b, const struct monitor_facts *f, size_t n)
{
	family(b, "vigil_running", "gauge", "1 while a run of the monitor is in progress.");
	for (size_t i = 0; i < n; i++)
		sample(b, "vigil_running", "monitor", f[i].name, NULL, NULL, f[i].running);
	family(b, "vigil_progress_ratio", "gauge", "Progress of the current run, 0 to 1, when known.");
	for (size_t i = 0; i < n; i++)
		if (f[i].progress >= 0)
			sample(b, "vigil_progress_ratio", "monitor", f[i].name, NULL, NULL,
			       f[i].progress / 100.0);
	family(b, "vigil_runs_total", "counter", "Finished runs of the monitor, by outcome.");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < HISTORY_N_OUTCOMES; k++)
			sample(b, "vigil_runs_total", "monitor", f[i].name, "outcome",
			       history_outcome_name(k), (double)f[i].total[k]);
}

struct spool_counts {
	char **names;
	size_t *pending, *dead, n;
};

static void collect_spool(void *data, const char *name, size_t pending, size_t dead)
{
	struct spool_counts *c = data;
	char **names = realloc(c->names, (c->n + 1) * sizeof(*names));
	size_t *p = names ? realloc(c->pending, (c->n + 1) * sizeof(*p)) : NULL;
	size_t *d = p ? realloc(c->dead, (c->n + 1) * sizeof(*d)) : NULL;

	if (names)
		c->names = names;
	if (p)
		c->pending = p;
	if (!d || !(names[c->n] = strdup(name)))
		return; /* out of memory: this notifier goes unreported */
	c->dead = d;
	p[c->n] = pending;
	d[c->n++] = dead;
}

static void print_spool(struct buf *b, const char *root)
{
	struct spool_counts c = {0};

	spool_count_all(root, collect_spool, &c);
	family(b, "vigil_notifications_pending", "gauge", "Notifications spooled, not delivered yet.");
	for (size_t i = 0; i < c.n; i++)
		sample(b, "vigil_notifications_pending", "notifier", c.names[i], NULL, NULL, (double)c.pending[i]);
	family(b, "vigil_notifications_dead_total", "counter",
	       "Notifications given up on (kept in the dead-letter folder).");
	for (size_t i = 0; i < c.n; i++)
		sample(b, "vigil_notifications_dead_total", "notifier", c.names[i], NULL, NULL,
		       (double)c.dead[i]);
	for (size_t i = 0; i < c.n; i++)
		free(c.names[i]);
	free(c.names);
	free(c.pending);
	free(c.dead);
}

int metrics_render(struct buf *b, const char *state_dir, const char *spool_root)
{
	struct run_record *v = NULL;
	struct monitor_facts *f;
	char hdir[4096];
	size_t n = 0;
	int rc = state_list(state_dir, &v, &n);

	if (rc != 0)
		return rc < 0 ? rc : -EIO;
	history_dir(state_dir, hdir, sizeof(hdir));
	f = calloc(n ? n : 1, sizeof(*f));
	if (!f)
		return free(v), -ENOMEM;
	for (size_t i = 0; i < n; i++)
		facts_of(&v[i], hdir, &f[i]);
	print_last_runs(b, f, n);
	print_runs(b, f, n);
	print_spool(b, spool_root);
	free(f);
	free(v);
	return b->p ? 0 : -ENOMEM;
}
