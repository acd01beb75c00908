/* Run history: one JSON line per finished run in HISTORY_DIR/NAME.jsonl,
 * appended by the run's owner, read back by `vigil history` and `vigil
 * metrics`. Bounded: once the file holds more than 1.25 x keep runs it is
 * rewritten atomically (temp file + rename) with the last `keep` runs and a
 * first line {"compacted":{OUTCOME:COUNT,...}} carrying the counts of the runs
 * dropped, so per-outcome totals never go down. A line that does not parse is
 * skipped and counted, never fatal.
 *
 * Where: $VIGIL_HISTORY_DIR when set; STATE_DIR/history when the state folder
 * was chosen (--state-dir, VIGIL_STATE_DIR, or a state_dir other than the
 * built-in one), so one folder isolates everything; otherwise
 * /var/lib/vigil/history (root) or $XDG_STATE_HOME/vigil/history. */
#ifndef VIGIL_HISTORY_H
#define VIGIL_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"

#define HISTORY_KEEP_DEFAULT 1000
#define HISTORY_N_OUTCOMES 4 /* succeeded, failed, timed_out, unknown */

struct history_entry {
	uint64_t run;
	int64_t start_ms, end_ms; /* wall clock */
	double duration;          /* seconds */
	char outcome[16];
	int exit_code;            /* -1: unknown or killed by a signal */
	char signal[24];          /* "" when none */
	int attempts;             /* 0: unknown */
	int64_t peak_rss_bytes;   /* -1: unknown */
	char reason[512];
};

struct history {
	struct history_entry *v; /* oldest first */
	size_t n;
	size_t corrupt;          /* lines skipped */
	uint64_t total[HISTORY_N_OUTCOMES]; /* every run ever, compacted ones too */
};

/* The history folder for this state folder (see above); NULL state_dir means
 * the default state folder. */
const char *history_dir(const char *state_dir, char *buf, size_t len);
/* history_keep: $VIGIL_HISTORY_KEEP when a positive number, else the default. */
size_t history_keep(void);
/* 0..3 for succeeded, failed, timed_out, unknown; -1 otherwise. */
int history_outcome_index(const char *outcome);
const char *history_outcome_name(int index);

/* e as one JSON line (with its newline) appended to b. 0 or -ENOMEM. */
int history_entry_json(struct buf *b, const char *name, const struct history_entry *e);
/* Append e for monitor name (folder created 0700 when absent), compacting past
 * 1.25 x keep. 0, or -errno with the reason in err. */
int history_append(const char *dir, const char *name, const struct history_entry *e, size_t keep,
		   char *err, size_t errlen);
/* The engine's hook: a `finished` record of a monitor whose state folder is
 * state_dir becomes a history line (other kinds, or no state folder: nothing).
 * A failure is logged, never fatal. */
void history_note_record(const char *state_dir, const struct vigil_record *rec);

/* Read NAME's history. A missing file is an empty history (0); -errno when
 * it cannot be read. */
int history_read(const char *dir, const char *name, struct history *h);
void history_free(struct history *h);
/* The p-quantile (0..1, nearest rank) of the durations of successful runs;
 * -1 when there is none. */
double history_success_quantile(const struct history *h, double p);

/* expected = auto: the learned runs are the last HISTORY_LEARN_WINDOW
 * successful ones; nothing is learned before HISTORY_LEARN_MIN of them. */
#define HISTORY_LEARN_MIN 5
#define HISTORY_LEARN_WINDOW 50
#define HISTORY_MARGIN_DEFAULT 1.5
/* The p95 of the learned runs' durations times margin (0: the default), in
 * ms; 0 while fewer than HISTORY_LEARN_MIN. *n_ok: the successful runs seen
 * (capped at the window), for "learning (3/5 runs)". */
int64_t history_learned_expected_ms(const struct history *h, double margin, size_t *n_ok);
/* min_duration = auto: the p5 of the learned runs divided by margin, in ms;
 * 0 while fewer than HISTORY_LEARN_MIN (or when that is under 1 ms). */
int64_t history_learned_min_ms(const struct history *h, double margin, size_t *n_ok);
/* The same from NAME's history file in dir (a missing file: nothing learned). */
int64_t history_learned_expected_for(const char *dir, const char *name, double margin,
				     size_t *n_ok);

#endif
