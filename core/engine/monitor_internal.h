/* Inside a monitor: shared by monitor.c (events and facts), monitor_run.c (the
 * run state machine and policies) and monitor_build.c (creation). */
#ifndef VIGIL_MONITOR_INTERNAL_H
#define VIGIL_MONITOR_INTERNAL_H

#include "base/journal.h"
#include "engine.h"
#include "spool.h" /* notify_kind_bit */

struct success_expr;

/* RUN_RETRYING: an attempt of a command failed, the next one is due (the run
 * goes on: same run number, same journal, no `finished` yet). */
enum run_state { RUN_WAITING = 0, RUN_ATTACHED, RUN_SETTLING, RUN_FINISHED, RUN_RETRYING };

struct monitor_hook;


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

/* What the pid detector told of the ended process (monitor_report.c): it
 * belongs to the attempt attached at attach_mono. -1: unknown. */
struct run_report {
	bool known;
	int64_t attach_mono, peak_rss_bytes;
	double cpu_seconds;
	int oom_killed;
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
	/* limits: one already past when the run was found fires at once, saying so */
	bool timeout_late, expected_late;
	int64_t learned_expected_ms; /* expected = auto: this run's limit, 0 while learning */
	int64_t min_duration_ms;  /* this run's min_duration (learned for auto), 0: none */
	bool too_fast;            /* this run ended sooner than min_duration */
	int64_t attach_mono;     /* when this run's process was found */
	int64_t wait_start_mono; /* vigil watch began waiting for its target; 0: not */
	char *waiting_for;       /* what it waits for, for the reason */
	bool journal_open;       /* the current run's journal has begun */
	bool journal_warned;
	struct journal journal;  /* written once per loop turn (monitor.c) */
	int64_t journal_timer;   /* the end of this turn: flush the journal */
	bool stopped;            /* the target is stopped (SIGSTOP, SIGTSTP...) */
	struct job_tree *tree;   /* a started job's processes (monitor_spawn.c) */
	/* retries: attempts of one run (monitor_run.c) */
	int attempt;             /* 1-based; while retrying, the one to come */
	int64_t run_start_mono, run_start_wall; /* the first attempt's start */
	int64_t next_attempt_wall; /* retrying: when the next attempt is due */
	bool concluding;         /* on_failure runs; `finished` follows it */
	struct monitor_hook *hook; /* before_retry or on_failure, running */
	char *hook_notes;        /* the hooks' failures in this run, for the reason */
	pid_t adopt_pid;         /* the agent: a job an earlier agent started, running */
	uint64_t adopt_start;
	struct run_report report; /* the end-of-run report (monitor_report.c) */
	struct match_flood *flood; /* bursts of matches, coalesced (monitor.c) */
	int64_t turn_timer;        /* detectors only: a run's end or the next run */
};

/* Kinds a notifier filter knows, as bits. */
static inline bool notify_wants(uint32_t filter, const struct vigil_event *ev)
{
	return filter == 0 || (filter & notify_kind_bit(ev->kind)) != 0;
}

void monitor_record(struct monitor *m, const char *detector, const struct vigil_event *ev);
void monitor_save_state(struct monitor *m);
/* Write the journal's pending lines and close it (the monitor ends). */
void monitor_journal_close(struct monitor *m);
/* Arm a core timer; an error is logged, never ignored. 0 when it failed. */
int64_t monitor_add_timer(struct monitor *m, int64_t delay_ms, loop_timer_cb cb, const char *what);
int monitor_spawn(struct monitor *m, char *err, size_t errlen);
int monitor_make_pid_detector(struct monitor *m, pid_t pid, char *err, size_t errlen);
void detector_free(struct detector *d);
/* Process trees (monitor_spawn.c): hold the run while processes the main one
 * left run on (true: monitor_exited comes again with the final status); signal
 * the whole tree (false: not a job vigil started); free. */
bool monitor_tree_hold(struct monitor *m, int code, int sig, int core_dumped);
bool monitor_tree_signal(struct monitor *m, int sig);
void monitor_tree_free(struct monitor *m);
int monitor_add_detector(struct monitor *m, struct detector *det);
/* The job's identity in a child's environment: VIGIL_JOB, VIGIL_RUN and
 * VIGIL_ATTEMPT (monitor_spawn.c). */
void monitor_child_env(const struct monitor *m, uint64_t run, int attempt);
/* Where the job's output goes (the log, or /dev/null): an fd, or -errno. */
int monitor_open_output(const struct monitor *m, char *err, size_t errlen);
/* Like monitor_record; *json (when not NULL) gets a copy of the event's JSON
 * line, to free. monitor_event_json encodes without recording. */
void monitor_record_copy(struct monitor *m, const char *detector, const struct vigil_event *ev,
			 char **json);
char *monitor_event_json(struct monitor *m, const char *detector, const struct vigil_event *ev);
/* Hooks (monitor_hook.c): `command` (sh -c) with json on its stdin, the job's
 * identity in its environment and its output in the job's log; killed after
 * hook_timeout. done(m) comes from the loop when it has ended; a failure is
 * added to m->hook_notes (and logged). -errno when it could not start (noted
 * too; done is not called). */
typedef void (*monitor_hook_done)(struct monitor *m);
int monitor_hook_run(struct monitor *m, const char *what, const char *command, const char *json,
		     monitor_hook_done done);
void monitor_hook_free(struct monitor *m);
/* The end-of-run report's fields of `finished` (oom_killed, peak_rss_bytes,
 * cpu_seconds, progress) into f: how many (0 when max is too small). It also
 * takes log_tail from the job's output when no log detector gave one. */
size_t monitor_report_fields(struct monitor *m, struct vigil_field *f, size_t max);
/* Bursts of matches (monitor.c): the attempt's success_lines and
 * failure_lines fields of `finished` into f (0 or 2); free what is held. */
size_t monitor_match_fields(struct monitor *m, struct vigil_field *f, size_t max);
void monitor_flood_free(struct monitor *m);
struct detector *monitor_pid_detector_new(struct monitor *m, pid_t pid, struct diag *d);

/* monitor_learn.c: the expected limit of the run beginning (learned for
 * expected = auto); 0: none. */
int64_t monitor_learn_expected(struct monitor *m);
/* min_duration: a run ending sooner gets "too_fast" in its reason (called
 * once the reason is built); its `too_fast` field into f: how many (0, 1). */
void monitor_learn_too_fast(struct monitor *m);
size_t monitor_too_fast_field(const struct monitor *m, struct vigil_field *f);
/* Monitors of detectors only (monitor_run.c): no pid, pid_file, match or
 * command. start: the first run begins; check: after a detector's event,
 * whether the run has ended. */
bool monitor_is_targetless(const struct monitor *m);
void monitor_targetless_start(struct monitor *m);
void monitor_targetless_check(struct monitor *m, struct detector *d, const struct vigil_event *ev);
/* End a run that never began (monitor_run.c): one `finished` with outcome o. */
void monitor_finish_unattached(struct monitor *m, enum outcome o, const char *why);

#endif
