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
	int fd = (int)syscall(SYS_pidfd_open, m->target.pid, 0);

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

static void limit_event(struct monitor *m, const char *kind, int64_t limit_ms, const char *what)
{
	char dur[32], msg[160];
	struct vigil_field f[2] = {
		{.name = "elapsed", .type = VIGIL_FIELD_DOUBLE,
		 .u.d = (double)(now_mono(m) - m->start_mono) / 1000.0},
		{.name = "limit", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)limit_ms / 1000.0},
	};
	struct vigil_event ev = {.kind = kind, .message = msg, .fields = f, .n_fields = 2};

	snprintf(msg, sizeof(msg), "%s %s", what, config_format_duration(limit_ms, dur, sizeof(dur)));
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
					     : "timed out (SIGKILL) after");
	if (act == ON_TIMEOUT_NOTIFY)
		return LOOP_TIMER_DONE;
	m->timed_out = true;
	monitor_signal(m, act == ON_TIMEOUT_TERM ? SIGTERM : SIGKILL);
	if (act == ON_TIMEOUT_TERM)
		m->kill_timer = loop_add_timer(loop, m->mc->kill_grace_ms, kill_fired, m, NULL);
	return LOOP_TIMER_DONE;
}

static int64_t expected_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;

	(void)loop;
	(void)id;
	m->expected_timer = 0;
	if (m->state == RUN_ATTACHED)
		limit_event(m, VIGIL_EV_OVERDUE, m->mc->expected_ms, "running longer than expected:");
	return LOOP_TIMER_DONE;
}

static void reset_run_facts(struct monitor *m)
{
	m->exit_known = false;
	m->exit_code = m->exit_signal = m->core_dumped = 0;
	m->success_seen = m->failure_seen = m->timed_out = false;
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

void monitor_attached(struct monitor *m, pid_t pid, uint64_t start_time, const char *cmdline)
{
	struct loop *loop = engine_loop(m->engine);
	char msg[300];

	if (m->state == RUN_ATTACHED || m->state == RUN_SETTLING)
		return;
	/* What detectors reported while the monitor waited for its first process
	 * (a file already there at start, log lines read from the start) belongs
	 * to the first run: the detectors count it so, and so must the outcome. */
	if (m->attached_once)
		reset_run_facts(m);
	m->attached_once = true;
	m->run++;
	m->state = RUN_ATTACHED;
	m->target.pid = pid;
	m->target.start_time = start_time;
	free(m->cmdline);
	/* A process that already exited (a zombie) has no command line left. */
	if ((!cmdline || !*cmdline) && m->mc->command)
		cmdline = m->mc->command;
	m->cmdline = strdup(cmdline ? cmdline : "");
	/* The run started when the process did, not when we found it. */
	m->start_wall = now_wall_ms() - proc_age_ms(start_time);
	m->start_mono = now_mono(m) - proc_age_ms(start_time);
	m->end_wall = m->end_mono = 0;
	if (m->mc->timeout_ms)
		m->timeout_timer = loop_add_timer(loop, m->mc->timeout_ms - (now_mono(m) - m->start_mono),
						  timeout_fired, m, NULL);
	if (m->mc->expected_ms)
		m->expected_timer = loop_add_timer(loop, m->mc->expected_ms - (now_mono(m) - m->start_mono),
						   expected_fired, m, NULL);
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

static void start_settling(struct monitor *m);

static void record_exit(struct monitor *m, int code, int sig, int core_dumped);

/* A job of `vigil run` watched from outside: its supervisor is the parent and
 * records the exit status; wait (bounded) for that record rather than guess. */
static int64_t status_record_poll(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;
	struct run_record r;

	(void)loop;
	(void)id;
	if (state_read(m->status_dir, m->status_name, &r) == 0 && r.pid == m->target.pid &&
	    strcmp(r.state, "finished") == 0) {
		m->status_timer = 0;
		record_exit(m, r.signal > 0 ? -1 : r.exit_code, r.signal, 0);
		return LOOP_TIMER_DONE;
	}
	if (now_mono(m) - m->status_wait_start > 3000) {
		m->status_timer = 0;
		record_exit(m, -1, -1, 0);
		return LOOP_TIMER_DONE;
	}
	return 20;
}

void monitor_set_single_run(struct monitor *m) { m->single_run = true; }

void monitor_set_status_record(struct monitor *m, const char *dir, const char *name)
{
	free(m->status_dir);
	free(m->status_name);
	m->status_dir = strdup(dir);
	m->status_name = strdup(name);
}

void monitor_exited(struct monitor *m, int code, int sig, int core_dumped)
{
	if (m->state != RUN_ATTACHED || m->status_timer)
		return;
	if (code < 0 && sig <= 0 && m->status_dir) {
		m->status_wait_start = now_mono(m);
		m->status_timer = loop_add_timer(engine_loop(m->engine), 0, status_record_poll, m, NULL);
		return;
	}
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
	f[0] = (struct vigil_field){.name = "exit_code", .type = VIGIL_FIELD_NULL};
	if (m->exit_known && m->exit_signal == 0)
		f[0] = (struct vigil_field){.name = "exit_code", .type = VIGIL_FIELD_INT, .u.i = code};
	f[1] = (struct vigil_field){.name = "signal", .type = VIGIL_FIELD_NULL};
	if (m->exit_signal) {
		const char *s = proc_signal_name(m->exit_signal, sigbuf, sizeof(sigbuf));
		f[1] = (struct vigil_field){.name = "signal", .type = VIGIL_FIELD_STRING,
					    .u.s = {s, strlen(s)}};
	}
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
	else
		m->settle_timer = loop_add_timer(engine_loop(m->engine), SETTLE_LIMIT_MS,
						 settle_limit_fired, m, NULL);
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

/* "exit 0, /data/export.json present (1.2 GB), no failure line" */
static char *reason_text(struct monitor *m)
{
	struct buf b;
	char tmp[160];
	unsigned dummy;

	buf_init(&b);
	if (m->timed_out) {
		buf_printf(&b, "timed out after %s (%s), ",
			   config_format_duration(m->mc->timeout_ms, tmp, sizeof(tmp)),
			   m->mc->on_timeout == ON_TIMEOUT_KILL ? "SIGKILL" : "SIGTERM");
	}
	exit_words(m, tmp, sizeof(tmp));
	buf_puts(&b, tmp);
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

static void emit_finished(struct monitor *m, enum outcome o)
{
	char sigbuf[32], msg[700];
	const char *sig = m->exit_signal ? proc_signal_name(m->exit_signal, sigbuf, sizeof(sigbuf)) : NULL;
	struct vigil_field f[6] = {
		{.name = "outcome", .type = VIGIL_FIELD_STRING,
		 .u.s = {outcome_name(o), strlen(outcome_name(o))}},
		{.name = "exit_code", .type = VIGIL_FIELD_NULL},
		{.name = "signal", .type = VIGIL_FIELD_NULL},
		{.name = "duration", .type = VIGIL_FIELD_DOUBLE,
		 .u.d = m->run ? (double)(m->end_mono - m->start_mono) / 1000.0 : 0},
		{.name = "reason", .type = VIGIL_FIELD_STRING,
		 .u.s = {m->reason, strlen(m->reason)}},
		{.name = "log_tail", .type = VIGIL_FIELD_STRINGS, .u.list = {m->tail, m->n_tail}},
	};

	if (m->exit_known && !m->exit_signal)
		f[1] = (struct vigil_field){.name = "exit_code", .type = VIGIL_FIELD_INT,
					    .u.i = m->exit_code};
	if (sig)
		f[2] = (struct vigil_field){.name = "signal", .type = VIGIL_FIELD_STRING,
					    .u.s = {sig, strlen(sig)}};
	snprintf(msg, sizeof(msg), "%s: %s", outcome_name(o), m->reason);
	struct vigil_event ev = {.kind = VIGIL_EV_FINISHED, .message = msg, .fields = f,
				 .n_fields = 6};
	monitor_record(m, "core", &ev);
}

static int64_t retry_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor *m = data;
	char err[256];

	(void)loop;
	(void)id;
	m->retry_timer = 0;
	if (monitor_spawn(m, err, sizeof(err)) != 0) {
		log_msg(LOG_LVL_ERR, m->name, "retry failed: %s", err);
		m->done = true;
		if (engine_hooks(m->engine)->monitor_done)
			engine_hooks(m->engine)->monitor_done(engine_hooks(m->engine)->data, m);
	}
	return LOOP_TIMER_DONE;
}

/* After a run: retry a failed command, wait for the next run of a recurring
 * target (pid_file, match), or end the monitor. */
static void after_run(struct monitor *m, enum outcome o)
{
	const struct engine_hooks *h = engine_hooks(m->engine);

	if (m->mc->command && (o == OUTCOME_FAILED || o == OUTCOME_UNKNOWN) &&
	    m->attempts <= m->mc->retry) {
		int64_t delay = m->mc->retry_delay_ms;

		for (int i = 1; i < m->attempts && delay < 3600000; i++)
			delay *= 2;
		log_msg(LOG_LVL_INFO, m->name, "attempt %d of %d failed; retrying in %lld ms",
			m->attempts, m->mc->retry + 1, (long long)delay);
		m->retry_timer = loop_add_timer(engine_loop(m->engine), delay, retry_fired, m, NULL);
		return;
	}
	if ((m->mc->pid_file || m->mc->match) && !m->single_run) {
		m->state = RUN_WAITING;
		monitor_save_state(m);
		return;
	}
	m->done = true;
	if (h->monitor_done)
		h->monitor_done(h->data, m);
}

static void monitor_finish(struct monitor *m)
{
	enum outcome o;

	cancel(m, &m->settle_timer);
	if (m->state == RUN_FINISHED)
		return;
	o = decide(m);
	free(m->reason);
	m->reason = reason_text(m);
	if (!m->reason)
		m->reason = strdup("");
	m->state = RUN_FINISHED;
	m->last_outcome = o;
	emit_finished(m, o);
	after_run(m, o);
}

/* The target cannot be found and never will be: end with outcome unknown. */
void monitor_lost(struct monitor *m, const char *why)
{
	if (m->state == RUN_ATTACHED || m->state == RUN_SETTLING || m->done)
		return;
	log_msg(LOG_LVL_ERR, m->name, "%s", why);
	reset_run_facts(m);
	m->reason = strdup(why);
	m->state = RUN_FINISHED;
	m->last_outcome = OUTCOME_UNKNOWN;
	m->lost = true;
	emit_finished(m, OUTCOME_UNKNOWN);
	m->done = true;
	if (engine_hooks(m->engine)->monitor_done)
		engine_hooks(m->engine)->monitor_done(engine_hooks(m->engine)->data, m);
}

int monitor_stop(struct monitor *m, bool force)
{
	if (m->state != RUN_ATTACHED)
		return -ESRCH;
	monitor_signal(m, force ? SIGKILL : SIGTERM);
	if (!force && m->kill_timer <= 0)
		m->kill_timer = loop_add_timer(engine_loop(m->engine), m->mc->kill_grace_ms,
					       kill_fired, m, NULL);
	return 0;
}
