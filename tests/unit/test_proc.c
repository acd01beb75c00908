/* core/proc.c against real processes: our own, forked children renamed with
 * PR_SET_NAME to hostile comm values, zombies, exec'd commands, pid files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/proc.h"

/* A child that reports on `up`, then renames itself on request. */
struct kid {
	pid_t pid;
	int go;  /* write end: each byte makes the child take its next step */
	int up;  /* read end: the child writes one byte after each step */
};

static void kid_step(int in, int out)
{
	char c;
	if (write(out, "s", 1) != 1 || read(in, &c, 1) != 1)
		_exit(0);
}

/* The child: step, rename itself to each name in turn, stepping after each. */
static struct kid kid_spawn(const char *const *names)
{
	int go[2], up[2];
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(up, O_CLOEXEC), 0);
	struct kid k = { .pid = fork() };
	assert_true(k.pid >= 0);
	if (k.pid == 0) {
		close(go[1]);
		close(up[0]);
		kid_step(go[0], up[1]);
		for (size_t i = 0; names && names[i]; i++) {
			prctl(PR_SET_NAME, names[i], 0, 0, 0);
			kid_step(go[0], up[1]);
		}
		_exit(0);
	}
	close(go[0]);
	close(up[1]);
	k.go = go[1];
	k.up = up[0];
	return k;
}

/* Wait for the child's next step report. */
static void kid_wait(const struct kid *k)
{
	char c;
	assert_int_equal(read(k->up, &c, 1), 1);
}

static void kid_next(const struct kid *k)
{
	assert_int_equal(write(k->go, "g", 1), 1);
	kid_wait(k);
}

static void kid_end(struct kid *k)
{
	close(k->go);
	close(k->up);
	kill(k->pid, SIGKILL);
	waitpid(k->pid, NULL, 0);
}

/* A PID that named a process a moment ago and now names nothing. */
static pid_t gone_pid(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

static void read_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(buf, (int)len, f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

static void test_start_time_self(void **state)
{
	uint64_t a = 0, b = 0;
	(void)state;
	assert_int_equal(proc_start_time(getpid(), &a), 0);
	assert_int_equal(proc_start_time(getpid(), &b), 0);
	assert_true(a == b);
	assert_int_equal(proc_start_time(1, &b), 0);
	assert_true(b <= a); /* init started before us */
	assert_int_equal(proc_start_time(gone_pid(), &b), -ENOENT);
	assert_int_equal(proc_start_time(0, &b), -EINVAL);
}

/* comm may hold ") (" and even something shaped like a state and numbers:
 * only the last ')' ends it. */
static void test_hostile_comm(void **state)
{
	static const char *const names[] = { "a) (b c) 9 Z (", "x) Z 1 2 3 4", NULL };
	(void)state;
	struct kid k = kid_spawn(names);
	kid_wait(&k);
	uint64_t before, after;
	assert_int_equal(proc_start_time(k.pid, &before), 0);
	for (size_t i = 0; names[i]; i++) {
		char comm[32];
		kid_next(&k);
		read_comm(k.pid, comm, sizeof(comm));
		assert_string_equal(comm, names[i]); /* the rename did happen */
		assert_int_equal(proc_start_time(k.pid, &after), 0);
		assert_true(after == before);
		char st = proc_state(k.pid); /* about to block in read(), or blocked */
		assert_true(st == 'R' || st == 'S');
		assert_true(proc_is_same(k.pid, before));
	}
	kid_end(&k);
}

static void test_zombie_and_reaped(void **state)
{
	(void)state;
	struct kid k = kid_spawn(NULL);
	kid_wait(&k);
	uint64_t start;
	assert_int_equal(proc_start_time(k.pid, &start), 0);
	assert_false(proc_is_same(k.pid, start + 1));
	close(k.go); /* the child reads EOF and exits */
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	/* WNOWAIT: wait until it is a zombie, but leave it one. */
	assert_int_equal(waitid(P_PID, (id_t)k.pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(proc_state(k.pid), 'Z');
	assert_true(proc_is_same(k.pid, start)); /* not reaped yet */
	assert_int_equal(waitpid(k.pid, NULL, 0), k.pid);
	assert_false(proc_is_same(k.pid, start));
	assert_int_equal(proc_state(k.pid), 0);
	close(k.up);
}

/* Run argv; returns once exec has happened (the CLOEXEC pipe closes). */
static pid_t spawn_exec(char *const argv[])
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	char c;
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	return pid;
}

static void test_cmdline(void **state)
{
	char *const argv[] = { "/bin/sleep", "30", NULL };
	char buf[64];
	(void)state;
	pid_t pid = spawn_exec(argv);
	assert_int_equal(proc_cmdline(pid, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/bin/sleep 30");
	assert_int_equal(proc_cmdline(pid, buf, 5), 0);
	assert_string_equal(buf, "/bin");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(proc_cmdline(pid, buf, sizeof(buf)), -ENOENT);
	assert_string_equal(buf, "");
	assert_int_equal(proc_cmdline(getpid(), buf, 0), -EINVAL);
}

static long pid_max(void)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "re");
	long v = 0;
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%ld", &v), 1);
	fclose(f);
	return v;
}

static void expect_bad_pid(const char *text, const char *want)
{
	char err[128] = "";
	pid_t pid = 77;
	assert_int_equal(proc_parse_pid(text, &pid, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
	assert_int_equal(pid, 77);
}

static void test_parse_pid(void **state)
{
	char err[128], want[128];
	pid_t pid = 0;
	(void)state;
	assert_int_equal(proc_parse_pid(" 42\n", &pid, err, sizeof(err)), 0);
	assert_int_equal(pid, 42);
	assert_int_equal(proc_parse_pid("1", &pid, err, sizeof(err)), 0);
	assert_int_equal(pid, 1);
	snprintf(want, sizeof(want), "%ld", pid_max());
	assert_int_equal(proc_parse_pid(want, &pid, err, sizeof(err)), 0);
	assert_int_equal(pid, pid_max());
	expect_bad_pid("", "\"\" is not a PID");
	expect_bad_pid("abc", "\"abc\" is not a PID");
	expect_bad_pid("12abc", "\"12abc\" is not a PID");
	expect_bad_pid("1 2", "\"1 2\" is not a PID");
	expect_bad_pid("0", "0 is not a valid PID");
	expect_bad_pid("-1", "-1 is not a valid PID");
	snprintf(want, sizeof(want), "99999999 is above pid_max (%ld)", pid_max());
	expect_bad_pid("99999999", want);
	snprintf(want, sizeof(want), "%ld is above pid_max (%ld)", pid_max() + 1, pid_max());
	char text[32];
	snprintf(text, sizeof(text), "%ld", pid_max() + 1);
	expect_bad_pid(text, want);
	expect_bad_pid("\x01\x02", "\"??\" is not a PID");
}

static int tmpdir_setup(void **state)
{
	char *dir = strdup("/tmp/vigil-test-proc-XXXXXX");
	if (!dir || !mkdtemp(dir))
		return -1;
	*state = dir;
	return 0;
}

static int tmpdir_teardown(void **state)
{
	char *dir = *state, path[256];
	snprintf(path, sizeof(path), "%s/sub", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/x.pid", dir);
	unlink(path);
	rmdir(dir);
	free(dir);
	return 0;
}

static void write_file(const char *path, const char *content, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	close(fd);
}

static void expect_pid_file(const char *path, const char *content, size_t len, int ret,
			    const char *want)
{
	char err[128] = "";
	pid_t pid = 0;
	write_file(path, content, len);
	assert_int_equal(proc_read_pid_file(path, &pid, err, sizeof(err)), ret);
	if (ret == 0)
		assert_int_equal(pid, atoi(want));
	else
		assert_string_equal(err, want);
}

static void test_read_pid_file(void **state)
{
	const char *dir = *state;
	char path[256], err[128];
	pid_t pid;
	snprintf(path, sizeof(path), "%s/x.pid", dir);
	assert_int_equal(proc_read_pid_file(path, &pid, err, sizeof(err)), -ENOENT);
	expect_pid_file(path, "", 0, -EINVAL, "empty pid file");
	expect_pid_file(path, " \n\n", 3, -EINVAL, "empty pid file");
	expect_pid_file(path, "garbage\n", 8, -EINVAL, "\"garbage\" is not a PID");
	expect_pid_file(path, "1234\n", 5, 0, "1234");
	expect_pid_file(path, "12\0" "34", 5, -EINVAL, "pid file holds binary data");
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(proc_read_pid_file(path, &pid, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "not a regular file");
}

static void test_signal_name(void **state)
{
	char buf[32];
	(void)state;
	assert_string_equal(proc_signal_name(SIGKILL, buf, sizeof(buf)), "SIGKILL");
	assert_string_equal(proc_signal_name(SIGTERM, buf, sizeof(buf)), "SIGTERM");
	assert_string_equal(proc_signal_name(SIGSEGV, buf, sizeof(buf)), "SIGSEGV");
	assert_string_equal(proc_signal_name(1000, buf, sizeof(buf)), "SIG1000");
}

/* A process started later is younger, whenever the two are measured. */
static void test_age(void **state)
{
	uint64_t self, kid_start;
	(void)state;
	struct kid k = kid_spawn(NULL);
	kid_wait(&k);
	assert_int_equal(proc_start_time(getpid(), &self), 0);
	assert_int_equal(proc_start_time(k.pid, &kid_start), 0);
	assert_true(kid_start >= self);
	int64_t kid_age = proc_age_ms(kid_start);
	int64_t self_age = proc_age_ms(self);
	assert_true(kid_age >= 0);
	assert_true(self_age >= kid_age);
	assert_true(proc_age_ms(0) >= self_age); /* boot came first */
	kid_end(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_time_self),
		cmocka_unit_test(test_hostile_comm),
		cmocka_unit_test(test_zombie_and_reaped),
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_parse_pid),
		cmocka_unit_test_setup_teardown(test_read_pid_file, tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test(test_signal_name),
		cmocka_unit_test(test_age),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
