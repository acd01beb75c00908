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
	int signo;
	/* Called once monitor_start() returned: err is NULL, or why it failed. */
	void (*started)(struct session *s, const char *err, void *arg);
	void *started_arg;
};

/* Build everything for job->mc (validated); EXIT_USAGE with messages on error. */
int session_open(struct session *s, struct cli_job *job, const char *state_dir);
/* Start, run to the end of the monitor, wait for deliveries: the exit status. */
int session_run(struct session *s, bool live);
void session_close(struct session *s);

#endif
