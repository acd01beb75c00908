/* A run that starts after other jobs' runs: `vigil run --after NAME` and
 * `after =` / `after_any =` in [monitor] (after.c). The caller names each
 * predecessor and the state folder that holds its record; after_check fixes
 * which run of each is waited for, after_start follows them in a loop and
 * tells once whether the run may start. */
#ifndef VIGIL_AFTER_H
#define VIGIL_AFTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/loop.h"
#include "base/state.h"

struct after_pred {
	char name[256];
	char *dir;            /* the state folder that holds it (owned) */
	bool any;             /* after_any: whatever the outcome */
	struct run_record at; /* its record at after_check */
	bool ended;
	char verdict[512];    /* "A failed (exit 3)", "A: no such job" once ended */
	bool ok;              /* ended as it must for us to start */
	int owner_fd;         /* pidfd of its record's writer, -1: none */
};

/* started: called once by after_start (maybe before it returns): ok, or the
 * reason the run ends failed ("after: A failed (exit 3)"). The set may be
 * freed in it. */
typedef void (*after_started_fn)(void *arg, bool ok, const char *reason);

struct after_set {
	struct after_pred *v;
	size_t n;
	int64_t since_ms;     /* wall clock at the check: its run ends after this */
	int ino_fd;           /* -1: not following */
	struct loop *loop;
	after_started_fn started;
	void *arg;
};

/* What after_check found wrong with a predecessor (the first one). */
enum after_problem {
	AFTER_OK = 0,
	AFTER_SELF,   /* the job itself */
	AFTER_NO_JOB, /* no record in its folder */
	AFTER_NO_RUN, /* neither a current run nor a finished one (at says why) */
};

void after_init(struct after_set *set);
/* Add a predecessor (a name already there: stricter of the two). 0 or -ENOMEM. */
int after_add(struct after_set *set, const char *name, const char *dir, bool any);
/* Which run of each predecessor: the current one, or the one that finished
 * last. A predecessor with a problem counts as ended, failed, with it as its
 * verdict; *bad is its index. */
enum after_problem after_check(struct after_set *set, const char *self, size_t *bad);
/* The `waiting` text: "A, B" into buf. */
const char *after_names(const struct after_set *set, char *buf, size_t len);
/* Follow the predecessors until the wait is over, then call started. 0, or
 * -errno when they cannot be followed (started comes all the same: failed). */
int after_start(struct after_set *set, struct loop *loop, after_started_fn started, void *arg);
/* Stop following (no call of started): nothing stays in the loop. */
void after_cancel(struct after_set *set);
void after_free(struct after_set *set);

#endif
