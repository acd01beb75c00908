/* The file detector: "tell me when out.json is there, complete".
 *
 * Each instance watches the file's folder; while that folder does not exist
 * yet, the nearest existing ancestor is watched instead and we descend as the
 * missing components appear. The watches of every instance live in one
 * inotify instance, the plugin's shared state (plugins/lib ino_share), not in
 * one each: a user may have only 128 by default. "Appeared" means a regular
 * file of at least min_size bytes left unchanged for stable_for (with
 * stable_for = 0: closed after writing, or renamed into place). A close is
 * not the end when there is a window: writers open, append and close a file
 * many times. The only timers are the stable_for windows, the deadline and,
 * while settling, one turn of the loop after events: nothing polls. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ino_share.h"
#include "vigil/plugin.h"

/* The file's own folder: everything that can make a file appear or change. */
#define FILE_DIR_MASK                                                                  \
	(IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY | IN_DELETE |            \
	 IN_MOVED_FROM | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
/* An ancestor standing in for a missing folder: only the next component matters. */
#define FILE_ANC_MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct file_det;

/* Shared by every instance (or one instance's own when the core offers no
 * shared state): the inotify instance, opened by the first start(). */
struct file_shared {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	struct ino_share *ino;
};

/* A matching file being watched through its stable_for window. */
struct file_cand {
	struct file_cand *next;
	struct file_det *f;
	char *name;
	off_t size;
	struct timespec mtime;
	int64_t last_change; /* monotonic ms of the last change seen */
	int64_t timer;       /* stable_for timer id, 0 when none */
};

struct file_det {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	char *path;    /* as configured, for messages */
	char *prefix;  /* the folder part with its trailing '/', or "" */
	char *dir;     /* the folder to watch: "." or "/" or prefix without slashes */
	char *pattern; /* the last component */
	bool glob;
	int64_t min_size;
	int64_t stable_ms;
	int64_t deadline_ms; /* 0: none */

	struct file_shared *sh;
	bool own_sh;    /* sh is this instance's own: the core offers none */
	bool started;   /* start() has watched (or tried to) */
	int wd_dir;     /* watch on dir, -1 */
	int wd_anc;     /* watch on an ancestor of dir while dir is missing, -1 */
	size_t anc_len; /* dir[0..anc_len) is that ancestor (0: ".") */

	struct file_cand *cands;
	bool appeared;  /* `file` emitted in this run */
	bool overdue;   /* `overdue` emitted in this run */
	bool settling;  /* settle() returned VIGIL_SETTLING, settled() not called yet */
	int64_t settle_timer; /* settling and inotify events came: look again, 0 */
	bool arm_failed;
	int64_t start_ms;
	int64_t deadline_timer;
	uint64_t run; /* run of the last `attached` seen, 0 before */
};

static const struct vigil_option file_options[] = {
	{"path", VIGIL_OPT_PATH, VIGIL_OPTF_REQUIRED, NULL,
	 "the file to wait for; its last component may be a glob (out-*.json)"},
	{"min_size", VIGIL_OPT_SIZE, 0, "1", "smallest size that counts (empty files do not)"},
	{"stable_for", VIGIL_OPT_DURATION, 0, "2s",
	 "size and mtime unchanged this long count as complete, closed or not "
	 "(0: at the close after writing)"},
	{"deadline", VIGIL_OPT_DURATION, 0, NULL,
	 "report `overdue` when the file is not there this long after start"},
	{NULL, 0, 0, NULL, NULL},
};

/* ----------------------------------------------------------- formatting */

static const char *file_human_size(int64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"KB", "MB", "GB", "TB", "PB", "EB"};
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%lld byte%s", (long long)n, n == 1 ? "" : "s");
		return buf;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* 7200000 -> "2h", 5400000 -> "1h30m", 250 -> "250ms". */
static const char *file_format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} parts[] = {{3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
	size_t off = 0;

	buf[0] = '\0';
	if (ms <= 0) {
		snprintf(buf, len, "0s");
		return buf;
	}
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && off < len; i++) {
		int64_t q = ms / parts[i].ms;

		if (!q)
			continue;
		ms -= q * parts[i].ms;
		int w = snprintf(buf + off, len - off, "%lld%s", (long long)q, parts[i].unit);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	return buf;
}

/* ------------------------------------------------------------ reporting */

static char *file_join(const struct file_det *f, const char *name)
{
	size_t a = strlen(f->prefix), b = strlen(name);
	char *s = malloc(a + b + 1);

	if (s) {
		memcpy(s, f->prefix, a);
		memcpy(s + a, name, b + 1);
	}
	return s;
}

static bool file_name_matches(const struct file_det *f, const char *name)
{
	if (f->glob)
		return fnmatch(f->pattern, name, FNM_PERIOD) == 0;
	return strcmp(f->pattern, name) == 0;
}

/* stat() of prefix/name; follows symlinks, so a link to the output counts. */
static int file_stat(const struct file_det *f, const char *name, struct stat *st)
{
	char *full = file_join(f, name);
	int r;

	if (!full)
		return -ENOMEM;
	r = fstatat(AT_FDCWD, full, st, 0) < 0 ? -errno : 0;
	free(full);
	return r;
}

static bool file_complete(const struct file_det *f, const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_size >= f->min_size;
}

static void file_cand_free(struct file_det *f, struct file_cand *c)
{
	if (c->timer > 0)
		f->host->cancel_timer(f->ctx, c->timer);
	free(c->name);
	free(c);
}

static void file_cands_clear(struct file_det *f)
{
	while (f->cands) {
		struct file_cand *c = f->cands;

		f->cands = c->next;
		file_cand_free(f, c);
	}
}

static void file_cand_drop(struct file_det *f, const char *name)
{
	for (struct file_cand **pp = &f->cands; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			struct file_cand *c = *pp;

			*pp = c->next;
			file_cand_free(f, c);
			return;
		}
	}
}

static void file_report(struct file_det *f, const char *name, off_t size)
{
	char *full = file_join(f, name);
	char hs[32], msg[4096];
	struct vigil_field fields[2];
	struct vigil_event ev;

	if (!full)
		return;
	f->appeared = true;
	file_cands_clear(f); /* may free `name`: full is our copy */
	snprintf(msg, sizeof(msg), "%s appeared (%s)", full,
		 file_human_size((int64_t)size, hs, sizeof(hs)));
	fields[0] = (struct vigil_field){.name = "path", .type = VIGIL_FIELD_STRING,
					 .u.s = {full, strlen(full)}};
	fields[1] = (struct vigil_field){.name = "size", .type = VIGIL_FIELD_INT,
					 .u.i = (int64_t)size};
	ev = (struct vigil_event){.kind = VIGIL_EV_FILE, .message = msg, .fields = fields,
				  .n_fields = 2};
	f->host->emit(f->ctx, &ev);
	free(full);
}

/* settle() is waiting and nothing can change the answer any more. */
static void file_check_settled(struct file_det *f)
{
	if (!f->settling)
		return;
	for (const struct file_cand *c = f->cands; c && !f->appeared; c = c->next)
		if (c->timer > 0)
			return;
	f->settling = false;
	f->host->settled(f->ctx);
}

/* ----------------------------------------------------- stable_for windows */

static int64_t file_cand_timer(void *data)
{
	struct file_cand *c = data;
	struct file_det *f = c->f;
	int64_t left = c->last_change + f->stable_ms - f->host->now_ms(f->ctx);
	int64_t id = c->timer;
	struct stat st;

	if (left > 0)
		return left; /* modified since the timer was set: re-armed */
	c->timer = 0; /* ends here unless re-armed below */
	if (file_stat(f, c->name, &st) < 0) {
		file_cand_drop(f, c->name);
	} else if (st.st_size != c->size || st.st_mtim.tv_sec != c->mtime.tv_sec ||
		   st.st_mtim.tv_nsec != c->mtime.tv_nsec) {
		/* changed without telling inotify (mmap, another host on NFS) */
		c->size = st.st_size;
		c->mtime = st.st_mtim;
		c->last_change = f->host->now_ms(f->ctx);
		c->timer = id;
		return f->stable_ms;
	} else if (file_complete(f, &st)) {
		file_report(f, c->name, st.st_size);
	}
	file_check_settled(f);
	return VIGIL_TIMER_DONE;
}

static struct file_cand *file_cand_get(struct file_det *f, const char *name)
{
	struct file_cand *c;

	for (c = f->cands; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->name = strdup(name))) {
		free(c);
		return NULL;
	}
	c->f = f;
	c->next = f->cands;
	f->cands = c;
	return c;
}

/* A matching file was created or changed: (re)start its stable_for window. */
static void file_cand_touch(struct file_det *f, const char *name, const struct stat *st)
{
	struct file_cand *c = file_cand_get(f, name);

	if (!c) {
		f->host->log(f->ctx, VIGIL_LOG_ERR, "%s%s: out of memory", f->prefix, name);
		return;
	}
	c->size = st->st_size;
	c->mtime = st->st_mtim;
	c->last_change = f->host->now_ms(f->ctx);
	if (c->timer > 0)
		return; /* the callback sees last_change and waits on */
	c->timer = f->host->add_timer(f->ctx, f->stable_ms, file_cand_timer, c);
	if (c->timer < 0) {
		f->host->log(f->ctx, VIGIL_LOG_ERR, "%s%s: cannot add a timer: %s", f->prefix,
			     name, strerror((int)-c->timer));
		c->timer = 0;
	}
}

/* A matching file is there, seen by a scan (at start, after descending, at
 * settle) rather than by an event. */
static void file_consider(struct file_det *f, const char *name)
{
	struct stat st;

	if (f->appeared || file_stat(f, name, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	if (f->stable_ms == 0) {
		if (file_complete(f, &st))
			file_report(f, name, st.st_size);
		return;
	}
	struct file_cand *c = file_cand_get(f, name);
	if (c && c->timer == 0 && c->size == st.st_size && c->mtime.tv_sec == st.st_mtim.tv_sec &&
	    c->mtime.tv_nsec == st.st_mtim.tv_nsec && c->last_change) {
		/* already waited out its window; only size kept it out */
		if (file_complete(f, &st))
			file_report(f, name, st.st_size);
		return;
	}
	file_cand_touch(f, name, &st);
}

static void file_scan(struct file_det *f)
{
	DIR *d;
	int fd;

	if (!f->glob) {
		file_consider(f, f->pattern);
		return;
	}
	fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		f->host->log(f->ctx, VIGIL_LOG_WARN, "%s: cannot list: %s", f->dir,
			     strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	for (struct dirent *de; !f->appeared && (de = readdir(d));)
		if (file_name_matches(f, de->d_name))
			file_consider(f, de->d_name);
	closedir(d);
}

/* -------------------------------------------------------------- watches */

/* Keep wd (just added, or -1) in *slot, letting go of the watch held there:
 * the same folder added again is one watch held once more. */
static void file_hold(struct file_det *f, int *slot, int wd)
{
	if (*slot >= 0)
		ino_share_del(f->sh->ino, *slot, f);
	*slot = wd;
}

static void file_set_ancestor(struct file_det *f, int wd, size_t len)
{
	file_hold(f, &f->wd_anc, wd);
	f->anc_len = len;
}

/* Length of the parent of dir[0..n): 0 stands for ".", 1 for "/". */
static size_t file_parent_len(const char *dir, size_t n)
{
	while (n > 0 && dir[n - 1] != '/')
		n--;
	if (n == 0)
		return 0;
	while (n > 1 && dir[n - 1] == '/')
		n--;
	return n;
}

/* dir is missing: watch its deepest existing ancestor. 1 when the component
 * below that ancestor exists by now (created while we were adding the watch:
 * try again), 0 when waiting for it, -errno. */
static int file_watch_ancestor(struct file_det *f)
{
	size_t n = strlen(f->dir);
	char *buf = malloc(n + 2);
	int r = -ENOENT;

	if (!buf)
		return -ENOMEM;
	while (n > 0) {
		size_t p = file_parent_len(f->dir, n);
		struct stat st;
		int wd;

		if (p == 0) {
			strcpy(buf, ".");
		} else {
			memcpy(buf, f->dir, p);
			buf[p] = '\0';
		}
		wd = ino_share_add(f->sh->ino, buf, FILE_ANC_MASK, f);
		if (wd < 0 && wd != -ENOENT && wd != -ENOTDIR) {
			r = wd;
			break;
		}
		if (wd >= 0) {
			file_set_ancestor(f, wd, p);
			memcpy(buf, f->dir, n);
			buf[n] = '\0';
			r = stat(buf, &st) == 0 && S_ISDIR(st.st_mode);
			break;
		}
		if (p == 0)
			break;
		n = p;
	}
	free(buf);
	return r;
}

/* Watch dir, or the nearest existing ancestor while it is missing; scan what
 * is there once the watch is in place, so nothing slips between the two. */
static int file_arm(struct file_det *f)
{
	/* each round descends at least one component, a bound for the odd
	 * folder that appears and vanishes again and again */
	for (size_t round = 0; round <= strlen(f->dir) + 1; round++) {
		int wd = ino_share_add(f->sh->ino, f->dir, FILE_DIR_MASK, f);
		int r;

		if (wd >= 0) {
			file_hold(f, &f->wd_dir, wd);
			file_set_ancestor(f, -1, 0);
			file_scan(f);
			return 0;
		}
		if (wd != -ENOENT && wd != -ENOTDIR)
			return wd;
		r = file_watch_ancestor(f);
		if (r <= 0)
			return r;
	}
	return 0; /* the ancestor watch brings us back */
}

static void file_rearm(struct file_det *f)
{
	int r = file_arm(f);

	if (r < 0 && !f->arm_failed)
		f->host->log(f->ctx, VIGIL_LOG_WARN, "%s: cannot watch: %s", f->dir,
			     strerror(-r));
	else if (r == 0 && f->arm_failed)
		f->host->log(f->ctx, VIGIL_LOG_INFO, "%s: watching again", f->dir);
	f->arm_failed = r < 0;
}

/* The folder was deleted or moved away: start over from its ancestors. Its
 * watch is let go (a moved one follows the inode; a deleted one the kernel
 * drops anyway). */
static void file_dir_gone(struct file_det *f)
{
	file_hold(f, &f->wd_dir, -1);
	file_cands_clear(f);
	file_rearm(f);
}

/* ------------------------------------------------------------- events */

static void file_on_name(struct file_det *f, const char *name, uint32_t mask)
{
	struct stat st;

	if (mask & (IN_DELETE | IN_MOVED_FROM)) {
		file_cand_drop(f, name);
		return;
	}
	if (f->appeared || file_stat(f, name, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	if (f->stable_ms == 0) {
		/* a close after writing or a rename into place: the writer's "done" */
		if ((mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) && file_complete(f, &st))
			file_report(f, name, st.st_size);
		return;
	}
	/* the window starts again: the size reported is the one that held still */
	if (mask & (IN_CREATE | IN_MODIFY | IN_MOVED_TO | IN_CLOSE_WRITE))
		file_cand_touch(f, name, &st);
}

/* Is `name` the component of dir right below the watched ancestor? */
static bool file_is_next_component(const struct file_det *f, const char *name)
{
	const char *s = f->dir + f->anc_len;
	size_t n;

	while (*s == '/')
		s++;
	n = strcspn(s, "/");
	return strlen(name) == n && memcmp(s, name, n) == 0;
}

static void file_handle(struct file_det *f, const struct inotify_event *ev)
{
	const char *name = ev->len ? ev->name : "";

	if (ev->mask & IN_Q_OVERFLOW) {
		if (f->wd_dir >= 0)
			file_scan(f);
		else
			file_rearm(f);
	} else if (ev->wd == f->wd_dir && f->wd_dir >= 0) {
		if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
			file_dir_gone(f);
		else if (*name && !(ev->mask & IN_ISDIR) && file_name_matches(f, name))
			file_on_name(f, name, ev->mask);
	} else if (ev->wd == f->wd_anc && f->wd_anc >= 0) {
		if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
			file_set_ancestor(f, -1, 0);
			file_rearm(f);
		} else if (*name && file_is_next_component(f, name)) {
			file_rearm(f);
		}
	}
}

static int64_t file_settle_timer(void *data)
{
	struct file_det *f = data;

	f->settle_timer = 0;
	file_check_settled(f);
	return VIGIL_TIMER_DONE;
}

/* An event of a watch f holds (shared with the instances watching the same
 * folder): handled now. Whether it settled f is seen from f's own timer, once
 * for the whole batch, not inside the shared read. */
static void file_on_ino_event(void *owner, const struct inotify_event *ev)
{
	struct file_det *f = owner;

	file_handle(f, ev);
	if (!f->settling || f->settle_timer)
		return;
	f->settle_timer = f->host->add_timer(f->ctx, 0, file_settle_timer, f);
	if (f->settle_timer <= 0) {
		f->settle_timer = 0;
		file_check_settled(f);
	}
}

static void file_on_inotify(void *data, int fd, uint32_t revents)
{
	struct file_shared *s = data;

	(void)fd;
	(void)revents;
	ino_share_dispatch(s->ino, file_on_ino_event);
}

/* --------------------------------------------------------- shared state */

static int file_shared_create(const struct vigil_host *host, struct vigil_ctx *ctx,
			      void **shared, char *err, size_t errlen)
{
	struct file_shared *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->host = host;
	s->ctx = ctx;
	*shared = s;
	return 0;
}

static void file_shared_destroy(void *shared)
{
	struct file_shared *s = shared;

	if (!s)
		return;
	if (s->ino) {
		s->host->unwatch_fd(s->ctx, ino_share_fd(s->ino));
		ino_share_free(s->ino);
	}
	free(s);
}

/* The inotify instance, opened by the first start() (vigil check creates
 * instances, and must open nothing). */
static int file_shared_open(struct file_shared *s, char *err, size_t errlen)
{
	int r;

	if (s->ino)
		return 0;
	s->ino = ino_share_new();
	if (!s->ino) {
		r = -errno;
		snprintf(err, errlen, "inotify_init1: %s", strerror(-r));
		return r;
	}
	r = s->host->watch_fd(s->ctx, ino_share_fd(s->ino), EPOLLIN, file_on_inotify, s);
	if (r < 0) {
		snprintf(err, errlen, "cannot watch the inotify fd: %s", strerror(-r));
		ino_share_free(s->ino);
		s->ino = NULL;
	}
	return r;
}

/* The plugin's shared state, or one of f's own when the core offers none
 * (an older core): then f has an inotify instance to itself, as it used to. */
static int file_attach_shared(struct file_det *f, char *err, size_t errlen)
{
	const struct vigil_host *h = f->host;
	void *own = NULL;
	int r;

	if (h->size >= offsetof(struct vigil_host, shared) + sizeof(h->shared) && h->shared)
		f->sh = h->shared(f->ctx);
	if (f->sh)
		return 0;
	r = file_shared_create(h, f->ctx, &own, err, errlen);
	f->sh = own;
	f->own_sh = r == 0;
	return r;
}

/* ------------------------------------------------------------ deadline */

static int64_t file_deadline_timer(void *data)
{
	struct file_det *f = data;
	int64_t now = f->host->now_ms(f->ctx);
	char dur[64], msg[4096];
	struct vigil_field fields[3];
	struct vigil_event ev;

	f->deadline_timer = 0;
	if (f->appeared || f->overdue)
		return VIGIL_TIMER_DONE;
	f->overdue = true;
	snprintf(msg, sizeof(msg), "%s not there after %s", f->path,
		 file_format_duration(f->deadline_ms, dur, sizeof(dur)));
	fields[0] = (struct vigil_field){.name = "path", .type = VIGIL_FIELD_STRING,
					 .u.s = {f->path, strlen(f->path)}};
	fields[1] = (struct vigil_field){.name = "elapsed", .type = VIGIL_FIELD_DOUBLE,
					 .u.d = (double)(now - f->start_ms) / 1000.0};
	fields[2] = (struct vigil_field){.name = "limit", .type = VIGIL_FIELD_DOUBLE,
					 .u.d = (double)f->deadline_ms / 1000.0};
	ev = (struct vigil_event){.kind = VIGIL_EV_OVERDUE, .message = msg, .fields = fields,
				  .n_fields = 3};
	f->host->emit(f->ctx, &ev);
	return VIGIL_TIMER_DONE;
}

static void file_start_deadline(struct file_det *f)
{
	if (f->deadline_timer > 0)
		f->host->cancel_timer(f->ctx, f->deadline_timer);
	f->deadline_timer = 0;
	f->start_ms = f->host->now_ms(f->ctx);
	if (f->deadline_ms <= 0)
		return;
	f->deadline_timer = f->host->add_timer(f->ctx, f->deadline_ms, file_deadline_timer, f);
	if (f->deadline_timer < 0) {
		f->host->log(f->ctx, VIGIL_LOG_ERR, "cannot add the deadline timer: %s",
			     strerror((int)-f->deadline_timer));
		f->deadline_timer = 0;
	}
}

/* ----------------------------------------------------------- callbacks */

/* Only the last component may be a pattern: inotify watches one folder. */
static int file_check_folder(const char *path, size_t len, char *err, size_t errlen)
{
	for (size_t i = 0; i < len;) {
		size_t n = strcspn(path + i, "/");

		if (n > len - i)
			n = len - i;
		for (size_t j = 0; j < n; j++) {
			if (strchr("*?[", path[i + j])) {
				snprintf(err, errlen,
					 "path %s: folder '%.*s' is a pattern; only the file "
					 "name may be one",
					 path, (int)n, path + i);
				return -EINVAL;
			}
		}
		i += n + 1;
	}
	return 0;
}

static int file_parse_numbers(struct file_det *f, const struct vigil_config *cfg, char *err,
			      size_t errlen)
{
	const struct vigil_value *v;

	f->min_size = 1;
	f->stable_ms = 2000;
	if ((v = vigil_config_get(cfg, "min_size"))) {
		if (v->number < 0 || v->percent >= 0) {
			snprintf(err, errlen, "min_size %s: give a size in bytes, not a percent",
				 v->text);
			return -EINVAL;
		}
		f->min_size = v->number;
	}
	if ((v = vigil_config_get(cfg, "stable_for")))
		f->stable_ms = v->number < 0 ? 0 : v->number;
	if ((v = vigil_config_get(cfg, "deadline"))) {
		if (v->number <= 0) {
			snprintf(err, errlen, "deadline %s: must be longer than 0", v->text);
			return -EINVAL;
		}
		f->deadline_ms = v->number;
	}
	return 0;
}

static void file_destroy(void *instance);

static int file_split_path(struct file_det *f, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t plen = slash ? (size_t)(slash - path) + 1 : 0;
	size_t dlen = plen;

	f->path = strdup(path);
	f->pattern = strdup(path + plen);
	f->prefix = strndup(path, plen);
	while (dlen > 1 && path[dlen - 1] == '/')
		dlen--;
	f->dir = dlen ? strndup(path, dlen) : strdup(".");
	if (!f->path || !f->pattern || !f->prefix || !f->dir)
		return -ENOMEM;
	f->glob = strpbrk(f->pattern, "*?[") != NULL;
	return 0;
}

static int file_create(const struct vigil_host *host, struct vigil_ctx *ctx,
		       const struct vigil_config *cfg, void **instance, char *err, size_t errlen)
{
	const struct vigil_value *v = vigil_config_get(cfg, "path");
	const char *path = v ? v->text : NULL;
	const char *slash;
	struct file_det *f;
	int r;

	if (!path || !*path) {
		snprintf(err, errlen, "path is required");
		return -EINVAL;
	}
	slash = strrchr(path, '/');
	if (slash && !slash[1]) {
		snprintf(err, errlen, "path %s names a folder: give the file's name", path);
		return -EINVAL;
	}
	if (slash && (r = file_check_folder(path, (size_t)(slash - path), err, errlen)) < 0)
		return r;
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f->host = host;
	f->ctx = ctx;
	f->wd_dir = f->wd_anc = -1;
	if ((r = file_attach_shared(f, err, errlen)) < 0 ||
	    (r = file_parse_numbers(f, cfg, err, errlen)) < 0 ||
	    (r = file_split_path(f, path)) < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		file_destroy(f);
		return r;
	}
	host->expect(ctx, VIGIL_CRIT_FILE);
	*instance = f;
	return 0;
}

static int file_start(void *instance, char *err, size_t errlen)
{
	struct file_det *f = instance;
	int r;

	r = file_shared_open(f->sh, err, errlen);
	if (r < 0)
		return r;
	f->started = true;
	file_start_deadline(f);
	r = file_arm(f);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot watch: %s", f->dir, strerror(-r));
		return r;
	}
	return 0;
}

static void file_on_event(void *instance, const struct vigil_record *rec)
{
	struct file_det *f = instance;

	if (!rec->event || !rec->event->kind || strcmp(rec->event->kind, VIGIL_EV_ATTACHED))
		return;
	if (rec->run == f->run)
		return;
	/* The first run was started with the monitor; later runs start afresh,
	 * with the watches they find in place. */
	if (f->run != 0) {
		f->appeared = false;
		f->overdue = false;
		f->settling = false;
		if (f->started)
			file_start_deadline(f);
	}
	f->run = rec->run;
}

static enum vigil_settle file_settle(void *instance)
{
	struct file_det *f = instance;

	if (!f->appeared && f->started) {
		/* the writer has exited: what is on disk now is the last word,
		 * short of windows still running */
		if (f->wd_dir >= 0)
			file_scan(f);
		else
			file_rearm(f);
	}
	for (const struct file_cand *c = f->cands; c && !f->appeared; c = c->next) {
		if (c->timer > 0) {
			f->settling = true;
			return VIGIL_SETTLING;
		}
	}
	return VIGIL_SETTLED;
}

static void file_destroy(void *instance)
{
	struct file_det *f = instance;

	file_cands_clear(f);
	if (f->deadline_timer > 0)
		f->host->cancel_timer(f->ctx, f->deadline_timer);
	if (f->settle_timer > 0)
		f->host->cancel_timer(f->ctx, f->settle_timer);
	if (f->sh) {
		file_hold(f, &f->wd_dir, -1);
		file_hold(f, &f->wd_anc, -1);
		if (f->own_sh)
			file_shared_destroy(f->sh);
	}
	free(f->path);
	free(f->prefix);
	free(f->dir);
	free(f->pattern);
	free(f);
}

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_DETECTOR, .name = "file",
	     .summary = "an expected output file appeared, complete (or not by a deadline)",
	     .options = file_options, .create = file_create, .start = file_start,
	     .on_event = file_on_event, .settle = file_settle, .destroy = file_destroy,
	     .shared_create = file_shared_create, .shared_destroy = file_shared_destroy);
