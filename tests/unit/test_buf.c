/* Unit tests for core/buf.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"

static void test_empty(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b);
	assert_null(b.p);
	assert_string_equal(buf_cstr(&b), "");
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_null(buf_steal(&b));
	buf_free(&b);
}

static void test_append(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_append(&b, "ab\0c", 4), 0);
	assert_non_null(b.p);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.p, "ab\0c", 5); /* NUL after the data */
	assert_int_equal(buf_puts(&b, "de"), 0);
	assert_int_equal(buf_putc(&b, 'f'), 0);
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.p, "ab\0cdef", 8);
	assert_int_equal(buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 7);
	buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);
	assert_null(b.p);
}

static void test_printf_grows(void **state)
{
	struct buf b = BUF_INIT;
	char big[5000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_printf(&b, "%d-%s", 42, "a"), 0);
	assert_string_equal(buf_cstr(&b), "42-a");
	/* Longer than the first allocation: the second vsnprintf pass. */
	assert_int_equal(buf_printf(&b, "[%s]", big), 0);
	assert_int_equal(b.len, 4 + 2 + strlen(big));
	assert_int_equal(b.p[4], '[');
	assert_int_equal(b.p[b.len - 1], ']');
	assert_int_equal(b.p[b.len], '\0');
	assert_true(b.cap > b.len);
	assert_int_equal(buf_printf(&b, "%s", ""), 0);
	assert_int_equal(b.len, 4 + 2 + strlen(big));
	buf_free(&b);
}

static void test_reserve(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_reserve(&b, 1000), 0);
	assert_true(b.cap >= 1001);
	assert_string_equal(buf_cstr(&b), "");
	/* Too large to ever fit: refused, the buffer untouched. */
	assert_int_equal(buf_reserve(&b, SIZE_MAX), -ENOMEM);
	assert_int_equal(b.len, 0);
	assert_int_equal(buf_puts(&b, "ok"), 0);
	assert_string_equal(buf_cstr(&b), "ok");
	buf_free(&b);
}

static void test_steal(void **state)
{
	struct buf b = BUF_INIT;
	char *s;

	(void)state;
	assert_int_equal(buf_puts(&b, "mine"), 0);
	s = buf_steal(&b);
	assert_string_equal(s, "mine");
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_printf_grows),
		cmocka_unit_test(test_reserve),
		cmocka_unit_test(test_steal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
