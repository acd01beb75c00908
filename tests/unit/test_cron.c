/* Cron expressions (core/base/cron.c): the syntax cron users write, its
 * errors naming the field, and the next matching time, in UTC and across a
 * daylight-saving change (Berlin rules as a POSIX TZ), checked against times worked out
 * by hand. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/cron.h"

static void set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* "YYYY-MM-DD HH:MM:SS" in the current TZ -> seconds since the epoch. */
static time_t at(const char *text)
{
	struct tm tm = {0};

	assert_non_null(strptime(text, "%Y-%m-%d %H:%M:%S", &tm));
	tm.tm_isdst = -1;
	return mktime(&tm);
}

static const char *show(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t < 0)
		return "none";
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

/* The next time after `from` for `expr` is `want` ("none": no time). */
static void expect_next(const char *expr, const char *from, const char *want)
{
	struct cron c;
	char err[256] = "", got[32];

	if (cron_parse(&c, expr, err, sizeof(err)) != 0)
		fail_msg("\"%s\" did not parse: %s", expr, err);
	const char *g = show(cron_next(&c, at(from)), got, sizeof(got));
	if (strcmp(g, want) != 0)
		fail_msg("\"%s\" after %s: %s, expected %s", expr, from, g, want);
}

static void expect_error(const char *expr, const char *want)
{
	struct cron c;
	char err[256] = "";

	assert_int_equal(cron_parse(&c, expr, err, sizeof(err)), -EINVAL);
	if (!strstr(err, want))
		fail_msg("\"%s\": error \"%s\" does not say \"%s\"", expr, err, want);
}

static void test_fields(void **state)
{
	(void)state;
	set_tz("UTC");
	expect_next("* * * * *", "2026-12-01 10:15:30", "2026-12-01 10:16:00");
	expect_next("30 2 * * *", "2026-12-01 10:15:30", "2026-12-02 02:30:00");
	expect_next("30 2 * * *", "2026-12-02 02:29:59", "2026-12-02 02:30:00");
	expect_next("30 2 * * *", "2026-12-02 02:30:00", "2026-12-03 02:30:00");
	expect_next("*/15 * * * *", "2026-12-01 10:15:00", "2026-12-01 10:30:00");
	expect_next("0 9-17/4 * * *", "2026-12-01 10:00:00", "2026-12-01 13:00:00");
	expect_next("0 9-17/4 * * *", "2026-12-01 17:00:00", "2026-12-02 09:00:00");
	expect_next("5,35 * * * *", "2026-12-01 10:06:00", "2026-12-01 10:35:00");
	expect_next("0 0 1 * *", "2026-12-01 10:00:00", "2027-01-01 00:00:00");
	expect_next("0 0 29 2 *", "2026-12-01 00:00:00", "2028-02-29 00:00:00");
	expect_next("0 0 30 2 *", "2026-12-01 00:00:00", "none");
	expect_next("10/20 * * * *", "2026-12-01 10:00:00", "2026-12-01 10:10:00");
	expect_next("10/20 * * * *", "2026-12-01 10:31:00", "2026-12-01 10:50:00");
}

static void test_names_and_days(void **state)
{
	(void)state;
	set_tz("UTC");
	/* 2026-12-01 is a Tuesday */
	expect_next("0 8 * * mon-fri", "2026-12-04 09:00:00", "2026-12-07 08:00:00");
	expect_next("0 8 * * 0", "2026-12-01 00:00:00", "2026-12-06 08:00:00");
	expect_next("0 8 * * 7", "2026-12-01 00:00:00", "2026-12-06 08:00:00");
	expect_next("0 8 * * SUN", "2026-12-01 00:00:00", "2026-12-06 08:00:00");
	expect_next("0 0 1 jan *", "2026-12-01 00:00:00", "2027-01-01 00:00:00");
	/* both day fields restricted: either matches (the 15th or a Friday) */
	expect_next("0 0 15 * fri", "2026-12-05 00:00:00", "2026-12-11 00:00:00");
	expect_next("0 0 15 * fri", "2026-12-12 00:00:00", "2026-12-15 00:00:00");
	/* one restricted: both must (Fridays in the month, every day of it) */
	expect_next("0 0 * * fri", "2026-12-05 00:00:00", "2026-12-11 00:00:00");
}

static void test_seconds_and_macros(void **state)
{
	(void)state;
	set_tz("UTC");
	expect_next("*/2 * * * * *", "2026-12-01 10:15:31", "2026-12-01 10:15:32");
	expect_next("*/2 * * * * *", "2026-12-01 10:15:32", "2026-12-01 10:15:34");
	expect_next("30 0 12 * * *", "2026-12-01 12:00:31", "2026-12-02 12:00:30");
	expect_next("@daily", "2026-12-01 10:00:00", "2026-12-02 00:00:00");
	expect_next("@hourly", "2026-12-01 10:00:00", "2026-12-01 11:00:00");
	expect_next("@weekly", "2026-12-01 10:00:00", "2026-12-06 00:00:00");
	expect_next("@monthly", "2026-12-01 10:00:00", "2027-01-01 00:00:00");
	expect_next("@yearly", "2026-12-01 10:00:00", "2027-01-01 00:00:00");
	expect_next("  @DAILY  ", "2026-12-01 10:00:00", "2026-12-02 00:00:00");
}

static void test_daylight_saving(void **state)
{
	(void)state;
	set_tz("CET-1CEST,M3.5.0,M10.5.0/3"); /* Berlin, without tzdata */
	/* 2027-03-28 02:00 does not exist (clocks jump to 03:00) */
	expect_next("30 2 * * *", "2027-03-27 03:00:00", "2027-03-29 02:30:00");
	expect_next("0 * * * *", "2027-03-28 01:30:00", "2027-03-28 03:00:00");
	/* 2027-10-31 02:00-03:00 happens twice: every hour still comes, in order */
	struct cron c;
	char err[128];
	assert_int_equal(cron_parse(&c, "0 * * * *", err, sizeof(err)), 0);
	time_t t = at("2027-10-31 00:30:00"), prev = t;
	for (int i = 0; i < 6; i++) {
		t = cron_next(&c, t);
		assert_true(t > prev);
		assert_int_equal(t % 3600, 0);
		prev = t;
	}
	set_tz("UTC");
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("", "use 5 fields");
	expect_error("* * * *", "use 5 fields");
	expect_error("* * * * * * *", "use 5 fields");
	expect_error("60 * * * *", "minute: \"60\"");
	expect_error("* 24 * * *", "hour: \"24\"");
	expect_error("* * 0 * *", "day of month: \"0\"");
	expect_error("* * * 13 *", "month: \"13\"");
	expect_error("* * * * 8", "day of week: \"8\"");
	expect_error("* * * foo *", "month: \"foo\"");
	expect_error("5-1 * * * *", "minute: \"5-1\"");
	expect_error("*/0 * * * *", "minute: \"*/0\"");
	expect_error("1,,2 * * * *", "minute");
	expect_error("1, * * * *", "minute");
	expect_error("@often", "not a cron macro");
	expect_error("@daily 5", "not a cron macro");
	expect_error("99999999999999999999 * * * *", "minute");
	expect_error("61 * * * * *", "second: \"61\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_names_and_days),
		cmocka_unit_test(test_seconds_and_macros),
		cmocka_unit_test(test_daylight_saving),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
