/* Missed runs: a monitor with `every =` or `schedule =` whose runs start on
 * their own gets a `missed` event when no run started within every + grace,
 * or by a scheduled time + grace. */
#include "agent_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/state.h"


/* every = or schedule = on a monitor whose runs start on their own
 * (pid_file, match). */
static bool recurring(const struct entry *en)
{
	return (en->mc.every_ms > 0 || en->mc.schedule) && (en->mc.pid_file || en->mc.match);
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

/* The scheduled time after slot_s (seconds) and the delay until it plus the
 * grace; -1 when the schedule names no time to come (Feb 30). */
static int64_t schedule_due(struct entry *en, time_t slot_s, int64_t now_ms)
{
	time_t next = cron_next(&en->mc.schedule_cron, slot_s);

	if (next < 0) {
		log_msg(LOG_LVL_WARN, monitor_name(en->m),
			"schedule \"%s\" names no time in the next 5 years: no missed runs",
			en->mc.schedule);
		return -1;
	}
	en->missed_slot = next;
	int64_t due = (int64_t)next * 1000 + en->mc.grace_ms - now_ms;
	return due > 0 ? due : 0;
}

static void missed_emit_every(struct entry *en)
{
	char msg[200], every[32];
	struct vigil_field f[2] = {
		{.name = "every", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)en->mc.every_ms / 1000},
		{.name = "grace", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)en->mc.grace_ms / 1000},
	};
	struct vigil_event ev = {.kind = VIGIL_EV_MISSED, .message = msg, .fields = f,
				 .n_fields = 2};

	snprintf(msg, sizeof(msg), "no run started within %s (every) + grace",
		 config_format_duration(en->mc.every_ms, every, sizeof(every)));
	monitor_emit(en->m, NULL, &ev);
}

static void missed_emit_schedule(struct entry *en)
{
	char msg[400], at[32];
	struct tm tm;
	time_t slot = en->missed_slot;
	const char *sched = en->mc.schedule;
	struct vigil_field f[3] = {
		{.name = "schedule", .type = VIGIL_FIELD_STRING, .u.s = {sched, strlen(sched)}},
		{.name = "due", .type = VIGIL_FIELD_STRING},
		{.name = "grace", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)en->mc.grace_ms / 1000},
	};
	struct vigil_event ev = {.kind = VIGIL_EV_MISSED, .message = msg, .fields = f,
				 .n_fields = 3};

	if (!localtime_r(&slot, &tm) || !strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S%z", &tm))
		snprintf(at, sizeof(at), "%lld", (long long)slot);
	f[1].u.s = (struct vigil_bytes){at, strlen(at)};
	snprintf(msg, sizeof(msg), "no run started at %s (schedule \"%.200s\") + grace", at,
		 sched);
	monitor_emit(en->m, NULL, &ev);
}

/* No run started in time: say so, then again for the next period or
 * scheduled time at most (never a flood), until the next run's `attached`
 * re-arms. */
static int64_t missed_fired(struct loop *loop, int64_t id, void *data)
{
	struct entry *en = data;
	bool running = agent_process_uid(en) >= 0;

	(void)loop;
	(void)id;
	/* A long run still going is not a missed one (timeout is for that). */
	if (!en->mc.schedule) {
		if (!running)
			missed_emit_every(en);
		return en->mc.every_ms;
	}
	if (!running)
		missed_emit_schedule(en);
	int64_t due = schedule_due(en, en->missed_slot, now_wall_ms());
	if (due < 0)
		en->missed_timer = 0;
	return due < 0 ? LOOP_TIMER_DONE : due;
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
	if (en->mc.schedule) {
		/* a run that began up to `grace` before a scheduled time is that
		 * time's run (cron and clocks are not exact) */
		due = schedule_due(en, (time_t)((last_ms + en->mc.grace_ms) / 1000), now);
		if (due < 0)
			return;
	} else {
		due = last_ms + en->mc.every_ms + en->mc.grace_ms - now;
	}
	en->loop = a->loop;
	en->missed_timer = loop_add_timer(a->loop, due > 0 ? due : 0, missed_fired, en, NULL);
	if (en->missed_timer < 0) {
		log_msg(LOG_LVL_ERR, monitor_name(en->m), "cannot arm the missed-run timer");
		en->missed_timer = 0;
	}
}
