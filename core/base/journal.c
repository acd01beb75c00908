/* The event journal of a run. See journal.h. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <json-c/json.h>

#include "state.h"

int journal_path(const char *dir, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.journal", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A new run's journal is made aside and renamed in: a follower never sees a
 * file that is half the old run and half the new one. */
static int journal_create(const char *path, char *tmp, size_t len)
{
	int n = snprintf(tmp, len, "%s.%d.tmp", path, (int)getpid());

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

int journal_append(const char *dir, const char *name, const char *json, size_t len, bool fresh)
{
	char path[4096], tmp[4200];
	struct iovec iov[2] = {{(void *)json, len}, {"\n", 1}};
	int fd, r = 0;

	if (journal_path(dir, name, path, sizeof(path)) != 0)
		return -ENAMETOOLONG;
	fd = fresh ? journal_create(path, tmp, sizeof(tmp))
		   : open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return fd == -ENAMETOOLONG ? fd : -errno;
	state_share_fd(dir, fd); /* shared like the run's record, or the owner's only */
	/* One write: O_APPEND keeps a line whole for a reader. */
	if (writev(fd, iov, 2) != (ssize_t)len + 1)
		r = -EIO;
	if (close(fd) != 0 && r == 0)
		r = -errno;
	if (fresh && r == 0 && rename(tmp, path) != 0)
		r = -errno;
	if (fresh && r != 0)
		unlink(tmp);
	return r;
}

static const char *const envelope[] = {
	"v", "id", "time", "host", "monitor", "run", "detector", "kind", "pid", "message",
};

static bool in_envelope(const char *key)
{
	for (size_t i = 0; i < sizeof(envelope) / sizeof(envelope[0]); i++)
		if (strcmp(envelope[i], key) == 0)
			return true;
	return false;
}

static char type_letter(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_boolean: return 'b';
	case json_type_double: return 'd';
	case json_type_int: return 'i';
	case json_type_string: return 's';
	case json_type_array: return 'S';
	default: return 'n';
	}
}

int journal_types(const char *json, size_t len, struct buf *types)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = tok ? json_tokener_parse_ex(tok, json, (int)len) : NULL;
	int r = -EINVAL;

	if (o && json_object_is_type(o, json_type_object)) {
		r = 0;
		json_object_object_foreach(o, key, val) {
			char c = type_letter(val);

			if (!in_envelope(key) && buf_append(types, &c, 1) != 0)
				r = -ENOMEM;
		}
	}
	json_object_put(o);
	if (tok)
		json_tokener_free(tok);
	return r;
}
