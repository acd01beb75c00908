/* Turning a spooled schema v1 JSON line back into a record (the inverse of
 * event_json_encode for what the spool needs). JSON alone cannot tell an
 * integer field from a double that happens to be whole, so the spool keeps a
 * type letter per event field next to the line:
 *   n null, i integer, d double, b bool, s string, S array of strings. */
#ifndef VIGIL_EVENT_JSON_DECODE_H
#define VIGIL_EVENT_JSON_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "record.h"

/* The type letters of ev's fields, appended to b (no newline). 0 or -ENOMEM. */
int event_json_types(struct buf *b, const struct vigil_event *ev);

/* Decode one JSON object (json[0..len)) with its type letters. On success
 * *out is an owned record whose rec.json is exactly the given bytes and whose
 * rec.host points to *host (malloc'd, the caller frees it after the record).
 * 0, -EINVAL (not a v1 event, a type mismatch: message in err) or -ENOMEM. */
int event_json_decode(const char *json, size_t len, const char *types,
		      struct stored_record **out, char **host, char *err, size_t errlen);

/* "2026-11-26T07:42:07.123Z" -> ms since the epoch. 0 or -EINVAL. */
int event_time_parse(const char *s, int64_t *ms);

#endif
