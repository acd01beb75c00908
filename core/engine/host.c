/* The host table: what plugins may ask of the core. Each call arrives with the
 * instance's ctx; fd watches and timers are recorded there so that destroying an
 * instance releases whatever it still holds. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "base/event_json.h"
#include "base/log.h"
#include "base/safe_file.h"

int ctx_init(struct vigil_ctx *ctx, struct engine *e, const char *label)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->engine = e;
	ctx->label = strdup(label);
	return ctx->label ? 0 : -ENOMEM;
}

void ctx_release(struct vigil_ctx *ctx)
{
	struct loop *loop = engine_loop(ctx->engine);

	for (size_t i = 0; i < ctx->n_watches; i++) {
		loop_del_fd(loop, ctx->watches[i]->fd);
		free(ctx->watches[i]);
	}
	free(ctx->watches);
	ctx->watches = NULL;
	ctx->n_watches = 0;
	/* The loop may run a finalizer later (mark-then-sweep): detach it first. */
	for (size_t i = 0; i < ctx->n_timers; i++) {
		ctx->timers[i]->ctx = NULL;
		loop_del_timer(loop, ctx->timers[i]->id);
	}
	free(ctx->timers);
	ctx->n_timers = 0;
	ctx->timers = NULL;
	free(ctx->label);
	ctx->label = NULL;
}

__attribute__((format(printf, 3, 4))) static void host_log(struct vigil_ctx *ctx,
							   enum vigil_log_level level,
							   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg((int)level, ctx->label, fmt, ap);
	va_end(ap);
}

static void fd_trampoline(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct ctx_watch *w = data;

	(void)loop;
	w->cb(w->data, fd, revents);
}

static struct ctx_watch *find_watch(struct vigil_ctx *ctx, int fd, size_t *idx)
{
	for (size_t i = 0; i < ctx->n_watches; i++)
		if (ctx->watches[i]->fd == fd) {
			*idx = i;
			return ctx->watches[i];
		}
	return NULL;
}

static int host_watch_fd(struct vigil_ctx *ctx, int fd, uint32_t events, vigil_fd_cb cb,
			 void *data)
{
	size_t idx;
	struct ctx_watch *w = find_watch(ctx, fd, &idx);

	if (!w) {
		struct ctx_watch **grown =
			realloc(ctx->watches, (ctx->n_watches + 1) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		ctx->watches = grown;
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		ctx->watches[ctx->n_watches++] = w;
	}
	w->fd = fd;
	w->cb = cb;
	w->data = data;
	return loop_add_fd(engine_loop(ctx->engine), fd, events, fd_trampoline, w);
}

static void host_unwatch_fd(struct vigil_ctx *ctx, int fd)
{
	size_t idx;
	struct ctx_watch *w = find_watch(ctx, fd, &idx);

	if (!w)
		return;
	loop_del_fd(engine_loop(ctx->engine), fd);
	free(w);
	ctx->watches[idx] = ctx->watches[--ctx->n_watches];
}

static int64_t timer_trampoline(struct loop *loop, int64_t id, void *data)
{
	struct ctx_timer *t = data;

	(void)loop;
	(void)id;
	return t->cb(t->data);
}

static void timer_finalize(void *data)
{
	struct ctx_timer *t = data;
	struct vigil_ctx *ctx = t->ctx;

	for (size_t i = 0; ctx && i < ctx->n_timers; i++)
		if (ctx->timers[i] == t) {
			ctx->timers[i] = ctx->timers[--ctx->n_timers];
			break;
		}
	free(t);
}

static int64_t host_add_timer(struct vigil_ctx *ctx, int64_t delay_ms, vigil_timer_cb cb,
			      void *data)
{
	struct ctx_timer *t = calloc(1, sizeof(*t));
	struct ctx_timer **grown = realloc(ctx->timers, (ctx->n_timers + 1) * sizeof(*grown));

	if (!t || !grown) {
		free(t);
		if (grown)
			ctx->timers = grown;
		return -ENOMEM;
	}
	ctx->timers = grown;
	t->ctx = ctx;
	t->cb = cb;
	t->data = data;
	t->id = loop_add_timer(engine_loop(ctx->engine), delay_ms < 0 ? 0 : delay_ms,
			       timer_trampoline, t, timer_finalize);
	if (t->id < 0) {
		int64_t rc = t->id;
		free(t);
		return rc;
	}
	ctx->timers[ctx->n_timers++] = t;
	return t->id;
}

static void host_cancel_timer(struct vigil_ctx *ctx, int64_t id)
{
	for (size_t i = 0; i < ctx->n_timers; i++)
		if (ctx->timers[i]->id == id) {
			loop_del_timer(engine_loop(ctx->engine), id);
			return;
		}
}

static int64_t host_now_ms(struct vigil_ctx *ctx)
{
	return loop_now_ms(engine_loop(ctx->engine));
}

/* A detector's field named like an envelope key would be dropped by the
 * encoder (a key is written once, the envelope's value first). The one
 * exception is an integer `pid`: by the ABI it is the envelope's pid. */
static bool field_reserved(const struct vigil_field *f)
{
	if (!f->name || !event_field_rename(f->name))
		return false;
	return strcmp(f->name, "pid") != 0 || f->type != VIGIL_FIELD_INT;
}

static size_t count_reserved(const struct vigil_event *ev)
{
	size_t n = 0;

	for (size_t i = 0; ev->fields && i < ev->n_fields; i++)
		n += field_reserved(&ev->fields[i]);
	return n;
}

/* Such a field is renamed ("host" -> "field_host", DESIGN.md "Events as
 * JSON") so its value reaches the notifiers; said once per instance. */
static void emit_renamed(struct vigil_ctx *ctx, const struct vigil_event *ev)
{
	struct vigil_field *f = malloc(ev->n_fields * sizeof(*f));
	struct vigil_event copy = *ev;

	if (!f) {
		monitor_emit(ctx->monitor, ctx->detector, ev); /* encoded without them */
		return;
	}
	memcpy(f, ev->fields, ev->n_fields * sizeof(*f));
	for (size_t i = 0; i < ev->n_fields; i++) {
		if (!field_reserved(&f[i]))
			continue;
		if (!ctx->warned_reserved)
			log_msg(LOG_LVL_WARN, ctx->label, "event field \"%s\" is an envelope key: "
				"sent as \"%s\" (said once)", f[i].name, event_field_rename(f[i].name));
		ctx->warned_reserved = true;
		f[i].name = event_field_rename(f[i].name);
	}
	copy.fields = f;
	monitor_emit(ctx->monitor, ctx->detector, &copy);
	free(f);
}

static void host_emit(struct vigil_ctx *ctx, const struct vigil_event *ev)
{
	if (!ctx->monitor)
		return;
	if (count_reserved(ev))
		emit_renamed(ctx, ev);
	else
		monitor_emit(ctx->monitor, ctx->detector, ev);
}

static void host_expect(struct vigil_ctx *ctx, enum vigil_criterion c)
{
	if (ctx->monitor)
		monitor_expect(ctx->monitor, ctx->detector, c);
}

static const struct vigil_target *host_target(struct vigil_ctx *ctx)
{
	static const struct vigil_target none;

	return ctx->monitor ? monitor_target(ctx->monitor) : &none;
}

static void host_attached(struct vigil_ctx *ctx, pid_t pid, uint64_t start_time,
			  const char *cmdline)
{
	if (ctx->monitor)
		monitor_attached(ctx->monitor, pid, start_time, cmdline);
}

static void host_exited(struct vigil_ctx *ctx, int code, int sig, int core_dumped)
{
	if (ctx->monitor)
		monitor_exited(ctx->monitor, code, sig, core_dumped);
}

static void host_lost(struct vigil_ctx *ctx, const char *why)
{
	if (ctx->monitor)
		monitor_lost(ctx->monitor, why);
}

static void host_settled(struct vigil_ctx *ctx)
{
	if (ctx->monitor)
		monitor_settled(ctx->monitor, ctx->detector);
}

static void host_delivered(struct vigil_ctx *ctx, uint64_t token, enum vigil_delivery result,
			   const char *detail, int64_t retry_after_ms)
{
	if (ctx->notifier)
		notifier_delivered(ctx->notifier, token, result, detail, retry_after_ms);
}

static const char *host_hostname(struct vigil_ctx *ctx)
{
	return engine_hostname(ctx->engine);
}

static void host_log_tail(struct vigil_ctx *ctx, const struct vigil_bytes *lines, size_t n)
{
	if (ctx->monitor)
		monitor_log_tail(ctx->monitor, lines, n);
}

static void host_exit_facts(struct vigil_ctx *ctx, const struct vigil_field *f, size_t n)
{
	if (ctx->monitor)
		monitor_exit_facts(ctx->monitor, f, n);
}

/* A detector's saved state: STATE/NAME.SECTION.cursor, beside the run record
 * NAME.run (the label is "NAME/SECTION"; a further '/' becomes '_'). */
static int host_state_path(struct vigil_ctx *ctx, char *path, size_t len)
{
	const char *dir = engine_state_dir(ctx->engine);
	char *slash;

	if (!dir || !ctx->monitor)
		return -ENOENT;
	if ((size_t)snprintf(path, len, "%s/%s.cursor", dir, ctx->label) >= len)
		return -ENAMETOOLONG;
	slash = path + strlen(dir) + 1;
	for (bool first = true; (slash = strchr(slash, '/')); first = false)
		*slash = first ? '.' : '_';
	return 0;
}

static int host_save_state(struct vigil_ctx *ctx, const void *blob, size_t len)
{
	char path[4096], err[256];
	int rc = host_state_path(ctx, path, sizeof(path));

	return rc < 0 ? rc : safe_file_replace(path, blob, len, 0600, err, sizeof(err));
}

static ssize_t host_load_state(struct vigil_ctx *ctx, void *buf, size_t len)
{
	char path[4096];
	int rc = host_state_path(ctx, path, sizeof(path));
	ssize_t n;

	if (rc < 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len);
	rc = errno;
	close(fd);
	return n < 0 ? -rc : n;
}

static void *host_shared(struct vigil_ctx *ctx)
{
	return ctx->shared;
}

const struct vigil_host engine_host = {
	.version = VIGIL_HOST_VERSION,
	.size = sizeof(struct vigil_host),
	.log = host_log,
	.watch_fd = host_watch_fd,
	.unwatch_fd = host_unwatch_fd,
	.add_timer = host_add_timer,
	.cancel_timer = host_cancel_timer,
	.now_ms = host_now_ms,
	.emit = host_emit,
	.expect = host_expect,
	.target = host_target,
	.attached = host_attached,
	.exited = host_exited,
	.lost = host_lost,
	.settled = host_settled,
	.delivered = host_delivered,
	.hostname = host_hostname,
	.log_tail = host_log_tail,
	.shared = host_shared,
	.exit_facts = host_exit_facts,
	.save_state = host_save_state,
	.load_state = host_load_state,
};
