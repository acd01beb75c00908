/* Diagnostics collected for `vigil check` and the agent's log; see diag.h. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>

#include "buf.h"

/* "file:line: [section] key: message", leaving out what is absent. */
static int diag_prefix(struct buf *b, const char *file, unsigned line, const char *section,
		       const char *key)
{
	int r = 0;

	if (file && line)
		r = buf_printf(b, "%s:%u: ", file, line);
	else if (file)
		r = buf_printf(b, "%s: ", file);
	if (r == 0 && section && key)
		r = buf_printf(b, "[%s] %s: ", section, key);
	else if (r == 0 && section)
		r = buf_printf(b, "[%s]: ", section);
	else if (r == 0 && key)
		r = buf_printf(b, "%s: ", key);
	return r;
}

void diag_add(struct diag *d, const char *file, unsigned line, const char *section,
	      const char *key, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char **lines;
	va_list ap;
	int r;

	/* Counted even if memory runs out: an error must never be lost silently. */
	d->errors++;
	r = diag_prefix(&b, file, line, section, key);
	if (r == 0) {
		va_start(ap, fmt);
		r = buf_vprintf(&b, fmt, ap);
		va_end(ap);
	}
	if (r < 0) {
		buf_free(&b);
		return;
	}
	lines = realloc(d->lines, (d->n + 1) * sizeof(*lines));
	if (!lines) {
		buf_free(&b);
		return;
	}
	d->lines = lines;
	d->lines[d->n++] = buf_steal(&b);
}

void diag_free(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->lines[i]);
	free(d->lines);
	d->lines = NULL;
	d->n = 0;
	d->errors = 0;
}

void diag_print(const struct diag *d, FILE *out)
{
	for (size_t i = 0; i < d->n; i++)
		fprintf(out, "%s\n", d->lines[i]);
}
