/* libFuzzer target: events as JSON (core/base/event_json.h and
 * event_json_decode.h). Properties checked on any input:
 * - json_put_string output is valid JSON (event_json_validate) with no raw
 *   NUL, and for ASCII input it decodes back to exactly the input;
 * - a whole event with the input in its message, a string field and a list
 *   encodes to valid JSON;
 * - event_json_validate never crashes, and accepts a valid value wrapped in
 *   an array (unless that crosses the nesting limit);
 * - round trip: the input read as "TYPES\nJSON" (a spool payload) that
 *   decodes is re-encoded (valid JSON), decodes again to the same envelope and
 *   field types, and re-encodes to the same bytes (one pass normalises).
 * Build and run: tests/fuzz/README.md. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/event_json.h"
#include "base/event_json_decode.h"
#include "base/record.h"
#include "fuzz_util.h"

/* Undo our own escapes for ASCII output; -1 on anything else. */
static long unescape_ascii(const char *s, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 1; i + 1 < len; i++) {
		if (s[i] != '\\') {
			out[o++] = s[i];
			continue;
		}
		switch (s[++i]) {
		case '"': out[o++] = '"'; break;
		case '\\': out[o++] = '\\'; break;
		case 'n': out[o++] = '\n'; break;
		case 't': out[o++] = '\t'; break;
		case 'r': out[o++] = '\r'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'u':
			if (i + 4 >= len)
				return -1;
			out[o++] = (char)strtol((char[]){s[i + 3], s[i + 4], 0}, NULL, 16);
			i += 4;
			break;
		default:
			return -1;
		}
	}
	return (long)o;
}

static void check_string(const char *s, size_t len)
{
	struct buf b = BUF_INIT;
	bool ascii = true;

	if (json_put_string(&b, s, len) < 0)
		abort();
	if (event_json_validate(b.p, b.len) != 0 || memchr(b.p, '\0', b.len))
		abort();
	for (size_t i = 0; i < len; i++)
		ascii = ascii && (unsigned char)s[i] < 0x80;
	if (ascii) {
		char *out = malloc(len + 1);

		if (!out || unescape_ascii(b.p, b.len, out) != (long)len ||
		    memcmp(out, s, len) != 0)
			abort();
		free(out);
	}
	buf_free(&b);
}

static void check_event(const char *s, size_t len)
{
	char *msg = strndup(s, len); /* the message is a C string: up to a NUL */
	const struct vigil_bytes lines[] = {{s, len}, {s, len / 2}};
	const struct vigil_field fields[] = {
		{"line", VIGIL_FIELD_STRING, .u.s = {s, len}},
		{"log_tail", VIGIL_FIELD_STRINGS, .u.list = {lines, 2}},
		{"value", VIGIL_FIELD_DOUBLE, .u.d = len ? (double)(signed char)s[0] / 7 : 0},
	};
	const struct vigil_event ev = {"match", msg, fields, 3};
	const struct event_envelope env = {msg, (int64_t)len * 86400000, msg, msg, len, msg, 1};
	struct buf b = BUF_INIT;

	if (!msg || event_json_encode(&b, &env, &ev) != 0 ||
	    event_json_validate(b.p, b.len) != 0)
		abort();
	buf_free(&b);
	free(msg);
}

/* Encode a decoded record as the spool would store it: JSON, '\n', types. */
static void encode_record(const struct stored_record *r, struct buf *json, struct buf *types)
{
	const struct event_envelope env = {r->id, r->time_ms, r->host, r->monitor, r->run,
					   r->detector, r->pid};

	if (event_json_encode(json, &env, &r->ev) != 0 ||
	    event_json_validate(json->p, json->len) != 0 ||
	    event_json_types(types, &r->ev) != 0 || buf_append(types, "", 1) != 0)
		abort(); /* a record that decoded must encode, as valid JSON */
}

/* -0.0 keeps its sign through the spool (tests/fuzz/crashes/event_json/
 * negative_zero, fixed: it is written -0.0). */
static bool same_double(double a, double b)
{
	return a == b ? signbit(a) == signbit(b) : (isnan(a) && isnan(b));
}

static bool same_bytes(const struct vigil_bytes *a, const struct vigil_bytes *b)
{
	return a->len == b->len && (!a->len || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* Strings and names are compared only once normalised: the first encoding turns
 * invalid UTF-8 into U+FFFD (documented), so r1's may differ from r2's. */
static bool same_value(const struct vigil_field *a, const struct vigil_field *b, bool strings)
{
	switch (a->type) {
	case VIGIL_FIELD_INT: return a->u.i == b->u.i;
	case VIGIL_FIELD_BOOL: return !a->u.b == !b->u.b;
	case VIGIL_FIELD_DOUBLE:
		return b->type == VIGIL_FIELD_NULL || same_double(a->u.d, b->u.d);
	case VIGIL_FIELD_STRING: return !strings || same_bytes(&a->u.s, &b->u.s);
	case VIGIL_FIELD_STRINGS:
		if (a->u.list.n != b->u.list.n)
			return false;
		for (size_t i = 0; strings && i < a->u.list.n; i++)
			if (!same_bytes(&a->u.list.v[i], &b->u.list.v[i]))
				return false;
		return true;
	default: return true;
	}
}

/* NaN and infinities are encoded as null (documented): a double that
 * overflowed on decoding (1e999) comes back as a null field. */
static bool same_type(const struct vigil_field *a, const struct vigil_field *b)
{
	return a->type == b->type || (a->type == VIGIL_FIELD_DOUBLE && !isfinite(a->u.d) &&
				      b->type == VIGIL_FIELD_NULL);
}

/* b is a's encoding decoded: the same envelope, and a's fields but those the
 * encoder leaves out by design (a repeated name, or an envelope key that an
 * old spooled record carries as a field: event_field_encoded), in order. */
static bool same_record(const struct stored_record *a, const struct stored_record *b,
			bool strings)
{
	size_t j = 0;

	if (strcmp(a->id, b->id) || a->run != b->run || a->time_ms != b->time_ms ||
	    a->pid != b->pid)
		return false;
	for (size_t i = 0; i < a->ev.n_fields; i++) {
		const struct vigil_field *fa = &a->ev.fields[i], *fb;

		if (!event_field_encoded(&a->ev, i))
			continue;
		if (j >= b->ev.n_fields)
			return false;
		fb = &b->ev.fields[j++];
		if (!same_type(fa, fb) ||
		    (strings && strcmp(fa->name, fb->name)) || !same_value(fa, fb, strings))
			return false;
	}
	return j == b->ev.n_fields;
}

/* Our own encoding of r, decoded again (it must decode), into *again. */
static void reencode(const struct stored_record *r, struct stored_record **again, char **host,
		     struct buf *json)
{
	struct buf types = BUF_INIT;
	char err[256];

	encode_record(r, json, &types);
	if (event_json_decode(json->p, json->len, types.p, again, host, err, sizeof(err)) != 0)
		abort(); /* a decoded record, once encoded, is unreadable */
	buf_free(&types);
}

/* Decode, then encode and decode twice: values survive, and the second
 * encoding is a fixpoint (byte for byte). */
static void check_round_trip(const char *s, size_t len)
{
	const char *nl = memchr(s, '\n', len);
	char *types = nl ? strndup(s, (size_t)(nl - s)) : NULL;
	struct stored_record *r[3] = {NULL, NULL, NULL};
	char *h[3] = {NULL, NULL, NULL}, err[256];
	struct buf j[3] = {BUF_INIT, BUF_INIT, BUF_INIT}, t = BUF_INIT;

	if (!types || event_json_decode(nl + 1, len - (size_t)(nl - s) - 1, types, &r[0], &h[0],
					err, sizeof(err)) != 0)
		goto out; /* the decoder refuses ids and times it could not write back */
	reencode(r[0], &r[1], &h[1], &j[0]);
	reencode(r[1], &r[2], &h[2], &j[1]);
	encode_record(r[2], &j[2], &t);
	if (!same_record(r[0], r[1], false) || !same_record(r[1], r[2], true) ||
	    j[1].len != j[2].len || memcmp(j[1].p, j[2].p, j[1].len) != 0)
		abort();
out:
	for (int i = 0; i < 3; i++) {
		record_free(r[i]);
		free(h[i]);
	}
	for (int i = 0; i < 3; i++)
		buf_free(&j[i]);
	buf_free(&t);
	free(types);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	check_string(s, size);
	check_event(s, size);
	check_round_trip(s, size);
	if (event_json_validate(s, size) == 0 && size < 500) {
		char *wrapped = malloc(size + 2);

		if (!wrapped)
			return 0;
		wrapped[0] = '[';
		memcpy(wrapped + 1, s, size);
		wrapped[size + 1] = ']';
		if (event_json_validate(wrapped, size + 2) != 0)
			abort();
		free(wrapped);
	}
	return 0;
}
