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

/* Build a validated config for plugin p from "key = value" lines (NULL-ended),
 * through core/config.c, as the core would. NULL (with the reason printed to
 * stderr and kept in fake_host_last_error) when validation fails. The config
 * lives as long as fh. */
const struct vigil_config *fake_host_config(struct fake_host *fh, const struct vigil_plugin *p,
					    const char *const *lines);
const char *fake_host_last_error(struct fake_host *fh);

/* create() then start() through the descriptor; 0 or -errno; err kept. */
int fake_host_instantiate(struct fake_host *fh, const struct vigil_plugin *p,
			  const char *const *lines, void **instance);

/* Recorded calls. */
size_t fake_host_n_events(struct fake_host *fh);
const struct fake_event *fake_host_event(struct fake_host *fh, size_t i);
/* The first recorded event of `kind` at index >= from, or NULL. */
const struct fake_event *fake_host_find(struct fake_host *fh, const char *kind, size_t from);
const struct vigil_field *fake_event_field(const struct fake_event *e, const char *name);
unsigned fake_host_criteria(struct fake_host *fh); /* bit (1 << vigil_criterion) */

bool fake_host_attached(struct fake_host *fh, pid_t *pid, uint64_t *start_time);
bool fake_host_exited(struct fake_host *fh, int *code, int *sig, int *core);
const char *fake_host_lost(struct fake_host *fh); /* why, or NULL */
unsigned fake_host_settled_count(struct fake_host *fh);
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
