/* INI configuration: parse (inih) -> validate -> commit; see config.h.
 *
 * This file is the parse step: it reads a file into raw sections and keys and
 * judges nothing but the INI syntax. The values' syntax is config_values.c's,
 * the meaning of sections and keys config_validate.c's.
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "buf.h"
#include "config_internal.h"

#define SYNTAX_ERROR "syntax error: expected key = value or [section]"

/* ------------------------------------------------------------ raw sections */

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

void raw_section_clear(struct raw_section *s)
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

int raw_section_copy(struct raw_section *dst, const struct raw_section *src)
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

struct ini_index {
	long *slots; /* -1 when free */
	size_t cap, n;
};

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
	size_t cont_cap;         /* allocated size of the value being continued */
	size_t cont_len;         /* and its length (0: not known yet) */
	struct ini_index index;  /* section names seen: duplicates in O(1) */
};

/* The accepted sections by name: an open-addressing table of indices into
 * ini->sections, so that a file of many sections is read in linear time (a
 * scan per section made 100,000 sections cost 44 s of CPU). */
static uint64_t ini_name_hash(const char *name)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ull;
	return h;
}

static int ini_index_grow(struct ini_index *ix, const struct raw_ini *ini)
{
	size_t cap = ix->cap ? ix->cap * 2 : 64;
	long *slots = malloc(cap * sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++)
		slots[i] = -1;
	for (size_t i = 0; i < ix->cap; i++) {
		size_t j;

		if (ix->slots[i] < 0)
			continue;
		j = ini_name_hash(ini->sections[ix->slots[i]].name) & (cap - 1);
		while (slots[j] >= 0)
			j = (j + 1) & (cap - 1);
		slots[j] = ix->slots[i];
	}
	free(ix->slots);
	ix->slots = slots;
	ix->cap = cap;
	return 0;
}

/* The section named like sections[idx] if one was accepted before; else adds
 * idx and returns NULL. Sets *nomem on failure. */
static struct raw_section *ini_index_claim(struct ini_index *ix, struct raw_ini *ini, long idx,
					   int *nomem)
{
	const char *name = ini->sections[idx].name;
	size_t j;

	if ((ix->n + 1) * 2 > ix->cap && ini_index_grow(ix, ini) < 0) {
		*nomem = 1;
		return NULL;
	}
	j = ini_name_hash(name) & (ix->cap - 1);
	for (; ix->slots[j] >= 0; j = (j + 1) & (ix->cap - 1))
		if (strcmp(ini->sections[ix->slots[j]].name, name) == 0)
			return &ini->sections[ix->slots[j]];
	ix->slots[j] = idx;
	ix->n++;
	return NULL;
}

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
	int was_space = 0, words, nomem = 0;
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
	dup = NULL;
	if (words >= 1 && words <= 2)
		dup = ini_index_claim(&st->index, st->ini, (long)st->ini->n_sections - 1, &nomem);
	if (nomem) {
		st->rc = -ENOMEM;
	} else if (words == 0) {
		ini_syntax_error(st, st->lineno, "syntax error: empty section name");
	} else if (words > 2) {
		diag_add(st->d, st->file, st->lineno, sec->name, NULL,
			 "a section is named PLUGIN or PLUGIN NAME");
	} else if (dup) {
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

/* Appends a continuation line to the value, joined with one space. The
 * buffer grows by doubling: re-joining the whole value per line made a long
 * continued value quadratic (35 s for a long `success` chain). 0 or -ENOMEM. */
static int ini_continue_value(struct ini_state *st, struct raw_kv *kv, const char *value)
{
	size_t have = st->cont_cap ? st->cont_len : strlen(kv->value), add = strlen(value);
	size_t need = have + 1 + add + 1;
	char *p;

	if (need > st->cont_cap) {
		size_t cap = st->cont_cap ? st->cont_cap : 64;

		while (cap < need)
			cap *= 2;
		if (!(p = realloc(kv->value, cap)))
			return -ENOMEM;
		kv->value = p;
		st->cont_cap = cap;
	}
	if (have)
		kv->value[have++] = ' ';
	memcpy(kv->value + have, value, add + 1);
	st->cont_len = have + add;
	return 0;
}

/* A key = value line, or an indented continuation of the previous value
 * (joined with one space). 0 or -ENOMEM. */
static int ini_add_kv(struct ini_state *st, const char *name, const char *value)
{
	int continuation = st->have_prev && st->indented;
	struct raw_section *sec = ini_cur(st);
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
	if (!continuation || !sec->n_kv) {
		st->cont_cap = 0;
		return raw_kv_add(sec, name, value, st->lineno);
	}
	return ini_continue_value(st, &sec->kv[sec->n_kv - 1], value);
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
	free(st.index.slots);
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
