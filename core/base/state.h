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
	char state[16];      /* waiting | running | retrying | finished */
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
	int expected_auto;   /* 1: expected = auto (expected_ms 0 while learning) */
	int64_t timeout_ms;
	double progress;     /* -1 none */
	int attempt;         /* of a command: the current (retrying: the next) one */
	int attempts;        /* how many the run may take; 0: not a command */
	int64_t next_at_ms;  /* retrying: when the next attempt starts (wall clock) */
	char log[1024];
	char command[1024];
	char last_event[512];
	char reason[512];
};

/* "$XDG_RUNTIME_DIR/vigil" for users, the system folder for root; created
 * 0700 (users), 0750 root:vigil (the system folder), 0755 (root, elsewhere). */
const char *state_default_dir(char *buf, size_t len);
/* The system agent's folder: /run/vigil, or $VIGIL_SYSTEM_STATE_DIR (tests,
 * unusual layouts). Its agent is the one a member of group vigil reaches. */
const char *state_system_dir(void);
/* Group vigil's id, looked up once (NSS may block: the agent asks before its
 * loop runs); (gid_t)-1 when there is no such group. */
gid_t state_vigil_gid(void);
/* Who may read what we write in dir: in a folder group vigil may read (the
 * agent's) 0640 with group vigil, elsewhere 0600 (the owner only). Applied to
 * an open file (fchmod + fchown), so the writer's umask changes nothing.
 * 0 or -errno. */
int state_share_fd(const char *dir, int fd);
/* Long-lived data (spool, job logs): /var/lib/vigil/SUB for root,
 * $XDG_STATE_HOME/vigil/SUB or ~/.local/state/vigil/SUB otherwise. */
const char *state_home_dir(const char *sub, char *buf, size_t len);
/* Create dir (and its parents) when absent, then check it as state_check_dir
 * does; the reason of a refusal is logged. 0 or -errno (errno set too). */
int state_ensure_dir(const char *dir);
/* A state folder is used only when it is a real folder (lstat: not a link),
 * owned by us or by root, and writable by nobody else. 0, or -errno with
 * "state folder DIR: REASON: refused ..." in err. */
int state_check_dir(const char *dir, char *err, size_t errlen);
int state_write(const char *dir, const struct run_record *r);
int state_read(const char *dir, const char *name, struct run_record *r);
/* All records, sorted by name; *out freed by the caller. */
int state_list(const char *dir, struct run_record **out, size_t *n);
/* Is the record's writer (owner_pid) still alive? */
int state_writer_alive(const struct run_record *r);
int state_remove(const char *dir, const char *name);
/* The number of NAME's last run: its record's, or its history's when the
 * record was forgotten (the higher of the two); 0 when it never ran. The next
 * run is this plus one: runs are numbered 1, 2, ... per monitor. */
uint64_t state_last_run(const char *dir, const char *name);

#endif
