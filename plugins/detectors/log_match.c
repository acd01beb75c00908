/*
 * The log detector's matching: the patterns (PCRE2, compiled once, JIT where
 * it can), the limits that keep a hostile pattern from holding the loop, the
 * time budget of matching in one loop turn, and progress values (carriage
 * return segments, N/M and "N of M" as a percent). log.c splits what it reads
 * into lines and hands the complete ones here; the events are its own.
 */
#include <errno.h>
#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vigil/plugin.h"
#include "log_internal.h"

/* A pattern that backtracks catastrophically, such as (a+)+$, must not hold
 * the loop: PCRE2's own defaults (10M steps, a 20 GB heap) let one line take
 * tens of ms with JIT and a second without. A step limit of 100k costs well
 * under a millisecond with JIT; real log patterns need far fewer steps per
 * start position (the limits count per start position, not per block). */
#define LOG_MATCH_LIMIT 100000u
#define LOG_DEPTH_LIMIT 20000u      /* without JIT: nested backtracking frames */
#define LOG_HEAP_LIMIT 16384u       /* without JIT: KiB of backtracking memory */
/* Matching stops after this long in one loop turn and goes on in the next,
 * so other monitors' fds and timers are served in between. */
#define LOG_TURN_NS (4 * 1000000LL)
/* One match call scans at most this much (to the end of the line there): a
 * slow but legitimate pattern over a whole 1 MiB block takes tens of ms. */
#define LOG_WINDOW (64u << 10)

const char *const log_pat_key[PAT_N] = {"failure", "success", "progress"};

/* Where a pattern stands in a block; offsets into the block. Found: the
 * next line it matches. Not found: no line before ls matches, the search
 * goes on from ls (the block's length when it is over). */
struct log_hit {
	bool found;
	size_t ls, le; /* line start, and its '\n' */
	size_t cs, ce; /* capture group 1, cs == SIZE_MAX when unset */
};

/* ------------------------------------------------------ progress values */

static bool log_finite(double v)
{
	return v == v && v <= DBL_MAX && v >= -DBL_MAX;
}

/* After the count: "/M" or " of M" makes it N of M, a percent. */
static bool log_progress_total(const char *p, double *total)
{
	char *end;

	while (*p == ' ')
		p++;
	if (*p == '/')
		p++;
	else if (strncmp(p, "of ", 3) == 0)
		p += 3;
	else
		return false;
	*total = strtod(p, &end);
	return end != p && log_finite(*total) && *total > 0;
}

/* The captured text: a percent ("45%", or any number when the pattern has a
 * '%'), N/M or "N of M" (a percent of M), else a count. */
static void log_progress(struct log_inst *li, const char *s, size_t n)
{
	char tmp[64], *end;
	double total;

	if (n == 0 || n >= sizeof tmp)
		return;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	double v = strtod(tmp, &end);
	if (end == tmp || !log_finite(v))
		return;
	if (log_progress_total(end, &total)) {
		log_progress_offer(li, v * 100 / total, true);
		return;
	}
	log_progress_offer(li, v, li->progress_percent || tmp[n - 1] == '%');
}

/* ---------------------------------------------------------- turn budget */

static int64_t log_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Called as a turn's reading starts: see LOG_TURN_NS. */
void log_turn_begin(struct log_inst *li)
{
	li->turn_end_ns = log_clock_ns() + LOG_TURN_NS;
}

/* Is this loop turn's time for matching used up? */
bool log_turn_over(const struct log_inst *li)
{
	return li->turn_end_ns != INT64_MAX && log_clock_ns() >= li->turn_end_ns;
}

/* ------------------------------------------------------------- matching */

static int log_match(struct log_inst *li, int p, const char *s, size_t len, size_t start)
{
	struct log_pat *pt = &li->pat[p];

	if (pt->jit)
		return pcre2_jit_match(pt->re, (PCRE2_SPTR)s, len, start, 0, pt->md, li->mctx);
	return pcre2_match(pt->re, (PCRE2_SPTR)s, len, start, 0, pt->md, li->mctx);
}

/* Once per instance, not per line: a hostile pattern meets thousands. */
static void log_match_failed(struct log_inst *li, int p, int rc)
{
	PCRE2_UCHAR msg[120];

	if (li->warned_match)
		return;
	li->warned_match = true;
	pcre2_get_error_message(rc, msg, sizeof msg);
	li->host->log(li->ctx, VIGIL_LOG_WARN,
		      "%s pattern: %s (it backtracks too much): the lines it cannot decide "
		      "count as not matching; warned once",
		      log_pat_key[p], (const char *)msg);
}

/* The end of the window searched from pos: LOG_WINDOW bytes on, to the end
 * of the line there. b[len - 1] is '\n'. */
static size_t log_window_end(const char *b, size_t len, size_t pos)
{
	if (len - pos <= LOG_WINDOW)
		return len;
	const char *nl = memchr(b + pos + LOG_WINDOW, '\n', len - pos - LOG_WINDOW);
	return (size_t)(nl - b) + 1;
}

/* Search for pattern p from pos (a line start) in one window of b[0, len),
 * which ends with '\n'. A match running over a newline, a line longer than
 * max_line, or a search that hit the limits is checked again on that line
 * alone; a line that still hits them counts as not matching. */
static void log_next(struct log_inst *li, int p, const char *b, size_t len, size_t pos,
		     struct log_hit *h)
{
	size_t wend = log_window_end(b, len, pos);
	int rc = log_match(li, p, b, wend, pos);
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(li->pat[p].md);
	size_t s = pos, e = pos, base = 0;

	h->found = false;
	h->ls = wend;
	if (rc == PCRE2_ERROR_NOMATCH)
		return;
	if (rc >= 0)
		s = ov[0], e = ov[1];
	if (s >= wend)
		return;
	const char *nl = memchr(b + s, '\n', wend - s);
	size_t le = (size_t)(nl - b);
	const char *pl = s > pos ? memrchr(b + pos, '\n', s - pos) : NULL;
	size_t ls = pl ? (size_t)(pl - b) + 1 : pos;

	if (rc < 0 || e > le || le - ls > li->max_line) {
		size_t n = le - ls < li->max_line ? le - ls : li->max_line;
		if (rc < 0)
			log_match_failed(li, p, rc);
		rc = log_match(li, p, b + ls, n, 0);
		if (rc < 0) {
			if (rc != PCRE2_ERROR_NOMATCH)
				log_match_failed(li, p, rc);
			h->ls = le + 1; /* back to the caller, who watches the clock */
			return;
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
}

/* ---------------------------------------------------- progress segments */

/* Progress in one segment alone: true when the pattern matched there. */
static bool log_progress_in(struct log_inst *li, const char *s, size_t n)
{
	int rc = log_match(li, PAT_PROGRESS, s, n, 0);
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(li->pat[PAT_PROGRESS].md);

	if (rc < 0) {
		if (rc != PCRE2_ERROR_NOMATCH)
			log_match_failed(li, PAT_PROGRESS, rc);
		return false;
	}
	if (pcre2_get_ovector_count(li->pat[PAT_PROGRESS].md) >= 2 && ov[2] != PCRE2_UNSET)
		log_progress(li, s + ov[2], ov[3] - ov[2]);
	return true;
}

/* Tools such as pv, dd, curl and wget redraw their progress in place: a
 * carriage return ends each value. Of the segments in s[0, n), the last one
 * the pattern matches is the value; the earlier ones are history. */
void log_progress_segments(struct log_inst *li, const char *s, size_t n)
{
	size_t end = n;

	for (;;) {
		const char *cr = end ? memrchr(s, '\r', end) : NULL;
		size_t from = cr ? (size_t)(cr - s) + 1 : 0;
		if (end > from && log_progress_in(li, s + from, end - from))
			return;
		if (!cr)
			return;
		end = from - 1;
	}
}

/* A progress hit on the line [ls, le). The segments of the line that were
 * read before it ended (li->scan_skip bytes, for the first line of a scan)
 * gave their values already. */
static void log_report_progress(struct log_inst *li, const char *b, const struct log_hit *h)
{
	size_t n = h->le - h->ls, skip = h->ls == 0 ? li->scan_skip : 0;

	if (skip >= n)
		return;
	if (skip || memchr(b + h->ls, '\r', n))
		log_progress_segments(li, b + h->ls + skip, n - skip);
	else if (h->cs != SIZE_MAX)
		log_progress(li, b + h->cs, h->ce - h->cs);
}

/* The partial line b[0, n): the progress segments ended by a '\r' since the
 * last look give their value now, not when the line ends (pv may write no
 * '\n' for hours). */
void log_progress_partial(struct log_inst *li, const char *b, size_t n)
{
	const char *cr;

	if (!li->pat[PAT_PROGRESS].re || n <= li->cr_done)
		return;
	cr = memrchr(b + li->cr_done, '\r', n - li->cr_done);
	if (!cr)
		return;
	log_progress_segments(li, b + li->cr_done, (size_t)(cr - b) - li->cr_done);
	li->cr_done = (size_t)(cr - b) + 1;
}

/* Inside a line cut at max_line, b[0, end) (end at its '\n' when nl): the
 * progress segments still count. The one after the last '\r' is kept as the
 * carry until it ends; the first one after the cut is incomplete. */
void log_progress_skipped(struct log_inst *li, char *b, size_t end, bool nl)
{
	size_t from = 0;
	const char *cr;

	li->carry = 0;
	if (!li->pat[PAT_PROGRESS].re)
		return;
	if (li->seg_cut) {
		cr = memchr(b, '\r', end);
		if (!cr)
			return;
		from = (size_t)(cr - b) + 1;
		li->seg_cut = false;
	}
	cr = nl ? b + end : memrchr(b + from, '\r', end - from);
	if (cr && (size_t)(cr - b) > from)
		log_progress_segments(li, b + from, (size_t)(cr - b) - from);
	if (nl)
		return;
	from = cr ? (size_t)(cr - b) + 1 : from;
	if (end - from > li->max_line) {
		li->seg_cut = true;
		return;
	}
	memmove(b, b + from, end - from);
	li->carry = end - from;
}

/* ---------------------------------------------------------------- lines */

static void log_report_hit(struct log_inst *li, int p, const char *b, const struct log_hit *h,
			   bool trunc_all)
{
	size_t n = h->le - h->ls;
	bool trunc = trunc_all || n > li->max_line;

	if (p != PAT_PROGRESS)
		log_emit_match(li, p, b + h->ls, n > li->max_line ? li->max_line : n, trunc);
	else
		log_report_progress(li, b, h);
}

/* The lines of b[0, len) (which ends with '\n'), in order: matches and
 * progress, per line failure, then success, then progress. Returns how far
 * it got: len, or the start of the first line not handled yet when this
 * turn's time ran out (always past at least one). */
static size_t log_scan(struct log_inst *li, const char *b, size_t len, bool trunc_all)
{
	struct log_hit h[PAT_N];
	size_t at;

	for (int p = 0; p < PAT_N; p++)
		h[p] = (struct log_hit){.found = false, .ls = li->pat[p].re ? 0 : len};
	for (;;) {
		bool searched = false;
		at = len;
		for (int p = 0; p < PAT_N; p++)
			at = h[p].ls < at ? h[p].ls : at;
		if (at == len || (at > 0 && log_turn_over(li)))
			break;
		/* every pattern searches up to this line before any reports it,
		 * so a line's events keep the pattern order */
		for (int p = 0; p < PAT_N; p++)
			if (!h[p].found && h[p].ls == at) {
				log_next(li, p, b, len, at, &h[p]);
				searched = true;
			}
		if (searched)
			continue;
		for (int p = 0; p < PAT_N; p++)
			if (h[p].found && h[p].ls == at) {
				log_report_hit(li, p, b, &h[p], trunc_all);
				log_next(li, p, b, len, h[p].le + 1, &h[p]);
			}
	}
	return at;
}

/* The first line of b[0, len) is the partial line read so far: its progress
 * segments up to cr_done were reported already. */
size_t log_match_lines(struct log_inst *li, const char *b, size_t len, bool trunc_all)
{
	size_t done;

	li->scan_skip = li->cr_done;
	done = log_scan(li, b, len, trunc_all);
	li->scan_skip = 0;
	li->cr_done = 0;
	return done;
}

/* ---------------------------------------------------------------- setup */

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
		snprintf(err, errlen, "%s: %s at offset %zu", log_pat_key[p], (const char *)msg,
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

/* Explicit limits (LOG_MATCH_LIMIT): JIT honours the match limit and runs
 * on its own bounded stack; the interpreter honours all three. */
static void log_set_limits(struct log_inst *li)
{
	pcre2_jit_stack_assign(li->mctx, NULL, li->jstack);
	pcre2_set_match_limit(li->mctx, LOG_MATCH_LIMIT);
	pcre2_set_depth_limit(li->mctx, LOG_DEPTH_LIMIT);
	pcre2_set_heap_limit(li->mctx, LOG_HEAP_LIMIT);
}

int log_match_setup(struct log_inst *li, const struct vigil_config *cfg, char *err,
		    size_t errlen)
{
	int rc = 0;

	for (int p = 0; p < PAT_N && rc == 0; p++) {
		const struct vigil_value *v = vigil_config_get(cfg, log_pat_key[p]);
		if (v)
			rc = log_compile(li, p, v->text, err, errlen);
		if (v && p == PAT_PROGRESS)
			li->progress_percent = strchr(v->text, '%') != NULL;
	}
	if (rc < 0)
		return rc;
	li->mctx = pcre2_match_context_create(NULL);
	li->jstack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
	if (!li->mctx || !li->jstack)
		return -ENOMEM;
	log_set_limits(li);
	return 0;
}

void log_match_free(struct log_inst *li)
{
	for (int p = 0; p < PAT_N; p++) {
		pcre2_match_data_free(li->pat[p].md);
		pcre2_code_free(li->pat[p].re);
	}
	pcre2_match_context_free(li->mctx);
	if (li->jstack)
		pcre2_jit_stack_free(li->jstack);
}
