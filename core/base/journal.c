/* The event journal of a run. See journal.h. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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

void journal_begin(struct journal *j)
{
	journal_close(j);
	j->fresh = true;
}

int journal_add(struct journal *j, const char *json, size_t len)
{
	if (buf_append(&j->pending, json, len) != 0 || buf_append(&j->pending, "\n", 1) != 0)
		return -ENOMEM;
	return 0;
}

/* The run's journal, opened once for the run: a fresh one aside (tmp). */
static int journal_open_fd(struct journal *j, const char *dir, const char *name, char *path,
			   char *tmp)
{
	if (journal_path(dir, name, path, 4096) != 0)
		return -ENAMETOOLONG;
	j->fd = j->fresh ? journal_create(path, tmp, 4200)
			 : open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (j->fd < 0)
		return j->fd == -ENAMETOOLONG ? j->fd : -errno;
	j->is_open = true;
	state_share_fd(dir, j->fd); /* shared like the run's record, or the owner's only */
	return 0;
}

int journal_flush(struct journal *j, const char *dir, const char *name)
{
	char path[4096], tmp[4200];
	size_t len = j->pending.len;
	ssize_t n;
	int r = 0;

	if (len == 0)
		return 0;
	if (!j->is_open && (r = journal_open_fd(j, dir, name, path, tmp)) != 0) {
		buf_reset(&j->pending);
		return r;
	}
	/* One write: O_APPEND keeps the turn's lines whole for a reader. */
	n = write(j->fd, j->pending.p, len);
	if (n != (ssize_t)len)
		r = n < 0 ? -errno : -EIO;
	buf_reset(&j->pending);
	if (j->fresh && r == 0 && rename(tmp, path) != 0)
		r = -errno;
	if (j->fresh && r != 0)
		unlink(tmp);
	j->fresh = false;
	if (r != 0)
		journal_close(j);
	return r;
}

void journal_close(struct journal *j)
{
	if (j->is_open)
		close(j->fd);
	j->is_open = false;
}

void journal_free(struct journal *j)
{
	journal_close(j);
	buf_free(&j->pending);
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
