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
#include "base/journal.h"
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
	"supervisor still delivers after the run).\n"
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
	put_attempts_json(&b, r);
	const char *keys[] = {"reason", "log", "command", "last_event"};
	const char *vals[] = {r->reason, r->log, r->command, r->last_event};
	for (size_t i = 0; i < 4; i++) {
		buf_printf(&b, ",\"%s\":", keys[i]);
		json_put_string(&b, vals[i], strlen(vals[i]));
	}
	buf_printf(&b, ",\"pending\":%zu", job_pending(r, NULL, 0));
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
		char el[32], prog[32], pid[16], retry[700] = "";
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

#define REPORT_JOURNAL_TAIL 65536 /* the finished event is the journal's last line */

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

/* The end of name's journal; its last line that is a `finished` event, or NULL. */
static char *journal_finished_line(const char *dir, const char *name)
{
	char path[4096], *buf = NULL, *line = NULL;
	FILE *f;
	long size;

	if (journal_path(dir, name, path, sizeof(path)) < 0 || !(f = fopen(path, "re")))
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
	    fseek(f, size > REPORT_JOURNAL_TAIL ? size - REPORT_JOURNAL_TAIL : 0, SEEK_SET) == 0 &&
	    (buf = calloc(1, REPORT_JOURNAL_TAIL + 1)))
		buf[fread(buf, 1, REPORT_JOURNAL_TAIL, f)] = '\0';
	fclose(f);
	for (char *p = buf, *nl; p && *p; p = nl + 1) {
		if (!(nl = strchr(p, '\n')))
			break;
		*nl = '\0';
		if (strstr(p, "\"kind\":\"finished\""))
			line = p;
	}
	line = line ? strdup(line) : NULL;
	free(buf);
	return line;
}

/* vigil status NAME of a finished run: its end-of-run report, from the run's
 * own `finished` event (the one truth of the run). */
static void print_report(const char *dir, const struct run_record *r)
{
	char *json = journal_finished_line(dir, r->name), *host, err[200];
	struct stored_record *sr;
	struct buf types;

	buf_init(&types);
	if (json && journal_types(json, strlen(json), &types) == 0 &&
	    event_json_decode(json, strlen(json), buf_cstr(&types), &sr, &host, err,
			      sizeof(err)) == 0) {
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
		free(host);
	}
	buf_free(&types);
	free(json);
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
			print_json(&v[i]);
	else if (n == 0)
		printf("no jobs (start one with vigil run, or watch one with vigil watch)\n");
	else
		print_table(v, n);
	if (!json)
		print_pending_lines(v, n);
	for (size_t i = 0; !json && optind < argc && i < n; i++)
		if (strcmp(effective_state(&v[i]), "finished") == 0)
			print_report(dir, &v[i]);
	if (optind >= argc)
		print_spool(json);
	free(v);
	return 0;
}
