/* A small growable byte buffer. p stays NULL until the first write; after
 * that it is always NUL-terminated (the NUL is not counted in len), so
 * buf_cstr() is cheap. Every function that allocates returns 0 or -ENOMEM and
 * leaves the buffer unchanged on failure. */
#ifndef VIGIL_BUF_H
#define VIGIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *p;
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);
void buf_free(struct buf *b);
/* Make room for `extra` more bytes plus the terminating NUL. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *ptr, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Empty the buffer, keeping its memory. */
void buf_reset(struct buf *b);
/* The contents as a C string: "" for an untouched buffer, never NULL. */
const char *buf_cstr(const struct buf *b);
/* Hand the contents to the caller (malloc'd, NUL-terminated, or NULL when the
 * buffer was never written) and leave the buffer empty. */
char *buf_steal(struct buf *b);

#endif
