/* Cron expressions (cron.h): parsing into bit sets, and the next matching
 * time found field by field from the largest (month) down, so that a yearly
 * schedule costs a few dozen steps, not a year of minutes. */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CRON_SEARCH_YEARS 5

struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] is value lo + i, or NULL */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
					  "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat",
					NULL};

static const struct field fields[] = {
	{"second", 0, 59, NULL},     {"minute", 0, 59, NULL}, {"hour", 0, 23, NULL},
	{"day of month", 1, 31, NULL}, {"month", 1, 12, month_names},
	{"day of week", 0, 7, day_names},
};

static const struct {
	const char *name, *expansion;
} macros[] = {
	{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
	{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
	{"@hourly", "0 * * * *"},
};

__attribute__((format(printf, 3, 4))) static int cron_fail(char *err, size_t errlen,
							     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (err && errlen)
		vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A number or a name of f at *p; moves *p past it. -1 when there is none. */
static int read_value(const struct field *f, const char **p)
{
	if (isdigit((unsigned char)**p)) {
		long v = 0;

		while (isdigit((unsigned char)**p) && v <= 1000)
			v = v * 10 + (*(*p)++ - '0');
		return v >= f->lo && v <= f->hi ? (int)v : -1;
	}
	for (int i = 0; f->names && f->names[i]; i++)
		if (strncasecmp(*p, f->names[i], 3) == 0 && !isalpha((unsigned char)(*p)[3])) {
			*p += 3;
			return f->lo + i;
		}
	return -1;
}

/* One comma-separated item of a field: `*`, N, N-M, each optionally /STEP. */
static int parse_item(const struct field *f, const char *p, const char *end, uint64_t *bits,
		      bool *all)
{
	int lo = f->lo, hi = f->hi, step = 1;

	if (*p == '*') {
		p++;
		*all = true;
	} else {
		if ((lo = read_value(f, &p)) < 0)
			return -1;
		hi = lo;
		if (p < end && *p == '-') {
			p++;
			if ((hi = read_value(f, &p)) < 0 || hi < lo)
				return -1;
		} else if (p < end && *p == '/') {
			hi = f->hi; /* N/S: from N to the end */
		}
	}
	if (p < end && *p == '/') {
		const char *s = ++p;
		long v = 0;

		while (p < end && isdigit((unsigned char)*p) && v <= 1000)
			v = v * 10 + (*p++ - '0');
		if (p == s || v < 1 || v > f->hi)
			return -1;
		step = (int)v;
	}
	if (p != end)
		return -1;
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ull << v;
	return 0;
}

/* One field from text[0..len) into *bits; *all when it was `*` (or *\/S). */
static int parse_field(const struct field *f, const char *text, size_t len, uint64_t *bits,
		       bool *all, char *err, size_t errlen)
{
	char copy[128];
	const char *p = text, *end = text + len;

	*bits = 0;
	*all = false;
	snprintf(copy, sizeof(copy), "%.*s", (int)(len < 100 ? len : 100), text);
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;

		if (stop == p || parse_item(f, p, stop, bits, all) < 0)
			return cron_fail(err, errlen, "%s: \"%s\" is not a value, range or step here",
					 f->name, copy);
		p = comma ? comma + 1 : end;
		if (comma && p == end)
			return cron_fail(err, errlen, "%s: \"%s\" ends with a comma", f->name, copy);
	}
	return 0;
}

/* Split text into at most 7 fields on blanks. */
static size_t split(const char *text, const char **start, size_t *len)
{
	size_t n = 0;

	for (const char *p = text; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (n == 7)
			return 8;
		start[n] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		len[n] = (size_t)(p - start[n]);
		n++;
	}
	return n;
}

static const char *expand_macro(const char *text)
{
	while (*text == ' ' || *text == '\t')
		text++;
	if (*text != '@')
		return text;
	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
		size_t n = strlen(macros[i].name);

		if (strncasecmp(text, macros[i].name, n) == 0 && !text[n + strspn(text + n, " \t")])
			return macros[i].expansion;
	}
	return NULL;
}

int cron_parse(struct cron *c, const char *text, char *err, size_t errlen)
{
	const char *start[8], *body = expand_macro(text);
	size_t len[8], n;
	uint64_t bits[6];
	bool all[6];

	if (!body)
		return cron_fail(err, errlen, "\"%s\": not a cron macro (@yearly, @monthly, "
				 "@weekly, @daily, @hourly)", text);
	n = split(body, start, len);
	if (n != 5 && n != 6)
		return cron_fail(err, errlen, "\"%s\": use 5 fields (minute hour day-of-month "
				 "month day-of-week), 6 with the seconds first, or @daily...", text);
	bits[0] = 1, all[0] = false; /* five fields: at second 0 */
	for (size_t i = 0; i < n; i++) {
		size_t k = i + (n == 5);

		if (parse_field(&fields[k], start[i], len[i], &bits[k], &all[k], err, errlen) < 0)
			return -EINVAL;
	}
	*c = (struct cron){.sec = bits[0], .min = bits[1], .hour = (uint32_t)bits[2],
			   .dom = (uint32_t)bits[3], .month = (uint16_t)bits[4],
			   .dow = (uint8_t)((bits[5] | bits[5] >> 7) & 0x7f),
			   .dom_any = all[3], .dow_any = all[5]};
	return 0;
}

/* ------------------------------------------------------------- next time */

static bool day_matches(const struct cron *c, const struct tm *tm)
{
	bool dom = c->dom >> tm->tm_mday & 1, dow = c->dow >> tm->tm_wday & 1;

	if (!c->dom_any && !c->dow_any)
		return dom || dow; /* both restricted: either (Vixie cron) */
	return dom && dow;
}

/* Move tm to the start of the next unit (month, day, hour, minute, second),
 * normalised by mktime (local time; a DST gap moves the time forward). */
enum unit { NEXT_MONTH, NEXT_DAY, NEXT_HOUR, NEXT_MIN, NEXT_SEC };

static time_t advance(struct tm *tm, enum unit u)
{
	switch (u) {
	case NEXT_MONTH:
		tm->tm_mon++, tm->tm_mday = 1, tm->tm_hour = tm->tm_min = tm->tm_sec = 0;
		break;
	case NEXT_DAY:
		tm->tm_mday++, tm->tm_hour = tm->tm_min = tm->tm_sec = 0;
		break;
	case NEXT_HOUR:
		tm->tm_hour++, tm->tm_min = tm->tm_sec = 0;
		break;
	case NEXT_MIN:
		tm->tm_min++, tm->tm_sec = 0;
		break;
	case NEXT_SEC:
		tm->tm_sec++;
		break;
	}
	tm->tm_isdst = -1;
	return mktime(tm);
}

/* Which unit of tm does not match c (NEXT_SEC + 1: all match). */
static int first_mismatch(const struct cron *c, const struct tm *tm)
{
	if (!(c->month >> (tm->tm_mon + 1) & 1))
		return NEXT_MONTH;
	if (!day_matches(c, tm))
		return NEXT_DAY;
	if (!(c->hour >> tm->tm_hour & 1))
		return NEXT_HOUR;
	if (!(c->min >> tm->tm_min & 1))
		return NEXT_MIN;
	if (!(c->sec >> tm->tm_sec & 1))
		return NEXT_SEC;
	return NEXT_SEC + 1;
}

time_t cron_next(const struct cron *c, time_t after)
{
	struct tm tm;
	time_t t = after + 1, limit = after + (time_t)CRON_SEARCH_YEARS * 366 * 86400;

	if (!localtime_r(&t, &tm))
		return -1;
	while (t <= limit) {
		int u = first_mismatch(c, &tm);

		if (u > NEXT_SEC)
			return t;
		time_t next = advance(&tm, (enum unit)u);

		if (next == (time_t)-1)
			return -1;
		if (next <= t) {
			/* the hour repeated when clocks go back: never step back */
			next = t + 1;
			if (!localtime_r(&next, &tm))
				return -1;
		}
		t = next;
	}
	return -1;
}
