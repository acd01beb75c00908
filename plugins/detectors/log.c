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
 * The searching, its limits and time budget, and the progress values are in
 * log_match.c. Rotation, with no line lost or repeated, is in log_rotation.c:
 * it decides which file is read next and hands its bytes to the reading here.
 *
 * Waking: the log's folder and files are watched through one inotify instance
 * shared by every instance of the plugin (the plugin's shared state, see the
 * inotify section); the instances an event names are read after the batch.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "lib/ino_share.h"
#include "vigil/plugin.h"
#include "log_internal.h"

#define LOG_BUDGET (8u << 20)       /* bytes per loop callback before yielding */
#define LOG_PROGRESS_MS 1000        /* at most one progress event per second */
#define LOG_RETRY_MS 1000           /* folder missing: look again */
#define LOG_CURSOR_MS 1000          /* the position is saved at most this often */
#define LOG_MAX_LINE_LIMIT (64u << 20)
#define LOG_MAX_TAIL 1000
#define LOG_MSG_LINE 256            /* bytes of a line quoted in a message */

struct log_line {
	char *p;
	size_t len, cap;
};

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

void log_emit_match(struct log_inst *li, int p, const char *line, size_t n, bool trunc)
{
	const char *name = log_pat_key[p];
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
	li->cursor_due = true;
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
void log_progress_offer(struct log_inst *li, double v, bool pct)
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
void log_note_output(struct log_inst *li)
{
	li->last_output_ms = li->host->now_ms(li->ctx);
	if (li->stalled) {
		li->stalled = false;
		log_stall_arm(li);
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

/* Complete lines b[0, len) (see log_match_lines): the ones handled are kept
 * for the finished event too. */
static size_t log_lines(struct log_inst *li, const char *b, size_t len, bool trunc_all)
{
	size_t done = log_match_lines(li, b, len, trunc_all);

	if (done > 0)
		log_ring_update(li, b, done);
	return done;
}

/* n new bytes sit in buf after the carried partial line. */
void log_feed(struct log_inst *li, size_t n)
{
	char *b = li->buf;
	size_t len = li->carry + n, start = 0;

	li->backlog = false;
	if (li->skipping) {
		char *nl = memchr(b, '\n', len);
		log_progress_skipped(li, b, nl ? (size_t)(nl - b) : len, nl != NULL);
		if (!nl)
			return;
		start = (size_t)(nl - b) + 1;
		li->skipping = false;
		li->seg_cut = false;
	}
	char *last = start < len ? memrchr(b + start, '\n', len - start) : NULL;
	if (last) {
		size_t end = (size_t)(last - b) + 1;
		start += log_lines(li, b + start, end - start, false);
		if (start < end) {
			/* time is up: the lines left wait for the next turn, before
			 * anything more is read */
			li->backlog = true;
			memmove(b, b + start, len - start);
			li->carry = len - start;
			return;
		}
	}
	size_t rest = len - start;
	log_progress_partial(li, b + start, rest);
	if (rest > li->max_line) {
		/* cut here: this part is the line, the rest is skipped; its
		 * progress segments were reported above, the last one is cut */
		bool segments = li->cr_done > 0;
		char *tail = memrchr(b + start, '\r', rest);
		size_t after = tail ? (size_t)(tail - b) + 1 : len;

		li->cr_done = segments ? SIZE_MAX : 0;
		b[start + li->max_line] = '\n';
		log_lines(li, b + start, li->max_line + 1, true);
		li->skipping = true;
		li->seg_cut = !segments;
		/* the segment being written goes on as the carry (after the cut
		 * point's '\n': bytes before it are not touched) */
		if (segments && after > start + li->max_line && len - after <= li->max_line) {
			memmove(b, b + after, len - after);
			li->carry = len - after;
		} else {
			li->carry = 0;
			li->seg_cut = true;
		}
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

/* The end of a byte stream: a last line without its newline counts. */
void log_flush_partial(struct log_inst *li)
{
	int64_t turn_end = li->turn_end_ns;

	/* lines left from an earlier turn come first, at once: this is the end
	 * of a stream (a late write to a renamed file) and rare */
	li->turn_end_ns = INT64_MAX;
	while (li->backlog)
		log_feed(li, 0);
	li->turn_end_ns = turn_end;
	if (li->skipping && li->carry > 0 && !li->seg_cut) {
		/* the last progress segment of a cut line */
		log_progress_segments(li, li->buf, li->carry);
	} else if (!li->skipping && li->carry > 0) {
		li->buf[li->carry] = '\n';
		log_lines(li, li->buf, li->carry + 1, false);
	}
	li->carry = 0;
	li->cr_done = 0;
	li->skipping = false;
	li->seg_cut = false;
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

	log_turn_begin(li);
	if (li->backlog) {
		log_feed(li, 0);
		if (li->backlog)
			return true;
	}
	done += log_late_check(li, budget);
	for (;;) {
		ssize_t n = 0;

		if (li->cur.fd < 0 && !log_next_file(li))
			return false;
		if (!li->recovering && log_is_truncated(li))
			log_truncated(li);
		while (done < budget && !li->backlog && !log_turn_over(li) &&
		       (n = log_read_block(li)) > 0) {
			log_note_output(li);
			log_feed(li, (size_t)n);
			done += (size_t)n;
		}
		if (n < 0) {
			if (!li->warned_read)
				li->host->log(li->ctx, VIGIL_LOG_WARN, "reading %s: %s", li->path,
					      strerror((int)-n));
			li->warned_read = true;
			return false;
		}
		if (n > 0 || li->backlog || log_turn_over(li))
			return true;
		li->warned_read = false;
		if (li->recovering ? !log_next_file(li) : !log_follow(li))
			return false;
	}
}

/* ------------------------------------------------------------- cursor */

static bool log_can_keep_state(const struct log_inst *li)
{
	const struct vigil_host *h = li->host;

	return h->size >= offsetof(struct vigil_host, load_state) + sizeof h->load_state &&
	       h->save_state && h->load_state;
}

/* Save where reading stands, when it moved. */
static void log_cursor_save(struct log_inst *li)
{
	struct log_cursor c;

	li->cursor_due = false;
	if (!log_can_keep_state(li) || !log_cursor_take(li, &c) ||
	    memcmp(&c, &li->saved, sizeof c) == 0)
		return;
	if (li->host->save_state(li->ctx, &c, sizeof c) == 0)
		li->saved = c;
}

static int64_t log_cursor_cb(void *data)
{
	struct log_inst *li = data;

	li->cursor_timer = 0;
	log_cursor_save(li);
	return VIGIL_TIMER_DONE;
}

/* After reading: a reported line is saved as read at once, so that a
 * restart neither repeats nor loses it; other lines at most once a second. */
static void log_cursor_note(struct log_inst *li)
{
	if (li->cursor_due) {
		log_cursor_save(li);
		return;
	}
	if (li->cursor_timer || !log_can_keep_state(li))
		return;
	int64_t id = li->host->add_timer(li->ctx, LOG_CURSOR_MS, log_cursor_cb, li);
	li->cursor_timer = id > 0 ? id : 0;
}

/* Start where the last process that ran this monitor stopped reading. False
 * when it saved nothing. */
static bool log_cursor_load(struct log_inst *li)
{
	struct log_cursor c;
	ssize_t n = log_can_keep_state(li) ? li->host->load_state(li->ctx, &c, sizeof c) : -1;

	if (n != (ssize_t)sizeof c || c.magic != LOG_CURSOR_MAGIC || c.off < 0 ||
	    c.head_len > LOG_FP || c.last_len > LOG_FP)
		return false;
	li->saved = c;
	if (log_cursor_resume(li, &c))
		return true;
	li->host->log(li->ctx, VIGIL_LOG_WARN,
		      "%s: the file read up to byte %lld before is gone and no rotated copy holds "
		      "it: an unknown number of bytes after it are skipped",
		      li->path, (long long)c.off);
	return false;
}

static void log_settle_finish(struct log_inst *li);

static int64_t log_resume_cb(void *data)
{
	struct log_inst *li = data;

	bool more = log_check(li, LOG_BUDGET);
	log_cursor_note(li);
	if (more)
		return 0;
	li->resume_timer = 0;
	if (li->settling) {
		li->settling = false;
		log_settle_finish(li);
		li->host->settled(li->ctx);
	}
	return VIGIL_TIMER_DONE;
}

/* Read now, and continue from a 0 ms timer when the budget ran out, so a
 * large catch-up never holds the loop. */
static void log_kick(struct log_inst *li)
{
	if (li->resume_timer)
		return;
	bool more = log_check(li, LOG_BUDGET);
	log_cursor_note(li);
	if (!more)
		return;
	int64_t id = li->host->add_timer(li->ctx, 0, log_resume_cb, li);
	li->resume_timer = id > 0 ? id : 0;
}

/* ------------------------------------------------------------- inotify */

/* What the plugin's instances share: one inotify instance (the kernel allows
 * each user 128 of them: one per instance stopped an agent at about 120 log
 * monitors), made at the first start, and the instances woken by the batch
 * of events being dispatched, read once it is over: an instance is read once
 * per batch, however many of its events the batch held. */
struct log_share {
	const struct vigil_host *host;
	struct vigil_ctx *ctx; /* the shared ctx (the instance's own for a private one) */
	struct ino_share *ino;
	struct log_inst *due_head, *due_tail; /* linked by next_due, oldest first */
};

static int log_shared_create(const struct vigil_host *host, struct vigil_ctx *ctx,
			     void **shared, char *err, size_t errlen)
{
	struct log_share *sh = calloc(1, sizeof *sh);

	if (!sh) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sh->host = host;
	sh->ctx = ctx;
	*shared = sh;
	return 0;
}

static void log_shared_destroy(void *shared)
{
	struct log_share *sh = shared;

	if (!sh)
		return;
	if (sh->ino) {
		sh->host->unwatch_fd(sh->ctx, ino_share_fd(sh->ino));
		ino_share_free(sh->ino);
	}
	free(sh);
}

/* The process-wide state, or a private one when the core offers none (an
 * older core): then this instance has an inotify instance of its own. */
static int log_attach_shared(struct log_inst *li, char *err, size_t errlen)
{
	const struct vigil_host *h = li->host;
	void *own = NULL;
	int rc;

	if (h->size >= offsetof(struct vigil_host, shared) + sizeof h->shared && h->shared)
		li->sh = h->shared(li->ctx);
	if (li->sh)
		return 0;
	rc = log_shared_create(h, li->ctx, &own, err, errlen);
	li->sh = own;
	li->own_sh = rc == 0;
	return rc;
}

/* Read li once the batch being dispatched is over. */
static void log_kick_after_batch(struct log_inst *li)
{
	struct log_share *sh = li->sh;

	if (li->kick_due)
		return;
	li->kick_due = true;
	li->next_due = NULL;
	if (sh->due_tail)
		sh->due_tail->next_due = li;
	else
		sh->due_head = li;
	sh->due_tail = li;
}

/* li is going away: it must not be read after the batch. */
static void log_due_remove(struct log_inst *li)
{
	struct log_inst **p, *prev = NULL;

	if (!li->kick_due)
		return;
	for (p = &li->sh->due_head; *p && *p != li;) {
		prev = *p;
		p = &(*p)->next_due;
	}
	if (*p)
		*p = li->next_due;
	if (li->sh->due_tail == li)
		li->sh->due_tail = prev;
	li->kick_due = false;
}

static int64_t log_retry_cb(void *data);

static void log_retry_arm(struct log_inst *li)
{
	if (li->retry_timer)
		return;
	int64_t id = li->host->add_timer(li->ctx, LOG_RETRY_MS, log_retry_cb, li);
	li->retry_timer = id > 0 ? id : 0;
}

/* One event of a watch li holds (or an overflow). The folder's watch may be
 * shared with instances following other files in it: only events naming
 * li's file count. */
static void log_on_inotify(void *owner, const struct inotify_event *e)
{
	struct log_inst *li = owner;

	if (e->wd >= 0 && e->wd == li->wd_dir) {
		if (e->mask & IN_IGNORED) {
			li->wd_dir = -1; /* the folder went away */
			log_retry_arm(li);
		}
		if (!e->len || strcmp(e->name, li->base) != 0)
			return;
	}
	log_kick_after_batch(li);
}

static void log_inotify_cb(void *data, int fd, uint32_t revents)
{
	struct log_share *sh = data;
	struct log_inst *li;

	ino_share_dispatch(sh->ino, log_on_inotify);
	while ((li = sh->due_head)) {
		sh->due_head = li->next_due;
		if (!sh->due_head)
			sh->due_tail = NULL;
		li->kick_due = false;
		log_kick(li);
	}
}

/* li's inotify: the shared one, made by the first instance started. */
static int log_inotify_open(struct log_inst *li, char *err, size_t errlen)
{
	struct log_share *sh = li->sh;
	int rc;

	if (!sh->ino) {
		sh->ino = ino_share_new();
		if (!sh->ino) {
			rc = -errno;
			snprintf(err, errlen, "inotify: %s", strerror(errno));
			return rc;
		}
		rc = sh->host->watch_fd(sh->ctx, ino_share_fd(sh->ino), EPOLLIN, log_inotify_cb, sh);
		if (rc < 0) {
			snprintf(err, errlen, "watching inotify: %s", strerror(-rc));
			ino_share_free(sh->ino);
			sh->ino = NULL;
			return rc;
		}
	}
	li->ino = sh->ino;
	return 0;
}

/* A watch of li's, or -1. */
static int log_watch_add(struct log_inst *li, const char *path, uint32_t mask)
{
	int wd = ino_share_add(li->ino, path, mask, li);

	return wd < 0 ? -1 : wd;
}

void log_watch_del(struct log_inst *li, int wd)
{
	if (wd >= 0)
		ino_share_del(li->ino, wd, li);
}

static bool log_watch_dir(struct log_inst *li)
{
	uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR;

	li->wd_dir = log_watch_add(li, li->dir, mask);
	return li->wd_dir >= 0;
}

void log_watch_file(struct log_inst *li)
{
	char p[64];
	uint32_t mask = IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB;
	int old = li->wd_file;

	/* through the fd: the path may already name another file */
	snprintf(p, sizeof p, "/proc/self/fd/%d", li->cur.fd);
	li->wd_file = log_watch_add(li, p, mask);
	if (li->wd_file < 0)
		li->wd_file = log_watch_add(li, li->path, mask);
	log_watch_del(li, old); /* after: the same file keeps its watch */
}

/* Every watch li holds, before it is freed: no event reaches it after. */
static void log_unwatch_all(struct log_inst *li)
{
	if (!li->ino)
		return;
	log_watch_del(li, li->wd_dir);
	log_watch_del(li, li->wd_file);
	for (size_t i = 0; i < LOG_LATE_N; i++)
		log_watch_del(li, li->late[i].wd);
	li->wd_dir = li->wd_file = -1;
	for (size_t i = 0; i < LOG_LATE_N; i++)
		li->late[i].wd = -1;
}

static int64_t log_retry_cb(void *data)
{
	struct log_inst *li = data;

	if (!log_watch_dir(li))
		return LOG_RETRY_MS;
	li->retry_timer = 0;
	log_kick(li);
	return VIGIL_TIMER_DONE;
}

/* ----------------------------------------------------------- lifecycle */

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
	li->wd_dir = li->wd_file = li->cur.fd = li->live.fd = -1;
	for (size_t i = 0; i < LOG_LATE_N; i++)
		li->late[i].fd = li->late[i].wd = -1;
	rc = log_attach_shared(li, err, errlen);
	if (rc == 0 && !v) {
		snprintf(err, errlen, "path: required");
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = log_split_path(li, v->text, err, errlen);
	if (rc == 0)
		rc = log_options(li, cfg, err, errlen);
	if (rc == 0)
		rc = log_match_setup(li, cfg, err, errlen);
	li->turn_end_ns = INT64_MAX;
	if (rc == 0) {
		li->ring = calloc(li->tail_n ? li->tail_n : 1, sizeof *li->ring);
		li->tail_vec = calloc(li->tail_n ? li->tail_n : 1, sizeof *li->tail_vec);
		if (!li->ring || !li->tail_vec)
			rc = -ENOMEM;
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
	rc = log_inotify_open(li, err, errlen);
	if (rc < 0)
		return rc;
	if (!log_watch_dir(li))
		log_retry_arm(li);
	/* a log that exists now is followed from its end (unless from=start);
	 * one that appears later is read from its start */
	if (!log_cursor_load(li) && log_open_path(li, !li->from_start && !li->saved.magic) < 0)
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

/* Everything was read: the job is over, a last line without its newline
 * counts. */
static void log_settle_finish(struct log_inst *li)
{
	if (li->buf)
		log_flush_partial(li);
	if (li->pend)
		log_emit_progress(li, li->pend_value, li->pend_pct);
	log_report_tail(li);
	log_cursor_save(li);
}

/* Read to the end before the outcome is decided, one time-bounded turn at
 * a time (a slow pattern must not hold the loop here either): settled from
 * the resume timer when the rest takes more turns. */
static enum vigil_settle log_settle(void *instance)
{
	struct log_inst *li = instance;
	const struct vigil_host *h = li->host;
	bool can_wait = h->size >= offsetof(struct vigil_host, settled) + sizeof h->settled &&
			h->settled;

	if (li->buf) {
		if (li->resume_timer)
			h->cancel_timer(li->ctx, li->resume_timer);
		li->resume_timer = 0;
		while (log_check(li, LOG_BUDGET)) {
			int64_t id = can_wait ? h->add_timer(li->ctx, 0, log_resume_cb, li) : -1;
			if (id > 0) {
				li->resume_timer = id;
				li->settling = true;
				return VIGIL_SETTLING;
			}
		}
	}
	log_settle_finish(li);
	return VIGIL_SETTLED;
}

static void log_destroy(void *instance)
{
	struct log_inst *li = instance;
	int64_t *timers[] = {&li->resume_timer, &li->retry_timer, &li->stall_timer,
			     &li->progress_timer, &li->late_timer, &li->cursor_timer};

	if (li->buf)
		log_cursor_save(li); /* started: where the next process goes on */

	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
		if (*timers[i] > 0)
			li->host->cancel_timer(li->ctx, *timers[i]);
	log_unwatch_all(li);
	log_due_remove(li);
	if (li->own_sh)
		log_shared_destroy(li->sh);
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
	log_match_free(li);
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
	 "capture group 1 is the progress: percent when the pattern or value has %, N/M and "
	 "N of M as a percent, else a count; a carriage return ends a value"},
	{"stall", VIGIL_OPT_DURATION, 0, NULL, "report when the log is silent this long"},
	{"from", VIGIL_OPT_STRING, 0, "end", "start reading at the log's end or start"},
	{"max_line", VIGIL_OPT_SIZE, 0, "64K", "longer lines are cut to this length"},
	{"tail_lines", VIGIL_OPT_INT, 0, "10", "last lines kept for the finished event"},
	{NULL, 0, 0, NULL, NULL},
};

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_DETECTOR, .name = "log",
	     .summary = "follow a log file: success, failure, progress and stall",
	     .options = log_opts, .create = log_create, .start = log_start,
	     .on_event = log_on_event, .settle = log_settle, .destroy = log_destroy,
	     .shared_create = log_shared_create, .shared_destroy = log_shared_destroy);
