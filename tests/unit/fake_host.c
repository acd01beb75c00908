/* A host for plugin unit tests: the real loop behind struct vigil_host, and a
 * record of everything the plugin reports. See fake_host.h. */
#include "fake_host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/config.h" /* not the generated config.h of the build root */
#include "base/diag.h"
#include "base/loop.h"

/* What the pid detector tells one instance's host: its target and its run. */
struct fh_run {
	struct vigil_target target;
	char *target_log_path;
	bool attached, exited;
	pid_t pid;
	uint64_t start_time;
	char *cmdline;
	int exit_code, exit_signal, core_dumped;
	char *lost;
	unsigned settled;
};

struct vigil_ctx {
	struct fake_host *fh;
	const struct vigil_plugin *plugin; /* whose shared state host->shared() gives */
	struct fh_run run;
};

/* One plugin's shared state, created on the first config or create for it. */
struct fh_shared {
	const struct vigil_plugin *plugin;
	void *shared;
	struct vigil_ctx *ctx;
};

/* Adapts the plugin's callback shapes to the loop's. */
struct fh_watch {
	vigil_fd_cb cb;
	void *data;
};

struct fh_timer {
	vigil_timer_cb cb;
	void *data;
};

struct fh_config {
	struct vigil_config cfg;
	struct vigil_value *values;
	size_t n_values;
};

struct fh_instance {
	const struct vigil_plugin *plugin;
	void *instance;
};

struct fake_host {
	struct vigil_host api;
	struct vigil_ctx ctx;
	struct loop *loop;
	struct vigil_ctx **extra_ctx; /* fake_host_new_ctx(), and shared states' */
	size_t n_extra_ctx;
	struct fh_shared *shared;
	size_t n_shared;

	struct fh_watch **watches; /* indexed by fd */
	size_t n_watches;
	struct fh_config **configs;
	size_t n_configs;
	struct fh_instance *instances;
	size_t n_instances;

	struct fake_event *events;
	size_t n_events;
	struct fake_delivery *deliveries;
	size_t n_deliveries;
	unsigned criteria;
	struct vigil_bytes *tail;
	size_t n_tail;
	struct buf last_error;
};

static void fh_fail(struct fake_host *fh, const struct diag *d, const char *extra);

static struct fake_host *ctx_fh(struct vigil_ctx *ctx)
{
	return ctx->fh;
}

/* Tests are allowed to die on out-of-memory: a fake host has nowhere to
 * report it, and a silent half-recorded event would only mislead. */
static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fputs("fake_host: out of memory\n", stderr);
		abort();
	}
	return p;
}

static char *xstrdup(const char *s)
{
	return s ? strcpy(xrealloc(NULL, strlen(s) + 1), s) : NULL;
}

/* A copy of len bytes, NUL-terminated for the tests' convenience. */
static char *xmemdup(const char *p, size_t len)
{
	char *c = xrealloc(NULL, len + 1);

	if (len)
		memcpy(c, p, len);
	c[len] = '\0';
	return c;
}

/* ------------------------------------------------------------- host calls */

__attribute__((format(printf, 3, 4))) static void fh_log(struct vigil_ctx *ctx,
							  enum vigil_log_level level,
							  const char *fmt, ...)
{
	const char *name = level <= VIGIL_LOG_ERR    ? "error"
			   : level == VIGIL_LOG_WARN ? "warning"
			   : level == VIGIL_LOG_INFO ? "info"
						     : "debug";
	va_list ap;

	(void)ctx;
	fprintf(stderr, "[%s] ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void fh_fd_trampoline(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct fh_watch *w = data;

	(void)loop;
	w->cb(w->data, fd, revents);
}

static int fh_watch_fd(struct vigil_ctx *ctx, int fd, uint32_t events, vigil_fd_cb cb,
		       void *data)
{
	struct fake_host *fh = ctx_fh(ctx);
	struct fh_watch *w;
	int r;

	if (fd < 0 || !cb)
		return -EINVAL;
	if ((size_t)fd >= fh->n_watches) {
		size_t n = (size_t)fd + 16;

		fh->watches = xrealloc(fh->watches, n * sizeof(*fh->watches));
		memset(fh->watches + fh->n_watches, 0,
		       (n - fh->n_watches) * sizeof(*fh->watches));
		fh->n_watches = n;
	}
	w = fh->watches[fd];
	if (!w)
		w = xrealloc(NULL, sizeof(*w));
	w->cb = cb;
	w->data = data;
	r = loop_add_fd(fh->loop, fd, events, fh_fd_trampoline, w);
	if (r < 0 && !fh->watches[fd])
		free(w);
	else
		fh->watches[fd] = w;
	return r;
}

static void fh_unwatch_fd(struct vigil_ctx *ctx, int fd)
{
	struct fake_host *fh = ctx_fh(ctx);

	if (fd < 0 || (size_t)fd >= fh->n_watches || !fh->watches[fd])
		return;
	loop_del_fd(fh->loop, fd);
	free(fh->watches[fd]);
	fh->watches[fd] = NULL;
}

static int64_t fh_timer_trampoline(struct loop *loop, int64_t id, void *data)
{
	struct fh_timer *t = data;

	(void)loop;
	(void)id;
	return t->cb(t->data);
}

static int64_t fh_add_timer(struct vigil_ctx *ctx, int64_t delay_ms, vigil_timer_cb cb,
			    void *data)
{
	struct fh_timer *t = xrealloc(NULL, sizeof(*t));
	int64_t id;

	t->cb = cb;
	t->data = data;
	id = loop_add_timer(ctx_fh(ctx)->loop, delay_ms, fh_timer_trampoline, t, free);
	if (id < 0)
		free(t);
	return id;
}

static void fh_cancel_timer(struct vigil_ctx *ctx, int64_t id)
{
	loop_del_timer(ctx_fh(ctx)->loop, id);
}

static int64_t fh_now_ms(struct vigil_ctx *ctx)
{
	return loop_now_ms(ctx_fh(ctx)->loop);
}

static void field_copy(struct vigil_field *dst, const struct vigil_field *src)
{
	*dst = *src;
	dst->name = xstrdup(src->name);
	if (src->type == VIGIL_FIELD_STRING) {
		dst->u.s.ptr = xmemdup(src->u.s.ptr, src->u.s.len);
	} else if (src->type == VIGIL_FIELD_STRINGS) {
		struct vigil_bytes *v = xrealloc(NULL, src->u.list.n * sizeof(*v));

		for (size_t i = 0; i < src->u.list.n; i++) {
			v[i].len = src->u.list.v[i].len;
			v[i].ptr = xmemdup(src->u.list.v[i].ptr, v[i].len);
		}
		dst->u.list.v = v;
	}
}

static void field_free(struct vigil_field *f)
{
	free((char *)f->name);
	if (f->type == VIGIL_FIELD_STRING) {
		free((char *)f->u.s.ptr);
	} else if (f->type == VIGIL_FIELD_STRINGS) {
		for (size_t i = 0; i < f->u.list.n; i++)
			free((char *)f->u.list.v[i].ptr);
		free((struct vigil_bytes *)f->u.list.v);
	}
}

static void fh_emit(struct vigil_ctx *ctx, const struct vigil_event *ev)
{
	struct fake_host *fh = ctx_fh(ctx);
	struct fake_event *e;

	fh->events = xrealloc(fh->events, (fh->n_events + 1) * sizeof(*fh->events));
	e = &fh->events[fh->n_events++];
	e->kind = xstrdup(ev->kind);
	e->message = xstrdup(ev->message);
	e->n_fields = ev->n_fields;
	e->fields = xrealloc(NULL, ev->n_fields * sizeof(*e->fields));
	for (size_t i = 0; i < ev->n_fields; i++)
		field_copy(&e->fields[i], &ev->fields[i]);
}

static void fh_expect(struct vigil_ctx *ctx, enum vigil_criterion c)
{
	ctx_fh(ctx)->criteria |= 1u << c;
}

static const struct vigil_target *fh_target(struct vigil_ctx *ctx)
{
	return &ctx->run.target;
}

static void fh_attached(struct vigil_ctx *ctx, pid_t pid, uint64_t start_time,
			const char *cmdline)
{
	struct fh_run *r = &ctx->run;

	r->attached = true;
	r->pid = pid;
	r->start_time = start_time;
	free(r->cmdline);
	r->cmdline = xstrdup(cmdline);
	/* As the core does: the target is now this process. */
	r->target.pid = pid;
	r->target.start_time = start_time;
}

static void fh_exited(struct vigil_ctx *ctx, int exit_code, int sig, int core_dumped)
{
	struct fh_run *r = &ctx->run;

	r->exited = true;
	r->exit_code = exit_code;
	r->exit_signal = sig;
	r->core_dumped = core_dumped;
}

static void fh_lost(struct vigil_ctx *ctx, const char *why)
{
	free(ctx->run.lost);
	ctx->run.lost = xstrdup(why ? why : "");
}

static void fh_settled(struct vigil_ctx *ctx)
{
	ctx->run.settled++;
}

static void fh_delivered(struct vigil_ctx *ctx, uint64_t token, enum vigil_delivery result,
			 const char *detail, int64_t retry_after_ms)
{
	struct fake_host *fh = ctx_fh(ctx);
	struct fake_delivery *d;

	fh->deliveries = xrealloc(fh->deliveries,
				  (fh->n_deliveries + 1) * sizeof(*fh->deliveries));
	d = &fh->deliveries[fh->n_deliveries++];
	d->token = token;
	d->result = result;
	d->detail = xstrdup(detail);
	d->retry_after_ms = retry_after_ms;
}

static const char *fh_hostname(struct vigil_ctx *ctx)
{
	(void)ctx;
	return "testhost";
}

static void tail_free(struct fake_host *fh)
{
	for (size_t i = 0; i < fh->n_tail; i++)
		free((char *)fh->tail[i].ptr);
	free(fh->tail);
	fh->tail = NULL;
	fh->n_tail = 0;
}

/* Copied (not just accepted) so that ASan sees a plugin passing bad pointers. */
static void fh_log_tail(struct vigil_ctx *ctx, const struct vigil_bytes *lines, size_t n)
{
	struct fake_host *fh = ctx_fh(ctx);

	tail_free(fh);
	fh->tail = xrealloc(NULL, n * sizeof(*fh->tail));
	for (size_t i = 0; i < n; i++) {
		fh->tail[i].ptr = xmemdup(lines[i].ptr, lines[i].len);
		fh->tail[i].len = lines[i].len;
	}
	fh->n_tail = n;
}

static void *fh_shared_of(struct vigil_ctx *ctx)
{
	struct fake_host *fh = ctx_fh(ctx);

	for (size_t i = 0; i < fh->n_shared; i++)
		if (fh->shared[i].plugin == ctx->plugin)
			return fh->shared[i].shared;
	return NULL;
}

/* -------------------------------------------------------------- lifetime */

struct fake_host *fake_host_new(void)
{
	struct fake_host *fh = calloc(1, sizeof(*fh));

	if (!fh)
		return NULL;
	fh->loop = loop_new();
	if (!fh->loop) {
		free(fh);
		return NULL;
	}
	fh->ctx.fh = fh;
	fh->api = (struct vigil_host){
		.version = VIGIL_HOST_VERSION,
		.size = sizeof(struct vigil_host),
		.log = fh_log,
		.watch_fd = fh_watch_fd,
		.unwatch_fd = fh_unwatch_fd,
		.add_timer = fh_add_timer,
		.cancel_timer = fh_cancel_timer,
		.now_ms = fh_now_ms,
		.emit = fh_emit,
		.expect = fh_expect,
		.target = fh_target,
		.attached = fh_attached,
		.exited = fh_exited,
		.lost = fh_lost,
		.settled = fh_settled,
		.delivered = fh_delivered,
		.hostname = fh_hostname,
		.log_tail = fh_log_tail,
		.shared = fh_shared_of,
	};
	buf_init(&fh->last_error);
	return fh;
}

static void fh_free_records(struct fake_host *fh)
{
	for (size_t i = 0; i < fh->n_events; i++) {
		struct fake_event *e = &fh->events[i];

		for (size_t j = 0; j < e->n_fields; j++)
			field_free(&e->fields[j]);
		free(e->fields);
		free(e->kind);
		free(e->message);
	}
	free(fh->events);
	for (size_t i = 0; i < fh->n_deliveries; i++)
		free(fh->deliveries[i].detail);
	free(fh->deliveries);
	tail_free(fh);
}

static void fh_run_free(struct fh_run *r)
{
	free(r->cmdline);
	free(r->lost);
	free(r->target_log_path);
}

void fake_host_free(struct fake_host *fh)
{
	if (!fh)
		return;
	/* destroy() may still unwatch fds and cancel timers: the loop must
	 * outlive every instance. Newest first, like a stack. */
	for (size_t i = fh->n_instances; i-- > 0;)
		fh->instances[i].plugin->destroy(fh->instances[i].instance);
	free(fh->instances);
	/* As the core does: shared state outlives every instance using it. */
	for (size_t i = fh->n_shared; i-- > 0;)
		fh->shared[i].plugin->shared_destroy(fh->shared[i].shared);
	free(fh->shared);
	loop_free(fh->loop); /* frees the timer trampolines via their finalizer */
	for (size_t i = 0; i < fh->n_watches; i++)
		free(fh->watches[i]);
	free(fh->watches);
	for (size_t i = 0; i < fh->n_configs; i++) {
		config_values_free(fh->configs[i]->values, fh->configs[i]->n_values);
		free((char *)fh->configs[i]->cfg.section);
		free(fh->configs[i]);
	}
	free(fh->configs);
	fh_free_records(fh);
	fh_run_free(&fh->ctx.run);
	for (size_t i = 0; i < fh->n_extra_ctx; i++) {
		fh_run_free(&fh->extra_ctx[i]->run);
		free(fh->extra_ctx[i]);
	}
	free(fh->extra_ctx);
	buf_free(&fh->last_error);
	free(fh);
}

const struct vigil_host *fake_host_api(struct fake_host *fh)
{
	return &fh->api;
}

struct vigil_ctx *fake_host_ctx(struct fake_host *fh)
{
	return &fh->ctx;
}

struct loop *fake_host_loop(struct fake_host *fh)
{
	return fh->loop;
}

struct vigil_ctx *fake_host_new_ctx(struct fake_host *fh)
{
	struct vigil_ctx *ctx = xrealloc(NULL, sizeof(*ctx));

	*ctx = (struct vigil_ctx){.fh = fh, .plugin = fh->ctx.plugin};
	fh->extra_ctx = xrealloc(fh->extra_ctx, (fh->n_extra_ctx + 1) * sizeof(*fh->extra_ctx));
	fh->extra_ctx[fh->n_extra_ctx++] = ctx;
	return ctx;
}

void fake_ctx_set_target(struct vigil_ctx *ctx, const struct vigil_target *t)
{
	struct fh_run *r = &ctx->run;

	free(r->target_log_path);
	r->target = *t;
	r->target_log_path = xstrdup(t->log_path);
	r->target.log_path = r->target_log_path;
}

void fake_host_set_target(struct fake_host *fh, const struct vigil_target *t)
{
	fake_ctx_set_target(&fh->ctx, t);
}

/* As core/engine.c: only a descriptor whose size covers both fields has them. */
static bool fh_has_shared(const struct vigil_plugin *p)
{
	size_t end = offsetof(struct vigil_plugin, shared_destroy) + sizeof(p->shared_destroy);

	return p->size >= end && p->shared_create && p->shared_destroy;
}

void *fake_host_shared(struct fake_host *fh, const struct vigil_plugin *p)
{
	for (size_t i = 0; i < fh->n_shared; i++)
		if (fh->shared[i].plugin == p)
			return fh->shared[i].shared;
	return NULL;
}

/* Create p's shared state once per fake host, before its first create(),
 * with a ctx of its own, as the core does. 0 or -errno, the reason kept. */
static int fh_ensure_shared(struct fake_host *fh, const struct vigil_plugin *p)
{
	struct vigil_ctx *ctx;
	char err[512] = "";
	void *shared = NULL;

	if (!fh_has_shared(p) || fake_host_shared(fh, p))
		return 0;
	ctx = fake_host_new_ctx(fh);
	ctx->plugin = p;
	if (p->shared_create(&fh->api, ctx, &shared, err, sizeof(err)) != 0) {
		fh_fail(fh, NULL, err[0] ? err : "shared_create failed without a message");
		return -EINVAL;
	}
	fh->shared = xrealloc(fh->shared, (fh->n_shared + 1) * sizeof(*fh->shared));
	fh->shared[fh->n_shared++] = (struct fh_shared){p, shared, ctx};
	return 0;
}

/* ---------------------------------------------------------------- config */

static void fh_fail(struct fake_host *fh, const struct diag *d, const char *extra)
{
	buf_reset(&fh->last_error);
	for (size_t i = 0; d && i < d->n; i++)
		buf_printf(&fh->last_error, "%s%s", i ? "\n" : "", d->lines[i]);
	if (extra)
		buf_printf(&fh->last_error, "%s%s", fh->last_error.len ? "\n" : "", extra);
	fprintf(stderr, "fake_host: %s\n", buf_cstr(&fh->last_error));
}

static const struct raw_section *find_section(const struct raw_ini *ini, const char *name)
{
	for (size_t i = 0; i < ini->n_sections; i++)
		if (strcmp(ini->sections[i].name, name) == 0)
			return &ini->sections[i];
	return NULL;
}

/* Parse and validate; the values are kept in a new fh_config. */
static struct fh_config *fh_config_build(struct fake_host *fh, const struct vigil_plugin *p,
					 const char *text, struct diag *d)
{
	struct raw_ini ini = {0};
	const struct raw_section *s;
	struct fh_config *c = NULL;
	struct vigil_value *values = NULL;
	size_t n = 0;

	if (config_read_ini_string("<test>", text, &ini, d) < 0 || d->errors)
		goto out;
	s = find_section(&ini, p->name);
	if (!s) {
		diag_add(d, "<test>", 0, p->name, NULL, "section missing after parsing");
		goto out;
	}
	if (config_check_options("<test>", s, p->options, &values, &n, d) < 0 || d->errors) {
		config_values_free(values, n);
		goto out;
	}
	c = xrealloc(NULL, sizeof(*c));
	c->values = values;
	c->n_values = n;
	c->cfg = (struct vigil_config){
		.file = "<test>",
		.section = xstrdup(p->name),
		.monitor = "test",
		.values = values,
		.n_values = n,
	};
out:
	raw_ini_free(&ini);
	return c;
}

const struct vigil_config *fake_host_config(struct fake_host *fh, const struct vigil_plugin *p,
					    const char *const *lines)
{
	struct buf text = BUF_INIT;
	struct diag d = {0};
	struct fh_config *c;

	if (fh_ensure_shared(fh, p) < 0)
		return NULL;
	/* The host's own ctx belongs to the plugin last configured. */
	fh->ctx.plugin = p;
	buf_printf(&text, "[%s]\n", p->name);
	for (size_t i = 0; lines && lines[i]; i++)
		buf_printf(&text, "%s\n", lines[i]);
	c = fh_config_build(fh, p, buf_cstr(&text), &d);
	buf_free(&text);
	if (!c) {
		fh_fail(fh, &d, d.n ? NULL : "configuration refused without a diagnostic");
		diag_free(&d);
		return NULL;
	}
	diag_free(&d);
	fh->configs = xrealloc(fh->configs, (fh->n_configs + 1) * sizeof(*fh->configs));
	fh->configs[fh->n_configs++] = c;
	return &c->cfg;
}

const char *fake_host_last_error(struct fake_host *fh)
{
	return buf_cstr(&fh->last_error);
}

int fake_host_instantiate(struct fake_host *fh, const struct vigil_plugin *p,
			  const char *const *lines, void **instance)
{
	return fake_host_instantiate_ctx(fh, &fh->ctx, p, lines, instance);
}

int fake_host_instantiate_ctx(struct fake_host *fh, struct vigil_ctx *ctx,
			      const struct vigil_plugin *p, const char *const *lines,
			      void **instance)
{
	const struct vigil_config *cfg = fake_host_config(fh, p, lines);
	char err[512] = "";
	void *inst = NULL;
	int r;

	*instance = NULL;
	if (!cfg)
		return -EINVAL;
	ctx->plugin = p;
	r = p->create(&fh->api, ctx, cfg, &inst, err, sizeof(err));
	if (r < 0) {
		fh_fail(fh, NULL, err[0] ? err : "create failed without a message");
		return r;
	}
	fh->instances = xrealloc(fh->instances, (fh->n_instances + 1) * sizeof(*fh->instances));
	fh->instances[fh->n_instances++] = (struct fh_instance){p, inst};
	*instance = inst;
	if (p->start && (r = p->start(inst, err, sizeof(err))) < 0) {
		fh_fail(fh, NULL, err[0] ? err : "start failed without a message");
		return r; /* still destroyed by fake_host_free */
	}
	return 0;
}

/* -------------------------------------------------------------- records */

size_t fake_host_n_events(struct fake_host *fh)
{
	return fh->n_events;
}

const struct fake_event *fake_host_event(struct fake_host *fh, size_t i)
{
	return i < fh->n_events ? &fh->events[i] : NULL;
}

const struct fake_event *fake_host_find(struct fake_host *fh, const char *kind, size_t from)
{
	for (size_t i = from; i < fh->n_events; i++)
		if (fh->events[i].kind && strcmp(fh->events[i].kind, kind) == 0)
			return &fh->events[i];
	return NULL;
}

const struct vigil_field *fake_event_field(const struct fake_event *e, const char *name)
{
	for (size_t i = 0; e && i < e->n_fields; i++)
		if (e->fields[i].name && strcmp(e->fields[i].name, name) == 0)
			return &e->fields[i];
	return NULL;
}

unsigned fake_host_criteria(struct fake_host *fh)
{
	return fh->criteria;
}

bool fake_ctx_attached(struct vigil_ctx *ctx, pid_t *pid, uint64_t *start_time)
{
	const struct fh_run *r = &ctx->run;

	if (r->attached && pid)
		*pid = r->pid;
	if (r->attached && start_time)
		*start_time = r->start_time;
	return r->attached;
}

bool fake_ctx_exited(struct vigil_ctx *ctx, int *code, int *sig, int *core)
{
	const struct fh_run *r = &ctx->run;

	if (r->exited && code)
		*code = r->exit_code;
	if (r->exited && sig)
		*sig = r->exit_signal;
	if (r->exited && core)
		*core = r->core_dumped;
	return r->exited;
}

const char *fake_ctx_lost(struct vigil_ctx *ctx)
{
	return ctx->run.lost;
}

bool fake_host_attached(struct fake_host *fh, pid_t *pid, uint64_t *start_time)
{
	return fake_ctx_attached(&fh->ctx, pid, start_time);
}

bool fake_host_exited(struct fake_host *fh, int *code, int *sig, int *core)
{
	return fake_ctx_exited(&fh->ctx, code, sig, core);
}

const char *fake_host_lost(struct fake_host *fh)
{
	return fake_ctx_lost(&fh->ctx);
}

unsigned fake_host_settled_count(struct fake_host *fh)
{
	return fh->ctx.run.settled;
}

const struct vigil_bytes *fake_host_log_tail(struct fake_host *fh, size_t *n)
{
	*n = fh->n_tail;
	return fh->tail;
}

size_t fake_host_n_deliveries(struct fake_host *fh)
{
	return fh->n_deliveries;
}

const struct fake_delivery *fake_host_delivery(struct fake_host *fh, size_t i)
{
	return i < fh->n_deliveries ? &fh->deliveries[i] : NULL;
}

/* ------------------------------------------------------------------ run */

bool fake_host_run_until(struct fake_host *fh, bool (*pred)(struct fake_host *, void *),
			 void *arg, int timeout_ms)
{
	int64_t end = loop_clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	while (!pred(fh, arg)) {
		int64_t left = end - loop_clock_ms();

		if (left <= 0)
			return pred(fh, arg);
		if (loop_run_once(fh->loop, (int)left) < 0)
			return pred(fh, arg);
	}
	return true;
}

static bool pred_events(struct fake_host *fh, void *arg)
{
	return fh->n_events >= *(size_t *)arg;
}

bool fake_host_wait_events(struct fake_host *fh, size_t n, int timeout_ms)
{
	return fake_host_run_until(fh, pred_events, &n, timeout_ms);
}

static bool pred_never(struct fake_host *fh, void *arg)
{
	(void)fh;
	(void)arg;
	return false;
}

void fake_host_run_for(struct fake_host *fh, int ms)
{
	fake_host_run_until(fh, pred_never, NULL, ms);
}

/* --------------------------------------------------------------- loading */

/* Dies loudly: a plugin that cannot even be loaded makes every test moot,
 * and cmocka may swallow a failure raised outside a test. */
__attribute__((noreturn)) static void fh_load_failed(const char *what, const char *path,
						    const char *why)
{
	fprintf(stderr, "fake_host: %s %s: %s\n", what, path ? path : "(null)",
		why ? why : "unknown error");
	abort();
}

const struct vigil_plugin *fake_host_load_plugin(const char *path)
{
	const struct vigil_plugin *p;
	void *so;

	if (!path)
		fh_load_failed("no plugin to load:", "VIGIL_TEST_PLUGIN", "not set");
	so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!so)
		fh_load_failed("dlopen", path, dlerror());
	dlerror();
	p = dlsym(so, VIGIL_PLUGIN_SYMBOL);
	if (!p)
		fh_load_failed("dlsym " VIGIL_PLUGIN_SYMBOL " in", path, dlerror());
	return p; /* never closed: the descriptor must outlive every use */
}

/* ------------------------------------------------------------ the process */

size_t fake_host_inotify_instances(void)
{
	static const char want[] = "anon_inode:inotify";
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *de;
	size_t n = 0;

	if (!dir)
		abort();
	while ((de = readdir(dir))) {
		char path[300], target[64];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, target, sizeof(target));
		if (len == (ssize_t)strlen(want) && memcmp(target, want, (size_t)len) == 0)
			n++;
	}
	closedir(dir);
	return n;
}
