/* See safe_file.h. */
#include "safe_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* A folder and a name in it; dir_fd is O_PATH, so the folder needs no read
 * permission, only search. */
struct parent {
	int dir_fd;
	char dir[PATH_MAX];
	const char *name;
	bool shared; /* others can write the folder */
};

static int fail(char *err, size_t errlen, int rc, const char *path, const char *why)
{
	snprintf(err, errlen, "%s: %s", path, why);
	return rc;
}

/* Writable by a group or by everyone, or owned by a user who is neither us nor
 * root (an owner may always chmod): a folder where a file can be planted. */
static bool folder_shared(const struct stat *st)
{
	return (st->st_mode & (S_IWGRP | S_IWOTH)) || (st->st_uid != geteuid() && st->st_uid != 0);
}

static int parent_open(const char *path, struct parent *p, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	struct stat st;

	p->name = slash ? slash + 1 : path;
	if (!*p->name || strcmp(p->name, ".") == 0 || strcmp(p->name, "..") == 0)
		return fail(err, errlen, -EISDIR, path, "not a file name");
	if (!slash)
		snprintf(p->dir, sizeof(p->dir), ".");
	else if (slash == path)
		snprintf(p->dir, sizeof(p->dir), "/");
	else if ((size_t)(slash - path) >= sizeof(p->dir))
		return fail(err, errlen, -ENAMETOOLONG, path, "path too long");
	else
		snprintf(p->dir, sizeof(p->dir), "%.*s", (int)(slash - path), path);
	p->dir_fd = open(p->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (p->dir_fd < 0 || fstat(p->dir_fd, &st) != 0) {
		int rc = -errno;

		if (p->dir_fd >= 0)
			close(p->dir_fd);
		snprintf(err, errlen, "%s: the folder %s: %s", path, p->dir, strerror(-rc));
		return rc;
	}
	p->shared = folder_shared(&st);
	return 0;
}

/* In a shared folder, what we opened must be a regular file of ours with no
 * other name: else it was planted to redirect our writes. NULL when fine. */
static const char *planted(const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_uid != geteuid())
		return "owned by another user";
	if (st->st_nlink != 1)
		return "a hard link to another file";
	return NULL;
}

static int refuse(const struct parent *p, const char *path, const char *why, char *err,
		  size_t errlen)
{
	snprintf(err, errlen, "%s: %s in %s, a folder others can write: refused", path, why,
		 p->dir);
	return -EPERM;
}

int safe_file_append(const char *path, mode_t mode, char *err, size_t errlen)
{
	struct parent p;
	struct stat st;
	const char *why;
	int fd, rc = parent_open(path, &p, err, errlen);

	if (rc < 0)
		return rc;
	/* O_NONBLOCK: a FIFO planted there must not hang us in open. */
	fd = openat(p.dir_fd, p.name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY |
		    O_NONBLOCK | (p.shared ? O_NOFOLLOW : 0), mode);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP && p.shared)
			rc = refuse(&p, path, "a symbolic link", err, errlen);
		else
			fail(err, errlen, rc, path, strerror(-rc));
	} else if (fstat(fd, &st) != 0) {
		rc = fail(err, errlen, -errno, path, strerror(errno));
	} else if (p.shared && (why = planted(&st))) {
		rc = refuse(&p, path, why, err, errlen);
	} else if (fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) != 0) {
		rc = fail(err, errlen, -errno, path, strerror(errno));
	}
	close(p.dir_fd);
	if (rc < 0 && fd >= 0)
		close(fd);
	return rc < 0 ? rc : fd;
}

/* A new file ".NAME.XXXXXXXX" in the folder, never an existing one. */
static int temp_create(const struct parent *p, mode_t mode, char *tmp, size_t len)
{
	for (int tries = 0; tries < 100; tries++) {
		unsigned int r;
		int fd;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (unsigned int)getpid() * 2654435761u + (unsigned int)tries;
		snprintf(tmp, len, ".%.200s.%08x", p->name, r);
		fd = openat(p->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    mode);
		if (fd >= 0 || errno != EEXIST)
			return fd < 0 ? -errno : fd;
	}
	return -EEXIST;
}

int safe_file_write_all(int fd, const void *buf, size_t len)
{
	const char *data = buf;

	while (len) {
		ssize_t w = write(fd, data, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

int safe_file_replace(const char *path, const void *data, size_t len, mode_t mode, char *err,
		      size_t errlen)
{
	struct parent p;
	char tmp[256];
	int fd, rc = parent_open(path, &p, err, errlen);

	if (rc < 0)
		return rc;
	fd = temp_create(&p, mode, tmp, sizeof(tmp));
	if (fd < 0) {
		rc = fd;
		snprintf(err, errlen, "%s: cannot create a temporary file in %s: %s", path, p.dir,
			 strerror(-rc));
	} else {
		rc = safe_file_write_all(fd, data, len);
		if (close(fd) != 0 && rc == 0)
			rc = -errno;
		if (rc == 0 && renameat(p.dir_fd, tmp, p.dir_fd, p.name) != 0)
			rc = -errno;
		if (rc < 0) {
			unlinkat(p.dir_fd, tmp, 0);
			fail(err, errlen, rc, path, strerror(-rc));
		}
	}
	close(p.dir_fd);
	return rc;
}
