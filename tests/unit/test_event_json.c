/* core/event_json.c: byte-exact encoding, escaping of every byte class,
 * invalid UTF-8 replacement, RFC 3339 times, ids, and the strict validator. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/event_json.h"
#include "base/event_json_decode.h"

#define S(lit) lit, sizeof(lit) - 1

/* Encode s[0..len) as a JSON string; check it is exactly `want` and valid. */
static void check_string(const char *s, size_t len, const char *want)
{
	struct buf b = BUF_INIT;

	assert_int_equal(json_put_string(&b, s, len), 0);
	assert_string_equal(buf_cstr(&b), want);
	assert_int_equal(b.len, strlen(want));
	assert_int_equal(event_json_validate(b.p, b.len), 0);
	buf_free(&b);
}

static void test_string_ascii(void **state)
{
	(void)state;
	check_string(S(""), "\"\"");
	check_string(S("plain text / with slash ~"), "\"plain text / with slash ~\"");
	check_string(S("q\"b\\"), "\"q\\\"b\\\\\"");
	check_string(S("\n\t\r\b\f"), "\"\\n\\t\\r\\b\\f\"");
	check_string(S("\x01\x02\x1b[31m\x1f"), "\"\\u0001\\u0002\\u001b[31m\\u001f\"");
	check_string(S("del\x7f ok"), "\"del\x7f ok\"");
	check_string(S("a\0b\0"), "\"a\\u0000b\\u0000\"");
}

static void test_string_valid_utf8(void **state)
{
	(void)state;
	/* 2, 3 and 4 bytes, and the edges of each range. */
	check_string(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
		     "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	check_string(S("\xc2\x80\xdf\xbf"), "\"\xc2\x80\xdf\xbf\"");
	check_string(S("\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"),
		     "\"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"");
	check_string(S("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"), "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
	/* U+2028 is valid JSON as is. */
	check_string(S("\xe2\x80\xa8"), "\"\xe2\x80\xa8\"");
}

#define R "\\ufffd"

static void test_string_invalid_utf8(void **state)
{
	(void)state;
	check_string(S("\xff"), "\"" R "\"");
	check_string(S("\xfe\xf5\xf8"), "\"" R R R "\"");
	check_string(S("\x80"), "\"" R "\"");
	check_string(S("\xc3"), "\"" R "\"");                   /* truncated 2 */
	check_string(S("\xe2\x82"), "\"" R "\"");               /* truncated 3 */
	check_string(S("\xf1\x80\x80"), "\"" R "\"");           /* truncated 4 */
	check_string(S("\xed\xa0\x80"), "\"" R R R "\"");       /* surrogate D800 */
	check_string(S("\xed\xbf\xbf"), "\"" R R R "\"");       /* surrogate DFFF */
	check_string(S("\xf4\x90\x80\x80"), "\"" R R R R "\""); /* > U+10FFFF */
	check_string(S("\xc0\xaf"), "\"" R R "\"");             /* overlong '/' */
	check_string(S("\xc1\xbf"), "\"" R R "\"");
	check_string(S("\xe0\x80\xaf"), "\"" R R R "\"");
	check_string(S("\xf0\x80\x80\xaf"), "\"" R R R R "\"");
	/* A truncated sequence does not swallow the next character. */
	check_string(S("a\xe2\x82z"), "\"a" R "z\"");
	check_string(S("\xe2\x82\xe2\x82\xac"), "\"" R "\xe2\x82\xac\"");
	check_string(S("\xc3\xa9\xff\xc3\xa9"), "\"\xc3\xa9" R "\xc3\xa9\"");
	check_string(S("\xc3\n"), "\"" R "\\n\"");
	/* The example of Unicode 15, table 3-8. */
	check_string(S("\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64"),
		     "\"a" R R R "b" R "c" R R "d\"");
}

/* Pseudo-random bytes (fixed seed, so a failure reproduces) always give
 * valid JSON. */
static void test_string_random_bytes(void **state)
{
	uint64_t x = 0x243f6a8885a308d3ull;
	struct buf b = BUF_INIT;
	char s[64];

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(round % 64);

		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* Bias towards the interesting bytes. */
			s[i] = (char)((x & 1) ? (0x80 | (x >> 8)) : (x >> 8));
		}
		buf_reset(&b);
		assert_int_equal(json_put_string(&b, s, len), 0);
		assert_int_equal(event_json_validate(b.p, b.len), 0);
		assert_null(memchr(b.p, '\0', b.len));
	}
	buf_free(&b);
}

static void check_double(double d, const char *want)
{
	struct buf b = BUF_INIT;

	assert_int_equal(json_put_double(&b, d), 0);
	assert_string_equal(buf_cstr(&b), want);
	assert_int_equal(event_json_validate(b.p, b.len), 0);
	buf_free(&b);
}

static void test_doubles(void **state)
{
	(void)state;
	check_double(12.5, "12.5");
	check_double(0.1, "0.1");
	check_double(100, "100");
	check_double(2.0 / 3.0, "0.6666666666666666");
	check_double(1e300, "1e+300");
	check_double(-1.5e-7, "-1.5e-07");
	check_double(-0.0, "-0.0"); /* "-0" would decode as the integer 0 */
	check_double(NAN, "null");
	check_double(INFINITY, "null");
	check_double(-INFINITY, "null");
}

static const char *const tail[] = {"line one", "bad \xff byte"};

static void test_encode_finished(void **state)
{
	const struct vigil_bytes lines[] = {{tail[0], strlen(tail[0])}, {tail[1], strlen(tail[1])}};
	const struct vigil_field fields[] = {
		{"outcome", VIGIL_FIELD_STRING, .u.s = {"succeeded", 9}},
		{"exit_code", VIGIL_FIELD_INT, .u.i = 0},
		{"signal", VIGIL_FIELD_NULL, .u.i = 0},
		{"core_dumped", VIGIL_FIELD_BOOL, .u.b = 0},
		{"duration", VIGIL_FIELD_DOUBLE, .u.d = 12.5},
		{"size", VIGIL_FIELD_INT, .u.i = -9223372036854775807LL - 1},
		{"log_tail", VIGIL_FIELD_STRINGS, .u.list = {lines, 2}},
		{"empty", VIGIL_FIELD_STRINGS, .u.list = {NULL, 0}},
	};
	const struct vigil_event ev = {VIGIL_EV_FINISHED, "succeeded \xe2\x80\x94 exit 0",
				       fields, sizeof(fields) / sizeof(fields[0])};
	const struct event_envelope env = {"0190f3a5c2e87d3b9a4c5e6f708192a3", 1795678927123,
					   "web-1", "export", 3, "core", 4242};
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_puts(&b, "prefix:"), 0);
	assert_int_equal(event_json_encode(&b, &env, &ev), 0);
	assert_string_equal(buf_cstr(&b),
		"prefix:{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\","
		"\"time\":\"2026-11-26T07:42:07.123Z\",\"host\":\"web-1\",\"monitor\":\"export\","
		"\"run\":3,\"detector\":\"core\",\"kind\":\"finished\",\"pid\":4242,"
		"\"message\":\"succeeded \xe2\x80\x94 exit 0\",\"outcome\":\"succeeded\","
		"\"exit_code\":0,\"signal\":null,\"core_dumped\":false,\"duration\":12.5,"
		"\"size\":-9223372036854775808,"
		"\"log_tail\":[\"line one\",\"bad \\ufffd byte\"],\"empty\":[]}");
	assert_int_equal(event_json_validate(b.p + 7, b.len - 7), 0);
	buf_free(&b);
}

static void test_encode_nulls_and_escaped_envelope(void **state)
{
	const struct vigil_field fields[] = {
		{"path", VIGIL_FIELD_STRING, .u.s = {"/tmp/a\nb", 8}},
		{"odd\"name", VIGIL_FIELD_BOOL, .u.b = 1},
		{"missing", VIGIL_FIELD_STRING, .u.s = {NULL, 0}},
	};
	const struct vigil_event ev = {VIGIL_EV_FILE, NULL, fields, 3};
	const struct event_envelope env = {"id", 0, NULL, "mon\x01\xff", UINT64_MAX, "file", 0};
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(event_json_encode(&b, &env, &ev), 0);
	assert_string_equal(buf_cstr(&b),
		"{\"v\":1,\"id\":\"id\",\"time\":\"1970-01-01T00:00:00.000Z\",\"host\":null,"
		"\"monitor\":\"mon\\u0001\\ufffd\",\"run\":18446744073709551615,"
		"\"detector\":\"file\",\"kind\":\"file\",\"pid\":null,\"message\":null,"
		"\"path\":\"/tmp/a\\nb\",\"odd\\\"name\":true,\"missing\":null}");
	assert_int_equal(event_json_validate(b.p, b.len), 0);
	buf_free(&b);
}

static void test_encode_rejects_bad_events(void **state)
{
	const struct vigil_field noname[] = {{NULL, VIGIL_FIELD_INT, .u.i = 1}};
	const struct vigil_field badtype[] = {{"x", (enum vigil_field_type)42, .u.i = 1}};
	const struct vigil_event nokind = {NULL, "m", NULL, 0};
	const struct vigil_event ev1 = {"file", NULL, noname, 1};
	const struct vigil_event ev2 = {"file", NULL, badtype, 1};
	const struct vigil_event ev3 = {"file", NULL, NULL, 2};
	const struct event_envelope env = {"id", 0, "h", "m", 1, "d", 1};
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_puts(&b, "keep"), 0);
	assert_int_equal(event_json_encode(&b, &env, &nokind), -EINVAL);
	assert_int_equal(event_json_encode(&b, &env, &ev1), -EINVAL);
	assert_int_equal(event_json_encode(&b, &env, &ev2), -EINVAL);
	assert_int_equal(event_json_encode(&b, &env, &ev3), -EINVAL);
	assert_int_equal(event_json_encode(&b, NULL, &ev1), -EINVAL);
	assert_string_equal(buf_cstr(&b), "keep");
	buf_free(&b);
}

static void check_time(int64_t ms, const char *want)
{
	char out[EVENT_TIME_LEN];

	assert_int_equal(event_time_rfc3339(ms, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_time(void **state)
{
	char small[EVENT_TIME_LEN - 1];
	char out[EVENT_TIME_LEN];

	(void)state;
	check_time(0, "1970-01-01T00:00:00.000Z");
	check_time(1795678927123, "2026-11-26T07:42:07.123Z");
	check_time(951868799000 + 7, "2000-02-29T23:59:59.007Z");
	check_time(-1, "1969-12-31T23:59:59.999Z");
	check_time(-1000, "1969-12-31T23:59:59.000Z");
	check_time(253402300799999, "9999-12-31T23:59:59.999Z");
	assert_int_equal(event_time_rfc3339(0, small, sizeof(small)), -ENOSPC);
	assert_int_equal(event_time_rfc3339(253402300800000, out, sizeof(out)), -EOVERFLOW);
	assert_int_equal(event_time_rfc3339(INT64_MAX, out, sizeof(out)), -EOVERFLOW);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_ids(void **state)
{
	enum { N = 20000 };
	char (*ids)[EVENT_ID_LEN] = malloc(N * sizeof(*ids));
	uint64_t before = wall_ms(), after, ms;

	(void)state;
	assert_non_null(ids);
	for (int i = 0; i < N; i++)
		event_new_id(ids[i]);
	after = wall_ms();
	for (int i = 0; i < N; i++) {
		assert_int_equal(strlen(ids[i]), 32);
		assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
		/* Strictly increasing, hence unique. */
		if (i)
			assert_true(strcmp(ids[i - 1], ids[i]) < 0);
	}
	assert_int_equal(sscanf(ids[0], "%12" SCNx64, &ms), 1);
	assert_true(ms >= before && ms <= after + 1);
	/* The random part is not all the same bits in every run. */
	assert_true(strcmp(ids[0] + 12, "00000000000000000000") != 0);
	free(ids);
}

static const char *const good_json[] = {
	"0", "-0", "1.5", "-12.25e+10", "3E-2", "true", "false", "null", "\"\"",
	" \t\n\r{\"a\":[1,-0.5e+10,true,false,null,{}],\"b\":{\"c\":\"\\u00e9\"}} \n",
	"\"\\ud83d\\ude00 \\\" \\\\ \\/ \\b\\f\\n\\r\\t\"", "\"\xf0\x9f\x98\x80\"", "[]",
	"[[[]]]", "{\"\":\"\"}",
};

static const char *const bad_json[] = {
	"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\"}", "{\"a\" 1}", "{1:2}", "01",
	"1.", ".5", "+1", "-", "1e", "1e+", "tru", "nul", "nan", "Infinity", "\"abc",
	"\"\x01\"", "\"a\nb\"", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\ud800\"",
	"\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\ud800x\"", "\"\xff\"", "\"\xc0\xaf\"",
	"\"\xed\xa0\x80\"", "\"\xe2\x82\"", "1 2", "[1]x", "[1 2]", "'a'", "{\"a\":1}}",
};

static void test_validate(void **state)
{
	enum { DEEP = 600 };
	char deep[2 * DEEP];

	(void)state;
	for (size_t i = 0; i < sizeof(good_json) / sizeof(good_json[0]); i++)
		if (event_json_validate(good_json[i], strlen(good_json[i])) != 0)
			fail_msg("rejected: %s", good_json[i]);
	for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++)
		if (event_json_validate(bad_json[i], strlen(bad_json[i])) != -EINVAL)
			fail_msg("accepted: %s", bad_json[i]);
	/* NUL bytes: inside a string or after the value. */
	assert_int_equal(event_json_validate("\"a\0\"", 4), -EINVAL);
	assert_int_equal(event_json_validate("1\0", 2), -EINVAL);
	/* Only len bytes count. */
	assert_int_equal(event_json_validate("[1]garbage", 3), 0);
	/* Nesting: 512 levels are fine, 600 are refused. */
	memset(deep, '[', DEEP);
	memset(deep + DEEP, ']', DEEP);
	assert_int_equal(event_json_validate(deep, sizeof(deep)), -EINVAL);
	assert_int_equal(event_json_validate(deep + DEEP - 512, 2 * 512), 0);
}

/* ---------------------------------------------------- duplicate keys */

/* How often `needle` occurs in s. */
static size_t occurrences(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* A field named like an envelope key, or like an earlier field, is never
 * written a second time: the envelope's (the first) value stands, and the
 * type line leaves it out too, so the record decodes. */
static void test_encode_never_duplicates_keys(void **state)
{
	const struct vigil_field fields[] = {
		{"pid", VIGIL_FIELD_INT, .u.i = 7},
		{"path", VIGIL_FIELD_STRING, .u.s = {"/a", 2}},
		{"host", VIGIL_FIELD_STRING, .u.s = {"evil", 4}},
		{"path", VIGIL_FIELD_STRING, .u.s = {"/b", 2}},
		{"message", VIGIL_FIELD_NULL, .u.i = 0},
		{"size", VIGIL_FIELD_INT, .u.i = 3},
	};
	const struct vigil_event ev = {VIGIL_EV_FILE, "m", fields, 6};
	const struct event_envelope env = {"0190f3a5c2e87d3b9a4c5e6f708192a3", 1795678927123,
					   "web-1", "export", 3, "file", 42};
	struct buf b = BUF_INIT, t = BUF_INIT;
	struct stored_record *r;
	char *host, err[200];

	(void)state;
	assert_int_equal(event_json_encode(&b, &env, &ev), 0);
	assert_string_equal(buf_cstr(&b),
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\","
		"\"time\":\"2026-11-26T07:42:07.123Z\",\"host\":\"web-1\",\"monitor\":\"export\","
		"\"run\":3,\"detector\":\"file\",\"kind\":\"file\",\"pid\":42,\"message\":\"m\","
		"\"path\":\"/a\",\"size\":3}");
	assert_int_equal(occurrences(buf_cstr(&b), "\"pid\""), 1);
	assert_int_equal(event_json_types(&t, &ev), 0);
	assert_string_equal(buf_cstr(&t), "si");
	assert_int_equal(event_json_decode(b.p, b.len, buf_cstr(&t), &r, &host, err,
					   sizeof(err)), 0);
	assert_int_equal(r->rec.pid, 42);
	assert_string_equal(r->rec.host, "web-1");
	assert_int_equal(r->ev.n_fields, 2);
	record_free(r);
	free(host);
	buf_free(&b);
	buf_free(&t);
}

/* A record spooled before the fix, with `pid` twice (envelope, then the
 * detector's field) and a repeated field, still decodes: the envelope keeps
 * its own value, the fields come back in order. */
/* What the decoder cannot write back the same is refused, not replayed wrong
 * (each found by tests/fuzz: tests/fuzz/crashes/). */
static void test_decode_refuses_what_it_cannot_write_back(void **state)
{
	static const char *const bad[] = {
		/* id not 32 lowercase hex digits */
		"{\"v\":1,\"id\":\"0190F3A5C2E87D3B9A4C5E6F708192A3\",\"time\":\"2026-11-26T07:42:07.123Z\","
		"\"kind\":\"x\"}",
		/* month 13, and a signed field */
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\",\"time\":\"2026-13-26T07:42:07.123Z\","
		"\"kind\":\"x\"}",
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\",\"time\":\"2026--2-26T07:42:07.123Z\","
		"\"kind\":\"x\"}",
		/* a leap second at the end of 9999: year 10000 once normalised (fuzzing) */
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\",\"time\":\"9999-12-31T23:59:60.999Z\","
		"\"kind\":\"x\"}",
		/* invalid UTF-8 in a string */
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\",\"time\":\"2026-11-26T07:42:07.123Z\","
		"\"kind\":\"x\",\"message\":\"\xff\xfe\"}",
	};
	struct stored_record *r;
	char *host, err[200];
	struct buf b = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(event_json_decode(bad[i], strlen(bad[i]), "", &r, &host, err,
						   sizeof(err)), -EINVAL);
	/* -0.0 keeps its sign: written -0.0, read back as a double */
	assert_int_equal(json_put_double(&b, -0.0), 0);
	assert_string_equal(buf_cstr(&b), "-0.0");
	buf_free(&b);
}

static void test_decode_legacy_duplicate_keys(void **state)
{
	static const char json[] =
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\","
		"\"time\":\"2026-11-26T07:42:07.123Z\",\"host\":\"web-1\",\"monitor\":\"export\","
		"\"run\":3,\"detector\":\"log\",\"kind\":\"match\",\"pid\":42,\"message\":null,"
		"\"pid\":7,\"line\":\"x\",\"line\":\"y\",\"kind\":\"fake\"}";
	struct stored_record *r;
	char *host, err[200];

	(void)state;
	assert_int_equal(event_json_decode(json, sizeof(json) - 1, "isss", &r, &host, err,
					   sizeof(err)), 0);
	assert_int_equal(r->rec.pid, 42);
	assert_string_equal(r->ev.kind, "match");
	assert_int_equal(r->ev.n_fields, 4);
	assert_string_equal(r->fields[0].name, "pid");
	assert_int_equal(r->fields[0].u.i, 7);
	assert_string_equal(r->fields[1].u.s.ptr, "x");
	assert_string_equal(r->fields[2].u.s.ptr, "y");
	assert_string_equal(r->fields[3].name, "kind");
	assert_memory_equal(r->rec.json, json, sizeof(json) - 1);
	record_free(r);
	free(host);
	/* Still strict about the rest: one type letter too many or too few. */
	assert_int_equal(event_json_decode(json, sizeof(json) - 1, "issss", &r, &host, err,
					   sizeof(err)), -EINVAL);
	assert_int_equal(event_json_decode(json, sizeof(json) - 1, "iss", &r, &host, err,
					   sizeof(err)), -EINVAL);
	assert_int_equal(event_json_decode(json, sizeof(json) - 2, "isss", &r, &host, err,
					   sizeof(err)), -EINVAL);
}

/* A pid or run out of range is unknown (0), as the encoder writes it back,
 * not the value cut to 32 bits or wrapped (found by fuzzing: a pid of 2^64-1
 * decoded as -1 and came back as null, a run of -5 as 2^64-5). */
static void test_decode_pid_and_run_out_of_range(void **state)
{
	static const char *const json[] = {
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\","
		"\"time\":\"2026-11-26T07:42:07.123Z\",\"run\":-5,\"kind\":\"x\","
		"\"pid\":18446744073709551615}",
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\","
		"\"time\":\"2026-11-26T07:42:07.123Z\",\"run\":0,\"kind\":\"x\",\"pid\":-3}",
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\","
		"\"time\":\"2026-11-26T07:42:07.123Z\",\"run\":2,\"kind\":\"x\",\"pid\":4294967297}",
	};
	struct stored_record *r;
	char *host, err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
		assert_int_equal(event_json_decode(json[i], strlen(json[i]), "", &r, &host, err,
						   sizeof(err)), 0);
		assert_int_equal(r->rec.pid, 0);
		assert_int_equal(r->rec.run, i == 2 ? 2 : 0);
		record_free(r);
		free(host);
	}
}

/* An `S` field whose value is not an array is refused, and nothing leaks
 * (ASan's leak check runs at exit). */
static void test_decode_strings_not_array(void **state)
{
	static const char json[] =
		"{\"v\":1,\"id\":\"0190f3a5c2e87d3b9a4c5e6f708192a3\","
		"\"time\":\"2026-11-26T07:42:07.123Z\",\"host\":\"h\",\"monitor\":\"m\","
		"\"run\":1,\"detector\":\"log\",\"kind\":\"finished\",\"pid\":null,"
		"\"message\":null,\"log_tail\":\"not a list\",\"n\":[1]}";
	struct stored_record *r;
	char *host, err[200];

	(void)state;
	/* Several times: one leaked block could hide behind a stale stack slot. */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(event_json_decode(json, sizeof(json) - 1, "Ss", &r, &host, err,
						   sizeof(err)), -EINVAL);
		assert_null(r);
		assert_int_equal(event_json_decode(json, sizeof(json) - 1, "sS", &r, &host, err,
						   sizeof(err)), -EINVAL);
		assert_null(r);
	}
}

/* Renamed at emit time: the names the host gives reserved fields. */
static void test_reserved_names(void **state)
{
	(void)state;
	assert_string_equal(event_field_rename("host"), "field_host");
	assert_string_equal(event_field_rename("message"), "field_message");
	assert_string_equal(event_field_rename("v"), "field_v");
	assert_null(event_field_rename("path"));
	assert_string_equal(event_field_rename("pid"), "field_pid");
	assert_true(event_is_envelope_key("pid"));
	assert_false(event_is_envelope_key("field_pid"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_string_ascii),
		cmocka_unit_test(test_string_valid_utf8),
		cmocka_unit_test(test_string_invalid_utf8),
		cmocka_unit_test(test_string_random_bytes),
		cmocka_unit_test(test_doubles),
		cmocka_unit_test(test_encode_finished),
		cmocka_unit_test(test_encode_nulls_and_escaped_envelope),
		cmocka_unit_test(test_encode_rejects_bad_events),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_encode_never_duplicates_keys),
		cmocka_unit_test(test_decode_refuses_what_it_cannot_write_back),
		cmocka_unit_test(test_decode_legacy_duplicate_keys),
		cmocka_unit_test(test_decode_pid_and_run_out_of_range),
		cmocka_unit_test(test_decode_strings_not_array),
		cmocka_unit_test(test_reserved_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
