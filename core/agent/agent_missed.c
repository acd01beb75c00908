/* Missed runs: a monitor with `every =` whose runs start on their own gets a
 * `missed` event when no run started within every + grace. */
#include "agent_internal.h"

#include <stdio.h>
#include <time.h>

#include "base/log.h"
#include "base/state.h"


/* every = on a monitor whose runs start on their own (pid_file, match). */
static bool recurring(const struct entry *en)
{
	return en->mc.every_ms > 0 && (en->mc.pid_file || en->mc.match);
}

void agent_missed_cancel(struct entry *en)
{
	if (en->missed_timer > 0)
		loop_del_timer(en->loop, en->missed_timer);
	en->missed_timer = 0;
}

static int64_t now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* No run started within every + grace: say so, then again one period later
 * at most (never a flood), until the next run's `attached` re-arms. */
static int64_t missed_fired(struct loop *loop, int64_t id, void *data)
{
	struct entry *en = data;
	char msg[200], every[32];
	struct vigil_field f[2] = {
		{.name = "every", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)en->mc.every_ms / 1000},
		{.name = "grace", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)en->mc.grace_ms / 1000},
	};
	struct vigil_event ev = {.kind = VIGIL_EV_MISSED, .message = msg, .fields = f,
				 .n_fields = 2};

	(void)loop;
	(void)id;
	/* A long run still going is not a missed one (timeout is for that). */
	if (agent_process_uid(en) >= 0)
		return en->mc.every_ms;
	snprintf(msg, sizeof(msg), "no run started within %s (every) + grace",
		 config_format_duration(en->mc.every_ms, every, sizeof(every)));
	monitor_emit(en->m, NULL, &ev);
	return en->mc.every_ms;
}

/* The last run's start: the record of this or an earlier life of the agent;
 * none (-1): the agent's start counts as one. */
static int64_t last_start_ms(struct agent *a, struct entry *en)
{
	struct run_record r;

	if (a->state_dir && state_read(a->state_dir, monitor_name(en->m), &r) == 0 &&
	    r.started_ms > 0)
		return r.started_ms;
	return -1;
}

void agent_missed_arm(struct agent *a, struct entry *en, int64_t last_ms)
{
	int64_t now = now_wall_ms(), due;

	agent_missed_cancel(en);
	if (!recurring(en))
		return;
	if (last_ms < 0)
		last_ms = last_start_ms(a, en);
	if (last_ms < 0 || last_ms > now)
		last_ms = now;
	due = last_ms + en->mc.every_ms + en->mc.grace_ms - now;
	en->loop = a->loop;
	en->missed_timer = loop_add_timer(a->loop, due > 0 ? due : 0, missed_fired, en, NULL);
	if (en->missed_timer < 0) {
		log_msg(LOG_LVL_ERR, monitor_name(en->m), "cannot arm the missed-run timer");
		en->missed_timer = 0;
	}
}
