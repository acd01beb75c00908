/* libFuzzer target: the log detector's line splitting and matching in memory,
 * at the speed fuzzing needs (the `log` target drives the same code through
 * real files, inotify and rotations, at about a hundred inputs a second).
 * The detector's sources are built into this target; an instance is made
 * through its descriptor and the fake host (its log does not exist, so
 * nothing is read from a file), then the input is fed to
 * log_feed() in chunks, as read() would hand it over, and ended with
 * log_flush_partial(), as at the end of a stream.
 *   byte 0: max_line = 1 + byte % 100 when byte < 128, else the default;
 *   byte 1: the chunk sizes (a seed), and bit 7: a progress pattern too;
 *   the rest: the log's bytes, in files separated by 0x1e: each is read to
 *   its end and ended as the detector ends a file left by a rotation (a last
 *   line without its newline is a line), then the next one follows.
 * The detector matches failure = ^ (every line). Properties (DESIGN.md, log:
 * "no line lost or repeated"): the match events are exactly the lines of the
 * input in order, each cut to max_line, a last line without its newline
 * included; progress values, when asked for, are finite. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "fuzz_util.h"
#include "log_internal.h"

extern const struct vigil_plugin vigil_plugin_descriptor;

struct expect {
	struct vigil_bytes *v;
	size_t n, cap;
};

static void expect_push(struct expect *e, const char *p, size_t n)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 64;
		e->v = realloc(e->v, e->cap * sizeof(*e->v));
		if (!e->v)
			abort();
	}
	e->v[e->n++] = (struct vigil_bytes){p, n};
}

/* The lines of p[0..len): split on '\n', a last unterminated one counts. */
static void expect_lines(struct expect *e, const char *p, size_t len, size_t max_line)
{
	const char *end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		expect_push(e, p, n < max_line ? n : max_line);
		p += n + (nl ? 1 : 0);
	}
}

__attribute__((noreturn)) static void fail(struct fake_host *fh, const struct expect *e,
					   const char *why)
{
	fprintf(stderr, "fuzz_log_lines: %s: %zu lines expected, %zu events\n", why, e->n,
		fake_host_n_events(fh));
	abort();
}

/* Every expected line once, in order; progress values finite. */
static void check(struct fake_host *fh, const struct expect *e)
{
	size_t m = 0;

	for (size_t i = 0; i < fake_host_n_events(fh); i++) {
		const struct fake_event *ev = fake_host_event(fh, i);
		const struct vigil_field *f;

		if (strcmp(ev->kind, VIGIL_EV_PROGRESS) == 0) {
			f = fake_event_field(ev, "value");
			if (f && f->type == VIGIL_FIELD_DOUBLE && !isfinite(f->u.d))
				fail(fh, e, "a progress value that is not finite");
			continue;
		}
		if (strcmp(ev->kind, VIGIL_EV_MATCH) != 0)
			continue;
		f = fake_event_field(ev, "line");
		if (m >= e->n)
			fail(fh, e, "lines repeated or invented");
		if (!f || f->type != VIGIL_FIELD_STRING || f->u.s.len != e->v[m].len ||
		    memcmp(f->u.s.ptr, e->v[m].ptr, f->u.s.len) != 0)
			fail(fh, e, "a line other than the one written");
		m++;
	}
	if (m != e->n)
		fail(fh, e, "lines lost");
}

/* Hand p[0..len) to the detector in chunks whose sizes follow the seed, then
 * end it as a file left by a rotation. */
static unsigned feed(struct log_inst *li, const char *p, size_t len, unsigned seed)
{
	while (len) {
		size_t chunk = 1 + (seed = seed * 1103515245u + 12345u) % 64;

		if (seed & 0x10000)
			chunk = len; /* now and then, all that is left at once */
		if (chunk > len)
			chunk = len;
		memcpy(li->buf + li->carry, p, chunk);
		log_feed(li, chunk);
		while (li->backlog)
			log_feed(li, 0);
		p += chunk;
		len -= chunk;
	}
	log_flush_partial(li);
	return seed;
}

#define FILE_SEP 0x1e

/* Each file of the input: its lines expected, then fed. */
static void feed_files(struct log_inst *li, struct expect *e, const char *p, size_t len,
		       size_t max_line, unsigned seed)
{
	const char *end = p + len;

	for (;;) {
		const char *sep = memchr(p, FILE_SEP, (size_t)(end - p));
		size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);

		expect_lines(e, p, n, max_line);
		seed = feed(li, p, n, seed);
		if (!sep)
			return;
		p = sep + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max_line = size && data[0] < 128 ? 1u + data[0] % 100 : 64 * 1024;
	unsigned seed = size > 1 ? data[1] : 0;
	char max_opt[64];
	const char *lines[] = {"path = /nonexistent/vigil-fuzz/job.log", "failure = ^",
			       max_opt, "progress = (\\d+(?:\\.\\d+)?%|\\d+/\\d+)", NULL};
	const char *text = (const char *)data + (size > 2 ? 2 : size);
	size_t len = size > 2 ? size - 2 : 0;
	struct fake_host *fh = fake_host_new();
	struct expect e = {0};
	struct log_inst *li;

	snprintf(max_opt, sizeof(max_opt), "max_line = %zu", max_line);
	if (!(seed & 0x80))
		lines[3] = NULL;
	if (fake_host_instantiate(fh, &vigil_plugin_descriptor, lines, (void **)&li) != 0)
		abort();
	feed_files(li, &e, text, len, max_line, seed);
	check(fh, &e);
	fake_host_free(fh);
	free(e.v);
	return 0;
}
