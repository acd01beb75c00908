/* The stdout notifier (plugins/notifiers/stdout.c), loaded as the built .so
 * and driven through its descriptor and the fake host: exact text and JSON
 * lines on a pipe, a socket and a regular file, order and delivery reports
 * through a full pipe, and permanent failures when the reader is gone. */
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/event_json.h"
#include "fake_host.h"

#define T_MS 1795678927123 /* 2026-11-26T07:42:07.123Z */

static const struct vigil_plugin *plugin;

struct fixture {
	struct fake_host *fh;
	int rd, wr; /* the pipe or socket the plugin writes to */
	void *inst;
	struct buf json; /* the record's JSON, kept alive for notify() */
};

static int setup_pipe(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int p[2];

	if (!f || pipe2(p, O_CLOEXEC) < 0)
		return -1;
	f->fh = fake_host_new();
	f->rd = p[0];
	f->wr = p[1];
	*state = f;
	return 0;
}

static int setup_socket(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int p[2];

	if (!f || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
		return -1;
	f->fh = fake_host_new();
	f->rd = p[0];
	f->wr = p[1];
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fake_host_free(f->fh); /* destroys the instance */
	if (f->rd >= 0)
		close(f->rd);
	if (f->wr >= 0)
		close(f->wr);
	buf_free(&f->json);
	free(f);
	return 0;
}

static int start(struct fixture *f, const char *format)
{
	char fmt_line[64], fd_line[64];
	const char *lines[] = {fmt_line, fd_line, NULL};

	snprintf(fmt_line, sizeof(fmt_line), "format = %s", format);
	snprintf(fd_line, sizeof(fd_line), "fd = %d", f->wr);
	return fake_host_instantiate(f->fh, plugin, lines, &f->inst);
}

/* Fill in rec for ev, with its JSON encoded by the core's encoder. */
static void make_record(struct fixture *f, struct vigil_record *rec, const struct vigil_event *ev,
			uint64_t run)
{
	const struct event_envelope env = {"0190f3a5c2e87d3b9a4c5e6f708192a3", T_MS, "web-1",
					   "export", run, "core", 0};

	buf_reset(&f->json);
	assert_int_equal(event_json_encode(&f->json, &env, ev), 0);
	*rec = (struct vigil_record){
		.id = env.id, .monitor = env.monitor, .run = run, .detector = env.detector,
		.time_ms = T_MS, .host = env.host, .pid = 0, .event = ev,
		.json = f->json.p, .json_len = f->json.len,
	};
}

/* Read exactly len bytes (the pipe's read end is blocking) and compare. */
static void expect_output(int fd, const char *want)
{
	size_t len = strlen(want), got = 0;
	char *p = malloc(len + 1);

	assert_non_null(p);
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		assert_true(n > 0);
		got += (size_t)n;
	}
	p[len] = '\0';
	assert_string_equal(p, want);
	free(p);
}

static void expect_delivery(struct fake_host *fh, size_t i, uint64_t token,
			    enum vigil_delivery result, const char *detail)
{
	const struct fake_delivery *d;

	assert_true(fake_host_n_deliveries(fh) > i);
	d = fake_host_delivery(fh, i);
	assert_int_equal(d->token, token);
	assert_int_equal(d->result, result);
	if (detail)
		assert_string_equal(d->detail, detail);
	else
		assert_null(d->detail);
	assert_int_equal(d->retry_after_ms, -1);
}

static const struct vigil_bytes tail_lines[] = {{"done", 4}, {"bye", 3}};
static const struct vigil_field finished_fields[] = {
	{"outcome", VIGIL_FIELD_STRING, .u.s = {"succeeded", 9}},
	{"exit_code", VIGIL_FIELD_INT, .u.i = 0},
	{"signal", VIGIL_FIELD_NULL, .u.i = 0},
	{"duration", VIGIL_FIELD_DOUBLE, .u.d = 12.5},
	{"reason", VIGIL_FIELD_STRING, .u.s = {"exit 0, /data/out.json present", 30}},
	{"log_tail", VIGIL_FIELD_STRINGS, .u.list = {tail_lines, 2}},
};
static const struct vigil_event finished = {
	VIGIL_EV_FINISHED, "succeeded \xe2\x80\x94 exit 0, /data/out.json present",
	finished_fields, sizeof(finished_fields) / sizeof(finished_fields[0])};

/* The report block the stdout notifier puts under `finished` above. */
#define FINISHED_BLOCK                                                                     \
	"  outcome      succeeded\n  exit status  0\n  duration     12.5 s\n"             \
	"  peak memory  unknown\n  CPU time     unknown\n  last lines:\n    done\n    bye\n"

static void test_descriptor(void **state)
{
	(void)state;
	assert_int_equal(plugin->abi_version, VIGIL_PLUGIN_ABI_VERSION);
	assert_int_equal(plugin->kind, VIGIL_PLUGIN_NOTIFIER);
	assert_string_equal(plugin->name, "stdout");
	assert_non_null(plugin->notify);
}

static void test_text_line(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	assert_int_equal(start(f, "text"), 0);
	make_record(f, &rec, &finished, 1);
	assert_int_equal(plugin->notify(f->inst, 11, &rec), 0);
	expect_output(f->rd, "07:42:07 export#1 finished: succeeded \xe2\x80\x94 exit 0, "
			     "/data/out.json present [exit_code=0 duration=12.5s]\n" FINISHED_BLOCK);
	assert_int_equal(fake_host_n_deliveries(f->fh), 1);
	expect_delivery(f->fh, 0, 11, VIGIL_DELIVERED, NULL);
}

/* Whatever a detector puts in a message or field stays on one line and
 * cannot send terminal controls. */
static void test_text_escaping(void **state)
{
	struct fixture *f = *state;
	const struct vigil_field fields[] = {
		{"path", VIGIL_FIELD_STRING, .u.s = {"/tmp/a b", 8}},
		{"line", VIGIL_FIELD_STRING, .u.s = {"\x1b[2J\xff\"q\\", 8}},
		{"plain", VIGIL_FIELD_STRING, .u.s = {"caf\xc3\xa9", 5}},
		{"empty", VIGIL_FIELD_STRING, .u.s = {"", 0}},
		{"value", VIGIL_FIELD_DOUBLE, .u.d = 42.125},
		{"silent_for", VIGIL_FIELD_DOUBLE, .u.d = 600},
		{"core_dumped", VIGIL_FIELD_BOOL, .u.b = 1},
	};
	const struct vigil_event ev = {VIGIL_EV_MATCH,
				       "bad\nFAKE 00:00:00 x#1 finished: ok\r\t\xc2\x9b\x7f\xc0", fields,
				       sizeof(fields) / sizeof(fields[0])};
	struct vigil_record rec;

	assert_int_equal(start(f, "text"), 0);
	make_record(f, &rec, &ev, 12);
	assert_int_equal(plugin->notify(f->inst, 1, &rec), 0);
	expect_output(f->rd, "07:42:07 export#12 match: bad\\nFAKE 00:00:00 x#1 finished: "
			     "ok\\r\\t\\u009b\\x7f\\xc0 [path=\"/tmp/a b\" "
			     "line=\"\\x1b[2J\\xff\\\"q\\\\\" plain=caf\xc3\xa9 empty=\"\" "
			     "value=42.125 silent_for=600s core_dumped=true]\n");
	expect_delivery(f->fh, 0, 1, VIGIL_DELIVERED, NULL);
}

static void test_text_bare(void **state)
{
	struct fixture *f = *state;
	const struct vigil_field fields[] = {{"exit_code", VIGIL_FIELD_NULL, .u.i = 0}};
	const struct vigil_event ev = {VIGIL_EV_ATTACHED, NULL, fields, 1};
	struct vigil_record rec;

	assert_int_equal(start(f, "text"), 0);
	make_record(f, &rec, &ev, 2);
	assert_int_equal(plugin->notify(f->inst, 5, &rec), 0);
	expect_output(f->rd, "07:42:07 export#2 attached\n");
	expect_delivery(f->fh, 0, 5, VIGIL_DELIVERED, NULL);
}

static void test_json_line(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;
	char *want;

	assert_int_equal(start(f, "json"), 0);
	make_record(f, &rec, &finished, 4);
	assert_int_equal(plugin->notify(f->inst, 99, &rec), 0);
	assert_int_not_equal(asprintf(&want, "%s\n", f->json.p), -1);
	expect_output(f->rd, want);
	free(want);
	expect_delivery(f->fh, 0, 99, VIGIL_DELIVERED, NULL);
	assert_int_equal(event_json_validate(rec.json, rec.json_len), 0);
}

static void test_json_socket(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;
	char *want;

	assert_int_equal(start(f, "json"), 0);
	make_record(f, &rec, &finished, 1);
	assert_int_equal(plugin->notify(f->inst, 3, &rec), 0);
	assert_int_not_equal(asprintf(&want, "%s\n", f->json.p), -1);
	expect_output(f->rd, want);
	free(want);
	expect_delivery(f->fh, 0, 3, VIGIL_DELIVERED, NULL);
}

/* A regular file (written as is, no private copy): lines appended in order. */
static void test_regular_file(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;
	char got[1024];
	ssize_t n;

	close(f->wr);
	f->wr = memfd_create("vigil-test-stdout", MFD_CLOEXEC);
	assert_true(f->wr >= 0);
	assert_int_equal(start(f, "text"), 0);
	make_record(f, &rec, &finished, 1);
	assert_int_equal(plugin->notify(f->inst, 1, &rec), 0);
	make_record(f, &rec, &finished, 2);
	assert_int_equal(plugin->notify(f->inst, 2, &rec), 0);
	n = pread(f->wr, got, sizeof(got) - 1, 0);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got,
		"07:42:07 export#1 finished: succeeded \xe2\x80\x94 exit 0, /data/out.json "
		"present [exit_code=0 duration=12.5s]\n" FINISHED_BLOCK
		"07:42:07 export#2 finished: succeeded \xe2\x80\x94 exit 0, /data/out.json "
		"present [exit_code=0 duration=12.5s]\n" FINISHED_BLOCK);
	expect_delivery(f->fh, 0, 1, VIGIL_DELIVERED, NULL);
	expect_delivery(f->fh, 1, 2, VIGIL_DELIVERED, NULL);
}

/* Write into the pipe until it takes no more; returns how many bytes. */
static size_t fill_pipe(int fd)
{
	static const char junk[4096];
	size_t total = 0;
	ssize_t n;

	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	while ((n = write(fd, junk, sizeof(junk))) > 0 || (n < 0 && errno == EINTR))
		total += n > 0 ? (size_t)n : 0;
	assert_true(n < 0 && errno == EAGAIN);
	return total;
}

struct drain {
	int fd;
	struct buf got;
	size_t want_deliveries;
};

/* Called before every loop turn: read what the pipe holds, so the plugin's
 * EPOLLOUT comes; done when the deliveries are all in. */
static bool drain_pred(struct fake_host *fh, void *arg)
{
	struct drain *d = arg;
	char chunk[8192];
	ssize_t n;

	while ((n = read(d->fd, chunk, sizeof(chunk))) > 0)
		assert_int_equal(buf_append(&d->got, chunk, (size_t)n), 0);
	assert_true(n < 0 && errno == EAGAIN);
	return fake_host_n_deliveries(fh) >= d->want_deliveries;
}

/* Three 40 KiB lines behind a full 64 KiB pipe: nothing is reported before
 * the reader drains, then each line arrives whole, in order, and is
 * reported after its last byte. */
static void test_full_pipe(void **state)
{
	enum { LINE = 40 * 1024, N = 3 };
	struct fixture *f = *state;
	struct drain d = {f->rd, BUF_INIT, N};
	struct vigil_event ev = {VIGIL_EV_PROGRESS, NULL, NULL, 0};
	struct vigil_record rec = {.monitor = "m", .run = 1, .time_ms = T_MS, .event = &ev};
	char *lines[N];
	size_t filled;

	assert_int_equal(start(f, "json"), 0);
	filled = fill_pipe(f->wr);
	for (int i = 0; i < N; i++) {
		lines[i] = malloc(LINE);
		assert_non_null(lines[i]);
		memset(lines[i], 'a' + i, LINE);
		rec.json = lines[i];
		rec.json_len = LINE;
		assert_int_equal(plugin->notify(f->inst, 100 + (uint64_t)i, &rec), 0);
	}
	assert_int_equal(fake_host_n_deliveries(f->fh), 0);
	/* The loop has nothing to do while the pipe is full. */
	fake_host_run_for(f->fh, 20);
	assert_int_equal(fake_host_n_deliveries(f->fh), 0);

	assert_int_equal(fcntl(f->rd, F_SETFL, O_NONBLOCK), 0);
	assert_true(fake_host_run_until(f->fh, drain_pred, &d, 10000));
	drain_pred(f->fh, &d); /* the last bytes */
	assert_int_equal(d.got.len, filled + N * (LINE + 1));
	for (int i = 0; i < N; i++) {
		const char *line = d.got.p + filled + (size_t)i * (LINE + 1);

		assert_memory_equal(line, lines[i], LINE);
		assert_int_equal(line[LINE], '\n');
		expect_delivery(f->fh, (size_t)i, 100 + (uint64_t)i, VIGIL_DELIVERED, NULL);
		free(lines[i]);
	}
	assert_int_equal(fake_host_n_deliveries(f->fh), N);
	buf_free(&d.got);
}

static void test_reader_gone(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	assert_int_equal(start(f, "json"), 0);
	close(f->rd);
	f->rd = -1;
	make_record(f, &rec, &finished, 1);
	assert_int_equal(plugin->notify(f->inst, 8, &rec), 0);
	expect_delivery(f->fh, 0, 8, VIGIL_PERMANENT, strerror(EPIPE));
	assert_int_equal(fake_host_n_deliveries(f->fh), 1);
}

/* stdout is a blocking pipe shared with other processes: the plugin must
 * neither block on it nor switch it to O_NONBLOCK under their feet. (If it
 * blocked, this test would hang until meson's timeout.) */
static void test_blocking_pipe(void **state)
{
	struct fixture *f = *state;
	struct drain d = {f->rd, BUF_INIT, 1};
	struct vigil_record rec;
	char path[64];
	size_t filled;
	int other;

	assert_int_equal(start(f, "json"), 0);
	/* Fill it through a description of our own, as another process would. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", f->wr);
	other = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(other >= 0);
	filled = fill_pipe(other);
	close(other);
	assert_int_equal(fcntl(f->wr, F_GETFL) & O_NONBLOCK, 0);

	make_record(f, &rec, &finished, 1);
	assert_int_equal(plugin->notify(f->inst, 4, &rec), 0);
	assert_int_equal(fake_host_n_deliveries(f->fh), 0);
	assert_int_equal(fcntl(f->wr, F_GETFL) & O_NONBLOCK, 0);

	assert_int_equal(fcntl(f->rd, F_SETFL, O_NONBLOCK), 0);
	assert_true(fake_host_run_until(f->fh, drain_pred, &d, 10000));
	drain_pred(f->fh, &d);
	assert_int_equal(d.got.len, filled + f->json.len + 1);
	assert_memory_equal(d.got.p + filled, f->json.p, f->json.len);
	expect_delivery(f->fh, 0, 4, VIGIL_DELIVERED, NULL);
	buf_free(&d.got);
}

static bool two_deliveries(struct fake_host *fh, void *arg)
{
	(void)arg;
	return fake_host_n_deliveries(fh) >= 2;
}

/* Lines waiting behind a full pipe fail, all of them, when the reader goes. */
static void test_reader_gone_while_queued(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	assert_int_equal(start(f, "text"), 0);
	fill_pipe(f->wr);
	make_record(f, &rec, &finished, 1);
	assert_int_equal(plugin->notify(f->inst, 1, &rec), 0);
	assert_int_equal(plugin->notify(f->inst, 2, &rec), 0);
	assert_int_equal(fake_host_n_deliveries(f->fh), 0);
	close(f->rd);
	f->rd = -1;
	/* EPOLLERR wakes the plugin; its write says EPIPE. */
	assert_true(fake_host_run_until(f->fh, two_deliveries, NULL, 10000));
	expect_delivery(f->fh, 0, 1, VIGIL_PERMANENT, strerror(EPIPE));
	expect_delivery(f->fh, 1, 2, VIGIL_PERMANENT, strerror(EPIPE));
}

/* The end-of-run report of a job the OOM killer ended: one block under the
 * line, the kill named as such, sizes and times readable. */
static void test_text_report_oom(void **state)
{
	struct fixture *f = *state;
	const struct vigil_bytes tail[] = {{"\x1b[2Jalloc", 9}};
	const struct vigil_field fields[] = {
		{"outcome", VIGIL_FIELD_STRING, .u.s = {"failed", 6}},
		{"exit_code", VIGIL_FIELD_NULL, .u.i = 0},
		{"signal", VIGIL_FIELD_STRING, .u.s = {"SIGKILL", 7}},
		{"duration", VIGIL_FIELD_DOUBLE, .u.d = 3725},
		{"log_tail", VIGIL_FIELD_STRINGS, .u.list = {tail, 1}},
		{"oom_killed", VIGIL_FIELD_BOOL, .u.b = 1},
		{"peak_rss_bytes", VIGIL_FIELD_INT, .u.i = 52428800},
		{"cpu_seconds", VIGIL_FIELD_DOUBLE, .u.d = 1.5},
		{"progress", VIGIL_FIELD_DOUBLE, .u.d = 42},
	};
	const struct vigil_event ev = {VIGIL_EV_FINISHED, "failed", fields,
				       sizeof(fields) / sizeof(fields[0])};
	struct vigil_record rec;

	assert_int_equal(start(f, "text"), 0);
	make_record(f, &rec, &ev, 3);
	assert_int_equal(plugin->notify(f->inst, 7, &rec), 0);
	expect_output(f->rd, "07:42:07 export#3 finished: failed [signal=SIGKILL "
			     "duration=3725s oom_killed=true peak_rss_bytes=52428800 "
			     "cpu_seconds=1.5 progress=42]\n"
			     "  outcome      failed\n"
			     "  exit status  killed by the OOM killer (SIGKILL)\n"
			     "  duration     1h 02m 05s\n  peak memory  52.4 MB\n"
			     "  CPU time     1.50 s\n  progress     42\n"
			     "  last lines:\n    \\x1b[2Jalloc\n");
	expect_delivery(f->fh, 0, 7, VIGIL_DELIVERED, NULL);
}

static void test_bad_options(void **state)
{
	struct fixture *f = *state;
	const char *xml[] = {"format = xml", NULL};
	const char *neg[] = {"fd = -1", NULL};
	const char *closed[] = {"fd = 987", NULL};
	void *inst;

	assert_int_equal(fake_host_instantiate(f->fh, plugin, xml, &inst), -EINVAL);
	assert_non_null(strstr(fake_host_last_error(f->fh), "format"));
	assert_int_equal(fake_host_instantiate(f->fh, plugin, neg, &inst), -EINVAL);
	assert_non_null(strstr(fake_host_last_error(f->fh), "fd"));
	assert_int_equal(fake_host_instantiate(f->fh, plugin, closed, &inst), -EBADF);
	assert_non_null(strstr(fake_host_last_error(f->fh), "fd 987"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		cmocka_unit_test_setup_teardown(test_text_line, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_text_escaping, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_text_bare, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_json_line, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_json_socket, setup_socket, teardown),
		cmocka_unit_test_setup_teardown(test_regular_file, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_full_pipe, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_blocking_pipe, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_reader_gone, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_reader_gone_while_queued, setup_pipe,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup_pipe, teardown),
		cmocka_unit_test_setup_teardown(test_text_report_oom, setup_pipe, teardown),
	};

	plugin = fake_host_load_plugin(getenv("VIGIL_TEST_PLUGIN"));
	/* The core ignores SIGPIPE; so must we, to see EPIPE. */
	signal(SIGPIPE, SIG_IGN);
	/* Text lines use local time: make it UTC so the expected lines hold. */
	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
