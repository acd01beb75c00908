/* The durable spool. See spool.h for the layout and the sharing rules. */
#include "spool.h"

#include <dirent.h>
#include <endian.h>
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

#include "base/event_json_decode.h"
#include "base/state.h"

#define SEG_MAGIC "VIGILSG1"
#define SEG_MAGIC_LEN 8
#define SEG_REC_MAX (4u << 20)   /* one record's payload */
#define SEG_FILE_MAX (256u << 20)

/* One segment of ours: which records are done, which acks are unwritten. */
struct spool_seg {
	struct spool_seg *next, *prev;
	char name[96];
	uint32_t n, done;
	uint8_t *bits;     /* done records */
	uint32_t *unflushed;
	size_t n_unflushed, cap_unflushed;
	int ackfd;         /* .ack-<name>, opened at the first flush */
	bool has_ack;      /* .ack-<name> exists */
	bool replaying;    /* being handed out by spool_adopt: kept */
};

struct spool {
	char *path;
	int dirfd;
	int deadfd;
	int lockfd;  /* .lock, flock'd when owner */
	int claimfd; /* .claim-<tag>, flock'd while we live */
	bool owner;
	char tag[17];
	uint64_t seq;
	struct spool_seg *segs; /* ours, oldest first */
	struct spool_seg *segs_tail;
	size_t n_dirty;         /* segments with unflushed acks */
};

const char *spool_default_dir(char *buf, size_t len)
{
	return state_home_dir("spool", buf, len);
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

static void seg_free(struct spool_seg *g);

void spool_close(struct spool *s)
{
	bool left;

	if (!s)
		return;
	spool_flush(s);
	left = s->segs != NULL;
	while (s->segs) {
		struct spool_seg *g = s->segs;

		s->segs = g->next;
		seg_free(g);
	}
	/* With segments of ours left, the claim file stays: the next owner finds
	 * it unlocked, adopts them and removes it. */
	if (s->claimfd >= 0) {
		if (!left) {
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


/* ------------------------------------------------------------ records */

int spool_encode(struct buf *b, const struct vigil_record *rec)
{
	if (buf_append(b, rec->json, rec->json_len) || buf_append(b, "\n", 1) ||
	    event_json_types(b, rec->event) || buf_append(b, "\n", 1))
		return -ENOMEM;
	return 0;
}

int spool_decode(const char *p, size_t len, struct stored_record **out, char **host,
		 char *err, size_t errlen)
{
	char *data, *nl;
	int r;

	*out = NULL;
	*host = NULL;
	if (len < 2 || p[len - 1] != '\n' || !(nl = memchr(p, '\n', len)) || nl == p + len - 1) {
		snprintf(err, errlen, "truncated record");
		return -EINVAL;
	}
	data = malloc(len);
	if (!data)
		return -ENOMEM;
	memcpy(data, p, len);
	data[len - 1] = '\0';
	r = event_json_decode(data, (size_t)(nl - p), data + (nl - p) + 1, out, host, err,
			      errlen);
	free(data);
	return r;
}

/* CRC-32 (IEEE, reflected), a nibble at a time: small table, fast enough for
 * a few MB a second. */
static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
	static const uint32_t tab[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
		0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		c = (c >> 4) ^ tab[c & 15];
		c = (c >> 4) ^ tab[c & 15];
	}
	return ~c;
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

static int put_record(struct buf *b, const struct vigil_record *rec)
{
	size_t at = b->len;
	uint32_t hdr[2] = {0, 0};
	size_t len;

	if (buf_append(b, (const char *)hdr, sizeof(hdr)) || spool_encode(b, rec)) {
		b->len = at;
		return -ENOMEM;
	}
	len = b->len - at - sizeof(hdr);
	if (len > SEG_REC_MAX) {
		b->len = at;
		return -E2BIG;
	}
	hdr[0] = htole32((uint32_t)len);
	hdr[1] = htole32(crc32_ieee((const unsigned char *)b->p + at + sizeof(hdr), len));
	memcpy(b->p + at, hdr, sizeof(hdr));
	return 0;
}

/* The next record of a segment at *off: 1 (payload in *p, *len), 0 at the
 * end, -EINVAL for a torn or corrupt record (nothing after it is trusted). */
static int seg_next(const char *data, size_t size, size_t *off, const char **p, size_t *len)
{
	uint32_t hdr[2];

	if (*off == size)
		return 0;
	if (size - *off < sizeof(hdr))
		return -EINVAL;
	memcpy(hdr, data + *off, sizeof(hdr));
	*len = le32toh(hdr[0]);
	if (*len > SEG_REC_MAX || *len > size - *off - sizeof(hdr))
		return -EINVAL;
	*p = data + *off + sizeof(hdr);
	if (crc32_ieee((const unsigned char *)*p, *len) != le32toh(hdr[1]))
		return -EINVAL;
	*off += sizeof(hdr) + *len;
	return 1;
}

static int read_file_at(int dirfd, const char *name, size_t max, char **out, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t got = 0;
	char *p;

	*out = NULL;
	*len = 0;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || st.st_size < 0 || (size_t)st.st_size > max) {
		close(fd);
		return -EINVAL;
	}
	p = malloc((size_t)st.st_size + 1);
	while (p && got < (size_t)st.st_size) {
		ssize_t r = read(fd, p + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!p || got != (size_t)st.st_size) {
		free(p);
		return p ? -EIO : -ENOMEM;
	}
	*out = p;
	*len = got;
	return 0;
}

/* ----------------------------------------------------------- segments */

static void seg_free(struct spool_seg *g)
{
	if (g->ackfd >= 0)
		close(g->ackfd);
	free(g->bits);
	free(g->unflushed);
	free(g);
}

static struct spool_seg *seg_new(struct spool *s, const char *name, uint32_t n)
{
	struct spool_seg *g = calloc(1, sizeof(*g));

	if (!g || !(g->bits = calloc(n / 8 + 1, 1))) {
		free(g);
		return NULL;
	}
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->n = n;
	g->ackfd = -1;
	g->prev = s->segs_tail;
	if (s->segs_tail)
		s->segs_tail->next = g;
	else
		s->segs = g;
	s->segs_tail = g;
	return g;
}

const char *spool_seg_name(const struct spool_seg *seg) { return seg->name; }
bool spool_dirty(const struct spool *s) { return s->n_dirty > 0; }

/* Every record done: the segment goes, then its acks (a crash in between
 * leaves a stray .ack, removed by the next adoption). */
static void seg_finish(struct spool *s, struct spool_seg *g)
{
	char ack[128];

	unlinkat(s->dirfd, g->name, 0);
	snprintf(ack, sizeof(ack), ".ack-%s", g->name);
	if (g->has_ack)
		unlinkat(s->dirfd, ack, 0);
	if (g->n_unflushed)
		s->n_dirty--;
	if (g->prev)
		g->prev->next = g->next;
	else
		s->segs = g->next;
	if (g->next)
		g->next->prev = g->prev;
	else
		s->segs_tail = g->prev;
	seg_free(g);
}

static void seg_mark(struct spool *s, struct spool_seg *g, uint32_t index)
{
	if (index >= g->n || (g->bits[index / 8] & (1u << (index % 8))))
		return;
	g->bits[index / 8] |= (uint8_t)(1u << (index % 8));
	g->done++;
	if (g->n_unflushed == g->cap_unflushed) {
		size_t cap = g->cap_unflushed ? g->cap_unflushed * 2 : 16;
		uint32_t *v = realloc(g->unflushed, cap * sizeof(*v));

		if (!v)
			return; /* not recorded: at worst delivered again after a crash */
		g->unflushed = v;
		g->cap_unflushed = cap;
	}
	if (g->n_unflushed++ == 0)
		s->n_dirty++;
	g->unflushed[g->n_unflushed - 1] = htole32(index);
}

void spool_done(struct spool *s, struct spool_seg *g, uint32_t index)
{
	seg_mark(s, g, index);
	if (g->done == g->n && !g->replaying)
		seg_finish(s, g);
}

int spool_write(struct spool *s, struct spool_item *items, size_t n)
{
	struct spool_seg *g;
	struct buf b;
	char name[96];
	uint32_t k = 0;
	int fd, r = 0;

	buf_init(&b);
	if (buf_append(&b, SEG_MAGIC, SEG_MAGIC_LEN))
		r = -ENOMEM;
	for (size_t i = 0; i < n && !r; i++) {
		items[i].seg = NULL;
		items[i].error = put_record(&b, items[i].rec);
		if (items[i].error == -ENOMEM)
			r = -ENOMEM;
		if (items[i].error == 0)
			items[i].index = k++;
	}
	if (!r && k == 0)
		r = -E2BIG;
	snprintf(name, sizeof(name), "%.32s-%08llx.%s", n ? items[0].rec->id : "0",
		 (unsigned long long)++s->seq, s->tag);
	fd = r ? -1 : openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (!r && fd < 0)
		r = -errno;
	if (!r)
		r = write_all(fd, b.p, b.len);
	if (!r && fdatasync(fd) != 0)
		r = -errno;
	if (fd >= 0 && close(fd) != 0 && !r)
		r = -errno;
	if (!r && fsync(s->dirfd) != 0)
		r = -errno;
	buf_free(&b);
	if (!r && !(g = seg_new(s, name, k)))
		r = -ENOMEM;
	if (r && fd >= 0)
		unlinkat(s->dirfd, name, 0);
	for (size_t i = 0; i < n; i++) {
		if (r && items[i].error == 0)
			items[i].error = r;
		items[i].seg = items[i].error ? NULL : g;
	}
	return r;
}

static int write_dead(struct spool *s, const char *name, const char *p, size_t len)
{
	int fd = openat(s->deadfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int r;

	if (fd < 0)
		return -errno;
	r = write_all(fd, p, len);
	if (!r && fdatasync(fd) != 0)
		r = -errno;
	close(fd);
	if (!r)
		fsync(s->deadfd);
	return r;
}

int spool_bury(struct spool *s, struct spool_seg *g, uint32_t index,
	       const struct vigil_record *rec)
{
	char name[96];
	struct buf b;
	int r;

	buf_init(&b);
	snprintf(name, sizeof(name), "%.32s-%08x.%s", rec->id, index, s->tag);
	r = spool_encode(&b, rec);
	if (!r)
		r = write_dead(s, name, b.p, b.len);
	buf_free(&b);
	if (g)
		spool_done(s, g, index);
	return r;
}

int spool_flush(struct spool *s)
{
	int first = 0;

	for (struct spool_seg *g = s->segs; g && s->n_dirty; g = g->next) {
		char ack[128];
		int r = 0;

		if (!g->n_unflushed)
			continue;
		snprintf(ack, sizeof(ack), ".ack-%s", g->name);
		if (g->ackfd < 0 &&
		    (g->ackfd = openat(s->dirfd, ack, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
				       0600)) < 0)
			r = -errno;
		g->has_ack |= g->ackfd >= 0;
		if (!r)
			r = write_all(g->ackfd, (const char *)g->unflushed,
				      g->n_unflushed * sizeof(*g->unflushed));
		if (!r && fdatasync(g->ackfd) != 0)
			r = -errno;
		if (r && !first)
			first = r; /* kept: tried again at the next flush */
		if (!r) {
			g->n_unflushed = 0;
			s->n_dirty--;
		}
	}
	return first;
}

/* ----------------------------------------------------- adoption, replay */

/* A segment or dead letter: "<32 hex>-<8+ hex>.<16 hex tag>". */
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

static void names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int names_add(char ***v, size_t *n, size_t *cap, const char *name)
{
	if (*n == *cap) {
		char **g = realloc(*v, (*cap = *cap ? *cap * 2 : 64) * sizeof(**v));

		if (!g)
			return -ENOMEM;
		*v = g;
	}
	if (!((*v)[*n] = strdup(name)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* The entries of a folder, sorted. */
static int list_dir(int dirfd, const char *sub, char ***names, size_t *n)
{
	int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t cap = 0;
	int r = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	while (!r && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = names_add(names, n, &cap, de->d_name);
	closedir(d);
	if (*n)
		qsort(*names, *n, sizeof(**names), cmp_names);
	return r;
}

/* Rename an orphan (and its acks) to our tag; the sort key is kept. */
static int adopt_rename(struct spool *s, const char *name, char *to, size_t tolen)
{
	const char *tag = file_tag(name);
	char from_ack[300], to_ack[300];

	snprintf(to, tolen, "%.*s%s", (int)(tag - name), name, s->tag);
	snprintf(from_ack, sizeof(from_ack), ".ack-%s", name);
	snprintf(to_ack, sizeof(to_ack), ".ack-%s", to);
	if (renameat(s->dirfd, from_ack, s->dirfd, to_ack) != 0 && errno != ENOENT)
		return -errno;
	return renameat(s->dirfd, name, s->dirfd, to) != 0 ? -errno : 0;
}

/* Records of a segment's content, counted; the legacy format (one file per
 * notification, no magic) is one record. */
struct seg_view {
	const char *data;
	size_t size, off;
	bool legacy, torn;
};

static void view_init(struct seg_view *v, const char *data, size_t size)
{
	*v = (struct seg_view){.data = data, .size = size};
	if (size >= SEG_MAGIC_LEN && memcmp(data, SEG_MAGIC, SEG_MAGIC_LEN) == 0)
		v->off = SEG_MAGIC_LEN;
	else
		v->legacy = true;
}

static bool view_next(struct seg_view *v, const char **p, size_t *len)
{
	int r;

	if (v->legacy) {
		if (v->off || !v->size)
			return false;
		v->off = v->size;
		*p = v->data;
		*len = v->size;
		return true;
	}
	r = seg_next(v->data, v->size, &v->off, p, len);
	v->torn |= r < 0;
	return r > 0;
}

/* Mark what the .ack file says is done. */
static void load_acks(struct spool *s, struct spool_seg *g)
{
	char ack[128], *data;
	size_t len;

	snprintf(ack, sizeof(ack), ".ack-%s", g->name);
	if (read_file_at(s->dirfd, ack, SEG_FILE_MAX, &data, &len) != 0)
		return;
	g->has_ack = true;
	for (size_t i = 0; i + 4 <= len; i += 4) {
		uint32_t x;

		memcpy(&x, data + i, 4);
		x = le32toh(x);
		if (x < g->n && !(g->bits[x / 8] & (1u << (x % 8)))) {
			g->bits[x / 8] |= (uint8_t)(1u << (x % 8));
			g->done++;
		}
	}
	free(data);
}

static uint32_t count_records(const char *data, size_t size, bool *torn)
{
	struct seg_view v;
	const char *p;
	size_t len;
	uint32_t n = 0;

	view_init(&v, data, size);
	while (view_next(&v, &p, &len))
		n++;
	*torn = v.torn;
	return n;
}

/* Hand out one adopted segment's records not yet done. */
static void replay_seg(struct spool *s, const char *name, spool_replay_cb cb, void *data,
		       size_t *bad)
{
	struct spool_seg *g;
	struct seg_view v;
	const char *p;
	char *content, err[256];
	size_t size, len;
	bool torn;
	uint32_t i = 0;

	if (read_file_at(s->dirfd, name, SEG_FILE_MAX, &content, &size) != 0) {
		(*bad)++;
		return;
	}
	g = seg_new(s, name, count_records(content, size, &torn));
	if (!g) {
		free(content);
		return;
	}
	*bad += torn;
	load_acks(s, g);
	g->replaying = true;
	view_init(&v, content, size);
	for (; view_next(&v, &p, &len); i++) {
		struct stored_record *rec;
		char *host, dead[96];

		if (g->bits[i / 8] & (1u << (i % 8)))
			continue;
		if (spool_decode(p, len, &rec, &host, err, sizeof(err)) == 0) {
			cb(data, g, i, rec, host);
			continue;
		}
		(*bad)++;
		snprintf(dead, sizeof(dead), "%.32s-%08x.%s", name, i, s->tag);
		write_dead(s, dead, p, len);
		seg_mark(s, g, i);
	}
	free(content);
	g->replaying = false;
	if (g->done == g->n)
		seg_finish(s, g);
}

/* Leftovers of dead writers: .ack without its segment, old .tmp files. */
static void drop_stale(struct spool *s, const char *name)
{
	const char *tag = strrchr(name, '.');
	struct stat st;

	if (!tag || strlen(tag + 1) != 16 || tag_alive(s, tag + 1))
		return;
	if (strncmp(name, ".ack-", 5) == 0 && fstatat(s->dirfd, name + 5, &st, 0) == 0)
		return;
	if (strncmp(name, ".ack-", 5) == 0 || strncmp(name, ".tmp-", 5) == 0)
		unlinkat(s->dirfd, name, 0);
}

int spool_adopt(struct spool *s, spool_replay_cb cb, void *data, size_t *bad)
{
	char **names, **mine = NULL, to[256];
	size_t n, k = 0, cap = 0;
	int r;

	*bad = 0;
	if (!s->owner)
		return 0;
	r = list_dir(s->dirfd, ".", &names, &n);
	for (size_t i = 0; i < n; i++) {
		const char *tag = file_tag(names[i]);

		if (!tag || strcmp(tag, s->tag) == 0 || tag_alive(s, tag))
			continue;
		if (adopt_rename(s, names[i], to, sizeof(to)) == 0 &&
		    names_add(&mine, &k, &cap, to) != 0)
			break;
	}
	for (size_t i = 0; i < n; i++)
		if (names[i][0] == '.')
			drop_stale(s, names[i]);
	names_free(names, n);
	if (k)
		fsync(s->dirfd);
	for (size_t i = 0; i < k; i++) /* already sorted: same prefixes */
		replay_seg(s, mine[i], cb, data, bad);
	names_free(mine, k);
	return r;
}

/* ------------------------------------------------------------- status */

static void count_folder(int dirfd, size_t *pending, size_t *dead)
{
	char **names;
	size_t n;

	*pending = *dead = 0;
	if (list_dir(dirfd, "dead", &names, &n) == 0)
		for (size_t i = 0; i < n; i++)
			*dead += file_tag(names[i]) != NULL;
	names_free(names, n);
	if (list_dir(dirfd, ".", &names, &n) != 0) {
		names_free(names, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char *content, ack[300], *acks;
		size_t size, alen;
		uint32_t recs, done = 0;
		uint8_t *bits;
		bool torn;

		if (!file_tag(names[i]) ||
		    read_file_at(dirfd, names[i], SEG_FILE_MAX, &content, &size) != 0)
			continue;
		recs = count_records(content, size, &torn);
		free(content);
		snprintf(ack, sizeof(ack), ".ack-%s", names[i]);
		bits = calloc(recs / 8 + 1, 1);
		if (bits && read_file_at(dirfd, ack, SEG_FILE_MAX, &acks, &alen) == 0) {
			for (size_t j = 0; j + 4 <= alen; j += 4) {
				uint32_t x;

				memcpy(&x, acks + j, 4);
				x = le32toh(x);
				if (x < recs && !(bits[x / 8] & (1u << (x % 8)))) {
					bits[x / 8] |= (uint8_t)(1u << (x % 8));
					done++;
				}
			}
			free(acks);
		}
		free(bits);
		*pending += recs - done;
	}
	names_free(names, n);
}

int spool_count_all(const char *root, spool_count_cb cb, void *data)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char **names;
	size_t n;
	int r;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = list_dir(fd, ".", &names, &n);
	for (size_t i = 0; i < n; i++) {
		int sub = names[i][0] == '.' ? -1 :
			  openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		size_t pending, dead;

		if (sub < 0)
			continue;
		count_folder(sub, &pending, &dead);
		cb(data, names[i], pending, dead);
		close(sub);
	}
	names_free(names, n);
	close(fd);
	return r;
}
