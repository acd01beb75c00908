/* Value parsers: one value's text against its option type (durations, sizes,
 * booleans, integers, regular expressions, paths, URLs), with the reason for a
 * refusal written for the user. Kept apart from config_validate.c because the
 * CLI parses durations and sizes with the same rules (config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "config_internal.h"

/* ------------------------------------------------------------ value parsers */

int config_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

#define DURATION_HINT "(use e.g. 30s, 15m, 2h, 1h30m)"
#define SIZE_HINT "(use e.g. 4096, 512K, 5M, 5G, 1T or 10%%)"

struct unit {
	const char *name;
	int64_t factor;
};

static const struct unit duration_units[] = {
	{ "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
	{ NULL, 0 },
};

static const struct unit size_units[] = {
	{ "", 1 },
	{ "K", INT64_C(1) << 10 }, { "M", INT64_C(1) << 20 },
	{ "G", INT64_C(1) << 30 }, { "T", INT64_C(1) << 40 },
	{ "KiB", INT64_C(1) << 10 }, { "MiB", INT64_C(1) << 20 },
	{ "GiB", INT64_C(1) << 30 }, { "TiB", INT64_C(1) << 40 },
	{ NULL, 0 },
};

static const struct unit *unit_find(const struct unit *units, const char *s, size_t len)
{
	for (; units->name; units++)
		if (strlen(units->name) == len && memcmp(units->name, s, len) == 0)
			return units;
	return NULL;
}

/* Decimal digits at *p into *v, advancing *p past all of them. 0, -EINVAL (no
 * digit) or -ERANGE. */
static int digits_parse(const char **p, int64_t *v)
{
	const char *s = *p;
	int64_t n = 0;
	int r = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++)
		if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, *s - '0', &n))
			r = -ERANGE;
	*p = s;
	*v = n;
	return r;
}

static int duration_parse(const char *text, int64_t *ms, char *err, size_t errlen)
{
	const char *p = text;
	int64_t total = 0, n, last = INT64_MAX;
	int r;

	if (!*text)
		return config_fail(err, errlen, -EINVAL,
				   "empty value: expected a duration " DURATION_HINT);
	if (*text == '-')
		return config_fail(err, errlen, -EINVAL, "\"%s\": a duration cannot be negative",
				   text);
	if (digits_parse(&p, &n) == 0 && !*p) {
		/* bare seconds */
		if (__builtin_mul_overflow(n, 1000, ms))
			return config_fail(err, errlen, -ERANGE, "\"%s\": too long a duration",
					   text);
		return 0;
	}
	for (p = text; *p;) {
		const struct unit *u;
		const char *unit;

		r = digits_parse(&p, &n);
		for (unit = p; isalpha((unsigned char)*p); p++)
			;
		if (r == -EINVAL || p == unit)
			return config_fail(err, errlen, -EINVAL,
					   "\"%s\" is not a duration " DURATION_HINT, text);
		u = unit_find(duration_units, unit, (size_t)(p - unit));
		if (!u)
			return config_fail(err, errlen, -EINVAL,
					   "\"%s\": unknown unit \"%.*s\" (use ms, s, m, h or d)",
					   text, (int)(p - unit), unit);
		if (u->factor >= last)
			return config_fail(err, errlen, -EINVAL,
					   "\"%s\": units must go from largest to smallest, "
					   "each once",
					   text);
		last = u->factor;
		if (r == -ERANGE || __builtin_mul_overflow(n, u->factor, &n) ||
		    __builtin_add_overflow(total, n, &total))
			return config_fail(err, errlen, -ERANGE, "\"%s\": too long a duration",
					   text);
	}
	*ms = total;
	return 0;
}

/* "2.5" -> 2.5, digits with an optional fraction and nothing else. */
static int decimal_parse(const char *s, size_t len, double *v)
{
	char buf[32], *end;
	size_t i = 0, dots = 0;

	if (!len || len >= sizeof(buf) || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[len - 1]))
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] == '.')
			dots++;
		else if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
	}
	if (dots > 1)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	*v = strtod(buf, &end);
	return *end ? -EINVAL : 0;
}

static int size_parse(const char *text, int64_t *bytes, double *percent, char *err,
		      size_t errlen)
{
	size_t len = strlen(text);
	const char *p = text;
	const struct unit *u;
	int64_t n;
	int r;

	if (!len)
		return config_fail(err, errlen, -EINVAL, "empty value: expected a size " SIZE_HINT);
	if (*text == '-')
		return config_fail(err, errlen, -EINVAL, "\"%s\": a size cannot be negative", text);
	if (text[len - 1] == '%') {
		double pc;

		if (decimal_parse(text, len - 1, &pc) < 0)
			return config_fail(err, errlen, -EINVAL, "\"%s\" is not a size " SIZE_HINT,
					   text);
		if (!(pc > 0 && pc <= 100))
			return config_fail(err, errlen, -EINVAL,
					   "\"%s\": a percentage must be above 0%% and at "
					   "most 100%%",
					   text);
		*bytes = -1;
		*percent = pc;
		return 0;
	}
	r = digits_parse(&p, &n);
	if (r == -EINVAL)
		return config_fail(err, errlen, -EINVAL, "\"%s\" is not a size " SIZE_HINT, text);
	u = unit_find(size_units, p, strlen(p));
	if (!u)
		return config_fail(err, errlen, -EINVAL,
				   "\"%s\": unknown unit \"%s\" (use K, M, G, T or KiB, MiB, GiB, "
				   "TiB: powers of 1024; or a percentage)",
				   text, p);
	if (r == -ERANGE || __builtin_mul_overflow(n, u->factor, bytes))
		return config_fail(err, errlen, -ERANGE, "\"%s\": too large a size", text);
	*percent = -1;
	return 0;
}

static int bool_parse(const char *text, int *b)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
			*b = strcasecmp(text, yes[i]) == 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int int_parse(const char *text, int64_t *v, char *err, size_t errlen)
{
	const char *p = text + (*text == '-' || *text == '+');
	char *end;

	if (!isdigit((unsigned char)*p))
		return config_fail(err, errlen, -EINVAL, "\"%s\" is not an integer", text);
	errno = 0;
	*v = strtoll(text, &end, 10);
	if (*end)
		return config_fail(err, errlen, -EINVAL, "\"%s\" is not an integer", text);
	if (errno == ERANGE)
		return config_fail(err, errlen, -ERANGE, "\"%s\": out of range", text);
	return 0;
}

static int regex_check(const char *text, char *err, size_t errlen)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE offset;
	int code;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, 0, &code,
				       &offset, NULL);

	if (re) {
		pcre2_code_free(re);
		return 0;
	}
	if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
		snprintf((char *)msg, sizeof(msg), "error %d", code);
	snprintf(err, errlen, "\"%s\" is not a valid regular expression: %s at offset %zu",
		 text, (const char *)msg, (size_t)offset);
	return -EINVAL;
}

int config_url_check(const char *text)
{
	const char *p = text;

	if (!isalpha((unsigned char)*p))
		return -EINVAL;
	while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	return strncmp(p, "://", 3) == 0 && p[3] ? 0 : -EINVAL;
}

int config_parse_value(enum vigil_option_type type, const char *text, struct vigil_value *out,
		       char *err, size_t errlen)
{
	int b;

	out->text = text;
	out->number = 0;
	out->percent = -1;
	switch (type) {
	case VIGIL_OPT_STRING:
		return 0;
	case VIGIL_OPT_BOOL:
		if (bool_parse(text, &b) < 0)
			return config_fail(err, errlen, -EINVAL,
					   "\"%s\" is not a boolean (use yes/no, true/false, "
					   "on/off or 1/0)", text);
		out->number = b;
		return 0;
	case VIGIL_OPT_INT:
		return int_parse(text, &out->number, err, errlen) < 0 ? -EINVAL : 0;
	case VIGIL_OPT_DURATION:
		return duration_parse(text, &out->number, err, errlen) < 0 ? -EINVAL : 0;
	case VIGIL_OPT_SIZE:
		if (size_parse(text, &out->number, &out->percent, err, errlen) < 0)
			return -EINVAL;
		return 0;
	case VIGIL_OPT_REGEX:
		return regex_check(text, err, errlen);
	case VIGIL_OPT_PATH:
		if (!*text)
			return config_fail(err, errlen, -EINVAL, "empty value: expected a path");
		return 0;
	case VIGIL_OPT_URL:
		if (config_url_check(text) < 0)
			return config_fail(err, errlen, -EINVAL,
					   "\"%s\" is not a URL (expected scheme://...)", text);
		return 0;
	}
	snprintf(err, errlen, "unknown option type %d", (int)type);
	return -EINVAL;
}

int config_parse_duration_ms(const char *text, int64_t *ms)
{
	char err[8];

	return duration_parse(text, ms, err, sizeof(err)) < 0 ? -EINVAL : 0;
}

int config_parse_size(const char *text, int64_t *bytes, double *percent)
{
	char err[8];

	return size_parse(text, bytes, percent, err, sizeof(err)) < 0 ? -EINVAL : 0;
}

int config_parse_bool(const char *text, int *b)
{
	return bool_parse(text, b);
}

const char *config_format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct unit *const units = duration_units;
	uint64_t left = ms < 0 ? -(uint64_t)ms : (uint64_t)ms;
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	if (ms < 0 && len > 1)
		used += (size_t)snprintf(buf, len, "-");
	if (ms == 0)
		snprintf(buf, len, "0s");
	for (const struct unit *u = units; u->name && left; u++) {
		uint64_t n = left / (uint64_t)u->factor;

		left %= (uint64_t)u->factor;
		if (n && used < len)
			used += (size_t)snprintf(buf + used, len - used, "%llu%s",
						 (unsigned long long)n, u->name);
	}
	return buf;
}
