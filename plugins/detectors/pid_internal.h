/* What the two files of the pid detector share: pid.c (the plugin: finding
 * the target, the pidfd, the ending) and pid_connector.c (the kernel's
 * process-events connector and the per-process state every instance uses).
 * Functions named pidcn_* live in pid_connector.c, pid_* in pid.c; anything
 * not declared here is static to its file. Built with -fvisibility=hidden:
 * none of this leaves the .so. */
#ifndef VIGIL_PID_INTERNAL_H
#define VIGIL_PID_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The instance holds its compiled match pattern. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "lib/proc.h"
#include "vigil/plugin.h"

/* The longest command line read, for matching and for the core. */
#define PID_CMDLINE_MAX 4096

enum pid_mode { PID_BY_PID, PID_BY_FILE, PID_BY_MATCH };
enum pid_via { VIA_AUTO, VIA_WAITID, VIA_CONNECTOR, VIA_NONE };

struct pid_status {
	bool known;
	int code, sig, core;
};

/* The per-process state (defined in pid_connector.c): the connector, and the
 * one inotify instance that watches every pid file's folder. */
struct pid_shared;
struct inotify_event;

/* Where an instance sits in one of the shared state's lists (removal swaps
 * the last entry in). */
struct pid_list_pos {
	size_t idx;
	bool in;
};

/* One instance. The connector links it into sh's tables (cn_user .. exec_hit)
 * and records what it heard about the attached process (exit_seen,
 * leader_seen, cn_status); the rest is pid.c's. */
struct pid_det {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	enum pid_mode mode;
	enum pid_via via;
	bool ended; /* lost() was called: nothing more to do */

	pid_t want_pid;            /* pid */
	char *path, *dir, *base;   /* pid_file */
	char *pattern;             /* match */
	pcre2_code *re;
	pcre2_match_data *md;

	struct pid_shared *sh;
	bool own_sh;      /* sh is private: the core offers no shared state */
	bool cn_user;     /* counted in sh->users */
	bool in_table;    /* registered under pid in sh's table */
	struct pid_det *next_same; /* the next instance attached to the same pid */
	struct pid_list_pos matcher_pos; /* in sh's match targets */
	struct pid_list_pos sample_pos;  /* in sh's sampled processes */
	bool exec_hit;

	/* The attached process. */
	int pidfd;
	pid_t pid;
	uint64_t start;
	bool is_child;
	bool exit_seen, leader_seen;
	struct pid_status cn_status;
	int64_t grace_timer;
	bool grace_short; /* the grace timer was cut to 0: the status is here */

	/* The end-of-run report: resources (rusage for a child, else sampled from
	 * /proc while it runs) and an OOM kill; pending holds the status while the
	 * kernel log is read once more (oom_timer). */
	struct proc_usage usage;
	int64_t oom_timer;
	int oom; /* -1 unknown, 0, 1 */
	struct pid_status pending;

	/* The run last reported, so a pid file still naming it is not re-attached. */
	pid_t done_pid;
	uint64_t done_start;

	/* Waiting for the target. ino_wd: the watch on dir in sh's inotify
	 * instance, -1 while none; ino_gone: the folder went away with it (d
	 * watches again from its recheck timer). */
	int ino_wd;
	bool ino_gone;
	int64_t poll_timer, recheck_timer, empty_timer;
	bool empty_grace_over;
	char *warned; /* what was last warned about, to warn once per content */
};

/* ---- pid_connector.c ---- */

/* The plugin's shared_create / shared_destroy; also an instance's private
 * state when the core offers no shared one. */
int pidcn_shared_create(const struct vigil_host *host, struct vigil_ctx *ctx, void **shared,
			char *err, size_t errlen);
void pidcn_shared_destroy(void *shared);

/* d will rely on the connector: subscribe if nobody has yet. 0, or -errno
 * with the reason in err. */
int pidcn_acquire(struct pid_det *d, char *err, size_t errlen);
/* d no longer needs process events (also leaves the pid table and the match
 * targets); the last one out unsubscribes. */
void pidcn_release(struct pid_det *d);
/* d is subscribed and the socket is open. */
bool pidcn_on(const struct pid_det *d);
/* Log why the connector cannot be had: once per process, then quietly. */
void pidcn_unavailable(struct pid_det *d, const char *why);

/* Filter anew for the watched set and the waiting match targets; `extra` is a
 * PID about to be watched, 0 for none. */
void pidcn_filter(struct pid_shared *s, pid_t extra);
/* Read everything queued. -errno from a subscription ack or the socket, else 0. */
int pidcn_drain(struct pid_shared *s);

/* Register d under d->pid, so that the exits of that pid reach it (-ENOMEM),
 * and unregister it (a no-op when it is not). */
int pidcn_table_add(struct pid_shared *s, struct pid_det *d);
void pidcn_table_del(struct pid_shared *s, struct pid_det *d);

/* Sample d's process for the report from sh's one timer, and stop (a no-op
 * when it is not sampled). */
void pidcn_sample_add(struct pid_det *d);
void pidcn_sample_del(struct pid_det *d);

/* Watch path for d in the shared inotify instance (opened on first use, its
 * reason in err when it cannot be), in place of d's watch: 0 or -errno. */
int pidcn_ino_watch(struct pid_det *d, const char *path, uint32_t mask, char *err,
		    size_t errlen);
/* d lets go of its watch. */
void pidcn_ino_unwatch(struct pid_det *d);

/* ---- pid.c: what the connector calls back ---- */

/* An event of a watch of the instance `owner` (an ino_share_fn). */
void pid_ino_event(void *owner, const struct inotify_event *ev);

/* Read d's process's peak memory and CPU time now (a process not our child). */
void pid_sample(struct pid_det *d);

/* d's exit status has just been recorded: end its grace wait. */
void pid_grace_cut(struct pid_det *d);
/* An exec may have started d's target, or its pid file changed: look again
 * (/proc, the pid file) from d's own timer. */
void pid_recheck_soon(struct pid_det *d);
/* Does cmdline match d's pattern? */
bool pid_match_cmdline(struct pid_det *d, const char *cmdline);

#endif
