/* Creating and appending to files in folders other users may write (/tmp, a
 * shared job folder), without being turned against ourselves: everything is
 * opened relative to the folder's descriptor, so the folder cannot be swapped
 * between the checks and the open. In such a folder a symbolic link, a hard
 * link, a file of another user or anything but a regular file is refused with
 * the reason, where a plain open would follow it and let a root vigil truncate
 * or append to any file of the system. A folder only we (or root) can write is
 * trusted: there, the usual rules apply. */
#ifndef VIGIL_SAFE_FILE_H
#define VIGIL_SAFE_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Open path for appending, creating it with mode when absent: a file
 * descriptor (O_CLOEXEC), or -errno with "PATH: reason" in err. */
int safe_file_append(const char *path, mode_t mode, char *err, size_t errlen);

/* Replace path with data atomically: a new temporary file in the same folder
 * (O_EXCL, O_NOFOLLOW, a random name), then renameat over path, which replaces
 * a planted link instead of writing through it. 0, or -errno with the reason. */
int safe_file_replace(const char *path, const void *data, size_t len, mode_t mode, char *err,
		      size_t errlen);

/* Write all of buf (a short write or EINTR continues). 0 or -errno. */
int safe_file_write_all(int fd, const void *buf, size_t len);

#endif
