/* Spooled v1 JSON lines back into records. See event_json_decode.h. */
#include "event_json_decode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

static const char *const envelope_keys[] = {
	"v", "id", "time", "host", "monitor", "run", "detector", "kind", "pid", "message",
};

static bool is_envelope_key(const char *k)
{
	for (size_t i = 0; i < sizeof(envelope_keys) / sizeof(envelope_keys[0]); i++)
		if (strcmp(envelope_keys[i], k) == 0)
			return true;
	return false;
}

int event_json_types(struct buf *b, const struct vigil_event *ev)
{
	static const char letters[] = {
		[VIGIL_FIELD_NULL] = 'n', [VIGIL_FIELD_INT] = 'i', [VIGIL_FIELD_DOUBLE] = 'd',
		[VIGIL_FIELD_BOOL] = 'b', [VIGIL_FIELD_STRING] = 's', [VIGIL_FIELD_STRINGS] = 'S',
	};

	for (size_t i = 0; i < ev->n_fields; i++) {
		unsigned t = (unsigned)ev->fields[i].type;
		char c = t < sizeof(letters) ? letters[t] : 'n';

		if (buf_append(b, &c, 1) != 0)
			return -ENOMEM;
	}
	return 0;
}

int event_time_parse(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	int msec = 0, n = 0;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon,
			 &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &msec, &n) != 7 ||
	    s[n] != '\0')
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ms = (int64_t)timegm(&tm) * 1000 + msec;
	return 0;
}

/* One field from its JSON value and type letter; strings borrowed from j. */
static int decode_field(struct vigil_field *f, const char *key, struct json_object *v,
			char type, struct vigil_bytes **lists)
{
	enum json_type jt = json_object_get_type(v);

	f->name = key;
	if (jt == json_type_null || type == 'n') {
		f->type = VIGIL_FIELD_NULL;
		return jt == json_type_null ? 0 : -EINVAL;
	}
	switch (type) {
	case 'i':
		f->type = VIGIL_FIELD_INT;
		f->u.i = json_object_get_int64(v);
		return jt == json_type_int ? 0 : -EINVAL;
	case 'd':
		f->type = VIGIL_FIELD_DOUBLE;
		f->u.d = json_object_get_double(v);
		return jt == json_type_int || jt == json_type_double ? 0 : -EINVAL;
	case 'b':
		f->type = VIGIL_FIELD_BOOL;
		f->u.b = json_object_get_boolean(v);
		return jt == json_type_boolean ? 0 : -EINVAL;
	case 's':
		f->type = VIGIL_FIELD_STRING;
		f->u.s.ptr = json_object_get_string(v);
		f->u.s.len = (size_t)json_object_get_string_len(v);
		return jt == json_type_string ? 0 : -EINVAL;
	case 'S': {
		size_t n = jt == json_type_array ? json_object_array_length(v) : 0;
		struct vigil_bytes *l = calloc(n ? n : 1, sizeof(*l));

		if (jt != json_type_array)
			return -EINVAL;
		if (!l)
			return -ENOMEM;
		*lists = l;
		f->type = VIGIL_FIELD_STRINGS;
		f->u.list.v = l;
		f->u.list.n = n;
		for (size_t i = 0; i < n; i++) {
			struct json_object *e = json_object_array_get_idx(v, i);

			if (json_object_get_type(e) != json_type_string)
				return -EINVAL;
			l[i].ptr = json_object_get_string(e);
			l[i].len = (size_t)json_object_get_string_len(e);
		}
		return 0;
	}
	default:
		return -EINVAL;
	}
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_get_type(v) != json_type_string)
		return NULL;
	return json_object_get_string(v);
}

static int64_t get_int(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || json_object_get_type(v) != json_type_int)
		return dflt;
	return json_object_get_int64(v);
}

struct decode_tmp {
	struct vigil_field *fields;
	struct vigil_bytes **lists;
	size_t n;
};

static int decode_fields(struct json_object *o, const char *types, struct decode_tmp *t,
			 char *err, size_t errlen)
{
	size_t cap = (size_t)json_object_object_length(o), ti = 0;

	t->fields = calloc(cap ? cap : 1, sizeof(*t->fields));
	t->lists = calloc(cap ? cap : 1, sizeof(*t->lists));
	if (!t->fields || !t->lists)
		return -ENOMEM;
	json_object_object_foreach(o, key, val) {
		int r;

		if (is_envelope_key(key))
			continue;
		if (!types[ti]) {
			snprintf(err, errlen, "field %s has no type", key);
			return -EINVAL;
		}
		r = decode_field(&t->fields[t->n], key, val, types[ti++], &t->lists[t->n]);
		t->n++;
		if (r) {
			snprintf(err, errlen, "field %s does not match its type", key);
			return r;
		}
	}
	if (types[ti]) {
		snprintf(err, errlen, "more types than fields");
		return -EINVAL;
	}
	return 0;
}

static void decode_tmp_free(struct decode_tmp *t)
{
	for (size_t i = 0; t->lists && i < t->n; i++)
		free(t->lists[i]);
	free(t->lists);
	free(t->fields);
}

static struct json_object *parse_object(const char *json, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o;

	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, json, (int)len);
	if (o && (json_tokener_get_error(tok) != json_tokener_success ||
		  tok->char_offset != (int)len || !json_object_is_type(o, json_type_object))) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

int event_json_decode(const char *json, size_t len, const char *types,
		      struct stored_record **out, char **host, char *err, size_t errlen)
{
	struct json_object *o = len < (1u << 30) ? parse_object(json, len) : NULL;
	struct decode_tmp t = {0};
	const char *id, *kind, *time_s, *h;
	int r = -EINVAL;

	*out = NULL;
	*host = NULL;
	if (!o) {
		snprintf(err, errlen, "not a JSON object");
		return -EINVAL;
	}
	id = get_str(o, "id");
	kind = get_str(o, "kind");
	time_s = get_str(o, "time");
	h = get_str(o, "host");
	if (get_int(o, "v", 0) != 1 || !id || strlen(id) != 32 || !kind || !time_s) {
		snprintf(err, errlen, "not a v1 event (v, id, kind, time)");
		goto out;
	}
	r = decode_fields(o, types, &t, err, errlen);
	if (r)
		goto out;
	struct vigil_event ev = {.kind = kind, .message = get_str(o, "message"),
				 .fields = t.fields, .n_fields = t.n};
	struct vigil_record rec = {.id = id, .monitor = get_str(o, "monitor"),
				   .run = (uint64_t)get_int(o, "run", 0),
				   .detector = get_str(o, "detector"),
				   .pid = (pid_t)get_int(o, "pid", 0), .event = &ev,
				   .json = json, .json_len = len};
	if (event_time_parse(time_s, &rec.time_ms)) {
		snprintf(err, errlen, "bad time %s", time_s);
		r = -EINVAL;
		goto out;
	}
	*host = strdup(h ? h : "");
	rec.host = *host;
	*out = *host ? record_copy(&rec) : NULL;
	r = *out ? 0 : -ENOMEM;
	if (r) {
		free(*host);
		*host = NULL;
		snprintf(err, errlen, "out of memory");
	}
out:
	decode_tmp_free(&t);
	json_object_put(o);
	return r;
}
