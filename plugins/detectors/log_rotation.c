/*
 * Rotation for the log detector: which file to read next, with no line lost
 * or repeated, even when several rotations happened before the loop got to
 * run. The bytes go to the reading in log.c.
 *
 * - rename+create, delete+recreate: the old file is read to its end through
 *   the open descriptor; then the rotated copies (LOG.N, LOG-DATE...) made
 *   after it and not read yet, oldest first, then the file at the path. Files
 *   are told apart by device, inode and birth time; the copies that existed
 *   when we started, or that we read, are remembered as read. A renamed file
 *   is watched for LOG_LATE_MS more, for a writer that opened it before the
 *   rename and appends to it after we left it.
 * - copytruncate: a truncation is detected by size or by the first bytes
 *   changing; the copy holding what we read (same first bytes, same bytes
 *   before our offset) is found by content wherever further rotations moved
 *   it (LOG.3...), the rest of it is read, then the copies made after it,
 *   then the log from its start.
 * - copytruncate of a log we had read nothing of (empty when we looked): a
 *   rotated copy made while the path still names our file holds lines we
 *   never saw: it is read, then the log from its start.
 * - compress, delaycompress: gzip copies (LOG.N.gz, LOG-DATE.gz) are
 *   inflated with zlib into an anonymous file that reads like the plain copy.
 *   Being another inode, a compressed copy of a file we read is known by its
 *   content: its first bytes and the bytes before the offset we left that
 *   file at (the last LOG_DONE_N files left are remembered); only the rest is
 *   read. A .gz whose plain file is still there is being written: skipped.
 * - Order: logrotate's names (LOG.N by N falling, LOG-DATE by date), not
 *   birth times (a copy is born again when compressed).
 * Limits: a copy deleted (logrotate's `rotate N`, maxage) before we got to
 * it, or moved to an olddir, cannot be read: for a truncation that is
 * logged, with the bytes known lost; other compressions (xz, bz2, zstd) are
 * not read; a gzip copy is inflated in one go (at most LOG_GZ_MAX bytes),
 * holding the loop meanwhile; lines written between logrotate's copy and its
 * truncate are lost by logrotate itself; a writer appending to a renamed
 * file longer than LOG_LATE_MS after we left it is not followed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include "vigil/plugin.h"
#include "log_internal.h"

#define LOG_MAX_SIBS 1024           /* rotated copies looked at */
#define LOG_MAX_SEEN 4096           /* rotated copies remembered as read */
#define LOG_SCAN_TRIES 4            /* readings of the folder until two agree */
#define LOG_LATE_MS 10000           /* renamed files watched this long after we left them */
#define LOG_GZ_MAX ((off_t)1 << 30) /* bytes inflated from one gzip copy */
#define LOG_GZ_CHUNK (256u << 10)

/* A rotated copy in the log's folder. */
struct log_sib {
	struct log_id id;
	off_t size;
	uint64_t num; /* LOG.N: N; LOG-SUFFIX: UINT64_MAX */
	bool gz;      /* NAME.gz: read through zlib */
	char name[NAME_MAX + 1];
};

/* ------------------------------------------------------------ identity */

static int log_statx(int dirfd, const char *name, int flags, struct log_id *id, off_t *size,
		     mode_t *mode)
{
	struct statx sx;

	if (statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0) {
		int e = errno;
		/* defined outputs on failure too: the compiler cannot tell that
		 * -errno is negative, and callers then read what they were given */
		*id = (struct log_id){0};
		*size = 0;
		*mode = 0;
		return -e;
	}
	id->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
	id->ino = sx.stx_ino;
	id->btime = sx.stx_mask & STATX_BTIME
			    ? (int64_t)sx.stx_btime.tv_sec * 1000000000 + sx.stx_btime.tv_nsec
			    : 0;
	*size = (off_t)sx.stx_size;
	*mode = sx.stx_mode;
	return 0;
}

/* Same file: device and inode, and the birth time where both are known (a
 * deleted copy's inode number may be given to the next new file). */
static bool log_id_eq(const struct log_id *a, const struct log_id *b)
{
	return a->dev == b->dev && a->ino == b->ino &&
	       (!a->btime || !b->btime || a->btime == b->btime);
}

/* -------------------------------------------------------- fingerprints */

static ssize_t log_pread_full(int fd, char *b, size_t n, off_t off)
{
	ssize_t r;

	do
		r = pread(fd, b, n, off);
	while (r < 0 && errno == EINTR);
	return r;
}

/* pread from a source: a plain file, or a compressed one decompressed. */
static ssize_t log_src_pread(const struct log_src *src, char *b, size_t n, off_t off)
{
	return log_pread_full(src->fd, b, n, off);
}

/* The fingerprints of the file's content: its first bytes, and the bytes
 * before our offset. */
static void log_read_fingerprints(struct log_inst *li)
{
	ssize_t r = log_pread_full(li->cur.fd, li->cur.head, LOG_FP, 0);
	li->cur.head_len = r > 0 ? (size_t)r : 0;
	size_t k = li->cur.off < LOG_FP ? (size_t)li->cur.off : LOG_FP;
	r = log_pread_full(li->cur.fd, li->last, k, li->cur.off - (off_t)k);
	li->last_len = r == (ssize_t)k ? k : 0;
}

static void log_fp_of_cur(const struct log_inst *li, struct log_fp *fp)
{
	fp->off = li->cur.off;
	fp->head_len = li->cur.head_len;
	fp->last_len = li->last_len;
	memcpy(fp->head, li->cur.head, li->cur.head_len);
	memcpy(fp->last, li->last, li->last_len);
}

/* Does the file hold the same content as fp up to fp->off? */
static bool log_fp_holds(const struct log_fp *fp, int fd, off_t size, bool *read_past)
{
	char tmp[LOG_FP];

	*read_past = false;
	if (log_pread_full(fd, tmp, fp->head_len, 0) != (ssize_t)fp->head_len ||
	    memcmp(tmp, fp->head, fp->head_len) != 0)
		return false;
	if (size < fp->off) {
		/* a copy taken before we read what followed: nothing left in it */
		*read_past = fp->head_len > 0;
		return false;
	}
	return log_pread_full(fd, tmp, fp->last_len, fp->off - (off_t)fp->last_len) ==
		       (ssize_t)fp->last_len &&
	       memcmp(tmp, fp->last, fp->last_len) == 0;
}

/* Does the file hold the same content as cur up to cur.off? */
static bool log_holds_ours(struct log_inst *li, int fd, off_t size, bool *read_past)
{
	struct log_fp fp;

	log_fp_of_cur(li, &fp);
	return log_fp_holds(&fp, fd, size, read_past);
}

/* cur is left behind: remember what it held, for its compressed copy. */
static void log_done_add(struct log_inst *li)
{
	if (li->cur.off <= 0 || !li->cur.head_len)
		return; /* nothing read: nothing to know a copy by */
	log_fp_of_cur(li, &li->done[li->done_pos]);
	li->done_pos = (li->done_pos + 1) % LOG_DONE_N;
	if (li->n_done < LOG_DONE_N)
		li->n_done++;
}

/* Where to start in a compressed copy (fd, size bytes inflated): after what
 * we read of the file it was made from, 0 when it is none we read, -1 when
 * it holds nothing we have not read. */
static off_t log_done_upto(const struct log_inst *li, int fd, off_t size)
{
	struct log_fp cur;
	bool read_past;

	/* the file we leave now first: not among those left yet */
	log_fp_of_cur(li, &cur);
	if (li->cur.fd >= 0 && cur.off > 0 && cur.head_len) {
		if (log_fp_holds(&cur, fd, size, &read_past))
			return cur.off;
		if (read_past)
			return -1;
	}
	for (size_t i = 1; i <= li->n_done; i++) {
		const struct log_fp *fp = &li->done[(li->done_pos + LOG_DONE_N - i) % LOG_DONE_N];

		if (log_fp_holds(fp, fd, size, &read_past))
			return fp->off;
		if (read_past)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- gzip */

static int log_write_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Inflate gz into out, at most LOG_GZ_MAX bytes; -ENOMSG when it does not
 * start with want's first bytes (want NULL: any), checked on the first chunk.
 * A stream cut short (a copy being written) gives what it holds. */
static int log_gz_copy(gzFile gz, int out, const struct log_fp *want, off_t *size)
{
	char *b = malloc(LOG_GZ_CHUNK);
	int e = b ? 0 : -ENOMEM;

	*size = 0;
	while (e == 0 && *size < LOG_GZ_MAX) {
		int n = gzread(gz, b, LOG_GZ_CHUNK);
		if (n <= 0)
			break;
		if (*size == 0 && want &&
		    ((size_t)n < want->head_len || memcmp(b, want->head, want->head_len) != 0))
			e = -ENOMSG;
		else
			e = log_write_all(out, b, (size_t)n);
		*size += n;
	}
	free(b);
	return e;
}

/* A gzip copy, inflated into an anonymous file that reads like the plain
 * copy it was made from (fingerprints, offsets): its fd, or -errno. fd is
 * the .gz, left open for the caller. */
static int log_gz_open(int fd, const struct log_fp *want, off_t *size)
{
	int dfd = dup(fd), out, e;
	gzFile gz = dfd >= 0 ? gzdopen(dfd, "rb") : NULL;

	*size = 0;
	if (!gz) {
		e = dfd < 0 ? -errno : -ENOMEM;
		if (dfd >= 0)
			close(dfd);
		return e;
	}
	out = memfd_create("vigil-log-gz", MFD_CLOEXEC);
	e = out < 0 ? -errno : log_gz_copy(gz, out, want, size);
	gzclose(gz);
	if (e < 0) {
		if (out >= 0)
			close(out);
		return e;
	}
	return out;
}

/* --------------------------------------------------------- late writes */

static int64_t log_late_cb(void *data);

/* cur is left behind after a rename: watch it a while for late writes. */
static void log_late_add(struct log_inst *li)
{
	struct log_late *l = &li->late[0];

	for (size_t i = 1; i < LOG_LATE_N && l->fd >= 0; i++)
		if (li->late[i].fd < 0 || li->late[i].left_ms < l->left_ms)
			l = &li->late[i];
	if (l->fd >= 0) {
		log_watch_del(li, l->wd);
		close(l->fd);
	}
	l->fd = li->cur.fd;
	l->off = li->cur.off;
	l->wd = li->wd_file; /* its IN_MODIFY still wakes us */
	l->left_ms = li->host->now_ms(li->ctx);
	li->wd_file = -1;
	if (!li->late_timer) {
		int64_t id = li->host->add_timer(li->ctx, LOG_LATE_MS, log_late_cb, li);
		li->late_timer = id > 0 ? id : 0;
	}
}

static void log_late_close(struct log_inst *li, struct log_late *l)
{
	log_watch_del(li, l->wd); /* cur's or the folder's watch keeps its own hold */
	close(l->fd);
	l->fd = l->wd = -1;
}

/* Lines appended to a file we had left: read them between two blocks of
 * the current one, as a stream of their own. */
static size_t log_late_read(struct log_inst *li, struct log_late *l, off_t size, size_t budget)
{
	size_t keep = li->carry, done = 0, cr_done = li->cr_done;
	bool skip = li->skipping, backlog = li->backlog, seg_cut = li->seg_cut;
	char *stash = keep ? malloc(keep) : NULL;

	if (keep && !stash)
		return 0; /* next time */
	if (keep)
		memcpy(stash, li->buf, keep);
	li->carry = 0;
	li->skipping = false;
	li->backlog = false;
	li->cr_done = 0;
	li->seg_cut = false;
	while (l->off < size && done < budget) {
		size_t want = (uint64_t)(size - l->off) < LOG_BLOCK ? (size_t)(size - l->off) : LOG_BLOCK;
		ssize_t n = log_pread_full(l->fd, li->buf + li->carry, want, l->off);
		if (n <= 0)
			break;
		l->off += n;
		done += (size_t)n;
		log_note_output(li);
		log_feed(li, (size_t)n);
	}
	log_flush_partial(li);
	if (keep)
		memcpy(li->buf, stash, keep);
	free(stash);
	li->carry = keep;
	li->skipping = skip;
	li->backlog = backlog;
	li->cr_done = cr_done;
	li->seg_cut = seg_cut;
	return done;
}

/* Read what was appended to the files we left; forget those left long ago.
 * One fstat each per callback, none per line. Bytes read. */
size_t log_late_check(struct log_inst *li, size_t budget)
{
	int64_t now = li->host->now_ms(li->ctx);
	size_t done = 0;
	struct stat st;

	for (size_t i = 0; i < LOG_LATE_N; i++) {
		struct log_late *l = &li->late[i];
		if (l->fd < 0)
			continue;
		if (fstat(l->fd, &st) < 0) {
			log_late_close(li, l);
			continue;
		}
		if (st.st_size < l->off)
			l->off = st.st_size; /* truncated: what follows is new */
		if (st.st_size > l->off && done < budget)
			done += log_late_read(li, l, st.st_size, budget - done);
		if (now - l->left_ms >= LOG_LATE_MS && l->off >= st.st_size)
			log_late_close(li, l);
	}
	return done;
}

static int64_t log_late_cb(void *data)
{
	struct log_inst *li = data;
	int64_t next = -1, now = li->host->now_ms(li->ctx);

	log_late_check(li, SIZE_MAX);
	for (size_t i = 0; i < LOG_LATE_N; i++)
		if (li->late[i].fd >= 0 && (next < 0 || li->late[i].left_ms + LOG_LATE_MS - now < next))
			next = li->late[i].left_ms + LOG_LATE_MS - now;
	if (next >= 0)
		return next > 0 ? next : 1;
	li->late_timer = 0;
	return VIGIL_TIMER_DONE;
}

/* ------------------------------------------------------ rotated copies */

static bool log_compressed(const char *name)
{
	static const char *const ext[] = {"gz", "bz2", "xz", "zst", "lz4", "lzma", "lz",
					  "lzo", "Z", "zip", "br"};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot && i < sizeof ext / sizeof ext[0]; i++)
		if (strcmp(dot + 1, ext[i]) == 0)
			return true;
	return false;
}

static bool log_gz_name(const char *n)
{
	size_t len = strlen(n);

	return len > 3 && strcmp(n + len - 3, ".gz") == 0;
}

/* A rotated copy's name: LOG.N (num N), or LOG-<digit>... (dates,
 * logrotate's .backup; num UINT64_MAX), plain or .gz; other compressions are
 * not read. */
static bool log_sib_name(const struct log_inst *li, const char *n, uint64_t *num, bool *gz)
{
	char *end;

	if (strncmp(n, li->base, li->base_len) != 0)
		return false;
	n += li->base_len;
	*gz = log_gz_name(n);
	if (log_compressed(n) && !*gz)
		return false;
	if (n[0] == '.' && n[1] >= '0' && n[1] <= '9') {
		errno = 0;
		*num = strtoull(n + 1, &end, 10);
		return (*end == '\0' || (*gz && strcmp(end, ".gz") == 0)) && errno == 0 &&
		       *num != UINT64_MAX;
	}
	if (n[0] == '-' && n[1] >= '0' && n[1] <= '9') {
		*num = UINT64_MAX;
		return true;
	}
	return false;
}

/* LOG-DATE names by date, a .gz as the plain copy it was made from. */
static int log_stem_cmp(const struct log_sib *a, const struct log_sib *b)
{
	size_t la = strlen(a->name) - (a->gz ? 3 : 0), lb = strlen(b->name) - (b->gz ? 3 : 0);
	int c = strncmp(a->name, b->name, la < lb ? la : lb);

	return c ? c : la < lb ? -1 : la > lb ? 1 : 0;
}

/* Older first, as logrotate names them: LOG.N by N falling, LOG-DATE by
 * date. Birth times do not tell (compress makes a new file, delaycompress
 * after a newer copy): only between the two kinds of name, then LOG-DATE
 * before LOG.N. */
static int log_sib_cmp(const struct log_sib *a, const struct log_sib *b)
{
	bool da = a->num == UINT64_MAX, db = b->num == UINT64_MAX;

	if (!da && !db)
		return a->num == b->num ? 0 : a->num > b->num ? -1 : 1;
	if (da && db)
		return log_stem_cmp(a, b);
	if (a->id.btime && b->id.btime && a->id.btime != b->id.btime)
		return a->id.btime < b->id.btime ? -1 : 1;
	return da ? -1 : 1;
}

/* A .gz whose plain copy is still there is being written from it. */
static bool log_sib_pending(const struct log_sibs *s, const struct log_sib *e)
{
	size_t stem = strlen(e->name) - 3;

	for (size_t i = 0; e->gz && i < s->n; i++)
		if (!s->v[i].gz && strlen(s->v[i].name) == stem &&
		    strncmp(s->v[i].name, e->name, stem) == 0)
			return true;
	return false;
}

static int log_scan_once(struct log_inst *li, struct log_sibs *s)
{
	DIR *d = opendir(li->dir);

	s->n = 0;
	if (!d)
		return -errno;
	for (struct dirent *de; (de = readdir(d));) {
		uint64_t num;
		mode_t mode;
		bool gz;

		if (!log_sib_name(li, de->d_name, &num, &gz))
			continue;
		if (s->n == s->cap) {
			size_t cap = s->cap ? s->cap * 2 : 32;
			struct log_sib *v = cap <= LOG_MAX_SIBS ? realloc(s->v, cap * sizeof *v) : NULL;
			if (!v)
				break; /* more than LOG_MAX_SIBS copies: the rest are not read */
			s->v = v;
			s->cap = cap;
		}
		struct log_sib *e = &s->v[s->n];
		if (log_statx(dirfd(d), de->d_name, 0, &e->id, &e->size, &mode) < 0 ||
		    !S_ISREG(mode))
			continue;
		e->num = num;
		e->gz = gz;
		memcpy(e->name, de->d_name, strlen(de->d_name) + 1);
		s->n++;
	}
	closedir(d);
	return 0;
}

static bool log_sibs_same(const struct log_sibs *a, const struct log_sibs *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!log_id_eq(&a->v[i].id, &b->v[i].id) || strcmp(a->v[i].name, b->v[i].name))
			return false;
	return true;
}

static bool log_seen_has(const struct log_inst *li, const struct log_id *id)
{
	for (size_t i = 0; i < li->n_seen; i++)
		if (log_id_eq(&li->seen[i], id))
			return true;
	return false;
}

static void log_seen_add(struct log_inst *li, const struct log_id *id)
{
	if (log_seen_has(li, id))
		return;
	if (li->n_seen == li->cap_seen) {
		size_t cap = li->cap_seen ? li->cap_seen * 2 : 32;
		struct log_id *v = cap <= LOG_MAX_SEEN ? realloc(li->seen, cap * sizeof *v) : NULL;
		if (!v) {
			if (!li->n_seen)
				return;
			/* forget the oldest */
			memmove(li->seen, li->seen + 1, --li->n_seen * sizeof *li->seen);
		} else {
			li->seen = v;
			li->cap_seen = cap;
		}
	}
	li->seen[li->n_seen++] = *id;
}

/* Forget the files that are gone from the folder. */
static void log_seen_prune(struct log_inst *li, const struct log_sibs *s)
{
	size_t k = 0;

	for (size_t i = 0; i < li->n_seen; i++) {
		bool present = false;
		for (size_t j = 0; j < s->n && !present; j++)
			present = log_id_eq(&li->seen[i], &s->v[j].id);
		if (present)
			li->seen[k++] = li->seen[i];
	}
	li->n_seen = k;
}

/* The rotated copies in the folder now. readdir() while logrotate renames
 * may show a file twice or not at all, so the folder is read until two
 * readings agree. NULL when it cannot be read. */
static const struct log_sibs *log_siblings(struct log_inst *li)
{
	struct log_sibs t;

	if (log_scan_once(li, &li->sibs[0]) < 0)
		return NULL;
	for (int i = 0; i < LOG_SCAN_TRIES; i++) {
		if (log_scan_once(li, &li->sibs[1]) < 0)
			return NULL;
		if (log_sibs_same(&li->sibs[0], &li->sibs[1])) {
			log_seen_prune(li, &li->sibs[0]);
			break;
		}
		t = li->sibs[0];
		li->sibs[0] = li->sibs[1];
		li->sibs[1] = t;
	}
	return &li->sibs[0];
}

/* Everything rotated so far came before what we read now. */
void log_seen_all(struct log_inst *li)
{
	const struct log_sibs *s = log_siblings(li);

	for (size_t i = 0; s && i < s->n; i++)
		log_seen_add(li, &s->v[i].id);
}

static bool log_unread(const struct log_inst *li, const struct log_id *id)
{
	return !log_seen_has(li, id) && !log_id_eq(id, &li->cur.id) &&
	       (li->live.fd < 0 || !log_id_eq(id, &li->live.id));
}

/* The oldest rotated copy not read yet, or NULL. */
static const struct log_sib *log_oldest_unread(struct log_inst *li, const struct log_sibs *s)
{
	const struct log_sib *best = NULL;

	for (size_t i = 0; i < s->n; i++)
		if (log_unread(li, &s->v[i].id) && !log_sib_pending(s, &s->v[i]) &&
		    (!best || log_sib_cmp(&s->v[i], best) < 0))
			best = &s->v[i];
	return best;
}

/* Open a rotated copy, a .gz inflated (-ENOMSG when it does not start as
 * want does; want NULL: any); -ESTALE when its name now belongs to another
 * file. */
static int log_open_sib(struct log_inst *li, const struct log_sib *e, const struct log_fp *want,
			off_t *size)
{
	char p[PATH_MAX];
	struct log_id id;
	mode_t mode;
	int fd;

	if ((size_t)snprintf(p, sizeof p, "%s/%s", li->dir, e->name) >= sizeof p)
		return -ENAMETOOLONG;
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (log_statx(fd, "", AT_EMPTY_PATH, &id, size, &mode) < 0 || !log_id_eq(&id, &e->id)) {
		close(fd);
		return -ESTALE;
	}
	if (e->gz) {
		int out = log_gz_open(fd, want, size);
		close(fd);
		return out;
	}
	return fd;
}

/* Open the path; its fd or -errno. */
static int log_open_at_path(struct log_inst *li, struct log_id *id, off_t *size)
{
	mode_t mode;
	int e, fd;

	/* defined even on failure (see log_statx) */
	*id = (struct log_id){0};
	*size = 0;
	fd = open(li->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	e = log_statx(fd, "", AT_EMPTY_PATH, id, size, &mode);
	if (e == 0 && !S_ISREG(mode)) {
		if (!li->warned_open)
			li->host->log(li->ctx, VIGIL_LOG_WARN, "%s: not a regular file", li->path);
		li->warned_open = true;
		e = -EINVAL;
	}
	if (e < 0) {
		close(fd);
		return e;
	}
	li->warned_open = false;
	return fd;
}

/* ----------------------------------------------------------- following */

/* Read fd from `off` from now on. At offset 0 it is another stream: the
 * partial line of the previous one ends there. */
static void log_switch(struct log_inst *li, int fd, const struct log_id *id, off_t off)
{
	if (off == 0 && li->buf)
		log_flush_partial(li);
	if (li->cur.fd >= 0 && li->cur.fd != fd)
		log_done_add(li);
	if (li->cur.fd >= 0 && li->cur.fd != fd && li->cur.fd != li->live.fd) {
		if (li->leaving)
			log_late_add(li);
		else
			close(li->cur.fd);
	}
	li->leaving = false;
	li->cur.fd = fd;
	li->cur.id = *id;
	li->cur.off = off;
	li->seen_size = off;
	lseek(fd, off, SEEK_SET);
	log_read_fingerprints(li);
	if (li->ino)
		log_watch_file(li);
}

/* Follow the file at the path, from its end or its start, taking whatever
 * was rotated before as read. 0 or -errno. */
int log_open_path(struct log_inst *li, bool at_end)
{
	struct log_id id;
	off_t size;
	int fd = log_open_at_path(li, &id, &size);

	if (fd < 0)
		return fd;
	log_seen_all(li);
	log_switch(li, fd, &id, at_end ? size : 0);
	return 0;
}

/* The truncated log continues what cur read (it was copied, not truncated
 * yet): go on reading it at cur.off rather than from its start. */
static bool log_continues(struct log_inst *li, int fd)
{
	struct stat st;
	bool read_past;

	if (fd == li->cur.fd || li->cur.off == 0 || fstat(fd, &st) < 0)
		return false;
	return log_holds_ours(li, fd, st.st_size, &read_past);
}

static void log_end_recovery(struct log_inst *li)
{
	struct log_src live = li->live;
	off_t off = log_continues(li, live.fd) ? li->cur.off : 0;

	li->live.fd = -1;
	li->recovering = false;
	log_switch(li, live.fd, &live.id, off);
}

/* cur was read to its end and is behind us: go on with the oldest rotated
 * copy not read yet (made by rotations that happened before we got to run),
 * then the truncated log (copytruncate) or the file at the path (a rename,
 * or delete and create). The path is opened before the folder is read, so a
 * file rotated before that open is among the copies. False when there is
 * nothing to go on with yet. */
bool log_next_file(struct log_inst *li)
{
	for (int tries = 0; tries < LOG_SCAN_TRIES; tries++) {
		struct log_id id;
		off_t size;
		int pfd = li->live.fd >= 0 ? -1 : log_open_at_path(li, &id, &size);
		const struct log_sibs *s = log_siblings(li);
		const struct log_sib *e = s ? log_oldest_unread(li, s) : NULL;

		if (e && pfd >= 0 && log_id_eq(&e->id, &id))
			e = NULL; /* renamed back to the path meanwhile */
		if (e) {
			struct log_id eid = e->id;
			bool gz = e->gz;
			int fd = log_open_sib(li, e, NULL, &size);
			if (pfd >= 0)
				close(pfd);
			if (fd == -ESTALE)
				continue;
			log_seen_add(li, &eid); /* read now, or unreadable: skipped */
			off_t from = fd >= 0 && gz ? log_done_upto(li, fd, size) : 0;
			if (from < 0)
				close(fd);
			else if (fd >= 0) {
				log_switch(li, fd, &eid, from);
				return true;
			}
			continue;
		}
		if (li->live.fd >= 0) {
			log_end_recovery(li);
			return true;
		}
		if (pfd < 0)
			return false;
		log_switch(li, pfd, &id, 0);
		return true;
	}
	if (li->live.fd >= 0) {
		log_end_recovery(li);
		return true;
	}
	return false;
}

/* Read to the end: when the path names another file now, cur is done. */
bool log_follow(struct log_inst *li)
{
	struct stat st;

	if (stat(li->path, &st) < 0)
		return false; /* gone: wait for the next file to appear */
	if (st.st_dev == li->cur.id.dev && st.st_ino == li->cur.id.ino)
		return false;
	log_seen_add(li, &li->cur.id);
	li->leaving = true;
	bool moved = log_next_file(li);
	li->leaving = false;
	return moved;
}

/* -------------------------------------------------------------- cursor */

bool log_cursor_take(struct log_inst *li, struct log_cursor *c)
{
	/* a partial line is read again; the rest of a cut line is not */
	off_t off = li->cur.off - (li->skipping ? 0 : (off_t)li->carry);
	size_t k = off < LOG_FP ? (size_t)off : LOG_FP;

	if (li->cur.fd < 0 || off < 0)
		return false;
	memset(c, 0, sizeof *c);
	c->magic = LOG_CURSOR_MAGIC;
	c->dev = li->cur.id.dev;
	c->ino = li->cur.id.ino;
	c->btime = li->cur.id.btime;
	c->off = off;
	c->head_len = (uint32_t)li->cur.head_len;
	memcpy(c->head, li->cur.head, li->cur.head_len);
	if (log_src_pread(&li->cur, c->last, k, off - (off_t)k) != (ssize_t)k)
		return false;
	c->last_len = (uint32_t)k;
	return true;
}

static const struct log_sib *log_find_copy(struct log_inst *li, const struct log_sibs *s,
					   int *fd);

/* The copies made before the one at `copy` (and it) hold nothing unread. */
static void log_seen_upto(struct log_inst *li, const struct log_sibs *s,
			  const struct log_sib *copy)
{
	for (size_t i = 0; i < s->n; i++)
		if (log_sib_cmp(&s->v[i], copy) <= 0)
			log_seen_add(li, &s->v[i].id);
}

bool log_cursor_resume(struct log_inst *li, const struct log_cursor *c)
{
	struct log_id id = {.dev = (dev_t)c->dev, .ino = (ino_t)c->ino, .btime = c->btime}, pid;
	off_t size;
	bool read_past;
	int fd;

	li->cur.off = c->off;
	li->cur.head_len = c->head_len;
	memcpy(li->cur.head, c->head, c->head_len);
	li->last_len = c->last_len;
	memcpy(li->last, c->last, c->last_len);
	fd = log_open_at_path(li, &pid, &size);
	if (fd >= 0 && log_id_eq(&pid, &id) && log_holds_ours(li, fd, size, &read_past)) {
		log_seen_all(li);
		log_switch(li, fd, &pid, c->off);
		return true;
	}
	if (fd >= 0)
		close(fd);
	const struct log_sibs *s = log_siblings(li);
	const struct log_sib *copy = s ? log_find_copy(li, s, &fd) : NULL;
	if (!copy || fd < 0)
		return false;
	id = copy->id;
	log_seen_upto(li, s, copy);
	log_switch(li, fd, &id, c->off);
	return true;
}

/* -------------------------------------------------------- copytruncate */

/* The newest rotated copy holding what we read, up to cur.off at least
 * (*fd open on it), or failing that the newest holding the start of it
 * only, taken before we read the rest (*fd -1: nothing left to read in it).
 * NULL when none holds our first bytes. */
static const struct log_sib *log_find_copy(struct log_inst *li, const struct log_sibs *s,
					   int *fd)
{
	const struct log_sib *best = NULL, *past = NULL;

	*fd = -1;
	for (size_t i = 0; i < s->n; i++) {
		const struct log_sib *e = &s->v[i];
		off_t size;
		bool read_past;

		struct log_fp want;

		if ((!e->gz && e->size < (off_t)li->cur.head_len) || log_sib_pending(s, e) ||
		    (best && log_sib_cmp(e, best) < 0))
			continue;
		log_fp_of_cur(li, &want);
		int f = log_open_sib(li, e, &want, &size);
		if (f < 0)
			continue;
		if (log_holds_ours(li, f, size, &read_past)) {
			if (*fd >= 0)
				close(*fd);
			best = e;
			*fd = f;
			continue;
		}
		if (read_past && (!past || log_sib_cmp(e, past) > 0))
			past = e;
		close(f);
	}
	return best ? best : past;
}

/* No copy holds what followed cur.off: deleted by logrotate's `rotate N` or
 * maxage before we got to run, or moved to an olddir. Said each time, with
 * the bytes known to have been there (seen by fstat, not read). */
static void log_warn_lost(struct log_inst *li)
{
	off_t known = li->seen_size - li->cur.off;

	if (known > 0)
		li->host->log(li->ctx, VIGIL_LOG_WARN,
			      "%s truncated and no rotated copy holds what followed byte %lld "
			      "(deleted or moved away): %lld bytes lost, and any written after them",
			      li->path, (long long)li->cur.off, (long long)known);
	else
		li->host->log(li->ctx, VIGIL_LOG_WARN,
			      "%s truncated and no rotated copy holds what followed byte %lld "
			      "(deleted or moved away): the bytes written after it are lost "
			      "(how many is unknown: the copy is gone)",
			      li->path, (long long)li->cur.off);
}

/* Truncated in place (copytruncate): the log is kept open as `live`; what
 * we had not read is taken from the rotated copy holding what we read, then
 * from the copies made after it, oldest first, then the log from its start.
 * The copy is found by content (first bytes, and the bytes before our
 * offset), wherever further rotations moved it (LOG.1, LOG.3, LOG-DATE). */
void log_truncated(struct log_inst *li)
{
	const struct log_sibs *s = li->cur.off > 0 ? log_siblings(li) : NULL;
	int fd = -1;
	const struct log_sib *copy = s ? log_find_copy(li, s, &fd) : NULL;
	struct log_id id;

	li->live = li->cur;
	li->recovering = true;
	if (copy) {
		/* it and the copies before it hold nothing we have not read */
		id = copy->id;
		for (size_t i = 0; i < s->n; i++)
			if (log_sib_cmp(&s->v[i], copy) <= 0)
				log_seen_add(li, &s->v[i].id);
	} else if (li->cur.off > 0) {
		log_warn_lost(li);
	}
	if (fd >= 0) {
		li->host->log(li->ctx, VIGIL_LOG_INFO,
			      "%s truncated: reading the rest of the rotated copy", li->path);
		log_switch(li, fd, &id, li->cur.off);
		return;
	}
	log_next_file(li);
}

/* Nothing read of cur, empty when we looked: a rotated copy made since,
 * while the path still names cur, holds lines we never saw (written, copied
 * and truncated between two reads). */
static bool log_copied_unread(struct log_inst *li)
{
	struct stat st;
	const struct log_sibs *s;

	if (stat(li->path, &st) < 0 || st.st_dev != li->cur.id.dev || st.st_ino != li->cur.id.ino)
		return false;
	s = log_siblings(li);
	return s && log_oldest_unread(li, s);
}

/* Shorter than our offset, or other first bytes: truncated (and maybe
 * written again past our offset already); or see log_copied_unread. */
bool log_is_truncated(struct log_inst *li)
{
	struct stat st;
	char tmp[LOG_FP];

	if (li->cur.off == 0 && li->cur.head_len == 0 && log_copied_unread(li))
		return true;
	if (fstat(li->cur.fd, &st) < 0)
		return false;
	if (st.st_size < li->cur.off)
		return true;
	ssize_t r = log_pread_full(li->cur.fd, tmp, LOG_FP, 0);
	if (r < 0)
		return false;
	if ((size_t)r < li->cur.head_len || memcmp(tmp, li->cur.head, li->cur.head_len) != 0)
		return true;
	if ((size_t)r > li->cur.head_len) {
		memcpy(li->cur.head, tmp, (size_t)r);
		li->cur.head_len = (size_t)r;
	}
	li->seen_size = st.st_size;
	return false;
}
