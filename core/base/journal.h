/* The event journal of a run: <state_dir>/<name>.journal, one schema v1 JSON
 * line per event (the encoding of --notify json). The owner of the run (vigil
 * run's supervisor, vigil watch, the agent) appends; `vigil watch NAME` and
 * `vigil logs -f NAME` follow it. A new run replaces the file (rename), so a
 * reader holding the old one still reads that run to its end. */
#ifndef VIGIL_JOURNAL_H
#define VIGIL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* "<dir>/<name>.journal"; -ENAMETOOLONG when it does not fit. */
int journal_path(const char *dir, const char *name, char *buf, size_t len);
/* Append one event line (json without its newline) in one write. fresh: start
 * a new journal for a new run. 0 or -errno. */
int journal_append(const char *dir, const char *name, const char *json, size_t len, bool fresh);
/* The type letters (see event_json_decode.h) of an event line's fields, read
 * from the JSON itself: a whole double reads back as an integer. 0 or -EINVAL. */
int journal_types(const char *json, size_t len, struct buf *types);

#endif
