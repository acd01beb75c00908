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
/* A run's journal as its owner writes it: the fd stays open for the run, and
 * the lines of one loop turn go out in one write (journal_flush). All zero:
 * an empty journal, not open. */
struct journal {
	int fd;             /* the current run's journal, when is_open */
	bool is_open;
	bool fresh;         /* the next flush starts a new journal (a new run) */
	struct buf pending; /* lines added, not written yet */
};
/* A new run: close the old journal (flush it first); the next flush replaces it. */
void journal_begin(struct journal *j);
/* Queue one event line (json without its newline). 0 or -ENOMEM. */
int journal_add(struct journal *j, const char *json, size_t len);
/* Write what is queued in one write, opening <dir>/<name>.journal when needed.
 * 0 or -errno (what was queued is dropped; the next flush reopens). */
int journal_flush(struct journal *j, const char *dir, const char *name);
/* The run ended (or the owner does): close the fd; nothing queued is written. */
void journal_close(struct journal *j);
void journal_free(struct journal *j);
/* The type letters (see event_json_decode.h) of an event line's fields, read
 * from the JSON itself: a whole double reads back as an integer. 0 or -EINVAL. */
int journal_types(const char *json, size_t len, struct buf *types);

#endif
