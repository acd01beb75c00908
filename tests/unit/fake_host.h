/* A host for plugin unit tests: the real loop (core/loop.c) behind the
 * vigil_host table, recording everything the plugin reports. Tests drive a
 * plugin through its descriptor only, never by including its .c file. */
#ifndef VIGIL_FAKE_HOST_H
#define VIGIL_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/plugin.h"

struct loop;
struct fake_host;

/* A deep copy of one emitted event. */
struct fake_event {
	char *kind;
	char *message;
	struct vigil_field *fields; /* strings deep-copied */
	size_t n_fields;
};

struct fake_delivery {
	uint64_t token;
	enum vigil_delivery result;
	char *detail;
	int64_t retry_after_ms;
};

struct fake_host *fake_host_new(void);
void fake_host_free(struct fake_host *fh);
const struct vigil_host *fake_host_api(struct fake_host *fh);
struct vigil_ctx *fake_host_ctx(struct fake_host *fh);
struct loop *fake_host_loop(struct fake_host *fh);
void fake_host_set_target(struct fake_host *fh, const struct vigil_target *t);

/* dlopen (RTLD_NOW | RTLD_LOCAL) a built plugin and return its descriptor;
 * fails the test (or the group setup) with dlerror() when it cannot. Usually
 * fake_host_load_plugin(getenv("VIGIL_TEST_PLUGIN")). Never unloaded. */
const struct vigil_plugin *fake_host_load_plugin(const char *path);

/* Shared state (vigil_plugin.shared_create): created once per fake host for
 * each plugin, on its first fake_host_config() or instantiate, with a ctx of
 * its own; host->shared(ctx) returns it to that plugin's instances;
 * shared_destroy() runs in fake_host_free() after every instance's destroy().
 * NULL when p has none (or none yet). */
void *fake_host_shared(struct fake_host *fh, const struct vigil_plugin *p);

/* More instances in one host: each ctx has its own target and its own
 * attached / exited / lost records (fake_host_ctx's are what the fake_host_*
 * accessors below read); the loop, events and shared state are the host's.
 * Freed with fh. */
struct vigil_ctx *fake_host_new_ctx(struct fake_host *fh);
void fake_ctx_set_target(struct vigil_ctx *ctx, const struct vigil_target *t);
int fake_host_instantiate_ctx(struct fake_host *fh, struct vigil_ctx *ctx,
			      const struct vigil_plugin *p, const char *const *lines,
			      void **instance);
bool fake_ctx_attached(struct vigil_ctx *ctx, pid_t *pid, uint64_t *start_time);
bool fake_ctx_exited(struct vigil_ctx *ctx, int *code, int *sig, int *core);
const char *fake_ctx_lost(struct vigil_ctx *ctx);

/* Build a validated config for plugin p from "key = value" lines (NULL-ended),
 * through core/config.c, as the core would. NULL (with the reason printed to
 * stderr and kept in fake_host_last_error) when validation fails. The config
 * lives as long as fh. */
const struct vigil_config *fake_host_config(struct fake_host *fh, const struct vigil_plugin *p,
					    const char *const *lines);
const char *fake_host_last_error(struct fake_host *fh);

/* create() then start() through the descriptor, with fake_host_ctx(fh);
 * 0 or -errno; err kept. */
int fake_host_instantiate(struct fake_host *fh, const struct vigil_plugin *p,
			  const char *const *lines, void **instance);

/* Recorded calls. */
size_t fake_host_n_events(struct fake_host *fh);
const struct fake_event *fake_host_event(struct fake_host *fh, size_t i);
/* The first recorded event of `kind` at index >= from, or NULL. */
const struct fake_event *fake_host_find(struct fake_host *fh, const char *kind, size_t from);
const struct vigil_field *fake_event_field(const struct fake_event *e, const char *name);
unsigned fake_host_criteria(struct fake_host *fh); /* bit (1 << vigil_criterion) */

/* How many inotify instances this process holds (anon_inode:inotify fds):
 * what the kernel limits per user (fs.inotify.max_user_instances). */
size_t fake_host_inotify_instances(void);

bool fake_host_attached(struct fake_host *fh, pid_t *pid, uint64_t *start_time);
bool fake_host_exited(struct fake_host *fh, int *code, int *sig, int *core);
const char *fake_host_lost(struct fake_host *fh); /* why, or NULL */
unsigned fake_host_settled_count(struct fake_host *fh);
/* The lines last passed to host->log_tail (by any instance). */
const struct vigil_bytes *fake_host_log_tail(struct fake_host *fh, size_t *n);
size_t fake_host_n_deliveries(struct fake_host *fh);
const struct fake_delivery *fake_host_delivery(struct fake_host *fh, size_t i);

/* Run the loop until pred(fh, arg) is true or timeout_ms passes; returns pred's
 * last value. */
bool fake_host_run_until(struct fake_host *fh, bool (*pred)(struct fake_host *, void *),
			 void *arg, int timeout_ms);
/* Run until at least n events are recorded. */
bool fake_host_wait_events(struct fake_host *fh, size_t n, int timeout_ms);
/* Run the loop for ms milliseconds. */
void fake_host_run_for(struct fake_host *fh, int ms);

#endif
