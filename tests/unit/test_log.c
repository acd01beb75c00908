/* The log detector, driven through its descriptor by the fake host, on real
 * files in a temporary folder written by the test as a job would. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_host.h"
#include "tmp_tree.h"

#define WAIT_MS 10000

struct t {
	const struct vigil_plugin *p;
	struct fake_host *fh;
	char dir[64];
	char log[96];
	void *inst;
};

static int t_setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->p = fake_host_load_plugin(getenv("VIGIL_TEST_PLUGIN"));
	t->fh = fake_host_new();
	strcpy(t->dir, "/tmp/vigil-test-log-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->log, sizeof(t->log), "%s/job.log", t->dir);
	*state = t;
	return 0;
}

static int t_teardown(void **state)
{
	struct t *t = *state;

	fake_host_free(t->fh); /* destroys the instances */
	tmp_tree_remove(t->dir);
	free(t);
	return 0;
}

/* lines: "path = <the test log>" (written into path) then `extra`, NULL-ended. */
static void log_lines(struct t *t, const char *const *extra, const char **lines, size_t max,
		      char *path, size_t len)
{
	size_t n = 0;

	snprintf(path, len, "path = %s", t->log);
	lines[n++] = path;
	for (size_t i = 0; extra && extra[i] && n + 1 < max; i++)
		lines[n++] = extra[i];
	lines[n] = NULL;
}

/* Start an instance with path = the test log plus `extra` lines. */
static void start(struct t *t, const char *const *extra)
{
	const char *lines[16];
	char path[128];

	log_lines(t, extra, lines, 16, path, sizeof(path));
	if (fake_host_instantiate(t->fh, t->p, lines, &t->inst) < 0)
		fail_msg("instantiate: %s", fake_host_last_error(t->fh));
}

/* An instance created (not started) with a host table the test changed: path
 * = the test log plus `extra` lines. The test destroys it. */
static void *create_with_host(struct t *t, const struct vigil_host *host,
			      const char *const *extra)
{
	const char *lines[16];
	char path[128], err[256] = "";
	const struct vigil_config *cfg;
	void *inst = NULL;

	log_lines(t, extra, lines, 16, path, sizeof(path));
	cfg = fake_host_config(t->fh, t->p, lines);
	assert_non_null(cfg);
	assert_int_equal(t->p->create(host, fake_host_ctx(t->fh), cfg, &inst, err, sizeof(err)), 0);
	return inst;
}

static void append_to(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		assert_true(n > 0);
		data += n;
		len -= (size_t)n;
	}
	close(fd);
}

static void append(struct t *t, const char *s)
{
	append_to(t->log, s, strlen(s));
}

static size_t count_kind(struct fake_host *fh, const char *kind)
{
	size_t n = 0;

	for (size_t i = 0; i < fake_host_n_events(fh); i++)
		if (!strcmp(fake_host_event(fh, i)->kind, kind))
			n++;
	return n;
}

struct want {
	const char *kind;
	size_t n;
};

static bool pred_kind(struct fake_host *fh, void *arg)
{
	struct want *w = arg;

	return count_kind(fh, w->kind) >= w->n;
}

static bool wait_kind(struct t *t, const char *kind, size_t n)
{
	struct want w = {kind, n};

	return fake_host_run_until(t->fh, pred_kind, &w, WAIT_MS);
}

/* The i-th event of `kind`. */
static const struct fake_event *nth(struct t *t, const char *kind, size_t i)
{
	size_t from = 0;
	const struct fake_event *e = NULL;

	for (size_t k = 0; k <= i; k++) {
		e = NULL;
		for (; from < fake_host_n_events(t->fh); from++) {
			if (!strcmp(fake_host_event(t->fh, from)->kind, kind)) {
				e = fake_host_event(t->fh, from++);
				break;
			}
		}
		assert_non_null(e);
	}
	return e;
}

static struct vigil_bytes field_str(const struct fake_event *e, const char *name)
{
	const struct vigil_field *f = fake_event_field(e, name);

	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_STRING);
	return f->u.s;
}

static void assert_match(const struct fake_event *e, const char *pattern, const char *line)
{
	struct vigil_bytes p = field_str(e, "pattern"), l = field_str(e, "line");

	assert_int_equal(p.len, strlen(pattern));
	assert_memory_equal(p.ptr, pattern, p.len);
	assert_int_equal(l.len, strlen(line));
	assert_memory_equal(l.ptr, line, l.len);
}

/* ------------------------------------------------------------------ tests */

static void test_success_failure(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = job (completed|finished)", "failure = error|failed", NULL};

	append(t, "old error before start\n");
	start(t, opts);
	assert_true(fake_host_criteria(t->fh) & (1u << VIGIL_CRIT_SUCCESS));
	assert_true(fake_host_criteria(t->fh) & (1u << VIGIL_CRIT_FAILURE));
	append(t, "step 1\nan error occurred\nnothing\njob completed\n");
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 2));
	assert_match(nth(t, VIGIL_EV_MATCH, 0), "failure", "an error occurred");
	assert_match(nth(t, VIGIL_EV_MATCH, 1), "success", "job completed");
	const struct fake_event *e = nth(t, VIGIL_EV_MATCH, 0);
	assert_string_equal(e->message, "failure line: an error occurred");
	const struct vigil_field *tr = fake_event_field(e, "truncated");
	assert_non_null(tr);
	assert_int_equal(tr->type, VIGIL_FIELD_BOOL);
	assert_false(tr->u.b);
	/* both on one line: failure first */
	append(t, "job completed with error\n");
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 4));
	assert_match(nth(t, VIGIL_EV_MATCH, 2), "failure", "job completed with error");
	assert_match(nth(t, VIGIL_EV_MATCH, 3), "success", "job completed with error");
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), 4);
}

static void test_split_write(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = job completed", NULL};

	append(t, "");
	start(t, opts);
	append(t, "job comp");
	fake_host_run_for(t->fh, 100);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), 0);
	append(t, "leted ok\nlast");
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 1));
	assert_match(nth(t, VIGIL_EV_MATCH, 0), "success", "job completed ok");
	/* a pattern cannot span two lines */
	append(t, " job\ncompleted\n");
	fake_host_run_for(t->fh, 100);
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), 1);
}

static void test_long_line(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"failure = error", "success = done", NULL};
	size_t big = 10u << 20;
	char *line = malloc(big + 1);

	assert_non_null(line);
	memset(line, 'x', big);
	memcpy(line, "error ", 6);
	memcpy(line + big - 4, "done", 4); /* past max_line: not seen */
	line[big] = '\n';
	append(t, "");
	start(t, opts);
	/* in pieces, like a writer would */
	for (size_t off = 0; off <= big; off += 1u << 20) {
		size_t n = big + 1 - off < (1u << 20) ? big + 1 - off : 1u << 20;
		append_to(t->log, line + off, n);
	}
	free(line);
	append(t, "all done\n");
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 2));
	const struct fake_event *e = nth(t, VIGIL_EV_MATCH, 0);
	struct vigil_bytes l = field_str(e, "line");
	assert_int_equal(l.len, 64 * 1024);
	assert_memory_equal(l.ptr, "error xxx", 9);
	assert_true(fake_event_field(e, "truncated")->u.b);
	assert_match(nth(t, VIGIL_EV_MATCH, 1), "success", "all done");
	assert_false(fake_event_field(nth(t, VIGIL_EV_MATCH, 1), "truncated")->u.b);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), 2);
}

static void test_invalid_utf8(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"failure = error", NULL};
	const char bad[] = "error \xff\xfe\xc3 here \x01 end";

	append(t, "");
	start(t, opts);
	append_to(t->log, bad, sizeof(bad) - 1);
	append(t, "\n");
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 1));
	struct vigil_bytes l = field_str(nth(t, VIGIL_EV_MATCH, 0), "line");
	assert_int_equal(l.len, sizeof(bad) - 1);
	assert_memory_equal(l.ptr, bad, l.len);
}

/* Every number 0..n-1 but those in [gap_from, gap_to) seen exactly once in
 * "line N completed"; in increasing order when `ordered`. */
static void assert_lines(struct t *t, int n, int gap_from, int gap_to, bool ordered)
{
	int *seen = calloc((size_t)n, sizeof(int)), prev = -1;

	assert_non_null(seen);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), n - (gap_to - gap_from));
	for (size_t i = 0; i < fake_host_n_events(t->fh); i++) {
		const struct fake_event *e = fake_host_event(t->fh, i);
		if (strcmp(e->kind, VIGIL_EV_MATCH))
			continue;
		struct vigil_bytes l = field_str(e, "line");
		char tmp[64];
		int num = -1;
		assert_true(l.len < sizeof(tmp));
		memcpy(tmp, l.ptr, l.len);
		tmp[l.len] = '\0';
		assert_int_equal(sscanf(tmp, "line %d completed", &num), 1);
		assert_true(num >= 0 && num < n);
		if (ordered && num < prev)
			fail_msg("line %d reported after line %d", num, prev);
		prev = num;
		seen[num]++;
	}
	for (int i = 0; i < n; i++)
		if (seen[i] != (i >= gap_from && i < gap_to ? 0 : 1))
			fail_msg("line %d seen %d times", i, seen[i]);
	free(seen);
}

static void assert_each_once(struct t *t, int n)
{
	assert_lines(t, n, 0, 0, false);
}

static void write_numbered(const char *path, int from, int to)
{
	char b[64];

	for (int i = from; i < to; i++) {
		int k = snprintf(b, sizeof(b), "line %d completed\n", i);
		append_to(path, b, (size_t)k);
	}
}

static void test_rename_rotation(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", NULL};
	char old[160];
	int total = 10000;

	append(t, "");
	start(t, opts);
	for (int chunk = 0; chunk < total / 1000; chunk++) {
		int base = chunk * 1000;
		/* most of a chunk, rotate with lines still unread in the old file,
		 * then the rest in the new one before the detector runs */
		write_numbered(t->log, base, base + 990);
		snprintf(old, sizeof(old), "%s.%d", t->log, chunk);
		assert_int_equal(rename(t->log, old), 0);
		append(t, "");
		write_numbered(t->log, base + 990, base + 1000);
		assert_true(wait_kind(t, VIGIL_EV_MATCH, (size_t)base + 1000));
	}
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_each_once(t, total);
}

static void test_copytruncate(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", "from = start", NULL};
	char rotated[160];

	write_numbered(t->log, 0, 100);
	start(t, opts);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 100));
	/* 50 lines the detector has not read yet when logrotate copies and truncates */
	write_numbered(t->log, 100, 150);
	snprintf(rotated, sizeof(rotated), "%s.1", t->log);
	int in = open(t->log, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	char *copy = malloc(1 << 16);
	assert_non_null(copy);
	ssize_t n = read(in, copy, 1 << 16);
	assert_true(n > 0);
	close(in);
	append_to(rotated, copy, (size_t)n);
	free(copy);
	assert_int_equal(truncate(t->log, 0), 0);
	write_numbered(t->log, 150, 170);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 170));
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_each_once(t, 170);
}

/* As logrotate does: LOG.N becomes LOG.N+1, from the oldest down. */
static void shift_copies(struct t *t)
{
	char from[160], to[160];
	int top = 1;

	for (;; top++) {
		snprintf(from, sizeof(from), "%s.%d", t->log, top);
		if (access(from, F_OK) < 0)
			break;
	}
	for (int i = top - 1; i >= 1; i--) {
		snprintf(from, sizeof(from), "%s.%d", t->log, i);
		snprintf(to, sizeof(to), "%s.%d", t->log, i + 1);
		assert_int_equal(rename(from, to), 0);
	}
}

/* logrotate's create: LOG -> LOG.1, a new empty LOG. */
static void rotate_create(struct t *t)
{
	char one[160];

	shift_copies(t);
	snprintf(one, sizeof(one), "%s.1", t->log);
	assert_int_equal(rename(t->log, one), 0);
	append(t, "");
}

/* logrotate's copytruncate: LOG copied to LOG.1, then LOG truncated. */
static void rotate_copytruncate(struct t *t)
{
	char one[160], *copy = malloc(1 << 20);
	int in = open(t->log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_non_null(copy);
	assert_true(in >= 0);
	n = read(in, copy, 1 << 20);
	assert_true(n >= 0 && n < (1 << 20));
	close(in);
	shift_copies(t);
	snprintf(one, sizeof(one), "%s.1", t->log);
	append_to(one, copy, (size_t)n);
	free(copy);
	assert_int_equal(truncate(t->log, 0), 0);
}

/* Three rotations before the detector gets to run: the renamed files are
 * read oldest first (LOG.3, LOG.2, LOG.1), then the new log. */
static void test_rename_several_before_read(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", NULL};

	append(t, "");
	start(t, opts);
	write_numbered(t->log, 0, 100);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 100));
	write_numbered(t->log, 100, 150); /* not read yet */
	for (int r = 0; r < 3; r++) {
		rotate_create(t);
		write_numbered(t->log, 150 + r * 50, 200 + r * 50);
	}
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 300));
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_lines(t, 300, 0, 0, true);
}

/* The same with dated names (dateext): LOG-DATE sorts oldest first. */
static void test_rename_dated_several_before_read(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", NULL};
	char dated[160];

	append(t, "");
	start(t, opts);
	write_numbered(t->log, 0, 10);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 10));
	write_numbered(t->log, 10, 20);
	for (int r = 0; r < 3; r++) {
		snprintf(dated, sizeof(dated), "%s-2024010%d", t->log, r + 1);
		assert_int_equal(rename(t->log, dated), 0);
		append(t, "");
		write_numbered(t->log, 20 + r * 10, 30 + r * 10);
	}
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 50));
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_lines(t, 50, 0, 0, true);
}

/* Three copytruncates before the detector runs: the rest of what it was
 * reading is in LOG.3 by then, found by its content; then LOG.2, LOG.1 and
 * the log from its start. */
static void test_copytruncate_several_before_read(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", "from = start", NULL};

	write_numbered(t->log, 0, 100);
	start(t, opts);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 100));
	write_numbered(t->log, 100, 150);
	for (int r = 0; r < 3; r++) {
		rotate_copytruncate(t);
		write_numbered(t->log, 150 + r * 50, 200 + r * 50);
	}
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 300));
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_lines(t, 300, 0, 0, true);
}

/* Warnings are recorded through a copy of the host table. */
static unsigned warn_lost;

static void rec_log(struct vigil_ctx *ctx, enum vigil_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void rec_log(struct vigil_ctx *ctx, enum vigil_log_level level, const char *fmt, ...)
{
	char b[512];
	va_list ap;

	(void)ctx;
	va_start(ap, fmt);
	vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (level == VIGIL_LOG_WARN && strstr(b, "no rotated copy holds"))
		warn_lost++;
}

/* The copy holding the unread lines was deleted (logrotate's `rotate N`)
 * before the detector ran: those lines are gone, it says so once, and the
 * later copies and the log are still read, each line once. */
static void test_copytruncate_copy_deleted(void **state)
{
	struct t *t = *state;
	struct vigil_host host = *fake_host_api(t->fh);
	const char *opts[] = {"success = completed", "from = start", NULL};
	char oldest[160], err[256] = "";
	void *inst;

	host.log = rec_log;
	warn_lost = 0;
	write_numbered(t->log, 0, 100);
	inst = create_with_host(t, &host, opts);
	assert_int_equal(t->p->start(inst, err, sizeof(err)), 0);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 100));
	write_numbered(t->log, 100, 150);
	for (int r = 0; r < 3; r++) {
		rotate_copytruncate(t);
		write_numbered(t->log, 150 + r * 50, 200 + r * 50);
	}
	snprintf(oldest, sizeof(oldest), "%s.3", t->log);
	assert_int_equal(unlink(oldest), 0);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 250));
	assert_int_equal(t->p->settle(inst), VIGIL_SETTLED);
	assert_lines(t, 300, 100, 150, true);
	assert_int_equal(warn_lost, 1);
	t->p->destroy(inst);
}

/* The copy was taken, the detector read on past its end, then the log was
 * truncated: nothing is left in the copy, the log is read from its start. */
static void test_copytruncate_read_past_copy(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", "from = start", NULL};
	char one[160], *copy = malloc(1 << 16);
	int in;
	ssize_t n;

	assert_non_null(copy);
	write_numbered(t->log, 0, 100);
	start(t, opts);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 100));
	write_numbered(t->log, 100, 150);
	in = open(t->log, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	n = read(in, copy, 1 << 16);
	assert_true(n > 0);
	close(in);
	snprintf(one, sizeof(one), "%s.1", t->log);
	append_to(one, copy, (size_t)n);
	free(copy);
	write_numbered(t->log, 150, 160); /* after the copy, before the truncation */
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 160));
	assert_int_equal(truncate(t->log, 0), 0);
	write_numbered(t->log, 160, 200);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 200));
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_lines(t, 200, 0, 0, true);
}

/* A writer that opened the log before the rename writes to the renamed file
 * after the detector moved on to the new one: those lines are still read. */
static void test_late_write_after_rename(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", NULL};
	char b[64];
	int old;

	append(t, "");
	start(t, opts);
	old = open(t->log, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(old >= 0);
	write_numbered(t->log, 0, 10);
	rotate_create(t);
	write_numbered(t->log, 10, 20);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 20));
	int k = snprintf(b, sizeof(b), "line %d completed\n", 20);
	assert_int_equal(write(old, b, (size_t)k), k);
	close(old);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 21));
	write_numbered(t->log, 21, 30);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 30));
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_lines(t, 30, 0, 0, true);
}

static void test_delete_recreate(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", NULL};

	append(t, "");
	start(t, opts);
	write_numbered(t->log, 0, 10);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 10));
	write_numbered(t->log, 10, 20); /* unread when deleted */
	assert_int_equal(unlink(t->log), 0);
	write_numbered(t->log, 20, 30);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 30));
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_each_once(t, 30);
}

static void test_appears_later(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", NULL}; /* from = end */

	start(t, opts);
	fake_host_run_for(t->fh, 50);
	write_numbered(t->log, 0, 5); /* read from its start */
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 5));
	assert_each_once(t, 5);
}

static void test_folder_appears_later(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"success = completed", NULL};
	char sub[96];

	snprintf(sub, sizeof(sub), "%s/later", t->dir);
	snprintf(t->log, sizeof(t->log), "%s/later/job.log", t->dir);
	start(t, opts);
	fake_host_run_for(t->fh, 50);
	assert_int_equal(mkdir(sub, 0755), 0);
	write_numbered(t->log, 0, 3);
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 3));
	assert_each_once(t, 3);
}

static void test_stall(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"stall = 200ms", NULL};

	append(t, "");
	start(t, opts);
	assert_true(wait_kind(t, VIGIL_EV_STALLED, 1));
	const struct fake_event *e = nth(t, VIGIL_EV_STALLED, 0);
	assert_string_equal(e->message, "no output for 200ms");
	const struct vigil_field *f = fake_event_field(e, "silent_for");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_DOUBLE);
	assert_true(f->u.d >= 0.2);
	/* once: no second report while it stays silent */
	fake_host_run_for(t->fh, 600);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_STALLED), 1);
	append(t, "alive\n");
	assert_true(wait_kind(t, VIGIL_EV_STALLED, 2));
	/* the target exited: no more stall reports */
	struct vigil_event ev = {.kind = VIGIL_EV_EXITED};
	struct vigil_record rec = {.id = "x", .monitor = "test", .run = 1, .detector = "core",
				   .event = &ev, .json = "{}", .json_len = 2};
	append(t, "more\n");
	fake_host_run_for(t->fh, 50);
	t->p->on_event(t->inst, &rec);
	fake_host_run_for(t->fh, 600);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_STALLED), 2);
}

static double progress_value(struct t *t, size_t i, const char *unit)
{
	const struct fake_event *e = nth(t, VIGIL_EV_PROGRESS, i);
	const struct vigil_field *v = fake_event_field(e, "value");
	struct vigil_bytes u = field_str(e, "unit");

	assert_non_null(v);
	assert_int_equal(v->type, VIGIL_FIELD_DOUBLE);
	assert_int_equal(u.len, strlen(unit));
	assert_memory_equal(u.ptr, unit, u.len);
	return v->u.d;
}

static void test_progress_percent(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"progress = ([0-9.]+)%", NULL};

	append(t, "");
	start(t, opts);
	append(t, "copy 10% done\n");
	assert_true(wait_kind(t, VIGIL_EV_PROGRESS, 1));
	assert_true(progress_value(t, 0, "percent") == 10);
	/* within the second: the unchanged value is dropped, 100% goes at once */
	append(t, "copy 10% done\ncopy 100% done\n");
	assert_true(wait_kind(t, VIGIL_EV_PROGRESS, 2));
	assert_true(progress_value(t, 1, "percent") == 100);
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_PROGRESS), 2);
}

static void test_progress_count(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"progress = processed ([0-9]+) rows", NULL};

	append(t, "");
	start(t, opts);
	append(t, "processed 5 rows\n");
	assert_true(wait_kind(t, VIGIL_EV_PROGRESS, 1));
	assert_true(progress_value(t, 0, "count") == 5);
	/* a burst: only the latest value is reported, when the second is over */
	append(t, "processed 6 rows\nprocessed 7 rows\n");
	assert_true(wait_kind(t, VIGIL_EV_PROGRESS, 2));
	assert_true(progress_value(t, 1, "count") == 7);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_PROGRESS), 2);
}

/* The value of the last progress event. */
static double last_progress(struct t *t, const char *unit)
{
	size_t n = count_kind(t->fh, VIGIL_EV_PROGRESS);

	assert_true(n > 0);
	return progress_value(t, n - 1, unit);
}

static bool pred_progress_at(struct fake_host *fh, void *arg)
{
	struct t *t = arg;

	return count_kind(fh, VIGIL_EV_PROGRESS) > 0 && last_progress(t, "percent") >= 100;
}

/* Settled, the percents only ever rising, the last one 100. */
static void assert_settled_rising_to_100(struct t *t)
{
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_true(last_progress(t, "percent") == 100);
	for (size_t i = 1; i < count_kind(t->fh, VIGIL_EV_PROGRESS); i++)
		assert_true(progress_value(t, i, "percent") > progress_value(t, i - 1, "percent"));
}

/* pv, dd and curl redraw their progress with '\r': each value counts while
 * the line is being written, the last one wins, none goes back. */
static void test_progress_carriage_return(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"progress = ([0-9]+)%", NULL};

	append(t, "");
	start(t, opts);
	append(t, "copy   8% ETA\r");
	assert_true(wait_kind(t, VIGIL_EV_PROGRESS, 1));
	assert_true(progress_value(t, 0, "percent") == 8);
	append(t, "copy  50% ETA\rcopy 100% ETA\r");
	assert_true(fake_host_run_until(t->fh, pred_progress_at, t, WAIT_MS));
	append(t, "\ndone\n");
	assert_settled_rising_to_100(t);
}

/* A whole line of segments at once: its last value, not its first. */
static void test_progress_carriage_return_line(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"progress = ([0-9]+)%", NULL};

	append(t, "");
	start(t, opts);
	append(t, "\r 30% a\r 60% b\r no value here\n");
	assert_int_equal(t->p->settle(t->inst), VIGIL_SETTLED);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_PROGRESS), 1);
	assert_true(progress_value(t, 0, "percent") == 60);
}

/* A progress line that never ends (longer than max_line): the segments
 * after the cut still count, the one cut in two does not. */
static void test_progress_carriage_return_long(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"progress = at ([0-9]+)%", "max_line = 64", NULL};
	char seg[32];

	append(t, "");
	start(t, opts);
	for (int v = 1; v <= 100; v++) {
		snprintf(seg, sizeof(seg), "\rcopy at %3d%%", v);
		append(t, seg);
		if (v % 25 == 0)
			fake_host_run_for(t->fh, 20);
	}
	append(t, "\n");
	assert_settled_rising_to_100(t);
}

/* N/M and "N of M" are a percent of M. */
static void test_progress_n_of_m(void **state)
{
	struct t *t = *state;
	const char *opts[] = {"progress = ([0-9]+(?:/| of )[0-9]+)", NULL};

	append(t, "");
	start(t, opts);
	append(t, "file 3/12\n");
	assert_true(wait_kind(t, VIGIL_EV_PROGRESS, 1));
	assert_true(progress_value(t, 0, "percent") == 25);
	append(t, "item 1 of 2\n");
	assert_true(wait_kind(t, VIGIL_EV_PROGRESS, 2));
	assert_true(progress_value(t, 1, "percent") == 50);
}

static void test_from_end_and_start(void **state)
{
	struct t *t = *state;
	const char *end_opts[] = {"success = completed", NULL};

	append(t, "old completed\n");
	start(t, end_opts);
	append(t, "new completed\n");
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 1));
	assert_match(nth(t, VIGIL_EV_MATCH, 0), "success", "new completed");

	struct fake_host *fh2 = fake_host_new();
	const char *start_opts[] = {NULL, "success = completed", "from = start", NULL};
	char path[128];
	void *inst;
	snprintf(path, sizeof(path), "path = %s", t->log);
	start_opts[0] = path;
	if (fake_host_instantiate(fh2, t->p, start_opts, &inst) < 0)
		fail_msg("instantiate: %s", fake_host_last_error(fh2));
	struct want w = {VIGIL_EV_MATCH, 2};
	assert_true(fake_host_run_until(fh2, pred_kind, &w, WAIT_MS));
	assert_int_equal(count_kind(fh2, VIGIL_EV_MATCH), 2);
	fake_host_free(fh2);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), 1);
}

/* log_tail is recorded through a copy of the host table. */
struct tail_rec {
	char lines[8][64];
	size_t n;
	unsigned calls;
};
static struct tail_rec tail_seen;

static void rec_log_tail(struct vigil_ctx *ctx, const struct vigil_bytes *lines, size_t n)
{
	(void)ctx;
	assert_true(n <= 8);
	tail_seen.n = n;
	tail_seen.calls++;
	for (size_t i = 0; i < n; i++) {
		assert_true(lines[i].len < 64);
		memcpy(tail_seen.lines[i], lines[i].ptr, lines[i].len);
		tail_seen.lines[i][lines[i].len] = '\0';
	}
}

static void test_log_tail_after_settle(void **state)
{
	struct t *t = *state;
	struct vigil_host host = *fake_host_api(t->fh);
	const char *opts[] = {"tail_lines = 3", "failure = error", "from = start", NULL};
	char err[256] = "";
	void *inst;

	host.log_tail = rec_log_tail;
	memset(&tail_seen, 0, sizeof(tail_seen));
	append(t, "one\ntwo\nthree\nfour\nfinal error");
	inst = create_with_host(t, &host, opts);
	assert_int_equal(t->p->start(inst, err, sizeof(err)), 0);
	assert_int_equal(t->p->settle(inst), VIGIL_SETTLED);
	assert_int_equal(tail_seen.calls, 1);
	assert_int_equal(tail_seen.n, 3);
	assert_string_equal(tail_seen.lines[0], "three");
	assert_string_equal(tail_seen.lines[1], "four");
	assert_string_equal(tail_seen.lines[2], "final error");
	/* the last line, without its newline, counted at settle */
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), 1);
	assert_match(nth(t, VIGIL_EV_MATCH, 0), "failure", "final error");
	t->p->destroy(inst);
}

/* Warnings about a pattern that hits PCRE2's limits, through a host copy. */
static unsigned warn_limit;

static void rec_limit_log(struct vigil_ctx *ctx, enum vigil_log_level level, const char *fmt,
			  ...) __attribute__((format(printf, 3, 4)));

static void rec_limit_log(struct vigil_ctx *ctx, enum vigil_log_level level, const char *fmt,
			  ...)
{
	char b[512];
	va_list ap;

	(void)ctx;
	va_start(ap, fmt);
	vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (level == VIGIL_LOG_WARN && strstr(b, "failure pattern") && strstr(b, "limit"))
		warn_limit++;
}

#define EVIL_LINES 2000
/* About a second of matching normally; generous for sanitizers and a loaded
 * machine (without the limits it is minutes). */
#define EVIL_WAIT_MS 60000

/* Lines on which (a+)+$ backtracks 2^30 ways each, then a real failure. */
static void write_evil(const char *path)
{
	static char line[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\n";
	char *b = malloc(EVIL_LINES * (sizeof(line) - 1));

	assert_non_null(b);
	for (size_t i = 0; i < EVIL_LINES; i++)
		memcpy(b + i * (sizeof(line) - 1), line, sizeof(line) - 1);
	append_to(path, b, EVIL_LINES * (sizeof(line) - 1));
	free(b);
	append_to(path, "ERROR: the real one\n", 20);
}

static void *start_evil(struct t *t, struct vigil_host *host)
{
	const char *opts[] = {"failure = (a+)+$|ERROR", "from = start", NULL};

	*host = *fake_host_api(t->fh);
	host->log = rec_limit_log;
	warn_limit = 0;
	write_evil(t->log);
	return create_with_host(t, host, opts);
}

/* A catastrophically backtracking pattern: the lines it cannot decide count
 * as not matching, the warning comes once, the line after them is matched,
 * and start() returns (the rest is matched over later loop turns). */
static void test_backtracking_pattern(void **state)
{
	struct t *t = *state;
	struct vigil_host host;
	char err[256] = "";
	void *inst = start_evil(t, &host);
	struct want w = {VIGIL_EV_MATCH, 1};

	assert_int_equal(t->p->start(inst, err, sizeof(err)), 0);
	assert_true(fake_host_run_until(t->fh, pred_kind, &w, EVIL_WAIT_MS));
	assert_match(nth(t, VIGIL_EV_MATCH, 0), "failure", "ERROR: the real one");
	fake_host_run_for(t->fh, 50);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), 1);
	assert_int_equal(warn_limit, 1);
	t->p->destroy(inst);
}

/* settle() on such a log does not read it all in one call: it settles
 * from a later loop turn, with every line handled. */
static bool pred_settled(struct fake_host *fh, void *arg)
{
	(void)arg;
	return fake_host_settled_count(fh) > 0;
}

static void test_backtracking_pattern_settle(void **state)
{
	struct t *t = *state;
	struct vigil_host host;
	char err[256] = "";
	void *inst = start_evil(t, &host);

	assert_int_equal(t->p->start(inst, err, sizeof(err)), 0);
	if (t->p->settle(inst) == VIGIL_SETTLING)
		assert_true(fake_host_run_until(t->fh, pred_settled, NULL, EVIL_WAIT_MS));
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), 1);
	assert_match(nth(t, VIGIL_EV_MATCH, 0), "failure", "ERROR: the real one");
	assert_int_equal(warn_limit, 1);
	t->p->destroy(inst);
}

static void test_bad_progress_pattern(void **state)
{
	struct t *t = *state;
	char path[128], err[256] = "";
	const char *lines[] = {path, "progress = [0-9]+%", NULL};
	void *inst = NULL;

	snprintf(path, sizeof(path), "path = %s", t->log);
	const struct vigil_config *cfg = fake_host_config(t->fh, t->p, lines);
	assert_non_null(cfg);
	assert_true(t->p->create(fake_host_api(t->fh), fake_host_ctx(t->fh), cfg, &inst, err,
				 sizeof(err)) < 0);
	assert_non_null(strstr(err, "capture group"));
}

/* ------------------------------------------------- one inotify for all */

/* An instance of its own ctx on `path`, failure = every line, started. */
static void start_on(struct t *t, const char *path)
{
	char key[160];
	const char *lines[] = {key, "failure = ^", NULL};
	void *inst;

	snprintf(key, sizeof(key), "path = %s", path);
	if (fake_host_instantiate_ctx(t->fh, fake_host_new_ctx(t->fh), t->p, lines, &inst) < 0)
		fail_msg("instantiate %s: %s", path, fake_host_last_error(t->fh));
}

/* Match events of this line. */
static int count_line(struct t *t, const char *line)
{
	int n = 0;

	for (size_t i = 0; i < fake_host_n_events(t->fh); i++) {
		const struct fake_event *e = fake_host_event(t->fh, i);
		struct vigil_bytes l;

		if (strcmp(e->kind, VIGIL_EV_MATCH))
			continue;
		l = field_str(e, "line");
		n += l.len == strlen(line) && memcmp(l.ptr, line, l.len) == 0;
	}
	return n;
}

/* Exactly n match events, the loop given time for more. */
static void assert_matches(struct t *t, size_t n)
{
	assert_true(wait_kind(t, VIGIL_EV_MATCH, n));
	fake_host_run_for(t->fh, 50);
	assert_int_equal(count_kind(t->fh, VIGIL_EV_MATCH), n);
}

#define MANY 200 /* more than fs.inotify.max_user_instances' default (128) */

/* Every instance of the plugin watches through one inotify instance: 200
 * logs in one folder (sharing its watch), each line reported by its own
 * instance only. */
static void test_many_instances_one_inotify(void **state)
{
	struct t *t = *state;
	int before = fake_host_inotify_instances();
	char path[160], line[32];

	for (int i = 0; i < MANY; i++) {
		snprintf(path, sizeof(path), "%s/log%d.log", t->dir, i);
		append_to(path, "", 0);
		start_on(t, path);
	}
	assert_int_equal(fake_host_inotify_instances(), before + 1);
	for (int i = 0; i < MANY; i++) {
		int k = snprintf(line, sizeof(line), "FAILED %d\n", i);

		snprintf(path, sizeof(path), "%s/log%d.log", t->dir, i);
		append_to(path, line, (size_t)k);
	}
	assert_matches(t, MANY);
	for (int i = 0; i < MANY; i++) {
		snprintf(line, sizeof(line), "FAILED %d", i);
		assert_int_equal(count_line(t, line), 1);
	}
}

/* Two instances on one file share its watch; a third, in the same folder,
 * shares the folder's. Each reads its own file; one destroyed leaves the
 * other the file's watch (a write alone, no folder event, still wakes it),
 * and a rotation after that is followed. */
static void test_instances_share_watches(void **state)
{
	struct t *t = *state;
	char other[160], err[256] = "";
	const char *opts[] = {"failure = ^", NULL};
	void *gone;

	append(t, "");
	snprintf(other, sizeof(other), "%s/other.log", t->dir);
	append_to(other, "", 0);
	start_on(t, t->log);
	gone = create_with_host(t, fake_host_api(t->fh), opts);
	assert_int_equal(t->p->start(gone, err, sizeof(err)), 0);
	start_on(t, other);

	append(t, "both\n");
	append_to(other, "other\n", 6);
	assert_matches(t, 3);
	assert_int_equal(count_line(t, "both"), 2);
	assert_int_equal(count_line(t, "other"), 1);

	t->p->destroy(gone);
	append(t, "alone\n");
	assert_matches(t, 4);
	assert_int_equal(count_line(t, "alone"), 1);
	append(t, "before\n");
	rotate_create(t);
	append(t, "after\n");
	append_to(other, "other again\n", 12);
	assert_matches(t, 7);
	assert_int_equal(count_line(t, "before"), 1);
	assert_int_equal(count_line(t, "after"), 1);
	assert_int_equal(count_line(t, "other again"), 1);
}

/* A core without shared state: the instance has an inotify instance of
 * its own, closed with it. */
static void test_without_shared_state(void **state)
{
	struct t *t = *state;
	struct vigil_host host = *fake_host_api(t->fh);
	const char *opts[] = {"failure = error", NULL};
	int before = fake_host_inotify_instances();
	char err[256] = "";
	void *inst;

	host.shared = NULL;
	append(t, "");
	inst = create_with_host(t, &host, opts);
	assert_int_equal(t->p->start(inst, err, sizeof(err)), 0);
	assert_int_equal(fake_host_inotify_instances(), before + 1);
	append(t, "an error\n");
	assert_true(wait_kind(t, VIGIL_EV_MATCH, 1));
	assert_match(nth(t, VIGIL_EV_MATCH, 0), "failure", "an error");
	t->p->destroy(inst);
	assert_int_equal(fake_host_inotify_instances(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_success_failure, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_split_write, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_long_line, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_invalid_utf8, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_rename_rotation, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_copytruncate, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_rename_several_before_read, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_rename_dated_several_before_read, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_copytruncate_several_before_read, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_copytruncate_copy_deleted, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_copytruncate_read_past_copy, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_late_write_after_rename, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_delete_recreate, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_appears_later, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_folder_appears_later, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_stall, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_progress_percent, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_progress_count, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_progress_carriage_return, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_progress_carriage_return_line, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_progress_carriage_return_long, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_progress_n_of_m, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_from_end_and_start, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_log_tail_after_settle, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_bad_progress_pattern, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_many_instances_one_inotify, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_instances_share_watches, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_without_shared_state, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_backtracking_pattern, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_backtracking_pattern_settle, t_setup,
						t_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
