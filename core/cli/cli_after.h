/* vigil run --after NAME / --after-any NAME, and after = / after_any = of -c
 * FILE: the job waits for the named jobs' current runs. The flags, the
 * messages and the session are here (cli_after.c); the waiting itself is the
 * engine's (engine/after.c). */
#ifndef VIGIL_CLI_AFTER_H
#define VIGIL_CLI_AFTER_H

#include <stdbool.h>

#include "cli_session.h"
#include "engine/after.h"

struct after_flag {
	const char *name; /* in argv */
	bool any;         /* --after-any */
};

struct cli_after {
	struct after_flag *flags;
	size_t n_flags;
	struct after_set set; /* the file's, then the flags' (after cli_after_check) */
	struct session *s;    /* the supervisor's, once cli_after_begin ran */
	bool over, ok;        /* the engine's verdict, once the wait is over */
	char why[1024];       /* why the run ends without its command */
};

/* Take --after NAME and --after-any NAME (also NAME=VALUE forms) out of argv
 * (before `--`), into ca. 0, or EXIT_USAGE with the reason printed. */
int cli_after_take_flags(struct cli_after *ca, int *argc, char **argv);
/* The file's after / after_any (mc) and the flags, each in the state folder
 * that holds it. Each must exist, not be self, and have a current (or just
 * finished) run: else EXIT_USAGE with the reason printed. */
int cli_after_check(struct cli_after *ca, const struct monitor_config *mc, const char *self);
/* In the supervisor, before the command starts: follow the predecessors and,
 * unless all have ended already, a `waiting` event (in the record when this
 * returns: vigil status shows it as soon as vigil run has returned). */
void cli_after_begin(struct cli_after *ca, struct session *s);
/* Then the loop until every predecessor has ended. true: start the command;
 * false: the run has ended failed (a predecessor failed, or the wait was
 * interrupted). */
bool cli_after_wait(struct cli_after *ca);
void cli_after_free(struct cli_after *ca);

#endif
