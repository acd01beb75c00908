/* An owned copy of a record and its event: what the spool keeps and replays.
 * Base layer: the engine, the spool and the JSON decoder share it. */
#ifndef VIGIL_RECORD_H
#define VIGIL_RECORD_H

#include <stdint.h>
#include <sys/types.h>

#include "vigil/plugin.h"

struct stored_record {
	char id[33];
	char *monitor;
	uint64_t run;
	char *detector;
	char *host;
	int64_t time_ms;
	pid_t pid;
	struct vigil_event ev;
	struct vigil_field *fields;
	char *json;
	size_t json_len;
	struct vigil_record rec; /* points into the above */
};
struct stored_record *record_copy(const struct vigil_record *rec);
void record_free(struct stored_record *r);
/* Find a field of an event by name, or NULL. */
const struct vigil_field *event_field(const struct vigil_event *ev, const char *name);

#endif
