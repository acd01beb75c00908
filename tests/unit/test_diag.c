/* Unit tests for core/diag.c: the "FILE:LINE: [section] key: message" format
 * with every part present or absent, counting, and freeing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/diag.h"

static void test_all_parts(void **state)
{
	struct diag d = {0};

	(void)state;
	diag_add(&d, "conf.d/x.ini", 12, "log app", "path", "not found: %s", "/a b");
	assert_int_equal(d.n, 1);
	assert_int_equal(d.errors, 1);
	assert_string_equal(d.lines[0], "conf.d/x.ini:12: [log app] path: not found: /a b");
	diag_free(&d);
}

static void test_parts_left_out(void **state)
{
	struct diag d = {0};

	(void)state;
	diag_add(&d, "x.ini", 0, "monitor", "timeout", "bad");  /* line 0: no line */
	diag_add(&d, "x.ini", 3, NULL, NULL, "syntax");        /* file:line only */
	diag_add(&d, "x.ini", 0, NULL, NULL, "cannot read");   /* file only */
	diag_add(&d, NULL, 0, "pid", NULL, "m%d", 1);          /* section only */
	diag_add(&d, NULL, 0, NULL, "notify", "spec");         /* key only */
	diag_add(&d, NULL, 0, NULL, NULL, "%s", "bare");       /* nothing but text */
	diag_add(&d, NULL, 7, NULL, NULL, "no file");          /* a line needs a file */
	diag_add(&d, "x.ini", 4, "monitor", NULL, "missing");
	assert_int_equal(d.n, 8);
	assert_int_equal(d.errors, 8);
	assert_string_equal(d.lines[0], "x.ini: [monitor] timeout: bad");
	assert_string_equal(d.lines[1], "x.ini:3: syntax");
	assert_string_equal(d.lines[2], "x.ini: cannot read");
	assert_string_equal(d.lines[3], "[pid]: m1");
	assert_string_equal(d.lines[4], "notify: spec");
	assert_string_equal(d.lines[5], "bare");
	assert_string_equal(d.lines[6], "no file");
	assert_string_equal(d.lines[7], "x.ini:4: [monitor]: missing");
	diag_free(&d);
	assert_null(d.lines);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.errors, 0);
}

/* A message far longer than any fixed buffer survives whole. */
static void test_long_message(void **state)
{
	struct diag d = {0};
	size_t len = 10000;
	char *big = malloc(len + 1);

	(void)state;
	assert_non_null(big);
	memset(big, 'q', len);
	big[len] = '\0';
	diag_add(&d, "f", 1, "s", "k", "%s!", big);
	assert_int_equal(d.n, 1);
	assert_int_equal(strlen(d.lines[0]), strlen("f:1: [s] k: ") + len + 1);
	assert_memory_equal(d.lines[0] + strlen("f:1: [s] k: "), big, len);
	assert_string_equal(d.lines[0] + strlen(d.lines[0]) - 1, "!");
	free(big);
	diag_free(&d);
}

/* A freed diag can be used again. */
static void test_reuse_after_free(void **state)
{
	struct diag d = {0};

	(void)state;
	diag_add(&d, "a", 1, NULL, NULL, "one");
	diag_free(&d);
	diag_free(&d); /* twice is harmless */
	diag_add(&d, "b", 2, NULL, NULL, "two");
	assert_int_equal(d.n, 1);
	assert_int_equal(d.errors, 1);
	assert_string_equal(d.lines[0], "b:2: two");
	diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_parts),
		cmocka_unit_test(test_parts_left_out),
		cmocka_unit_test(test_long_message),
		cmocka_unit_test(test_reuse_after_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
