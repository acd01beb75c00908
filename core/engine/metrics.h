/* The Prometheus text exposition (format 0.0.4) of a state folder's run
 * records, the run history and a notification spool: what `vigil metrics`
 * prints and the agent writes to its textfile and serves on GET /metrics.
 * Names and labels are DESIGN.md's ("History and metrics"). */
#ifndef VIGIL_METRICS_H
#define VIGIL_METRICS_H

#include "base/buf.h"

/* Append the exposition to b. 0, or -errno when the state folder cannot be
 * listed or memory ran out. */
int metrics_render(struct buf *b, const char *state_dir, const char *spool_root);

#endif
