/* The durable spool. See spool.h for the layout and the sharing rules; the
 * bytes of a segment (framing, CRC, reading back after damage) are in
 * spool_segment.c. */
#include "spool_internal.h"

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

#include "base/safe_file.h"
#include "base/state.h"

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
	size_t bad_bytes;       /* damaged bytes moved to dead/ by the last adoption */
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

/* ---------------------------------------------------------------- files */

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
size_t spool_bad_bytes(const struct spool *s) { return s->bad_bytes; }
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
	uint32_t k;
	int fd, r;

	buf_init(&b);
	r = spool_seg_encode(&b, items, n, &k);
	snprintf(name, sizeof(name), "%.32s-%08llx.%s", n ? items[0].rec->id : "0",
		 (unsigned long long)++s->seq, s->tag);
	fd = r ? -1 : openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (!r && fd < 0)
		r = -errno;
	if (!r)
		r = safe_file_write_all(fd, b.p, b.len);
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
	r = safe_file_write_all(fd, p, len);
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
			r = safe_file_write_all(g->ackfd, (const char *)g->unflushed,
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

/* Mark what the .ack file says is done. */
static void load_acks(struct spool *s, struct spool_seg *g)
{
	char ack[128], *data;
	size_t len;

	snprintf(ack, sizeof(ack), ".ack-%s", g->name);
	if (read_file_at(s->dirfd, ack, SPOOL_FILE_MAX, &data, &len) != 0)
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

/* The damaged bytes, one dead/ file per range (named by its offset). */
static void bury_spans(struct spool *s, const char *name, const char *data,
		       const struct spool_scan *sc)
{
	for (size_t i = 0; i < sc->n_spans; i++) {
		char dead[128];

		snprintf(dead, sizeof(dead), "%.32s-%08zx.bad.%s", name, sc->spans[i].at, s->tag);
		write_dead(s, dead, data + sc->spans[i].at, sc->spans[i].len);
	}
	s->bad_bytes += sc->bad_bytes;
}

/* Records the writer put in the segment that are not intact, not yet known
 * (acknowledged) as done: marked done now, and counted. Exact, by the record
 * numbers every frame carries. */
static size_t mark_lost(struct spool *s, struct spool_seg *g, const struct spool_scan *sc)
{
	uint8_t *intact = calloc(g->n / 8 + 1, 1);
	size_t lost = 0;

	if (!intact)
		return 0;
	for (size_t i = 0; i < sc->n_frames; i++)
		intact[sc->frames[i].index / 8] |= (uint8_t)(1u << (sc->frames[i].index % 8));
	for (uint32_t i = 0; i < g->n; i++) {
		uint8_t bit = (uint8_t)(1u << (i % 8));

		if ((intact[i / 8] & bit) || (g->bits[i / 8] & bit))
			continue;
		seg_mark(s, g, i);
		lost++;
	}
	free(intact);
	return lost;
}

/* Hand out one adopted segment's intact records not yet done; the damaged
 * ones go to dead/ (their bytes) and are counted in *bad. */
static void replay_seg(struct spool *s, const char *name, spool_replay_cb cb, void *data,
		       size_t *bad)
{
	struct spool_seg *g;
	struct spool_scan sc;
	char *content, err[256];
	size_t size, lost;

	if (read_file_at(s->dirfd, name, SPOOL_FILE_MAX, &content, &size) != 0) {
		(*bad)++;
		return;
	}
	if (spool_seg_scan(&sc, content, size) != 0 || !(g = seg_new(s, name, sc.count))) {
		spool_scan_free(&sc);
		free(content);
		return; /* out of memory: left for the next adoption */
	}
	load_acks(s, g);
	g->replaying = true;
	lost = mark_lost(s, g, &sc);
	if (!sc.count && sc.bad_bytes)
		lost = sc.broken ? sc.broken : 1; /* no intact record tells the count */
	if (lost)
		bury_spans(s, name, content, &sc);
	*bad += lost;
	for (size_t i = 0; i < sc.n_frames; i++) {
		const struct spool_frame *f = &sc.frames[i];
		struct stored_record *rec;
		char *host, dead[96];

		if (g->bits[f->index / 8] & (1u << (f->index % 8)))
			continue;
		if (spool_decode(f->p, f->len, &rec, &host, err, sizeof(err)) == 0) {
			cb(data, g, f->index, rec, host);
			continue;
		}
		(*bad)++;
		snprintf(dead, sizeof(dead), "%.32s-%08x.%s", name, f->index, s->tag);
		write_dead(s, dead, f->p, f->len);
		seg_mark(s, g, f->index);
	}
	spool_scan_free(&sc);
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
	s->bad_bytes = 0;
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

		if (!file_tag(names[i]) ||
		    read_file_at(dirfd, names[i], SPOOL_FILE_MAX, &content, &size) != 0)
			continue;
		recs = spool_seg_count(content, size);
		free(content);
		snprintf(ack, sizeof(ack), ".ack-%s", names[i]);
		bits = calloc(recs / 8 + 1, 1);
		if (bits && read_file_at(dirfd, ack, SPOOL_FILE_MAX, &acks, &alen) == 0) {
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
