/* The spool and the delivery queue over it: files written before the first
 * attempt, removed on delivery, dead-lettered, replayed in order by the next
 * owner, never adopted while their writer lives; typed fields survive. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "engine/engine.h"
#include "base/event_json.h"
#include "base/event_json_decode.h"
#include "engine/spool.h"

/* ------------------------------------------------------------ helpers */

static char root[256];

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st, (void)flag, (void)f;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/vigil-test-spool-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static size_t count_dir(const char *sub)
{
	char path[512];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/%s", root, sub);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.' && strcmp(de->d_name, "dead") != 0;
	closedir(d);
	return n;
}

/* A record with every field type, encoded by the real encoder. */
struct made {
	char id[EVENT_ID_LEN];
	struct buf json;
	struct vigil_field f[6];
	struct vigil_bytes list[2];
	struct vigil_event ev;
	struct vigil_record rec;
};

static void make(struct made *m, const char *kind, const char *outcome)
{
	struct event_envelope env = {0};

	memset(m, 0, sizeof(*m));
	event_new_id(m->id);
	m->list[0] = (struct vigil_bytes){"a\nb", 3};
	m->list[1] = (struct vigil_bytes){"\xff", 1};
	m->f[0] = (struct vigil_field){.name = "exit_code", .type = VIGIL_FIELD_INT, .u.i = -3};
	m->f[1] = (struct vigil_field){.name = "value", .type = VIGIL_FIELD_DOUBLE, .u.d = 50.0};
	m->f[2] = (struct vigil_field){.name = "core_dumped", .type = VIGIL_FIELD_BOOL, .u.b = 1};
	m->f[3] = (struct vigil_field){.name = "signal", .type = VIGIL_FIELD_NULL};
	m->f[4] = (struct vigil_field){.name = "outcome", .type = VIGIL_FIELD_STRING,
				       .u.s = {outcome, strlen(outcome)}};
	m->f[5] = (struct vigil_field){.name = "log_tail", .type = VIGIL_FIELD_STRINGS,
				       .u.list = {m->list, 2}};
	m->ev = (struct vigil_event){.kind = kind, .message = "hello \"world\"", .fields = m->f,
				     .n_fields = 6};
	env = (struct event_envelope){.id = m->id, .time_ms = (int64_t)time(NULL) * 1000 + 123,
				      .host = "h1",
				      .monitor = "export", .run = 7, .detector = "log app",
				      .pid = 42};
	buf_init(&m->json);
	assert_int_equal(event_json_encode(&m->json, &env, &m->ev), 0);
	m->rec = (struct vigil_record){.id = m->id, .monitor = "export", .run = 7,
				       .detector = "log app", .time_ms = env.time_ms, .host = "h1",
				       .pid = 42, .event = &m->ev, .json = m->json.p,
				       .json_len = m->json.len};
}

/* -------------------------------------------------------- spool tests */

static void test_decode_keeps_types(void **state)
{
	struct made m;
	struct buf b;
	struct stored_record *r;
	char *host, err[200], *nl;

	(void)state;
	make(&m, "finished", "failed");
	buf_init(&b);
	assert_int_equal(spool_encode(&b, &m.rec), 0);
	nl = strchr(b.p, '\n');
	assert_non_null(nl);
	assert_string_equal(nl + 1, "idbnsS\n");
	b.p[b.len - 1] = '\0';
	assert_int_equal(event_json_decode(b.p, (size_t)(nl - b.p), nl + 1, &r, &host, err,
					   sizeof(err)), 0);
	assert_string_equal(r->rec.id, m.id);
	assert_string_equal(r->rec.host, "h1");
	assert_string_equal(r->rec.monitor, "export");
	assert_string_equal(r->rec.detector, "log app");
	assert_int_equal(r->rec.run, 7);
	assert_int_equal(r->rec.pid, 42);
	assert_int_equal(r->rec.time_ms, m.rec.time_ms);
	assert_string_equal(r->ev.message, "hello \"world\"");
	assert_int_equal(r->rec.json_len, m.json.len);
	assert_memory_equal(r->rec.json, m.json.p, m.json.len);
	assert_int_equal(r->ev.n_fields, 6);
	assert_int_equal(r->fields[0].type, VIGIL_FIELD_INT);
	assert_int_equal(r->fields[0].u.i, -3);
	assert_int_equal(r->fields[1].type, VIGIL_FIELD_DOUBLE); /* "50" in JSON */
	assert_true(r->fields[1].u.d == 50.0);
	assert_int_equal(r->fields[2].type, VIGIL_FIELD_BOOL);
	assert_int_equal(r->fields[3].type, VIGIL_FIELD_NULL);
	assert_int_equal(r->fields[5].type, VIGIL_FIELD_STRINGS);
	assert_int_equal(r->fields[5].u.list.n, 2);
	assert_memory_equal(r->fields[5].u.list.v[0].ptr, "a\nb", 3);
	assert_string_equal(r->fields[5].u.list.v[1].ptr, "\xef\xbf\xbd"); /* U+FFFD */
	record_free(r);
	free(host);
	/* A type that does not match the value is refused, not guessed. */
	assert_int_equal(event_json_decode(b.p, (size_t)(nl - b.p), "sdbnsS", &r, &host, err,
					   sizeof(err)), -EINVAL);
	assert_int_equal(event_json_decode("{\"v\":2}", 7, "", &r, &host, err, sizeof(err)),
			 -EINVAL);
	buf_free(&b);
	buf_free(&m.json);
}

static void test_folder_name_hides_url(void **state)
{
	char a[SPOOL_NAME_MAX], b[SPOOL_NAME_MAX];

	(void)state;
	spool_folder_name("webhook", "webhook:https://user:pw@x.example/h?token=s3cret", false, a,
			  sizeof(a));
	assert_null(strstr(a, "s3cret"));
	assert_null(strstr(a, "example"));
	assert_int_equal(strncmp(a, "webhook-", 8), 0);
	spool_folder_name("webhook", "webhook:https://user:pw@x.example/h?token=other", false, b,
			  sizeof(b));
	assert_string_not_equal(a, b);
	spool_folder_name("email", "oncall", true, a, sizeof(a));
	assert_string_equal(a, "oncall");
	spool_folder_name("email", "../evil", true, a, sizeof(a));
	assert_null(strchr(a, '/'));
}

struct replay {
	char ids[16][EVENT_ID_LEN];
	struct spool_seg *seg[16];
	uint32_t index[16];
	size_t n;
};

static void on_replay(void *data, struct spool_seg *seg, uint32_t index,
		      struct stored_record *rec, char *host)
{
	struct replay *rp = data;

	assert_true(rp->n < 16);
	snprintf(rp->ids[rp->n], EVENT_ID_LEN, "%s", rec->rec.id);
	rp->seg[rp->n] = seg;
	rp->index[rp->n++] = index;
	record_free(rec);
	free(host);
}

static void seg_path(char *out, size_t len, const char *dir, const struct spool_seg *g)
{
	snprintf(out, len, "%s/%s/%s", root, dir, spool_seg_name(g));
}

/* A batch is one segment file; a delivered record, once flushed, is not
 * handed out again; an orphan is adopted in order; a segment goes when its
 * last record is done. */
static void test_write_adopt_bury(void **state)
{
	struct spool *s1, *s2;
	struct spool_item it[3], it2[1];
	struct replay rp = {0};
	struct made m[4];
	char err[200];
	size_t bad;

	(void)state;
	assert_int_equal(spool_open(root, "hook", &s1, err, sizeof(err)), 0);
	assert_true(spool_is_owner(s1));
	for (int i = 0; i < 4; i++)
		make(&m[i], "match", "x");
	for (int i = 0; i < 3; i++)
		it[i] = (struct spool_item){.rec = &m[i].rec};
	it2[0] = (struct spool_item){.rec = &m[3].rec};
	assert_int_equal(spool_write(s1, it, 3), 0);
	assert_int_equal(spool_write(s1, it2, 1), 0);
	assert_int_equal(count_dir("hook"), 2); /* two batches, two files */
	assert_ptr_equal(it[0].seg, it[2].seg);
	assert_int_equal(it[2].index, 2);
	assert_true(strcmp(spool_seg_name(it[0].seg), spool_seg_name(it2[0].seg)) < 0);
	/* A second process: not the owner, and s1's segments are not orphans. */
	assert_int_equal(spool_open(root, "hook", &s2, err, sizeof(err)), 0);
	assert_false(spool_is_owner(s2));
	assert_false(spool_try_own(s2));
	spool_done(s1, it[1].seg, it[1].index);
	assert_true(spool_dirty(s1));
	assert_int_equal(spool_flush(s1), 0);
	assert_false(spool_dirty(s1));
	spool_close(s1);
	/* s1 is gone: s2 takes over and replays what was not delivered, in order. */
	assert_true(spool_try_own(s2));
	assert_int_equal(spool_adopt(s2, on_replay, &rp, &bad), 0);
	assert_int_equal(bad, 0);
	assert_int_equal(rp.n, 3);
	assert_string_equal(rp.ids[0], m[0].id);
	assert_string_equal(rp.ids[1], m[2].id);
	assert_string_equal(rp.ids[2], m[3].id);
	assert_int_equal(spool_bury(s2, rp.seg[0], rp.index[0], &m[0].rec), 0);
	assert_int_equal(count_dir("hook/dead"), 1);
	assert_int_equal(count_dir("hook"), 2);
	spool_done(s2, rp.seg[1], rp.index[1]); /* the first segment is all done */
	assert_int_equal(count_dir("hook"), 1);
	spool_done(s2, rp.seg[2], rp.index[2]);
	assert_int_equal(count_dir("hook"), 0);
	spool_close(s2);
	for (int i = 0; i < 4; i++)
		buf_free(&m[i].json);
}

/* A torn or corrupt record ends what is trusted in its segment; the records
 * before it are replayed. */
static void test_torn_segment(void **state)
{
	struct spool *s1, *s2;
	struct spool_item it[3];
	struct replay rp = {0};
	struct made m[3];
	char err[200], path[512];
	struct stat st;
	size_t bad;
	FILE *f;

	(void)state;
	assert_int_equal(spool_open(root, "torn", &s1, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		make(&m[i], "match", "x");
		it[i] = (struct spool_item){.rec = &m[i].rec};
	}
	assert_int_equal(spool_write(s1, it, 3), 0);
	seg_path(path, sizeof(path), "torn", it[0].seg);
	assert_int_equal(stat(path, &st), 0);
	/* Flip a byte of the last record, cut the tail of nothing else. */
	f = fopen(path, "r+");
	assert_non_null(f);
	assert_int_equal(fseek(f, st.st_size - 10, SEEK_SET), 0);
	fputc('#', f);
	fclose(f);
	spool_close(s1);
	assert_int_equal(spool_open(root, "torn", &s2, err, sizeof(err)), 0);
	assert_int_equal(spool_adopt(s2, on_replay, &rp, &bad), 0);
	assert_int_equal(bad, 1);
	assert_int_equal(rp.n, 2);
	assert_string_equal(rp.ids[1], m[1].id);
	spool_done(s2, rp.seg[0], rp.index[0]);
	spool_done(s2, rp.seg[1], rp.index[1]);
	assert_int_equal(count_dir("torn"), 0);
	spool_close(s2);
	for (int i = 0; i < 3; i++)
		buf_free(&m[i].json);
}

static void count_cb(void *data, const char *name, size_t pending, size_t dead)
{
	size_t *c = data;

	(void)name;
	c[0] += pending;
	c[1] += dead;
}

/* vigil status counts records, not files. */
static void test_count_records(void **state)
{
	struct spool *s;
	struct spool_item it[3];
	struct made m[3];
	char err[200];
	size_t c[2] = {0, 0};

	(void)state;
	assert_int_equal(spool_open(root, "cnt", &s, err, sizeof(err)), 0);
	for (int i = 0; i < 3; i++) {
		make(&m[i], "match", "x");
		it[i] = (struct spool_item){.rec = &m[i].rec};
	}
	assert_int_equal(spool_write(s, it, 3), 0);
	assert_int_equal(spool_bury(s, it[0].seg, it[0].index, &m[0].rec), 0);
	spool_flush(s);
	assert_int_equal(spool_count_all(root, count_cb, c), 0);
	assert_int_equal(c[0], 2);
	assert_int_equal(c[1], 1);
	spool_close(s);
	for (int i = 0; i < 3; i++)
		buf_free(&m[i].json);
}

/* --------------------------------------------------------- on filter */

static void test_on_filter(void **state)
{
	uint32_t bits;
	char err[300];
	struct made a, b;

	(void)state;
	assert_int_equal(notify_parse_on("timeout, failed", &bits, err, sizeof(err)), 0);
	make(&a, "finished", "failed");
	make(&b, "finished", "succeeded");
	assert_true(notify_on_wants(bits, &a.ev));
	assert_false(notify_on_wants(bits, &b.ev));
	a.ev.kind = "timeout";
	assert_true(notify_on_wants(bits, &a.ev));
	a.ev.kind = "match";
	assert_false(notify_on_wants(bits, &a.ev));
	assert_true(notify_on_wants(0, &a.ev));
	assert_int_equal(notify_parse_on("finished, bogus", &bits, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bogus"));
	buf_free(&a.json);
	buf_free(&b.json);
}

/* ------------------------------------------- the queue over the spool */

struct mock {
	uint64_t tokens[64];
	char ids[64][EVENT_ID_LEN];
	size_t n;
};

static int mock_create(const struct vigil_host *h, struct vigil_ctx *ctx,
		       const struct vigil_config *cfg, void **inst, char *err, size_t errlen)
{
	(void)h, (void)ctx, (void)cfg, (void)err, (void)errlen;
	*inst = calloc(1, sizeof(struct mock));
	return *inst ? 0 : -ENOMEM;
}

static int mock_notify(void *inst, uint64_t token, const struct vigil_record *rec)
{
	struct mock *m = inst;

	if (m->n < 64) {
		m->tokens[m->n] = token;
		snprintf(m->ids[m->n++], EVENT_ID_LEN, "%s", rec->id);
	}
	return 0;
}

static void mock_destroy(void *inst) { free(inst); }

static const struct vigil_plugin mock_plugin = {
	.abi_version = VIGIL_PLUGIN_ABI_VERSION, .size = sizeof(struct vigil_plugin),
	.kind = VIGIL_PLUGIN_NOTIFIER, .name = "mock", .create = mock_create,
	.notify = mock_notify, .destroy = mock_destroy, .flags = VIGIL_PLUGIN_F_SPOOLED,
};

struct rig {
	struct loop *loop;
	struct plugin_set ps;
	struct engine *e;
	struct notifier *n;
};

static void rig_close(struct rig *r)
{
	notifier_free(r->n);
	engine_free(r->e);
	plugin_set_free(&r->ps);
	loop_free(r->loop);
}

/* The mock is the instance notifier_new made; the record the plugin got is
 * the only window onto it, so capture it on the first notify. */
static struct mock *last_mock;
static int capture_notify(void *inst, uint64_t token, const struct vigil_record *rec)
{
	last_mock = inst;
	return mock_notify(inst, token, rec);
}

static void test_queue_spools_before_first_attempt(void **state)
{
	struct vigil_plugin p = mock_plugin;
	struct vigil_config cfg = {.file = "t", .section = "notifier t"};
	struct notify_opts o = {.max_age_ms = NOTIFY_MAX_AGE_DEFAULT_MS, .parallel = 2,
				.spool_root = root};
	struct made m[4];
	struct rig r = {0};
	char err[200];

	(void)state;
	p.notify = capture_notify;
	snprintf(o.spool_name, sizeof(o.spool_name), "t");
	r.loop = loop_new();
	plugin_set_init(&r.ps, "/nonexistent");
	r.e = engine_new(r.loop, &r.ps, NULL);
	r.n = notifier_new(r.e, "t", &p, &cfg, err, sizeof(err));
	assert_int_equal(notifier_configure(r.n, &o, err, sizeof(err)), 0);
	last_mock = NULL;
	make(&m[0], "match", "x");
	make(&m[1], "match", "x");
	make(&m[2], "finished", "failed");
	make(&m[3], "match", "x");
	for (int i = 0; i < 4; i++)
		notifier_submit(r.n, &m[i].rec);
	/* Nothing attempted before the spool holds it. */
	assert_null(last_mock);
	assert_int_equal(count_dir("t"), 0);
	loop_run_once(r.loop, 1000);
	assert_int_equal(count_dir("t"), 1); /* one segment for the batch */
	assert_non_null(last_mock);
	/* parallel = 2: two in flight, in order. */
	assert_int_equal(last_mock->n, 2);
	assert_string_equal(last_mock->ids[0], m[0].id);
	assert_string_equal(last_mock->ids[1], m[1].id);
	notifier_delivered(r.n, last_mock->tokens[1], VIGIL_DELIVERED, "200", -1);
	assert_int_equal(count_dir("t"), 1);
	/* `finished` is a barrier: not while m[0] is in flight. */
	assert_int_equal(last_mock->n, 2);
	notifier_delivered(r.n, last_mock->tokens[0], VIGIL_DELIVERED, "200", -1);
	assert_int_equal(last_mock->n, 3);
	assert_string_equal(last_mock->ids[2], m[2].id);
	/* ... and nothing starts while it is in flight. */
	assert_int_equal(notifier_pending(r.n), 2);
	notifier_delivered(r.n, last_mock->tokens[2], VIGIL_PERMANENT, "400 bad", -1);
	assert_int_equal(count_dir("t/dead"), 1);
	assert_int_equal(notifier_dead(r.n), 1);
	assert_int_equal(last_mock->n, 4);
	assert_string_equal(last_mock->ids[3], m[3].id);
	/* Killed with m[3] in flight: the next process replays it. */
	notifier_free(r.n);
	last_mock = NULL;
	r.n = notifier_new(r.e, "t", &p, &cfg, err, sizeof(err));
	assert_int_equal(notifier_configure(r.n, &o, err, sizeof(err)), 0);
	assert_non_null(last_mock);
	assert_int_equal(last_mock->n, 1);
	assert_string_equal(last_mock->ids[0], m[3].id);
	notifier_delivered(r.n, last_mock->tokens[0], VIGIL_DELIVERED, "200", -1);
	assert_int_equal(count_dir("t"), 0);
	assert_int_equal(notifier_pending(r.n), 0);
	rig_close(&r);
	for (int i = 0; i < 4; i++)
		buf_free(&m[i].json);
}

/* ------------------------------------------------------------- resync */

#define RS_N 6

/* Where each record's frame starts in a segment file, and the file's size:
 * "VIGILSG2", then per record a 24-byte header whose u32 at 12 is the
 * payload length. */
static size_t frame_offsets(const char *path, size_t *offs, size_t max, size_t *size)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0, off = 8;
	unsigned char h[24];

	assert_non_null(f);
	while (n < max && fseek(f, (long)off, SEEK_SET) == 0 && fread(h, 1, 24, f) == 24) {
		offs[n++] = off;
		off += 24 + (size_t)(h[12] | h[13] << 8 | h[14] << 16 | (uint32_t)h[15] << 24);
	}
	fseek(f, 0, SEEK_END);
	*size = (size_t)ftell(f);
	fclose(f);
	return n;
}

static void poke(const char *path, size_t at, unsigned char byte)
{
	FILE *f = fopen(path, "r+b");

	assert_non_null(f);
	assert_int_equal(fseek(f, (long)at, SEEK_SET), 0);
	fputc(byte, f);
	fclose(f);
}

struct rs {
	struct spool *s;
	struct made m[RS_N];
	char path[512];
	size_t offs[RS_N + 1], size;
};

/* One segment of RS_N records by a writer that is gone; record `acked` (if
 * below RS_N) delivered and flushed first. */
static void rs_write(struct rs *x, uint32_t acked)
{
	struct spool_item it[RS_N];
	char err[200];

	assert_int_equal(spool_open(root, "rs", &x->s, err, sizeof(err)), 0);
	for (int i = 0; i < RS_N; i++) {
		make(&x->m[i], "match", "x");
		it[i] = (struct spool_item){.rec = &x->m[i].rec};
	}
	assert_int_equal(spool_write(x->s, it, RS_N), 0);
	seg_path(x->path, sizeof(x->path), "rs", it[0].seg);
	if (acked < RS_N) {
		spool_done(x->s, it[acked].seg, it[acked].index);
		assert_int_equal(spool_flush(x->s), 0);
	}
	spool_close(x->s);
	assert_int_equal(frame_offsets(x->path, x->offs, RS_N, &x->size), RS_N);
	x->offs[RS_N] = x->size;
}

/* Adopt: the ids replayed must be exactly `want` (record numbers, in
 * order), *bad the count of damaged records; then deliver them all and the
 * segment is gone. Returns the damaged bytes reported. */
static size_t rs_adopt(struct rs *x, const int *want, size_t n_want, size_t want_bad)
{
	struct replay rp = {0};
	char err[200];
	size_t bad, bytes;
	struct stat st;

	assert_int_equal(spool_open(root, "rs", &x->s, err, sizeof(err)), 0);
	assert_int_equal(spool_adopt(x->s, on_replay, &rp, &bad), 0);
	assert_int_equal(bad, want_bad);
	assert_int_equal(rp.n, n_want);
	for (size_t i = 0; i < n_want; i++) {
		assert_string_equal(rp.ids[i], x->m[want[i]].id);
		assert_int_equal(rp.index[i], (uint32_t)want[i]);
	}
	for (size_t i = 0; i < rp.n; i++) {
		assert_int_equal(count_dir("rs"), 1); /* kept while one is pending */
		spool_done(x->s, rp.seg[i], rp.index[i]);
	}
	assert_int_equal(count_dir("rs"), 0);
	assert_int_not_equal(stat(x->path, &st), 0);
	bytes = spool_bad_bytes(x->s);
	spool_close(x->s);
	for (int i = 0; i < RS_N; i++)
		buf_free(&x->m[i].json);
	return bytes;
}

/* Total size of the files in dead/. */
static size_t dead_bytes(void)
{
	char path[512], f[800];
	struct dirent *de;
	struct stat st;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/rs/dead", root);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(f, sizeof(f), "%s/%s", path, de->d_name);
			assert_int_equal(stat(f, &st), 0);
			n += (size_t)st.st_size;
		}
	closedir(d);
	return n;
}

/* One flipped byte in the first record loses that record only. */
static void test_resync_flipped_first(void **state)
{
	static const int want[] = {1, 2, 3, 4, 5};
	struct rs x;
	size_t rec0;

	(void)state;
	rs_write(&x, RS_N);
	rec0 = x.offs[1] - x.offs[0];
	poke(x.path, x.offs[0] + 40, '#'); /* inside its JSON */
	assert_int_equal(rs_adopt(&x, want, 5, 1), rec0);
	assert_int_equal(count_dir("rs/dead"), 1);
	assert_int_equal(dead_bytes(), rec0);
}

/* A bad length and a bad magic: the reader finds the next frame. */
static void test_resync_bad_length_and_magic(void **state)
{
	static const int want[] = {0, 2, 4, 5};
	struct rs x;

	(void)state;
	rs_write(&x, RS_N);
	poke(x.path, x.offs[1] + 13, 0x7f); /* length: ~8 MB */
	poke(x.path, x.offs[3], 'X');       /* magic */
	assert_int_equal(rs_adopt(&x, want, 4, 2),
			 x.offs[2] - x.offs[1] + x.offs[4] - x.offs[3]);
	assert_int_equal(count_dir("rs/dead"), 2);
}

/* A cut segment: the whole records before the cut are kept, the cut ones
 * counted (the count is in every frame), even with no ack lost. */
static void test_resync_truncated(void **state)
{
	static const int want[] = {0, 1, 3};
	struct rs x;

	(void)state;
	rs_write(&x, 2); /* record 2 was delivered before the damage */
	assert_int_equal(truncate(x.path, (off_t)(x.offs[4] + 30)), 0);
	assert_int_equal(rs_adopt(&x, want, 3, 2), 30);
}

/* Damaged segment magic and a garbage run full of magic-like bytes: still
 * every intact record, the acks still pointing at the right ones. */
static void test_resync_garbage(void **state)
{
	static const int want[] = {0, 1, 2, 3, 5};
	struct rs x;

	(void)state;
	rs_write(&x, RS_N);
	poke(x.path, 2, 'Z');
	for (size_t i = x.offs[4] + 24; i < x.offs[5] - 2; i += 2) {
		poke(x.path, i, 0xff);
		poke(x.path, i + 1, 0xfe);
	}
	assert_int_equal(rs_adopt(&x, want, 5, 1), 8 + x.offs[5] - x.offs[4]);
}

/* Nothing intact at all: the bytes go to dead/, the file goes. */
static void test_resync_nothing_intact(void **state)
{
	struct rs x;

	(void)state;
	rs_write(&x, RS_N);
	assert_int_equal(truncate(x.path, 20), 0);
	assert_int_equal(rs_adopt(&x, NULL, 0, 1), 20 - 8); /* after the magic */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_keeps_types),
		cmocka_unit_test(test_folder_name_hides_url),
		cmocka_unit_test_setup_teardown(test_write_adopt_bury, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_flipped_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_bad_length_and_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_nothing_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count_records, setup, teardown),
		cmocka_unit_test(test_on_filter),
		cmocka_unit_test_setup_teardown(test_queue_spools_before_first_attempt, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
