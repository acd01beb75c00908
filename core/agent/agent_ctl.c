/* The agent's answers to control-socket requests (see control.h). A peer sees
 * the monitors of its files and of its processes; root and group vigil see all. */
#include "agent_internal.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "base/log.h"
#include "base/state.h"

static bool visible(struct entry *en, const struct control_peer *p)
{
	return p->privileged || en->uid == p->uid || agent_process_uid(en) == (long long)p->uid;
}

static void entry_record(struct agent *a, struct entry *en, struct run_record *r)
{
	if (!a->state_dir || state_read(a->state_dir, monitor_name(en->m), r) != 0) {
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", monitor_name(en->m));
		snprintf(r->state, sizeof(r->state), "waiting");
		r->exit_code = -1;
		r->progress = -1;
		r->owner_pid = getpid();
	}
	r->uid = en->uid;
}

static void agent_ctl_status(void *ctx, const struct control_peer *p, const char *name,
			     struct buf *out)
{
	struct agent *a = ctx;
	struct buf body = BUF_INIT;
	size_t shown = 0;

	for (size_t i = 0; i < a->n; i++) {
		struct run_record r;

		if ((name && strcmp(name, monitor_name(a->v[i]->m)) != 0) || !visible(a->v[i], p))
			continue;
		entry_record(a, a->v[i], &r);
		control_put_record(&body, &r);
		shown++;
	}
	if (name && !shown)
		buf_printf(out, "error: no monitor named \"%s\"\n", name);
	else
		buf_printf(out, "ok pid=%d monitors=%zu\n%s", (int)getpid(), shown, buf_cstr(&body));
	buf_free(&body);
}

static void agent_ctl_stop(void *ctx, const struct control_peer *p, const char *name, bool force,
			   struct buf *out)
{
	struct agent *a = ctx;
	struct entry *en = agent_entry_named(a, name);
	const struct vigil_target *t;
	long long uid;

	/* A monitor the peer may not see does not exist for it. */
	if (!en || !visible(en, p)) {
		buf_printf(out, "error: no monitor named \"%s\"\n", name);
		return;
	}
	if (agent_after_stop(en)) { /* waiting for other jobs: no process yet */
		log_msg(LOG_LVL_INFO, name, "stopped while waiting (asked by uid %u, pid %d)",
			(unsigned)p->uid, (int)p->pid);
		buf_printf(out, "ok pid=0 start_time=0 run=%llu signal=none\n",
			   (unsigned long long)monitor_run_number(en->m));
		return;
	}
	uid = agent_process_uid(en);
	t = monitor_target(en->m);
	if (uid < 0) {
		buf_printf(out, "error: %s is not running\n", name);
	} else if (!p->privileged && uid != (long long)p->uid) {
		buf_printf(out, "error: permission denied: %s runs as uid %lld\n", name, uid);
	} else if (monitor_stop(en->m, force) != 0) {
		buf_printf(out, "error: %s is not running\n", name);
	} else {
		log_msg(LOG_LVL_INFO, name, "%s sent to pid %d (asked by uid %u, pid %d)",
			force ? "SIGKILL" : "SIGTERM", (int)t->pid, (unsigned)p->uid, (int)p->pid);
		buf_printf(out, "ok pid=%d start_time=%llu run=%llu signal=%s\n", (int)t->pid,
			   (unsigned long long)t->start_time,
			   (unsigned long long)monitor_run_number(en->m), force ? "SIGKILL" : "SIGTERM");
	}
}

static void agent_ctl_reload(void *ctx, const struct control_peer *p, struct buf *out)
{
	struct agent *a = ctx;
	if (!p->privileged) {
		buf_puts(out, "error: permission denied: reload is for root and group vigil\n");
		return;
	}
	log_info("reload asked by uid %u (pid %d)", (unsigned)p->uid, (int)p->pid);
	agent_reload(a, false, out);
}

/* Validated in a scratch engine: a peer's check never changes the agent. */
static void agent_ctl_check(void *ctx, const struct control_peer *p, const char *file,
			    const char *text, size_t len, struct buf *out)
{
	struct agent *a = ctx;
	struct engine *e;
	struct diag d = {0};
	struct entry *en;

	if (agent_nul_refused(file, text, len, &d)) {
		buf_printf(out, "error: invalid\n%s\n", d.lines[0]);
		diag_free(&d);
		return;
	}
	e = engine_new(a->loop, &a->plugins, NULL);
	if (!e) {
		buf_puts(out, "error: out of memory\n");
		return;
	}
	for (size_t i = 0; i < a->ac.n_notifiers; i++)
		engine_define_notifier(e, a->ac.file, &a->ac.notifiers[i], &d);
	en = agent_entry_build(a, e, file, text, p->uid, &d);
	buf_puts(out, en ? "ok\n" : "error: invalid\n");
	for (size_t i = 0; i < d.n; i++)
		buf_printf(out, "%s\n", d.lines[i]);
	agent_entry_free(en);
	diag_free(&d);
	engine_free(e);
}

const struct control_handlers agent_ctl_handlers = {
	.status = agent_ctl_status,
	.stop = agent_ctl_stop,
	.reload = agent_ctl_reload,
	.check = agent_ctl_check,
};
