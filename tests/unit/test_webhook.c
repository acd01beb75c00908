/* The webhook notifier (plugins/notifiers/webhook.c), loaded as the built .so
 * and driven through its descriptor and the fake host against a real HTTP
 * receiver on loopback (tests/integration/http_receiver.py): exact bodies and
 * the HMAC signature, custom headers, the slack/ntfy/alertmanager shapes, and
 * the mapping of 5xx, 429 + Retry-After, 4xx, hangs and dropped connections
 * to delivery results. What the receiver saw is checked by small Python
 * scripts over its JSON-lines log (independent JSON and HMAC code). */
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

static const struct vigil_plugin *plugin;

struct fixture {
	struct fake_host *fh;
	void *inst;
	pid_t receiver;
	int port;
	char dir[64], log[96];
	struct buf json;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/vigil-test-webhook-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->log, sizeof(f->log), "%s/requests.jsonl", f->dir);
	f->fh = fake_host_new();
	*state = f;
	return f->fh ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fake_host_free(f->fh);
	if (f->receiver > 0) {
		kill(f->receiver, SIGTERM);
		waitpid(f->receiver, NULL, 0);
	}
	unlink(f->log);
	rmdir(f->dir);
	buf_free(&f->json);
	free(f);
	return 0;
}

/* Start the receiver in `mode` and read the port it prints. */
static void receiver_start(struct fixture *f, const char *mode)
{
	char script[512], line[32] = "";
	int p[2];
	size_t got = 0;

	snprintf(script, sizeof(script), "%s/tests/integration/http_receiver.py",
		 getenv("VIGIL_SOURCE_ROOT") ? getenv("VIGIL_SOURCE_ROOT") : ".");
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	f->receiver = fork();
	assert_true(f->receiver >= 0);
	if (f->receiver == 0) {
		dup2(p[1], 1);
		execl(PY, PY, script, "--log", f->log, "--mode", mode, (char *)NULL);
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

static int start(struct fixture *f, const char *path, const char *const *extra)
{
	char url[256];
	const char *lines[16] = {url};
	size_t n = 1;

	snprintf(url, sizeof(url), "url = http://127.0.0.1:%d%s", f->port, path);
	for (size_t i = 0; extra && extra[i] && n < 15; i++)
		lines[n++] = extra[i];
	lines[n] = NULL;
	return fake_host_instantiate(f->fh, plugin, lines, &f->inst);
}

static void make_record(struct fixture *f, struct vigil_record *rec,
			const struct vigil_event *ev, uint64_t run)
{
	const struct event_envelope env = {"0190f3a5c2e87d3b9a4c5e6f708192a3", T_MS, "web-1",
					   "export", run, "core", 4242};

	buf_reset(&f->json);
	assert_int_equal(event_json_encode(&f->json, &env, ev), 0);
	*rec = (struct vigil_record){
		.id = env.id, .monitor = env.monitor, .run = run, .detector = env.detector,
		.time_ms = T_MS, .host = env.host, .pid = 4242, .event = ev,
		.json = f->json.p, .json_len = f->json.len,
	};
}

static bool pred_deliveries(struct fake_host *fh, void *arg)
{
	return fake_host_n_deliveries(fh) >= *(size_t *)arg;
}

/* notify(), then run the loop until its delivery is reported. */
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

static const struct vigil_field finished_failed[] = {
	{"outcome", VIGIL_FIELD_STRING, .u.s = {"failed", 6}},
	{"exit_code", VIGIL_FIELD_INT, .u.i = 2},
	{"duration", VIGIL_FIELD_DOUBLE, .u.d = 12.5},
};
static const struct vigil_event ev_failed = {VIGIL_EV_FINISHED, "exit code 2", finished_failed,
					     3};
static const struct vigil_field stalled_fields[] = {
	{"silent_for", VIGIL_FIELD_INT, .u.i = 600},
};
static const struct vigil_event ev_stalled = {VIGIL_EV_STALLED, "no output for 10m",
					      stalled_fields, 1};

/* ------------------------------------------------------------------ tests */

static void test_descriptor(void **state)
{
	assert_int_equal(plugin->kind, VIGIL_PLUGIN_NOTIFIER);
	assert_string_equal(plugin->name, "webhook");
	assert_non_null(plugin->notify);
	for (const struct vigil_option *o = plugin->options; o->key; o++) {
		if (strcmp(o->key, "url") == 0 || strcmp(o->key, "secret") == 0)
			assert_true(o->flags & VIGIL_OPTF_SECRET);
		if (strcmp(o->key, "timeout") == 0)
			assert_string_equal(o->default_value, "10s");
	}
}

static void test_bad_options(void **state)
{
	struct fixture *f = *state;
	const char *no_colon[] = {"header = NoColonHere", NULL};
	const char *bad_name[] = {"header = Bad Name: x", NULL};
	const char *fmt[] = {"format = xml", NULL};
	const char *ftp[] = {"url = ftp://127.0.0.1/x", NULL};
	void *inst;

	f->port = 9;
	assert_int_equal(start(f, "/", no_colon), -EINVAL);
	assert_non_null(strstr(fake_host_last_error(f->fh), "header"));
	assert_int_equal(start(f, "/", bad_name), -EINVAL);
	assert_int_equal(start(f, "/", fmt), -EINVAL);
	assert_non_null(strstr(fake_host_last_error(f->fh), "format"));
	assert_true(fake_host_instantiate(f->fh, plugin, ftp, &inst) < 0);
}

static const char check_signed[] =
	"import sys, json, hmac, hashlib, base64\n"
	"reqs = [json.loads(l) for l in open(sys.argv[1])]\n"
	"assert len(reqs) == 1, reqs\n"
	"r = reqs[0]; body = base64.b64decode(r['body_b64'])\n"
	"assert r['method'] == 'POST' and r['path'] == '/hook', r\n"
	"assert body == sys.argv[2].encode(), body\n"
	"mac = hmac.new(b's3cret', body, hashlib.sha256).hexdigest()\n"
	"assert r['headers']['X-Vigil-Signature'] == 'sha256=' + mac, r['headers']\n"
	"assert r['headers']['X-Custom'] == 'hello world', r['headers']\n"
	"assert r['headers']['X-Other'] == 'two', r['headers']\n"
	"assert r['headers']['Content-Type'] == 'application/json'\n";

static void test_json_signed(void **state)
{
	struct fixture *f = *state;
	const char *opts[] = {"secret = s3cret", "header = X-Custom: hello world",
			      "header = X-Other: two", NULL};
	struct vigil_record rec;

	receiver_start(f, "200");
	assert_int_equal(start(f, "/hook", opts), 0);
	make_record(f, &rec, &ev_failed, 3);
	const struct fake_delivery *d = deliver(f, &rec, 7);
	assert_int_equal(d->result, VIGIL_DELIVERED);
	assert_int_equal(py_check(check_signed, f->log, buf_cstr(&f->json), NULL), 0);
}

/* 500: retry; the detail names neither the credentials nor the query. */
static void test_500_retry(void **state)
{
	struct fixture *f = *state;
	char url[256];
	const char *lines[] = {url, NULL};
	struct vigil_record rec;

	receiver_start(f, "500");
	snprintf(url, sizeof(url), "url = http://user:pa55word@127.0.0.1:%d/h?token=t0ps3cret",
		 f->port);
	assert_int_equal(fake_host_instantiate(f->fh, plugin, lines, &f->inst), 0);
	make_record(f, &rec, &ev_stalled, 1);
	const struct fake_delivery *d = deliver(f, &rec, 1);
	assert_int_equal(d->result, VIGIL_RETRY);
	assert_int_equal(d->retry_after_ms, -1);
	assert_non_null(strstr(d->detail, "HTTP 500"));
	assert_null(strstr(d->detail, "pa55word"));
	assert_null(strstr(d->detail, "t0ps3cret"));
}

static void test_429_retry_after(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	receiver_start(f, "429:5");
	assert_int_equal(start(f, "/", NULL), 0);
	make_record(f, &rec, &ev_stalled, 1);
	const struct fake_delivery *d = deliver(f, &rec, 2);
	assert_int_equal(d->result, VIGIL_RETRY);
	assert_int_equal(d->retry_after_ms, 5000);
}

static void test_400_permanent(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	receiver_start(f, "400");
	assert_int_equal(start(f, "/", NULL), 0);
	make_record(f, &rec, &ev_stalled, 1);
	const struct fake_delivery *d = deliver(f, &rec, 3);
	assert_int_equal(d->result, VIGIL_PERMANENT);
	assert_string_equal(d->detail, "HTTP 400: bad request: rejected by receiver");
}

static void test_hang_times_out(void **state)
{
	struct fixture *f = *state;
	const char *opts[] = {"timeout = 500ms", NULL};
	struct vigil_record rec;

	receiver_start(f, "hang");
	assert_int_equal(start(f, "/", opts), 0);
	make_record(f, &rec, &ev_stalled, 1);
	const struct fake_delivery *d = deliver(f, &rec, 4);
	assert_int_equal(d->result, VIGIL_RETRY);
	assert_non_null(strstr(d->detail, "127.0.0.1"));
}

static void test_close_retry(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	receiver_start(f, "close");
	assert_int_equal(start(f, "/", NULL), 0);
	make_record(f, &rec, &ev_stalled, 1);
	assert_int_equal(deliver(f, &rec, 5)->result, VIGIL_RETRY);
}

/* Nothing listening (the receiver is stopped first): retry. */
static void test_refused_retry(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;

	receiver_start(f, "200");
	kill(f->receiver, SIGTERM);
	waitpid(f->receiver, NULL, 0);
	f->receiver = 0;
	assert_int_equal(start(f, "/", NULL), 0);
	make_record(f, &rec, &ev_stalled, 1);
	assert_int_equal(deliver(f, &rec, 6)->result, VIGIL_RETRY);
}

/* Several deliveries in flight at once, each reported once. */
static void test_concurrent(void **state)
{
	struct fixture *f = *state;
	struct vigil_record rec;
	size_t want = 5;

	receiver_start(f, "200");
	assert_int_equal(start(f, "/", NULL), 0);
	make_record(f, &rec, &ev_stalled, 1);
	for (uint64_t t = 1; t <= want; t++)
		assert_int_equal(plugin->notify(f->inst, t, &rec), 0);
	assert_true(fake_host_run_until(f->fh, pred_deliveries, &want, WAIT_MS));
	unsigned seen = 0;
	for (size_t i = 0; i < want; i++) {
		const struct fake_delivery *d = fake_host_delivery(f->fh, i);
		assert_int_equal(d->result, VIGIL_DELIVERED);
		seen |= 1u << d->token;
	}
	assert_int_equal(seen, 0x3e);
	fake_host_run_for(f->fh, 50);
	assert_int_equal(fake_host_n_deliveries(f->fh), want);
}

static const char check_slack[] =
	"import sys, json\n"
	"r = [json.loads(l) for l in open(sys.argv[1])][0]\n"
	"b = json.loads(r['body'].encode('latin-1').decode('utf-8'))\n"
	"assert list(b) == ['text'], b\n"
	"assert b['text'] == 'export failed on web-1 (run 3): exit code 2', b\n";

static void test_slack(void **state)
{
	struct fixture *f = *state;
	const char *opts[] = {"format = slack", NULL};
	struct vigil_record rec;

	receiver_start(f, "200");
	assert_int_equal(start(f, "/", opts), 0);
	make_record(f, &rec, &ev_failed, 3);
	assert_int_equal(deliver(f, &rec, 1)->result, VIGIL_DELIVERED);
	assert_int_equal(py_check(check_slack, f->log, NULL), 0);
}

static const char check_ntfy[] =
	"import sys, json\n"
	"r = [json.loads(l) for l in open(sys.argv[1])]\n"
	"h = r[0]['headers']\n"
	"assert h['Title'] == 'vigil: export failed', h\n"
	"assert h['Priority'] == 'high' and h['Tags'] == 'vigil,finished,failed', h\n"
	"assert r[0]['body'] == 'export failed on web-1 (run 3): exit code 2', r[0]\n"
	"assert r[1]['headers']['Priority'] == 'default', r[1]\n"
	"assert r[1]['headers']['Title'] == 'vigil: export: stalled', r[1]\n";

static void test_ntfy(void **state)
{
	struct fixture *f = *state;
	const char *opts[] = {"format = ntfy", NULL};
	struct vigil_record rec;

	receiver_start(f, "200");
	assert_int_equal(start(f, "/topic", opts), 0);
	make_record(f, &rec, &ev_failed, 3);
	assert_int_equal(deliver(f, &rec, 1)->result, VIGIL_DELIVERED);
	make_record(f, &rec, &ev_stalled, 3);
	assert_int_equal(deliver(f, &rec, 2)->result, VIGIL_DELIVERED);
	assert_int_equal(py_check(check_ntfy, f->log, NULL), 0);
}

static const char check_am[] =
	"import sys, json\n"
	"r = [json.loads(l) for l in open(sys.argv[1])]\n"
	"assert [x['path'] for x in r] == ['/api/v2/alerts'] * 3, r\n"
	"a = json.loads(r[0]['body'])\n"
	"assert len(a) == 1 and 'endsAt' not in a[0], a\n"
	"assert a[0]['labels'] == {'alertname': 'vigil_stalled', 'monitor': 'export',\n"
	"  'host': 'web-1', 'run': '3', 'kind': 'stalled', 'severity': 'warning'}, a\n"
	"assert a[0]['startsAt'] == '2026-11-26T07:42:07.123Z', a\n"
	"assert a[0]['annotations']['description'] == 'no output for 10m', a\n"
	"fin = json.loads(r[1]['body'])\n"
	"assert len(fin) == 2, fin\n"
	"assert fin[0]['labels']['alertname'] == 'vigil_finished', fin\n"
	"assert fin[0]['labels']['outcome'] == 'failed', fin\n"
	"assert fin[0]['labels']['severity'] == 'critical', fin\n"
	"assert fin[1]['labels'] == a[0]['labels'], fin\n"
	"assert fin[1]['endsAt'] == '2026-11-26T07:42:07.123Z', fin\n"
	"again = json.loads(r[2]['body'])\n"
	"assert len(again) == 1, 'resolved alerts are forgotten once delivered'\n";

/* A stalled alert fires; finished resolves it in the same POST; once that
 * POST is delivered, the next finished has nothing left to resolve. */
static void test_alertmanager(void **state)
{
	struct fixture *f = *state;
	const char *opts[] = {"format = alertmanager", NULL};
	struct vigil_record rec;

	receiver_start(f, "200");
	assert_int_equal(start(f, "/", opts), 0);
	make_record(f, &rec, &ev_stalled, 3);
	assert_int_equal(deliver(f, &rec, 1)->result, VIGIL_DELIVERED);
	make_record(f, &rec, &ev_failed, 3);
	assert_int_equal(deliver(f, &rec, 2)->result, VIGIL_DELIVERED);
	assert_int_equal(deliver(f, &rec, 3)->result, VIGIL_DELIVERED);
	assert_int_equal(py_check(check_am, f->log, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_signed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_500_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_429_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_400_permanent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hang_times_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ntfy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alertmanager, setup, teardown),
	};

	plugin = fake_host_load_plugin(getenv("VIGIL_TEST_PLUGIN"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
