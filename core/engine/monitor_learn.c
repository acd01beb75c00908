/* Learned from the monitor's run history (base/history.h) when a run begins:
 * expected = auto (the p95 of the last successful runs times expected_margin)
 * and min_duration = auto (their p5 divided by expected_margin: a run that
 * fast is suspicious, yet a usual fast run is not flagged), each after
 * HISTORY_LEARN_MIN successful runs. Also vigil run --after's two steps. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/history.h"
#include "base/log.h"
#include "monitor_internal.h"

/* Both learned limits from one read of the history: nothing to read when no
 * state folder (a bare `vigil watch PID`). */
static void learn_from_history(struct monitor *m, size_t *n_ok)
{
	const char *sdir = engine_state_dir(m->engine);
	double margin = m->mc->expected_margin;
	char dir[PATH_MAX];
	struct history h;

	*n_ok = 0;
	if (!sdir || history_read(history_dir(sdir, dir, sizeof(dir)), m->name, &h) != 0)
		return;
	if (m->mc->expected_auto)
		m->learned_expected_ms = history_learned_expected_ms(&h, margin, n_ok);
	if (m->mc->min_duration_auto)
		m->min_duration_ms = history_learned_min_ms(&h, margin, n_ok);
	history_free(&h);
}

int64_t monitor_learn_expected(struct monitor *m)
{
	size_t n_ok = 0;

	m->learned_expected_ms = 0;
	m->min_duration_ms = m->mc->min_duration_auto ? 0 : m->mc->min_duration_ms;
	if (m->mc->expected_auto || m->mc->min_duration_auto)
		learn_from_history(m, &n_ok);
	if (n_ok < HISTORY_LEARN_MIN && (m->mc->expected_auto || m->mc->min_duration_auto))
		log_msg(LOG_LVL_DEBUG, m->name, "learning durations (%zu/%d runs)", n_ok,
			HISTORY_LEARN_MIN);
	return monitor_expected_ms(m);
}

/* The run's duration against min_duration: a fact in the reason, not a
 * verdict (the outcome stays its criteria's). */
void monitor_learn_too_fast(struct monitor *m)
{
	int64_t ran = m->end_mono - m->run_start_mono;
	char a[32], b[32], *reason;

	m->too_fast = m->min_duration_ms > 0 && ran < m->min_duration_ms;
	if (!m->too_fast || !m->reason)
		return;
	if (asprintf(&reason, "%s, too_fast (%s, min_duration %s)", m->reason,
		     config_format_duration(ran, a, sizeof(a)),
		     config_format_duration(m->min_duration_ms, b, sizeof(b))) < 0)
		return;
	free(m->reason);
	m->reason = reason;
}

size_t monitor_too_fast_field(const struct monitor *m, struct vigil_field *f)
{
	if (!m->too_fast)
		return 0;
	*f = (struct vigil_field){.name = "too_fast", .type = VIGIL_FIELD_BOOL, .u.b = true};
	return 1;
}

/* ------------------------------------------------------------ vigil run --after */
/* The wait belongs to the run to come: its events carry that run's number
 * (monitor_attached numbers the run again when the command starts). */
void monitor_after_waiting(struct monitor *m, const char *what)
{
	char msg[600];
	struct vigil_field f = {.name = "for", .type = VIGIL_FIELD_STRING,
				.u.s = {what, strlen(what)}};
	struct vigil_event ev = {.kind = VIGIL_EV_WAITING, .message = msg, .fields = &f,
				 .n_fields = 1};

	free(m->waiting_for);
	m->waiting_for = strdup(what);
	snprintf(msg, sizeof(msg), "waiting for %s", what);
	m->run++;
	monitor_record(m, "core", &ev);
	monitor_save_state(m); /* status says so now */
	m->run--;
}

/* A predecessor failed: the run ends before its command starts. */
void monitor_after_failed(struct monitor *m, const char *why)
{
	log_msg(LOG_LVL_WARN, m->name, "%s: not starting the command", why);
	m->run++;
	monitor_finish_unattached(m, OUTCOME_FAILED, why);
}
