/* Events as JSON, schema v1 (DESIGN.md "Events as JSON"): the one encoder used
 * by `--notify json`, the webhook body and the spool, so every consumer sees
 * the same bytes. The output is always valid JSON and valid UTF-8, whatever
 * bytes a detector put into a field: invalid UTF-8 becomes U+FFFD. */
#ifndef VIGIL_EVENT_JSON_H
#define VIGIL_EVENT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "vigil/plugin.h"

#define EVENT_JSON_VERSION 1
/* "2026-11-26T07:42:07.123Z" plus the NUL. */
#define EVENT_TIME_LEN 25
/* 32 hex digits plus the NUL. */
#define EVENT_ID_LEN 33

/* What the core adds around a detector's event. */
struct event_envelope {
	const char *id;
	int64_t time_ms; /* wall clock, ms since the epoch */
	const char *host;
	const char *monitor;
	uint64_t run;
	const char *detector;
	pid_t pid; /* 0: none, encoded as null */
};

/* Append one JSON object (no newline) to b: v, id, time, host, monitor, run,
 * detector, kind, pid, message, then the event's fields in order, each key
 * once: a field named like an envelope key or like an earlier field is left
 * out (see event_field_encoded; the host renames reserved names before they
 * get here, see event_field_rename). NULL strings
 * in the envelope are encoded as null. 0, -EINVAL (no kind, a field without a
 * name, an unknown field type) or -ENOMEM; on error b is restored to its
 * previous length. */
int event_json_encode(struct buf *b, const struct event_envelope *env,
		      const struct vigil_event *ev);

/* Is name one of the envelope's keys (v, id, time, host, monitor, run,
 * detector, kind, pid, message)? */
bool event_is_envelope_key(const char *name);

/* The name a detector's field gets at emit time when it is named like an
 * envelope key: "field_" + name ("host" -> "field_host"); NULL when name is
 * not reserved. (The host keeps an integer `pid` field as it is: by the
 * plugin ABI it is the envelope's pid, and the encoder writes it once.) */
const char *event_field_rename(const char *name);

/* Does event_json_encode write field i of ev? False when its name is an
 * envelope key or the name of an earlier field (the first value stands).
 * event_json_types skips the same fields, so the type line always matches. */
bool event_field_encoded(const struct vigil_event *ev, size_t i);

/* Append s[0..len) as a quoted JSON string: ", \ and control characters
 * escaped, valid UTF-8 as is, each maximal invalid subpart as \ufffd,
 * NUL as \u0000. 0 or -ENOMEM. */
int json_put_string(struct buf *b, const char *s, size_t len);

/* Append a double: the shortest "%.Ng" that reads back as the same value,
 * null for NaN and infinities. 0 or -ENOMEM. */
int json_put_double(struct buf *b, double d);

/* Format ms since the epoch as RFC 3339 UTC with milliseconds. 0, -ENOSPC
 * when len < EVENT_TIME_LEN, -EOVERFLOW when the year is outside 0..9999. */
int event_time_rfc3339(int64_t time_ms, char *buf, size_t len);

/* A new event id: 32 lowercase hex digits, 48 bits of wall-clock ms then 80
 * random bits. Ids made by one thread strictly increase (within a
 * millisecond the random part is incremented, as in monotonic ULIDs), and ids
 * of different processes sort by their millisecond. */
void event_new_id(char out[EVENT_ID_LEN]);

/* Strict check: is s[0..len) exactly one JSON value (RFC 8259, surrounding
 * whitespace allowed) whose strings are valid UTF-8 and whose \u escapes
 * pair surrogates correctly? 0 or -EINVAL. Nesting deeper than 512 is
 * refused. For tests and fuzzing; vigil never parses JSON otherwise. */
int event_json_validate(const char *s, size_t len);

#endif
