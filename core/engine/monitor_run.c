/* The run state machine and the core's policies: timeout (notify, term, kill),
 * expected duration (overdue), settling detectors, the outcome, retries. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/config.h"
#include "base/log.h"
#include "monitor_internal.h"
#include "lib/proc.h"
#include "base/state.h"
#include "base/success_expr.h"

#define SETTLE_LIMIT_MS 60000

static int64_t now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_mono(struct monitor *m) { return loop_now_ms(engine_loop(m->engine)); }

static void cancel(struct monitor *m, int64_t *timer)
{
	if (*timer > 0)
		loop_del_timer(engine_loop(m->engine), *timer);
	*timer = 0;
}

/* Signal the target; a job vigil started leads its own process group, so the
 * whole group gets it (sh -c and its children), as a terminal's ^C would. The
 * pidfd is opened only now (one fd per monitor is the pid detector's): checking
 * the start time after opening it makes the signal race-free against PID reuse. */
static void monitor_signal(struct monitor *m, int sig)
{
	int fd;

	if (monitor_tree_signal(m, sig))
		return; /* a job vigil started: its whole tree (monitor_spawn.c) */
	fd = (int)syscall(SYS_pidfd_open, m->target.pid, 0);
	if (fd < 0)
		return;
	if (!proc_is_same(m->target.pid, m->target.start_time)) {
		close(fd);
		return;
	}
	if (m->target.is_child)
		kill(-m->target.pid, sig);
	if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) != 0 && errno != ESRCH)
		log_msg(LOG_LVL_WARN, m->name, "cannot send %s to %d: %s", sigabbrev_np(sig),
			(int)m->target.pid, strerror(errno));
	close(fd);
}

static int64_t kill_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->kill_timer = 0;
	if (m->state == RUN_ATTACHED) {
		log_msg(LOG_LVL_WARN, m->name, "still running %lld ms after SIGTERM: SIGKILL",
			(long long)m->mc->kill_grace_ms);
		monitor_signal(m, SIGKILL);
	}
	return LOOP_TIMER_DONE;
}

int64_t monitor_add_timer(struct monitor *m, int64_t delay_ms, loop_timer_cb cb, const char *what)
{
	int64_t id = loop_add_timer(engine_loop(m->engine), delay_ms, cb, m, NULL);

	if (id > 0)
		return id;
	log_msg(LOG_LVL_ERR, m->name, "cannot arm the %s timer (%lld ms): %s", what,
		(long long)delay_ms, strerror((int)-id));
	return 0;
}

/* Where limits count from (DESIGN.md, "One truth per job"): the moment of
 * attaching for a process vigil watch found (the user gives it that long from
 * now: an old process is not killed on sight), the spawn for a command, and
 * the process's start time for the agent, so that a restart neither resets
 * nor drops them. A wait for the target counts too. */
static int64_t limit_base(struct monitor *m)
{
	int64_t base = m->single_run && !m->mc->command ? m->attach_mono : m->start_mono;

	if (m->wait_start_mono && m->wait_start_mono < base)
		base = m->wait_start_mono;
	return base;
}

/* A limit already past when the run is found fires at the next turn, and
 * says so. */
static void arm_limit(struct monitor *m, int64_t limit_ms, loop_timer_cb cb, int64_t *timer,
		      bool *late, const char *what)
{
	int64_t delay = limit_ms - (now_mono(m) - limit_base(m));

	*late = delay <= 0;
	*timer = monitor_add_timer(m, *late ? 0 : delay, cb, what);
}

static void limit_event(struct monitor *m, const char *kind, int64_t limit_ms, const char *what,
			bool late)
{
	char dur[32], age[32], msg[240];
	int64_t elapsed = now_mono(m) - limit_base(m);
	struct vigil_field f[3] = {
		{.name = "elapsed", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)elapsed / 1000.0},
		{.name = "limit", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)limit_ms / 1000.0},
		{.name = "late", .type = VIGIL_FIELD_BOOL, .u.b = late},
	};
	struct vigil_event ev = {.kind = kind, .message = msg, .fields = f, .n_fields = 3};

	config_format_duration(limit_ms, dur, sizeof(dur));
	if (late)
		snprintf(msg, sizeof(msg), "%s %s (already past when the run was found: it had "
			 "run %s)", what, dur, config_format_duration(elapsed, age, sizeof(age)));
	else
		snprintf(msg, sizeof(msg), "%s %s", what, dur);
	monitor_record(m, "core", &ev);
}

static int64_t timeout_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;
	enum on_timeout act = m->mc->on_timeout;

	(void)loop;
	(void)id;
	m->timeout_timer = 0;
	if (m->state != RUN_ATTACHED)
		return LOOP_TIMER_DONE;
	limit_event(m, VIGIL_EV_TIMEOUT, m->mc->timeout_ms,
		    act == ON_TIMEOUT_NOTIFY ? "still running after the timeout of"
		    : act == ON_TIMEOUT_TERM ? "timed out (SIGTERM) after"
					     : "timed out (SIGKILL) after", m->timeout_late);
	if (act == ON_TIMEOUT_NOTIFY)
		return LOOP_TIMER_DONE;
	m->timed_out = true;
	monitor_signal(m, act == ON_TIMEOUT_TERM ? SIGTERM : SIGKILL);
	if (act == ON_TIMEOUT_TERM)
		m->kill_timer = monitor_add_timer(m, m->mc->kill_grace_ms, kill_fired, "kill grace");
	return LOOP_TIMER_DONE;
}

static int64_t expected_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->expected_timer = 0;
	if (m->state == RUN_ATTACHED)
		limit_event(m, VIGIL_EV_OVERDUE, monitor_expected_ms(m), "running longer than expected:",
			    m->expected_late);
	return LOOP_TIMER_DONE;
}

static void reset_run_facts(struct monitor *m)
{
	m->exit_known = false;
	m->exit_code = m->exit_signal = m->core_dumped = 0;
	m->success_seen = m->failure_seen = m->timed_out = m->too_fast = false;
	free(m->failure_line);
	m->failure_line = NULL;
	free(m->reason);
	m->reason = NULL;
	m->progress = -1;
	for (size_t i = 0; i < m->n_dets; i++) {
		m->dets[i]->file_seen = false;
		m->dets[i]->settling = false;
	}
	for (size_t i = 0; i < m->n_tail; i++)
		free((char *)m->tail[i].ptr);
	m->n_tail = 0;
}

/* A new run (not the next attempt of one): its first attempt, its start. */
static void run_begins(struct monitor *m)
{
	m->attempt = 1;
	m->run_start_mono = m->start_mono;
	m->run_start_wall = m->start_wall;
	free(m->hook_notes);
	m->hook_notes = NULL;
}

void monitor_attached(struct monitor *m, pid_t pid, uint64_t start_time, const char *cmdline)
{
	char msg[300];

	if (m->state == RUN_ATTACHED || m->state == RUN_SETTLING)
		return;
	/* What detectors reported while the monitor waited for its first process
	 * (a file already there at start, log lines read from the start) belongs
	 * to the first run: the detectors count it so, and so must the outcome. */
	bool next_attempt = m->state == RUN_RETRYING; /* the same run goes on */

	if (m->attached_once)
		reset_run_facts(m);
	m->attached_once = true;
	if (!next_attempt)
		m->run++;
	m->state = RUN_ATTACHED;
	m->target.pid = pid;
	m->target.start_time = start_time;
	free(m->cmdline);
	/* A command we started is shown as given, the resume's after the first
	 * attempt: /proc has no line for one that exited already (a zombie). */
	if (m->mc->command)
		cmdline = next_attempt && m->mc->retry_command ? m->mc->retry_command
							       : m->mc->command;
	m->cmdline = strdup(cmdline ? cmdline : "");
	/* The run started when the process did, not when we found it. */
	m->start_wall = now_wall_ms() - proc_age_ms(start_time);
	m->start_mono = now_mono(m) - proc_age_ms(start_time);
	m->attach_mono = now_mono(m);
	if (!next_attempt)
		run_begins(m);
	m->end_wall = m->end_mono = 0;
	m->stopped = false;
	/* The wait's timer (vigil watch) gives way to the run's, which counts it. */
	cancel(m, &m->timeout_timer);
	if (m->mc->timeout_ms)
		arm_limit(m, m->mc->timeout_ms, timeout_fired, &m->timeout_timer, &m->timeout_late,
			  "timeout");
	if (monitor_learn_expected(m))
		arm_limit(m, monitor_expected_ms(m), expected_fired, &m->expected_timer,
			  &m->expected_late, "expected");
	snprintf(msg, sizeof(msg), "watching pid %d: %.200s", (int)pid, m->cmdline);
	struct vigil_field f[2] = {
		{.name = "start_time", .type = VIGIL_FIELD_INT, .u.i = (int64_t)start_time},
		{.name = "cmdline", .type = VIGIL_FIELD_STRING,
		 .u.s = {m->cmdline, strlen(m->cmdline)}},
	};
	struct vigil_event ev = {.kind = VIGIL_EV_ATTACHED, .message = msg, .fields = f,
				 .n_fields = 2};
	monitor_record(m, "pid", &ev);
}

static void exit_words(struct monitor *m, char *buf, size_t len)
{
	char sig[32];

	if (!m->exit_known)
		snprintf(buf, len, "exit status unknown");
	else if (m->exit_signal > 0)
		snprintf(buf, len, "killed by %s%s", proc_signal_name(m->exit_signal, sig, sizeof(sig)),
			 m->core_dumped ? " (core dumped)" : "");
	else
		snprintf(buf, len, "exit %d", m->exit_code);
}

/* The last attempt's exit_code and signal as event fields, null when unknown. */
static void exit_fields(const struct monitor *m, struct vigil_field f[2], char *sigbuf,
			size_t len)
{
	f[0] = (struct vigil_field){.name = "exit_code", .type = VIGIL_FIELD_NULL};
	f[1] = (struct vigil_field){.name = "signal", .type = VIGIL_FIELD_NULL};
	if (m->exit_known && !m->exit_signal)
		f[0] = (struct vigil_field){.name = "exit_code", .type = VIGIL_FIELD_INT,
					    .u.i = m->exit_code};
	if (m->exit_signal) {
		const char *s = proc_signal_name(m->exit_signal, sigbuf, len);

		f[1] = (struct vigil_field){.name = "signal", .type = VIGIL_FIELD_STRING,
					    .u.s = {s, strlen(s)}};
	}
}

static void start_settling(struct monitor *m);

static void record_exit(struct monitor *m, int code, int sig, int core_dumped);

void monitor_set_single_run(struct monitor *m) { m->single_run = true; }

void monitor_exited(struct monitor *m, int code, int sig, int core_dumped)
{
	if (m->state != RUN_ATTACHED)
		return;
	if (monitor_tree_hold(m, code, sig, core_dumped))
		return; /* the run lasts until the processes it left have exited */
	record_exit(m, code, sig, core_dumped);
}

static void record_exit(struct monitor *m, int code, int sig, int core_dumped)
{
	char sigbuf[32], msg[160];
	struct vigil_field f[3];

	m->exit_known = code >= 0 || sig > 0;
	m->exit_code = code;
	m->exit_signal = sig > 0 ? sig : 0;
	m->core_dumped = core_dumped > 0;
	m->end_mono = now_mono(m);
	m->end_wall = now_wall_ms();
	cancel(m, &m->timeout_timer);
	cancel(m, &m->expected_timer);
	cancel(m, &m->kill_timer);
	exit_fields(m, f, sigbuf, sizeof(sigbuf));
	f[2] = (struct vigil_field){.name = "core_dumped", .type = VIGIL_FIELD_BOOL,
				    .u.b = m->core_dumped};
	exit_words(m, msg, sizeof(msg));
	if (!m->exit_known)
		snprintf(msg, sizeof(msg), "process ended; its exit status is unknown "
			 "(not vigil's child, and no access to the kernel's process events)");
	struct vigil_event ev = {.kind = VIGIL_EV_EXITED, .message = msg, .fields = f,
				 .n_fields = 3};
	monitor_record(m, "pid", &ev);
	start_settling(m);
}

static void monitor_finish(struct monitor *m);

static int64_t settle_limit_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->settle_timer = 0;
	if (m->state == RUN_SETTLING) {
		log_msg(LOG_LVL_WARN, m->name, "detectors did not settle within %d s; deciding now",
			SETTLE_LIMIT_MS / 1000);
		monitor_finish(m);
	}
	return LOOP_TIMER_DONE;
}

static bool any_settling(struct monitor *m)
{
	for (size_t i = 0; i < m->n_dets; i++)
		if (m->dets[i]->settling)
			return true;
	return false;
}

/* The process is gone: let detectors finish reading (the log's last lines, a
 * file still being flushed) before the outcome is decided. */
static void start_settling(struct monitor *m)
{
	m->state = RUN_SETTLING;
	for (size_t i = 0; i < m->n_dets; i++) {
		struct detector *d = m->dets[i];

		d->settling = true;
		if (!d->plugin->settle || d->plugin->settle(d->instance) == VIGIL_SETTLED)
			d->settling = false;
		if (m->state != RUN_SETTLING)
			return; /* a settle() call finished the run already */
	}
	if (!any_settling(m))
		monitor_finish(m);
	else if (!(m->settle_timer = monitor_add_timer(m, SETTLE_LIMIT_MS, settle_limit_fired,
							 "settle")))
		monitor_finish(m); /* no timer to end the wait: decide now */
}

void monitor_settled(struct monitor *m, struct detector *d)
{
	if (!d || !d->settling)
		return;
	d->settling = false;
	if (m->state == RUN_SETTLING && !any_settling(m)) {
		cancel(m, &m->settle_timer);
		monitor_finish(m);
	}
}

static unsigned crit_count(struct monitor *m, enum vigil_criterion c, unsigned *seen)
{
	unsigned n = 0;

	*seen = 0;
	for (size_t i = 0; i < m->n_dets; i++)
		if (m->dets[i]->criteria & (1u << c)) {
			n++;
			*seen += m->dets[i]->file_seen;
		}
	return n;
}

/* The default rule: every criterion the monitor names must hold; the exit status
 * counts where it is known. Kleene logic keeps "unknown" from becoming a guess. */
static enum outcome decide(struct monitor *m)
{
	unsigned files_seen, files = crit_count(m, VIGIL_CRIT_FILE, &files_seen);
	unsigned dummy, succ = crit_count(m, VIGIL_CRIT_SUCCESS, &dummy);
	unsigned fail = crit_count(m, VIGIL_CRIT_FAILURE, &dummy);
	struct success_facts f = {
		.exit = !m->exit_known ? TRI_UNKNOWN
			: (m->exit_code == 0 && m->exit_signal == 0) ? TRI_TRUE : TRI_FALSE,
		.file = files == 0 || files_seen == files ? TRI_TRUE : TRI_FALSE,
		.success = succ == 0 || m->success_seen ? TRI_TRUE : TRI_FALSE,
		.failure = m->failure_seen ? TRI_TRUE : TRI_FALSE,
	};
	enum tri r;

	if (m->timed_out)
		return OUTCOME_TIMED_OUT;
	if (m->expr) {
		r = success_expr_eval(m->expr, &f);
	} else {
		r = TRI_TRUE;
		if (f.file == TRI_FALSE || f.success == TRI_FALSE || f.failure == TRI_TRUE)
			r = TRI_FALSE;
		else if (f.exit == TRI_FALSE)
			r = TRI_FALSE;
		else if (f.exit == TRI_UNKNOWN && files + succ + fail == 0)
			r = TRI_UNKNOWN;
	}
	return r == TRI_TRUE ? OUTCOME_SUCCEEDED : r == TRI_FALSE ? OUTCOME_FAILED : OUTCOME_UNKNOWN;
}

static void human_size(int64_t n, char *buf, size_t len)
{
	const char *u[] = {"bytes", "KB", "MB", "GB", "TB"};
	double v = (double)n;
	int i = 0;

	while (v >= 1000 && i < 4)
		v /= 1000, i++;
	if (i == 0)
		snprintf(buf, len, "%lld bytes", (long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, u[i]);
}

static void targetless_reason(struct monitor *m, struct buf *b);
static void targetless_next(struct monitor *m);

/* "exit 0, /data/export.json present (1.2 GB), no failure line" */
static char *reason_text(struct monitor *m)
{
	struct buf b;
	char tmp[160];
	unsigned dummy;

	buf_init(&b);
	if (monitor_is_targetless(m)) {
		targetless_reason(m, &b);
	} else {
		if (m->timed_out)
			buf_printf(&b, "timed out after %s%s (%s), ",
				   config_format_duration(m->mc->timeout_ms, tmp, sizeof(tmp)),
				   m->timeout_late ? ", already past when the run was found" : "",
				   m->mc->on_timeout == ON_TIMEOUT_KILL ? "SIGKILL" : "SIGTERM");
		exit_words(m, tmp, sizeof(tmp));
		buf_puts(&b, tmp);
	}
	for (size_t i = 0; i < m->n_dets; i++) {
		struct detector *d = m->dets[i];

		if (!(d->criteria & (1u << VIGIL_CRIT_FILE)))
			continue;
		if (d->file_seen) {
			human_size(d->file_size, tmp, sizeof(tmp));
			buf_printf(&b, ", %s present (%s)", d->file_path ? d->file_path : "file", tmp);
		} else if (d->config_path) {
			buf_printf(&b, ", %s missing", d->config_path);
		} else {
			buf_printf(&b, ", expected file missing (%s)", d->section);
		}
	}
	if (crit_count(m, VIGIL_CRIT_SUCCESS, &dummy))
		buf_puts(&b, m->success_seen ? ", success line seen" : ", no success line");
	if (m->failure_seen)
		buf_printf(&b, ", failure line: %s", m->failure_line ? m->failure_line : "");
	else if (crit_count(m, VIGIL_CRIT_FAILURE, &dummy))
		buf_puts(&b, ", no failure line");
	char *text = strdup(buf_cstr(&b));
	buf_free(&b);
	return text;
}

/* How many attempts a run may take: a command's retries, plus the first. */
static int attempts_allowed(const struct monitor *m)
{
	return m->mc->command ? m->mc->retry + 1 : 1;
}

struct finished_event {
	struct vigil_field f[15]; /* 8 of the run, 4 of the report, too_fast, 2 counts */
	char sigbuf[32], msg[700];
	struct vigil_event ev;
};

static void finished_build(struct monitor *m, enum outcome o, struct finished_event *fe)
{
	double duration = m->run ? (double)(m->end_mono - m->run_start_mono) / 1000.0 : 0;
	/* first: it may take log_tail from the job's output (monitor_report.c) */
	size_t n_report = monitor_report_fields(m, &fe->f[8], 4);

	n_report += monitor_too_fast_field(m, &fe->f[8 + n_report]);
	n_report += monitor_match_fields(m, &fe->f[8 + n_report], 2);

	fe->f[0] = (struct vigil_field){.name = "outcome", .type = VIGIL_FIELD_STRING,
					.u.s = {outcome_name(o), strlen(outcome_name(o))}};
	exit_fields(m, &fe->f[1], fe->sigbuf, sizeof(fe->sigbuf));
	fe->f[3] = (struct vigil_field){.name = "duration", .type = VIGIL_FIELD_DOUBLE,
					.u.d = duration};
	fe->f[4] = (struct vigil_field){.name = "reason", .type = VIGIL_FIELD_STRING,
					.u.s = {m->reason, strlen(m->reason)}};
	fe->f[5] = (struct vigil_field){.name = "log_tail", .type = VIGIL_FIELD_STRINGS,
					.u.list = {m->tail, m->n_tail}};
	fe->f[6] = (struct vigil_field){.name = "attempt", .type = VIGIL_FIELD_INT,
					.u.i = m->attempt};
	fe->f[7] = (struct vigil_field){.name = "attempts", .type = VIGIL_FIELD_INT,
					.u.i = attempts_allowed(m)};
	snprintf(fe->msg, sizeof(fe->msg), "%s: %s", outcome_name(o), m->reason);
	fe->ev = (struct vigil_event){.kind = VIGIL_EV_FINISHED, .message = fe->msg,
				      .fields = fe->f, .n_fields = 8 + n_report};
}

static void emit_finished(struct monitor *m, enum outcome o)
{
	struct finished_event fe;

	finished_build(m, o, &fe);
	monitor_record(m, "core", &fe.ev);
}

/* After a run: wait for the next run of a recurring target (pid_file, match),
 * or end the monitor. */
static void after_run(struct monitor *m)
{
	const struct engine_hooks *h = engine_hooks(m->engine);

	if ((m->mc->pid_file || m->mc->match) && !m->single_run) {
		m->state = RUN_WAITING;
		monitor_save_state(m);
		return;
	}
	if (monitor_is_targetless(m) && !m->single_run) {
		targetless_next(m);
		return;
	}
	m->done = true;
	if (h->monitor_done)
		h->monitor_done(h->data, m);
}

/* The run's outcome, told once: the hooks' failures join its reason. */
static void conclude(struct monitor *m)
{
	char *reason;

	m->concluding = false;
	if (m->hook_notes && asprintf(&reason, "%s; %s", m->reason, m->hook_notes) >= 0) {
		free(m->reason);
		m->reason = reason;
	}
	m->state = RUN_FINISHED;
	emit_finished(m, m->last_outcome);
	after_run(m);
}

/* on_failure gets the finished event it precedes; `finished` waits for it, so
 * that whoever acts on the outcome acts after the roll-back. true: it runs. */
static bool run_on_failure(struct monitor *m)
{
	struct finished_event fe;
	char *json;
	int r;

	finished_build(m, m->last_outcome, &fe);
	json = monitor_event_json(m, "core", &fe.ev);
	m->concluding = true;
	r = monitor_hook_run(m, "on_failure", m->mc->on_failure, json, conclude);
	free(json);
	m->concluding = r == 0;
	return r == 0;
}

/* ------------------------------------------------------------ retries */
/* A failed attempt of a command with attempts left is retried; a timeout is
 * not (it is the verdict of a limit, not a failure to try again). */
static bool retry_due(const struct monitor *m, enum outcome o)
{
	return m->mc->command && (o == OUTCOME_FAILED || o == OUTCOME_UNKNOWN) &&
	       m->attempt <= m->mc->retry;
}

/* retry_delay after the first failure, doubled after each next (up to 1 h). */
static int64_t retry_delay(const struct monitor *m)
{
	int64_t delay = m->mc->retry_delay_ms;

	for (int i = 1; i < m->attempt && delay < 3600000; i++)
		delay *= 2;
	return delay;
}

/* `retrying`: the attempt to come, of how many, after what delay, and how the
 * failed one ended. *json gets its JSON line when asked (before_retry's stdin). */
static void emit_retrying(struct monitor *m, int64_t delay, char **json)
{
	char sigbuf[32], dur[32], msg[800];
	struct vigil_field f[6] = {
		{.name = "attempt", .type = VIGIL_FIELD_INT, .u.i = m->attempt},
		{.name = "attempts", .type = VIGIL_FIELD_INT, .u.i = attempts_allowed(m)},
		{.name = "delay", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)delay / 1000.0},
		[5] = {.name = "reason", .type = VIGIL_FIELD_STRING,
		       .u.s = {m->reason, strlen(m->reason)}},
	};

	exit_fields(m, &f[3], sigbuf, sizeof(sigbuf));
	snprintf(msg, sizeof(msg), "attempt %d of %d failed (%s); attempt %d in %s",
		 m->attempt - 1, attempts_allowed(m), m->reason, m->attempt,
		 config_format_duration(delay, dur, sizeof(dur)));
	struct vigil_event ev = {.kind = VIGIL_EV_RETRYING, .message = msg, .fields = f,
				 .n_fields = 6};
	monitor_record_copy(m, "core", &ev, json);
}


static void spawn_next_attempt(struct monitor *m)
{
	char err[256], why[400];

	if (monitor_spawn(m, err, sizeof(err)) == 0)
		return;
	snprintf(why, sizeof(why), "attempt %d could not start: %s", m->attempt, err);
	log_msg(LOG_LVL_ERR, m->name, "%s", why);
	monitor_finish_unattached(m, OUTCOME_FAILED, why);
}

/* The next attempt starts once its delay has passed and before_retry ended. */
static void next_attempt_if_due(struct monitor *m)
{
	if (m->state == RUN_RETRYING && m->retry_timer == 0 && !m->hook)
		spawn_next_attempt(m);
}

static int64_t retry_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->retry_timer = 0;
	next_attempt_if_due(m);
	return LOOP_TIMER_DONE;
}

static void start_retry(struct monitor *m)
{
	int64_t delay = retry_delay(m);
	char *json = NULL;

	m->state = RUN_RETRYING;
	m->attempt++;
	m->next_attempt_wall = now_wall_ms() + delay;
	log_msg(LOG_LVL_INFO, m->name, "attempt %d of %d failed; retrying in %lld ms",
		m->attempt - 1, attempts_allowed(m), (long long)delay);
	emit_retrying(m, delay, m->mc->before_retry ? &json : NULL);
	m->retry_timer = monitor_add_timer(m, delay, retry_fired, "retry");
	if (m->mc->before_retry)
		monitor_hook_run(m, "before_retry", m->mc->before_retry, json, next_attempt_if_due);
	free(json);
	next_attempt_if_due(m); /* only when the timer could not be armed */
}

static void monitor_finish(struct monitor *m)
{
	enum outcome o;

	cancel(m, &m->settle_timer);
	if (m->state == RUN_FINISHED || m->state == RUN_RETRYING || m->concluding)
		return;
	o = decide(m);
	free(m->reason);
	m->reason = reason_text(m);
	if (!m->reason)
		m->reason = strdup("");
	monitor_learn_too_fast(m);
	m->last_outcome = o;
	if (retry_due(m, o)) {
		start_retry(m);
		return;
	}
	if (o != OUTCOME_SUCCEEDED && m->mc->on_failure && run_on_failure(m))
		return; /* conclude() when it has ended */
	conclude(m);
}

/* End a run that never began: nothing attached, the outcome is o. */
void monitor_finish_unattached(struct monitor *m, enum outcome o, const char *why)
{
	reset_run_facts(m);
	m->reason = strdup(why);
	m->state = RUN_FINISHED;
	m->last_outcome = o;
	emit_finished(m, o);
	m->done = true;
	if (engine_hooks(m->engine)->monitor_done)
		engine_hooks(m->engine)->monitor_done(engine_hooks(m->engine)->data, m);
}

static int64_t wait_timeout_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;
	char dur[32], why[600];

	(void)loop;
	(void)id;
	m->timeout_timer = 0;
	if (m->state != RUN_WAITING || m->done)
		return LOOP_TIMER_DONE;
	snprintf(why, sizeof(why), "timed out after %s waiting for %s",
		 config_format_duration(m->mc->timeout_ms, dur, sizeof(dur)), m->waiting_for);
	log_msg(LOG_LVL_WARN, m->name, "%s", why);
	monitor_finish_unattached(m, OUTCOME_TIMED_OUT, why);
	return LOOP_TIMER_DONE;
}

/* vigil watch of a pid_file or match target not there yet: one `waiting` event
 * says what for, and the wait counts against the timeout. */
void monitor_wait_begins(struct monitor *m)
{
	char msg[600];

	if (m->state != RUN_WAITING || m->done || m->attached_once || !m->single_run ||
	    !(m->mc->pid_file || m->mc->match))
		return;
	m->wait_start_mono = now_mono(m);
	free(m->waiting_for);
	if (asprintf(&m->waiting_for, m->mc->pid_file ? "pid file %s" : "a process matching %s",
		     m->mc->pid_file ? m->mc->pid_file : m->mc->match) < 0)
		m->waiting_for = NULL;
	const char *what = m->waiting_for ? m->waiting_for : "the target";
	struct vigil_field f = {.name = "for", .type = VIGIL_FIELD_STRING,
				.u.s = {what, strlen(what)}};
	struct vigil_event ev = {.kind = VIGIL_EV_WAITING, .message = msg, .fields = &f,
				 .n_fields = 1};
	snprintf(msg, sizeof(msg), "waiting for %s", what);
	monitor_record(m, "pid", &ev);
	if (m->mc->timeout_ms)
		m->timeout_timer = monitor_add_timer(m, m->mc->timeout_ms, wait_timeout_fired, "timeout");
}

/* The target cannot be found and never will be: end with outcome unknown. */
void monitor_lost(struct monitor *m, const char *why)
{
	if (m->state == RUN_ATTACHED || m->state == RUN_SETTLING || m->done)
		return;
	log_msg(LOG_LVL_ERR, m->name, "%s", why);
	m->lost = true;
	cancel(m, &m->timeout_timer);
	monitor_finish_unattached(m, OUTCOME_UNKNOWN, why);
}

int monitor_end_retrying(struct monitor *m, const char *why)
{
	if (m->state != RUN_RETRYING)
		return -ESRCH;
	cancel(m, &m->retry_timer);
	log_msg(LOG_LVL_WARN, m->name, "%s: no further attempt", why);
	free(m->reason);
	m->reason = strdup(why);
	m->last_outcome = OUTCOME_FAILED;
	conclude(m); /* a before_retry still running then finds no retry due */
	return 0;
}

int monitor_stop(struct monitor *m, bool force)
{
	if (m->state == RUN_RETRYING)
		return monitor_end_retrying(m, "stopped during the retry delay");
	if (m->state != RUN_ATTACHED)
		return -ESRCH;
	monitor_signal(m, force ? SIGKILL : SIGTERM);
	if (!force && m->kill_timer <= 0)
		m->kill_timer = monitor_add_timer(m, m->mc->kill_grace_ms, kill_fired, "kill grace");
	return 0;
}

bool monitor_is_stopped(const struct monitor *m) { return m->stopped; }

void monitor_stopped(struct monitor *m, bool stopped, int sig)
{
	char sigbuf[32], msg[80];
	const char *name = sig > 0 ? proc_signal_name(sig, sigbuf, sizeof(sigbuf)) : "";

	if (m->state != RUN_ATTACHED || m->stopped == stopped)
		return;
	m->stopped = stopped;
	struct vigil_field f = {.name = "signal", .type = VIGIL_FIELD_NULL};
	if (stopped && *name)
		f = (struct vigil_field){.name = "signal", .type = VIGIL_FIELD_STRING,
					 .u.s = {name, strlen(name)}};
	if (stopped)
		snprintf(msg, sizeof(msg), "process %d stopped%s%s", (int)m->target.pid,
			 *name ? " by " : "", name);
	else
		snprintf(msg, sizeof(msg), "process %d continued", (int)m->target.pid);
	struct vigil_event ev = {.kind = stopped ? "stopped" : "continued", .message = msg,
				 .fields = &f, .n_fields = 1};
	monitor_record(m, "pid", &ev);
	/* status must say so now, not at the next periodic flush */
	monitor_save_state(m);
}

/* ------------------------------------------------------ detectors only */
/* A monitor without a process target (no pid, pid_file, match or command): a
 * run begins when the monitor starts and, unless it is vigil watch's one run,
 * again after each run (a recurring heartbeat). No process exits: the
 * detectors end it (a failure line; every file and success line it names; a
 * detector's deadline passed: timed_out) or its timeout does (timed_out). The
 * end is acted on at the next turn of the loop, never inside a detector's
 * emit: settling calls back into the detectors. */
bool monitor_is_targetless(const struct monitor *m)
{
	const struct monitor_config *mc = m->mc;

	return !mc->pid && !mc->pid_file && !mc->match && !mc->command;
}

static bool targetless_decided(struct monitor *m)
{
	unsigned files_seen, files = crit_count(m, VIGIL_CRIT_FILE, &files_seen);
	unsigned dummy, succ = crit_count(m, VIGIL_CRIT_SUCCESS, &dummy);

	if (m->failure_seen || m->timed_out)
		return true;
	return files + succ > 0 && files_seen == files && (succ == 0 || m->success_seen);
}

static void targetless_begin(struct monitor *m);

/* The loop's turn after a decision (the run ends) or after a run (the next). */
static int64_t targetless_turn(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->turn_timer = 0;
	if (m->state == RUN_WAITING && !m->done) {
		targetless_begin(m);
	} else if (m->state == RUN_ATTACHED) {
		m->end_mono = now_mono(m);
		m->end_wall = now_wall_ms();
		cancel(m, &m->timeout_timer);
		cancel(m, &m->expected_timer);
		start_settling(m);
	}
	return LOOP_TIMER_DONE;
}

static void targetless_turn_soon(struct monitor *m)
{
	if (!m->turn_timer)
		m->turn_timer = monitor_add_timer(m, 0, targetless_turn, "run end");
}

static int64_t targetless_timeout_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->timeout_timer = 0;
	if (m->state != RUN_ATTACHED)
		return LOOP_TIMER_DONE;
	limit_event(m, VIGIL_EV_TIMEOUT, m->mc->timeout_ms, "timed out after", false);
	m->timed_out = true;
	targetless_turn_soon(m);
	return LOOP_TIMER_DONE;
}

static void targetless_begin(struct monitor *m)
{
	char msg[80];

	if (m->attached_once)
		reset_run_facts(m);
	m->attached_once = true;
	m->run++;
	m->state = RUN_ATTACHED;
	free(m->cmdline);
	m->cmdline = strdup("");
	m->start_wall = now_wall_ms();
	m->start_mono = m->attach_mono = now_mono(m);
	run_begins(m);
	m->end_wall = m->end_mono = 0;
	if (m->mc->timeout_ms)
		m->timeout_timer = monitor_add_timer(m, m->mc->timeout_ms, targetless_timeout_fired,
						     "timeout");
	if (monitor_learn_expected(m))
		arm_limit(m, monitor_expected_ms(m), expected_fired, &m->expected_timer,
			  &m->expected_late, "expected");
	snprintf(msg, sizeof(msg), "run %llu: no process, the detectors decide",
		 (unsigned long long)m->run);
	struct vigil_event ev = {.kind = VIGIL_EV_ATTACHED, .message = msg};
	monitor_record(m, "core", &ev);
	if (targetless_decided(m)) /* what the detectors told before the run began */
		targetless_turn_soon(m);
}

/* The first run begins at the next turn: nothing is recorded from inside
 * monitor_start, whose caller (a reload) may not have put the monitor in
 * place yet. */
void monitor_targetless_start(struct monitor *m)
{
	monitor_save_state(m);
	targetless_turn_soon(m);
}

void monitor_targetless_check(struct monitor *m, struct detector *d, const struct vigil_event *ev)
{
	if (m->state != RUN_ATTACHED || !monitor_is_targetless(m))
		return;
	if (d && strcmp(ev->kind, VIGIL_EV_OVERDUE) == 0)
		m->timed_out = true; /* a heartbeat file not there by its deadline */
	if (targetless_decided(m))
		targetless_turn_soon(m);
}

/* The agent: the next run begins once this one has been told. */
static void targetless_next(struct monitor *m)
{
	m->state = RUN_WAITING;
	monitor_save_state(m);
	targetless_turn_soon(m);
}

/* The reason's head: no exit status to tell, only how the run ended. */
static void targetless_reason(struct monitor *m, struct buf *b)
{
	char dur[32];

	if (!m->timed_out)
		buf_puts(b, "detectors only");
	else if (m->mc->timeout_ms && now_mono(m) - m->start_mono >= m->mc->timeout_ms)
		buf_printf(b, "timed out after %s",
			   config_format_duration(m->mc->timeout_ms, dur, sizeof(dur)));
	else
		buf_puts(b, "timed out: a detector's deadline passed");
}
