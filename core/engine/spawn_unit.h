/* How a `command =` job starts outside the agent: as its `user =` / `group =`,
 * in its `working_directory`, with its `environment` (like the same command in
 * a crontab of that user), either as a transient systemd unit (sd-bus) when
 * the agent runs under systemd, or directly (fork/exec) elsewhere. */
#ifndef VIGIL_SPAWN_UNIT_H
#define VIGIL_SPAWN_UNIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/config.h"

/* Who the job runs as, resolved in the parent (no NSS lookups after fork). */
struct job_identity {
	bool set_user, set_group;
	uid_t uid;
	gid_t gid;
	gid_t *groups;     /* the user's supplementary groups (set_user) */
	int n_groups;
	char *user, *home; /* set_user: the account's name and home */
	const char *workdir; /* where it starts, or NULL: where the agent is */
};

/* 0, or -errno with err ("user \"x\": no such user"). */
int job_identity_resolve(const struct monitor_config *mc, struct job_identity *id,
			 char *err, size_t errlen);
void job_identity_free(struct job_identity *id);

/* In the child, before exec: environment, groups, gid, uid, folder. 0, or
 * -errno with *step naming what failed ("setuid", "working_directory"). */
int job_identity_apply(const struct job_identity *id, const struct monitor_config *mc,
		       const char **step);

/* A job to start as a transient unit. */
struct unit_job {
	const char *name;      /* the monitor */
	uint64_t run;
	int attempt;
	const char *command;   /* sh -c COMMAND, unless argv */
	char *const *argv;
	const struct job_identity *id;
	const struct monitor_config *mc;
	int out_fd;            /* stdout and stderr, passed to systemd */
};

/* True when the agent runs as root under systemd as PID 1 (with sd-bus built
 * in): jobs then start as transient units, outside the agent's sandbox. */
bool spawn_unit_available(void);

/* Start vigil-job-NAME-RUN.service (synchronous D-Bus calls, 5 s at most, at
 * job start only). The job waits at a gate until spawn_unit_release(*gate),
 * so it is watched before it can exit. Its PID, or -errno with err. */
pid_t spawn_unit_start(const struct unit_job *job, int *gate, char *err, size_t errlen);
void spawn_unit_release(int gate);

#endif
