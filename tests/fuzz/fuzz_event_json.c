/* libFuzzer target for core/event_json.c. Properties checked on any input:
 * - json_put_string output is valid JSON (event_json_validate) with no raw
 *   NUL, and for ASCII input it decodes back to exactly the input;
 * - a whole event with the input in its message, a string field and a list
 *   encodes to valid JSON;
 * - event_json_validate never crashes, and accepts a valid value wrapped in
 *   an array (unless that crosses the nesting limit).
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
 *   -Icore -Icore/include tests/fuzz/fuzz_event_json.c core/event_json.c
 *   core/buf.c -lm -o fuzz_event_json */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/event_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;

	check_string(s, size);
	check_event(s, size);
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
