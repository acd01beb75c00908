/* Unit tests for core/base/history.c: runs appended and read back field for
 * field, a corrupt or torn line skipped and counted, the bound (history_keep)
 * holding with the per-outcome totals kept across compactions, no temp file
 * left behind, the p50/p95 of successful runs, a planted link refused, and
 * where the folder is. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/history.h"
#include "tmp_tree.h"

static int setup(void **state)
{
	return tmp_fix_setup(state, "history");
}

static struct history_entry entry(uint64_t run, const char *outcome, double duration)
{
	struct history_entry e = {.run = run, .duration = duration, .exit_code = 0,
				  .attempts = 1, .peak_rss_bytes = -1};

	e.start_ms = 1796000000000 + (int64_t)run * 60000;
	e.end_ms = e.start_ms + (int64_t)(duration * 1000);
	snprintf(e.outcome, sizeof(e.outcome), "%s", outcome);
	if (strcmp(outcome, "succeeded") != 0)
		e.exit_code = 1;
	snprintf(e.reason, sizeof(e.reason), "exit %d", e.exit_code);
	return e;
}

static void append(const char *dir, const char *name, const struct history_entry *e, size_t keep)
{
	char err[512];

	err[0] = '\0';
	assert_int_equal(history_append(dir, name, e, keep, err, sizeof(err)), 0);
}

static void append_raw(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s.jsonl", dir, name);
	fp = fopen(path, "a");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void round_trip(void **state)
{
	struct tmp_fix *f = *state;
	struct history_entry a = entry(1, "succeeded", 1.5), b = entry(2, "failed", 0.25);
	struct history h;

	snprintf(b.signal, sizeof(b.signal), "SIGKILL");
	b.exit_code = -1;
	b.peak_rss_bytes = 123456789;
	snprintf(b.reason, sizeof(b.reason), "killed \"quoted\"\nand a \\ newline");
	append(f->dir, "job", &a, 10);
	append(f->dir, "job", &b, 10);
	assert_int_equal(history_read(f->dir, "job", &h), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.corrupt, 0);
	assert_int_equal(h.v[0].run, 1);
	assert_int_equal(h.v[0].start_ms, a.start_ms);
	assert_int_equal(h.v[0].end_ms, a.end_ms);
	assert_true(h.v[0].duration > 1.49 && h.v[0].duration < 1.51);
	assert_string_equal(h.v[0].outcome, "succeeded");
	assert_int_equal(h.v[0].exit_code, 0);
	assert_int_equal(h.v[0].attempts, 1);
	assert_int_equal(h.v[0].peak_rss_bytes, -1);
	assert_string_equal(h.v[1].signal, "SIGKILL");
	assert_int_equal(h.v[1].exit_code, -1);
	assert_int_equal(h.v[1].peak_rss_bytes, 123456789);
	assert_string_equal(h.v[1].reason, b.reason);
	assert_int_equal(h.total[0], 1);
	assert_int_equal(h.total[1], 1);
	history_free(&h);
}

static void missing_is_empty(void **state)
{
	struct tmp_fix *f = *state;
	struct history h;

	assert_int_equal(history_read(f->dir, "never", &h), 0);
	assert_int_equal(h.n, 0);
	assert_int_equal(history_read(f->dir, "../etc", &h), -EINVAL);
}

static void corrupt_lines_skipped(void **state)
{
	struct tmp_fix *f = *state;
	struct history_entry a = entry(1, "succeeded", 2), b = entry(2, "succeeded", 4);
	struct history h;

	append(f->dir, "job", &a, 10);
	append_raw(f->dir, "job", "{\"monitor\":\"job\",\"run\":\n");        /* torn */
	append_raw(f->dir, "job", "not json at all\n");
	append_raw(f->dir, "job", "{\"run\":3,\"duration\":\"x\",\"outcome\":\"failed\"}\n");
	append_raw(f->dir, "job", "{\"run\":4,\"duration\":1,\"outcome\":\"bogus\"}\n");
	append_raw(f->dir, "job", "{\"run\":5,\"duration\":1,\"outcome\":\"failed\"} trailing\n");
	append(f->dir, "job", &b, 10);
	assert_int_equal(history_read(f->dir, "job", &h), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.corrupt, 5);
	assert_int_equal(h.v[1].run, 2);
	history_free(&h);
}

static size_t files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* keep 8: never more than 10 runs, the last runs kept, totals of all 50. */
static void bound_holds(void **state)
{
	struct tmp_fix *f = *state;
	struct history h;

	for (uint64_t i = 1; i <= 50; i++) {
		struct history_entry e = entry(i, i % 5 == 0 ? "failed" : "succeeded", 1);

		append(f->dir, "job", &e, 8);
		assert_int_equal(history_read(f->dir, "job", &h), 0);
		assert_true(h.n <= 10);
		assert_int_equal(h.corrupt, 0);
		assert_int_equal(h.v[h.n - 1].run, i);
		assert_int_equal(h.total[0] + h.total[1], i);
		history_free(&h);
	}
	assert_int_equal(history_read(f->dir, "job", &h), 0);
	assert_int_equal(h.total[0], 40);
	assert_int_equal(h.total[1], 10);
	assert_true(h.n >= 8);
	history_free(&h);
	assert_int_equal(files_in(f->dir), 1); /* no temp file left */
}

static void quantiles(void **state)
{
	struct tmp_fix *f = *state;
	struct history h;
	double d[] = {5, 1, 3, 2, 4, 100, 6, 7, 8, 9, 10};

	for (size_t i = 0; i < 11; i++) {
		struct history_entry e = entry(i + 1, i == 5 ? "failed" : "succeeded", d[i]);

		append(f->dir, "q", &e, 100);
	}
	assert_int_equal(history_read(f->dir, "q", &h), 0);
	/* 10 successful runs 1..10: the failed 100 s run does not count. */
	assert_true(history_success_quantile(&h, 0.5) == 5);
	assert_true(history_success_quantile(&h, 0.95) == 10);
	history_free(&h);
	memset(&h, 0, sizeof(h));
	assert_true(history_success_quantile(&h, 0.5) < 0);
}

static void link_refused(void **state)
{
	struct tmp_fix *f = *state;
	char path[128], sub[96], err[512];
	struct history_entry e = entry(1, "succeeded", 1);

	/* A folder others may write: a planted link must not be followed. */
	snprintf(sub, sizeof(sub), "%s/shared", f->dir);
	assert_int_equal(mkdir(sub, 01777), 0);
	assert_int_equal(chmod(sub, 01777), 0);
	snprintf(path, sizeof(path), "%s/job.jsonl", sub);
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_true(history_append(sub, "job", &e, 10, err, sizeof(err)) < 0);
}

static void folder_choice(void **state)
{
	char buf[256];

	(void)state;
	setenv("VIGIL_HISTORY_DIR", "/x/h", 1);
	assert_string_equal(history_dir("/s", buf, sizeof(buf)), "/x/h");
	unsetenv("VIGIL_HISTORY_DIR");
	setenv("VIGIL_STATE_DIR", "/s", 1);
	assert_string_equal(history_dir("/s", buf, sizeof(buf)), "/s/history");
	unsetenv("VIGIL_STATE_DIR");
	assert_string_equal(history_dir("/chosen", buf, sizeof(buf)), "/chosen/history");
	setenv("VIGIL_HISTORY_KEEP", "7", 1);
	assert_int_equal(history_keep(), 7);
	setenv("VIGIL_HISTORY_KEEP", "zero", 1);
	assert_int_equal(history_keep(), HISTORY_KEEP_DEFAULT);
	unsetenv("VIGIL_HISTORY_KEEP");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(round_trip, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(missing_is_empty, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(corrupt_lines_skipped, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(bound_holds, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(quantiles, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(link_refused, setup, tmp_fix_teardown),
		cmocka_unit_test(folder_choice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
