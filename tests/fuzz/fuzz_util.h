/* Helpers shared by the fuzz targets: the input as a file, temporary folders.
 * Header-only (static functions) so each target stays one .c file. */
#ifndef VIGIL_FUZZ_UTIL_H
#define VIGIL_FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tmp_tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write all of p[0..len) to fd; abort on failure: a harness error, not a
 * finding. */
static inline void fuzz_write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t w = write(fd, c, len);

		if (w <= 0)
			abort();
		c += w;
		len -= (size_t)w;
	}
}

/* The input as an anonymous file; its path (/proc/self/fd/N) in path.
 * Returns the fd (the caller closes it). */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *path, size_t len)
{
	int fd = memfd_create("fuzz-input", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	fuzz_write_all(fd, data, size);
	snprintf(path, len, "/proc/self/fd/%d", fd);
	return fd;
}

/* Remove a folder tree (the harness's own temporary files only). */
static inline void fuzz_rm_rf(const char *path)
{
	tmp_tree_remove(path);
}

/* A new temporary folder into buf: under $TMPDIR, else /dev/shm (memory:
 * the spool's fsyncs cost nothing there), else /tmp. */
static inline void fuzz_mkdtemp(char *buf, size_t len, const char *tag)
{
	const char *tmp = getenv("TMPDIR");

	if (!tmp || !*tmp)
		tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(buf, len, "%s/vigil-fuzz-%s-XXXXXX", tmp, tag);
	if (!mkdtemp(buf))
		abort();
}

#endif
