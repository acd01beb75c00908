/* The `success` expression: syntax, errors with their column, precedence and
 * Kleene three-valued evaluation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/success_expr.h"

#define F TRI_FALSE
#define T TRI_TRUE
#define U TRI_UNKNOWN

static enum tri eval(const char *text, enum tri exit, enum tri file, enum tri success,
		     enum tri failure)
{
	struct success_facts f = { exit, file, success, failure };
	struct success_expr *e = NULL;
	char err[256] = "";
	enum tri r;

	if (success_expr_parse(text, &e, err, sizeof(err)) != 0)
		fail_msg("\"%s\" did not parse: %s", text, err);
	r = success_expr_eval(e, &f);
	success_expr_free(e);
	return r;
}

static void expect_error(const char *text, const char *want)
{
	struct success_expr *e = (struct success_expr *)&e;
	char err[256] = "";

	assert_int_equal(success_expr_parse(text, &e, err, sizeof(err)), -EINVAL);
	assert_null(e);
	assert_string_equal(err, want);
}

static void test_identifiers(void **state)
{
	assert_int_equal(eval("exit", T, F, F, F), T);
	assert_int_equal(eval("exit", U, T, T, T), U);
	assert_int_equal(eval("file", F, T, F, F), T);
	assert_int_equal(eval("success", F, F, T, F), T);
	assert_int_equal(eval("failure", F, F, F, T), T);
	assert_int_equal(eval("failure", T, T, T, F), F);
}

static void test_and_or_not(void **state)
{
	assert_int_equal(eval("exit and file", T, T, F, F), T);
	assert_int_equal(eval("exit and file", T, F, F, F), F);
	assert_int_equal(eval("exit or file", F, T, F, F), T);
	assert_int_equal(eval("exit or file", F, F, F, F), F);
	assert_int_equal(eval("not failure", F, F, F, F), T);
	assert_int_equal(eval("not failure", F, F, F, T), F);
	assert_int_equal(eval("not not exit", T, F, F, F), T);
	assert_int_equal(eval("exit and file and not failure", T, T, F, F), T);
	assert_int_equal(eval("exit and file and not failure", T, T, F, T), F);
}

static void test_three_valued(void **state)
{
	/* false and unknown = false; true and unknown = unknown */
	assert_int_equal(eval("exit and file", U, F, F, F), F);
	assert_int_equal(eval("file and exit", U, F, F, F), F);
	assert_int_equal(eval("exit and file", U, T, F, F), U);
	/* true or unknown = true; false or unknown = unknown */
	assert_int_equal(eval("exit or success", U, F, T, F), T);
	assert_int_equal(eval("success or exit", U, F, T, F), T);
	assert_int_equal(eval("exit or success", U, F, F, F), U);
	/* not unknown = unknown */
	assert_int_equal(eval("not exit", U, F, F, F), U);
	assert_int_equal(eval("exit and not failure", U, T, T, T), F);
	assert_int_equal(eval("exit and not failure", U, T, T, F), U);
	assert_int_equal(eval("(exit or file) and not failure", U, T, F, F), T);
}

static void test_precedence(void **state)
{
	/* and binds tighter than or: exit or (file and success) */
	assert_int_equal(eval("exit or file and success", T, F, F, F), T);
	/* ... where (exit or file) and success would be false */
	assert_int_equal(eval("(exit or file) and success", T, F, F, F), F);
	/* not binds tighter than and: (not exit) and file */
	assert_int_equal(eval("not exit and file", F, F, F, F), F);
	assert_int_equal(eval("not (exit and file)", F, F, F, F), T);
	/* not binds tighter than or: (not exit) or file */
	assert_int_equal(eval("not exit or file", T, T, F, F), T);
	assert_int_equal(eval("not (exit or file)", T, T, F, F), F);
	/* and/or are left-associative and whitespace does not matter */
	assert_int_equal(eval("  exit\tand(file)or  failure ", F, F, F, T), T);
	assert_int_equal(eval("((((exit))))", T, F, F, F), T);
}

static void test_errors(void **state)
{
	expect_error("exit xor file",
		     "unexpected \"xor\" at column 6 (expected \"and\" or \"or\")");
	expect_error("exit and", "unexpected end of expression at column 9 (expected exit, "
				 "file, success, failure, not or \"(\")");
	expect_error("", "unexpected end of expression at column 1 (expected exit, file, "
			 "success, failure, not or \"(\")");
	expect_error("(exit and file",
		     "unexpected end of expression at column 15 (expected \")\")");
	expect_error("exit)", "unexpected \")\" at column 5 (expected \"and\" or \"or\")");
	expect_error("exit && file", "unexpected \"&&\" at column 6 (expected \"and\" or \"or\")");
	/* keywords are lowercase */
	expect_error("EXIT", "unexpected \"EXIT\" at column 1 (expected exit, file, success, "
			     "failure, not or \"(\")");
	expect_error("exit AND file",
		     "unexpected \"AND\" at column 6 (expected \"and\" or \"or\")");
	expect_error("exit and exited", "unexpected \"exited\" at column 10 (expected exit, "
					"file, success, failure, not or \"(\")");
	expect_error("not", "unexpected end of expression at column 4 (expected exit, file, "
			    "success, failure, not or \"(\")");
	expect_error("()", "unexpected \")\" at column 2 (expected exit, file, success, "
			   "failure, not or \"(\")");
}

static void test_depth_limit(void **state)
{
	char deep[1024], err[256];
	struct success_expr *e = NULL;
	size_t n = 0;

	for (int i = 0; i < 200; i++)
		deep[n++] = '(';
	memcpy(deep + n, "exit", 4);
	n += 4;
	for (int i = 0; i < 200; i++)
		deep[n++] = ')';
	deep[n] = '\0';
	assert_int_equal(success_expr_parse(deep, &e, err, sizeof(err)), -EINVAL);
	assert_null(e);
	assert_non_null(strstr(err, "nested too deeply"));
	/* a long flat chain is not nesting */
	n = 0;
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "%sfile", i ? " or " : "");
	assert_int_equal(eval(deep, F, T, F, F), T);
	assert_int_equal(eval(deep, F, F, F, F), F);
}

/* "exit OP exit OP ..." with n terms, malloc'd. */
static char *chain(size_t n, const char *op)
{
	size_t len = n * (strlen(op) + 6) + 1, w = 0;
	char *s = malloc(len);

	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		w += (size_t)snprintf(s + w, len - w, "%s%s", i ? op : "", "exit");
	return s;
}

/* Issue 10, item 3: 500,000 terms passed the parser and overflowed the stack of
 * the recursive evaluator. Now refused at parse time, with the column. */
static void test_long_chain_refused(void **state)
{
	char *text = chain(500000, " and ");
	struct success_expr *e = NULL;
	char err[256];

	assert_int_equal(success_expr_parse(text, &e, err, sizeof(err)), -EINVAL);
	assert_null(e);
	assert_non_null(strstr(err, "expression too long at column "));
	assert_non_null(strstr(err, "(at most 1000 terms)"));
	free(text);
}

/* At the limit, chains of either kind and chains nested in parentheses
 * evaluate with Kleene's rules, operand by operand. */
static void test_long_chain_at_limit(void **state)
{
	char *and_chain = chain(1000, " and "), *or_chain = chain(1000, " or ");
	char mixed[256];

	assert_int_equal(eval(and_chain, T, F, F, F), T);
	assert_int_equal(eval(and_chain, U, F, F, F), U);
	assert_int_equal(eval(or_chain, F, F, F, F), F);
	assert_int_equal(eval(or_chain, U, F, F, F), U);
	free(and_chain);
	free(or_chain);
	snprintf(mixed, sizeof(mixed), "(file or success) and not failure and (exit or file)");
	assert_int_equal(eval(mixed, U, T, F, F), T);
	assert_int_equal(eval(mixed, U, F, T, F), U);
	assert_int_equal(eval(mixed, T, F, T, T), F);
	assert_int_equal(eval("exit and file or success and not failure", F, F, T, F), T);
	assert_int_equal(eval("exit and file or success and not failure", T, U, F, F), U);
}

static void test_free_null(void **state)
{
	success_expr_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identifiers),
		cmocka_unit_test(test_and_or_not),
		cmocka_unit_test(test_three_valued),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_long_chain_refused),
		cmocka_unit_test(test_long_chain_at_limit),
		cmocka_unit_test(test_free_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
