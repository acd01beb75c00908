/* The engine: monitors, their plugin instances, notifiers and the host table
 * that connects plugins to the loop. One engine per process, one loop.
 *
 * Inside the engine calls go one way: engine.c -> notify.c -> spool.c, and
 * monitor*.c -> notify.c; the files call back into engine.c only for its
 * getters (loop, folders, host name). The one circle is host.c <-> monitor*.c
 * and notify.c, and it must stay: the monitors and notifiers hand the host table
 * to their plugins, and a plugin's call comes back through host.c to them (the
 * ABI's shape: the core calls the plugin, the plugin calls the host). */
#ifndef VIGIL_ENGINE_H
#define VIGIL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/config.h"
#include "base/diag.h"
#include "base/loop.h"
#include "base/record.h"
#include "plugin_loader.h"
#include "vigil/plugin.h"

struct engine;
struct monitor;
struct notifier;

enum outcome {
	OUTCOME_NONE = 0,
	OUTCOME_SUCCEEDED,
	OUTCOME_FAILED,
	OUTCOME_TIMED_OUT,
	OUTCOME_UNKNOWN,
};
const char *outcome_name(enum outcome o);
/* vigil watch's exit status for an outcome: 0, 1, 3, 4. */
int outcome_exit_status(enum outcome o);

/* A timer or fd that a plugin instance holds, so destroy can release it. */
struct ctx_watch {
	int fd;
	vigil_fd_cb cb;
	void *data;
};

struct ctx_timer {
	struct vigil_ctx *ctx; /* NULL once the instance released it */
	int64_t id;
	vigil_timer_cb cb;
	void *data;
};

/* One plugin instance's handle into the core (the opaque struct vigil_ctx). */
struct vigil_ctx {
	struct engine *engine;
	struct monitor *monitor;   /* NULL for a shared notifier */
	struct notifier *notifier; /* set for notifier instances */
	struct detector *detector; /* set for detector instances */
	char *label;               /* "export/log app" for log lines */
	struct ctx_watch **watches;
	size_t n_watches;
	struct ctx_timer **timers;
	size_t n_timers;
	void *shared; /* the plugin's shared state, see vigil_plugin.shared_create */
	bool warned_reserved; /* said that a field named like an envelope key was renamed */
};

extern const struct vigil_host engine_host;
int ctx_init(struct vigil_ctx *ctx, struct engine *e, const char *label);
/* Releases every fd watch and timer the instance still holds. */
void ctx_release(struct vigil_ctx *ctx);

struct engine_hooks {
	/* A record is about to go to the notifiers (vigil watch clears its live line). */
	void (*before_record)(void *data, struct monitor *m, const struct vigil_record *rec);
	void (*after_record)(void *data, struct monitor *m, const struct vigil_record *rec);
	/* The monitor will have no further runs (its target was given by pid or it
	 * was a command, or it was lost). */
	void (*monitor_done)(void *data, struct monitor *m);
	void *data;
};

struct engine_options {
	const char *state_dir; /* run records; NULL: none */
	const char *spool_dir; /* durable notifications; NULL: in memory only */
	const char *hostname;  /* NULL: gethostname */
};

struct engine *engine_new(struct loop *loop, struct plugin_set *ps,
			  const struct engine_options *opt);
void engine_free(struct engine *e);
void engine_set_hooks(struct engine *e, const struct engine_hooks *h);
const struct engine_hooks *engine_hooks(struct engine *e);
struct loop *engine_loop(struct engine *e);
struct plugin_set *engine_plugins(struct engine *e);
const char *engine_hostname(struct engine *e);
const char *engine_state_dir(struct engine *e);
const char *engine_spool_dir(struct engine *e);

/* Named notifiers ([notifier NAME] of vigil.ini). Validated and created now. */
int engine_define_notifier(struct engine *e, const char *file, const struct raw_section *s,
			   struct diag *d);
/* A [notifier NAME] of the monitor file `file`: that file's own (scoped by the
 * file, so two files may define one NAME), created on first use and shared by
 * identical definitions. NULL with a diagnostic. */
struct notifier *engine_local_notifier(struct engine *e, const char *file,
				       const struct raw_section *s, struct diag *d);
/* The notifier for a spec (stdout, json, webhook:URL, email:ADDR, NAME), created
 * on first use and shared. NULL with a diagnostic. */
struct notifier *engine_notifier(struct engine *e, const char *spec, const char *file,
				 unsigned line, struct diag *d);
/* The shared state of plugin p in this engine, created on first use (0 and
 * *shared NULL when the plugin has none). */
int engine_plugin_shared(struct engine *e, const struct vigil_plugin *p, void **shared,
			 char *err, size_t errlen);
/* The descendants of roots (not roots themselves), from /proc; live_only skips
 * zombies. *out freed by the caller. 0 or -errno. */
int engine_descendants(const pid_t *roots, size_t n_roots, bool live_only, pid_t **out,
		       size_t *n_out);
/* The spooled notifier whose spool folder is named folder, or NULL. */
struct notifier *engine_notifier_by_folder(struct engine *e, const char *folder);
/* Deliveries not yet done, over all notifiers. */
size_t engine_pending(struct engine *e);

/* ------------------------------------------------------------- notifiers */
/* Queue a record for delivery (copied). */
void notifier_submit(struct notifier *n, const struct vigil_record *rec);
size_t notifier_pending(const struct notifier *n);
/* The name of its spool folder (under the spool root), NULL when not spooled. */
const char *notifier_spool_folder(const struct notifier *n);
const char *notifier_name(const struct notifier *n);
void notifier_free(struct notifier *n);
struct notifier *notifier_new(struct engine *e, const char *name, const struct vigil_plugin *p,
			      const struct vigil_config *cfg, char *err, size_t errlen);
int notifier_start(struct notifier *n, char *err, size_t errlen);
void notifier_delivered(struct notifier *n, uint64_t token, enum vigil_delivery result,
			const char *detail, int64_t retry_after_ms);

/* -------------------------------------------------------------- monitors */
/* Build a monitor: validate every detector section against its plugin and create
 * the instances (no side effects: `vigil check` builds and frees). */
struct monitor *monitor_new(struct engine *e, const struct monitor_config *mc, struct diag *d);
int monitor_start(struct monitor *m, char *err, size_t errlen);
void monitor_free(struct monitor *m);
const char *monitor_name(const struct monitor *m);
enum outcome monitor_last_outcome(const struct monitor *m);
bool monitor_done(const struct monitor *m);
bool monitor_lost_target(const struct monitor *m);
pid_t monitor_pid(const struct monitor *m);
/* For the live line: elapsed ms of the current run, expected ms, last event text. */
int64_t monitor_elapsed_ms(const struct monitor *m);
int64_t monitor_expected_ms(const struct monitor *m);
double monitor_progress(const struct monitor *m); /* percent from a progress event, or -1 */
const char *monitor_last_event(const struct monitor *m);
/* vigil run: the supervisor's pid and the job's log, recorded in the state. */
void monitor_set_supervisor(struct monitor *m, pid_t supervisor, const char *log_path);
/* The agent: continue the run numbers of an earlier life (before start). */
void monitor_seed_run(struct monitor *m, uint64_t run);
uint64_t monitor_run_number(const struct monitor *m);
/* The agent, before start: the `command =` job an earlier agent started still
 * runs as (pid, start_time); follow it instead of starting the command again. */
void monitor_adopt(struct monitor *m, pid_t pid, uint64_t start_time);
/* The agent's stop: SIGTERM, then SIGKILL after the kill grace (force: SIGKILL
 * at once); between two attempts, the run ends (monitor_end_retrying). 0, or
 * -ESRCH when no process is attached. */
int monitor_stop(struct monitor *m, bool force);
/* Between two attempts (state retrying): end the run failed with `why`, no
 * further attempt. 0, or -ESRCH when the run is not between attempts. */
int monitor_end_retrying(struct monitor *m, const char *why);
/* vigil watch: end after one run even when the target is a pid_file or match. */
void monitor_set_single_run(struct monitor *m);
/* vigil watch, once started: a pid_file or match target not there yet gets one
 * `waiting` event, and the wait counts against the timeout. */
void monitor_wait_begins(struct monitor *m);
/* vigil run --after (monitor_learn.c), before monitor_start: the coming run
 * waits for `what` (one `waiting` event, record state waiting); or it ends
 * failed with `why`, never started. */
void monitor_after_waiting(struct monitor *m, const char *what);
void monitor_after_failed(struct monitor *m, const char *why);
/* The target stopped (SIGSTOP...) or continued: a `stopped` / `continued`
 * event and the run record's state. */
void monitor_stopped(struct monitor *m, bool stopped, int sig);
bool monitor_is_stopped(const struct monitor *m);

/* Host entry points, called from host.c. */
void monitor_emit(struct monitor *m, struct detector *d, const struct vigil_event *ev);
void monitor_attached(struct monitor *m, pid_t pid, uint64_t start_time, const char *cmdline);
void monitor_exited(struct monitor *m, int code, int sig, int core_dumped);
void monitor_lost(struct monitor *m, const char *why);
void monitor_expect(struct monitor *m, struct detector *d, enum vigil_criterion c);
void monitor_settled(struct monitor *m, struct detector *d);
void monitor_log_tail(struct monitor *m, const struct vigil_bytes *lines, size_t n);
/* The pid detector's facts of the ended process, for the report (monitor_report.c). */
void monitor_exit_facts(struct monitor *m, const struct vigil_field *f, size_t n);
const struct vigil_target *monitor_target(struct monitor *m);

#endif
