/* The durable spool. See spool.h for the layout and the sharing rules. */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event_json_decode.h"
#include "state.h"

/* Up to this many files in a batch, fdatasync each; beyond, one syncfs. On a
 * journaling file system every fsync is a journal commit (milliseconds), so a
 * burst of events costs one flush instead of one per event. */
#define SPOOL_SYNC_EACH_MAX 2
#define SPOOL_MAX_FILE (4u << 20)

struct spool {
	char *path;
	int dirfd;
	int deadfd;
	int lockfd;  /* .lock, flock'd when owner */
	int claimfd; /* .claim-<tag>, flock'd while we live */
	bool owner;
	char tag[17];
	uint64_t seq;
};

const char *spool_default_dir(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		snprintf(buf, len, "/var/lib/vigil/spool");
	else if (xdg && *xdg)
		snprintf(buf, len, "%s/vigil/spool", xdg);
	else
		snprintf(buf, len, "%s/.local/state/vigil/spool", home ? home : "/tmp");
	return buf;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static bool safe_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

void spool_folder_name(const char *plugin, const char *spec, bool named, char *out,
		       size_t len)
{
	if (named && safe_name(spec))
		snprintf(out, len, "%s", spec);
	else
		snprintf(out, len, "%.32s-%012llx", safe_name(plugin) ? plugin : "notifier",
			 (unsigned long long)(fnv1a(spec) & 0xffffffffffffull));
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* .claim-<tag>: made under a temporary name and locked before it is visible,
 * so no owner ever sees it unlocked while we live. */
static int take_claim(struct spool *s)
{
	uint64_t r = 0;
	char tmp[64], name[64];
	int fd;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);
	snprintf(s->tag, sizeof(s->tag), "%016llx", (unsigned long long)r);
	snprintf(tmp, sizeof(tmp), ".claimtmp-%s", s->tag);
	snprintf(name, sizeof(name), ".claim-%s", s->tag);
	fd = openat(s->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0 || renameat(s->dirfd, tmp, s->dirfd, name) != 0) {
		int e = -errno;

		unlinkat(s->dirfd, tmp, 0);
		close(fd);
		return e;
	}
	s->claimfd = fd;
	return 0;
}

int spool_open(const char *root, const char *name, struct spool **out, char *err,
	       size_t errlen)
{
	struct spool *s = calloc(1, sizeof(*s));
	char path[4096];
	int r;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->dirfd = s->deadfd = s->lockfd = s->claimfd = -1;
	snprintf(path, sizeof(path), "%s/%s/dead", root, name);
	r = mkdir_p(path, 0700);
	path[strlen(path) - 5] = '\0';
	if (r == 0 && !(s->path = strdup(path)))
		r = -ENOMEM;
	if (r == 0 && (s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = -errno;
	if (r == 0 && (s->deadfd = openat(s->dirfd, "dead", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		r = -errno;
	if (r == 0 && (s->lockfd = openat(s->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
		r = -errno;
	if (r == 0)
		r = take_claim(s);
	if (r) {
		snprintf(err, errlen, "spool %s: %s", path, strerror(-r));
		spool_close(s);
		return r;
	}
	spool_try_own(s);
	*out = s;
	return 0;
}

bool spool_try_own(struct spool *s)
{
	if (!s->owner && flock(s->lockfd, LOCK_EX | LOCK_NB) == 0)
		s->owner = true;
	return s->owner;
}

static const char *file_tag(const char *name);

static bool has_tag_files(struct spool *s)
{
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	bool found = false;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return true;
	}
	while (!found && (de = readdir(d))) {
		const char *t = file_tag(de->d_name);

		found = t && strcmp(t, s->tag) == 0;
	}
	closedir(d);
	return found;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	/* With files of ours left, the claim file stays: the next owner finds it
	 * unlocked, adopts them and removes it. */
	if (s->claimfd >= 0) {
		if (!has_tag_files(s)) {
			char name[64];

			snprintf(name, sizeof(name), ".claim-%s", s->tag);
			unlinkat(s->dirfd, name, 0);
		}
		close(s->claimfd);
	}
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->deadfd >= 0)
		close(s->deadfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->path);
	free(s);
}

const char *spool_path(const struct spool *s) { return s->path; }
bool spool_is_owner(const struct spool *s) { return s->owner; }

int spool_encode(struct buf *b, const struct vigil_record *rec)
{
	if (buf_append(b, rec->json, rec->json_len) || buf_append(b, "\n", 1) ||
	    event_json_types(b, rec->event) || buf_append(b, "\n", 1))
		return -ENOMEM;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Write one item to its temporary name; fd left open for the flush. */
static int write_tmp(struct spool *s, struct spool_item *it, char *tmp, size_t tmplen,
		     int *fdp)
{
	struct buf b;
	int fd, r;

	snprintf(it->name, sizeof(it->name), "%.32s-%08llx.%s", it->rec->id,
		 (unsigned long long)++s->seq, s->tag);
	snprintf(tmp, tmplen, ".tmp-%s", it->name);
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	buf_init(&b);
	r = spool_encode(&b, it->rec);
	if (r == 0)
		r = write_all(fd, b.p, b.len);
	buf_free(&b);
	if (r) {
		close(fd);
		unlinkat(s->dirfd, tmp, 0);
		return r;
	}
	*fdp = fd;
	return 0;
}

int spool_write(struct spool *s, struct spool_item *items, size_t n)
{
	int *fds = calloc(n ? n : 1, sizeof(*fds));
	char tmp[128];
	int first = 0;
	size_t ok = 0;

	if (!fds)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		fds[i] = -1;
		items[i].error = write_tmp(s, &items[i], tmp, sizeof(tmp), &fds[i]);
		ok += items[i].error == 0;
	}
	if (ok > SPOOL_SYNC_EACH_MAX && syncfs(s->dirfd) != 0)
		first = -errno;
	for (size_t i = 0; i < n; i++) {
		if (items[i].error == 0 && (first || (ok <= SPOOL_SYNC_EACH_MAX && fdatasync(fds[i]))))
			items[i].error = first ? first : -errno;
		snprintf(tmp, sizeof(tmp), ".tmp-%s", items[i].name);
		if (items[i].error == 0 && renameat(s->dirfd, tmp, s->dirfd, items[i].name))
			items[i].error = -errno;
		if (fds[i] >= 0) {
			close(fds[i]);
			if (items[i].error)
				unlinkat(s->dirfd, tmp, 0);
		}
	}
	if (ok && fsync(s->dirfd) != 0)
		for (size_t i = 0; i < n; i++)
			if (items[i].error == 0)
				items[i].error = -errno;
	for (size_t i = 0; i < n; i++) {
		if (items[i].error) {
			if (!first)
				first = items[i].error;
			items[i].name[0] = '\0';
		}
	}
	free(fds);
	return first;
}

int spool_remove(struct spool *s, const char *name)
{
	return unlinkat(s->dirfd, name, 0) == 0 || errno == ENOENT ? 0 : -errno;
}

int spool_bury(struct spool *s, const char *name)
{
	if (renameat(s->dirfd, name, s->deadfd, name) != 0)
		return -errno;
	fsync(s->deadfd);
	fsync(s->dirfd);
	return 0;
}

/* A notification file: "<32 hex>-<8+ hex>.<16 hex tag>". */
static const char *file_tag(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (name[0] == '.' || strlen(name) < 44 || !dot || strlen(dot + 1) != 16)
		return NULL;
	return dot + 1;
}

/* Is the writer with this tag alive (its claim file locked)? */
static bool tag_alive(struct spool *s, const char *tag)
{
	char name[64];
	int fd;
	bool alive;

	if (strcmp(tag, s->tag) == 0)
		return true;
	snprintf(name, sizeof(name), ".claim-%s", tag);
	fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	alive = flock(fd, LOCK_EX | LOCK_NB) != 0;
	if (!alive)
		unlinkat(s->dirfd, name, 0); /* held by us now: nobody else can be it */
	close(fd);
	return alive;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void spool_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Rename an orphan to our tag (the sort key, its prefix, is kept). */
static char *adopt_one(struct spool *s, const char *name)
{
	char to[128];
	const char *tag = file_tag(name);

	snprintf(to, sizeof(to), "%.*s%s", (int)(tag - name), name, s->tag);
	if (renameat(s->dirfd, name, s->dirfd, to) != 0)
		return NULL;
	return strdup(to);
}

/* Temporary files of a dead writer never reached their first attempt. */
static void drop_stale_tmp(struct spool *s, const char *name)
{
	const char *tag = strrchr(name, '.');

	if (tag && strlen(tag + 1) == 16 && !tag_alive(s, tag + 1))
		unlinkat(s->dirfd, name, 0);
}

int spool_adopt(struct spool *s, char ***names, size_t *n)
{
	int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while (s->owner && (de = readdir(d))) {
		const char *tag = file_tag(de->d_name);
		char *got;

		if (strncmp(de->d_name, ".tmp-", 5) == 0)
			drop_stale_tmp(s, de->d_name);
		if (!tag || strcmp(tag, s->tag) == 0 || tag_alive(s, tag))
			continue;
		if (*n == cap) {
			char **g = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));

			if (!g)
				break;
			v = g;
		}
		if ((got = adopt_one(s, de->d_name)))
			v[(*n)++] = got;
	}
	closedir(d);
	if (*n)
		fsync(s->dirfd);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_names);
	*names = v;
	return 0;
}

static int read_file_at(int dirfd, const char *name, char **out, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *p;
	ssize_t r;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > SPOOL_MAX_FILE) {
		close(fd);
		return -EINVAL;
	}
	p = malloc((size_t)st.st_size + 1);
	r = p ? read(fd, p, (size_t)st.st_size) : -1;
	close(fd);
	if (r != st.st_size) {
		free(p);
		return -EIO;
	}
	p[r] = '\0';
	*out = p;
	*len = (size_t)r;
	return 0;
}

int spool_load(struct spool *s, const char *name, struct stored_record **out, char **host,
	       char *err, size_t errlen)
{
	char *data = NULL, *nl;
	size_t len = 0;
	int r = read_file_at(s->dirfd, name, &data, &len);

	*out = NULL;
	*host = NULL;
	if (r) {
		snprintf(err, errlen, "cannot read %s: %s", name, strerror(-r));
		return r;
	}
	nl = memchr(data, '\n', len);
	if (!nl || data[len - 1] != '\n') {
		snprintf(err, errlen, "%s: truncated", name);
		free(data);
		return -EINVAL;
	}
	data[len - 1] = '\0';
	r = event_json_decode(data, (size_t)(nl - data), nl + 1, out, host, err, errlen);
	free(data);
	return r;
}

static size_t count_files(int dirfd, const char *sub)
{
	int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t n = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)))
		n += file_tag(de->d_name) != NULL;
	closedir(d);
	return n;
}

int spool_count_all(const char *root, spool_count_cb cb, void *data)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return errno == ENOENT ? 0 : -errno;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN))
			continue;
		if (n == cap) {
			char **g = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!g)
				break;
			v = g;
		}
		if ((v[n] = strdup(de->d_name)))
			n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_names);
	for (size_t i = 0; i < n; i++) {
		int sub = openat(dirfd(d), v[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (sub < 0)
			continue;
		cb(data, v[i], count_files(sub, "."), count_files(sub, "dead"));
		close(sub);
	}
	spool_names_free(v, n);
	closedir(d);
	return 0;
}
