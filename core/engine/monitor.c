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

/* The run's journal: what `vigil watch NAME` follows. The first event of a run
 * starts a new one; `finished` ends it. */
static void monitor_journal(struct monitor *m, const char *kind, const char *json, size_t len)
{
	const char *dir = engine_state_dir(m->engine);
	int r;

	if (!dir)
		return;
	r = journal_append(dir, m->name, json, len, !m->journal_open);
	m->journal_open = strcmp(kind, VIGIL_EV_FINISHED) != 0;
	if (r != 0 && !m->journal_warned)
		log_msg(LOG_LVL_WARN, m->name, "cannot append to the event journal in %s: %s", dir,
			strerror(-r));
	m->journal_warned = r != 0;
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
		if (f && f->type == VIGIL_FIELD_STRING && f->u.s.len == 7 &&
		    memcmp(f->u.s.ptr, "success", 7) == 0)
			m->success_seen = true;
		else if (f && f->type == VIGIL_FIELD_STRING && !m->failure_line) {
			const struct vigil_field *line = event_field(ev, "line");

			m->failure_seen = true;
			m->failure_line = line && line->type == VIGIL_FIELD_STRING
						  ? strndup(line->u.s.ptr, line->u.s.len > 120 ? 120 : line->u.s.len)
						  : strdup("");
		} else if (f) {
			m->failure_seen = true;
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
