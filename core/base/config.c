/* INI configuration: parse (inih) -> validate -> commit; see config.h.
 *
 * inih does the lexing. Its reader callback is ours, so we hand it exactly one
 * physical line per call: that keeps our line count equal to inih's, lets us
 * see section headers (inih reports only keys, so an empty section or its
 * line would be lost) and notice every line inih rejected, not just the
 * first one it returns. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "buf.h"
#include "success_expr.h"

#define COMMAND_LINE_FILE "<command line>"
#define SYNTAX_ERROR "syntax error: expected key = value or [section]"

/* ------------------------------------------------------------ raw sections */

/* A copy of s[0..len) without surrounding whitespace. */
static char *strndup_trim(const char *s, size_t len)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	return strndup(s, len);
}

/* "log  app" -> name "log app", plugin "log", instance "app" (NULL when the
 * name is one word). Returns the number of words, or -ENOMEM. */
static int section_set_name(struct raw_section *s, const char *name)
{
	struct buf b = BUF_INIT;
	const char *p = name, *sp;
	int words = 0;

	for (;;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *w = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if ((words && buf_putc(&b, ' ') < 0) || buf_append(&b, w, (size_t)(p - w)) < 0) {
			buf_free(&b);
			return -ENOMEM;
		}
		words++;
	}
	s->name = words ? buf_steal(&b) : strdup("");
	if (!s->name)
		return -ENOMEM;
	sp = strchr(s->name, ' ');
	s->plugin = strndup(s->name, sp ? (size_t)(sp - s->name) : strlen(s->name));
	s->instance = sp ? strdup(sp + 1) : NULL;
	if (!s->plugin || (sp && !s->instance))
		return -ENOMEM;
	return words;
}

static void raw_section_clear(struct raw_section *s)
{
	for (size_t i = 0; i < s->n_kv; i++) {
		free(s->kv[i].key);
		free(s->kv[i].value);
	}
	free(s->kv);
	free(s->name);
	free(s->plugin);
	free(s->instance);
	memset(s, 0, sizeof(*s));
}

static int raw_kv_add(struct raw_section *s, const char *key, const char *value, unsigned line)
{
	struct raw_kv *kv = realloc(s->kv, (s->n_kv + 1) * sizeof(*kv));

	if (!kv)
		return -ENOMEM;
	s->kv = kv;
	kv = &s->kv[s->n_kv];
	kv->key = strdup(key);
	kv->value = strdup(value);
	kv->line = line;
	if (!kv->key || !kv->value) {
		free(kv->key);
		free(kv->value);
		return -ENOMEM;
	}
	s->n_kv++;
	return 0;
}

static int raw_section_copy(struct raw_section *dst, const struct raw_section *src)
{
	memset(dst, 0, sizeof(*dst));
	if (section_set_name(dst, src->name) < 0)
		goto nomem;
	dst->line = src->line;
	for (size_t i = 0; i < src->n_kv; i++)
		if (raw_kv_add(dst, src->kv[i].key, src->kv[i].value, src->kv[i].line) < 0)
			goto nomem;
	return 0;
nomem:
	raw_section_clear(dst);
	return -ENOMEM;
}

/* Appends a section named `name` (normalised); NULL when out of memory. */
static struct raw_section *raw_ini_add(struct raw_ini *ini, const char *name, unsigned line,
				       int *words)
{
	struct raw_section *s = realloc(ini->sections, (ini->n_sections + 1) * sizeof(*s));
	int w;

	if (!s)
		return NULL;
	ini->sections = s;
	s = &ini->sections[ini->n_sections];
	memset(s, 0, sizeof(*s));
	w = section_set_name(s, name);
	if (w < 0) {
		raw_section_clear(s);
		return NULL;
	}
	if (words)
		*words = w;
	s->line = line;
	ini->n_sections++;
	return s;
}

static struct raw_section *raw_ini_find(const struct raw_ini *ini, const char *name)
{
	for (size_t i = 0; i < ini->n_sections; i++)
		if (strcmp(ini->sections[i].name, name) == 0)
			return &ini->sections[i];
	return NULL;
}

struct raw_section *raw_ini_section(struct raw_ini *ini, const char *name)
{
	struct raw_section tmp = { 0 }, *s = NULL;

	if (section_set_name(&tmp, name) >= 0)
		s = raw_ini_find(ini, tmp.name);
	if (!s && tmp.name)
		s = raw_ini_add(ini, tmp.name, 0, NULL);
	raw_section_clear(&tmp);
	return s;
}

void raw_section_set(struct raw_section *s, const char *key, const char *value, unsigned line)
{
	/* No way to report failure here: losing a flag silently would be worse. */
	if (raw_kv_add(s, key, value, line) < 0)
		abort();
}

void raw_ini_free(struct raw_ini *ini)
{
	for (size_t i = 0; i < ini->n_sections; i++)
		raw_section_clear(&ini->sections[i]);
	free(ini->sections);
	free(ini->file);
	memset(ini, 0, sizeof(*ini));
}

/* ------------------------------------------------------------- INI parsing */

struct ini_state {
	const char *file;
	struct raw_ini *ini;
	struct diag *d;
	const char *next;        /* start of the next physical line */
	const char *line;        /* the current physical line */
	size_t line_len;         /* without its newline */
	unsigned lineno;
	unsigned first_error;    /* first line reported as a syntax error */
	int indented;            /* the line starts with whitespace */
	int expect_handler;      /* not blank, comment nor section: inih must take it */
	int handled;             /* ... and it did */
	int have_prev;           /* mirrors inih's prev_name: a continuation may follow */
	int skip_keys;           /* the current section is broken (already reported) */
	long cur;                /* index of the current section, -1 before any */
	int rc;                  /* -ENOMEM */
};

static struct raw_section *ini_cur(struct ini_state *st)
{
	return st->cur >= 0 ? &st->ini->sections[st->cur] : NULL;
}

static void ini_syntax_error(struct ini_state *st, unsigned line, const char *msg)
{
	if (!st->first_error)
		st->first_error = line;
	diag_add(st->d, st->file, line, NULL, NULL, "%s", msg);
}

/* A "[name]" line, `s` at the '['. Mirrors inih: the name ends at the first
 * ']', and a ';' after whitespace starts a comment. 0 when not a section. */
static int ini_section_line(struct ini_state *st, const char *s, const char *end)
{
	const char *p = s + 1;
	int was_space = 0, words;
	struct raw_section *sec, *dup;
	char *name;

	while (p < end && *p != ']' && !(was_space && *p == ';'))
		was_space = isspace((unsigned char)*p++);
	if (p == end || *p != ']')
		return 0;
	name = strndup(s + 1, (size_t)(p - s - 1));
	st->have_prev = 0;
	st->skip_keys = 1;
	if (!name) {
		st->rc = -ENOMEM;
		return 1;
	}
	/* Compare normalised names: sec->name has its blanks collapsed. */
	sec = raw_ini_add(st->ini, name, st->lineno, &words);
	free(name);
	if (!sec) {
		st->rc = -ENOMEM;
		return 1;
	}
	st->cur = -1;
	dup = raw_ini_find(st->ini, sec->name);
	if (words == 0) {
		ini_syntax_error(st, st->lineno, "syntax error: empty section name");
	} else if (words > 2) {
		diag_add(st->d, st->file, st->lineno, sec->name, NULL,
			 "a section is named PLUGIN or PLUGIN NAME");
	} else if (dup != sec) {
		diag_add(st->d, st->file, st->lineno, sec->name, NULL,
			 "duplicate section (first at line %u)", dup->line);
	} else {
		st->skip_keys = 0;
		st->cur = (long)st->ini->n_sections - 1;
		return 1;
	}
	raw_section_clear(sec);
	st->ini->n_sections--;
	return 1;
}

/* Classify the current line the way inih will see it. */
static void ini_classify(struct ini_state *st)
{
	const char *s = st->line, *end = st->line + st->line_len;

	if (st->lineno == 1 && st->line_len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	st->indented = s < end && isspace((unsigned char)*s);
	while (s < end && isspace((unsigned char)*s))
		s++;
	st->expect_handler = 0;
	st->handled = 0;
	if (s == end || *s == ';' || *s == '#')
		return;
	/* inih tests for a continuation before a section header */
	if (!(st->have_prev && st->indented) && *s == '[' && ini_section_line(st, s, end))
		return;
	st->expect_handler = 1;
}

static void ini_finish_line(struct ini_state *st)
{
	if (st->expect_handler && !st->handled)
		ini_syntax_error(st, st->lineno, SYNTAX_ERROR);
	st->expect_handler = 0;
}

/* inih's reader: one physical line per call, never a partial one. */
static char *ini_read_line(char *str, int num, void *stream)
{
	struct ini_state *st = stream;
	const char *eol;

	ini_finish_line(st);
	if (!*st->next)
		return NULL;
	eol = strchr(st->next, '\n');
	st->line = st->next;
	st->line_len = eol ? (size_t)(eol - st->next) : strlen(st->next);
	st->next = st->line + st->line_len + (eol ? 1 : 0);
	st->lineno++;
	if (num < 3 || st->line_len > (size_t)num - 3) {
		/* inih would split it into several lines: hand it a blank one,
		 * which leaves its notion of the previous key alone, as ours. */
		diag_add(st->d, st->file, st->lineno, NULL, NULL,
			 "line too long (at most %d characters; continue a value on "
			 "indented lines)", num - 3);
		st->expect_handler = 0;
		strcpy(str, "\n");
		return str;
	}
	memcpy(str, st->line, st->line_len);
	str[st->line_len] = '\n';
	str[st->line_len + 1] = '\0';
	ini_classify(st);
	return str;
}

/* A key = value line, or an indented continuation of the previous value
 * (joined with one space). 0 or -ENOMEM. */
static int ini_add_kv(struct ini_state *st, const char *name, const char *value)
{
	int continuation = st->have_prev && st->indented;
	struct raw_section *sec = ini_cur(st);
	struct raw_kv *kv;
	char *joined;

	st->handled = 1;
	st->have_prev = 1;
	if (st->skip_keys)
		return 0;
	if (!sec) {
		if (!continuation)
			diag_add(st->d, st->file, st->lineno, NULL, name,
				 "key outside of any section");
		return 0;
	}
	if (!*name) {
		ini_syntax_error(st, st->lineno, "syntax error: no key before '='");
		return 0;
	}
	if (!continuation || !sec->n_kv)
		return raw_kv_add(sec, name, value, st->lineno);
	kv = &sec->kv[sec->n_kv - 1];
	if (asprintf(&joined, "%s%s%s", kv->value, *kv->value ? " " : "", value) < 0)
		return -ENOMEM;
	free(kv->value);
	kv->value = joined;
	return 0;
}

/* The one place that speaks inih's "nonzero is success". */
static int ini_on_kv(void *user, const char *section, const char *name, const char *value)
{
	struct ini_state *st = user;
	int r = ini_add_kv(st, name, value);

	(void)section; /* we track sections ourselves, untruncated */
	if (r < 0)
		st->rc = r;
	return r == 0;
}

int config_read_ini_string(const char *file, const char *text, struct raw_ini *out,
			   struct diag *d)
{
	struct ini_state st = { .file = file, .ini = out, .d = d, .next = text, .cur = -1 };
	int r;

	memset(out, 0, sizeof(*out));
	out->file = strdup(file);
	if (!out->file)
		return -ENOMEM;
	r = ini_parse_stream(ini_read_line, &st, ini_on_kv, &st);
	ini_finish_line(&st);
	if (r == -2 || st.rc) {
		diag_add(d, file, 0, NULL, NULL, "out of memory");
		raw_ini_free(out);
		return -ENOMEM;
	}
	/* Should never trigger: our own classification found inih's errors. */
	if (r > 0 && (!st.first_error || (unsigned)r < st.first_error))
		ini_syntax_error(&st, (unsigned)r, SYNTAX_ERROR);
	return 0;
}

/* Far beyond any real configuration: stops /dev/zero and friends. */
#define CONFIG_MAX_BYTES (4u << 20)

/* The whole file, NUL-terminated. 0 or -errno. */
static int read_file(const char *file, char **text, size_t *len)
{
	struct buf b = BUF_INIT;
	char chunk[8192];
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r = 0;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		r = b.len + (size_t)n > CONFIG_MAX_BYTES ? -EFBIG
							   : buf_append(&b, chunk, (size_t)n);
		if (r < 0)
			break;
	}
	close(fd);
	if (r < 0) {
		buf_free(&b);
		return r;
	}
	*len = b.len;
	*text = b.p ? buf_steal(&b) : strdup("");
	return *text ? 0 : -ENOMEM;
}

int config_read_ini(const char *file, struct raw_ini *out, struct diag *d)
{
	char *text;
	size_t len;
	int r;

	memset(out, 0, sizeof(*out));
	r = read_file(file, &text, &len);
	if (r < 0) {
		diag_add(d, file, 0, NULL, NULL, "cannot read: %s", strerror(-r));
		return r;
	}
	if (strlen(text) != len) {
		unsigned line = 1;

		for (const char *p = text; *p; p++)
			line += *p == '\n';
		diag_add(d, file, line, NULL, NULL, "a NUL byte: not a text file");
	}
	r = config_read_ini_string(file, text, out, d);
	free(text);
	return r;
}

/* ------------------------------------------------------------ value parsers */

/* Format the reason into err and return rc, so that each check is one line. */
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
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
		return fail(err, errlen, -EINVAL,
			    "empty value: expected a duration " DURATION_HINT);
	if (*text == '-')
		return fail(err, errlen, -EINVAL, "\"%s\": a duration cannot be negative", text);
	if (digits_parse(&p, &n) == 0 && !*p) {
		/* bare seconds */
		if (__builtin_mul_overflow(n, 1000, ms))
			return fail(err, errlen, -ERANGE, "\"%s\": too long a duration", text);
		return 0;
	}
	for (p = text; *p;) {
		const struct unit *u;
		const char *unit;

		r = digits_parse(&p, &n);
		for (unit = p; isalpha((unsigned char)*p); p++)
			;
		if (r == -EINVAL || p == unit)
			return fail(err, errlen, -EINVAL,
				    "\"%s\" is not a duration " DURATION_HINT, text);
		u = unit_find(duration_units, unit, (size_t)(p - unit));
		if (!u)
			return fail(err, errlen, -EINVAL,
				    "\"%s\": unknown unit \"%.*s\" (use ms, s, m, h or d)",
				    text, (int)(p - unit), unit);
		if (u->factor >= last)
			return fail(err, errlen, -EINVAL,
				    "\"%s\": units must go from largest to smallest, each once",
				    text);
		last = u->factor;
		if (r == -ERANGE || __builtin_mul_overflow(n, u->factor, &n) ||
		    __builtin_add_overflow(total, n, &total))
			return fail(err, errlen, -ERANGE, "\"%s\": too long a duration", text);
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
		return fail(err, errlen, -EINVAL, "empty value: expected a size " SIZE_HINT);
	if (*text == '-')
		return fail(err, errlen, -EINVAL, "\"%s\": a size cannot be negative", text);
	if (text[len - 1] == '%') {
		double pc;

		if (decimal_parse(text, len - 1, &pc) < 0)
			return fail(err, errlen, -EINVAL, "\"%s\" is not a size " SIZE_HINT, text);
		if (!(pc > 0 && pc <= 100))
			return fail(err, errlen, -EINVAL,
				    "\"%s\": a percentage must be above 0%% and at most 100%%",
				    text);
		*bytes = -1;
		*percent = pc;
		return 0;
	}
	r = digits_parse(&p, &n);
	if (r == -EINVAL)
		return fail(err, errlen, -EINVAL, "\"%s\" is not a size " SIZE_HINT, text);
	u = unit_find(size_units, p, strlen(p));
	if (!u)
		return fail(err, errlen, -EINVAL,
			    "\"%s\": unknown unit \"%s\" (use K, M, G, T or KiB, MiB, GiB, "
			    "TiB: powers of 1024; or a percentage)",
			    text, p);
	if (r == -ERANGE || __builtin_mul_overflow(n, u->factor, bytes))
		return fail(err, errlen, -ERANGE, "\"%s\": too large a size", text);
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
		return fail(err, errlen, -EINVAL, "\"%s\" is not an integer", text);
	errno = 0;
	*v = strtoll(text, &end, 10);
	if (*end)
		return fail(err, errlen, -EINVAL, "\"%s\" is not an integer", text);
	if (errno == ERANGE)
		return fail(err, errlen, -ERANGE, "\"%s\": out of range", text);
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

/* "scheme://...", scheme as RFC 3986 spells it. */
static int url_check(const char *text)
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
			return fail(err, errlen, -EINVAL,
				    "\"%s\" is not a boolean (use yes/no, true/false, on/off "
				    "or 1/0)", text);
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
			return fail(err, errlen, -EINVAL, "empty value: expected a path");
		return 0;
	case VIGIL_OPT_URL:
		if (url_check(text) < 0)
			return fail(err, errlen, -EINVAL,
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

/* ------------------------------------------------------- option validation */

static const struct vigil_option *option_find(const struct vigil_option *opts, const char *key)
{
	for (; opts->key; opts++)
		if (strcmp(opts->key, key) == 0)
			return opts;
	return NULL;
}

static void diag_unknown_key(struct diag *d, const char *file, const struct raw_section *s,
			     const struct raw_kv *kv, const struct vigil_option *opts)
{
	struct buf known = BUF_INIT;

	for (const struct vigil_option *o = opts; o->key; o++)
		if ((o != opts && buf_puts(&known, ", ") < 0) || buf_puts(&known, o->key) < 0)
			break;
	diag_add(d, file, kv->line, s->name, kv->key, "unknown key (known: %s)",
		 opts->key ? buf_cstr(&known) : "none");
	buf_free(&known);
}

void config_values_free(struct vigil_value *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)v[i].key);
		free((char *)v[i].text);
	}
	free(v);
}

struct value_list {
	struct vigil_value *v;
	size_t n;
	int nomem;
};

static void value_list_add(struct value_list *l, const struct vigil_value *val)
{
	struct vigil_value *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v) {
		l->nomem = 1;
		return;
	}
	l->v = v;
	v[l->n] = *val;
	v[l->n].key = strdup(val->key);
	v[l->n].text = strdup(val->text);
	if (!v[l->n].key || !v[l->n].text) {
		free((char *)v[l->n].key);
		free((char *)v[l->n].text);
		l->nomem = 1;
		return;
	}
	l->n++;
}

static struct vigil_value *value_list_find(struct value_list *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return &l->v[i];
	return NULL;
}

/* A secret must not sit in a file others can read (plugin.h, VIGIL_OPTF_SECRET). */
static void check_secret_file(const char *file, const struct raw_section *s,
			      const struct raw_kv *kv, struct diag *d)
{
	struct stat st;

	if (kv->line && stat(file, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
		diag_add(d, file, kv->line, s->name, kv->key,
			 "holds a secret but the file is readable by group or others "
			 "(chmod 600 %s)", file);
}

/* One key = value of the section, checked and added to l. */
static void check_one(const char *file, const struct raw_section *s, const struct raw_kv *kv,
		      const struct vigil_option *opts, struct value_list *l, struct diag *d)
{
	const struct vigil_option *o = option_find(opts, kv->key);
	struct vigil_value val = { .key = kv->key, .line = kv->line }, *prev;
	char err[512];

	if (!o) {
		diag_unknown_key(d, file, s, kv, opts);
		return;
	}
	if (config_parse_value(o->type, kv->value, &val, err, sizeof(err)) < 0) {
		if (o->flags & VIGIL_OPTF_SECRET)
			diag_add(d, file, kv->line, s->name, kv->key,
				 "invalid value (not shown: it is secret)");
		else
			diag_add(d, file, kv->line, s->name, kv->key, "%s", err);
		return;
	}
	if (o->flags & VIGIL_OPTF_SECRET)
		check_secret_file(file, s, kv, d);
	prev = (o->flags & VIGIL_OPTF_REPEATABLE) ? NULL : value_list_find(l, kv->key);
	if (!prev) {
		value_list_add(l, &val);
	} else if (prev->line == 0) {
		/* a command-line flag wins over the file whatever the order */
	} else if (kv->line == 0) {
		char *text = strdup(kv->value);

		if (!text) {
			l->nomem = 1;
			return;
		}
		free((char *)prev->text);
		*prev = (struct vigil_value){ .key = prev->key, .text = text, .number = val.number,
					      .percent = val.percent, .line = 0 };
	} else {
		diag_add(d, file, kv->line, s->name, kv->key, "given twice (first at line %u)",
			 prev->line);
	}
}

/* Required keys that are missing, and defaults for the others. */
static void check_absent(const char *file, const struct raw_section *s,
			 const struct vigil_option *opts, struct value_list *l, struct diag *d)
{
	char err[512];

	for (const struct vigil_option *o = opts; o->key; o++) {
		struct vigil_value val = { .key = o->key };

		if (value_list_find(l, o->key))
			continue;
		if (o->flags & VIGIL_OPTF_REQUIRED)
			diag_add(d, file, s->line, s->name, o->key, "missing (required)");
		else if (!o->default_value)
			continue;
		else if (config_parse_value(o->type, o->default_value, &val, err, sizeof(err)) < 0)
			diag_add(d, file, s->line, s->name, o->key, "bad built-in default: %s",
				 err);
		else
			value_list_add(l, &val);
	}
}

int config_check_options(const char *file, const struct raw_section *s,
			 const struct vigil_option *opts, struct vigil_value **out,
			 size_t *n_out, struct diag *d)
{
	struct value_list l = { 0 };
	size_t errors = d->errors;

	*out = NULL;
	*n_out = 0;
	for (size_t i = 0; i < s->n_kv; i++)
		check_one(file, s, &s->kv[i], opts, &l, d);
	check_absent(file, s, opts, &l, d);
	if (l.nomem)
		diag_add(d, file, s->line, s->name, NULL, "out of memory");
	if (d->errors > errors) {
		config_values_free(l.v, l.n);
		return -EINVAL;
	}
	*out = l.v;
	*n_out = l.n;
	return 0;
}

/* ------------------------------------------------------------------ monitor */

const struct vigil_option config_monitor_options[] = {
	{ "name", VIGIL_OPT_STRING, 0, NULL, "monitor name (default: the file name without .ini)" },
	{ "pid", VIGIL_OPT_INT, 0, NULL, "target: this process id" },
	{ "pid_file", VIGIL_OPT_PATH, 0, NULL, "target: the pid in this file (waited for)" },
	{ "match", VIGIL_OPT_REGEX, 0, NULL, "target: the process whose command line matches" },
	{ "command", VIGIL_OPT_STRING, 0, NULL, "target: a command vigil starts (sh -c)" },
	{ "log", VIGIL_OPT_PATH, 0, NULL, "where the output of `command` goes" },
	{ "expected", VIGIL_OPT_DURATION, 0, NULL, "expected run time: warn when overrun" },
	{ "timeout", VIGIL_OPT_DURATION, 0, NULL, "a run longer than this has timed out" },
	{ "on_timeout", VIGIL_OPT_STRING, 0, "notify", "notify | term | kill" },
	{ "kill_grace", VIGIL_OPT_DURATION, 0, "10s", "SIGTERM to SIGKILL delay for term" },
	{ "success", VIGIL_OPT_STRING, 0, NULL,
	  "expression over exit, file, success, failure (and, or, not)" },
	{ "notify", VIGIL_OPT_STRING, VIGIL_OPTF_REPEATABLE, NULL,
	  "stdout, json, webhook:URL, email:ADDRESS or a notifier name; comma-separated" },
	{ "retry", VIGIL_OPT_INT, 0, "0", "extra attempts when `command` fails" },
	{ "retry_delay", VIGIL_OPT_DURATION, 0, "10s", "delay before a retry, doubled each time" },
	{ "deliver_timeout", VIGIL_OPT_DURATION, 0, "30s", "time limit of one delivery attempt" },
	{ NULL, 0, 0, NULL, NULL },
};

static const char *const target_keys[] = { "pid", "pid_file", "match", "command" };
#define N_TARGET_KEYS (sizeof(target_keys) / sizeof(target_keys[0]))

/* [a-z0-9_-]+: a named notifier. */
static int notifier_name_ok(const char *s, size_t len)
{
	if (!len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

static int email_address_ok(const char *s)
{
	const char *at = strchr(s, '@');

	if (!at || at == s || !at[1] || strchr(at + 1, '@'))
		return 0;
	for (; *s; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s) ||
		    strchr("<>,;\"", *s))
			return 0;
	return 1;
}

static int notify_spec_check(const char *spec, char *err, size_t errlen)
{
	if (!strcmp(spec, "stdout") || !strcmp(spec, "json"))
		return 0;
	if (!strncmp(spec, "webhook:", 8) && url_check(spec + 8) < 0)
		return fail(err, errlen, -EINVAL, "\"%s\": not a URL after webhook:", spec);
	if (!strncmp(spec, "email:", 6) && !email_address_ok(spec + 6))
		return fail(err, errlen, -EINVAL, "\"%s\": not an address after email:", spec);
	if (!strncmp(spec, "webhook:", 8) || !strncmp(spec, "email:", 6))
		return 0;
	if (notifier_name_ok(spec, strlen(spec)))
		return 0;
	return fail(err, errlen, -EINVAL,
		    "\"%s\" is not a notify spec (use stdout, json, webhook:URL, email:ADDRESS "
		    "or a notifier name)",
		    spec);
}

static int strv_push(char ***v, size_t *n, char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

/* Split one `notify` value into specs appended to m->notify. */
static void monitor_add_notify(struct monitor_config *m, const struct vigil_value *v,
			       struct diag *d)
{
	char err[512];

	for (const char *p = v->text, *end;; p = end + 1) {
		char *spec;

		end = strchrnul(p, ',');
		spec = strndup_trim(p, (size_t)(end - p));
		if (!spec)
			diag_add(d, m->file, v->line, "monitor", "notify", "out of memory");
		else if (!*spec)
			diag_add(d, m->file, v->line, "monitor", "notify",
				 "empty notify spec in \"%s\"", v->text);
		else if (notify_spec_check(spec, err, sizeof(err)) < 0)
			diag_add(d, m->file, v->line, "monitor", "notify", "%s", err);
		else if (strv_push(&m->notify, &m->n_notify, spec) < 0)
			diag_add(d, m->file, v->line, "monitor", "notify", "out of memory");
		else
			spec = NULL;
		free(spec);
		if (!*end)
			return;
	}
}

/* Names end up in file names of the state folder: keep them tame. */
static int monitor_name_check(const char *name, char *err, size_t errlen)
{
	const char *p = name;

	while (isalnum((unsigned char)*p) || (*p && strchr("._@-", *p)))
		p++;
	if (*name && *name != '.' && !*p)
		return 0;
	return fail(err, errlen, -EINVAL,
		    "\"%s\" is not a valid name (use letters, digits, '.', '_', '-' and '@'; "
		    "not starting with '.')",
		    name);
}

static const struct {
	const char *key;
	size_t offset;
} monitor_strings[] = {
	{ "pid_file", offsetof(struct monitor_config, pid_file) },
	{ "match", offsetof(struct monitor_config, match) },
	{ "command", offsetof(struct monitor_config, command) },
	{ "log", offsetof(struct monitor_config, log) },
	{ "success", offsetof(struct monitor_config, success) },
	{ "name", offsetof(struct monitor_config, name) },
}, monitor_durations[] = {
	{ "expected", offsetof(struct monitor_config, expected_ms) },
	{ "timeout", offsetof(struct monitor_config, timeout_ms) },
	{ "kill_grace", offsetof(struct monitor_config, kill_grace_ms) },
	{ "retry_delay", offsetof(struct monitor_config, retry_delay_ms) },
	{ "deliver_timeout", offsetof(struct monitor_config, deliver_timeout_ms) },
};

/* Checks beyond the value's type; 0 or -EINVAL with err. */
static int monitor_check_value(const struct vigil_value *v, char *err, size_t errlen)
{
	struct success_expr *e;
	int r;

	if (!strcmp(v->key, "name"))
		return monitor_name_check(v->text, err, errlen);
	if (!strcmp(v->key, "pid") && (v->number < 1 || v->number > INT_MAX))
		return fail(err, errlen, -EINVAL, "\"%s\" is not a process id", v->text);
	if (!strcmp(v->key, "retry") && (v->number < 0 || v->number > INT_MAX))
		return fail(err, errlen, -EINVAL, "\"%s\": use a count from 0 up", v->text);
	if (!strcmp(v->key, "on_timeout") && strcmp(v->text, "notify") &&
	    strcmp(v->text, "term") && strcmp(v->text, "kill"))
		return fail(err, errlen, -EINVAL, "\"%s\": use notify, term or kill", v->text);
	if (!strcmp(v->key, "success")) {
		r = success_expr_parse(v->text, &e, err, errlen);
		success_expr_free(e);
		return r < 0 ? -EINVAL : 0;
	}
	return 0;
}

/* A value monitor_check_value accepted. */
static enum on_timeout on_timeout_parse(const char *text)
{
	if (!strcmp(text, "term"))
		return ON_TIMEOUT_TERM;
	if (!strcmp(text, "kill"))
		return ON_TIMEOUT_KILL;
	return ON_TIMEOUT_NOTIFY;
}

/* Store one validated value of [monitor] into m. */
static void monitor_apply(struct monitor_config *m, const struct vigil_value *v, struct diag *d)
{
	char err[512];

	if (monitor_check_value(v, err, sizeof(err)) < 0) {
		diag_add(d, m->file, v->line, "monitor", v->key, "%s", err);
		return;
	}
	for (size_t i = 0; i < sizeof(monitor_strings) / sizeof(monitor_strings[0]); i++) {
		char **field = (char **)((char *)m + monitor_strings[i].offset);

		if (strcmp(v->key, monitor_strings[i].key))
			continue;
		free(*field);
		*field = strdup(v->text);
		if (!*field)
			diag_add(d, m->file, v->line, "monitor", v->key, "out of memory");
		return;
	}
	for (size_t i = 0; i < sizeof(monitor_durations) / sizeof(monitor_durations[0]); i++)
		if (!strcmp(v->key, monitor_durations[i].key))
			*(int64_t *)((char *)m + monitor_durations[i].offset) = v->number;
	if (!strcmp(v->key, "pid"))
		m->pid = (pid_t)v->number;
	else if (!strcmp(v->key, "retry"))
		m->retry = (int)v->number;
	else if (!strcmp(v->key, "on_timeout"))
		m->on_timeout = on_timeout_parse(v->text);
	else if (!strcmp(v->key, "notify"))
		monitor_add_notify(m, v, d);
}

/* Exactly one target; with allow_no_target (vigil run brings the command), none
 * is fine but pid, pid_file and match still exclude each other. */
static void monitor_check_targets(struct monitor_config *m, const struct vigil_value *v,
				  size_t n, int allow_no_target, struct diag *d)
{
	size_t count = 0, limit = allow_no_target ? N_TARGET_KEYS - 1 : N_TARGET_KEYS;
	struct buf names = BUF_INIT;

	for (size_t k = 0; k < limit; k++) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v[i].key, target_keys[k]))
				continue;
			if ((count++ && buf_puts(&names, ", ") < 0) ||
			    buf_puts(&names, target_keys[k]) < 0)
				count = 2; /* out of memory: still an error */
			break;
		}
	}
	if (count > 1)
		diag_add(d, m->file, m->line, "monitor", NULL,
			 "%s: set only one target (pid, pid_file, match or command)",
			 buf_cstr(&names));
	else if (count == 0 && !allow_no_target)
		diag_add(d, m->file, m->line, "monitor", NULL,
			 "no target: set one of pid, pid_file, match or command");
	buf_free(&names);
}

/* "conf.d/nightly-export.ini" -> "nightly-export". */
static char *name_from_file(const char *file)
{
	const char *base = strrchr(file, '/');
	size_t len;

	base = base ? base + 1 : file;
	len = strlen(base);
	if (len > 4 && !strcmp(base + len - 4, ".ini"))
		len -= 4;
	return strndup(base, len);
}

static void monitor_fill(const struct raw_section *s, int allow_no_target,
			 struct monitor_config *m, struct diag *d)
{
	struct vigil_value *v;
	size_t n;
	char err[512];

	m->line = s->line;
	if (config_check_options(m->file, s, config_monitor_options, &v, &n, d) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		monitor_apply(m, &v[i], d);
	monitor_check_targets(m, v, n, allow_no_target, d);
	config_values_free(v, n);
	if (m->name || !strcmp(m->file, COMMAND_LINE_FILE))
		return;
	m->name = name_from_file(m->file);
	if (!m->name)
		diag_add(d, m->file, 0, "monitor", "name", "out of memory");
	else if (monitor_name_check(m->name, err, sizeof(err)) < 0)
		diag_add(d, m->file, 0, "monitor", "name", "%s (from the file name: set name)",
			 err);
}

int config_load_monitor(const struct raw_ini *ini, int allow_no_target,
			struct monitor_config *out, struct diag *d)
{
	const struct raw_section *mon = NULL;
	size_t errors = d->errors;

	memset(out, 0, sizeof(*out));
	out->file = strdup(ini->file);
	out->detectors = calloc(ini->n_sections ? ini->n_sections : 1, sizeof(*out->detectors));
	if (!out->file || !out->detectors) {
		diag_add(d, ini->file, 0, NULL, NULL, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < ini->n_sections; i++) {
		const struct raw_section *s = &ini->sections[i];

		if (!strcmp(s->name, "monitor")) {
			mon = s;
		} else if (!strcmp(s->plugin, "monitor")) {
			diag_add(d, ini->file, s->line, s->name, NULL,
				 "the monitor section takes no name: write [monitor]");
		} else if (raw_section_copy(&out->detectors[out->n_detectors], s) < 0) {
			diag_add(d, ini->file, s->line, s->name, NULL, "out of memory");
			goto fail;
		} else {
			out->n_detectors++;
		}
	}
	if (mon)
		monitor_fill(mon, allow_no_target, out, d);
	else
		diag_add(d, ini->file, 0, "monitor", NULL, "missing");
	if (d->errors == errors)
		return 0;
fail:
	monitor_config_free(out);
	return -EINVAL;
}

void monitor_config_free(struct monitor_config *m)
{
	free(m->file);
	free(m->name);
	free(m->pid_file);
	free(m->match);
	free(m->command);
	free(m->log);
	free(m->success);
	for (size_t i = 0; i < m->n_notify; i++)
		free(m->notify[i]);
	free(m->notify);
	for (size_t i = 0; i < m->n_detectors; i++)
		raw_section_clear(&m->detectors[i]);
	free(m->detectors);
	memset(m, 0, sizeof(*m));
}

/* -------------------------------------------------------------------- agent */

static const struct vigil_option agent_options[] = {
	{ "conf_dir", VIGIL_OPT_PATH, 0, NULL, "folder of monitor files (*.ini)" },
	{ "plugin_dir", VIGIL_OPT_PATH, 0, NULL, "folder of plugins" },
	{ "state_dir", VIGIL_OPT_PATH, 0, NULL, "run records and the control socket" },
	{ "spool_dir", VIGIL_OPT_PATH, 0, NULL, "notifications not yet delivered" },
	{ NULL, 0, 0, NULL, NULL },
};

static void agent_fill(struct agent_config *a, const struct raw_section *s, struct diag *d)
{
	char **fields[] = { &a->conf_dir, &a->plugin_dir, &a->state_dir, &a->spool_dir };
	struct vigil_value *v;
	size_t n;

	if (config_check_options(a->file, s, agent_options, &v, &n, d) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; agent_options[k].key; k++) {
			if (strcmp(v[i].key, agent_options[k].key))
				continue;
			free(*fields[k]);
			*fields[k] = strdup(v[i].text);
			if (!*fields[k])
				diag_add(d, a->file, v[i].line, s->name, v[i].key, "out of memory");
		}
	}
	config_values_free(v, n);
}

/* [defaults] holds monitor keys; they are only checked here, merged later. */
static void agent_defaults(struct agent_config *a, const struct raw_section *s, struct diag *d)
{
	struct vigil_value *v;
	size_t n;

	if (config_check_options(a->file, s, config_monitor_options, &v, &n, d) < 0)
		return;
	config_values_free(v, n);
	raw_section_clear(&a->defaults);
	if (raw_section_copy(&a->defaults, s) < 0)
		diag_add(d, a->file, s->line, s->name, NULL, "out of memory");
}

static void agent_notifier(struct agent_config *a, const struct raw_section *s, struct diag *d)
{
	struct raw_section *n;
	int has_type = 0;

	if (!s->instance || !notifier_name_ok(s->instance, strlen(s->instance))) {
		diag_add(d, a->file, s->line, s->name, NULL,
			 "a notifier is named [notifier NAME], NAME made of a-z, 0-9, _ and -");
		return;
	}
	if (!strcmp(s->instance, "stdout") || !strcmp(s->instance, "json")) {
		diag_add(d, a->file, s->line, s->name, NULL,
			 "\"%s\" is reserved for the built-in notify spec", s->instance);
		return;
	}
	for (size_t i = 0; i < s->n_kv; i++)
		has_type |= !strcmp(s->kv[i].key, "type");
	if (!has_type)
		diag_add(d, a->file, s->line, s->name, "type",
			 "missing (the notifier plugin, e.g. webhook or email)");
	n = realloc(a->notifiers, (a->n_notifiers + 1) * sizeof(*n));
	if (!n || raw_section_copy(&n[a->n_notifiers], s) < 0) {
		if (n)
			a->notifiers = n;
		diag_add(d, a->file, s->line, s->name, NULL, "out of memory");
		return;
	}
	a->notifiers = n;
	a->n_notifiers++;
}

int config_load_agent(const struct raw_ini *ini, struct agent_config *out, struct diag *d)
{
	size_t errors = d->errors;

	memset(out, 0, sizeof(*out));
	out->file = strdup(ini->file);
	if (!out->file) {
		diag_add(d, ini->file, 0, NULL, NULL, "out of memory");
		return -EINVAL;
	}
	for (size_t i = 0; i < ini->n_sections; i++) {
		const struct raw_section *s = &ini->sections[i];

		if (!strcmp(s->name, "agent"))
			agent_fill(out, s, d);
		else if (!strcmp(s->name, "defaults"))
			agent_defaults(out, s, d);
		else if (!strcmp(s->plugin, "notifier"))
			agent_notifier(out, s, d);
		else
			diag_add(d, ini->file, s->line, s->name, NULL,
				 "unknown section (known: agent, defaults, notifier NAME)");
	}
	if (d->errors == errors)
		return 0;
	agent_config_free(out);
	return -EINVAL;
}

void agent_config_free(struct agent_config *a)
{
	free(a->file);
	free(a->conf_dir);
	free(a->plugin_dir);
	free(a->state_dir);
	free(a->spool_dir);
	raw_section_clear(&a->defaults);
	for (size_t i = 0; i < a->n_notifiers; i++)
		raw_section_clear(&a->notifiers[i]);
	free(a->notifiers);
	memset(a, 0, sizeof(*a));
}
