/* The string index (core/base/str_index.c): what is put is found, a key put
 * twice keeps its first value, an index never made finds nothing, and ten
 * thousand keys (the agent's monitors) all resolve. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/str_index.h"

#define N 10000

static void test_put_get(void **state)
{
	struct str_index ix;
	int a = 1, b = 2;

	(void)state;
	assert_int_equal(str_index_init(&ix, 4), 0);
	assert_int_equal(str_index_put(&ix, "backup", &a), 0);
	assert_int_equal(str_index_put(&ix, "export", &b), 0);
	assert_ptr_equal(str_index_get(&ix, "backup"), &a);
	assert_ptr_equal(str_index_get(&ix, "export"), &b);
	assert_null(str_index_get(&ix, "backu"));
	assert_int_equal(str_index_put(&ix, "backup", &b), -EEXIST);
	assert_ptr_equal(str_index_get(&ix, "backup"), &a);
	str_index_free(&ix);
	assert_null(str_index_get(&ix, "backup"));
	str_index_free(&ix); /* twice: harmless */
}

static void test_never_made(void **state)
{
	struct str_index ix = {0};
	int a = 1;

	(void)state;
	assert_null(str_index_get(&ix, "x"));
	assert_int_equal(str_index_put(&ix, "x", &a), -ENOMEM);
	str_index_free(&ix);
}

static void test_many(void **state)
{
	static char names[N][16];
	struct str_index ix;

	(void)state;
	assert_int_equal(str_index_init(&ix, N), 0);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "job-%d", i);
		assert_int_equal(str_index_put(&ix, names[i], names[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		char key[16];

		snprintf(key, sizeof(key), "job-%d", i);
		assert_ptr_equal(str_index_get(&ix, key), names[i]);
	}
	assert_null(str_index_get(&ix, "job-10000"));
	str_index_free(&ix);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get),
		cmocka_unit_test(test_never_made),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
