/* Diagnostics: messages about configuration and input, collected so that
 * `vigil check` prints them all, the agent logs them, and nothing exits. Each
 * message reads "FILE:LINE: [section] key: what is wrong". */
#ifndef VIGIL_DIAG_H
#define VIGIL_DIAG_H

#include <stddef.h>
#include <stdio.h>

struct diag {
	char **lines;
	size_t n;
	size_t errors;
};

/* Append one message. file may be NULL; line 0 omits the line; section and key
 * may be NULL. Formats "file:line: [section] key: message". */
void diag_add(struct diag *d, const char *file, unsigned line, const char *section,
	      const char *key, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void diag_free(struct diag *d);
/* Print each message on its own line. */
void diag_print(const struct diag *d, FILE *out);

#endif
