/* Spooled v1 JSON lines back into records. See event_json_decode.h. */
#include "event_json_decode.h"
#include "event_json.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

int event_json_types(struct buf *b, const struct vigil_event *ev)
{
	static const char letters[] = {
		[VIGIL_FIELD_NULL] = 'n', [VIGIL_FIELD_INT] = 'i', [VIGIL_FIELD_DOUBLE] = 'd',
		[VIGIL_FIELD_BOOL] = 'b', [VIGIL_FIELD_STRING] = 's', [VIGIL_FIELD_STRINGS] = 'S',
	};

	for (size_t i = 0; i < ev->n_fields; i++) {
		unsigned t = (unsigned)ev->fields[i].type;
		char c = t < sizeof(letters) ? letters[t] : 'n';

		if (!event_field_encoded(ev, i))
			continue; /* not in the JSON either */
		if (buf_append(b, &c, 1) != 0)
			return -ENOMEM;
	}
	return 0;
}

/* Exactly the shape the encoder writes, "YYYY-MM-DDTHH:MM:SS.mmmZ": sscanf
 * alone took signs and out-of-range fields (a month of -2), which made times
 * the encoder could not write back (found by fuzzing). */
static bool time_shape_ok(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	for (size_t i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
			return false;
	return s[sizeof(shape) - 1] == '\0';
}

int event_time_parse(const char *s, int64_t *ms)
{
	struct tm tm = {0};
	int msec = 0;

	if (!s || !time_shape_ok(s) ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &msec) != 7 ||
	    tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ms = (int64_t)timegm(&tm) * 1000 + msec;
	/* 23:59:60 is the next minute: at the end of 9999, a year the encoder
	 * cannot write (found by fuzzing) */
	char again[EVENT_TIME_LEN];
	return event_time_rfc3339(*ms, again, sizeof(again)) == 0 ? 0 : -EINVAL;
}

/* Event ids are 32 lowercase hex digits; anything else cannot be written back
 * the same (found by fuzzing: invalid UTF-8 grew when re-encoded). */
static bool event_id_ok(const char *id)
{
	if (!id || strlen(id) != 32)
		return false;
	for (const char *p = id; *p; p++)
		if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
			return false;
	return true;
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
		size_t n;
		struct vigil_bytes *l;

		if (jt != json_type_array)
			return -EINVAL;
		n = json_object_array_length(v);
		l = calloc(n ? n : 1, sizeof(*l));
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
	bool *is_env; /* per member: the envelope's */
	struct vigil_field *fields;
	struct vigil_bytes **lists;
	size_t n;
};

/* The first occurrence of each envelope key is the envelope's (the encoder
 * writes the envelope first): into env, and marked in t->is_env. Every other
 * member is a field: a record spooled before keys were made unique (a
 * detector's `pid` after the envelope's) still decodes. */
static int split_envelope(struct json_object *members, struct json_object *env,
			  struct decode_tmp *t)
{
	size_t n = json_object_array_length(members) / 2;

	t->is_env = calloc(n ? n : 1, sizeof(*t->is_env));
	if (!t->is_env)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *key = json_object_get_string(json_object_array_get_idx(members, 2 * i));
		struct json_object *val = json_object_array_get_idx(members, 2 * i + 1);

		if (!event_is_envelope_key(key) || json_object_object_get_ex(env, key, NULL))
			continue;
		if (json_object_object_add(env, key, json_object_get(val)) != 0)
			return -ENOMEM;
		t->is_env[i] = true;
	}
	return 0;
}

/* The members that are not the envelope's, in order, each with its letter. */
static int decode_fields(struct json_object *members, const char *types, struct decode_tmp *t,
			 char *err, size_t errlen)
{
	size_t n = json_object_array_length(members) / 2, ti = 0;

	t->fields = calloc(n ? n : 1, sizeof(*t->fields));
	t->lists = calloc(n ? n : 1, sizeof(*t->lists));
	if (!t->fields || !t->lists)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *key = json_object_get_string(json_object_array_get_idx(members, 2 * i));
		int r;

		if (t->is_env[i])
			continue;
		if (!types[ti]) {
			snprintf(err, errlen, "field %s has no type", key);
			return -EINVAL;
		}
		r = decode_field(&t->fields[t->n], key,
				 json_object_array_get_idx(members, 2 * i + 1), types[ti++],
				 &t->lists[t->n]);
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
	free(t->is_env);
}

static size_t skip_ws(const char *s, size_t len, size_t pos)
{
	while (pos < len && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r'))
		pos++;
	return pos;
}

/* One JSON value at *pos (NULL is also JSON null: *ok tells). */
static struct json_object *parse_value(struct json_tokener *tok, const char *s, size_t len,
				       size_t *pos, bool *ok)
{
	struct json_object *o;

	json_tokener_reset(tok);
	o = json_tokener_parse_ex(tok, s + *pos, (int)(len - *pos));
	*ok = json_tokener_get_error(tok) == json_tokener_success;
	if (!*ok) {
		json_object_put(o);
		return NULL;
	}
	*pos += (size_t)tok->char_offset;
	return o;
}

/* One "key": value member into arr (key, value); *pos after it. */
static bool parse_member(struct json_tokener *tok, const char *s, size_t len, size_t *pos,
			 struct json_object *arr)
{
	bool ok;
	struct json_object *k = parse_value(tok, s, len, pos, &ok), *v;

	if (!ok || !json_object_is_type(k, json_type_string) || json_object_array_add(arr, k)) {
		json_object_put(k);
		return false;
	}
	*pos = skip_ws(s, len, *pos);
	if (*pos >= len || s[*pos] != ':')
		return false;
	(*pos)++;
	v = parse_value(tok, s, len, pos, &ok);
	if (!ok || json_object_array_add(arr, v)) {
		json_object_put(v);
		return false;
	}
	return true;
}

/* The members of the object json[0..len), in the order written and with
 * repeated keys kept (json-c's objects keep one value per key): an array
 * key, value, key, value... NULL unless the text is exactly one object. */
static struct json_object *parse_members(const char *s, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *arr = json_object_new_array();
	size_t pos = skip_ws(s, len, 0);
	bool done = false;

	if (!tok || !arr || pos >= len || s[pos] != '{')
		goto out;
	pos = skip_ws(s, len, pos + 1);
	if (pos < len && s[pos] == '}') {
		pos++;
		done = true;
	}
	while (!done && parse_member(tok, s, len, &pos, arr)) {
		pos = skip_ws(s, len, pos);
		if (pos >= len || (s[pos] != ',' && s[pos] != '}'))
			break;
		done = s[pos++] == '}';
		pos = done ? pos : skip_ws(s, len, pos);
	}
out:
	if (tok)
		json_tokener_free(tok);
	if (!done || pos != len) {
		json_object_put(arr);
		return NULL;
	}
	return arr;
}

int event_json_decode(const char *json, size_t len, const char *types,
		      struct stored_record **out, char **host, char *err, size_t errlen)
{
	struct json_object *m = len < (1u << 30) ? parse_members(json, len) : NULL;
	struct json_object *o = m ? json_object_new_object() : NULL;
	struct decode_tmp t = {0};
	const char *id, *kind, *time_s, *h;
	int r = -EINVAL;

	*out = NULL;
	*host = NULL;
	if (!o) {
		json_object_put(m);
		snprintf(err, errlen, m ? "out of memory" : "not a JSON object");
		return m ? -ENOMEM : -EINVAL;
	}
	if (split_envelope(m, o, &t) != 0) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	id = get_str(o, "id");
	kind = get_str(o, "kind");
	time_s = get_str(o, "time");
	h = get_str(o, "host");
	if (get_int(o, "v", 0) != 1 || !event_id_ok(id) || !kind || !time_s) {
		snprintf(err, errlen, "not a v1 event (v, id, kind, time)");
		goto out;
	}
	/* json-c takes invalid UTF-8; replaying it would send invalid JSON. */
	if (event_json_validate(json, len) != 0) {
		snprintf(err, errlen, "not valid JSON (invalid UTF-8)");
		goto out;
	}
	r = decode_fields(m, types, &t, err, errlen);
	if (r)
		goto out;
	struct vigil_event ev = {.kind = kind, .message = get_str(o, "message"),
				 .fields = t.fields, .n_fields = t.n};
	/* out of range is unknown (0), as the encoder would write it back: a
	 * pid of 2^64-1 cut to -1, a run of -5 wrapped (found by fuzzing) */
	int64_t run = get_int(o, "run", 0), pid = get_int(o, "pid", 0);
	struct vigil_record rec = {.id = id, .monitor = get_str(o, "monitor"),
				   .run = run > 0 ? (uint64_t)run : 0,
				   .detector = get_str(o, "detector"),
				   .pid = pid > 0 && pid <= INT_MAX ? (pid_t)pid : 0, .event = &ev,
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
	json_object_put(m);
	return r;
}
