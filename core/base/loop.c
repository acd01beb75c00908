/* The event loop: epoll for fds, a binary min-heap of timers keyed by
 * (deadline, id) with an id -> timer hash so that any timer can be found and
 * removed in O(log n), and one signalfd for every registered signal.
 *
 * Deletion during dispatch is safe without a sweep list for fds: each watch
 * carries a generation number in its epoll data, bumped on every delete and
 * (re-)add, so an event gathered for a watch that no longer exists is dropped.
 * Timers due in a turn are moved off the heap into a batch first; deleting one
 * of those only marks it, and the batch walk finalizes it. */
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 256

struct fd_watch {
	loop_fd_cb cb;
	void *data;
	uint32_t mask;
	uint32_t gen;
	bool active;
};

enum timer_state { TIMER_HEAP, TIMER_DUE, TIMER_RUNNING };

struct timer {
	int64_t id;
	int64_t deadline;
	loop_timer_cb cb;
	void *data;
	loop_finalizer fin;
	size_t slot;        /* index in the heap while TIMER_HEAP */
	enum timer_state state;
	bool dead;          /* deleted while due or running: finalize after */
};

struct sig_watch {
	loop_signal_cb cb;
	void *data;
};

struct loop {
	int epfd;
	struct fd_watch *fds;
	size_t n_fds;

	struct timer **heap;
	size_t heap_len, heap_cap;
	struct timer **map;  /* open addressing, linear probing, NULL = empty */
	size_t map_cap, map_len;
	struct timer **due;  /* the batch being dispatched */
	size_t due_cap;
	int64_t next_id;

	int sigfd;
	sigset_t sigmask;
	struct sig_watch sigs[_NSIG];

	int64_t now;
	bool in_turn;
	bool stop;
	uint64_t wakeups;
	struct epoll_event events[LOOP_MAX_EVENTS];
};

int64_t loop_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t loop_now_ms(struct loop *loop)
{
	return loop->now;
}

uint64_t loop_wakeups(const struct loop *loop)
{
	return loop->wakeups;
}

void loop_stop(struct loop *loop)
{
	loop->stop = true;
}

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		free(loop);
		return NULL;
	}
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	loop->next_id = 1;
	loop->now = loop_clock_ms();
	return loop;
}

/* ---------------------------------------------------------------- fds */

static int fd_table_grow(struct loop *loop, int fd)
{
	size_t n = loop->n_fds ? loop->n_fds : 64;
	struct fd_watch *t;

	while (n <= (size_t)fd)
		n *= 2;
	t = realloc(loop->fds, n * sizeof(*t));
	if (!t)
		return -ENOMEM;
	memset(t + loop->n_fds, 0, (n - loop->n_fds) * sizeof(*t));
	loop->fds = t;
	loop->n_fds = n;
	return 0;
}

static int fd_ctl(struct loop *loop, int op, int fd, uint32_t events, uint32_t gen)
{
	struct epoll_event ev = {
		.events = events,
		.data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd,
	};

	return epoll_ctl(loop->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *data)
{
	struct fd_watch *w;
	int r;

	if (fd < 0)
		return -EBADF;
	if (!cb)
		return -EINVAL;
	if ((size_t)fd >= loop->n_fds && (r = fd_table_grow(loop, fd)) < 0)
		return r;
	w = &loop->fds[fd];
	r = -ENOENT;
	if (w->active)
		r = fd_ctl(loop, EPOLL_CTL_MOD, fd, events, w->gen);
	if (r == -ENOENT) {
		/* New watch, or the old fd was closed without loop_del_fd and
		 * the number reused: a new generation either way. */
		w->gen++;
		r = fd_ctl(loop, EPOLL_CTL_ADD, fd, events, w->gen);
	}
	if (r < 0)
		return r;
	w->cb = cb;
	w->data = data;
	w->mask = events;
	w->active = true;
	return 0;
}

int loop_del_fd(struct loop *loop, int fd)
{
	struct fd_watch *w;

	if (fd < 0 || (size_t)fd >= loop->n_fds || !loop->fds[fd].active)
		return -ENOENT;
	w = &loop->fds[fd];
	/* EBADF/ENOENT: already closed, so already gone from the epoll set. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	w->active = false;
	w->gen++;
	w->cb = NULL;
	w->data = NULL;
	return 0;
}

static void fd_dispatch(struct loop *loop, const struct epoll_event *ev)
{
	int fd = (int)(uint32_t)ev->data.u64;
	uint32_t gen = (uint32_t)(ev->data.u64 >> 32);
	struct fd_watch *w;
	uint32_t revents;

	if ((size_t)fd >= loop->n_fds)
		return;
	w = &loop->fds[fd];
	if (!w->active || w->gen != gen)
		return; /* deleted or replaced by an earlier callback this turn */
	/* An earlier callback may have narrowed the mask. */
	revents = ev->events & (w->mask | EPOLLERR | EPOLLHUP | EPOLLRDHUP);
	if (revents)
		w->cb(loop, fd, revents, w->data);
}

/* ---------------------------------------------------------- timer map */

static size_t map_hash(const struct loop *loop, int64_t id)
{
	return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 17) & (loop->map_cap - 1);
}

static struct timer **map_slot(struct loop *loop, int64_t id)
{
	size_t i = map_hash(loop, id);

	while (loop->map[i] && loop->map[i]->id != id)
		i = (i + 1) & (loop->map_cap - 1);
	return &loop->map[i];
}

static struct timer *map_get(struct loop *loop, int64_t id)
{
	return loop->map_cap ? *map_slot(loop, id) : NULL;
}

static int map_grow(struct loop *loop)
{
	size_t old_cap = loop->map_cap;
	struct timer **old = loop->map;

	loop->map_cap = old_cap ? old_cap * 2 : 64;
	loop->map = calloc(loop->map_cap, sizeof(*loop->map));
	if (!loop->map) {
		loop->map = old;
		loop->map_cap = old_cap;
		return -ENOMEM;
	}
	for (size_t i = 0; i < old_cap; i++)
		if (old[i])
			*map_slot(loop, old[i]->id) = old[i];
	free(old);
	return 0;
}

static int map_put(struct loop *loop, struct timer *t)
{
	int r;

	/* Keep the load at or under one half so probes stay short. */
	if ((loop->map_len + 1) * 2 > loop->map_cap && (r = map_grow(loop)) < 0)
		return r;
	*map_slot(loop, t->id) = t;
	loop->map_len++;
	return 0;
}

/* Linear probing with backward-shift deletion: no tombstones to sweep. */
static void map_del(struct loop *loop, int64_t id)
{
	size_t mask = loop->map_cap - 1;
	size_t i = (size_t)(map_slot(loop, id) - loop->map), j = i;

	if (!loop->map[i])
		return;
	loop->map[i] = NULL;
	loop->map_len--;
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (!loop->map[j])
			return;
		home = map_hash(loop, loop->map[j]->id);
		/* Move j back into the hole unless its home lies in (i, j]. */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			loop->map[i] = loop->map[j];
			loop->map[j] = NULL;
			i = j;
		}
	}
}

/* --------------------------------------------------------- timer heap */

static bool timer_before(const struct timer *a, const struct timer *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->id < b->id);
}

static void heap_set(struct loop *loop, size_t i, struct timer *t)
{
	loop->heap[i] = t;
	t->slot = i;
}

static void heap_up(struct loop *loop, size_t i)
{
	struct timer *t = loop->heap[i];

	while (i > 0 && timer_before(t, loop->heap[(i - 1) / 2])) {
		heap_set(loop, i, loop->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(loop, i, t);
}

static void heap_down(struct loop *loop, size_t i)
{
	struct timer *t = loop->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= loop->heap_len)
			break;
		if (c + 1 < loop->heap_len && timer_before(loop->heap[c + 1], loop->heap[c]))
			c++;
		if (!timer_before(loop->heap[c], t))
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, t);
}

static int heap_push(struct loop *loop, struct timer *t)
{
	if (loop->heap_len == loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
		struct timer **h = realloc(loop->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		loop->heap = h;
		loop->heap_cap = cap;
	}
	t->state = TIMER_HEAP;
	heap_set(loop, loop->heap_len++, t);
	heap_up(loop, t->slot);
	return 0;
}

static void heap_remove(struct loop *loop, struct timer *t)
{
	size_t i = t->slot;
	struct timer *last = loop->heap[--loop->heap_len];

	if (last == t)
		return;
	heap_set(loop, i, last);
	heap_down(loop, i);
	heap_up(loop, last->slot);
}

/* ------------------------------------------------------------- timers */

static void timer_end(struct loop *loop, struct timer *t)
{
	map_del(loop, t->id);
	if (t->fin)
		t->fin(t->data);
	free(t);
}

/* Timers count from the loop's now. Inside a turn that is the turn's cached
 * time (so timers added together order by delay, then by id); outside a turn
 * the clock is read again, since the caller may have spent a while since. */
static int64_t timer_base(struct loop *loop)
{
	if (!loop->in_turn)
		loop->now = loop_clock_ms();
	return loop->now;
}

static int64_t deadline_after(int64_t base, int64_t delay)
{
	return delay > INT64_MAX - base ? INT64_MAX : base + delay;
}

int64_t loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *data,
		       loop_finalizer fin)
{
	struct timer *t;
	int r;

	if (!cb || delay_ms < 0)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->id = loop->next_id++;
	t->deadline = deadline_after(timer_base(loop), delay_ms);
	t->cb = cb;
	t->data = data;
	t->fin = fin;
	r = map_put(loop, t);
	if (r == 0) {
		r = heap_push(loop, t);
		if (r < 0)
			map_del(loop, t->id);
	}
	if (r < 0) {
		free(t); /* the caller keeps data: no finalizer on failure */
		return r;
	}
	return t->id;
}

int loop_del_timer(struct loop *loop, int64_t id)
{
	struct timer *t = id > 0 ? map_get(loop, id) : NULL;

	if (!t || t->dead)
		return -ENOENT;
	if (t->state == TIMER_HEAP) {
		heap_remove(loop, t);
		timer_end(loop, t);
	} else {
		t->dead = true; /* in this turn's batch: the batch walk ends it */
	}
	return 0;
}

/* Move every due timer off the heap, in (deadline, id) order. Timers added or
 * re-armed by the callbacks go back on the heap for a later turn, so a timer
 * returning 0 cannot starve the loop. */
static size_t timers_collect(struct loop *loop)
{
	size_t n = 0;

	while (loop->heap_len && loop->heap[0]->deadline <= loop->now) {
		struct timer *t = loop->heap[0];

		if (n == loop->due_cap) {
			size_t cap = loop->due_cap ? loop->due_cap * 2 : 64;
			struct timer **d = realloc(loop->due, cap * sizeof(*d));

			if (!d)
				break; /* the rest stay due for the next turn */
			loop->due = d;
			loop->due_cap = cap;
		}
		heap_remove(loop, t);
		t->state = TIMER_DUE;
		loop->due[n++] = t;
	}
	return n;
}

static void timers_run(struct loop *loop)
{
	size_t n = timers_collect(loop);

	for (size_t i = 0; i < n; i++) {
		struct timer *t = loop->due[i];
		int64_t next = LOOP_TIMER_DONE;

		if (!t->dead) {
			t->state = TIMER_RUNNING;
			next = t->cb(loop, t->id, t->data);
		}
		if (!t->dead && next >= 0) {
			t->deadline = deadline_after(loop->now, next);
			if (heap_push(loop, t) == 0)
				continue;
		}
		timer_end(loop, t);
	}
}

/* How long epoll may sleep: until the nearest timer, rounded up (the clock is
 * truncated to ms, so deadline - now never wakes us before the deadline). */
static int timers_timeout(struct loop *loop, int timeout_ms)
{
	int64_t d;

	if (!loop->heap_len)
		return timeout_ms;
	d = loop->heap[0]->deadline - loop_clock_ms();
	if (d <= 0)
		return 0;
	if (d > INT_MAX)
		d = INT_MAX;
	if (timeout_ms >= 0 && timeout_ms < d)
		return timeout_ms;
	return (int)d;
}

/* ------------------------------------------------------------ signals */

static void signal_read(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct signalfd_siginfo si[16];
	ssize_t n;

	(void)revents;
	(void)data;
	while ((n = read(fd, si, sizeof(si))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			int signo = (int)si[i].ssi_signo;

			if (signo > 0 && signo < _NSIG && loop->sigs[signo].cb)
				loop->sigs[signo].cb(loop, signo, loop->sigs[signo].data);
		}
	}
}

int loop_add_signal(struct loop *loop, int signo, loop_signal_cb cb, void *data)
{
	sigset_t one, mask = loop->sigmask;
	int fd, r;

	if (signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP || !cb)
		return -EINVAL;
	sigemptyset(&one);
	if (sigaddset(&one, signo) < 0 || sigaddset(&mask, signo) < 0)
		return -EINVAL;
	/* Blocked first, so that nothing arrives through the default action
	 * between here and the signalfd. */
	if (sigprocmask(SIG_BLOCK, &one, NULL) < 0)
		return -errno;
	fd = signalfd(loop->sigfd, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (loop->sigfd < 0) {
		r = loop_add_fd(loop, fd, EPOLLIN, signal_read, NULL);
		if (r < 0) {
			close(fd);
			return r;
		}
		loop->sigfd = fd;
	}
	loop->sigmask = mask;
	loop->sigs[signo].cb = cb;
	loop->sigs[signo].data = data;
	return 0;
}

/* --------------------------------------------------------------- run */

int loop_run_once(struct loop *loop, int timeout_ms)
{
	int n = epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS,
			   timers_timeout(loop, timeout_ms));

	loop->wakeups++;
	if (n < 0 && errno != EINTR)
		return -errno;
	loop->now = loop_clock_ms();
	loop->in_turn = true;
	for (int i = 0; i < n; i++)
		fd_dispatch(loop, &loop->events[i]);
	timers_run(loop);
	loop->in_turn = false;
	return 0;
}

int loop_run(struct loop *loop)
{
	int r = 0;

	while (!loop->stop && r == 0)
		r = loop_run_once(loop, -1);
	loop->stop = false;
	return r;
}

void loop_free(struct loop *loop)
{
	struct timer **heap;
	size_t n;

	if (!loop)
		return;
	/* Detach the timers first: a finalizer that calls loop_del_timer now
	 * gets -ENOENT instead of touching a half-freed heap. */
	heap = loop->heap;
	n = loop->heap_len;
	loop->heap = NULL;
	loop->heap_len = loop->heap_cap = 0;
	if (loop->map)
		memset(loop->map, 0, loop->map_cap * sizeof(*loop->map));
	loop->map_len = 0;
	for (size_t i = 0; i < n; i++) {
		if (heap[i]->fin)
			heap[i]->fin(heap[i]->data);
		free(heap[i]);
	}
	free(heap);
	free(loop->map);
	free(loop->due);
	free(loop->fds);
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	close(loop->epfd);
	free(loop);
}
