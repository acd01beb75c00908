/* after = / after_any = of the agent's `command =` monitors: the run waits for
 * other jobs' current runs (the agent's monitors, or vigil run's jobs in its
 * state folder), then starts its command, or ends failed without it. The
 * following itself is engine/after.c's; here, when it begins and what its end
 * does to the entry. */
#include "agent_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/after.h"
#include "base/log.h"

struct entry_after {
	struct after_set set;
	struct agent *a;
	struct entry *en;
	bool following; /* agent_after_follow has begun */
};

bool agent_after_wanted(const struct entry *en)
{
	return en->mc.command && (en->mc.n_after || en->mc.n_after_any);
}

static int add_names(struct entry_after *ea, char **names, size_t n, bool any)
{
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++)
		rc = after_add(&ea->set, names[i], ea->a->state_dir, any);
	return rc;
}

static struct entry_after *entry_after_new(struct agent *a, struct entry *en)
{
	struct entry_after *ea = calloc(1, sizeof(*ea));

	if (!ea)
		return NULL;
	after_init(&ea->set);
	ea->a = a;
	ea->en = en;
	if (add_names(ea, en->mc.after, en->mc.n_after, false) ||
	    add_names(ea, en->mc.after_any, en->mc.n_after_any, true)) {
		after_free(&ea->set);
		free(ea);
		return NULL;
	}
	return ea;
}

void agent_after_begin(struct agent *a, struct entry *en)
{
	char names[600];

	en->after = entry_after_new(a, en);
	if (!en->after) {
		monitor_after_failed(en->m, "after: out of memory");
		return;
	}
	monitor_after_waiting(en->m, after_names(&en->after->set, names, sizeof(names)));
}

void agent_after_cancel(struct entry *en)
{
	if (!en->after)
		return;
	after_free(&en->after->set);
	free(en->after);
	en->after = NULL;
}

/* The wait is over: the command starts, or the run ends failed without it. */
static void wait_over(void *arg, bool ok, const char *reason)
{
	struct entry_after *ea = arg;
	struct agent *a = ea->a;
	struct entry *en = ea->en;

	agent_after_cancel(en); /* ea is gone; reason is the engine's, still there */
	if (ok)
		agent_entry_run(a, en);
	else
		monitor_after_failed(en->m, reason);
}

/* Does monitor `from` wait, through after = chains of the agent's monitors,
 * for `target`? (Depth-bounded: a cycle elsewhere ends the walk.) */
static bool waits_for(struct agent *a, const char *from, const char *target, int depth)
{
	struct entry *en = agent_entry_named(a, from);
	char **lists[2] = {en ? en->mc.after : NULL, en ? en->mc.after_any : NULL};
	size_t ns[2] = {en ? en->mc.n_after : 0, en ? en->mc.n_after_any : 0};

	for (int l = 0; l < 2; l++)
		for (size_t i = 0; i < ns[l]; i++)
			if (!strcmp(lists[l][i], target) ||
			    (depth < 32 && waits_for(a, lists[l][i], target, depth + 1)))
				return true;
	return false;
}

void agent_after_follow(struct entry *en)
{
	struct entry_after *ea = en->after;
	const char *name = monitor_name(en->m);
	size_t bad = 0;
	int rc;

	if (!ea || ea->following)
		return;
	ea->following = true;
	if (waits_for(ea->a, name, name, 0)) {
		/* it would wait for ever: a mistake in the files, said once */
		log_msg(LOG_LVL_ERR, name, "%s: after: a cycle: %s waits for itself", en->file,
			name);
		agent_after_cancel(en);
		monitor_after_failed(en->m, "after: a cycle: the job waits for itself");
		return;
	}
	/* A name that is no job is a mistake in the file: say which file. */
	if (after_check(&ea->set, name, &bad) != AFTER_OK)
		log_msg(LOG_LVL_ERR, name, "%s: after: %s", en->file, ea->set.v[bad].verdict);
	rc = after_start(&ea->set, ea->a->loop, wait_over, ea); /* ea may be gone now */
	if (rc != 0)
		log_msg(LOG_LVL_ERR, name, "cannot follow the jobs waited for: %s", strerror(-rc));
}

bool agent_after_stop(struct entry *en)
{
	if (!en->after)
		return false;
	agent_after_cancel(en);
	monitor_after_failed(en->m, "after: stopped while waiting");
	return true;
}
