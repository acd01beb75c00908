/* Shared by config.c (reading), config_values.c (value parsers) and
 * config_validate.c (validation) only; everyone else uses config.h. */
#ifndef VIGIL_CONFIG_INTERNAL_H
#define VIGIL_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config.h"

/* Format the reason into err and return rc, so that each check is one line. */
int config_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "scheme://...", scheme as RFC 3986 spells it: an option of type URL and a
 * webhook:URL notify spec. 0 or -EINVAL. */
int config_url_check(const char *text);

/* Free what a section owns and zero it. */
void raw_section_clear(struct raw_section *s);
/* A deep copy (the name normalised again); 0 or -ENOMEM with dst cleared. */
int raw_section_copy(struct raw_section *dst, const struct raw_section *src);

#endif
