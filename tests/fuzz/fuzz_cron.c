/* libFuzzer target: cron expressions for `schedule =` (core/base/cron.h),
 * parsed, then asked for the next times from a few starting points given by
 * the input. Properties, beyond no crash / sanitizer report: a refusal says
 * why; a next time is later than its start and matches every field (checked
 * here against the parsed bits, in UTC); asking again from just before it
 * gives it back (nothing skipped in between that the search would return). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cron.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("TZ", "UTC", 1);
	tzset();
	return 0;
}

static bool matches(const struct cron *c, time_t t)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		return false;
	bool dom = c->dom >> tm.tm_mday & 1, dow = c->dow >> tm.tm_wday & 1;
	bool day = (!c->dom_any && !c->dow_any) ? dom || dow : dom && dow;
	return day && (c->month >> (tm.tm_mon + 1) & 1) && (c->hour >> tm.tm_hour & 1) &&
	       (c->min >> tm.tm_min & 1) && (c->sec >> tm.tm_sec & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512], err[256] = "";
	struct cron c;
	uint32_t seed = 0;
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;

	memcpy(text, data, n);
	text[n] = '\0';
	for (size_t i = 0; i < size; i++)
		seed = seed * 31 + data[i];
	if (cron_parse(&c, text, err, sizeof(err)) != 0) {
		if (!err[0])
			abort(); /* refused without a reason */
		return 0;
	}
	for (int k = 0; k < 3; k++) {
		/* 2000-01-01 onwards, some 30 years of starting points */
		time_t from = 946684800 + (time_t)(seed % 946080000u), next;

		seed = seed * 1103515245u + 12345u;
		next = cron_next(&c, from);
		if (next == -1)
			continue;
		if (next <= from || !matches(&c, next) || cron_next(&c, next - 1) != next)
			abort();
	}
	return 0;
}
