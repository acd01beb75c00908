/* Events as JSON, schema v1. See event_json.h. */
#include "event_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#ifndef GRND_INSECURE
#define GRND_INSECURE 0x0004
#endif

/* ------------------------------------------------------------------ UTF-8 */

/* The length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when
 * it is not one; then *bad is the length of its maximal invalid subpart
 * (Unicode ch. 3, "U+FFFD substitution of maximal subparts"): the lead byte
 * plus the continuation bytes that were still possible. Excludes overlongs,
 * surrogates and code points above U+10FFFF by narrowing the second byte. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		*bad = 1;
		return 0;
	}
	for (size_t i = 1; i <= need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

/* --------------------------------------------------------------- encoding */

/* Undo a partial append: buf functions leave b unchanged on failure, but a
 * sequence of them may have succeeded halfway. */
static void buf_truncate(struct buf *b, size_t len)
{
	if (b->p) {
		b->len = len;
		b->p[len] = '\0';
	}
}

/* The escape for an ASCII byte that cannot appear as is; tmp holds 7 bytes. */
static const char *json_escape_ascii(unsigned char c, char *tmp)
{
	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\n': return "\\n";
	case '\t': return "\\t";
	case '\r': return "\\r";
	case '\b': return "\\b";
	case '\f': return "\\f";
	}
	snprintf(tmp, 7, "\\u%04x", c);
	return tmp;
}

int json_put_string(struct buf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t mark = b->len, start = 0, i = 0;
	char tmp[7];

	if (buf_putc(b, '"') < 0)
		return -ENOMEM;
	while (i < len) {
		const char *esc;
		size_t step = 1, bad = 1, n;

		if (u[i] < 0x80) {
			if (u[i] >= 0x20 && u[i] != '"' && u[i] != '\\') {
				i++;
				continue;
			}
			esc = json_escape_ascii(u[i], tmp);
		} else {
			n = utf8_seq(u + i, len - i, &bad);
			if (n) {
				i += n;
				continue;
			}
			esc = "\\ufffd";
			step = bad;
		}
		if (buf_append(b, s + start, i - start) < 0 || buf_puts(b, esc) < 0)
			goto nomem;
		i += step;
		start = i;
	}
	if (buf_append(b, s + start, i - start) < 0 || buf_putc(b, '"') < 0)
		goto nomem;
	return 0;
nomem:
	buf_truncate(b, mark);
	return -ENOMEM;
}

int json_put_double(struct buf *b, double d)
{
	char tmp[40];

	if (!isfinite(d))
		return buf_puts(b, "null");
	/* "-0" reads back as the integer 0: keep the sign (found by fuzzing). */
	if (d == 0 && signbit(d))
		return buf_puts(b, "-0.0");
	/* The shortest of 15..17 significant digits that reads back exactly. */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	/* vigil never sets LC_NUMERIC, but a ',' radix must not reach JSON. */
	for (char *p = tmp; *p; p++)
		if (*p == ',')
			*p = '.';
	return buf_puts(b, tmp);
}

static int put_cstr_or_null(struct buf *b, const char *s)
{
	return s ? json_put_string(b, s, strlen(s)) : buf_puts(b, "null");
}

/* ,"key": */
static int put_key(struct buf *b, const char *key)
{
	if (buf_putc(b, ',') < 0 || json_put_string(b, key, strlen(key)) < 0 ||
	    buf_putc(b, ':') < 0)
		return -ENOMEM;
	return 0;
}

static int put_strings(struct buf *b, const struct vigil_bytes *v, size_t n)
{
	if (buf_putc(b, '[') < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (i && buf_putc(b, ',') < 0)
			return -ENOMEM;
		if (json_put_string(b, v[i].ptr ? v[i].ptr : "", v[i].ptr ? v[i].len : 0) < 0)
			return -ENOMEM;
	}
	return buf_putc(b, ']');
}

static int put_field_value(struct buf *b, const struct vigil_field *f)
{
	switch (f->type) {
	case VIGIL_FIELD_NULL:
		return buf_puts(b, "null");
	case VIGIL_FIELD_INT:
		return buf_printf(b, "%" PRId64, f->u.i);
	case VIGIL_FIELD_DOUBLE:
		return json_put_double(b, f->u.d);
	case VIGIL_FIELD_BOOL:
		return buf_puts(b, f->u.b ? "true" : "false");
	case VIGIL_FIELD_STRING:
		if (!f->u.s.ptr)
			return buf_puts(b, "null");
		return json_put_string(b, f->u.s.ptr, f->u.s.len);
	case VIGIL_FIELD_STRINGS:
		return put_strings(b, f->u.list.v, f->u.list.v ? f->u.list.n : 0);
	}
	return -EINVAL;
}

static bool event_fields_ok(const struct vigil_event *ev)
{
	if (ev->n_fields && !ev->fields)
		return false;
	for (size_t i = 0; i < ev->n_fields; i++) {
		const struct vigil_field *f = &ev->fields[i];

		if (!f->name || (int)f->type < (int)VIGIL_FIELD_NULL ||
		    (int)f->type > (int)VIGIL_FIELD_STRINGS)
			return false;
	}
	return true;
}

/* ------------------------------------------------------------- key names */

/* The envelope's keys, in the order put_envelope writes them, and the names
 * a detector's field so named is given at emit time. */
static const char *const envelope_keys[][2] = {
	{"v", "field_v"},         {"id", "field_id"},       {"time", "field_time"},
	{"host", "field_host"},   {"monitor", "field_monitor"}, {"run", "field_run"},
	{"detector", "field_detector"}, {"kind", "field_kind"}, {"pid", "field_pid"},
	{"message", "field_message"},
};

static int envelope_index(const char *name)
{
	for (size_t i = 0; i < sizeof(envelope_keys) / sizeof(envelope_keys[0]); i++)
		if (strcmp(envelope_keys[i][0], name) == 0)
			return (int)i;
	return -1;
}

bool event_is_envelope_key(const char *name)
{
	return envelope_index(name) >= 0;
}

const char *event_field_rename(const char *name)
{
	int i = envelope_index(name);

	return i < 0 ? NULL : envelope_keys[i][1];
}

/* Quadratic in the number of fields, which detectors keep to a handful. */
bool event_field_encoded(const struct vigil_event *ev, size_t i)
{
	const char *name = ev->fields[i].name;

	if (!name || event_is_envelope_key(name))
		return false;
	for (size_t k = 0; k < i; k++)
		if (ev->fields[k].name && strcmp(ev->fields[k].name, name) == 0)
			return false;
	return true;
}

static int put_envelope(struct buf *b, const struct event_envelope *env, const char *kind)
{
	char when[EVENT_TIME_LEN];
	bool have_time = event_time_rfc3339(env->time_ms, when, sizeof(when)) == 0;

	if (buf_printf(b, "{\"v\":%d,\"id\":", EVENT_JSON_VERSION) < 0 ||
	    put_cstr_or_null(b, env->id) < 0 || put_key(b, "time") < 0 ||
	    put_cstr_or_null(b, have_time ? when : NULL) < 0 || put_key(b, "host") < 0 ||
	    put_cstr_or_null(b, env->host) < 0 || put_key(b, "monitor") < 0 ||
	    put_cstr_or_null(b, env->monitor) < 0 ||
	    buf_printf(b, ",\"run\":%" PRIu64 ",\"detector\":", env->run) < 0 ||
	    put_cstr_or_null(b, env->detector) < 0 || put_key(b, "kind") < 0 ||
	    put_cstr_or_null(b, kind) < 0)
		return -ENOMEM;
	if (env->pid > 0)
		return buf_printf(b, ",\"pid\":%ld", (long)env->pid);
	return buf_puts(b, ",\"pid\":null");
}

int event_json_encode(struct buf *b, const struct event_envelope *env,
		      const struct vigil_event *ev)
{
	size_t mark = b->len;

	if (!env || !ev || !ev->kind || !event_fields_ok(ev))
		return -EINVAL;
	if (put_envelope(b, env, ev->kind) < 0 || put_key(b, "message") < 0 ||
	    put_cstr_or_null(b, ev->message) < 0)
		goto nomem;
	for (size_t i = 0; i < ev->n_fields; i++) {
		const struct vigil_field *f = &ev->fields[i];

		if (!event_field_encoded(ev, i))
			continue; /* a key is never written twice */
		if (put_key(b, f->name) < 0 || put_field_value(b, f) < 0)
			goto nomem;
	}
	if (buf_putc(b, '}') < 0)
		goto nomem;
	return 0;
nomem:
	buf_truncate(b, mark);
	return -ENOMEM;
}

/* ------------------------------------------------------------- time, ids */

int event_time_rfc3339(int64_t time_ms, char *out, size_t len)
{
	/* Floor division, so times before 1970 keep a positive millisecond. */
	int64_t secs = time_ms / 1000, ms = time_ms % 1000;
	struct tm tm;
	time_t t;

	if (ms < 0) {
		ms += 1000;
		secs--;
	}
	if (len < EVENT_TIME_LEN)
		return -ENOSPC;
	t = (time_t)secs;
	if ((int64_t)t != secs || !gmtime_r(&t, &tm))
		return -EOVERFLOW;
	if (tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return -EOVERFLOW;
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
	return 0;
}

/* splitmix64: only for the case where the kernel gives no randomness at all. */
static uint64_t id_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Never blocks: early at boot the pool may not be ready, and the loop must
 * not wait for it; uniqueness, not secrecy, is what ids need. */
static void id_random(unsigned char *r, size_t n)
{
	static _Thread_local uint64_t counter;
	struct timespec ts;
	ssize_t got;

	do
		got = getrandom(r, n, GRND_NONBLOCK);
	while (got < 0 && errno == EINTR);
	if (got == (ssize_t)n)
		return;
	got = getrandom(r, n, GRND_INSECURE);
	if (got == (ssize_t)n)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t seed = id_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
			       ((uint64_t)getpid() << 20) ^ ++counter);
	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			seed = id_mix(seed);
		r[i] = (unsigned char)(seed >> (8 * (i % 8)));
	}
}

/* Add one to a big-endian number; false when it wrapped to zero. */
static bool id_increment(unsigned char *r, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (++r[i] != 0)
			return true;
	return false;
}

void event_new_id(char out[EVENT_ID_LEN])
{
	/* Per thread, so ids of one thread strictly increase. */
	static _Thread_local uint64_t last_ms;
	static _Thread_local unsigned char last_rand[10];
	static _Thread_local bool have_last;
	struct timespec ts;
	uint64_t ms;
	int pos;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) & 0xffffffffffffull;
	if (have_last && ms <= last_ms) {
		/* Same millisecond, or the clock stepped back: keep the order. */
		ms = last_ms;
		if (!id_increment(last_rand, sizeof(last_rand))) {
			ms++;
			id_random(last_rand, sizeof(last_rand));
		}
	} else {
		id_random(last_rand, sizeof(last_rand));
	}
	last_ms = ms;
	have_last = true;
	pos = snprintf(out, EVENT_ID_LEN, "%012" PRIx64, ms);
	for (size_t i = 0; i < sizeof(last_rand) && pos >= 0; i++)
		pos += snprintf(out + pos, (size_t)(EVENT_ID_LEN - pos), "%02x", last_rand[i]);
}

/* ------------------------------------------------------------- validation */

#define JSON_MAX_DEPTH 512

struct jscan {
	const unsigned char *s;
	size_t len, pos;
	int depth;
};

static bool js_value(struct jscan *j);

static void js_ws(struct jscan *j)
{
	while (j->pos < j->len && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' ||
				   j->s[j->pos] == '\n' || j->s[j->pos] == '\r'))
		j->pos++;
}

static bool js_eat(struct jscan *j, char c)
{
	if (j->pos < j->len && j->s[j->pos] == (unsigned char)c) {
		j->pos++;
		return true;
	}
	return false;
}

static bool js_literal(struct jscan *j, const char *lit)
{
	size_t n = strlen(lit);

	if (j->len - j->pos < n || memcmp(j->s + j->pos, lit, n) != 0)
		return false;
	j->pos += n;
	return true;
}

static size_t js_digits(struct jscan *j)
{
	size_t start = j->pos;

	while (j->pos < j->len && j->s[j->pos] >= '0' && j->s[j->pos] <= '9')
		j->pos++;
	return j->pos - start;
}

static bool js_number(struct jscan *j)
{
	js_eat(j, '-');
	if (js_eat(j, '0')) {
		/* no leading zeros */
	} else if (js_digits(j) == 0) {
		return false;
	}
	if (js_eat(j, '.') && js_digits(j) == 0)
		return false;
	if (js_eat(j, 'e') || js_eat(j, 'E')) {
		if (!js_eat(j, '+'))
			js_eat(j, '-');
		if (js_digits(j) == 0)
			return false;
	}
	return true;
}

/* Four hex digits after "\u"; -1 when they are not. */
static long js_hex4(struct jscan *j)
{
	long v = 0;

	if (j->len - j->pos < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned char c = j->s[j->pos++];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

/* After the backslash. A high surrogate must be followed by a low one. */
static bool js_escape(struct jscan *j)
{
	long cp, lo;

	if (j->pos >= j->len)
		return false;
	if (strchr("\"\\/bfnrt", j->s[j->pos]) && j->s[j->pos] != '\0') {
		j->pos++;
		return true;
	}
	if (!js_eat(j, 'u') || (cp = js_hex4(j)) < 0)
		return false;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return false;
	if (cp < 0xd800 || cp > 0xdbff)
		return true;
	if (!js_eat(j, '\\') || !js_eat(j, 'u') || (lo = js_hex4(j)) < 0)
		return false;
	return lo >= 0xdc00 && lo <= 0xdfff;
}

static bool js_string(struct jscan *j)
{
	if (!js_eat(j, '"'))
		return false;
	while (j->pos < j->len) {
		unsigned char c = j->s[j->pos];
		size_t bad, n;

		if (c == '"') {
			j->pos++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			j->pos++;
			if (!js_escape(j))
				return false;
			continue;
		}
		n = utf8_seq(j->s + j->pos, j->len - j->pos, &bad);
		if (!n)
			return false;
		j->pos += n;
	}
	return false;
}

/* Object or array: open, then members separated by ',', then close. */
static bool js_container(struct jscan *j, char close, bool object)
{
	bool ok = false;

	if (++j->depth > JSON_MAX_DEPTH)
		return false;
	j->pos++;
	js_ws(j);
	if (js_eat(j, close)) {
		j->depth--;
		return true;
	}
	for (;;) {
		if (object) {
			if (!js_string(j))
				break;
			js_ws(j);
			if (!js_eat(j, ':'))
				break;
		}
		if (!js_value(j))
			break;
		js_ws(j);
		if (js_eat(j, close)) {
			ok = true;
			break;
		}
		if (!js_eat(j, ','))
			break;
		js_ws(j);
	}
	j->depth--;
	return ok;
}

static bool js_value(struct jscan *j)
{
	js_ws(j);
	if (j->pos >= j->len)
		return false;
	switch (j->s[j->pos]) {
	case '{': return js_container(j, '}', true);
	case '[': return js_container(j, ']', false);
	case '"': return js_string(j);
	case 't': return js_literal(j, "true");
	case 'f': return js_literal(j, "false");
	case 'n': return js_literal(j, "null");
	case '-': return js_number(j);
	}
	if (j->s[j->pos] >= '0' && j->s[j->pos] <= '9')
		return js_number(j);
	return false;
}

int event_json_validate(const char *s, size_t len)
{
	struct jscan j = {(const unsigned char *)s, len, 0, 0};

	if (!s && len)
		return -EINVAL;
	if (!js_value(&j))
		return -EINVAL;
	js_ws(&j);
	return j.pos == len ? 0 : -EINVAL;
}
