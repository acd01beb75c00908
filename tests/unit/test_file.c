/* Unit tests for the file detector (plugins/detectors/file.c), loaded as the
 * built .so and driven through the fake host, with real files in a fresh
 * temporary folder and real writer processes. Every wait is bounded only so
 * that a bug fails instead of hanging; "nothing yet" checks rely on the
 * plugin's own timers, which cannot fire before their delay has passed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_host.h"

#define BOUND_MS 10000

struct fx {
	char dir[PATH_MAX];
	const struct vigil_plugin *p;
	struct fake_host *fh;
	void *inst;
	pid_t child; /* a writer still to reap, 0 when none */
};

/* ------------------------------------------------------------- helpers */

static void pathf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < len);
}

static void write_file(const char *path, const char *data, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* create() + start() with "path = PATH" and up to three more lines. */
static int start_file(struct fx *x, const char *path, const char *l1, const char *l2,
		      const char *l3)
{
	char line[PATH_MAX + 16];
	const char *lines[5] = {line, l1, l2, l3, NULL};

	pathf(line, sizeof(line), "path = %s", path);
	return fake_host_instantiate(x->fh, x->p, lines, &x->inst);
}

static size_t count_kind(struct fake_host *fh, const char *kind)
{
	size_t n = 0;

	for (size_t i = 0; i < fake_host_n_events(fh); i++)
		if (strcmp(fake_host_event(fh, i)->kind, kind) == 0)
			n++;
	return n;
}

static bool pred_kind(struct fake_host *fh, void *arg)
{
	return fake_host_find(fh, arg, 0) != NULL;
}

static bool pred_settled(struct fake_host *fh, void *arg)
{
	(void)arg;
	return fake_host_settled_count(fh) > 0;
}

static const struct fake_event *wait_kind(struct fx *x, const char *kind)
{
	assert_true(fake_host_run_until(x->fh, pred_kind, (void *)kind, BOUND_MS));
	return fake_host_find(x->fh, kind, 0);
}

/* The `file` event's path and size are what we expect. */
static void assert_file_event(const struct fake_event *e, const char *path, int64_t size)
{
	const struct vigil_field *fp, *fs;

	assert_non_null(e);
	assert_string_equal(e->kind, VIGIL_EV_FILE);
	fp = fake_event_field(e, "path");
	fs = fake_event_field(e, "size");
	assert_non_null(fp);
	assert_non_null(fs);
	assert_int_equal(fp->type, VIGIL_FIELD_STRING);
	assert_int_equal(fp->u.s.len, strlen(path));
	assert_memory_equal(fp->u.s.ptr, path, strlen(path));
	assert_int_equal(fs->type, VIGIL_FIELD_INT);
	assert_int_equal(fs->u.i, size);
}

/* -------------------------------------------------------------- fixture */

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	if (!x)
		return -1;
	snprintf(x->dir, sizeof(x->dir), "/tmp/vigil-test-file-XXXXXX");
	if (!mkdtemp(x->dir))
		return -1;
	x->p = fake_host_load_plugin(getenv("VIGIL_TEST_PLUGIN"));
	x->fh = fake_host_new();
	if (!x->p || !x->fh)
		return -1;
	*state = x;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	struct fx *x = *state;

	if (x->child > 0) { /* a test failed before reaping it */
		kill(x->child, SIGKILL);
		waitpid(x->child, NULL, 0);
	}
	fake_host_free(x->fh); /* destroys the instance */
	nftw(x->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(x);
	return 0;
}

/* ------------------------------------------------------- appearing */

static void test_present_at_start(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX], msg[PATH_MAX + 64];
	const struct fake_event *e;

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	write_file(path, "hello", 5, O_TRUNC);
	assert_int_equal(start_file(x, path, "stable_for = 0", NULL, NULL), 0);
	assert_true(fake_host_criteria(x->fh) & (1u << VIGIL_CRIT_FILE));
	e = wait_kind(x, VIGIL_EV_FILE);
	assert_file_event(e, path, 5);
	pathf(msg, sizeof(msg), "%s appeared (5 bytes)", path);
	assert_string_equal(e->message, msg);
}

/* With a stable_for window, a file found at start is reported once the
 * window has passed without change, not at once. */
static void test_present_at_start_stable(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	write_file(path, "hello", 5, O_TRUNC);
	assert_int_equal(start_file(x, path, "stable_for = 200ms", NULL, NULL), 0);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 5);
}

/* A child writes three chunks with the file open, on the parent's command,
 * then closes it. stable_for = 0: only the close can report it. */
static void child_chunk_writer(const char *path, int cmd, int ack)
{
	char chunk[4096], c;
	int fd = -1;

	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 3; i++) {
		if (read(cmd, &c, 1) != 1)
			_exit(2);
		if (fd < 0 && (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
			_exit(3);
		if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
			_exit(4);
		if (write(ack, "k", 1) != 1)
			_exit(5);
	}
	if (read(cmd, &c, 1) != 1)
		_exit(6);
	_exit(close(fd) == 0 ? 0 : 7);
}

static void test_slow_writer_reported_once_at_close(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX], msg[PATH_MAX + 64], c;
	int cmd[2], ack[2], status;
	pid_t pid;

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, "stable_for = 0", NULL, NULL), 0);
	assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ack, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_chunk_writer(path, cmd[0], ack[1]);
	x->child = pid;
	close(cmd[0]);
	close(ack[1]);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(write(cmd[1], "w", 1), 1);
		assert_int_equal(read(ack[0], &c, 1), 1);
		fake_host_run_for(x->fh, 100);
		assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	}
	assert_int_equal(write(cmd[1], "c", 1), 1);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 3 * 4096);
	pathf(msg, sizeof(msg), "%s appeared (12.0 KB)", path);
	assert_string_equal(fake_host_find(x->fh, VIGIL_EV_FILE, 0)->message, msg);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	x->child = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fake_host_run_for(x->fh, 200);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 1);
	close(cmd[1]);
	close(ack[0]);
}

/* The writer keeps the file open: stable_for of silence decides, and every
 * write restarts the window. */
static void test_stable_for_open_writer(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];
	int fd;

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, "stable_for = 600ms", NULL, NULL), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "first,", 6), 6);
	fake_host_run_for(x->fh, 300);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	assert_int_equal(write(fd, "second", 6), 6);
	/* 700 ms after the first write, but less than 600 after the second */
	fake_host_run_for(x->fh, 400);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 12);
	assert_int_equal(close(fd), 0);
	fake_host_run_for(x->fh, 100);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 1);
}

static void test_min_size_not_reached(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX], big[200];

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, "min_size = 100", "stable_for = 100ms", NULL), 0);
	write_file(path, "0123456789", 10, O_TRUNC);
	fake_host_run_for(x->fh, 500);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	/* still watching: growing past min_size reports it */
	memset(big, 'y', sizeof(big));
	write_file(path, big, sizeof(big), O_APPEND);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 210);
}

static void test_empty_file_is_not_output(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	write_file(path, "", 0, O_TRUNC);
	assert_int_equal(start_file(x, path, "stable_for = 0", NULL, NULL), 0);
	write_file(path, "", 0, O_TRUNC);
	fake_host_run_for(x->fh, 200);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	write_file(path, "{}", 2, O_TRUNC);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 2);
}

static void test_glob(void **state)
{
	struct fx *x = *state;
	char pattern[PATH_MAX], path[PATH_MAX];

	pathf(pattern, sizeof(pattern), "%s/out-*.json", x->dir);
	assert_int_equal(start_file(x, pattern, "stable_for = 0", NULL, NULL), 0);
	pathf(path, sizeof(path), "%s/other.json", x->dir);
	write_file(path, "no", 2, O_TRUNC);
	pathf(path, sizeof(path), "%s/out-1.txt", x->dir);
	write_file(path, "no", 2, O_TRUNC);
	pathf(path, sizeof(path), "%s/.out-2.json", x->dir);
	write_file(path, "no", 2, O_TRUNC);
	pathf(path, sizeof(path), "%s/out-7.json", x->dir);
	write_file(path, "yes!", 4, O_TRUNC);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 4);
	fake_host_run_for(x->fh, 100);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 1);
}

static void test_glob_in_folder_refused(void **state)
{
	struct fx *x = *state;
	char pattern[PATH_MAX];

	pathf(pattern, sizeof(pattern), "%s/run-*/out.json", x->dir);
	assert_int_equal(start_file(x, pattern, NULL, NULL, NULL), -EINVAL);
	assert_non_null(strstr(fake_host_last_error(x->fh), "'run-*'"));
	assert_int_equal(fake_host_criteria(x->fh), 0);
}

/* mkdir -p and the file, by another process, as fast as it goes: the
 * descent through a/b/c must not lose the race. */
static void test_folders_created_later(void **state)
{
	struct fx *x = *state;
	char abc[PATH_MAX], path[PATH_MAX];
	int status;
	pid_t pid;

	pathf(abc, sizeof(abc), "%s/a/b/c", x->dir);
	pathf(path, sizeof(path), "%s/out.json", abc);
	assert_int_equal(start_file(x, path, "stable_for = 0", NULL, NULL), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "mkdir -p \"$1\" && printf hello > \"$1/out.json\"",
		      "sh", abc, (char *)NULL);
		_exit(127);
	}
	x->child = pid;
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 5);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	x->child = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* One folder at a time, the loop turning in between: each level is
 * watched in turn. */
static void test_folders_created_one_by_one(void **state)
{
	struct fx *x = *state;
	char d[PATH_MAX], path[PATH_MAX];

	pathf(path, sizeof(path), "%s/a/b/c/out.json", x->dir);
	assert_int_equal(start_file(x, path, "stable_for = 0", NULL, NULL), 0);
	pathf(d, sizeof(d), "%s/a", x->dir);
	assert_int_equal(mkdir(d, 0755), 0);
	fake_host_run_for(x->fh, 50);
	pathf(d, sizeof(d), "%s/a/b", x->dir);
	assert_int_equal(mkdir(d, 0755), 0);
	fake_host_run_for(x->fh, 50);
	pathf(d, sizeof(d), "%s/a/b/c", x->dir);
	assert_int_equal(mkdir(d, 0755), 0);
	fake_host_run_for(x->fh, 50);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	write_file(path, "done", 4, O_TRUNC);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 4);
}

/* The folder is removed and made again: the detector follows. */
static void test_folder_recreated(void **state)
{
	struct fx *x = *state;
	char d[PATH_MAX], path[PATH_MAX];

	pathf(d, sizeof(d), "%s/sub", x->dir);
	pathf(path, sizeof(path), "%s/out.json", d);
	assert_int_equal(mkdir(d, 0755), 0);
	assert_int_equal(start_file(x, path, "stable_for = 0", NULL, NULL), 0);
	assert_int_equal(rmdir(d), 0);
	fake_host_run_for(x->fh, 50);
	assert_int_equal(mkdir(d, 0755), 0);
	fake_host_run_for(x->fh, 50);
	write_file(path, "again", 5, O_TRUNC);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 5);
}

static void rename_into_place(struct fx *x, const char *stable)
{
	char tmp[PATH_MAX], path[PATH_MAX];

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	pathf(tmp, sizeof(tmp), "%s/out.json.tmp", x->dir);
	assert_int_equal(start_file(x, path, stable, NULL, NULL), 0);
	write_file(tmp, "renamed", 7, O_TRUNC);
	fake_host_run_for(x->fh, 50);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	assert_int_equal(rename(tmp, path), 0);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 7);
	fake_host_run_for(x->fh, 100);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 1);
}

static void test_rename_into_place(void **state)
{
	rename_into_place(*state, "stable_for = 0");
}

static void test_rename_into_place_stable(void **state)
{
	rename_into_place(*state, "stable_for = 200ms");
}

/* ------------------------------------------------------------ deadline */

static void test_deadline_overdue(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX], msg[PATH_MAX + 64];
	const struct fake_event *e;
	const struct vigil_field *f;

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, "stable_for = 0", "deadline = 200ms", NULL), 0);
	e = wait_kind(x, VIGIL_EV_OVERDUE);
	pathf(msg, sizeof(msg), "%s not there after 200ms", path);
	assert_string_equal(e->message, msg);
	f = fake_event_field(e, "path");
	assert_non_null(f);
	assert_memory_equal(f->u.s.ptr, path, strlen(path));
	f = fake_event_field(e, "limit");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_DOUBLE);
	assert_true(f->u.d == 0.2);
	f = fake_event_field(e, "elapsed");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_DOUBLE);
	assert_true(f->u.d >= 0.2);
	fake_host_run_for(x->fh, 300);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_OVERDUE), 1);
	/* late is still better than never */
	write_file(path, "late", 4, O_TRUNC);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 4);
}

static void test_deadline_met(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	write_file(path, "early", 5, O_TRUNC);
	assert_int_equal(start_file(x, path, "stable_for = 0", "deadline = 100ms", NULL), 0);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 5);
	fake_host_run_for(x->fh, 300);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_OVERDUE), 0);
}

/* -------------------------------------------------------------- settle */

static void test_settle_while_unstable(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];
	size_t i_file;
	int fd;

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, "stable_for = 500ms", NULL, NULL), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "partial", 7), 7);
	assert_int_equal(x->p->settle(x->inst), VIGIL_SETTLING);
	assert_int_equal(fake_host_settled_count(x->fh), 0);
	assert_true(fake_host_run_until(x->fh, pred_settled, NULL, BOUND_MS));
	assert_int_equal(fake_host_settled_count(x->fh), 1);
	assert_file_event(fake_host_find(x->fh, VIGIL_EV_FILE, 0), path, 7);
	i_file = fake_host_n_events(x->fh);
	assert_int_equal(x->p->settle(x->inst), VIGIL_SETTLED);
	assert_int_equal(fake_host_n_events(x->fh), i_file);
	assert_int_equal(close(fd), 0);
	fake_host_run_for(x->fh, 100);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 1);
	assert_int_equal(fake_host_settled_count(x->fh), 1);
}

static void test_settle_file_removed(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];
	int fd;

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, "stable_for = 500ms", NULL, NULL), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "partial", 7), 7);
	assert_int_equal(x->p->settle(x->inst), VIGIL_SETTLING);
	assert_int_equal(unlink(path), 0);
	assert_true(fake_host_run_until(x->fh, pred_settled, NULL, BOUND_MS));
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 0);
	assert_int_equal(close(fd), 0);
}

static void test_settle_absent(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, NULL, NULL, NULL), 0);
	assert_int_equal(x->p->settle(x->inst), VIGIL_SETTLED);
	assert_int_equal(fake_host_n_events(x->fh), 0);
	assert_int_equal(fake_host_settled_count(x->fh), 0);
}

/* stable_for = 0 and the file written but its events not read yet: settle
 * looks at the disk itself. */
static void test_settle_present_reports(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, "stable_for = 0", NULL, NULL), 0);
	write_file(path, "synced", 6, O_TRUNC);
	assert_int_equal(x->p->settle(x->inst), VIGIL_SETTLED);
	assert_file_event(fake_host_find(x->fh, VIGIL_EV_FILE, 0), path, 6);
	fake_host_run_for(x->fh, 100);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 1);
}

/* ----------------------------------------------------------------- runs */

static void attach_run(struct fx *x, uint64_t run)
{
	struct vigil_event ev = {.kind = VIGIL_EV_ATTACHED};
	struct vigil_record rec = {.id = "test", .monitor = "test", .run = run,
				   .detector = "core", .event = &ev};

	x->p->on_event(x->inst, &rec);
}

static void test_new_run_resets(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];

	pathf(path, sizeof(path), "%s/out.json", x->dir);
	assert_int_equal(start_file(x, path, "stable_for = 0", NULL, NULL), 0);
	attach_run(x, 1);
	write_file(path, "run1", 4, O_TRUNC);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), path, 4);
	write_file(path, "run1 again", 10, O_TRUNC);
	fake_host_run_for(x->fh, 100);
	assert_int_equal(count_kind(x->fh, VIGIL_EV_FILE), 1);
	attach_run(x, 2);
	write_file(path, "run2!", 5, O_TRUNC);
	assert_true(fake_host_wait_events(x->fh, 2, BOUND_MS));
	assert_file_event(fake_host_find(x->fh, VIGIL_EV_FILE, 1), path, 5);
}

/* ------------------------------------------------ many instances, one inotify */

#define N_MANY 200

/* `file` events for path. */
static size_t count_path(struct fake_host *fh, const char *path)
{
	size_t n = 0;

	for (size_t i = 0; i < fake_host_n_events(fh); i++) {
		const struct fake_event *e = fake_host_event(fh, i);
		const struct vigil_field *f = fake_event_field(e, "path");

		if (strcmp(e->kind, VIGIL_EV_FILE) == 0 && f && f->u.s.len == strlen(path) &&
		    memcmp(f->u.s.ptr, path, f->u.s.len) == 0)
			n++;
	}
	return n;
}

/* path with stable_for = 0, in ctx (a new one when NULL). */
static void start_in(struct fx *x, struct vigil_ctx *ctx, const char *path)
{
	char line[PATH_MAX + 16];
	const char *lines[] = {line, "stable_for = 0", NULL};
	void *inst;

	pathf(line, sizeof(line), "path = %s", path);
	assert_int_equal(fake_host_instantiate_ctx(x->fh, ctx ? ctx : fake_host_new_ctx(x->fh),
						   x->p, lines, &inst),
			 0);
}

/* File i of the many: two in each folder, DIR/dI/outI.json. */
static void many_path(const struct fx *x, size_t i, char *buf, size_t len, bool folder)
{
	if (folder)
		pathf(buf, len, "%s/d%zu", x->dir, i / 2);
	else
		pathf(buf, len, "%s/d%zu/out%zu.json", x->dir, i / 2, i);
}

/* N_MANY instances (more than the 128 inotify instances a user may have) in
 * one process: one inotify instance for all. Two share each folder (one
 * watch); every fifth folder is made only later, all of those waiting on
 * the same ancestor. Each reports its own file, once. */
static void test_many_instances_one_inotify(void **state)
{
	struct fx *x = *state;
	char path[PATH_MAX];

	for (size_t i = 0; i < N_MANY; i++) {
		many_path(x, i, path, sizeof(path), true);
		if (i % 2 == 0 && (i / 2) % 5)
			assert_int_equal(mkdir(path, 0755), 0);
		many_path(x, i, path, sizeof(path), false);
		start_in(x, i ? NULL : fake_host_ctx(x->fh), path);
	}
	assert_int_equal(fake_host_inotify_instances(), 1);
	fake_host_run_for(x->fh, 50);
	for (size_t i = 0; i < N_MANY; i += 2) {
		many_path(x, i, path, sizeof(path), true);
		if ((i / 2) % 5 == 0)
			assert_int_equal(mkdir(path, 0755), 0);
	}
	for (size_t i = 0; i < N_MANY; i++) {
		many_path(x, i, path, sizeof(path), false);
		write_file(path, "done", 4, O_TRUNC);
	}
	assert_true(fake_host_wait_events(x->fh, N_MANY, BOUND_MS));
	fake_host_run_for(x->fh, 100);
	assert_int_equal(fake_host_n_events(x->fh), N_MANY);
	for (size_t i = 0; i < N_MANY; i++) {
		many_path(x, i, path, sizeof(path), false);
		assert_int_equal(count_path(x->fh, path), 1);
	}
}

/* One instance's folder is another's ancestor, still waiting for its
 * subfolder: one watch for both, each hears of what it waits for only. */
static void test_folder_and_ancestor_shared(void **state)
{
	struct fx *x = *state;
	char top[PATH_MAX], sub[PATH_MAX], deep[PATH_MAX];

	pathf(top, sizeof(top), "%s/out.json", x->dir);
	pathf(sub, sizeof(sub), "%s/sub", x->dir);
	pathf(deep, sizeof(deep), "%s/sub/out.json", x->dir);
	start_in(x, fake_host_ctx(x->fh), top);
	start_in(x, NULL, deep);
	write_file(top, "top", 3, O_TRUNC);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), top, 3);
	assert_int_equal(mkdir(sub, 0755), 0);
	fake_host_run_for(x->fh, 50);
	assert_int_equal(fake_host_n_events(x->fh), 1);
	write_file(deep, "deep", 4, O_TRUNC);
	assert_true(fake_host_wait_events(x->fh, 2, BOUND_MS));
	assert_file_event(fake_host_event(x->fh, 1), deep, 4);
	fake_host_run_for(x->fh, 100);
	assert_int_equal(fake_host_n_events(x->fh), 2);
}

/* create() + start() of an instance (path, stable_for = 0) the fake host
 * does not destroy: the test does. */
static void *start_own(struct fx *x, const char *path)
{
	char line[PATH_MAX + 16], err[256] = "";
	const char *lines[] = {line, "stable_for = 0", NULL};
	const struct vigil_config *cfg;
	void *inst = NULL;

	pathf(line, sizeof(line), "path = %s", path);
	cfg = fake_host_config(x->fh, x->p, lines);
	assert_non_null(cfg);
	assert_int_equal(x->p->create(fake_host_api(x->fh), fake_host_new_ctx(x->fh), cfg, &inst,
				      err, sizeof(err)),
			 0);
	assert_int_equal(x->p->start(inst, err, sizeof(err)), 0);
	return inst;
}

/* Destroyed with events of its folder unread: the instance lets go of its
 * watch (kept for the other instance there, removed for the one that was
 * alone) and reports nothing more. */
static void test_destroyed_lets_go(void **state)
{
	struct fx *x = *state;
	char a[PATH_MAX], b[PATH_MAX], solo[PATH_MAX];
	void *ia, *isolo;

	pathf(a, sizeof(a), "%s/out-a.json", x->dir);
	pathf(b, sizeof(b), "%s/out-b.json", x->dir);
	pathf(solo, sizeof(solo), "%s/solo", x->dir);
	assert_int_equal(mkdir(solo, 0755), 0);
	pathf(solo, sizeof(solo), "%s/solo/out.json", x->dir);
	start_in(x, fake_host_ctx(x->fh), b);
	ia = start_own(x, a);
	isolo = start_own(x, solo);
	write_file(a, "a", 1, O_TRUNC);
	write_file(solo, "s", 1, O_TRUNC);
	x->p->destroy(ia);
	x->p->destroy(isolo);
	write_file(b, "b", 1, O_TRUNC);
	assert_file_event(wait_kind(x, VIGIL_EV_FILE), b, 1);
	fake_host_run_for(x->fh, 100);
	assert_int_equal(fake_host_n_events(x->fh), 1);
	assert_int_equal(fake_host_inotify_instances(), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_present_at_start, setup, teardown),
		cmocka_unit_test_setup_teardown(test_present_at_start_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_writer_reported_once_at_close, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stable_for_open_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_min_size_not_reached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file_is_not_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_glob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_glob_in_folder_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders_created_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders_created_one_by_one, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_folder_recreated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_into_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_into_place_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_overdue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_met, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_while_unstable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_file_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_settle_present_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_run_resets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_instances_one_inotify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folder_and_ancestor_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destroyed_lets_go, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
