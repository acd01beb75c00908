/* Unit tests for core/record.c: record_copy makes an owned deep copy of a
 * record, its event and every field type, which outlives the source. The
 * source is built on the heap, overwritten and freed before the copy is read,
 * so a pointer left borrowed shows up as a wrong value (or under ASan as a
 * use after free). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/engine.h"

/* Every piece of a source record, heap-allocated so that it can be freed. */
struct src {
	char *id, *monitor, *detector, *host, *json, *kind, *message;
	char *names[6];
	char *s;             /* STRING field bytes (embedded NUL, not terminated) */
	size_t s_len;
	struct vigil_bytes *list;
	char *items[3];
	struct vigil_field *fields;
	struct vigil_event *ev;
	struct vigil_record *rec;
};

static char *dup_or_die(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

static void src_build(struct src *s)
{
	static const char bin[] = {'a', '\0', 'b', '\n', (char)0xff};
	const char *names[6] = {"nothing", "exit_code", "value", "core_dumped", "line",
				"log_tail"};

	memset(s, 0, sizeof(*s));
	s->id = dup_or_die("0123456789abcdef0123456789abcdef");
	s->monitor = dup_or_die("export");
	s->detector = dup_or_die("log app");
	s->host = dup_or_die("box-1");
	s->json = dup_or_die("{\"v\":1,\"kind\":\"finished\"}");
	s->kind = dup_or_die("finished");
	s->message = dup_or_die("failed: exit 3");
	for (int i = 0; i < 6; i++)
		s->names[i] = dup_or_die(names[i]);
	s->s_len = sizeof(bin);
	s->s = malloc(s->s_len);
	assert_non_null(s->s);
	memcpy(s->s, bin, s->s_len);
	s->items[0] = dup_or_die("first line");
	s->items[1] = dup_or_die("");
	s->items[2] = dup_or_die("third\tline");
	s->list = calloc(3, sizeof(*s->list));
	assert_non_null(s->list);
	for (int i = 0; i < 3; i++)
		s->list[i] = (struct vigil_bytes){s->items[i], strlen(s->items[i])};

	s->fields = calloc(6, sizeof(*s->fields));
	assert_non_null(s->fields);
	s->fields[0] = (struct vigil_field){.name = s->names[0], .type = VIGIL_FIELD_NULL};
	s->fields[1] = (struct vigil_field){.name = s->names[1], .type = VIGIL_FIELD_INT,
					    .u.i = -1234567890123LL};
	s->fields[2] = (struct vigil_field){.name = s->names[2], .type = VIGIL_FIELD_DOUBLE,
					    .u.d = 42.5};
	s->fields[3] = (struct vigil_field){.name = s->names[3], .type = VIGIL_FIELD_BOOL,
					    .u.b = 1};
	s->fields[4] = (struct vigil_field){.name = s->names[4], .type = VIGIL_FIELD_STRING,
					    .u.s = {s->s, s->s_len}};
	s->fields[5] = (struct vigil_field){.name = s->names[5], .type = VIGIL_FIELD_STRINGS,
					    .u.list = {s->list, 3}};
	s->ev = calloc(1, sizeof(*s->ev));
	assert_non_null(s->ev);
	*s->ev = (struct vigil_event){.kind = s->kind, .message = s->message,
				      .fields = s->fields, .n_fields = 6};
	s->rec = calloc(1, sizeof(*s->rec));
	assert_non_null(s->rec);
	*s->rec = (struct vigil_record){.id = s->id, .monitor = s->monitor, .run = 7,
					.detector = s->detector, .time_ms = 1700000000123LL,
					.host = s->host, .pid = 4242, .event = s->ev,
					.json = s->json, .json_len = strlen(s->json)};
}

/* Overwrite then free everything, so a borrowed pointer cannot read well. */
static void src_destroy(struct src *s)
{
	char *strs[] = {s->id, s->monitor, s->detector, s->host, s->json, s->kind, s->message,
			s->items[0], s->items[1], s->items[2]};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		memset(strs[i], 'X', strlen(strs[i]));
		free(strs[i]);
	}
	for (int i = 0; i < 6; i++) {
		memset(s->names[i], 'X', strlen(s->names[i]));
		free(s->names[i]);
	}
	memset(s->s, 'X', s->s_len);
	free(s->s);
	memset(s->list, 0, 3 * sizeof(*s->list));
	free(s->list);
	memset(s->fields, 0, 6 * sizeof(*s->fields));
	free(s->fields);
	memset(s->ev, 0, sizeof(*s->ev));
	free(s->ev);
	memset(s->rec, 0, sizeof(*s->rec));
	free(s->rec);
}

static void test_deep_copy_every_type(void **state)
{
	struct src s;
	struct stored_record *r;
	const struct vigil_record *c;
	const struct vigil_field *f;

	(void)state;
	src_build(&s);
	r = record_copy(s.rec);
	assert_non_null(r);
	src_destroy(&s);

	c = &r->rec;
	assert_string_equal(c->id, "0123456789abcdef0123456789abcdef");
	assert_string_equal(c->monitor, "export");
	assert_int_equal(c->run, 7);
	assert_string_equal(c->detector, "log app");
	assert_int_equal(c->time_ms, 1700000000123LL);
	assert_non_null(c->host);
	assert_string_equal(c->host, "box-1");
	assert_int_equal(c->pid, 4242);
	assert_int_equal(c->json_len, strlen("{\"v\":1,\"kind\":\"finished\"}"));
	assert_string_equal(c->json, "{\"v\":1,\"kind\":\"finished\"}");
	assert_ptr_equal(c->event, &r->ev);
	assert_string_equal(c->event->kind, "finished");
	assert_string_equal(c->event->message, "failed: exit 3");
	assert_int_equal(c->event->n_fields, 6);

	f = event_field(c->event, "nothing");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_NULL);
	f = event_field(c->event, "exit_code");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_INT);
	assert_true(f->u.i == -1234567890123LL);
	f = event_field(c->event, "value");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_DOUBLE);
	assert_true(f->u.d == 42.5);
	f = event_field(c->event, "core_dumped");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_BOOL);
	assert_int_equal(f->u.b, 1);
	f = event_field(c->event, "line");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_STRING);
	assert_int_equal(f->u.s.len, 5);
	assert_memory_equal(f->u.s.ptr, "a\0b\n\xff", 5);
	f = event_field(c->event, "log_tail");
	assert_non_null(f);
	assert_int_equal(f->type, VIGIL_FIELD_STRINGS);
	assert_int_equal(f->u.list.n, 3);
	assert_int_equal(f->u.list.v[0].len, strlen("first line"));
	assert_memory_equal(f->u.list.v[0].ptr, "first line", strlen("first line"));
	assert_int_equal(f->u.list.v[1].len, 0);
	assert_non_null(f->u.list.v[1].ptr);
	assert_int_equal(f->u.list.v[2].len, strlen("third\tline"));
	assert_memory_equal(f->u.list.v[2].ptr, "third\tline", strlen("third\tline"));
	assert_null(event_field(c->event, "absent"));
	record_free(r);
}

/* Absent optional parts: no message, no monitor or detector, no fields, an
 * empty STRINGS list, an empty STRING. */
static void test_copy_sparse(void **state)
{
	struct vigil_field fields[2] = {
		{.name = "log_tail", .type = VIGIL_FIELD_STRINGS, .u.list = {NULL, 0}},
		{.name = "reason", .type = VIGIL_FIELD_STRING, .u.s = {"", 0}},
	};
	struct vigil_event ev = {.kind = "exited"};
	struct vigil_record rec = {.id = "abc", .event = &ev, .json = "{}", .json_len = 2};
	struct stored_record *r = record_copy(&rec);

	(void)state;
	assert_non_null(r);
	assert_string_equal(r->rec.monitor, "");
	assert_string_equal(r->rec.detector, "core");
	assert_null(r->rec.event->message);
	assert_int_equal(r->rec.event->n_fields, 0);
	assert_string_equal(r->rec.id, "abc");
	assert_string_equal(r->rec.json, "{}");
	record_free(r);

	ev.fields = fields;
	ev.n_fields = 2;
	r = record_copy(&rec);
	assert_non_null(r);
	assert_int_equal(r->rec.event->n_fields, 2);
	assert_int_equal(r->rec.event->fields[0].type, VIGIL_FIELD_STRINGS);
	assert_int_equal(r->rec.event->fields[0].u.list.n, 0);
	assert_int_equal(r->rec.event->fields[1].u.s.len, 0);
	assert_non_null(r->rec.event->fields[1].u.s.ptr);
	assert_string_equal(r->rec.event->fields[1].u.s.ptr, "");
	record_free(r);
	record_free(NULL); /* harmless */
}

/* A copy of a copy is independent of the first copy. */
static void test_copy_of_copy(void **state)
{
	struct src s;
	struct stored_record *a, *b;

	(void)state;
	src_build(&s);
	a = record_copy(s.rec);
	src_destroy(&s);
	assert_non_null(a);
	b = record_copy(&a->rec);
	assert_non_null(b);
	record_free(a);
	assert_string_equal(b->rec.monitor, "export");
	assert_string_equal(b->rec.host, "box-1");
	assert_int_equal(b->rec.event->fields[5].u.list.n, 3);
	assert_memory_equal(b->rec.event->fields[5].u.list.v[2].ptr, "third\tline", 10);
	record_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deep_copy_every_type),
		cmocka_unit_test(test_copy_sparse),
		cmocka_unit_test(test_copy_of_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
