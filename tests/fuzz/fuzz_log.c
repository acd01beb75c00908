/* libFuzzer target: the log detector's line splitting and matching, through
 * its plugin descriptor and the fake host of the unit tests (real files, real
 * inotify, the real loop), with rotations as the input asks.
 *   byte 0: max_line = 1 + byte % 100 when byte < 128, else the default;
 *   the rest: operations separated by 0x1e; an operation starting with 'r'
 *   writes its text then rotates like logrotate's create (LOG -> LOG.1, new
 *   LOG); with 'c', writes then rotates like copytruncate (LOG copied to LOG.1,
 *   LOG truncated, before the detector may have read it); else appends.
 * Each text gets a final '\n'. The detector watches LOG from its start with
 * failure = ^ (every line). Property (DESIGN.md, log: "no line lost or
 * repeated"): after each operation, the match events are exactly the lines
 * written so far, in order, each cut to max_line. */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_host.h"
#include "fuzz_util.h"

#define OP_SEP 0x1e
#define MAX_OPS 12
/* Generous: reached in milliseconds unless a line is really lost. */
#define WAIT_MS 10000

struct run {
	struct fake_host *fh;
	char dir[256], log[300], old[300];
	size_t max_line;
	struct vigil_bytes *want; /* expected lines, pointing into the input */
	size_t n_want, cap;
};

static void append_file(const char *path, const char *p, size_t len, bool nl)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		abort();
	fuzz_write_all(fd, p, len);
	if (nl)
		fuzz_write_all(fd, "\n", 1);
	close(fd);
}

/* Expect the lines of p[0..len) (which gets a final newline). */
static void expect_lines(struct run *r, const char *p, size_t len)
{
	const char *end = p + len;

	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (!nl && p == end && len && end[-1] == '\n')
			break; /* the text already ended with its newline */
		if (r->n_want == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 64;
			r->want = realloc(r->want, r->cap * sizeof(*r->want));
			if (!r->want)
				abort();
		}
		r->want[r->n_want++] = (struct vigil_bytes){p, n < r->max_line ? n : r->max_line};
		if (!nl)
			break;
		p = nl + 1;
	}
}

static bool enough_events(struct fake_host *fh, void *arg)
{
	return fake_host_n_events(fh) >= *(size_t *)arg;
}

/* Say what differs (for whoever reproduces a crash), then abort. */
__attribute__((noreturn)) static void fail(struct run *r, const char *why)
{
	fprintf(stderr, "fuzz_log: %s: %zu lines written, %zu events\n", why, r->n_want,
		fake_host_n_events(r->fh));
	for (size_t i = 0; i < fake_host_n_events(r->fh); i++) {
		const struct fake_event *e = fake_host_event(r->fh, i);

		fprintf(stderr, "  event %zu: %s: %s\n", i, e->kind, e->message ? e->message : "");
	}
	abort();
}

/* Every expected line seen, in order, once. */
static void check_lines(struct run *r)
{
	if (!fake_host_run_until(r->fh, enough_events, &r->n_want, WAIT_MS))
		fail(r, "lines lost");
	if (fake_host_n_events(r->fh) != r->n_want)
		fail(r, "lines repeated or invented");
	for (size_t i = 0; i < r->n_want; i++) {
		const struct vigil_field *f = fake_event_field(fake_host_event(r->fh, i), "line");

		if (!f || f->type != VIGIL_FIELD_STRING || f->u.s.len != r->want[i].len ||
		    memcmp(f->u.s.ptr, r->want[i].ptr, f->u.s.len) != 0)
			fail(r, "a line other than the one written");
	}
}

/* Does this process hold the current LOG open (the detector follows it)? A
 * rotation only counts as noticed then: rotating again before is a race that
 * tail -F loses as well, not a finding. */
static bool follows_log(struct fake_host *fh, void *arg)
{
	const struct run *r = arg;
	struct stat want, st;
	struct dirent *de;
	DIR *d;
	bool found = false;

	(void)fh;
	if (stat(r->log, &want) != 0 || !(d = opendir("/proc/self/fd")))
		abort();
	while (!found && (de = readdir(d)))
		found = de->d_name[0] != '.' && fstat(atoi(de->d_name), &st) == 0 &&
			st.st_ino == want.st_ino && st.st_dev == want.st_dev;
	closedir(d);
	return found;
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	unlink(to);
	if (in < 0)
		abort();
	append_file(to, "", 0, false);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		append_file(to, buf, (size_t)n, false);
	close(in);
}

static void do_op(struct run *r, const char *p, size_t len)
{
	char kind = len ? p[0] : 'a';

	append_file(r->log, p, len, !len || p[len - 1] != '\n');
	expect_lines(r, p, len);
	if (kind == 'r') {
		if (rename(r->log, r->old) != 0)
			abort();
		append_file(r->log, "", 0, false);
	} else if (kind == 'c') {
		copy_file(r->log, r->old);
		if (truncate(r->log, 0) != 0)
			abort();
	}
	check_lines(r);
	if (!fake_host_run_until(r->fh, follows_log, r, WAIT_MS))
		fail(r, "the new log is never opened");
}

static void start(struct run *r, const char *const *lines)
{
	static const struct vigil_plugin *p;
	void *inst;

	if (!p)
		p = fake_host_load_plugin(FUZZ_PLUGIN_LOG);
	if (fake_host_instantiate(r->fh, p, lines, &inst) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run r = {.max_line = size && data[0] < 128 ? 1u + data[0] % 100 : 64 * 1024};
	char path_opt[320], max_opt[64];
	const char *lines[] = {path_opt, "failure = ^", "from = start", max_opt, NULL};
	const char *p = (const char *)data + (size ? 1 : 0), *end = (const char *)data + size;

	fuzz_mkdtemp(r.dir, sizeof(r.dir), "log");
	snprintf(r.log, sizeof(r.log), "%s/job.log", r.dir);
	snprintf(r.old, sizeof(r.old), "%s/job.log.1", r.dir);
	snprintf(path_opt, sizeof(path_opt), "path = %s", r.log);
	snprintf(max_opt, sizeof(max_opt), "max_line = %zu", r.max_line);
	append_file(r.log, "", 0, false);
	r.fh = fake_host_new();
	start(&r, lines);
	for (int ops = 0; p <= end && ops < MAX_OPS; ops++) {
		const char *sep = memchr(p, OP_SEP, (size_t)(end - p));
		size_t n = sep ? (size_t)(sep - p) : (size_t)(end - p);

		do_op(&r, p, n);
		p += n + 1;
	}
	fake_host_free(r.fh);
	fuzz_rm_rf(r.dir);
	free(r.want);
	return 0;
}
