/* See ino_share.h. Watches are found by descriptor in a chained hash table:
 * thousands of monitors each holding a watch or two, and every event looked
 * up once. */
#include "ino_share.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct owner_ref {
	void *owner;
	unsigned refs;
};

struct watch {
	int wd;
	struct owner_ref *v;
	size_t n, cap;
	struct watch *next; /* in its bucket */
};

struct ino_share {
	int fd;
	struct watch **buckets;
	size_t n_buckets, n_watches;
	char *buf; /* one read's events (INO_BATCH bytes) */
};

/* One event of a batch, and the owner it goes to. */
struct delivery {
	void *owner;
	size_t ev_off; /* in the batch's buffer */
};

#define INO_BATCH 65536

struct ino_share *ino_share_new(void)
{
	struct ino_share *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->n_buckets = 64;
	s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
	s->buf = aligned_alloc(__alignof__(struct inotify_event), INO_BATCH);
	s->fd = s->buckets && s->buf ? inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
	if (s->fd < 0) {
		int e = s->buckets && s->buf ? errno : ENOMEM;

		free(s->buf);
		free(s->buckets);
		free(s);
		errno = e;
		return NULL;
	}
	return s;
}

int ino_share_fd(const struct ino_share *s)
{
	return s->fd;
}

void ino_share_free(struct ino_share *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_buckets; i++)
		for (struct watch *w = s->buckets[i], *next; w; w = next) {
			next = w->next;
			free(w->v);
			free(w);
		}
	free(s->buckets);
	free(s->buf);
	close(s->fd);
	free(s);
}

static size_t bucket_of(const struct ino_share *s, int wd)
{
	uint32_t x = (uint32_t)wd * 2654435761u;

	return (x ^ (x >> 16)) & (s->n_buckets - 1);
}

static struct watch *find(const struct ino_share *s, int wd)
{
	for (struct watch *w = s->buckets[bucket_of(s, wd)]; w; w = w->next)
		if (w->wd == wd)
			return w;
	return NULL;
}

/* Twice the buckets once there are more watches than buckets. */
static void grow(struct ino_share *s)
{
	size_t old_n = s->n_buckets;
	struct watch **old = s->buckets, **nb = calloc(old_n * 2, sizeof(*nb));

	if (!nb)
		return; /* longer chains, still correct */
	s->buckets = nb;
	s->n_buckets = old_n * 2;
	for (size_t i = 0; i < old_n; i++)
		for (struct watch *w = old[i], *next; w; w = next) {
			size_t b = bucket_of(s, w->wd);

			next = w->next;
			w->next = nb[b];
			nb[b] = w;
		}
	free(old);
}

static struct watch *watch_get(struct ino_share *s, int wd)
{
	struct watch *w = find(s, wd);
	size_t b;

	if (w)
		return w;
	if (!(w = calloc(1, sizeof(*w))))
		return NULL;
	if (s->n_watches >= s->n_buckets)
		grow(s);
	b = bucket_of(s, wd);
	w->wd = wd;
	w->next = s->buckets[b];
	s->buckets[b] = w;
	s->n_watches++;
	return w;
}

/* Unlink and free w (its kernel watch is the caller's business). */
static void watch_drop(struct ino_share *s, struct watch *w)
{
	struct watch **p = &s->buckets[bucket_of(s, w->wd)];

	while (*p && *p != w)
		p = &(*p)->next;
	if (*p)
		*p = w->next;
	free(w->v);
	free(w);
	s->n_watches--;
}

static int owner_add(struct watch *w, void *owner)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].owner == owner) {
			w->v[i].refs++;
			return 0;
		}
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 2;
		struct owner_ref *v = realloc(w->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n++] = (struct owner_ref){owner, 1};
	return 0;
}

int ino_share_add(struct ino_share *s, const char *path, uint32_t mask, void *owner)
{
	int wd = inotify_add_watch(s->fd, path, mask | IN_MASK_ADD);
	struct watch *w;

	if (wd < 0)
		return -errno;
	w = watch_get(s, wd);
	if (!w || owner_add(w, owner) < 0) {
		if (w && !w->n) {
			inotify_rm_watch(s->fd, wd);
			watch_drop(s, w);
		}
		return -ENOMEM;
	}
	return wd;
}

void ino_share_del(struct ino_share *s, int wd, void *owner)
{
	struct watch *w = wd >= 0 ? find(s, wd) : NULL;

	for (size_t i = 0; w && i < w->n; i++) {
		if (w->v[i].owner != owner)
			continue;
		if (--w->v[i].refs == 0)
			w->v[i] = w->v[--w->n];
		break;
	}
	if (w && !w->n) {
		inotify_rm_watch(s->fd, wd);
		watch_drop(s, w);
	}
}

static bool holds(const struct ino_share *s, int wd, void *owner)
{
	const struct watch *w = find(s, wd);

	for (size_t i = 0; w && i < w->n; i++)
		if (w->v[i].owner == owner)
			return true;
	return false;
}

/* Does owner hold any watch still? (After an overflow, which names none.) */
static bool holds_any(const struct ino_share *s, void *owner)
{
	for (size_t b = 0; b < s->n_buckets; b++)
		for (const struct watch *w = s->buckets[b]; w; w = w->next)
			if (holds(s, w->wd, owner))
				return true;
	return false;
}

struct plan {
	struct delivery *v;
	size_t n, cap;
};

static void plan_push(struct plan *pl, void *owner, size_t off)
{
	if (pl->n == pl->cap) {
		size_t c = pl->cap ? 2 * pl->cap : 64;
		struct delivery *v = realloc(pl->v, c * sizeof(*v));

		if (!v)
			return; /* out of memory: that owner misses this event */
		pl->v = v;
		pl->cap = c;
	}
	pl->v[pl->n++] = (struct delivery){owner, off};
}

/* Who gets each event of buf[0, len): the owners of its watch; everyone,
 * once, for an overflow (all may have missed something). */
static void plan_batch(const struct ino_share *s, const char *buf, ssize_t len, struct plan *pl)
{
	for (const char *p = buf; p < buf + len;) {
		const struct inotify_event *ev = (const struct inotify_event *)p;
		const struct watch *w = ev->wd >= 0 ? find(s, ev->wd) : NULL;
		size_t off = (size_t)(p - buf);

		if (ev->mask & IN_Q_OVERFLOW)
			for (size_t b = 0; b < s->n_buckets; b++)
				for (const struct watch *x = s->buckets[b]; x; x = x->next)
					for (size_t i = 0; i < x->n; i++)
						plan_push(pl, x->v[i].owner, off);
		for (size_t i = 0; w && i < w->n; i++)
			plan_push(pl, w->v[i].owner, off);
		p += sizeof(*ev) + ev->len;
	}
}

/* The kernel removed these watches (IN_IGNORED): nothing left to remove. */
static void forget_ignored(struct ino_share *s, const char *buf, ssize_t len)
{
	for (const char *p = buf; p < buf + len;) {
		const struct inotify_event *ev = (const struct inotify_event *)p;
		struct watch *w = (ev->mask & IN_IGNORED) ? find(s, ev->wd) : NULL;

		if (w)
			watch_drop(s, w);
		p += sizeof(*ev) + ev->len;
	}
}

void ino_share_dispatch(struct ino_share *s, ino_share_fn fn)
{
	struct plan pl = {0};
	ssize_t len;

	while ((len = read(s->fd, s->buf, INO_BATCH)) > 0) {
		/* who gets what is decided first: fn may add and delete watches */
		pl.n = 0;
		plan_batch(s, s->buf, len, &pl);
		for (size_t i = 0; i < pl.n; i++) {
			const struct inotify_event *ev = (const void *)(s->buf + pl.v[i].ev_off);
			bool still = ev->mask & IN_Q_OVERFLOW ? holds_any(s, pl.v[i].owner)
							      : holds(s, ev->wd, pl.v[i].owner);

			if (still)
				fn(pl.v[i].owner, ev);
		}
		forget_ignored(s, s->buf, len);
	}
	free(pl.v);
}
