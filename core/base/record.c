/* Owned copies of records, for queues that outlive the emitting call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

const struct vigil_field *event_field(const struct vigil_event *ev, const char *name)
{
	for (size_t i = 0; i < ev->n_fields; i++)
		if (strcmp(ev->fields[i].name, name) == 0)
			return &ev->fields[i];
	return NULL;
}

static int copy_bytes(struct vigil_bytes *dst, const struct vigil_bytes *src)
{
	char *p = malloc(src->len + 1);

	if (!p)
		return -1;
	if (src->len)
		memcpy(p, src->ptr, src->len);
	p[src->len] = '\0';
	dst->ptr = p;
	dst->len = src->len;
	return 0;
}

/* On failure dst holds only pointers of its own (or NULL), so free_field is safe. */
static int copy_field(struct vigil_field *dst, const struct vigil_field *src)
{
	*dst = *src;
	if (src->type == VIGIL_FIELD_STRING || src->type == VIGIL_FIELD_STRINGS)
		memset(&dst->u, 0, sizeof(dst->u));
	dst->name = strdup(src->name);
	if (!dst->name)
		return -1;
	if (src->type == VIGIL_FIELD_STRING)
		return copy_bytes(&dst->u.s, &src->u.s);
	if (src->type == VIGIL_FIELD_STRINGS) {
		struct vigil_bytes *v = calloc(src->u.list.n ? src->u.list.n : 1, sizeof(*v));

		if (!v)
			return -1;
		dst->u.list.v = v;
		dst->u.list.n = src->u.list.n;
		for (size_t i = 0; i < src->u.list.n; i++)
			if (copy_bytes(&v[i], &src->u.list.v[i]))
				return -1;
	}
	return 0;
}

static void free_field(struct vigil_field *f)
{
	free((char *)f->name);
	if (f->type == VIGIL_FIELD_STRING)
		free((char *)f->u.s.ptr);
	if (f->type == VIGIL_FIELD_STRINGS && f->u.list.v) {
		for (size_t i = 0; i < f->u.list.n; i++)
			free((char *)f->u.list.v[i].ptr);
		free((void *)f->u.list.v);
	}
}

struct stored_record *record_copy(const struct vigil_record *rec)
{
	struct stored_record *r = calloc(1, sizeof(*r));
	const struct vigil_event *ev = rec->event;
	int bad = 0;

	if (!r)
		return NULL;
	snprintf(r->id, sizeof(r->id), "%s", rec->id);
	r->monitor = strdup(rec->monitor ? rec->monitor : "");
	r->detector = strdup(rec->detector ? rec->detector : "core");
	r->host = rec->host ? strdup(rec->host) : NULL;
	r->run = rec->run;
	r->time_ms = rec->time_ms;
	r->pid = rec->pid;
	r->json = malloc(rec->json_len + 1);
	r->fields = calloc(ev->n_fields ? ev->n_fields : 1, sizeof(*r->fields));
	r->ev.kind = strdup(ev->kind);
	r->ev.message = ev->message ? strdup(ev->message) : NULL;
	bad = !r->monitor || !r->detector || (rec->host && !r->host) || !r->json ||
	      !r->fields || !r->ev.kind ||
	      (ev->message && !r->ev.message);
	for (size_t i = 0; !bad && i < ev->n_fields; i++) {
		bad = copy_field(&r->fields[i], &ev->fields[i]);
		r->ev.n_fields = i + 1;
	}
	if (bad) {
		record_free(r);
		return NULL;
	}
	memcpy(r->json, rec->json, rec->json_len);
	r->json[rec->json_len] = '\0';
	r->json_len = rec->json_len;
	r->ev.fields = r->fields;
	r->rec = (struct vigil_record){
		.id = r->id, .monitor = r->monitor, .run = r->run, .detector = r->detector,
		.time_ms = r->time_ms, .host = r->host, .pid = r->pid, .event = &r->ev,
		.json = r->json, .json_len = r->json_len,
	};
	return r;
}

void record_free(struct stored_record *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->ev.n_fields; i++)
		free_field(&r->fields[i]);
	free(r->fields);
	free((char *)r->ev.kind);
	free((char *)r->ev.message);
	free(r->json);
	free(r->monitor);
	free(r->detector);
	free(r->host);
	free(r);
}
