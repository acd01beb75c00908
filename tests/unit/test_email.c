/* The email notifier (plugins/notifiers/email.c), loaded as the built .so and
 * driven through its descriptor and the fake host against a real SMTP
 * receiver on loopback (tests/integration/smtp_receiver.py, aiosmtpd). The
 * saved message is parsed by Python's email package: headers present and
 * well-formed, no header injected through a hostile monitor name, the
 * non-ASCII subject decoded back, the log tail in the body with invalid
 * UTF-8 replaced; 550 is permanent, 451 and a refused connection retry. */
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/event_json.h"
#include "fake_host.h"

#define T_MS 1795678927123 /* 2026-11-26T07:42:07.123Z */
#define PY "/usr/bin/python3"
#define WAIT_MS 30000
#define EVENT_ID "0190f3a5c2e87d3b9a4c5e6f708192a3"

static const struct vigil_plugin *plugin;

struct fixture {
	struct fake_host *fh;
	void *inst;
	pid_t receiver;
	int port;
	char dir[64];
	struct buf json;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/vigil-test-email-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->fh = fake_host_new();
	*state = f;
	return f->fh ? 0 : -1;
}

static void receiver_stop(struct fixture *f)
{
	if (f->receiver > 0) {
		kill(f->receiver, SIGTERM);
		waitpid(f->receiver, NULL, 0);
		f->receiver = 0;
	}
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	fake_host_free(f->fh);
	receiver_stop(f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->dir);
	buf_free(&f->json);
	free(f);
	return 0;
}

/* Start the receiver (reply_code NULL: accept) and read the port it prints. */
static void receiver_start(struct fixture *f, const char *reply_code)
{
	char script[512], line[32] = "";
	int p[2];
	size_t got = 0;

	snprintf(script, sizeof(script), "%s/tests/integration/smtp_receiver.py",
		 getenv("VIGIL_SOURCE_ROOT") ? getenv("VIGIL_SOURCE_ROOT") : ".");
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	f->receiver = fork();
	assert_true(f->receiver >= 0);
	if (f->receiver == 0) {
		dup2(p[1], 1);
		if (reply_code)
			execl(PY, PY, script, "--dir", f->dir, "--reply-code", reply_code,
			      (char *)NULL);
		else
			execl(PY, PY, script, "--dir", f->dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (got < sizeof(line) - 1) {
		ssize_t n = read(p[0], line + got, 1);

		if (n <= 0 || line[got] == '\n')
			break;
		got++;
	}
	close(p[0]);
	line[got] = '\0';
	f->port = atoi(line);
	assert_true(f->port > 0);
}

/* Run python3 -c script with args; its exit status (0: all checks held). */
static int py_check(const char *script, ...)
{
	const char *argv[16] = {PY, "-c", script};
	size_t n = 3;
	va_list ap;
	int status;

	va_start(ap, script);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execv(PY, (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int start(struct fixture *f, const char *const *extra)
{
	char url[128];
	const char *lines[16] = {url, "from = vigil@example.org",
				 "to = ops@example.org, Dev Team <dev@example.org>",
				 "to = third@example.org", "timeout = 20s"};
	size_t n = 5;

	snprintf(url, sizeof(url), "url = smtp://127.0.0.1:%d", f->port);
	for (size_t i = 0; extra && extra[i] && n < 15; i++)
		lines[n++] = extra[i];
	lines[n] = NULL;
	return fake_host_instantiate(f->fh, plugin, lines, &f->inst);
}

static void make_record(struct fixture *f, struct vigil_record *rec,
			const struct vigil_event *ev, const char *monitor)
{
	const struct event_envelope env = {EVENT_ID, T_MS, "web-1", monitor, 3, "core", 4242};

	buf_reset(&f->json);
	assert_int_equal(event_json_encode(&f->json, &env, ev), 0);
	*rec = (struct vigil_record){
		.id = env.id, .monitor = monitor, .run = 3, .detector = env.detector,
		.time_ms = T_MS, .host = env.host, .pid = 4242, .event = ev,
		.json = f->json.p, .json_len = f->json.len,
	};
}

static bool pred_deliveries(struct fake_host *fh, void *arg)
{
	return fake_host_n_deliveries(fh) >= *(size_t *)arg;
}

static const struct fake_delivery *deliver(struct fixture *f, const struct vigil_record *rec,
					   uint64_t token)
{
	size_t want = fake_host_n_deliveries(f->fh) + 1;

	assert_int_equal(plugin->notify(f->inst, token, rec), 0);
	assert_true(fake_host_run_until(f->fh, pred_deliveries, &want, WAIT_MS));
	assert_int_equal(fake_host_n_deliveries(f->fh), want);
	const struct fake_delivery *d = fake_host_delivery(f->fh, want - 1);
	assert_int_equal(d->token, token);
	return d;
}

static const struct vigil_bytes tail_lines[] = {
	{"step 1 done", 11},
	{"bad byte \xff here", 15},
	{"ERROR: disk full", 16},
};
static const struct vigil_field finished_failed[] = {
	{"outcome", VIGIL_FIELD_STRING, .u.s = {"failed", 6}},
	{"exit_code", VIGIL_FIELD_INT, .u.i = 2},
	{"signal", VIGIL_FIELD_NULL, .u.i = 0},
	{"duration", VIGIL_FIELD_DOUBLE, .u.d = 12.5},
	{"reason", VIGIL_FIELD_STRING, .u.s = {"exit status 2", 13}},
	{"log_tail", VIGIL_FIELD_STRINGS, .u.list = {tail_lines, 3}},
};
static const struct vigil_event ev_failed = {VIGIL_EV_FINISHED, "exit code 2", finished_failed,
					     6};
static const struct vigil_field finished_ok[] = {
	{"outcome", VIGIL_FIELD_STRING, .u.s = {"succeeded", 9}},
};
static const struct vigil_event ev_ok = {VIGIL_EV_FINISHED, NULL, finished_ok, 1};
static const struct vigil_event ev_stalled = {VIGIL_EV_STALLED, "no output for 10m", NULL, 0};

/* ------------------------------------------------------------------ tests */

static void test_descriptor(void **state)
{
	assert_int_equal(plugin->kind, VIGIL_PLUGIN_NOTIFIER);
	assert_string_equal(plugin->name, "email");
	for (const struct vigil_option *o = plugin->options; o->key; o++) {
		if (strcmp(o->key, "url") == 0 || strcmp(o->key, "password") == 0)
			assert_true(o->flags & VIGIL_OPTF_SECRET);
		if (strcmp(o->key, "to") == 0)
			assert_true(o->flags & VIGIL_OPTF_REPEATABLE);
	}
}

static void test_bad_options(void **state)
{
	struct fixture *f = *state;
	const char *bad_to[] = {"url = smtp://127.0.0.1:25", "from = a@example.org",
				"to = not-an-address", NULL};
	const char *bad_url[] = {"url = http://127.0.0.1:25", "from = a@example.org",
				 "to = b@example.org", NULL};
	const char *bad_tls[] = {"url = smtp://127.0.0.1:25", "from = a@example.org",
				 "to = b@example.org", "starttls = maybe", NULL};
	const char *no_from[] = {"url = smtp://127.0.0.1:25", "to = b@example.org", NULL};
	void *inst;

	assert_int_equal(fake_host_instantiate(f->fh, plugin, bad_to, &inst), -EINVAL);
	assert_non_null(strstr(fake_host_last_error(f->fh), "to"));
	assert_int_equal(fake_host_instantiate(f->fh, plugin, bad_url, &inst), -EINVAL);
	assert_int_equal(fake_host_instantiate(f->fh, plugin, bad_tls, &inst), -EINVAL);
	assert_true(fake_host_instantiate(f->fh, plugin, no_from, &inst) < 0);
}

static const char check_mail[] =
	"import sys, glob, email, email.policy, email.utils\n"
	"files = sorted(glob.glob(sys.argv[1] + '/*.eml'))\n"
	"assert len(files) == 2, files\n"
	"m = email.message_from_binary_file(open(files[0], 'rb'), policy=email.policy.default)\n"
	"keys = [k.lower() for k in m.keys()]\n"
	"assert 'bcc' not in keys, keys\n"
	"for k in ('date', 'message-id', 'from', 'to', 'subject', 'mime-version'):\n"
	"    assert keys.count(k) == 1, (k, keys)\n"
	"assert m['Message-ID'] == '<" EVENT_ID "@web-1>', m['Message-ID']\n"
	"d = email.utils.parsedate_to_datetime(m['Date'])\n"
	"assert int(d.timestamp()) == 1795678927, d\n"
	"assert m['X-Envelope-To'] == 'ops@example.org, dev@example.org, third@example.org'\n"
	"assert m['X-Envelope-From'] == 'vigil@example.org'\n"
	"assert str(m['Subject']) == '[vigil] \\u00e9vil  Bcc: x@evil.example failed', m['Subject']\n"
	"assert m.get_content_type() == 'text/plain'\n"
	"body = m.get_content()\n"
	"for want in ('outcome:     failed', 'host:        web-1', 'run:         3',\n"
	"             'pid:         4242', 'exit status: 2', 'duration:    12.5 s',\n"
	"             'peak memory: unknown', 'CPU time:    unknown',\n"
	"             'reason:      exit status 2', 'message:     exit code 2',\n"
	"             '  step 1 done', '  bad byte \\ufffd here', '  ERROR: disk full'):\n"
	"    assert want in body, (want, body)\n"
	"m2 = email.message_from_binary_file(open(files[1], 'rb'), policy=email.policy.default)\n"
	"assert str(m2['Subject']) == '[vigil] export succeeded', m2['Subject']\n";

static void test_send(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	receiver_start(f, NULL);
	assert_int_equal(start(f, NULL), 0);
	make_record(f, &rec, &ev_failed, "\xc3\xa9vil\r\nBcc: x@evil.example");
	const struct fake_delivery *d = deliver(f, &rec, 1);
	assert_int_equal(d->result, VIGIL_DELIVERED);
	make_record(f, &rec, &ev_ok, "export");
	assert_int_equal(deliver(f, &rec, 2)->result, VIGIL_DELIVERED);
	assert_int_equal(py_check(check_mail, f->dir, NULL), 0);
}

static const char check_subject[] =
	"import sys, glob, email, email.policy\n"
	"f = sorted(glob.glob(sys.argv[1] + '/*.eml'))[0]\n"
	"m = email.message_from_binary_file(open(f, 'rb'), policy=email.policy.default)\n"
	"assert str(m['Subject']) == 'export: stalled / stalled / web-1 / 3 / {x}', m['Subject']\n";

static void test_subject_template(void **state)
{
	struct fixture *f = *state;
	const char *opts[] = {"subject = {summary} / {kind} / {host} / {run} / {x}", NULL};
	struct vigil_record rec;

	receiver_start(f, NULL);
	assert_int_equal(start(f, opts), 0);
	make_record(f, &rec, &ev_stalled, "export");
	assert_int_equal(deliver(f, &rec, 1)->result, VIGIL_DELIVERED);
	assert_int_equal(py_check(check_subject, f->dir, NULL), 0);
}

static void test_550_permanent(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	receiver_start(f, "550");
	assert_int_equal(start(f, NULL), 0);
	make_record(f, &rec, &ev_ok, "export");
	const struct fake_delivery *d = deliver(f, &rec, 1);
	assert_int_equal(d->result, VIGIL_PERMANENT);
	assert_non_null(strstr(d->detail, "550"));
}

static void test_451_retry(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	receiver_start(f, "451");
	assert_int_equal(start(f, NULL), 0);
	make_record(f, &rec, &ev_ok, "export");
	const struct fake_delivery *d = deliver(f, &rec, 1);
	assert_int_equal(d->result, VIGIL_RETRY);
	assert_non_null(strstr(d->detail, "451"));
}

static void test_refused_retry(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	receiver_start(f, NULL);
	receiver_stop(f);
	assert_int_equal(start(f, NULL), 0);
	make_record(f, &rec, &ev_ok, "export");
	assert_int_equal(deliver(f, &rec, 1)->result, VIGIL_RETRY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subject_template, setup, teardown),
		cmocka_unit_test_setup_teardown(test_550_permanent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_451_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_retry, setup, teardown),
	};

	plugin = fake_host_load_plugin(getenv("VIGIL_TEST_PLUGIN"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
