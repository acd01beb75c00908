/* Unit tests for the engine and the monitor run state machine (core/engine.c,
 * host.c, notify.c, monitor*.c) with the real plugins of the build: real child
 * processes, real files, and a [notifier cap] (the stdout plugin, JSON lines)
 * writing into a pipe the test reads. Each case waits for the JSON line it
 * expects by turning the loop; a generous bound only turns a hang into a
 * failure, no assertion depends on speed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/config.h"
#include "engine/engine.h"
#include "base/loop.h"
#include "engine/plugin_loader.h"
#include "base/state.h"
#include "base/buf.h"
#include "base/journal.h"
#include "lib/proc.h"

#define BOUND_MS 20000
#define MAX_LINES 256
#define MAX_CHILDREN 4

struct child {
	pid_t pid;
	int pidfd; /* for the clean-up: never signals a reused PID */
	int go;    /* write end: one byte tells the child what to do */
};

struct fx {
	char dir[64];
	struct loop *loop;
	struct plugin_set ps;
	struct engine *e;
	int cap[2];
	char buf[1 << 16];
	size_t blen;
	char *lines[MAX_LINES];
	size_t n_lines, cursor;
	struct raw_ini ini;
	struct monitor_config mc;
	bool have_mc;
	struct monitor *m;
	int done_calls;
	struct child kids[MAX_CHILDREN];
	size_t n_kids;
};

/* -------------------------------------------------------------- fixture */

static void on_monitor_done(void *data, struct monitor *m)
{
	struct fx *fx = data;

	assert_ptr_equal(m, fx->m);
	fx->done_calls++;
}

static void print_diag(const struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		print_error("diag: %s\n", d->lines[i]);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *root = getenv("VIGIL_BUILD_ROOT");
	char plugins[PATH_MAX], ini[256], sdir[128];
	struct engine_options opt = {.hostname = "testhost"};
	struct raw_ini raw = {0};
	struct diag d = {0};
	struct engine_hooks hooks = {.monitor_done = on_monitor_done};

	if (!fx || !root)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/vigil-test-monitor-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(sdir, sizeof(sdir), "%s/state", fx->dir);
	if (mkdir(sdir, 0700) != 0)
		return -1;
	opt.state_dir = sdir;
	snprintf(plugins, sizeof(plugins), "%s/plugins", root);
	fx->loop = loop_new();
	if (!fx->loop || pipe2(fx->cap, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	plugin_set_init(&fx->ps, plugins);
	fx->e = engine_new(fx->loop, &fx->ps, &opt);
	if (!fx->e)
		return -1;
	hooks.data = fx;
	engine_set_hooks(fx->e, &hooks);
	snprintf(ini, sizeof(ini), "[notifier cap]\ntype = stdout\nformat = json\nfd = %d\n",
		 fx->cap[1]);
	if (config_read_ini_string("vigil.ini", ini, &raw, &d) != 0 || raw.n_sections != 1 ||
	    engine_define_notifier(fx->e, "vigil.ini", &raw.sections[0], &d) != 0) {
		print_diag(&d);
		return -1;
	}
	raw_ini_free(&raw);
	diag_free(&d);
	*state = fx;
	return 0;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[PATH_MAX];

	while (d && (de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(path);
		else
			unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	monitor_free(fx->m);
	if (fx->have_mc)
		monitor_config_free(&fx->mc);
	raw_ini_free(&fx->ini);
	engine_free(fx->e);
	plugin_set_free(&fx->ps);
	loop_free(fx->loop);
	for (size_t i = 0; i < fx->n_kids; i++) {
		struct child *k = &fx->kids[i];
		siginfo_t si;

		/* Still ours and unreaped: kill and reap it (ECHILD: already reaped). */
		syscall(SYS_pidfd_send_signal, k->pidfd, SIGKILL, NULL, 0);
		waitid((idtype_t)P_PIDFD, (id_t)k->pidfd, &si, WEXITED);
		close(k->pidfd);
		if (k->go >= 0)
			close(k->go);
	}
	close(fx->cap[0]);
	close(fx->cap[1]);
	for (size_t i = 0; i < fx->n_lines; i++)
		free(fx->lines[i]);
	rm_tree(fx->dir);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------- children */

enum { KEEP_TERM = 0, IGNORE_TERM = 1 };

/* A child that waits for one byte: 'k' kills itself with SIGKILL, a digit
 * exits with that code. It says it is ready (signals set up) first. */
static pid_t child_new(struct fx *fx, int flags)
{
	int go[2], ready[2];
	struct child *k = &fx->kids[fx->n_kids];
	pid_t pid;
	char c;

	assert_true(fx->n_kids < MAX_CHILDREN);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(go[1]);
		close(ready[0]);
		if (flags & IGNORE_TERM)
			signal(SIGTERM, SIG_IGN);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(99);
		if (c == 'k')
			raise(SIGKILL);
		_exit(c - '0');
	}
	close(go[0]);
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	k->pid = pid;
	k->go = go[1];
	k->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	assert_true(k->pidfd >= 0);
	fx->n_kids++;
	return pid;
}

static void child_go(struct fx *fx, pid_t pid, char what)
{
	for (size_t i = 0; i < fx->n_kids; i++)
		if (fx->kids[i].pid == pid) {
			assert_int_equal(write(fx->kids[i].go, &what, 1), 1);
			return;
		}
	fail_msg("no child %d", (int)pid);
}

/* ------------------------------------------------------------- monitors */

__attribute__((format(printf, 2, 3)))
static void monitor_from(struct fx *fx, const char *fmt, ...)
{
	char text[4096], err[512] = "";
	struct diag d = {0};
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (config_read_ini_string("t.ini", text, &fx->ini, &d) != 0 ||
	    config_load_monitor(&fx->ini, 0, &fx->mc, &d) != 0) {
		print_diag(&d);
		fail_msg("bad monitor:\n%s", text);
	}
	fx->have_mc = true;
	fx->m = monitor_new(fx->e, &fx->mc, &d);
	if (!fx->m) {
		print_diag(&d);
		fail_msg("monitor_new failed:\n%s", text);
	}
	assert_int_equal(d.n, 0);
	diag_free(&d);
	if (monitor_start(fx->m, err, sizeof(err)) != 0)
		fail_msg("monitor_start: %s", err);
}

/* -------------------------------------------------------- reading events */

static void read_lines(struct fx *fx)
{
	ssize_t n;
	char *nl;

	while ((n = read(fx->cap[0], fx->buf + fx->blen, sizeof(fx->buf) - 1 - fx->blen)) > 0)
		fx->blen += (size_t)n;
	while ((nl = memchr(fx->buf, '\n', fx->blen))) {
		size_t len = (size_t)(nl - fx->buf);

		assert_true(fx->n_lines < MAX_LINES);
		fx->lines[fx->n_lines] = strndup(fx->buf, len);
		assert_non_null(fx->lines[fx->n_lines]);
		fx->n_lines++;
		memmove(fx->buf, nl + 1, fx->blen - len - 1);
		fx->blen -= len + 1;
	}
}

static bool is_kind(const char *line, const char *kind)
{
	char want[64];

	snprintf(want, sizeof(want), "\"kind\":\"%s\"", kind);
	return strstr(line, want) != NULL;
}

/* The next line of `kind` after the cursor; the cursor moves past it. */
static const char *wait_kind(struct fx *fx, const char *kind)
{
	int64_t end = loop_clock_ms() + BOUND_MS;

	for (;;) {
		read_lines(fx);
		for (size_t i = fx->cursor; i < fx->n_lines; i++)
			if (is_kind(fx->lines[i], kind)) {
				fx->cursor = i + 1;
				return fx->lines[i];
			}
		if (loop_clock_ms() > end)
			break;
		assert_int_equal(loop_run_once(fx->loop, 50), 0);
	}
	for (size_t i = 0; i < fx->n_lines; i++)
		print_error("line %zu: %s\n", i, fx->lines[i]);
	fail_msg("no \"%s\" event", kind);
	return NULL;
}

/* The kinds of every line so far, space-separated. */
static const char *kinds(struct fx *fx, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < fx->n_lines; i++) {
		const char *k = strstr(fx->lines[i], "\"kind\":\"");
		const char *e;

		assert_non_null(k);
		k += 8;
		e = strchr(k, '"');
		used += (size_t)snprintf(out + used, len - used, "%s%.*s", used ? " " : "",
					 (int)(e - k), k);
	}
	return out;
}

static void assert_kinds(struct fx *fx, const char *want)
{
	char got[1024];

	if (strcmp(kinds(fx, got, sizeof(got)), want) != 0)
		fail_msg("events \"%s\", expected \"%s\"", got, want);
}

/* The raw JSON value of a field: "\"failed\"", "3", "null". */
static const char *field(const char *line, const char *name, char *out, size_t len)
{
	char key[64];
	const char *p, *e;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(line, key);
	if (!p)
		fail_msg("no field %s in %s", name, line);
	p += strlen(key);
	if (*p == '"' || *p == '[') {
		/* a string, or an array of strings: up to the closing quote/bracket */
		bool in_str = *p == '"';

		for (e = p + 1; *e && (in_str || *e != ']'); e++) {
			if (in_str && *e == '\\' && e[1])
				e++;
			else if (*e == '"' && !(in_str = !in_str) && *p == '"')
				break;
		}
		e++;
	} else {
		e = p + strcspn(p, ",}");
	}
	snprintf(out, len, "%.*s", (int)(e - p), p);
	return out;
}

#define assert_field(line, name, want)                                            \
	do {                                                                      \
		char v_[1024];                                                    \
		assert_string_equal(field(line, name, v_, sizeof(v_)), want);     \
	} while (0)

#define assert_field_has(line, name, needle)                                      \
	do {                                                                      \
		char v_[1024];                                                    \
		field(line, name, v_, sizeof(v_));                                \
		if (!strstr(v_, needle))                                          \
			fail_msg("%s = %s lacks \"%s\"", name, v_, needle);      \
	} while (0)

static void write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* ------------------------------------------------------------ exit paths */

static void test_exit_zero_succeeds(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;
	struct run_record r;
	char sdir[128];

	monitor_from(fx, "[monitor]\nname = zero\npid = %d\nnotify = cap\n", (int)pid);
	l = wait_kind(fx, "attached");
	assert_field(l, "monitor", "\"zero\"");
	assert_field(l, "host", "\"testhost\"");
	assert_field(l, "run", "1");
	assert_field(l, "detector", "\"pid\"");
	assert_true(strstr(l, "\"pid\":") != NULL);
	child_go(fx, pid, '0');
	l = wait_kind(fx, "exited");
	assert_field(l, "exit_code", "0");
	assert_field(l, "signal", "null");
	assert_field(l, "core_dumped", "false");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field(l, "reason", "\"exit 0\"");
	assert_field(l, "exit_code", "0");
	assert_field(l, "detector", "\"core\"");
	assert_kinds(fx, "attached exited finished");
	assert_int_equal(monitor_last_outcome(fx->m), OUTCOME_SUCCEEDED);
	assert_true(monitor_done(fx->m));
	assert_false(monitor_lost_target(fx->m));
	assert_int_equal(fx->done_calls, 1);
	assert_int_equal(outcome_exit_status(monitor_last_outcome(fx->m)), 0);
	/* The run is recorded in the state folder. */
	snprintf(sdir, sizeof(sdir), "%s/state", fx->dir);
	assert_int_equal(state_read(sdir, "zero", &r), 0);
	assert_string_equal(r.state, "finished");
	assert_string_equal(r.outcome, "succeeded");
	assert_int_equal(r.pid, pid);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.run, 1);
}

static void test_exit_three_fails(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	monitor_from(fx, "[monitor]\nname = three\npid = %d\nnotify = cap\n", (int)pid);
	wait_kind(fx, "attached");
	child_go(fx, pid, '3');
	l = wait_kind(fx, "exited");
	assert_field(l, "exit_code", "3");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"failed\"");
	assert_field(l, "reason", "\"exit 3\"");
	assert_field(l, "exit_code", "3");
	assert_field(l, "signal", "null");
	assert_int_equal(monitor_last_outcome(fx->m), OUTCOME_FAILED);
	assert_int_equal(outcome_exit_status(OUTCOME_FAILED), 1);
	assert_kinds(fx, "attached exited finished");
}

static void test_killed_by_signal(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	monitor_from(fx, "[monitor]\nname = sig\npid = %d\nnotify = cap\n", (int)pid);
	wait_kind(fx, "attached");
	child_go(fx, pid, 'k');
	l = wait_kind(fx, "exited");
	assert_field(l, "signal", "\"SIGKILL\"");
	assert_field(l, "exit_code", "null");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"failed\"");
	assert_field(l, "signal", "\"SIGKILL\"");
	assert_field(l, "exit_code", "null");
	assert_field_has(l, "reason", "killed by SIGKILL");
}

static void test_lost_target(void **state)
{
	struct fx *fx = *state;
	pid_t gone = fork();
	const char *l;
	int status;

	assert_true(gone >= 0);
	if (gone == 0)
		_exit(0);
	assert_int_equal(waitpid(gone, &status, 0), gone);
	monitor_from(fx, "[monitor]\nname = lost\npid = %d\nnotify = cap\n", (int)gone);
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"unknown\"");
	assert_field_has(l, "reason", "does not exist");
	assert_field(l, "exit_code", "null");
	assert_kinds(fx, "finished");
	assert_int_equal(monitor_last_outcome(fx->m), OUTCOME_UNKNOWN);
	assert_int_equal(outcome_exit_status(OUTCOME_UNKNOWN), 4);
	assert_true(monitor_lost_target(fx->m));
	assert_true(monitor_done(fx->m));
	assert_int_equal(fx->done_calls, 1);
}

/* ------------------------------------------------------------- detectors */

static void test_file_present(void **state)
{
	struct fx *fx = *state;
	char path[128];
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	snprintf(path, sizeof(path), "%s/out.json", fx->dir);
	write_file(path, "{\"rows\":12}\n");
	monitor_from(fx, "[monitor]\nname = filep\npid = %d\nnotify = cap\n"
			 "[file]\npath = %s\nstable_for = 0\n", (int)pid, path);
	l = wait_kind(fx, "file");
	assert_field_has(l, "path", "out.json");
	assert_field(l, "size", "12");
	wait_kind(fx, "attached");
	child_go(fx, pid, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field_has(l, "reason", "exit 0");
	assert_field_has(l, "reason", "out.json present");
}

static void test_file_appears_during_run(void **state)
{
	struct fx *fx = *state;
	char path[128];
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	snprintf(path, sizeof(path), "%s/late.csv", fx->dir);
	monitor_from(fx, "[monitor]\nname = filel\npid = %d\nnotify = cap\n"
			 "[file]\npath = %s\nstable_for = 0\n", (int)pid, path);
	wait_kind(fx, "attached");
	write_file(path, "a,b\n");
	l = wait_kind(fx, "file");
	assert_field_has(l, "path", "late.csv");
	child_go(fx, pid, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field_has(l, "reason", "late.csv present");
}

static void test_file_missing(void **state)
{
	struct fx *fx = *state;
	char path[128];
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	snprintf(path, sizeof(path), "%s/never.json", fx->dir);
	monitor_from(fx, "[monitor]\nname = filem\npid = %d\nnotify = cap\n"
			 "[file]\npath = %s\nstable_for = 0\n", (int)pid, path);
	wait_kind(fx, "attached");
	child_go(fx, pid, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"failed\"");
	assert_field_has(l, "reason", "exit 0");
	assert_field_has(l, "reason", "never.json missing");
	assert_kinds(fx, "attached exited finished");
}

/* The failure line is written just before the process exits: settling reads
 * it before the outcome is decided. */
static void test_log_failure_line(void **state)
{
	struct fx *fx = *state;
	char path[128];
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;
	FILE *f;

	snprintf(path, sizeof(path), "%s/job.log", fx->dir);
	write_file(path, "old ERROR before the run\n");
	monitor_from(fx, "[monitor]\nname = logf\npid = %d\nnotify = cap\n"
			 "[log]\npath = %s\nfailure = ERROR\n", (int)pid, path);
	wait_kind(fx, "attached");
	f = fopen(path, "a");
	assert_non_null(f);
	fputs("working\nERROR: disk full\n", f);
	assert_int_equal(fclose(f), 0);
	child_go(fx, pid, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"failed\"");
	assert_field_has(l, "reason", "failure line: ERROR: disk full");
	assert_field_has(l, "log_tail", "ERROR: disk full");
	/* Read from the end: the old line was not counted. */
	fx->cursor = 0;
	l = wait_kind(fx, "match");
	assert_field(l, "pattern", "\"failure\"");
	assert_field(l, "line", "\"ERROR: disk full\"");
	assert_kinds(fx, "attached match exited finished");
}

/* Read from the start, a success line already in the log before the process
 * is attached counts for the first run. */
static void test_log_success_from_start(void **state)
{
	struct fx *fx = *state;
	char path[128];
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	snprintf(path, sizeof(path), "%s/early.log", fx->dir);
	write_file(path, "starting\nexport completed\n");
	monitor_from(fx, "[monitor]\nname = logs\npid = %d\nnotify = cap\n"
			 "[log]\npath = %s\nsuccess = completed\nfrom = start\n", (int)pid, path);
	l = wait_kind(fx, "match");
	assert_field(l, "pattern", "\"success\"");
	wait_kind(fx, "attached");
	child_go(fx, pid, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field_has(l, "reason", "success line seen");
}

static void test_success_expression(void **state)
{
	struct fx *fx = *state;
	char path[128];
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	/* exit 3, but the file is there: "exit or file" holds. */
	snprintf(path, sizeof(path), "%s/result.txt", fx->dir);
	write_file(path, "done\n");
	monitor_from(fx, "[monitor]\nname = expr\npid = %d\nnotify = cap\n"
			 "success = exit or file\n[file]\npath = %s\nstable_for = 0\n",
		     (int)pid, path);
	wait_kind(fx, "attached");
	child_go(fx, pid, '3');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field_has(l, "reason", "exit 3");
	assert_field_has(l, "reason", "result.txt present");
}

static void test_success_expression_fails(void **state)
{
	struct fx *fx = *state;
	char path[128];
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	/* exit 0 and no failure line, but "file and not failure" needs the file. */
	snprintf(path, sizeof(path), "%s/none.txt", fx->dir);
	monitor_from(fx, "[monitor]\nname = expr2\npid = %d\nnotify = cap\n"
			 "success = (exit and file) or failure\n"
			 "[file]\npath = %s\nstable_for = 0\n", (int)pid, path);
	wait_kind(fx, "attached");
	child_go(fx, pid, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"failed\"");
	assert_field_has(l, "reason", "none.txt missing");
}

/* ------------------------------------------------------------- commands */

static void test_command_succeeds(void **state)
{
	struct fx *fx = *state;
	const char *l;

	monitor_from(fx, "[monitor]\nname = cmd\ncommand = sh -c 'exit 0'\nnotify = cap\n");
	l = wait_kind(fx, "attached");
	assert_field_has(l, "cmdline", "exit 0");
	l = wait_kind(fx, "exited");
	assert_field(l, "exit_code", "0");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field(l, "run", "1");
	assert_kinds(fx, "attached exited finished");
	assert_true(monitor_done(fx->m));
	assert_int_equal(fx->done_calls, 1);
}

/* Retries are attempts of one run: `retrying` between them (the attempt to
 * come, of how many, after what delay, how the failed one ended), one
 * `finished` after the last, with the attempt it came from. */
static void test_command_retries(void **state)
{
	struct fx *fx = *state;
	char count[128], text[16] = "";
	const char *l;
	FILE *f;

	snprintf(count, sizeof(count), "%s/count", fx->dir);
	monitor_from(fx, "[monitor]\nname = retry\nnotify = cap\nretry = 2\nretry_delay = 10ms\n"
			 "command = n=$(cat %s 2>/dev/null || echo 0) && n=$((n+1)) && "
			 "echo $n > %s && test $n -ge 3\n", count, count);
	l = wait_kind(fx, "retrying");
	assert_field(l, "run", "1");
	assert_field(l, "attempt", "2");
	assert_field(l, "attempts", "3");
	assert_field(l, "exit_code", "1");
	assert_field(l, "signal", "null");
	assert_field(l, "reason", "\"exit 1\"");
	assert_false(monitor_done(fx->m));
	l = wait_kind(fx, "retrying");
	assert_field(l, "run", "1");
	assert_field(l, "attempt", "3");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field(l, "run", "1");
	assert_field(l, "attempt", "3");
	assert_field(l, "attempts", "3");
	assert_kinds(fx, "attached exited retrying attached exited retrying "
			 "attached exited finished");
	assert_true(monitor_done(fx->m));
	assert_int_equal(fx->done_calls, 1);
	f = fopen(count, "r");
	assert_non_null(f);
	assert_non_null(fgets(text, sizeof(text), f));
	fclose(f);
	assert_string_equal(text, "3\n");
}

/* retry counts extra attempts: all of them failing ends the run failed. */
static void test_command_retries_exhausted(void **state)
{
	struct fx *fx = *state;
	const char *l;

	monitor_from(fx, "[monitor]\nname = retry2\nnotify = cap\nretry = 1\nretry_delay = 10ms\n"
			 "command = exit 7\n");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"failed\"");
	assert_field(l, "reason", "\"exit 7\"");
	assert_field(l, "run", "1");
	assert_field(l, "attempt", "2");
	assert_true(monitor_done(fx->m));
	assert_kinds(fx, "attached exited retrying attached exited finished");
}

/* ------------------------------------------------------------- policies */

static void test_timeout_term_then_kill(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, IGNORE_TERM);
	const char *l;

	monitor_from(fx, "[monitor]\nname = tmo\npid = %d\nnotify = cap\ntimeout = 300ms\n"
			 "on_timeout = term\nkill_grace = 300ms\n", (int)pid);
	wait_kind(fx, "attached");
	l = wait_kind(fx, "timeout");
	assert_field(l, "limit", "0.3");
	assert_field(l, "detector", "\"core\"");
	l = wait_kind(fx, "exited");
	assert_field(l, "signal", "\"SIGKILL\"");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"timed_out\"");
	assert_field(l, "signal", "\"SIGKILL\"");
	assert_field_has(l, "reason", "timed out after");
	assert_int_equal(monitor_last_outcome(fx->m), OUTCOME_TIMED_OUT);
	assert_int_equal(outcome_exit_status(OUTCOME_TIMED_OUT), 3);
	assert_kinds(fx, "attached timeout exited finished");
}

static void test_timeout_kill(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, IGNORE_TERM);
	const char *l;

	monitor_from(fx, "[monitor]\nname = tmk\npid = %d\nnotify = cap\ntimeout = 200ms\n"
			 "on_timeout = kill\n", (int)pid);
	wait_kind(fx, "timeout");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"timed_out\"");
	assert_field(l, "signal", "\"SIGKILL\"");
	assert_kinds(fx, "attached timeout exited finished");
}

static void test_timeout_notify_only(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	monitor_from(fx, "[monitor]\nname = tmn\npid = %d\nnotify = cap\ntimeout = 200ms\n"
			 "on_timeout = notify\n", (int)pid);
	l = wait_kind(fx, "timeout");
	assert_field_has(l, "message", "still running");
	assert_false(monitor_done(fx->m));
	child_go(fx, pid, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field(l, "reason", "\"exit 0\"");
	assert_kinds(fx, "attached timeout exited finished");
}

static void test_expected_overdue_once(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	monitor_from(fx, "[monitor]\nname = late\npid = %d\nnotify = cap\nexpected = 200ms\n",
		     (int)pid);
	l = wait_kind(fx, "overdue");
	assert_field(l, "limit", "0.2");
	assert_false(monitor_done(fx->m));
	child_go(fx, pid, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_kinds(fx, "attached overdue exited finished");
}

/* Wait (bounded) until pid has run longer than ms: a process older than a limit. */
static void age_past(pid_t pid, int64_t ms)
{
	uint64_t start;

	assert_int_equal(proc_start_time(pid, &start), 0);
	for (int i = 0; i < 1000 && proc_age_ms(start) <= ms; i++)
		usleep(10000);
	assert_true(proc_age_ms(start) > ms);
}

static void test_timeout_already_past_fires(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, IGNORE_TERM);
	const char *l;

	age_past(pid, 300);
	monitor_from(fx, "[monitor]\nname = old\npid = %d\nnotify = cap\ntimeout = 200ms\n"
			 "on_timeout = kill\n", (int)pid);
	l = wait_kind(fx, "timeout");
	assert_field(l, "late", "true");
	assert_field_has(l, "message", "already past");
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"timed_out\"");
	assert_field_has(l, "reason", "already past");
}

static void test_expected_already_past_fires(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, KEEP_TERM);
	const char *l;

	age_past(pid, 300);
	monitor_from(fx, "[monitor]\nname = oldexp\npid = %d\nnotify = cap\nexpected = 200ms\n",
		     (int)pid);
	l = wait_kind(fx, "overdue");
	assert_field(l, "late", "true");
	child_go(fx, pid, '0');
	wait_kind(fx, "finished");
	assert_kinds(fx, "attached overdue exited finished");
}

/* The owner's journal holds every event of the run, one JSON line each. */
static void test_journal_holds_the_run(void **state)
{
	struct fx *fx = *state;
	pid_t pid = child_new(fx, KEEP_TERM);
	char path[PATH_MAX], text[8192], sdir[128];
	const char *want[] = {"\"kind\":\"attached\"", "\"kind\":\"exited\"",
			      "\"kind\":\"finished\""};
	const char *p = text;
	struct buf types;
	FILE *f;
	size_t n;

	monitor_from(fx, "[monitor]\nname = jr\npid = %d\nnotify = cap\n", (int)pid);
	child_go(fx, pid, '0');
	wait_kind(fx, "finished");
	snprintf(sdir, sizeof(sdir), "%s/state", fx->dir);
	assert_int_equal(journal_path(sdir, "jr", path, sizeof(path)), 0);
	assert_non_null(f = fopen(path, "r"));
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	for (size_t i = 0; i < 3; i++) {
		assert_non_null(p = strstr(p, want[i]));
		p = strchr(p, '\n');
		assert_non_null(p);
	}
	assert_string_equal(p, "\n");
	buf_init(&types);
	assert_int_equal(journal_types(text, (size_t)(strchr(text, '\n') - text), &types), 0);
	assert_string_equal(buf_cstr(&types), "is"); /* start_time, cmdline */
	buf_free(&types);
}

/* ----------------------------------------------------------- recurring */

static void test_pid_file_runs_count_up(void **state)
{
	struct fx *fx = *state;
	char pidfile[128], num[32];
	pid_t a = child_new(fx, KEEP_TERM), b;
	const char *l;

	snprintf(pidfile, sizeof(pidfile), "%s/job.pid", fx->dir);
	snprintf(num, sizeof(num), "%d\n", (int)a);
	write_file(pidfile, num);
	monitor_from(fx, "[monitor]\nname = recur\npid_file = %s\nnotify = cap\n", pidfile);
	l = wait_kind(fx, "attached");
	assert_field(l, "run", "1");
	child_go(fx, a, '0');
	l = wait_kind(fx, "finished");
	assert_field(l, "run", "1");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_false(monitor_done(fx->m));
	assert_int_equal(fx->done_calls, 0);

	b = child_new(fx, KEEP_TERM);
	snprintf(num, sizeof(num), "%d\n", (int)b);
	write_file(pidfile, num);
	l = wait_kind(fx, "attached");
	assert_field(l, "run", "2");
	snprintf(num, sizeof(num), "%d", (int)b);
	assert_field(l, "pid", num);
	child_go(fx, b, '4');
	l = wait_kind(fx, "finished");
	assert_field(l, "run", "2");
	assert_field(l, "outcome", "\"failed\"");
	assert_field(l, "reason", "\"exit 4\"");
	assert_false(monitor_done(fx->m));
	assert_kinds(fx, "attached exited finished attached exited finished");
}

/* ---------------------------------------------------------- engine misc */

static void test_bad_monitor_reports(void **state)
{
	struct fx *fx = *state;
	struct diag d = {0};

	assert_int_equal(config_read_ini_string("bad.ini",
						"[monitor]\npid = 1\nnotify = nosuch\n"
						"[file]\nbogus = 1\n",
						&fx->ini, &d), 0);
	assert_int_equal(config_load_monitor(&fx->ini, 0, &fx->mc, &d), 0);
	fx->have_mc = true;
	assert_null(monitor_new(fx->e, &fx->mc, &d));
	assert_true(d.n >= 2);
	bool unknown_notifier = false, unknown_key = false;
	for (size_t i = 0; i < d.n; i++) {
		unknown_notifier |= strstr(d.lines[i], "unknown notifier \"nosuch\"") != NULL;
		unknown_key |= strstr(d.lines[i], "bogus") != NULL;
	}
	assert_true(unknown_notifier);
	assert_true(unknown_key);
	diag_free(&d);
	assert_int_equal(engine_pending(fx->e), 0);
}

/* ------------------------------------------------------------- retries */

static void read_text(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* Between attempts the run record says `retrying`, with the attempt to come
 * and when; the run number stays. */
static void test_retry_waits_in_state_retrying(void **state)
{
	struct fx *fx = *state;
	char sdir[128];
	struct run_record r;

	monitor_from(fx, "[monitor]\nname = rs\nnotify = cap\nretry = 1\nretry_delay = 1h\n"
			 "command = exit 3\n");
	wait_kind(fx, "retrying");
	snprintf(sdir, sizeof(sdir), "%s/state", fx->dir);
	assert_int_equal(state_read(sdir, "rs", &r), 0);
	assert_string_equal(r.state, "retrying");
	assert_string_equal(r.outcome, "");
	assert_int_equal(r.run, 1);
	assert_int_equal(r.attempt, 2);
	assert_int_equal(r.attempts, 2);
	assert_true(r.next_at_ms > r.ended_ms + 3000000);
	assert_false(monitor_done(fx->m));
	assert_kinds(fx, "attached exited retrying");
}

/* The job knows who it is; retry_command runs from the second attempt on. */
static void test_retry_command_and_environment(void **state)
{
	struct fx *fx = *state;
	char trail[128], text[256];
	const char *l;

	snprintf(trail, sizeof(trail), "%s/trail", fx->dir);
	monitor_from(fx, "[monitor]\nname = env\nnotify = cap\nretry = 2\nretry_delay = 10ms\n"
			 "command = echo first $VIGIL_JOB $VIGIL_RUN $VIGIL_ATTEMPT >> %s; exit 1\n"
			 "retry_command = echo resume $VIGIL_JOB $VIGIL_RUN $VIGIL_ATTEMPT >> %s\n",
			 trail, trail);
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field(l, "attempt", "2");
	read_text(trail, text, sizeof(text));
	assert_string_equal(text, "first env 1 1\nresume env 1 2\n");
}

/* before_retry gets the retrying event on stdin, and the next attempt starts
 * only once it has ended (here the attempt needs what the hook leaves). */
static void test_before_retry_runs_before_the_next_attempt(void **state)
{
	struct fx *fx = *state;
	char json[128], text[4096];
	const char *l;

	snprintf(json, sizeof(json), "%s/before.json", fx->dir);
	monitor_from(fx, "[monitor]\nname = br\nnotify = cap\nretry = 1\nretry_delay = 0\n"
			 "command = test -s %s\n"
			 "before_retry = sleep 0.2; cat > %s.tmp && mv %s.tmp %s\n",
			 json, json, json, json);
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"succeeded\"");
	assert_field(l, "attempt", "2");
	read_text(json, text, sizeof(text));
	assert_non_null(strstr(text, "\"kind\":\"retrying\""));
	assert_non_null(strstr(text, "\"attempt\":2"));
	assert_non_null(strstr(text, "\"monitor\":\"br\""));
}

/* on_failure runs before `finished` (given it on stdin); its failure is in
 * the outcome's reason. */
static void test_on_failure_before_finished(void **state)
{
	struct fx *fx = *state;
	char out[128], text[4096];
	const char *l;

	snprintf(out, sizeof(out), "%s/failure.json", fx->dir);
	monitor_from(fx, "[monitor]\nname = of\nnotify = cap\ncommand = exit 4\n"
			 "on_failure = cat > %s; exit 2\n", out);
	l = wait_kind(fx, "finished");
	assert_field(l, "outcome", "\"failed\"");
	assert_field(l, "reason", "\"exit 4; on_failure failed (exit 2)\"");
	read_text(out, text, sizeof(text));
	assert_non_null(strstr(text, "\"kind\":\"finished\""));
	assert_non_null(strstr(text, "\"outcome\":\"failed\""));
	assert_true(monitor_done(fx->m));
	assert_int_equal(fx->done_calls, 1);
}

/* A hook past hook_timeout is killed, with its whole process group. */
static void test_hook_timeout_kills_the_hook(void **state)
{
	struct fx *fx = *state;
	char pidf[128], text[64];
	const char *l;

	snprintf(pidf, sizeof(pidf), "%s/hook.pid", fx->dir);
	monitor_from(fx, "[monitor]\nname = ht\nnotify = cap\ncommand = exit 1\n"
			 "hook_timeout = 100ms\non_failure = sleep 300 & echo $! > %s; wait\n",
			 pidf);
	l = wait_kind(fx, "finished");
	assert_field(l, "reason", "\"exit 1; on_failure killed after 100ms (hook_timeout)\"");
	read_text(pidf, text, sizeof(text));
	/* the group got SIGKILL: the sleeper is gone (or a zombie not yet reaped) */
	pid_t sleeper = (pid_t)atoi(text);
	int64_t end = loop_clock_ms() + BOUND_MS;

	while (kill(sleeper, 0) == 0 && proc_state(sleeper) != 'Z' && loop_clock_ms() < end)
		assert_int_equal(loop_run_once(fx->loop, 20), 0);
	assert_true(kill(sleeper, 0) != 0 || proc_state(sleeper) == 'Z');
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_exit_zero_succeeds),
		T(test_exit_three_fails),
		T(test_killed_by_signal),
		T(test_lost_target),
		T(test_file_present),
		T(test_file_appears_during_run),
		T(test_file_missing),
		T(test_log_failure_line),
		T(test_log_success_from_start),
		T(test_success_expression),
		T(test_success_expression_fails),
		T(test_command_succeeds),
		T(test_command_retries),
		T(test_command_retries_exhausted),
		T(test_timeout_term_then_kill),
		T(test_timeout_kill),
		T(test_timeout_notify_only),
		T(test_expected_overdue_once),
		T(test_timeout_already_past_fires),
		T(test_expected_already_past_fires),
		T(test_journal_holds_the_run),
		T(test_pid_file_runs_count_up),
		T(test_bad_monitor_reports),
		T(test_retry_waits_in_state_retrying),
		T(test_retry_command_and_environment),
		T(test_before_retry_runs_before_the_next_attempt),
		T(test_on_failure_before_finished),
		T(test_hook_timeout_kills_the_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
