/* A monitor: its detectors, notifiers and the run state machine
 *   waiting -> attached -> exited (settling) -> finished -> waiting (recurring) | done
 * The outcome is decided once per run, in monitor_finish(). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "base/event_json.h"
#include "base/journal.h"
#include "base/history.h"
#include "base/buf.h"
#include "base/log.h"
#include "monitor_internal.h"
#include "lib/proc.h"
#include "base/state.h"
#include "base/success_expr.h"

const char *outcome_name(enum outcome o)
{
	switch (o) {
	case OUTCOME_SUCCEEDED: return "succeeded";
	case OUTCOME_FAILED: return "failed";
	case OUTCOME_TIMED_OUT: return "timed_out";
	case OUTCOME_UNKNOWN: return "unknown";
	default: return "";
	}
}

int outcome_exit_status(enum outcome o)
{
	switch (o) {
	case OUTCOME_SUCCEEDED: return 0;
	case OUTCOME_FAILED: return 1;
	case OUTCOME_TIMED_OUT: return 3;
	default: return 4;
	}
}

const char *monitor_name(const struct monitor *m) { return m->name; }
enum outcome monitor_last_outcome(const struct monitor *m) { return m->last_outcome; }
bool monitor_done(const struct monitor *m) { return m->done; }
pid_t monitor_pid(const struct monitor *m) { return m->target.pid; }
int64_t monitor_expected_ms(const struct monitor *m)
{
	return m->mc->expected_auto ? m->learned_expected_ms : m->mc->expected_ms;
}
double monitor_progress(const struct monitor *m) { return m->progress; }
const char *monitor_last_event(const struct monitor *m) { return m->last_event; }
const struct vigil_target *monitor_target(struct monitor *m) { return &m->target; }

void monitor_seed_run(struct monitor *m, uint64_t run)
{
	if (!m->started && run > m->run)
		m->run = run;
}

uint64_t monitor_run_number(const struct monitor *m) { return m->run; }

int64_t monitor_elapsed_ms(const struct monitor *m)
{
	if (m->state == RUN_WAITING && !m->run)
		return 0;
	if (m->state == RUN_FINISHED || m->state == RUN_WAITING)
		return m->end_mono - m->start_mono;
	return loop_now_ms(engine_loop(m->engine)) - m->start_mono;
}

void monitor_set_supervisor(struct monitor *m, pid_t supervisor, const char *log_path)
{
	m->supervisor = supervisor;
	free(m->log_path);
	m->log_path = log_path ? strdup(log_path) : NULL;
	m->target.log_path = m->log_path;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ records */

void monitor_save_state(struct monitor *m)
{
	struct run_record r;
	const char *dir = engine_state_dir(m->engine);

	if (!dir)
		return;
	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "%s", m->name);
	r.run = m->run;
	snprintf(r.state, sizeof(r.state), "%s",
		 m->state == RUN_RETRYING ? "retrying"
		 : m->state == RUN_ATTACHED && m->stopped ? "stopped"
		 : m->state == RUN_ATTACHED || m->state == RUN_SETTLING ? "running"
		 : m->run && m->state != RUN_WAITING ? "finished"
		 : m->run && m->last_outcome ? "finished" : "waiting");
	r.pid = m->target.pid;
	r.start_time = m->target.start_time;
	r.supervisor = m->supervisor;
	r.owner_pid = getpid();
	r.uid = geteuid();
	r.started_ms = m->run_start_wall ? m->run_start_wall : m->start_wall;
	r.attempt = m->attempt;
	r.attempts = m->mc->command ? m->mc->retry + 1 : 0;
	r.next_at_ms = m->state == RUN_RETRYING ? m->next_attempt_wall : 0;
	r.ended_ms = m->end_wall;
	r.exit_code = m->exit_known ? m->exit_code : -1;
	r.signal = m->exit_known ? m->exit_signal : -1;
	snprintf(r.outcome, sizeof(r.outcome), "%s",
		 r.state[0] == 'f' ? outcome_name(m->last_outcome) : "");
	r.expected_ms = monitor_expected_ms(m);
	r.expected_auto = m->mc->expected_auto;
	r.timeout_ms = m->mc->timeout_ms;
	r.progress = m->progress;
	/* vigil run's log, or a `command =` monitor's own: what `vigil logs` reads */
	snprintf(r.log, sizeof(r.log), "%s",
		 m->log_path ? m->log_path : m->mc->command && m->mc->log ? m->mc->log : "");
	snprintf(r.command, sizeof(r.command), "%s",
		 m->mc->command ? m->mc->command : m->cmdline ? m->cmdline : "");
	snprintf(r.last_event, sizeof(r.last_event), "%s", m->last_event);
	snprintf(r.reason, sizeof(r.reason), "%s", m->reason ? m->reason : "");
	m->state_dirty = false;
	if (state_write(dir, &r) != 0 && !m->state_warned) {
		m->state_warned = true;
		log_msg(LOG_LVL_WARN, m->name, "cannot record the run in %s", dir);
	}
}

static int64_t state_flush(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->state_timer = 0;
	if (m->state_dirty)
		monitor_save_state(m);
	return LOOP_TIMER_DONE;
}

/* The run record is a file rewrite: do it at once when the run changes state,
 * and at most once a second for the rest (a chatty log must not cost a rename
 * per line). */
static void monitor_note_state(struct monitor *m, const char *kind)
{
	if (!engine_state_dir(m->engine))
		return;
	m->state_dirty = true;
	/* Not on `exited`: `finished` follows at once, and a rename in between is
	 * latency on the path everyone waits for. */
	if (strcmp(kind, VIGIL_EV_ATTACHED) == 0 || strcmp(kind, VIGIL_EV_FINISHED) == 0 ||
	    strcmp(kind, VIGIL_EV_RETRYING) == 0) {
		monitor_save_state(m);
		return;
	}
	if (m->state_timer <= 0)
		m->state_timer = loop_add_timer(engine_loop(m->engine), 1000, state_flush, m, NULL);
}

static void journal_write(struct monitor *m)
{
	const char *dir = engine_state_dir(m->engine);
	int r = journal_flush(&m->journal, dir, m->name);

	if (r != 0 && !m->journal_warned)
		log_msg(LOG_LVL_WARN, m->name, "cannot append to the event journal in %s: %s", dir,
			strerror(-r));
	m->journal_warned = r != 0;
}

/* The end of the loop turn: its events reach the journal in one write. */
static int64_t journal_turn_end(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->journal_timer = 0;
	journal_write(m);
	return LOOP_TIMER_DONE;
}

/* The run's journal: what `vigil watch NAME` follows. The first event of a run
 * starts a new one; `finished` ends it and is written at once (a follower
 * waits for it). The rest is written at the end of the turn, with its timer
 * armed before any notifier's, so the journal is never behind a delivery. */
static void monitor_journal(struct monitor *m, const char *kind, const char *json, size_t len)
{
	bool finished = strcmp(kind, VIGIL_EV_FINISHED) == 0;

	if (!engine_state_dir(m->engine))
		return;
	if (!m->journal_open) {
		journal_write(m); /* what the previous run still had queued */
		journal_begin(&m->journal);
	}
	m->journal_open = !finished;
	if (journal_add(&m->journal, json, len) != 0)
		log_msg(LOG_LVL_ERR, m->name, "out of memory queueing a %s event for the journal",
			kind);
	if (finished) {
		journal_write(m);
		journal_close(&m->journal);
	} else if (m->journal_timer <= 0) {
		m->journal_timer = loop_add_timer(engine_loop(m->engine), 0, journal_turn_end, m,
						  NULL);
		if (m->journal_timer <= 0)
			journal_write(m); /* no timer: write it now */
	}
}

void monitor_journal_close(struct monitor *m)
{
	if (m->journal_timer > 0)
		loop_del_timer(engine_loop(m->engine), m->journal_timer);
	m->journal_timer = 0;
	if (engine_state_dir(m->engine))
		journal_write(m);
	journal_free(&m->journal);
}

/* The envelope and JSON line of an event of this monitor's current run. */
static int encode_event(struct monitor *m, const char *detector, const struct vigil_event *ev,
			struct event_envelope *env, char id[33], struct buf *b)
{
	const struct vigil_field *pidf = event_field(ev, "pid");

	event_new_id(id);
	*env = (struct event_envelope){0};
	env->id = id;
	env->time_ms = wall_ms();
	env->host = engine_hostname(m->engine);
	env->monitor = m->name;
	env->run = m->run;
	env->detector = detector;
	env->pid = pidf && pidf->type == VIGIL_FIELD_INT ? (pid_t)pidf->u.i : m->target.pid;
	buf_init(b);
	if (event_json_encode(b, env, ev) == 0)
		return 0;
	log_msg(LOG_LVL_ERR, m->name, "out of memory encoding a %s event", ev->kind);
	buf_free(b);
	return -ENOMEM;
}

char *monitor_event_json(struct monitor *m, const char *detector, const struct vigil_event *ev)
{
	struct event_envelope env;
	struct buf b;
	char id[33], *json;

	if (encode_event(m, detector, ev, &env, id, &b) != 0)
		return NULL;
	json = strdup(buf_cstr(&b));
	buf_free(&b);
	return json;
}

static void flood_flush(struct monitor *m);

void monitor_record(struct monitor *m, const char *detector, const struct vigil_event *ev)
{
	monitor_record_copy(m, detector, ev, NULL);
}

/* Every event goes through here: encode once, hand to notifiers and detectors. */
void monitor_record_copy(struct monitor *m, const char *detector, const struct vigil_event *ev,
			 char **json)
{
	const struct engine_hooks *h = engine_hooks(m->engine);
	struct event_envelope env;
	struct vigil_record rec;
	struct buf b;
	char id[33];

	/* What a burst holds comes before the attempt's end. */
	if (strcmp(ev->kind, VIGIL_EV_FINISHED) == 0 || strcmp(ev->kind, VIGIL_EV_RETRYING) == 0)
		flood_flush(m);
	if (encode_event(m, detector, ev, &env, id, &b) != 0)
		return;
	if (json)
		*json = strdup(buf_cstr(&b));
	rec = (struct vigil_record){.id = id, .monitor = m->name, .run = m->run,
				    .detector = detector, .time_ms = env.time_ms,
				    .host = env.host, .pid = env.pid, .event = ev,
				    .json = buf_cstr(&b), .json_len = b.len};
	snprintf(m->last_event, sizeof(m->last_event), "%s%s%s", ev->kind,
		 ev->message ? ": " : "", ev->message ? ev->message : "");
	monitor_journal(m, ev->kind, rec.json, rec.json_len);
	history_note_record(engine_state_dir(m->engine), &rec); /* a `finished` only */
	if (h->before_record)
		h->before_record(h->data, m, &rec);
	for (size_t i = 0; i < m->n_notifiers; i++)
		if (notify_wants(m->notify_filters[i], ev))
			notifier_submit(m->notifiers[i], &rec);
	for (size_t i = 0; i < m->n_dets; i++)
		if (m->dets[i]->plugin->on_event)
			m->dets[i]->plugin->on_event(m->dets[i]->instance, &rec);
	if (h->after_record)
		h->after_record(h->data, m, &rec);
	buf_free(&b);
	monitor_note_state(m, ev->kind);
}

/* ------------------------------------------------------ match bursts */

/* A log that fails in a loop must not page anyone 300 times: per pattern, the
 * first MATCH_SHOWN matches of a burst are events of their own; after that,
 * one event per match_window carries how many were held (`repeats`) and the
 * last of them. A window with no match ends the burst. */
#define MATCH_SHOWN 3

struct match_burst {
	struct monitor *m;
	const char *pattern;  /* "success" or "failure" */
	int64_t timer;        /* the window's end; 0: no burst going on */
	unsigned shown;       /* matches of this burst reported one by one */
	uint64_t held;        /* matched since, not reported yet */
	uint64_t lines;       /* the attempt's matching lines, held ones too */
	struct buf last;      /* the last held line */
	const char *detector; /* ... and its detector's section (borrowed) */
};

struct match_flood {
	uint64_t run; /* the attempt the counts belong to */
	int attempt;
	struct match_burst b[2];
};

static void burst_report(struct match_burst *b)
{
	char msg[200];
	struct vigil_field f[3] = {
		{.name = "pattern", .type = VIGIL_FIELD_STRING,
		 .u.s = {b->pattern, strlen(b->pattern)}},
		{.name = "line", .type = VIGIL_FIELD_STRING, .u.s = {buf_cstr(&b->last), b->last.len}},
		{.name = "repeats", .type = VIGIL_FIELD_INT, .u.i = (int64_t)b->held},
	};
	struct vigil_event ev = {.kind = VIGIL_EV_MATCH, .message = msg, .fields = f,
				 .n_fields = 3};

	snprintf(msg, sizeof(msg), "%llu more %s lines, the last: %.120s",
		 (unsigned long long)b->held, b->pattern, buf_cstr(&b->last));
	b->held = 0;
	monitor_record(b->m, b->detector, &ev);
}

/* The window ended: report what it held and keep holding, or end the burst. */
static int64_t burst_window_end(struct loop *loop, int64_t id, void *data)
{
	struct match_burst *b = data;

	(void)loop;
	(void)id;
	if (b->held) {
		burst_report(b);
		return b->m->mc->match_window_ms;
	}
	b->timer = 0;
	b->shown = 0;
	return LOOP_TIMER_DONE;
}

/* Report what is held now (the run ends, or the monitor goes). */
static void flood_flush(struct monitor *m)
{
	for (size_t i = 0; m->flood && i < 2; i++)
		if (m->flood->b[i].held)
			burst_report(&m->flood->b[i]);
}

void monitor_flood_free(struct monitor *m)
{
	if (!m->flood)
		return;
	for (size_t i = 0; i < 2; i++) {
		if (m->flood->b[i].timer > 0)
			loop_del_timer(engine_loop(m->engine), m->flood->b[i].timer);
		buf_free(&m->flood->b[i].last);
	}
	free(m->flood);
	m->flood = NULL;
}

/* The bursts of the current attempt, or NULL: a new attempt starts from zero;
 * matches before the first run began (run 0: the log is read before the
 * target is found) count for it. */
static struct match_flood *flood_current(struct monitor *m)
{
	struct match_flood *fl = m->flood;

	if (fl && fl->run == 0) {
		fl->run = m->run;
		fl->attempt = m->attempt;
	} else if (fl && (fl->run != m->run || fl->attempt != m->attempt)) {
		flood_flush(m);
		monitor_flood_free(m);
	}
	return m->flood;
}

static struct match_flood *flood_of(struct monitor *m)
{
	static const char *const patterns[2] = {"success", "failure"};

	if (!flood_current(m) && (m->flood = calloc(1, sizeof(*m->flood)))) {
		m->flood->run = m->run;
		m->flood->attempt = m->attempt;
		for (size_t i = 0; i < 2; i++) {
			m->flood->b[i] = (struct match_burst){.m = m, .pattern = patterns[i]};
			buf_init(&m->flood->b[i].last);
		}
	}
	return m->flood;
}

/* Count a match; true when it is to be recorded now, false when held. */
static bool burst_take(struct monitor *m, struct detector *d, const struct vigil_event *ev,
		       bool success)
{
	struct match_flood *fl = flood_of(m);
	struct match_burst *b = fl ? &fl->b[success ? 0 : 1] : NULL;
	const struct vigil_field *line = event_field(ev, "line");

	if (!b)
		return true;
	b->lines++;
	if (m->mc->match_window_ms <= 0)
		return true;
	if (b->timer <= 0) {
		b->shown = 0;
		b->timer = loop_add_timer(engine_loop(m->engine), m->mc->match_window_ms,
					  burst_window_end, b, NULL);
	}
	if (b->timer <= 0 || b->shown < MATCH_SHOWN) {
		b->shown++;
		return true;
	}
	buf_reset(&b->last);
	if (line && line->type == VIGIL_FIELD_STRING)
		buf_append(&b->last, line->u.s.ptr, line->u.s.len); /* on ENOMEM: an empty line */
	b->detector = d ? d->section : "core";
	b->held++;
	return false;
}

size_t monitor_match_fields(struct monitor *m, struct vigil_field *f, size_t max)
{
	struct match_flood *fl = flood_current(m);

	if (max < 2 || !fl || !(fl->b[0].lines || fl->b[1].lines))
		return 0;
	f[0] = (struct vigil_field){.name = "success_lines", .type = VIGIL_FIELD_INT,
				    .u.i = (int64_t)fl->b[0].lines};
	f[1] = (struct vigil_field){.name = "failure_lines", .type = VIGIL_FIELD_INT,
				    .u.i = (int64_t)fl->b[1].lines};
	return 2;
}

/* A match's facts: which pattern, the first failure line. */
static void note_match(struct monitor *m, const struct vigil_event *ev, bool success)
{
	const struct vigil_field *line = event_field(ev, "line");

	if (success) {
		m->success_seen = true;
		return;
	}
	m->failure_seen = true;
	if (!m->failure_line)
		m->failure_line = line && line->type == VIGIL_FIELD_STRING
					  ? strndup(line->u.s.ptr, line->u.s.len > 120 ? 120 : line->u.s.len)
					  : strdup("");
}

/* Detectors' events: note the facts the outcome depends on, then record. */
void monitor_emit(struct monitor *m, struct detector *d, const struct vigil_event *ev)
{
	const struct vigil_field *f;

	if (strcmp(ev->kind, VIGIL_EV_FILE) == 0 && d && !d->file_seen) {
		d->file_seen = true;
		f = event_field(ev, "path");
		free(d->file_path);
		d->file_path = f && f->type == VIGIL_FIELD_STRING ? strndup(f->u.s.ptr, f->u.s.len)
								  : NULL;
		f = event_field(ev, "size");
		d->file_size = f && f->type == VIGIL_FIELD_INT ? f->u.i : -1;
	} else if (strcmp(ev->kind, VIGIL_EV_MATCH) == 0) {
		f = event_field(ev, "pattern");
		if (f) {
			bool success = f->type == VIGIL_FIELD_STRING && f->u.s.len == 7 &&
				       memcmp(f->u.s.ptr, "success", 7) == 0;

			note_match(m, ev, success);
			if (!burst_take(m, d, ev, success))
				return; /* held: reported with the window's count */
		}
	} else if (strcmp(ev->kind, VIGIL_EV_PROGRESS) == 0) {
		const struct vigil_field *unit = event_field(ev, "unit");

		f = event_field(ev, "value");
		/* A percent may come as an int (a third-party detector's "50"): both count. */
		if (f && (f->type == VIGIL_FIELD_DOUBLE || f->type == VIGIL_FIELD_INT) && unit &&
		    unit->type == VIGIL_FIELD_STRING && unit->u.s.len == 7 &&
		    memcmp(unit->u.s.ptr, "percent", 7) == 0)
			m->progress = f->type == VIGIL_FIELD_DOUBLE ? f->u.d : (double)f->u.i;
	}
	monitor_record(m, d ? d->section : "core", ev);
	monitor_targetless_check(m, d, ev);
}

void monitor_expect(struct monitor *m, struct detector *d, enum vigil_criterion c)
{
	(void)m;
	if (d && c > 0 && c < 32)
		d->criteria |= 1u << c;
}

void monitor_log_tail(struct monitor *m, const struct vigil_bytes *lines, size_t n)
{
	for (size_t i = 0; i < m->n_tail; i++)
		free((char *)m->tail[i].ptr);
	free(m->tail);
	m->tail = calloc(n ? n : 1, sizeof(*m->tail));
	m->n_tail = 0;
	for (size_t i = 0; m->tail && i < n; i++) {
		char *p = malloc(lines[i].len + 1);

		if (!p)
			break;
		memcpy(p, lines[i].ptr, lines[i].len);
		p[lines[i].len] = '\0';
		m->tail[m->n_tail++] = (struct vigil_bytes){p, lines[i].len};
	}
}
