/* What the three parts of the log detector share: log.c (reading, line
 * splitting, events, lifecycle), log_match.c (patterns, their limits and time
 * budget, progress values) and log_rotation.c (which file to read next when
 * the log is rotated). All work on one instance, so its struct is here;
 * everything else stays static in its file. Nothing here is exported from the
 * .so (-fvisibility=hidden). */
#ifndef VIGIL_LOG_INTERNAL_H
#define VIGIL_LOG_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vigil/plugin.h"

#define LOG_BLOCK (1u << 20)        /* one read() */
#define LOG_FP 64                   /* fingerprint bytes: file head, last read */
#define LOG_LATE_N 4                /* renamed files watched for late writes */

enum { PAT_FAILURE, PAT_SUCCESS, PAT_PROGRESS, PAT_N };

struct log_pat {
	pcre2_code *re;
	pcre2_match_data *md;
	bool jit;
};

struct log_line;  /* log.c: a line kept for the finished event */
struct log_sib;   /* log_rotation.c: a rotated copy in the log's folder */
struct log_share; /* log.c: what the plugin's instances share (one inotify) */
struct ino_share; /* plugins/lib/ino_share.h */

/* What identifies a file across renames. */
struct log_id {
	dev_t dev;
	ino_t ino;
	int64_t btime; /* birth time in ns, 0 where the filesystem keeps none */
};

/* An open file and what identifies its content. */
struct log_src {
	int fd;
	off_t off;
	struct log_id id;
	char head[LOG_FP];
	size_t head_len;
};

/* Where reading stands, kept by the host across restarts (save_state):
 * the file, its first bytes, the bytes before the offset, and the offset of
 * the first byte not matched yet. */
struct log_cursor {
	uint32_t magic; /* LOG_CURSOR_MAGIC: this layout */
	uint32_t head_len, last_len;
	uint32_t pad;
	uint64_t dev, ino;
	int64_t btime, off;
	char head[LOG_FP], last[LOG_FP];
};
#define LOG_CURSOR_MAGIC 0x76634c31u /* "vcL1" */

/* What a file held when we left it: its first bytes, the bytes before the
 * offset we read it to, and that offset. A compressed copy of it is known by
 * them (it is another inode). */
struct log_fp {
	off_t off;
	size_t head_len, last_len;
	char head[LOG_FP], last[LOG_FP];
};
#define LOG_DONE_N 16 /* files left behind whose fingerprints are kept */

struct log_sibs {
	struct log_sib *v;
	size_t n, cap;
};

/* A renamed file we read to its end: a writer that opened it before the
 * rename may still append to it. */
struct log_late {
	int fd, wd;
	off_t off;
	int64_t left_ms;
};

struct log_inst {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	char *path, *dir, *base;
	size_t base_len;
	struct log_pat pat[PAT_N];
	pcre2_match_context *mctx;
	pcre2_jit_stack *jstack;
	bool progress_percent; /* the pattern holds a '%' */
	int64_t stall_ms;      /* 0: no stall detection */
	bool from_start;
	size_t max_line, tail_n;

	struct log_share *sh;      /* the plugin's, or private (own_sh) */
	bool own_sh;               /* the core offers no shared state */
	bool kick_due;             /* read once the event batch is dispatched */
	struct log_inst *next_due; /* the next one to read then */
	struct ino_share *ino;     /* sh's inotify once started, NULL before */
	int wd_dir, wd_file;       /* this instance's watches in it, -1: none */
	struct log_src cur;  /* fd -1 while the log does not exist */
	struct log_src live; /* while recovering: the truncated log, read after cur */
	bool recovering;
	struct log_id *seen; /* rotated copies read already, or older than cur */
	size_t n_seen, cap_seen;
	struct log_sibs sibs[2];
	struct log_late late[LOG_LATE_N];
	struct log_fp done[LOG_DONE_N]; /* files left, newest at done_pos - 1 */
	size_t done_pos, n_done;
	off_t seen_size; /* cur's size when last looked at (bytes known to exist) */
	bool leaving; /* cur is left behind, not closed, at the next switch */
	char last[LOG_FP];   /* the bytes just before cur.off */
	size_t last_len;

	char *buf; /* carried partial line, then one block */
	size_t carry;
	bool skipping; /* inside a line longer than max_line */

	struct log_line *ring;
	struct vigil_bytes *tail_vec;
	size_t ring_pos, ring_count;

	int64_t resume_timer, retry_timer, stall_timer, progress_timer, late_timer;
	int64_t cursor_timer;
	struct log_cursor saved; /* the position saved or loaded last (magic 0: none) */
	bool cursor_due;         /* a line was reported: save the position now */
	int64_t last_output_ms;
	bool stalled, exited;

	bool prog_emitted, prog_pct, pend, pend_pct;
	double prog_value, pend_value;
	int64_t prog_ms;

	bool warned_read, warned_match, warned_open;

	/* matching stops at this CLOCK_MONOTONIC time, INT64_MAX: never */
	int64_t turn_end_ns;
	bool backlog;  /* buf holds complete lines not matched yet (time ran out) */
	bool settling; /* settle() returned VIGIL_SETTLING: settled() is due */

	/* progress segments ('\r') of the partial line */
	size_t cr_done;   /* its bytes up to here gave their progress already */
	size_t scan_skip; /* cr_done of the first line of the running scan */
	bool seg_cut;     /* skipping: the segment at buf's start lost its head */
};

/* log.c: events, for what matching finds */

/* Pattern p (PAT_FAILURE or PAT_SUCCESS) matched this line. */
void log_emit_match(struct log_inst *li, int p, const char *line, size_t n, bool trunc);
/* A progress value: reported now or, within a second of the last report,
 * when the second is over. */
void log_progress_offer(struct log_inst *li, double v, bool pct);

/* log.c: reading, for the files rotation switches to */

/* New bytes arrived: restarts the stall clock. */
void log_note_output(struct log_inst *li);
/* n new bytes sit in buf after the carried partial line. */
void log_feed(struct log_inst *li, size_t n);
/* The end of a byte stream: a last line without its newline counts. */
void log_flush_partial(struct log_inst *li);
/* Watch cur.fd (now another file) for writes, renames and deletion. */
void log_watch_file(struct log_inst *li);
/* li no longer wants the watch wd (-1: none). */
void log_watch_del(struct log_inst *li, int wd);

/* log_rotation.c: which file to read, and when it changes */

/* Follow the file at the path, from its end or its start, taking whatever
 * was rotated before as read. 0 or -errno. */
int log_open_path(struct log_inst *li, bool at_end);
/* Everything rotated so far came before what we read now. */
void log_seen_all(struct log_inst *li);
/* Where reading stands now, cur's first bytes and the bytes before the
 * offset included. False when there is no file to tell of. */
bool log_cursor_take(struct log_inst *li, struct log_cursor *c);
/* Go on from a saved position: in the file at the path when it still holds
 * it, else in the rotated copy holding it, then the copies made after it.
 * False when no file holds it any more. */
bool log_cursor_resume(struct log_inst *li, const struct log_cursor *c);
/* cur was read to its end and is behind us: switch to the next file to read.
 * False when there is nothing to go on with yet. */
bool log_next_file(struct log_inst *li);
/* cur was read to its end: when the path names another file now, go on
 * with the next one. False when cur is still the file to read. */
bool log_follow(struct log_inst *li);
/* Was cur truncated in place (copytruncate)? */
bool log_is_truncated(struct log_inst *li);
/* cur was truncated: read what we had not read from the rotated copy, the
 * copies after it, then the log from its start. */
void log_truncated(struct log_inst *li);
/* Read what was appended to renamed files we had left. Bytes read. */
size_t log_late_check(struct log_inst *li, size_t budget);

/* log_match.c: patterns and progress values */

/* The config keys of the patterns, by PAT_*. */
extern const char *const log_pat_key[PAT_N];
/* Compile the configured patterns and set the match limits. 0 or -errno
 * with a message in err (nothing in it for -ENOMEM). */
int log_match_setup(struct log_inst *li, const struct vigil_config *cfg, char *err,
		    size_t errlen);
/* Free what log_match_setup made (also after it failed). */
void log_match_free(struct log_inst *li);
/* A loop turn starts: matching may take LOG_TURN_NS of it. */
void log_turn_begin(struct log_inst *li);
/* Is this loop turn's time for matching used up? */
bool log_turn_over(const struct log_inst *li);
/* Match the complete lines b[0, len) (b[len - 1] == '\n'), the first one
 * being the partial line read so far, and report what they hold. Returns
 * how far it got: len, or the start of the first line left when the turn's
 * time ran out (always past at least one). */
size_t log_match_lines(struct log_inst *li, const char *b, size_t len, bool trunc_all);
/* The progress segments ('\r') of s[0, n): the last one matching counts. */
void log_progress_segments(struct log_inst *li, const char *s, size_t n);
/* The partial line b[0, n): report the segments a '\r' ended since the
 * last look (li->cr_done). */
void log_progress_partial(struct log_inst *li, const char *b, size_t n);
/* Inside a line cut at max_line, b[0, end) (end at its '\n' when nl):
 * report its segments; the one still being written becomes the carry. */
void log_progress_skipped(struct log_inst *li, char *b, size_t end, bool nl);

#endif
