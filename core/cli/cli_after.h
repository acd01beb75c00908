/* vigil run --after NAME / --after-any NAME: the job waits for the named jobs'
 * current runs (cli_after.c). */
#ifndef VIGIL_CLI_AFTER_H
#define VIGIL_CLI_AFTER_H

#include <stdbool.h>
#include <stdint.h>

#include "cli_session.h"
#include "base/state.h"

struct after_pred {
	char name[256];
	const char *dir;      /* the state folder that holds it */
	bool any;             /* --after-any: whatever the outcome */
	struct run_record at; /* its record when vigil run was called */
	bool ended;
	char verdict[160];    /* "failed (exit 3)" once ended */
	bool ok;              /* ended as it must for us to start */
	int owner_fd;         /* pidfd of its record's writer, -1: none */
};

struct after_set {
	struct after_pred *v;
	size_t n;
	int64_t since_ms;     /* wall clock at the check: its run ends after this */
	int ino_fd;
	struct session *s;
};

/* Take --after NAME and --after-any NAME (also NAME=VALUE forms) out of argv
 * (before `--`), into set. 0, or EXIT_USAGE with the reason printed. */
int after_take_flags(struct after_set *set, int *argc, char **argv);
/* Each predecessor must exist, not be self, and have a current (or just
 * finished) run: else EXIT_USAGE with the reason printed. */
int after_check(struct after_set *set, const char *self);
/* In the supervisor, before the command starts: a `waiting` event, then the
 * loop until every predecessor has ended. true: start the command; false: the
 * run has ended failed (a predecessor failed, or the wait was interrupted). */
bool after_wait(struct after_set *set, struct session *s);
/* "A, B" into buf. */
const char *after_names(const struct after_set *set, char *buf, size_t len);
void after_free(struct after_set *set);

#endif
