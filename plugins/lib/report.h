/* The end-of-run report of a `finished` event as a readable block, one line
 * per fact (outcome, exit or signal with an OOM kill, duration, peak memory,
 * CPU time, progress), shared by the text notifiers (stdout, the e-mail
 * body). A leaf: libc and the public ABI header only, no state. */
#ifndef VIGIL_REPORT_H
#define VIGIL_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "vigil/plugin.h"

/* One line: a label ("peak memory") and its value, borrowed for the call.
 * Nonzero stops the block and is returned. */
typedef int (*report_put_fn)(void *arg, const char *label, const char *value, size_t len);

/* The block of a `finished` event, line by line (the last log lines are the
 * caller's to show). 0, or what put returned. */
int report_lines(const struct vigil_event *ev, report_put_fn put, void *arg);

/* Is this `finished` field shown by the block (so a caller need not repeat it)? */
bool report_shows(const char *field);

#endif
