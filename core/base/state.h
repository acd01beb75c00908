/* The state folder: one small file per monitor, <state_dir>/<name>.run, holding
 * its current or last run. Written atomically (temp file + rename) so readers
 * (`vigil status`, `vigil stop`) never see half a record. */
#ifndef VIGIL_STATE_H
#define VIGIL_STATE_H

#include <stdint.h>
#include <sys/types.h>

struct run_record {
	char name[256];
	uint64_t run;
	char state[16];      /* waiting | running | finished */
	pid_t pid;
	uint64_t start_time; /* process identity */
	pid_t supervisor;    /* vigil run's supervisor, 0 otherwise */
	pid_t owner_pid;     /* the vigil process that writes this record */
	uid_t uid;
	int64_t started_ms;  /* wall clock */
	int64_t ended_ms;
	int exit_code;       /* -1 unknown */
	int signal;          /* 0 none, -1 unknown */
	char outcome[16];    /* "" while running */
	int64_t expected_ms;
	int64_t timeout_ms;
	double progress;     /* -1 none */
	char log[1024];
	char command[1024];
	char last_event[512];
	char reason[512];
};

/* "$XDG_RUNTIME_DIR/vigil" for users, "/run/vigil" for root; created 0700/0755. */
const char *state_default_dir(char *buf, size_t len);
/* Long-lived data (spool, job logs): /var/lib/vigil/SUB for root,
 * $XDG_STATE_HOME/vigil/SUB or ~/.local/state/vigil/SUB otherwise. */
const char *state_home_dir(const char *sub, char *buf, size_t len);
int state_ensure_dir(const char *dir);
int state_write(const char *dir, const struct run_record *r);
int state_read(const char *dir, const char *name, struct run_record *r);
/* All records, sorted by name; *out freed by the caller. */
int state_list(const char *dir, struct run_record **out, size_t *n);
/* Is the record's writer (owner_pid) still alive? */
int state_writer_alive(const struct run_record *r);
int state_remove(const char *dir, const char *name);

#endif
