/*
 * The log detector: follow a file like `tail -F` and report the lines that
 * match the success, failure and progress patterns, and silence (stall).
 *
 * Reading: the file is read in large blocks; the complete lines of a block are
 * searched with each pattern over the whole block (PCRE2 multiline, JIT), so a
 * quiet pattern costs one scan of the block, not one call per line. A partial
 * line stays in front of the buffer until its newline arrives; a line longer
 * than max_line is cut there and the rest skipped up to its newline.
 *
 * Rotation, with no line lost or repeated, even when several rotations
 * happened before the loop got to run:
 * - rename+create, delete+recreate: the old file is read to its end through
 *   the open descriptor; then the rotated copies (LOG.N, LOG-DATE...) made
 *   after it and not read yet, oldest first, then the file at the path. Files
 *   are told apart by device, inode and birth time; the copies that existed
 *   when we started, or that we read, are remembered as read. A renamed file
 *   is watched for LOG_LATE_MS more, for a writer that opened it before the
 *   rename and appends to it after we left it.
 * - copytruncate: a truncation is detected by size or by the first bytes
 *   changing; the copy holding what we read (same first bytes, same bytes
 *   before our offset) is found by content wherever further rotations moved
 *   it (LOG.3...), the rest of it is read, then the copies made after it,
 *   then the log from its start.
 * Limits: a copy deleted (logrotate's `rotate N`, maxage) or compressed
 * before we got to it, or moved to an olddir, cannot be read: for a
 * truncation that is logged once; compressed copies are never read; lines
 * written between logrotate's copy and its truncate are lost by logrotate
 * itself; a writer appending to a renamed file longer than LOG_LATE_MS after
 * we left it is not followed.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "vigil/plugin.h"

#define LOG_BLOCK (1u << 20)        /* one read() */
#define LOG_BUDGET (8u << 20)       /* bytes per loop callback before yielding */
#define LOG_FP 64                   /* fingerprint bytes: file head, last read */
#define LOG_PROGRESS_MS 1000        /* at most one progress event per second */
#define LOG_RETRY_MS 1000           /* folder missing: look again */
#define LOG_MAX_LINE_LIMIT (64u << 20)
#define LOG_MAX_TAIL 1000
#define LOG_MSG_LINE 256            /* bytes of a line quoted in a message */
#define LOG_MAX_SIBS 1024           /* rotated copies looked at */
#define LOG_MAX_SEEN 4096           /* rotated copies remembered as read */
#define LOG_SCAN_TRIES 4            /* readings of the folder until two agree */
#define LOG_LATE_N 4                /* renamed files watched for late writes */
#define LOG_LATE_MS 10000           /* ... for this long after we left them */

enum { PAT_FAILURE, PAT_SUCCESS, PAT_PROGRESS, PAT_N };

static const char *const pat_key[PAT_N] = {"failure", "success", "progress"};

struct log_pat {
	pcre2_code *re;
	pcre2_match_data *md;
	bool jit;
};

/* The next line a pattern matches in a block; offsets into the block. */
struct log_hit {
	bool found;
	size_t ls, le; /* line start, and its '\n' */
	size_t cs, ce; /* capture group 1, cs == SIZE_MAX when unset */
};

struct log_line {
	char *p;
	size_t len, cap;
};

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

/* A rotated copy in the log's folder. */
struct log_sib {
	struct log_id id;
	off_t size;
	uint64_t num; /* LOG.N: N; LOG-SUFFIX: UINT64_MAX */
	char name[NAME_MAX + 1];
};

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

	int ino_fd, wd_dir, wd_file;
	struct log_src cur;  /* fd -1 while the log does not exist */
	struct log_src live; /* while recovering: the truncated log, read after cur */
	bool recovering;
	struct log_id *seen; /* rotated copies read already, or older than cur */
	size_t n_seen, cap_seen;
	struct log_sibs sibs[2];
	struct log_late late[LOG_LATE_N];
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
	int64_t last_output_ms;
	bool stalled, exited;

	bool prog_emitted, prog_pct, pend, pend_pct;
	double prog_value, pend_value;
	int64_t prog_ms;

	bool warned_read, warned_match, warned_open, warned_lost;
};

static bool log_check(struct log_inst *li, size_t budget);

/* ------------------------------------------------------------ messages */

/* Length of the valid UTF-8 sequence at s, 0 when it is not one. */
static size_t log_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0], min;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		len = 3, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, min = 0x10000;
	else
		return 0;
	if (n < len)
		return 0;
	uint32_t cp = c & (0x3fu >> (len - 1));
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A message is a C string for humans: the line quoted in it is cut short and
 * its control bytes and invalid UTF-8 become '?' (the `line` field keeps the
 * raw bytes). */
static void log_quote(char *out, size_t cap, const char *line, size_t n)
{
	const unsigned char *s = (const unsigned char *)line;
	size_t o = 0, i = 0;

	while (i < n && o + 5 < cap) {
		size_t k = log_utf8_seq(s + i, n - i);
		if (k == 0 || (k == 1 && (s[i] < 0x20 || s[i] == 0x7f))) {
			out[o++] = s[i] == '\t' ? ' ' : '?';
			i++;
			continue;
		}
		memcpy(out + o, s + i, k);
		o += k;
		i += k;
	}
	if (i < n && o + 3 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void log_format_duration(int64_t ms, char *out, size_t cap)
{
	int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
	size_t o = 0;

	out[0] = '\0';
	if (h)
		o += (size_t)snprintf(out + o, cap - o, "%lldh", (long long)h);
	if (m && o < cap)
		o += (size_t)snprintf(out + o, cap - o, "%lldm", (long long)m);
	if (s && o < cap)
		o += (size_t)snprintf(out + o, cap - o, "%llds", (long long)s);
	if ((r || ms == 0) && o < cap)
		snprintf(out + o, cap - o, "%lldms", (long long)r);
}

/* -------------------------------------------------------------- events */

static void log_emit_match(struct log_inst *li, int p, const char *line, size_t n, bool trunc)
{
	const char *name = pat_key[p];
	char msg[LOG_MSG_LINE + 32];
	int k = snprintf(msg, sizeof msg, "%s line: ", name);
	struct vigil_field f[3] = {
		{.name = "pattern", .type = VIGIL_FIELD_STRING, .u.s = {name, strlen(name)}},
		{.name = "line", .type = VIGIL_FIELD_STRING, .u.s = {line, n}},
		{.name = "truncated", .type = VIGIL_FIELD_BOOL, .u.b = trunc},
	};
	struct vigil_event ev = {
		.kind = VIGIL_EV_MATCH, .message = msg, .fields = f, .n_fields = 3,
	};

	log_quote(msg + k, sizeof msg - (size_t)k, line, n);
	li->host->emit(li->ctx, &ev);
}

static void log_emit_progress(struct log_inst *li, double v, bool pct)
{
	const char *unit = pct ? "percent" : "count";
	char msg[64];
	struct vigil_field f[2] = {
		{.name = "value", .type = VIGIL_FIELD_DOUBLE, .u.d = v},
		{.name = "unit", .type = VIGIL_FIELD_STRING, .u.s = {unit, strlen(unit)}},
	};
	struct vigil_event ev = {
		.kind = VIGIL_EV_PROGRESS, .message = msg, .fields = f, .n_fields = 2,
	};

	snprintf(msg, sizeof msg, "progress %.15g%s", v, pct ? "%" : "");
	li->prog_emitted = true;
	li->prog_value = v;
	li->prog_pct = pct;
	li->prog_ms = li->host->now_ms(li->ctx);
	li->pend = false;
	li->host->emit(li->ctx, &ev);
}

static int64_t log_progress_cb(void *data)
{
	struct log_inst *li = data;

	li->progress_timer = 0;
	if (li->pend)
		log_emit_progress(li, li->pend_value, li->pend_pct);
	return VIGIL_TIMER_DONE;
}

/* A chatty log must not flood the notifiers: a changed value is reported at
 * once when the last report is a second old (or it reached 100%), otherwise
 * the latest value is kept and reported when the second is over. */
static void log_progress_offer(struct log_inst *li, double v, bool pct)
{
	int64_t now = li->host->now_ms(li->ctx);

	if (li->prog_emitted && v == li->prog_value && pct == li->prog_pct) {
		li->pend = false;
		return;
	}
	if (!li->prog_emitted || now - li->prog_ms >= LOG_PROGRESS_MS || (pct && v >= 100)) {
		log_emit_progress(li, v, pct);
		return;
	}
	li->pend = true;
	li->pend_value = v;
	li->pend_pct = pct;
	if (!li->progress_timer) {
		int64_t id = li->host->add_timer(li->ctx, li->prog_ms + LOG_PROGRESS_MS - now,
						 log_progress_cb, li);
		li->progress_timer = id > 0 ? id : 0;
	}
}

static void log_progress(struct log_inst *li, const char *s, size_t n)
{
	char tmp[64], *end;

	if (n == 0 || n >= sizeof tmp)
		return;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	double v = strtod(tmp, &end);
	if (end == tmp || v != v || v > DBL_MAX || v < -DBL_MAX)
		return;
	log_progress_offer(li, v, li->progress_percent || tmp[n - 1] == '%');
}

static int64_t log_stall_cb(void *data)
{
	struct log_inst *li = data;
	int64_t silent = li->host->now_ms(li->ctx) - li->last_output_ms;
	char dur[48], msg[80];

	if (li->exited) {
		li->stall_timer = 0;
		return VIGIL_TIMER_DONE;
	}
	if (silent < li->stall_ms)
		return li->stall_ms - silent;
	log_format_duration(li->stall_ms, dur, sizeof dur);
	snprintf(msg, sizeof msg, "no output for %s", dur);
	struct vigil_field f = {
		.name = "silent_for", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)silent / 1000.0,
	};
	struct vigil_event ev = {.kind = VIGIL_EV_STALLED, .message = msg, .fields = &f, .n_fields = 1};
	li->stalled = true;
	li->stall_timer = 0;
	li->host->emit(li->ctx, &ev);
	return VIGIL_TIMER_DONE;
}

static void log_stall_arm(struct log_inst *li)
{
	if (!li->stall_ms || li->stall_timer || li->exited)
		return;
	int64_t id = li->host->add_timer(li->ctx, li->stall_ms, log_stall_cb, li);
	li->stall_timer = id > 0 ? id : 0;
}

/* New bytes: the stall clock restarts (the running timer reads the time
 * lazily); after a stall report the timer is armed again. */
static void log_note_output(struct log_inst *li)
{
	li->last_output_ms = li->host->now_ms(li->ctx);
	if (li->stalled) {
		li->stalled = false;
		log_stall_arm(li);
	}
}

/* ------------------------------------------------------------ matching */

static int log_match(struct log_inst *li, int p, const char *s, size_t len, size_t start)
{
	struct log_pat *pt = &li->pat[p];

	if (pt->jit)
		return pcre2_jit_match(pt->re, (PCRE2_SPTR)s, len, start, 0, pt->md, li->mctx);
	return pcre2_match(pt->re, (PCRE2_SPTR)s, len, start, 0, pt->md, li->mctx);
}

static void log_match_failed(struct log_inst *li, int rc)
{
	PCRE2_UCHAR msg[120];

	if (li->warned_match)
		return;
	li->warned_match = true;
	pcre2_get_error_message(rc, msg, sizeof msg);
	li->host->log(li->ctx, VIGIL_LOG_WARN, "pattern match failed: %s", (const char *)msg);
}

/* Find the first line at or after pos (a line start) that pattern p matches in
 * b[0, len), which ends with '\n'. A match running over a newline, or a line
 * longer than max_line, is checked again on that line alone. */
static void log_next(struct log_inst *li, int p, const char *b, size_t len, size_t pos,
		     struct log_hit *h)
{
	h->found = false;
	while (pos < len) {
		int rc = log_match(li, p, b, len, pos);
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(li->pat[p].md);
		size_t s = pos, e = pos, base = 0;

		if (rc == PCRE2_ERROR_NOMATCH)
			return;
		if (rc >= 0)
			s = ov[0], e = ov[1];
		if (s >= len)
			return;
		const char *nl = memchr(b + s, '\n', len - s);
		size_t le = (size_t)(nl - b);
		const char *pl = s > pos ? memrchr(b + pos, '\n', s - pos) : NULL;
		size_t ls = pl ? (size_t)(pl - b) + 1 : pos;

		if (rc < 0 || e > le || le - ls > li->max_line) {
			size_t n = le - ls < li->max_line ? le - ls : li->max_line;
			if (rc < 0)
				log_match_failed(li, rc);
			rc = log_match(li, p, b + ls, n, 0);
			if (rc < 0) {
				if (rc != PCRE2_ERROR_NOMATCH)
					log_match_failed(li, rc);
				pos = le + 1;
				continue;
			}
			base = ls;
		}
		h->found = true;
		h->ls = ls;
		h->le = le;
		h->cs = SIZE_MAX;
		if (pcre2_get_ovector_count(li->pat[p].md) >= 2 && ov[2] != PCRE2_UNSET) {
			h->cs = base + ov[2];
			h->ce = base + ov[3];
		}
		return;
	}
}

static void log_ring_push(struct log_inst *li, const char *s, size_t n)
{
	struct log_line *l;

	if (n > li->max_line)
		n = li->max_line;
	if (li->ring_count < li->tail_n) {
		l = &li->ring[(li->ring_pos + li->ring_count++) % li->tail_n];
	} else {
		l = &li->ring[li->ring_pos];
		li->ring_pos = (li->ring_pos + 1) % li->tail_n;
	}
	if (l->cap < n) {
		char *p = realloc(l->p, n);
		if (!p) {
			l->len = 0;
			return;
		}
		l->p = p;
		l->cap = n;
	}
	if (n)
		memcpy(l->p, s, n);
	l->len = n;
}

/* Keep the last tail_n lines of the block: only those are copied. */
static void log_ring_update(struct log_inst *li, const char *b, size_t len)
{
	size_t first = 0, end = len - 1;

	if (!li->tail_n)
		return;
	for (size_t cnt = 1;; cnt++) {
		const char *nl = end > 0 ? memrchr(b, '\n', end) : NULL;
		if (!nl)
			break;
		if (cnt == li->tail_n) {
			first = (size_t)(nl - b) + 1;
			break;
		}
		end = (size_t)(nl - b);
	}
	for (size_t s = first; s < len;) {
		const char *nl = memchr(b + s, '\n', len - s);
		size_t e = (size_t)(nl - b);
		log_ring_push(li, b + s, e - s);
		s = e + 1;
	}
}

/* Complete lines b[0, len), len > 0, b[len - 1] == '\n'. Per line: failure,
 * then success, then progress; lines in order. */
static void log_scan(struct log_inst *li, const char *b, size_t len, bool trunc_all)
{
	struct log_hit h[PAT_N];

	for (int p = 0; p < PAT_N; p++) {
		h[p].found = false;
		if (li->pat[p].re)
			log_next(li, p, b, len, 0, &h[p]);
	}
	for (;;) {
		size_t ls = SIZE_MAX;
		for (int p = 0; p < PAT_N; p++)
			if (h[p].found && h[p].ls < ls)
				ls = h[p].ls;
		if (ls == SIZE_MAX)
			break;
		for (int p = 0; p < PAT_N; p++) {
			if (!h[p].found || h[p].ls != ls)
				continue;
			size_t n = h[p].le - ls;
			bool trunc = trunc_all || n > li->max_line;
			if (p == PAT_PROGRESS) {
				if (h[p].cs != SIZE_MAX)
					log_progress(li, b + h[p].cs, h[p].ce - h[p].cs);
			} else {
				log_emit_match(li, p, b + ls,
					       n > li->max_line ? li->max_line : n, trunc);
			}
			log_next(li, p, b, len, h[p].le + 1, &h[p]);
		}
	}
	log_ring_update(li, b, len);
}

/* n new bytes sit in buf after the carried partial line. */
static void log_feed(struct log_inst *li, size_t n)
{
	char *b = li->buf;
	size_t len = li->carry + n, start = 0;

	if (li->skipping) {
		char *nl = memchr(b, '\n', len);
		if (!nl) {
			li->carry = 0;
			return;
		}
		start = (size_t)(nl - b) + 1;
		li->skipping = false;
	}
	char *last = start < len ? memrchr(b + start, '\n', len - start) : NULL;
	if (last) {
		size_t end = (size_t)(last - b) + 1;
		log_scan(li, b + start, end - start, false);
		start = end;
	}
	size_t rest = len - start;
	if (rest > li->max_line) {
		/* cut here: this part is the line, the rest is skipped */
		b[start + li->max_line] = '\n';
		log_scan(li, b + start, li->max_line + 1, true);
		li->skipping = true;
		li->carry = 0;
		return;
	}
	memmove(b, b + start, rest);
	li->carry = rest;
}

/* ------------------------------------------------------------- reading */

static void log_remember_last(struct log_inst *li, const char *s, size_t n)
{
	if (n >= LOG_FP) {
		memcpy(li->last, s + n - LOG_FP, LOG_FP);
		li->last_len = LOG_FP;
		return;
	}
	size_t keep = li->last_len + n > LOG_FP ? LOG_FP - n : li->last_len;
	memmove(li->last, li->last + li->last_len - keep, keep);
	memcpy(li->last + keep, s, n);
	li->last_len = keep + n;
}

static ssize_t log_pread_full(int fd, char *b, size_t n, off_t off)
{
	ssize_t r;

	do
		r = pread(fd, b, n, off);
	while (r < 0 && errno == EINTR);
	return r;
}

/* The fingerprints of the file's content: its first bytes, and the bytes
 * before our offset. */
static void log_read_fingerprints(struct log_inst *li)
{
	ssize_t r = log_pread_full(li->cur.fd, li->cur.head, LOG_FP, 0);
	li->cur.head_len = r > 0 ? (size_t)r : 0;
	size_t k = li->cur.off < LOG_FP ? (size_t)li->cur.off : LOG_FP;
	r = log_pread_full(li->cur.fd, li->last, k, li->cur.off - (off_t)k);
	li->last_len = r == (ssize_t)k ? k : 0;
}

/* Does the file hold the same content as cur up to cur.off? */
static bool log_holds_ours(struct log_inst *li, int fd, off_t size, bool *read_past)
{
	char tmp[LOG_FP];
	const struct log_src *c = &li->cur;

	*read_past = false;
	if (log_pread_full(fd, tmp, c->head_len, 0) != (ssize_t)c->head_len ||
	    memcmp(tmp, c->head, c->head_len) != 0)
		return false;
	if (size < c->off) {
		/* a copy taken before we read what followed: nothing left in it */
		*read_past = c->head_len > 0;
		return false;
	}
	return log_pread_full(fd, tmp, li->last_len, c->off - (off_t)li->last_len) ==
		       (ssize_t)li->last_len &&
	       memcmp(tmp, li->last, li->last_len) == 0;
}

static void log_watch_file(struct log_inst *li)
{
	char p[64];
	uint32_t mask = IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB;

	if (li->wd_file >= 0)
		inotify_rm_watch(li->ino_fd, li->wd_file);
	/* through the fd: the path may already name another file */
	snprintf(p, sizeof p, "/proc/self/fd/%d", li->cur.fd);
	li->wd_file = inotify_add_watch(li->ino_fd, p, mask);
	if (li->wd_file < 0)
		li->wd_file = inotify_add_watch(li->ino_fd, li->path, mask);
}

/* The end of a byte stream: a last line without its newline counts. */
static void log_flush_partial(struct log_inst *li)
{
	if (li->carry > 0) {
		li->buf[li->carry] = '\n';
		log_scan(li, li->buf, li->carry + 1, false);
	}
	li->carry = 0;
	li->skipping = false;
}

static int64_t log_late_cb(void *data);

/* cur is left behind after a rename: watch it a while for late writes. */
static void log_late_add(struct log_inst *li)
{
	struct log_late *l = &li->late[0];

	for (size_t i = 1; i < LOG_LATE_N && l->fd >= 0; i++)
		if (li->late[i].fd < 0 || li->late[i].left_ms < l->left_ms)
			l = &li->late[i];
	if (l->fd >= 0) {
		if (l->wd >= 0)
			inotify_rm_watch(li->ino_fd, l->wd);
		close(l->fd);
	}
	l->fd = li->cur.fd;
	l->off = li->cur.off;
	l->wd = li->wd_file; /* its IN_MODIFY still wakes us */
	l->left_ms = li->host->now_ms(li->ctx);
	li->wd_file = -1;
	if (!li->late_timer) {
		int64_t id = li->host->add_timer(li->ctx, LOG_LATE_MS, log_late_cb, li);
		li->late_timer = id > 0 ? id : 0;
	}
}

static void log_late_close(struct log_inst *li, struct log_late *l)
{
	if (l->wd >= 0 && l->wd != li->wd_file && l->wd != li->wd_dir)
		inotify_rm_watch(li->ino_fd, l->wd);
	close(l->fd);
	l->fd = l->wd = -1;
}

/* Lines appended to a file we had left: read them between two blocks of
 * the current one, as a stream of their own. */
static size_t log_late_read(struct log_inst *li, struct log_late *l, off_t size, size_t budget)
{
	size_t keep = li->carry, done = 0;
	bool skip = li->skipping;
	char *stash = keep ? malloc(keep) : NULL;

	if (keep && !stash)
		return 0; /* next time */
	if (keep)
		memcpy(stash, li->buf, keep);
	li->carry = 0;
	li->skipping = false;
	while (l->off < size && done < budget) {
		size_t want = (uint64_t)(size - l->off) < LOG_BLOCK ? (size_t)(size - l->off) : LOG_BLOCK;
		ssize_t n = log_pread_full(l->fd, li->buf + li->carry, want, l->off);
		if (n <= 0)
			break;
		l->off += n;
		done += (size_t)n;
		log_note_output(li);
		log_feed(li, (size_t)n);
	}
	log_flush_partial(li);
	if (keep)
		memcpy(li->buf, stash, keep);
	free(stash);
	li->carry = keep;
	li->skipping = skip;
	return done;
}

/* Read what was appended to the files we left; forget those left long ago.
 * One fstat each per callback, none per line. Bytes read. */
static size_t log_late_check(struct log_inst *li, size_t budget)
{
	int64_t now = li->host->now_ms(li->ctx);
	size_t done = 0;
	struct stat st;

	for (size_t i = 0; i < LOG_LATE_N; i++) {
		struct log_late *l = &li->late[i];
		if (l->fd < 0)
			continue;
		if (fstat(l->fd, &st) < 0) {
			log_late_close(li, l);
			continue;
		}
		if (st.st_size < l->off)
			l->off = st.st_size; /* truncated: what follows is new */
		if (st.st_size > l->off && done < budget)
			done += log_late_read(li, l, st.st_size, budget - done);
		if (now - l->left_ms >= LOG_LATE_MS && l->off >= st.st_size)
			log_late_close(li, l);
	}
	return done;
}

static int64_t log_late_cb(void *data)
{
	struct log_inst *li = data;
	int64_t next = -1, now = li->host->now_ms(li->ctx);

	log_late_check(li, SIZE_MAX);
	for (size_t i = 0; i < LOG_LATE_N; i++)
		if (li->late[i].fd >= 0 && (next < 0 || li->late[i].left_ms + LOG_LATE_MS - now < next))
			next = li->late[i].left_ms + LOG_LATE_MS - now;
	if (next >= 0)
		return next > 0 ? next : 1;
	li->late_timer = 0;
	return VIGIL_TIMER_DONE;
}

/* Read fd from `off` from now on. At offset 0 it is another stream: the
 * partial line of the previous one ends there. */
static void log_switch(struct log_inst *li, int fd, const struct log_id *id, off_t off)
{
	if (off == 0 && li->buf)
		log_flush_partial(li);
	if (li->cur.fd >= 0 && li->cur.fd != fd && li->cur.fd != li->live.fd) {
		if (li->leaving)
			log_late_add(li);
		else
			close(li->cur.fd);
	}
	li->leaving = false;
	li->cur.fd = fd;
	li->cur.id = *id;
	li->cur.off = off;
	lseek(fd, off, SEEK_SET);
	log_read_fingerprints(li);
	if (li->ino_fd >= 0)
		log_watch_file(li);
}

/* ------------------------------------------------------------ rotation */

static int log_statx(int dirfd, const char *name, int flags, struct log_id *id, off_t *size,
		     mode_t *mode)
{
	struct statx sx;

	if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0)
		return -errno;
	id->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	id->ino = sx.stx_ino;
	id->btime = sx.stx_mask & STATX_BTIME
			    ? (int64_t)sx.stx_btime.tv_sec * 1000000000 + sx.stx_btime.tv_nsec
			    : 0;
	*size = (off_t)sx.stx_size;
	*mode = sx.stx_mode;
	return 0;
}

/* Same file: device and inode, and the birth time where both are known (a
 * deleted copy's inode number may be given to the next new file). */
static bool log_id_eq(const struct log_id *a, const struct log_id *b)
{
	return a->dev == b->dev && a->ino == b->ino &&
	       (!a->btime || !b->btime || a->btime == b->btime);
}

static bool log_compressed(const char *name)
{
	static const char *const ext[] = {"gz", "bz2", "xz", "zst", "lz4", "lzma", "lz",
					  "lzo", "Z", "zip", "br"};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot && i < sizeof ext / sizeof ext[0]; i++)
		if (strcmp(dot + 1, ext[i]) == 0)
			return true;
	return false;
}

/* A rotated copy's name: LOG.N (num N), or LOG-<digit>... (dates,
 * logrotate's .backup; num UINT64_MAX). Compressed copies are not read. */
static bool log_sib_name(const struct log_inst *li, const char *n, uint64_t *num)
{
	char *end;

	if (strncmp(n, li->base, li->base_len) != 0)
		return false;
	n += li->base_len;
	if (n[0] == '.' && n[1] >= '0' && n[1] <= '9') {
		errno = 0;
		*num = strtoull(n + 1, &end, 10);
		return *end == '\0' && errno == 0 && *num != UINT64_MAX;
	}
	if (n[0] == '-' && n[1] >= '0' && n[1] <= '9' && !log_compressed(n)) {
		*num = UINT64_MAX;
		return true;
	}
	return false;
}

/* Older first: by birth time where known; in a tie (timestamps are coarse)
 * as logrotate names them: LOG-DATE by name before LOG.N, LOG.N by N falling. */
static int log_sib_cmp(const struct log_sib *a, const struct log_sib *b)
{
	if (a->id.btime && b->id.btime && a->id.btime != b->id.btime)
		return a->id.btime < b->id.btime ? -1 : 1;
	if (a->num != b->num)
		return a->num > b->num ? -1 : 1;
	return a->num == UINT64_MAX ? strcmp(a->name, b->name) : 0;
}

static int log_scan_once(struct log_inst *li, struct log_sibs *s)
{
	DIR *d = opendir(li->dir);

	s->n = 0;
	if (!d)
		return -errno;
	for (struct dirent *de; (de = readdir(d));) {
		uint64_t num;
		mode_t mode;

		if (!log_sib_name(li, de->d_name, &num))
			continue;
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 32;
			struct log_sib *v = cap <= LOG_MAX_SIBS ? realloc(s->v, cap * sizeof *v) : NULL;
			if (!v)
				break; /* more than LOG_MAX_SIBS copies: the rest are not read */
			s->v = v;
			s->cap = cap;
		}
		struct log_sib *e = &s->v[s->n];
		if (log_statx(dirfd(d), de->d_name, 0, &e->id, &e->size, &mode) < 0 ||
		    !S_ISREG(mode))
			continue;
		e->num = num;
		memcpy(e->name, de->d_name, strlen(de->d_name) + 1);
		s->n++;
	}
	closedir(d);
	return 0;
}

static bool log_sibs_same(const struct log_sibs *a, const struct log_sibs *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!log_id_eq(&a->v[i].id, &b->v[i].id) || strcmp(a->v[i].name, b->v[i].name))
			return false;
	return true;
}

static bool log_seen_has(const struct log_inst *li, const struct log_id *id)
{
	for (size_t i = 0; i < li->n_seen; i++)
		if (log_id_eq(&li->seen[i], id))
			return true;
	return false;
}

static void log_seen_add(struct log_inst *li, const struct log_id *id)
{
	if (log_seen_has(li, id))
		return;
	if (li->n_seen == li->cap_seen) {
		size_t cap = li->cap_seen ? li->cap_seen * 2 : 32;
		struct log_id *v = cap <= LOG_MAX_SEEN ? realloc(li->seen, cap * sizeof *v) : NULL;
		if (!v) {
			if (!li->n_seen)
				return;
			/* forget the oldest */
			memmove(li->seen, li->seen + 1, --li->n_seen * sizeof *li->seen);
		} else {
			li->seen = v;
			li->cap_seen = cap;
		}
	}
	li->seen[li->n_seen++] = *id;
}

/* Forget the files that are gone from the folder. */
static void log_seen_prune(struct log_inst *li, const struct log_sibs *s)
{
	size_t k = 0;

	for (size_t i = 0; i < li->n_seen; i++) {
		bool present = false;
		for (size_t j = 0; j < s->n && !present; j++)
			present = log_id_eq(&li->seen[i], &s->v[j].id);
		if (present)
			li->seen[k++] = li->seen[i];
	}
	li->n_seen = k;
}

/* The rotated copies in the folder now. readdir() while logrotate renames
 * may show a file twice or not at all, so the folder is read until two
 * readings agree. NULL when it cannot be read. */
static const struct log_sibs *log_siblings(struct log_inst *li)
{
	struct log_sibs t;

	if (log_scan_once(li, &li->sibs[0]) < 0)
		return NULL;
	for (int i = 0; i < LOG_SCAN_TRIES; i++) {
		if (log_scan_once(li, &li->sibs[1]) < 0)
			return NULL;
		if (log_sibs_same(&li->sibs[0], &li->sibs[1])) {
			log_seen_prune(li, &li->sibs[0]);
			break;
		}
		t = li->sibs[0];
		li->sibs[0] = li->sibs[1];
		li->sibs[1] = t;
	}
	return &li->sibs[0];
}

/* Everything rotated so far came before what we read now. */
static void log_seen_all(struct log_inst *li)
{
	const struct log_sibs *s = log_siblings(li);

	for (size_t i = 0; s && i < s->n; i++)
		log_seen_add(li, &s->v[i].id);
}

static bool log_unread(const struct log_inst *li, const struct log_id *id)
{
	return !log_seen_has(li, id) && !log_id_eq(id, &li->cur.id) &&
	       (li->live.fd < 0 || !log_id_eq(id, &li->live.id));
}

/* The oldest rotated copy not read yet, or NULL. */
static const struct log_sib *log_oldest_unread(struct log_inst *li, const struct log_sibs *s)
{
	const struct log_sib *best = NULL;

	for (size_t i = 0; i < s->n; i++)
		if (log_unread(li, &s->v[i].id) && (!best || log_sib_cmp(&s->v[i], best) < 0))
			best = &s->v[i];
	return best;
}

/* Open a rotated copy; -ESTALE when its name now belongs to another file. */
static int log_open_sib(struct log_inst *li, const struct log_sib *e, off_t *size)
{
	char p[PATH_MAX];
	struct log_id id;
	mode_t mode;
	int fd;

	if ((size_t)snprintf(p, sizeof p, "%s/%s", li->dir, e->name) >= sizeof p)
		return -ENAMETOOLONG;
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (log_statx(fd, "", AT_EMPTY_PATH, &id, size, &mode) < 0 || !log_id_eq(&id, &e->id)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* Open the path; its fd or -errno. */
static int log_open_at_path(struct log_inst *li, struct log_id *id, off_t *size)
{
	mode_t mode;
	int e, fd = open(li->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0)
		return -errno;
	e = log_statx(fd, "", AT_EMPTY_PATH, id, size, &mode);
	if (e == 0 && !S_ISREG(mode)) {
		if (!li->warned_open)
			li->host->log(li->ctx, VIGIL_LOG_WARN, "%s: not a regular file", li->path);
		li->warned_open = true;
		e = -EINVAL;
	}
	if (e < 0) {
		close(fd);
		return e;
	}
	li->warned_open = false;
	return fd;
}

/* Follow the file at the path, from its end or its start, taking whatever
 * was rotated before as read. 0 or -errno. */
static int log_open_path(struct log_inst *li, bool at_end)
{
	struct log_id id;
	off_t size;
	int fd = log_open_at_path(li, &id, &size);

	if (fd < 0)
		return fd;
	log_seen_all(li);
	log_switch(li, fd, &id, at_end ? size : 0);
	return 0;
}

/* The truncated log continues what cur read (it was copied, not truncated
 * yet): go on reading it at cur.off rather than from its start. */
static bool log_continues(struct log_inst *li, int fd)
{
	struct stat st;
	bool read_past;

	if (fd == li->cur.fd || li->cur.off == 0 || fstat(fd, &st) < 0)
		return false;
	return log_holds_ours(li, fd, st.st_size, &read_past);
}

static void log_end_recovery(struct log_inst *li)
{
	struct log_src live = li->live;
	off_t off = log_continues(li, live.fd) ? li->cur.off : 0;

	li->live.fd = -1;
	li->recovering = false;
	log_switch(li, live.fd, &live.id, off);
}

/* cur was read to its end and is behind us: go on with the oldest rotated
 * copy not read yet (made by rotations that happened before we got to run),
 * then the truncated log (copytruncate) or the file at the path (a rename,
 * or delete and create). The path is opened before the folder is read, so a
 * file rotated before that open is among the copies. False when there is
 * nothing to go on with yet. */
static bool log_next_file(struct log_inst *li)
{
	for (int tries = 0; tries < LOG_SCAN_TRIES; tries++) {
		struct log_id id;
		off_t size;
		int pfd = li->live.fd >= 0 ? -1 : log_open_at_path(li, &id, &size);
		const struct log_sibs *s = log_siblings(li);
		const struct log_sib *e = s ? log_oldest_unread(li, s) : NULL;

		if (e && pfd >= 0 && log_id_eq(&e->id, &id))
			e = NULL; /* renamed back to the path meanwhile */
		if (e) {
			struct log_id eid = e->id;
			int fd = log_open_sib(li, e, &size);
			if (pfd >= 0)
				close(pfd);
			if (fd == -ESTALE)
				continue;
			log_seen_add(li, &eid); /* read now, or unreadable: skipped */
			if (fd >= 0) {
				log_switch(li, fd, &eid, 0);
				return true;
			}
			continue;
		}
		if (li->live.fd >= 0) {
			log_end_recovery(li);
			return true;
		}
		if (pfd < 0)
			return false;
		log_switch(li, pfd, &id, 0);
		return true;
	}
	if (li->live.fd >= 0) {
		log_end_recovery(li);
		return true;
	}
	return false;
}

/* Read to the end: when the path names another file now, cur is done. */
static bool log_follow(struct log_inst *li)
{
	struct stat st;

	if (stat(li->path, &st) < 0)
		return false; /* gone: wait for the next file to appear */
	if (st.st_dev == li->cur.id.dev && st.st_ino == li->cur.id.ino)
		return false;
	log_seen_add(li, &li->cur.id);
	li->leaving = true;
	bool moved = log_next_file(li);
	li->leaving = false;
	return moved;
}

/* The newest rotated copy holding what we read, up to cur.off at least
 * (*fd open on it), or failing that the newest holding the start of it
 * only, taken before we read the rest (*fd -1: nothing left to read in it).
 * NULL when none holds our first bytes. */
static const struct log_sib *log_find_copy(struct log_inst *li, const struct log_sibs *s,
					   int *fd)
{
	const struct log_sib *best = NULL, *past = NULL;

	*fd = -1;
	for (size_t i = 0; i < s->n; i++) {
		const struct log_sib *e = &s->v[i];
		off_t size;
		bool read_past;

		if (e->size < (off_t)li->cur.head_len || (best && log_sib_cmp(e, best) < 0))
			continue;
		int f = log_open_sib(li, e, &size);
		if (f < 0)
			continue;
		if (log_holds_ours(li, f, size, &read_past)) {
			if (*fd >= 0)
				close(*fd);
			best = e;
			*fd = f;
			continue;
		}
		if (read_past && (!past || log_sib_cmp(e, past) > 0))
			past = e;
		close(f);
	}
	return best ? best : past;
}

/* Truncated in place (copytruncate): the log is kept open as `live`; what
 * we had not read is taken from the rotated copy holding what we read, then
 * from the copies made after it, oldest first, then the log from its start.
 * The copy is found by content (first bytes, and the bytes before our
 * offset), wherever further rotations moved it (LOG.1, LOG.3, LOG-DATE). */
static void log_truncated(struct log_inst *li)
{
	const struct log_sibs *s = li->cur.off > 0 ? log_siblings(li) : NULL;
	int fd = -1;
	const struct log_sib *copy = s ? log_find_copy(li, s, &fd) : NULL;
	struct log_id id;

	li->live = li->cur;
	li->recovering = true;
	if (copy) {
		/* it and the copies before it hold nothing we have not read */
		id = copy->id;
		for (size_t i = 0; i < s->n; i++)
			if (log_sib_cmp(&s->v[i], copy) <= 0)
				log_seen_add(li, &s->v[i].id);
	} else if (li->cur.off > 0 && !li->warned_lost) {
		/* deleted by logrotate's `rotate N` before we got to run, compressed,
		 * or moved to an olddir: those lines are gone for us */
		li->warned_lost = true;
		li->host->log(li->ctx, VIGIL_LOG_WARN,
			      "%s truncated and no rotated copy holds the lines not read yet "
			      "(deleted, compressed or moved away): they are skipped",
			      li->path);
	}
	if (fd >= 0) {
		li->host->log(li->ctx, VIGIL_LOG_INFO,
			      "%s truncated: reading the rest of the rotated copy", li->path);
		log_switch(li, fd, &id, li->cur.off);
		return;
	}
	log_next_file(li);
}

/* Shorter than our offset, or other first bytes: truncated (and maybe
 * written again past our offset already). */
static bool log_is_truncated(struct log_inst *li)
{
	struct stat st;
	char tmp[LOG_FP];

	if (fstat(li->cur.fd, &st) < 0)
		return false;
	if (st.st_size < li->cur.off)
		return true;
	ssize_t r = log_pread_full(li->cur.fd, tmp, LOG_FP, 0);
	if (r < 0)
		return false;
	if ((size_t)r < li->cur.head_len || memcmp(tmp, li->cur.head, li->cur.head_len) != 0)
		return true;
	if ((size_t)r > li->cur.head_len) {
		memcpy(li->cur.head, tmp, (size_t)r);
		li->cur.head_len = (size_t)r;
	}
	return false;
}

static ssize_t log_read_block(struct log_inst *li)
{
	ssize_t n;

	do
		n = read(li->cur.fd, li->buf + li->carry, LOG_BLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n > 0) {
		li->cur.off += n;
		log_remember_last(li, li->buf + li->carry, (size_t)n);
	}
	return n;
}

/* Read what is there, following rotations, until `budget` bytes were read.
 * Returns true when more may be waiting. */
static bool log_check(struct log_inst *li, size_t budget)
{
	size_t done = 0;

	done += log_late_check(li, budget);
	for (;;) {
		ssize_t n = 0;

		if (li->cur.fd < 0 && !log_next_file(li))
			return false;
		if (!li->recovering && log_is_truncated(li))
			log_truncated(li);
		while (done < budget && (n = log_read_block(li)) > 0) {
			log_note_output(li);
			log_feed(li, (size_t)n);
			done += (size_t)n;
		}
		if (n > 0)
			return true;
		if (n < 0) {
			if (!li->warned_read)
				li->host->log(li->ctx, VIGIL_LOG_WARN, "reading %s: %s", li->path,
					      strerror((int)-n));
			li->warned_read = true;
			return false;
		}
		li->warned_read = false;
		if (li->recovering ? !log_next_file(li) : !log_follow(li))
			return false;
	}
}

static int64_t log_resume_cb(void *data)
{
	struct log_inst *li = data;

	if (log_check(li, LOG_BUDGET))
		return 0;
	li->resume_timer = 0;
	return VIGIL_TIMER_DONE;
}

/* Read now, and continue from a 0 ms timer when the budget ran out, so a
 * large catch-up never holds the loop. */
static void log_kick(struct log_inst *li)
{
	if (li->resume_timer || !log_check(li, LOG_BUDGET))
		return;
	int64_t id = li->host->add_timer(li->ctx, 0, log_resume_cb, li);
	li->resume_timer = id > 0 ? id : 0;
}

/* ------------------------------------------------------------- inotify */

static int log_watch_dir(struct log_inst *li)
{
	uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR;

	li->wd_dir = inotify_add_watch(li->ino_fd, li->dir, mask);
	return li->wd_dir < 0 ? -errno : 0;
}

static int64_t log_retry_cb(void *data)
{
	struct log_inst *li = data;

	if (log_watch_dir(li) < 0)
		return LOG_RETRY_MS;
	li->retry_timer = 0;
	log_kick(li);
	return VIGIL_TIMER_DONE;
}

static void log_retry_arm(struct log_inst *li)
{
	if (li->retry_timer)
		return;
	int64_t id = li->host->add_timer(li->ctx, LOG_RETRY_MS, log_retry_cb, li);
	li->retry_timer = id > 0 ? id : 0;
}

static void log_inotify_cb(void *data, int fd, uint32_t revents)
{
	struct log_inst *li = data;
	char b[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool relevant = false;
	ssize_t n;

	while ((n = read(fd, b, sizeof b)) > 0) {
		for (char *p = b; p < b + n;) {
			const struct inotify_event *e = (const void *)p;
			if (e->wd == li->wd_dir && e->wd >= 0) {
				if (e->mask & IN_IGNORED) {
					li->wd_dir = -1; /* the folder went away */
					log_retry_arm(li);
				}
				if (e->len && strcmp(e->name, li->base) == 0)
					relevant = true;
			} else {
				relevant = true;
			}
			p += sizeof *e + e->len;
		}
	}
	if (relevant)
		log_kick(li);
}

/* ----------------------------------------------------------- lifecycle */

static int log_compile(struct log_inst *li, int p, const char *text, char *err, size_t errlen)
{
	pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
	int ec;
	PCRE2_SIZE eo;
	PCRE2_UCHAR msg[120];

	if (!cc)
		return -ENOMEM;
	/* no UTF: a log may hold anything; '\n' alone ends a line */
	pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
	li->pat[p].re = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, PCRE2_MULTILINE,
				      &ec, &eo, cc);
	pcre2_compile_context_free(cc);
	if (!li->pat[p].re) {
		pcre2_get_error_message(ec, msg, sizeof msg);
		snprintf(err, errlen, "%s: %s at offset %zu", pat_key[p], (const char *)msg,
			 (size_t)eo);
		return -EINVAL;
	}
	if (p == PAT_PROGRESS) {
		uint32_t groups = 0;
		pcre2_pattern_info(li->pat[p].re, PCRE2_INFO_CAPTURECOUNT, &groups);
		if (groups < 1) {
			snprintf(err, errlen, "progress: the pattern needs a capture group "
					      "around the number, e.g. ([0-9]+)%%");
			return -EINVAL;
		}
	}
	li->pat[p].jit = pcre2_jit_compile(li->pat[p].re, PCRE2_JIT_COMPLETE) == 0;
	li->pat[p].md = pcre2_match_data_create_from_pattern(li->pat[p].re, NULL);
	return li->pat[p].md ? 0 : -ENOMEM;
}

static int log_split_path(struct log_inst *li, const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');

	if (slash && slash[1] == '\0') {
		snprintf(err, errlen, "path: %s names a folder, not a file", path);
		return -EINVAL;
	}
	li->path = strdup(path);
	li->base = strdup(slash ? slash + 1 : path);
	li->base_len = li->base ? strlen(li->base) : 0;
	if (!slash)
		li->dir = strdup(".");
	else if (slash == path)
		li->dir = strdup("/");
	else
		li->dir = strndup(path, (size_t)(slash - path));
	return li->path && li->base && li->dir ? 0 : -ENOMEM;
}

static int log_options(struct log_inst *li, const struct vigil_config *cfg, char *err,
		       size_t errlen)
{
	const struct vigil_value *v;

	v = vigil_config_get(cfg, "from");
	if (v && strcmp(v->text, "start") != 0 && strcmp(v->text, "end") != 0) {
		snprintf(err, errlen, "from: must be start or end, not %s", v->text);
		return -EINVAL;
	}
	li->from_start = v && strcmp(v->text, "start") == 0;
	v = vigil_config_get(cfg, "max_line");
	li->max_line = 64 * 1024;
	if (v) {
		if (v->number < 1 || v->number > (int64_t)LOG_MAX_LINE_LIMIT) {
			snprintf(err, errlen, "max_line: %s (%lld) is not a size from 1 to 64M",
				 v->text, (long long)v->number);
			return -EINVAL;
		}
		li->max_line = (size_t)v->number;
	}
	v = vigil_config_get(cfg, "tail_lines");
	li->tail_n = 10;
	if (v) {
		if (v->number < 0 || v->number > LOG_MAX_TAIL) {
			snprintf(err, errlen, "tail_lines: must be from 0 to %d", LOG_MAX_TAIL);
			return -EINVAL;
		}
		li->tail_n = (size_t)v->number;
	}
	v = vigil_config_get(cfg, "stall");
	if (v && v->number <= 0) {
		snprintf(err, errlen, "stall: must be longer than 0");
		return -EINVAL;
	}
	li->stall_ms = v ? v->number : 0;
	return 0;
}

static void log_destroy(void *instance);

static int log_create(const struct vigil_host *host, struct vigil_ctx *ctx,
		      const struct vigil_config *cfg, void **instance, char *err, size_t errlen)
{
	struct log_inst *li = calloc(1, sizeof *li);
	const struct vigil_value *v = vigil_config_get(cfg, "path");
	int rc;

	if (!li)
		return -ENOMEM;
	li->host = host;
	li->ctx = ctx;
	li->ino_fd = li->wd_dir = li->wd_file = li->cur.fd = li->live.fd = -1;
	for (size_t i = 0; i < LOG_LATE_N; i++)
		li->late[i].fd = li->late[i].wd = -1;
	rc = v ? log_split_path(li, v->text, err, errlen) : -EINVAL;
	if (!v)
		snprintf(err, errlen, "path: required");
	if (rc == 0)
		rc = log_options(li, cfg, err, errlen);
	for (int p = 0; p < PAT_N && rc == 0; p++) {
		v = vigil_config_get(cfg, pat_key[p]);
		if (v)
			rc = log_compile(li, p, v->text, err, errlen);
		if (v && p == PAT_PROGRESS)
			li->progress_percent = strchr(v->text, '%') != NULL;
	}
	if (rc == 0) {
		li->mctx = pcre2_match_context_create(NULL);
		li->jstack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
		li->ring = calloc(li->tail_n ? li->tail_n : 1, sizeof *li->ring);
		li->tail_vec = calloc(li->tail_n ? li->tail_n : 1, sizeof *li->tail_vec);
		if (!li->mctx || !li->jstack || !li->ring || !li->tail_vec)
			rc = -ENOMEM;
		else
			pcre2_jit_stack_assign(li->mctx, NULL, li->jstack);
	}
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		log_destroy(li);
		return rc;
	}
	if (li->pat[PAT_SUCCESS].re)
		host->expect(ctx, VIGIL_CRIT_SUCCESS);
	if (li->pat[PAT_FAILURE].re)
		host->expect(ctx, VIGIL_CRIT_FAILURE);
	*instance = li;
	return 0;
}

static int log_start(void *instance, char *err, size_t errlen)
{
	struct log_inst *li = instance;
	int rc;

	li->buf = malloc(li->max_line + LOG_BLOCK + 1);
	if (!li->buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	li->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (li->ino_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "inotify: %s", strerror(errno));
		return rc;
	}
	rc = li->host->watch_fd(li->ctx, li->ino_fd, EPOLLIN, log_inotify_cb, li);
	if (rc < 0) {
		snprintf(err, errlen, "watching inotify: %s", strerror(-rc));
		close(li->ino_fd);
		li->ino_fd = -1;
		return rc;
	}
	if (log_watch_dir(li) < 0)
		log_retry_arm(li);
	/* a log that exists now is followed from its end (unless from=start);
	 * one that appears later is read from its start */
	if (log_open_path(li, !li->from_start) < 0)
		log_seen_all(li);
	li->last_output_ms = li->host->now_ms(li->ctx);
	log_stall_arm(li);
	log_kick(li);
	return 0;
}

static void log_on_event(void *instance, const struct vigil_record *rec)
{
	struct log_inst *li = instance;
	const char *kind = rec->event ? rec->event->kind : NULL;

	if (!kind)
		return;
	if (strcmp(kind, VIGIL_EV_EXITED) == 0) {
		/* a finished job is not stalled */
		li->exited = true;
		if (li->stall_timer)
			li->host->cancel_timer(li->ctx, li->stall_timer);
		li->stall_timer = 0;
	} else if (strcmp(kind, VIGIL_EV_ATTACHED) == 0 && li->exited) {
		li->exited = false;
		li->stalled = false;
		li->last_output_ms = li->host->now_ms(li->ctx);
		log_stall_arm(li);
	}
}

static void log_report_tail(struct log_inst *li)
{
	const struct vigil_host *h = li->host;

	if (h->size < offsetof(struct vigil_host, log_tail) + sizeof h->log_tail || !h->log_tail)
		return;
	for (size_t i = 0; i < li->ring_count; i++) {
		const struct log_line *l = &li->ring[(li->ring_pos + i) % li->tail_n];
		li->tail_vec[i].ptr = l->p ? l->p : "";
		li->tail_vec[i].len = l->len;
	}
	h->log_tail(li->ctx, li->tail_vec, li->ring_count);
}

static enum vigil_settle log_settle(void *instance)
{
	struct log_inst *li = instance;

	if (li->buf) {
		log_check(li, SIZE_MAX);
		/* the job is over: a last line without its newline counts */
		log_flush_partial(li);
	}
	if (li->pend)
		log_emit_progress(li, li->pend_value, li->pend_pct);
	log_report_tail(li);
	return VIGIL_SETTLED;
}

static void log_destroy(void *instance)
{
	struct log_inst *li = instance;
	int64_t *timers[] = {&li->resume_timer, &li->retry_timer, &li->stall_timer,
			     &li->progress_timer, &li->late_timer};

	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (*timers[i] > 0)
			li->host->cancel_timer(li->ctx, *timers[i]);
	if (li->ino_fd >= 0) {
		li->host->unwatch_fd(li->ctx, li->ino_fd);
		close(li->ino_fd);
	}
	if (li->cur.fd >= 0)
		close(li->cur.fd);
	if (li->live.fd >= 0 && li->live.fd != li->cur.fd)
		close(li->live.fd);
	for (size_t i = 0; i < LOG_LATE_N; i++)
		if (li->late[i].fd >= 0)
			close(li->late[i].fd);
	free(li->seen);
	free(li->sibs[0].v);
	free(li->sibs[1].v);
	for (int p = 0; p < PAT_N; p++) {
		pcre2_match_data_free(li->pat[p].md);
		pcre2_code_free(li->pat[p].re);
	}
	pcre2_match_context_free(li->mctx);
	if (li->jstack)
		pcre2_jit_stack_free(li->jstack);
	for (size_t i = 0; li->ring && i < li->tail_n; i++)
		free(li->ring[i].p);
	free(li->ring);
	free(li->tail_vec);
	free(li->buf);
	free(li->path);
	free(li->dir);
	free(li->base);
	free(li);
}

static const struct vigil_option log_opts[] = {
	{"path", VIGIL_OPT_PATH, VIGIL_OPTF_REQUIRED, NULL, "the log file to follow"},
	{"success", VIGIL_OPT_REGEX, 0, NULL, "a line matching this means success"},
	{"failure", VIGIL_OPT_REGEX, 0, NULL, "a line matching this means failure"},
	{"progress", VIGIL_OPT_REGEX, 0, NULL,
	 "capture group 1 is the progress: percent when the pattern or value has %, else a count"},
	{"stall", VIGIL_OPT_DURATION, 0, NULL, "report when the log is silent this long"},
	{"from", VIGIL_OPT_STRING, 0, "end", "start reading at the log's end or start"},
	{"max_line", VIGIL_OPT_SIZE, 0, "64K", "longer lines are cut to this length"},
	{"tail_lines", VIGIL_OPT_INT, 0, "10", "last lines kept for the finished event"},
	{NULL, 0, 0, NULL, NULL},
};

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_DETECTOR, .name = "log",
	     .summary = "follow a log file: success, failure, progress and stall",
	     .options = log_opts, .create = log_create, .start = log_start,
	     .on_event = log_on_event, .settle = log_settle, .destroy = log_destroy);
