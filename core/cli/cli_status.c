/* vigil status: running and finished jobs from the state folder. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/config.h"
#include "cli.h"
#include "agent/control.h"
#include "base/event_json.h"
#include "base/event_json_decode.h"
#include "base/history.h"
#include "base/journal.h"
#include "base/record.h"
#include "lib/report.h"
#include "lib/proc.h"
#include "engine/spool.h"
#include "base/state.h"
#include "cli_session.h"

static const char usage[] =
	"usage: vigil status [--json] [NAME]\n"
	"\n"
	"Jobs and monitors with their state, elapsed time, progress and outcome.\n"
	"--json prints one JSON object per job: name, run, state, pid, started, ended,\n"
	"elapsed (seconds), expected, exit_code, signal, outcome, attempt, attempts,\n"
	"next_at, reason, log, command, last_event, pending (notifications the job's\n"
	"supervisor still delivers after the run), progress (the current value, or the\n"
	"last one of a finished run), usual (p50 of the successful runs' durations, from\n"
	"the history), expected_auto, learned_runs (successful runs expected = auto\n"
	"learns from; it needs 5), eta and eta_from (progress: from a steady progress\n"
	"rate; usual or expected: the start plus that duration).\n"
	"vigil status NAME also shows these, one line each.\n"
	"When an agent runs (its control socket is in the state folder), its monitors come\n"
	"from it (state waiting: between runs of a pid_file or match monitor), and the\n"
	"state folder adds the jobs of vigil run. State stopped: a job of vigil run that\n"
	"was stopped (SIGSTOP, SIGTSTP) and not yet continued. State retrying: an attempt\n"
	"of a command failed; the next starts at next_at (\"retrying 2/3 in 8s\").\n"
	"Without --state-dir, a member of group vigil also sees the system agent's jobs\n"
	"(/run/vigil); other users see only their own.\n";

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

#define JOURNAL_TAIL 65536 /* the run's last events: its progress, its finished */

/* The end of name's journal (the current run's events), NUL-terminated, or NULL. */
static char *journal_tail(const char *dir, const char *name)
{
	char path[4096], *buf = NULL;
	FILE *f;
	long size;

	if (journal_path(dir, name, path, sizeof(path)) < 0 || !(f = fopen(path, "re")))
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, size > JOURNAL_TAIL ? size - JOURNAL_TAIL : 0, SEEK_SET) == 0 &&
	    (buf = calloc(1, JOURNAL_TAIL + 1)))
		buf[fread(buf, 1, JOURNAL_TAIL, f)] = '\0';
	fclose(f);
	return buf;
}

/* One journal line back into a record; NULL when it does not decode. */
static struct stored_record *decode_line(const char *json)
{
	struct stored_record *sr = NULL;
	struct buf types;
	char *host = NULL, err[200];

	buf_init(&types);
	if (journal_types(json, strlen(json), &types) != 0 ||
	    event_json_decode(json, strlen(json), buf_cstr(&types), &sr, &host, err,
			      sizeof(err)) != 0)
		sr = NULL;
	free(host);
	buf_free(&types);
	return sr;
}

/* The last line of kind `kind` (as "\"kind\":\"K\""); the buffer is cut at
 * each newline. */
static char *last_line_of(char *tail, const char *kind)
{
	char *line = NULL, needle[64];

	snprintf(needle, sizeof(needle), "\"kind\":\"%s\"", kind);
	for (char *p = tail, *nl; p && *p; p = nl + 1) {
		if (!(nl = strchr(p, '\n')))
			break;
		*nl = '\0';
		if (strstr(p, needle))
			line = p;
	}
	return line;
}

#define RATE_SAMPLES 8 /* the progress rate is read over the last few values */

/* What status adds to a record: the current or last progress, the usual
 * duration and what was learned, from the history; an ETA while it runs. */
struct job_view {
	double progress;          /* -1: none */
	bool percent;
	int64_t t[RATE_SAMPLES];  /* the last percent values and when (wall ms) */
	double v[RATE_SAMPLES];
	size_t n;
	double usual;             /* p50 of the successful runs (s), -1: none */
	size_t n_succeeded;       /* in the history */
	size_t n_ok;              /* successful runs the learning counts */
	int64_t eta_ms;           /* wall clock; 0: none */
	const char *eta_from;     /* "progress", "usual", "expected" */
};

static void view_add_progress(struct job_view *jv, const struct stored_record *sr)
{
	const struct vigil_field *v = event_field(&sr->ev, "value");
	const struct vigil_field *u = event_field(&sr->ev, "unit");

	if (!v || (v->type != VIGIL_FIELD_INT && v->type != VIGIL_FIELD_DOUBLE))
		return;
	jv->progress = v->type == VIGIL_FIELD_INT ? (double)v->u.i : v->u.d;
	jv->percent = !u || (u->type == VIGIL_FIELD_STRING && u->u.s.len == 7 &&
			     memcmp(u->u.s.ptr, "percent", 7) == 0);
	if (!jv->percent)
		return;
	if (jv->n == RATE_SAMPLES) {
		memmove(jv->t, jv->t + 1, (RATE_SAMPLES - 1) * sizeof(*jv->t));
		memmove(jv->v, jv->v + 1, (RATE_SAMPLES - 1) * sizeof(*jv->v));
		jv->n--;
	}
	jv->t[jv->n] = sr->time_ms;
	jv->v[jv->n++] = jv->progress;
}

/* The progress events of the run, oldest first; a finished run's own
 * `progress` (its last value) wins. */
static void view_progress(struct job_view *jv, const char *dir, const struct run_record *r)
{
	char *tail = journal_tail(dir, r->name), *fin = NULL;

	for (char *p = tail, *nl; p && *p; p = nl + 1) {
		struct stored_record *sr;

		if (!(nl = strchr(p, '\n')))
			break;
		*nl = '\0';
		if (strstr(p, "\"kind\":\"finished\""))
			fin = p;
		if (!strstr(p, "\"kind\":\"progress\"") || !(sr = decode_line(p)))
			continue;
		if (sr->run == r->run)
			view_add_progress(jv, sr);
		record_free(sr);
	}
	if (fin && strstr(fin, "\"progress\":") && strcmp(effective_state(r), "finished") == 0) {
		const struct vigil_field *f;
		struct stored_record *sr = decode_line(fin);

		if (sr && (f = event_field(&sr->ev, "progress")) && f->type == VIGIL_FIELD_INT)
			jv->progress = (double)f->u.i;
		else if (sr && f && f->type == VIGIL_FIELD_DOUBLE)
			jv->progress = f->u.d;
		record_free(sr);
	}
	free(tail);
}

/* Percent per ms over the samples, when it moves steadily: rising, and the
 * rate of the later half within a factor of two of the earlier half's. */
static double steady_rate(const struct job_view *jv)
{
	size_t n = jv->n, h = n / 2;
	double early, late;

	if (n < 3 || jv->t[n - 1] <= jv->t[0])
		return 0;
	for (size_t i = 1; i < n; i++)
		if (jv->v[i] < jv->v[i - 1])
			return 0;
	if (jv->t[h] <= jv->t[0] || jv->t[n - 1] <= jv->t[h])
		return 0;
	early = (jv->v[h] - jv->v[0]) / (double)(jv->t[h] - jv->t[0]);
	late = (jv->v[n - 1] - jv->v[h]) / (double)(jv->t[n - 1] - jv->t[h]);
	if (early <= 0 || late <= 0 || late > 2 * early || early > 2 * late)
		return 0;
	return (jv->v[n - 1] - jv->v[0]) / (double)(jv->t[n - 1] - jv->t[0]);
}

/* A running job's ETA: from the progress rate when steady, else its start
 * plus the usual duration, else plus the expected one. */
static void view_eta(struct job_view *jv, const struct run_record *r)
{
	double rate = steady_rate(jv);

	if (rate > 0 && jv->v[jv->n - 1] < 100) {
		jv->eta_ms = jv->t[jv->n - 1] + (int64_t)((100 - jv->v[jv->n - 1]) / rate);
		jv->eta_from = "progress";
	} else if (r->started_ms && jv->usual >= 0) {
		jv->eta_ms = r->started_ms + (int64_t)(jv->usual * 1000);
		jv->eta_from = "usual";
	} else if (r->started_ms && r->expected_ms > 0) {
		jv->eta_ms = r->started_ms + r->expected_ms;
		jv->eta_from = "expected";
	}
}

/* with_history: also what the history tells (the usual duration, what was
 * learned); the table needs it only for the ETA of what runs, and a history
 * file per job is what would make a table of thousands slow. */
static void job_view(const char *dir, const struct run_record *r, struct job_view *jv,
		     bool with_history)
{
	char hdir[4096];
	struct history h;
	const char *st = effective_state(r);
	bool running = strcmp(st, "running") == 0 || strcmp(st, "stopped") == 0;

	memset(jv, 0, sizeof(*jv));
	jv->progress = r->progress;
	jv->percent = true;
	jv->usual = -1;
	view_progress(jv, dir, r);
	if ((with_history || running) &&
	    history_read(history_dir(dir, hdir, sizeof(hdir)), r->name, &h) == 0) {
		jv->usual = history_success_quantile(&h, 0.5);
		for (size_t i = 0; i < h.n; i++)
			jv->n_succeeded += strcmp(h.v[i].outcome, "succeeded") == 0;
		history_learned_expected_ms(&h, 0, &jv->n_ok);
		history_free(&h);
	}
	if (running)
		view_eta(jv, r);
}

/* "attempt", "attempts" of a command's run (null otherwise) and, while it
 * waits to retry, "next_at": when the next attempt starts. */
static void put_attempts_json(struct buf *b, const struct run_record *r)
{
	char t[40];

	buf_printf(b, r->attempts > 0 ? ",\"attempt\":%d,\"attempts\":%d"
				       : ",\"attempt\":null,\"attempts\":null", r->attempt, r->attempts);
	buf_puts(b, ",\"next_at\":");
	if (strcmp(effective_state(r), "retrying") == 0 && r->next_at_ms &&
	    event_time_rfc3339(r->next_at_ms, t, sizeof(t)) == 0)
		buf_printf(b, "\"%s\"", t);
	else
		buf_puts(b, "null");
}

/* While a run waits to retry: "retrying 2/3 in 8s", then the failed attempt's
 * reason. */
static void retrying_cell(const struct run_record *r, char *buf, size_t len)
{
	char in[32];
	int64_t left = r->next_at_ms - wall_now_ms();

	config_format_duration(left > 0 ? (left + 999) / 1000 * 1000 : 0, in, sizeof(in));
	snprintf(buf, len, "retrying %d/%d in %s: %s", r->attempt, r->attempts, in, r->reason);
}

/* Notifications the job's owner (vigil run's supervisor) still delivers after
 * the run: its STATE/NAME.pending while it lives. The total; the "COUNT LABEL"
 * lines joined into what, when given. */
static size_t job_pending(const struct run_record *r, char *what, size_t len)
{
	char path[PATH_MAX], line[128];
	const char *dir = cli_state_dir();
	size_t total = 0, n;
	FILE *f;

	if (what && len)
		what[0] = '\0';
	if (!dir || !state_writer_alive(r) || session_pending_path(dir, r->name, path, sizeof(path)) ||
	    !(f = fopen(path, "re")))
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char label[100];

		if (sscanf(line, "%zu %99s", &n, label) != 2)
			continue;
		total += n;
		if (what && len > strlen(what) + 1)
			snprintf(what + strlen(what), len - strlen(what), "%s%s", *what ? ", " : "", label);
	}
	fclose(f);
	return total;
}

/* "2 notifications pending (webhook:...)" under the table, per job. */
static void print_pending_lines(const struct run_record *v, size_t n)
{
	char what[256];

	for (size_t i = 0; i < n; i++) {
		size_t k = job_pending(&v[i], what, sizeof(what));

		if (k)
			printf("%s: %zu notification%s pending (%s)\n", v[i].name, k, k == 1 ? "" : "s",
			       what);
	}
}

/* "progress", "usual", "expected_auto", "learned_runs", "eta", "eta_from". */
static void put_view_json(struct buf *b, const char *dir, const struct run_record *r)
{
	struct job_view jv;
	char t[40];

	job_view(dir, r, &jv, true);
	buf_puts(b, ",\"progress\":");
	if (jv.progress < 0 || json_put_double(b, jv.progress) != 0)
		buf_puts(b, "null");
	buf_puts(b, ",\"usual\":");
	if (jv.usual < 0 || json_put_double(b, jv.usual) != 0)
		buf_puts(b, "null");
	buf_printf(b, ",\"expected_auto\":%s,\"learned_runs\":%zu,\"eta\":",
		   r->expected_auto ? "true" : "false", jv.n_ok);
	if (jv.eta_ms && event_time_rfc3339(jv.eta_ms, t, sizeof(t)) == 0)
		buf_printf(b, "\"%s\",\"eta_from\":\"%s\"", t, jv.eta_from);
	else
		buf_puts(b, "null,\"eta_from\":null");
}

static void print_json(const char *dir, const struct run_record *r)
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
	put_attempts_json(&b, r);
	const char *keys[] = {"reason", "log", "command", "last_event"};
	const char *vals[] = {r->reason, r->log, r->command, r->last_event};
	for (size_t i = 0; i < 4; i++) {
		buf_printf(&b, ",\"%s\":", keys[i]);
		json_put_string(&b, vals[i], strlen(vals[i]));
	}
	buf_printf(&b, ",\"pending\":%zu", job_pending(r, NULL, 0));
	put_view_json(&b, dir, r);
	buf_puts(&b, "}\n");
	fwrite(b.p, 1, b.len, stdout);
	buf_free(&b);
}

/* "in 12s", "12s ago": an ETA against now, compactly. */
static void eta_relative(int64_t eta_ms, char *buf, size_t len)
{
	char d[32];
	int64_t left = eta_ms - wall_now_ms();

	cli_format_elapsed(left >= 0 ? left : -left, d, sizeof(d));
	snprintf(buf, len, left >= 0 ? "in %s" : "%s ago", d);
}

/* Running: a bar with the percent (reported, or elapsed against expected) and
 * the ETA; finished: the last value reported. */
static void progress_cell(const struct run_record *r, const struct job_view *jv, char *buf,
			  size_t len)
{
	double pct = jv->percent ? jv->progress : -1;
	bool running = strcmp(effective_state(r), "running") == 0;
	char bar[16], eta[48] = "";
	int fill;

	if (jv->progress >= 0 && (!running || !jv->percent)) {
		snprintf(buf, len, jv->percent ? "%.0f%%" : "%.0f", jv->progress);
		return;
	}
	if (pct < 0 && r->expected_ms > 0 && running)
		pct = 100.0 * (double)elapsed_ms(r) / (double)r->expected_ms;
	if (jv->eta_ms) {
		memcpy(eta, " eta ", 6);
		eta_relative(jv->eta_ms, eta + 5, sizeof(eta) - 5);
	}
	if (pct < 0 || !running) {
		snprintf(buf, len, "%s", running && *eta ? eta + 1 : "-");
		return;
	}
	fill = pct >= 100 ? 10 : (int)(pct / 10);
	for (int i = 0; i < 10; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[10] = '\0';
	snprintf(buf, len, "%s %3.0f%%%s", bar, pct, eta);
}

static void print_table(const char *dir, const struct run_record *v, size_t n)
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
		char el[32], prog[80], pid[16], retry[700] = "";
		const char *col = "";
		struct job_view jv;

		job_view(dir, r, &jv, false);
		progress_cell(r, &jv, prog, sizeof(prog));
		if (color)
			col = strcmp(r->outcome, "succeeded") == 0 ? "\033[32m"
			      : r->outcome[0] && strcmp(r->outcome, "unknown") != 0 ? "\033[31m"
			      : "";
		snprintf(pid, sizeof(pid), r->pid > 0 && strcmp(st, "waiting") ? "%d" : "-", (int)r->pid);
		if (strcmp(st, "waiting") == 0 || !r->started_ms)
			snprintf(el, sizeof(el), "-");
		else
			cli_format_elapsed(elapsed_ms(r), el, sizeof(el));
		if (strcmp(st, "retrying") == 0)
			retrying_cell(r, retry, sizeof(retry));
		printf("%-*s  %4llu  %7s  %-9s  %-10s  %-15s  %s%s%s%s%.60s\n", w, r->name,
		       (unsigned long long)r->run, pid, st, el, prog, col, r->outcome,
		       color && *col ? "\033[0m" : "", r->outcome[0] ? "  " : "",
		       r->outcome[0] ? r->reason : *retry ? retry : r->last_event);
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

/* The agent's view of dir when one answers, else the records in it. */
static int folder_list(const char *dir, struct run_record **out, size_t *n)
{
	return agent_list(dir, out, n) == 0 ? 0 : state_list(dir, out, n);
}

/* Our folder's jobs, and the system agent's for a member of group vigil, who
 * need not name its folder. The first failure's -errno when neither reads. */
static int list_jobs(const char *dir, struct run_record **out, size_t *n)
{
	const char *sys = cli_system_dir();
	struct run_record *sv, *all;
	size_t sn;
	int rc = folder_list(dir, out, n);

	if (!sys || folder_list(sys, &sv, &sn) != 0)
		return rc;
	if (rc != 0 || sn == 0) {
		if (rc != 0)
			*out = sv, *n = sn;
		else
			free(sv);
		return 0;
	}
	if (!(all = realloc(*out, (*n + sn) * sizeof(*all)))) {
		free(sv);
		return 0;
	}
	memcpy(all + *n, sv, sn * sizeof(*sv));
	free(sv);
	*n += sn;
	qsort(all, *n, sizeof(*all), by_name);
	*out = all;
	return 0;
}

/* Text the job wrote, with control bytes shown as '?': no escape sequence
 * of a log reaches the terminal. */
static void put_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		putchar((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
	putchar('\n');
}

static int report_line(void *arg, const char *label, const char *value, size_t len)
{
	(void)arg;
	printf("  %-12s ", label);
	put_printable(value, len);
	return 0;
}

static const char *const eta_sources[][2] = {
	{"progress", "from the progress rate"}, {"usual", "start + the usual duration"},
	{"expected", "start + expected"}};

/* vigil status NAME: progress, usual duration, expected (learned or being
 * learned), ETA; one line each, where known. */
static void print_view(const char *dir, const struct run_record *r)
{
	struct job_view jv;
	char d[32], when[16], rel[48];
	time_t t;

	job_view(dir, r, &jv, true);
	putchar('\n');
	if (jv.progress >= 0)
		printf(jv.percent ? "  %-12s %.0f%%\n" : "  %-12s %.0f\n", "progress", jv.progress);
	if (jv.usual >= 0)
		printf("  %-12s %s (p50 of %zu successful runs)\n", "usual",
		       cli_format_elapsed((long long)(jv.usual * 1000), d, sizeof(d)), jv.n_succeeded);
	if (r->expected_auto && r->expected_ms <= 0 && jv.n_ok < HISTORY_LEARN_MIN)
		printf("  %-12s learning (%zu/%d runs)\n", "expected", jv.n_ok, HISTORY_LEARN_MIN);
	else if (r->expected_auto && r->expected_ms <= 0) /* learned after this run began */
		printf("  %-12s learned from %zu runs, used from the next run\n", "expected", jv.n_ok);
	else if (r->expected_ms > 0)
		printf(r->expected_auto ? "  %-12s %s (learned from %zu runs)\n" : "  %-12s %s\n",
		       "expected", cli_format_elapsed(r->expected_ms, d, sizeof(d)), jv.n_ok);
	if (!jv.eta_ms)
		return;
	t = (time_t)(jv.eta_ms / 1000);
	strftime(when, sizeof(when), "%H:%M:%S", localtime(&t));
	eta_relative(jv.eta_ms, rel, sizeof(rel));
	for (size_t i = 0; i < sizeof(eta_sources) / sizeof(eta_sources[0]); i++)
		if (strcmp(jv.eta_from, eta_sources[i][0]) == 0)
			printf("  %-12s %s (%s, %s)\n", "eta", when, rel, eta_sources[i][1]);
}

/* vigil status NAME of a finished run: its end-of-run report, from the run's
 * own `finished` event (the one truth of the run). */
static void print_report(const char *dir, const struct run_record *r)
{
	char *tail = journal_tail(dir, r->name), *json = tail ? last_line_of(tail, "finished") : NULL;
	struct stored_record *sr = json ? decode_line(json) : NULL;

	if (sr) {
		printf("\nrun %llu:\n", (unsigned long long)sr->run);
		report_lines(&sr->ev, report_line, NULL);
		for (size_t i = 0; i < sr->ev.n_fields; i++) {
			const struct vigil_field *f = &sr->ev.fields[i];

			if (strcmp(f->name, "log_tail") != 0 || f->type != VIGIL_FIELD_STRINGS)
				continue;
			printf("  last lines:\n");
			for (size_t k = 0; k < f->u.list.n; k++) {
				fputs("    ", stdout);
				put_printable(f->u.list.v[k].ptr, f->u.list.v[k].len);
			}
		}
		record_free(sr);
	}
	free(tail);
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

/* The spool of this state folder, where vigil run and watch put it. */
static void print_spool(bool json)
{
	struct spool_show ss = {.json = json};
	char root[4096];

	spool_count_all(session_spool_dir(NULL, root, sizeof(root)), show_spool, &ss);
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
	if ((c = list_jobs(dir, &v, &n)) != 0)
		return fprintf(stderr, "vigil status: cannot read the state folder %s: %s\n", dir,
			       strerror(-c)), EXIT_USAGE;
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
			print_json(dir, &v[i]);
	else if (n == 0)
		printf("no jobs (start one with vigil run, or watch one with vigil watch)\n");
	else
		print_table(dir, v, n);
	if (!json)
		print_pending_lines(v, n);
	for (size_t i = 0; !json && optind < argc && i < n; i++) {
		print_view(dir, &v[i]);
		if (strcmp(effective_state(&v[i]), "finished") == 0)
			print_report(dir, &v[i]);
	}
	if (optind >= argc)
		print_spool(json);
	free(v);
	return 0;
}
