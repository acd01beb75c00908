/* Unit tests for core/state.c: run records written and read back field for
 * field (newlines and backslashes included), listing sorted by name, the
 * writer-alive check, and atomic replacement: readers see either the old or
 * the new record, never half of one, and no temp file stays behind. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/state.h"
#include "tmp_tree.h"

static int setup(void **state)
{
	return tmp_fix_setup(state, "state");
}

/* Names of the entries of dir other than . and .., sorted, joined by spaces. */
static void dir_listing(const char *dir, char *out, size_t len)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	size_t used = 0;

	out[0] = '\0';
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
			used += (size_t)snprintf(out + used, len - used, "%s%s", used ? " " : "",
						 names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

static void fill(struct run_record *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->run = 12345678901ULL;
	snprintf(r->state, sizeof(r->state), "finished");
	r->pid = 4321;
	r->start_time = 987654321987ULL;
	r->supervisor = 4320;
	r->owner_pid = 77;
	r->uid = 1000;
	r->started_ms = 1700000000123LL;
	r->ended_ms = 1700000009876LL;
	r->exit_code = 3;
	r->signal = 0;
	snprintf(r->outcome, sizeof(r->outcome), "failed");
	r->expected_ms = 900000;
	r->timeout_ms = 7200000;
	r->progress = 42.5;
	snprintf(r->log, sizeof(r->log), "/var/log/a b.log");
	/* A literal backslash-n must stay two characters, a newline one. */
	snprintf(r->command, sizeof(r->command),
		 "sh -c 'printf \"a\\nb\"; echo x=y'\nsecond line\\\\ and \\");
	snprintf(r->last_event, sizeof(r->last_event), "match: line\twith tab\r");
	snprintf(r->reason, sizeof(r->reason), "exit 3,\nfailure line: C:\\temp\\new");
}

static void assert_same(const struct run_record *a, const struct run_record *b)
{
	assert_string_equal(a->name, b->name);
	assert_true(a->run == b->run);
	assert_string_equal(a->state, b->state);
	assert_int_equal(a->pid, b->pid);
	assert_true(a->start_time == b->start_time);
	assert_int_equal(a->supervisor, b->supervisor);
	assert_int_equal(a->owner_pid, b->owner_pid);
	assert_int_equal(a->uid, b->uid);
	assert_true(a->started_ms == b->started_ms);
	assert_true(a->ended_ms == b->ended_ms);
	assert_int_equal(a->exit_code, b->exit_code);
	assert_int_equal(a->signal, b->signal);
	assert_string_equal(a->outcome, b->outcome);
	assert_true(a->expected_ms == b->expected_ms);
	assert_true(a->timeout_ms == b->timeout_ms);
	assert_true(a->progress == b->progress);
	assert_string_equal(a->log, b->log);
	assert_string_equal(a->command, b->command);
	assert_string_equal(a->last_event, b->last_event);
	assert_string_equal(a->reason, b->reason);
}

static void test_round_trip(void **state)
{
	struct tmp_fix *f = *state;
	struct run_record w, r;
	char listing[256];

	fill(&w, "nightly-export");
	assert_int_equal(state_write(f->dir, &w), 0);
	assert_int_equal(state_read(f->dir, "nightly-export", &r), 0);
	assert_same(&w, &r);
	assert_non_null(strchr(r.command, '\n'));
	assert_non_null(strstr(r.command, "a\\nb"));
	assert_string_equal(r.command + strlen(r.command) - 1, "\\");
	dir_listing(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "nightly-export.run");

	/* Unknown values: -1 exit code and signal, no progress, empty strings. */
	memset(&w, 0, sizeof(w));
	snprintf(w.name, sizeof(w.name), "empty");
	snprintf(w.state, sizeof(w.state), "waiting");
	w.exit_code = -1;
	w.signal = -1;
	w.progress = -1;
	assert_int_equal(state_write(f->dir, &w), 0);
	assert_int_equal(state_read(f->dir, "empty", &r), 0);
	assert_same(&w, &r);
}

/* A later write replaces the record whole. */
static void test_overwrite(void **state)
{
	struct tmp_fix *f = *state;
	struct run_record w, r;
	char listing[256];

	fill(&w, "job");
	assert_int_equal(state_write(f->dir, &w), 0);
	w.run = 2;
	snprintf(w.state, sizeof(w.state), "running");
	w.outcome[0] = '\0';
	w.reason[0] = '\0';
	assert_int_equal(state_write(f->dir, &w), 0);
	assert_int_equal(state_read(f->dir, "job", &r), 0);
	assert_same(&w, &r);
	dir_listing(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "job.run");
}

static void test_read_errors(void **state)
{
	struct tmp_fix *f = *state;
	struct run_record r;
	char path[PATH_MAX];
	FILE *fp;

	assert_int_equal(state_read(f->dir, "absent", &r), -ENOENT);
	assert_int_equal(state_read(f->dir, "../etc", &r), -EINVAL);
	assert_int_equal(state_read(f->dir, "", &r), -EINVAL);
	/* A record without a name is not a record. */
	snprintf(path, sizeof(path), "%s/noname.run", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("run=3\nstate=finished\n", fp);
	fclose(fp);
	assert_int_equal(state_read(f->dir, "noname", &r), -EINVAL);
	/* Unknown keys (a newer vigil's) and lines without '=' are skipped. */
	snprintf(path, sizeof(path), "%s/newer.run", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("name=newer\nfuture_key=1\ngarbage line\nrun=9\n", fp);
	fclose(fp);
	assert_int_equal(state_read(f->dir, "newer", &r), 0);
	assert_string_equal(r.name, "newer");
	assert_int_equal(r.run, 9);
	assert_int_equal(r.exit_code, -1); /* absent: unknown, not 0 */
	assert_true(r.progress == -1);
}

static void test_list_sorted(void **state)
{
	struct tmp_fix *f = *state;
	const char *names[] = {"zeta", "alpha", "mid", "Beta", "alpha-2"};
	struct run_record w, *v;
	size_t n;
	char path[PATH_MAX];
	FILE *fp;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		fill(&w, names[i]);
		w.run = i + 1;
		assert_int_equal(state_write(f->dir, &w), 0);
	}
	/* Not records: another suffix, a hidden (temp) file, a bare ".run". */
	snprintf(path, sizeof(path), "%s/notes.txt", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("name=notes\n", fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/.hidden.run.123", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("name=hidden\n", fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/.run", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("name=dotrun\n", fp);
	fclose(fp);

	assert_int_equal(state_list(f->dir, &v, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(v[0].name, "Beta");
	assert_string_equal(v[1].name, "alpha");
	assert_string_equal(v[2].name, "alpha-2");
	assert_string_equal(v[3].name, "mid");
	assert_string_equal(v[4].name, "zeta");
	assert_int_equal(v[4].run, 1);
	assert_int_equal(v[0].run, 4);
	free(v);

	assert_int_equal(state_remove(f->dir, "mid"), 0);
	assert_int_equal(state_remove(f->dir, "mid"), -ENOENT);
	assert_int_equal(state_list(f->dir, &v, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[3].name, "zeta");
	free(v);
}

static void test_list_missing_dir(void **state)
{
	struct tmp_fix *f = *state;
	char dir[PATH_MAX];
	struct run_record *v = (struct run_record *)1;
	size_t n = 99;

	snprintf(dir, sizeof(dir), "%s/none", f->dir);
	assert_int_equal(state_list(dir, &v, &n), 0);
	assert_null(v);
	assert_int_equal(n, 0);
}

static void test_writer_alive(void **state)
{
	struct run_record r;
	pid_t child;
	int status;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.owner_pid = getpid();
	assert_true(state_writer_alive(&r));
	r.owner_pid = 0;
	assert_false(state_writer_alive(&r));
	r.owner_pid = -1;
	assert_false(state_writer_alive(&r));
	/* A writer that exited and was reaped is gone. */
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, &status, 0), child);
	r.owner_pid = child;
	assert_false(state_writer_alive(&r));
}

/* A failed write leaves neither a temp file nor a partial record. */
static void test_failed_write_leaves_nothing(void **state)
{
	struct tmp_fix *f = *state;
	struct run_record w;
	char path[PATH_MAX], listing[256];

	/* The record's path is a directory: the final rename must fail. */
	snprintf(path, sizeof(path), "%s/blocked.run", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	fill(&w, "blocked");
	assert_true(state_write(f->dir, &w) < 0);
	dir_listing(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "blocked.run");
	/* A folder that does not exist. */
	snprintf(path, sizeof(path), "%s/none", f->dir);
	assert_true(state_write(path, &w) < 0);
	dir_listing(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "blocked.run");
}

/* Readers racing a writer see the old or the new record, whole. */
static void test_readers_never_see_half(void **state)
{
	struct tmp_fix *f = *state;
	struct run_record a, b, r;
	char listing[256];
	pid_t child;
	int status, seen_a = 0, seen_b = 0;

	fill(&a, "race");
	fill(&b, "race");
	b.run = 2;
	memset(b.command, 'c', sizeof(b.command) - 1);
	b.command[sizeof(b.command) - 1] = '\0';
	memset(b.reason, 'r', sizeof(b.reason) - 1);
	b.reason[sizeof(b.reason) - 1] = '\0';
	assert_int_equal(state_write(f->dir, &a), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		for (int i = 0; i < 600; i++)
			if (state_write(f->dir, i % 2 ? &a : &b) != 0)
				_exit(1);
		_exit(0);
	}
	for (;;) {
		pid_t done = waitpid(child, &status, WNOHANG);

		assert_int_equal(state_read(f->dir, "race", &r), 0);
		if (r.run == 2) {
			assert_same(&b, &r);
			seen_b++;
		} else {
			assert_same(&a, &r);
			seen_a++;
		}
		if (done == child)
			break;
		assert_int_equal(done, 0);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(seen_a + seen_b > 0);
	dir_listing(f->dir, listing, sizeof(listing));
	assert_string_equal(listing, "race.run");
}

static void test_ensure_and_default_dir(void **state)
{
	struct tmp_fix *f = *state;
	char dir[PATH_MAX], buf[PATH_MAX];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/a/b/c", f->dir);
	assert_int_equal(state_ensure_dir(dir), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0022, 0); /* never group/other-writable */
	assert_int_equal(state_ensure_dir(dir), 0); /* exists: fine */

	assert_int_equal(setenv("VIGIL_STATE_DIR", dir, 1), 0);
	assert_string_equal(state_default_dir(buf, sizeof(buf)), dir);
	assert_int_equal(unsetenv("VIGIL_STATE_DIR"), 0);
	state_default_dir(buf, sizeof(buf));
	assert_true(buf[0] == '/');
	if (geteuid() == 0)
		assert_string_equal(buf, "/run/vigil");
}

/* Issue 10, item 2: a folder others can write, or a link, is refused with the
 * reason, and nothing is written into it. */
static void test_untrusted_dir_refused(void **state)
{
	struct tmp_fix *f = *state;
	char open_dir[PATH_MAX], link[PATH_MAX], err[PATH_MAX + 200];
	struct run_record r = { .name = "x", .state = "running" };

	snprintf(open_dir, sizeof(open_dir), "%s/open", f->dir);
	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 0777), 0);
	assert_int_equal(state_check_dir(open_dir, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "writable by others (mode 0777): refused"));
	assert_int_equal(state_ensure_dir(open_dir), -EPERM);

	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(f->dir, link), 0);
	assert_int_equal(state_check_dir(link, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, ": a symbolic link: refused"));
	assert_int_equal(state_check_dir(f->dir, err, sizeof(err)), 0);
	assert_int_equal(state_write(f->dir, &r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_overwrite, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_read_errors, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_list_sorted, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_list_missing_dir, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_writer_alive, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_leaves_nothing, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_readers_never_see_half, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_ensure_and_default_dir, setup, tmp_fix_teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_dir_refused, setup, tmp_fix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
