/* Inside a monitor: shared by monitor.c (events and facts), monitor_run.c (the
 * run state machine and policies) and monitor_build.c (creation). */
#ifndef VIGIL_MONITOR_INTERNAL_H
#define VIGIL_MONITOR_INTERNAL_H

#include "engine.h"

struct success_expr;

enum run_state { RUN_WAITING = 0, RUN_ATTACHED, RUN_SETTLING, RUN_FINISHED };

struct detector {
	struct monitor *monitor;
	char *section; /* "log app" */
	const struct vigil_plugin *plugin;
	void *instance;
	struct vigil_ctx ctx;
	unsigned criteria; /* 1 << enum vigil_criterion */
	bool file_seen;
	char *file_path;
	int64_t file_size;
	char *config_path; /* its `path` option, to name a missing file */
	bool settling;
};

struct monitor {
	struct engine *engine;
	const struct monitor_config *mc; /* borrowed: the caller keeps it alive */
	char *name;
	struct detector **dets;
	size_t n_dets;
	struct detector *pid_det; /* also in dets */
	struct notifier **notifiers;
	uint32_t *notify_filters; /* event-kind bits per notifier; 0 = every event */
	size_t n_notifiers;
	struct success_expr *expr;

	/* the current run */
	enum run_state state;
	uint64_t run;
	struct vigil_target target;
	char *cmdline;
	int64_t start_mono, end_mono, start_wall, end_wall;
	bool exit_known;
	int exit_code, exit_signal, core_dumped;
	bool success_seen, failure_seen;
	char *failure_line;
	bool timed_out; /* vigil acted on a timeout (term or kill) */
	int64_t timeout_timer, expected_timer, kill_timer, settle_timer, retry_timer;
	struct vigil_bytes *tail;
	size_t n_tail;
	char *reason;

	/* across runs */
	enum outcome last_outcome;
	bool done, started;
	bool attached_once; /* a run has begun in this monitor's life */
	double progress;
	char last_event[512];
	int attempts; /* command runs started */
	pid_t supervisor;
	char *log_path;
	bool state_warned;
	bool lost; /* the target could not be found */
	bool single_run; /* vigil watch: one run, even of a pid_file or match target */
	bool state_dirty;
	int64_t state_timer; /* run records are rewritten at most once a second */
	char *status_dir, *status_name; /* a vigil run job's record: exit status source */
	int64_t status_timer, status_wait_start;
};

/* Kinds a notifier filter knows, as bits. */
uint32_t notify_kind_bit(const char *kind);
static inline bool notify_wants(uint32_t filter, const struct vigil_event *ev)
{
	return filter == 0 || (filter & notify_kind_bit(ev->kind)) != 0;
}

void monitor_record(struct monitor *m, const char *detector, const struct vigil_event *ev);
void monitor_save_state(struct monitor *m);
int monitor_spawn(struct monitor *m, char *err, size_t errlen);
int monitor_make_pid_detector(struct monitor *m, pid_t pid, char *err, size_t errlen);
void detector_free(struct detector *d);
int monitor_add_detector(struct monitor *m, struct detector *det);
struct detector *monitor_pid_detector_new(struct monitor *m, pid_t pid, struct diag *d);

#endif
