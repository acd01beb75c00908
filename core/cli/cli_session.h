/* A monitor in the foreground or in vigil run's supervisor: see cli_session.c. */
#ifndef VIGIL_CLI_SESSION_H
#define VIGIL_CLI_SESSION_H

#include <stdbool.h>

#include "cli.h"
#include "engine/engine.h"

struct session {
	struct loop *loop;
	struct plugin_set plugins;
	struct engine *engine;
	struct monitor *m;
	const struct monitor_config *mc;
	bool live, live_shown, done;
	/* vigil run's supervisor: deliver everything pending before exiting
	 * (no deliver_timeout); what is pending is shown by vigil status. */
	bool outlive;
	const char *state_dir;
	size_t pending_shown;
	int signo;
	/* Called once monitor_start() returned: err is NULL, or why it failed. */
	void (*started)(struct session *s, const char *err, void *arg);
	void *started_arg;
};

/* vigil.ini ($VIGIL_CONFIG, or the system one when it exists) into ac;
 * 0 (also when there is none) or -EINVAL with diagnostics. */
int session_load_agent_ini(struct agent_config *ac, struct diag *d);
/* The spool root in use: STATE/spool for --state-dir or $VIGIL_STATE_DIR,
 * else ini_spool (vigil.ini's spool_dir) when set, else the default. */
const char *session_spool_dir(const char *ini_spool, char *buf, size_t len);
/* STATE/NAME.pending: "COUNT LABEL" lines, one per notifier with deliveries
 * pending, kept by a run's owner while it still delivers after the run. */
int session_pending_path(const char *dir, const char *name, char *buf, size_t len);
/* Build everything for job->mc (validated); EXIT_USAGE with messages on error. */
int session_open(struct session *s, struct cli_job *job, const char *state_dir);
/* Start, run to the end of the monitor, wait for deliveries: the exit status. */
int session_run(struct session *s, bool live);
void session_close(struct session *s);
/* vigil watch NAME (specs: the notifiers to print with) and vigil logs -f NAME
 * (log: the job's log, copied out, then the outcome line): follow the run's
 * journal from the start of the current run to its `finished`, also when that
 * is already written. The exit status of the run's outcome (0, 1, 3, 4). */
int session_follow(const char *dir, const char *name, const char *const *specs, size_t n_specs,
		   const char *log);

#endif
