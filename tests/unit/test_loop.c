/* Unit tests for core/loop.c: real pipes, real signals, real timers. Waits
 * are bounded by a generous deadline only so that a bug fails instead of
 * hanging; no assertion depends on how fast anything runs. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/loop.h"

#define BOUND_MS 10000

/* Turn the loop until *count reaches want, or the bound passes. */
static void run_until_count(struct loop *l, const int *count, int want)
{
	int64_t end = loop_clock_ms() + BOUND_MS;

	while (*count < want && loop_clock_ms() < end)
		assert_int_equal(loop_run_once(l, 100), 0);
}

static void make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
}

/* ------------------------------------------------------------------ fds */

struct fd_rec {
	int calls;
	int fd;
	uint32_t revents;
	void *data;
};

static void fd_record(struct loop *l, int fd, uint32_t revents, void *data)
{
	struct fd_rec *r = data;

	(void)l;
	r->calls++;
	r->fd = fd;
	r->revents = revents;
	r->data = data;
}

static void test_fd_readable(void **state)
{
	struct loop *l = loop_new();
	struct fd_rec rec = {0};
	int p[2];

	(void)state;
	assert_non_null(l);
	make_pipe(p);
	assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, fd_record, &rec), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(rec.calls, 0); /* nothing written yet */

	assert_int_equal(write(p[1], "x", 1), 1);
	run_until_count(l, &rec.calls, 1);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.fd, p[0]);
	assert_true(rec.revents & EPOLLIN);
	assert_ptr_equal(rec.data, &rec);

	/* Level-triggered: still readable, so called again. */
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(rec.calls, 2);

	/* Deleted: never called again. */
	assert_int_equal(loop_del_fd(l, p[0]), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(rec.calls, 2);
	assert_int_equal(loop_del_fd(l, p[0]), -ENOENT);

	/* The writer's end closed: the reader sees a hang-up. */
	assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, fd_record, &rec), 0);
	close(p[1]);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(rec.calls, 3);
	assert_true(rec.revents & EPOLLHUP);

	loop_free(l);
	close(p[0]);
}

static void test_fd_errors(void **state)
{
	struct loop *l = loop_new();
	struct fd_rec rec = {0};
	int p[2];

	(void)state;
	make_pipe(p);
	assert_int_equal(loop_add_fd(l, -1, EPOLLIN, fd_record, &rec), -EBADF);
	assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, NULL, &rec), -EINVAL);
	close(p[1]);
	close(p[0]);
	/* A closed fd cannot be watched. */
	assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, fd_record, &rec), -EBADF);
	assert_int_equal(loop_del_fd(l, p[0]), -ENOENT);
	assert_int_equal(loop_del_fd(l, 100000), -ENOENT);
	loop_free(l);
}

static void test_fd_mask_change(void **state)
{
	struct loop *l = loop_new();
	struct fd_rec a = {0}, b = {0};
	int p[2];

	(void)state;
	make_pipe(p);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, fd_record, &a), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(a.calls, 1);

	/* A read end is never writable: with only EPOLLOUT, silence. */
	assert_int_equal(loop_add_fd(l, p[0], EPOLLOUT, fd_record, &a), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(a.calls, 1);

	/* Re-adding replaces the callback data too. */
	assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, fd_record, &b), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_ptr_equal(b.data, &b);

	/* The write end: writable at once. */
	assert_int_equal(loop_add_fd(l, p[1], EPOLLOUT, fd_record, &a), 0);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(a.calls, 2);
	assert_true(a.revents & EPOLLOUT);

	loop_free(l);
	close(p[0]);
	close(p[1]);
}

/* Two readable pipes: whichever callback runs first deletes and closes the
 * other's fd, then puts a fresh, empty pipe on the same fd number. The
 * event already gathered for the old fd must not reach anyone. */
struct pair {
	int fds[2];       /* the two read ends */
	int writers[2];
	int calls[2];
	int fresh[2];     /* the replacement pipe */
	int fresh_calls;
};

static void fresh_cb(struct loop *l, int fd, uint32_t revents, void *data)
{
	struct pair *pr = data;

	(void)l;
	(void)fd;
	(void)revents;
	pr->fresh_calls++;
}

static void pair_cb(struct loop *l, int fd, uint32_t revents, void *data)
{
	struct pair *pr = data;
	int me = fd == pr->fds[1], other = !me;
	int old = pr->fds[other];

	(void)revents;
	pr->calls[me]++;
	if (pr->fresh[0] >= 0)
		return;
	assert_int_equal(loop_del_fd(l, old), 0);
	close(old);
	make_pipe(pr->fresh);
	if (pr->fresh[0] != old) { /* put it on the old number */
		assert_int_equal(dup3(pr->fresh[0], old, O_CLOEXEC), old);
		close(pr->fresh[0]);
		pr->fresh[0] = old;
	}
	pr->fds[other] = -1;
	assert_int_equal(loop_add_fd(l, old, EPOLLIN, fresh_cb, pr), 0);
}

static void test_fd_delete_in_batch(void **state)
{
	struct loop *l = loop_new();
	struct pair pr = {.fresh = {-1, -1}};
	int p[2], q[2];

	(void)state;
	make_pipe(p);
	make_pipe(q);
	pr.fds[0] = p[0];
	pr.fds[1] = q[0];
	pr.writers[0] = p[1];
	pr.writers[1] = q[1];
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(write(q[1], "x", 1), 1);
	assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, pair_cb, &pr), 0);
	assert_int_equal(loop_add_fd(l, q[0], EPOLLIN, pair_cb, &pr), 0);

	/* Both are ready before the turn, so they arrive in one batch. */
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(pr.calls[0] + pr.calls[1], 1);
	assert_int_equal(pr.fresh_calls, 0);

	/* The replacement works normally once it has data. */
	assert_int_equal(write(pr.fresh[1], "y", 1), 1);
	run_until_count(l, &pr.fresh_calls, 1);
	assert_int_equal(pr.fresh_calls, 1);

	loop_free(l);
	for (int i = 0; i < 2; i++) {
		if (pr.fds[i] >= 0)
			close(pr.fds[i]);
		close(pr.writers[i]);
		close(pr.fresh[i]);
	}
}

/* The fd table grows to any fd number. */
static void test_fd_high_number(void **state)
{
	struct loop *l = loop_new();
	struct fd_rec rec = {0};
	struct rlimit rl;
	int p[2], high;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 10100 && rl.rlim_max >= 10100) {
		rl.rlim_cur = 10100;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	make_pipe(p);
	high = fcntl(p[0], F_DUPFD_CLOEXEC, 10000);
	if (high < 0) {
		close(p[0]);
		close(p[1]);
		loop_free(l);
		skip();
	}
	assert_int_equal(loop_add_fd(l, high, EPOLLIN, fd_record, &rec), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	run_until_count(l, &rec.calls, 1);
	assert_int_equal(rec.fd, high);
	loop_free(l);
	close(high);
	close(p[0]);
	close(p[1]);
}

/* --------------------------------------------------------------- timers */

#define MAX_LOG 10000

struct tlog {
	int n;
	int order[MAX_LOG];   /* which timer fired, in firing order */
	int64_t ids[MAX_LOG];
	int fins[MAX_LOG];    /* finalizer calls per timer */
};

struct tdata {
	struct tlog *log;
	int index;
	int64_t ret;          /* what the callback returns */
	int repeats;          /* re-arms left before LOOP_TIMER_DONE */
	int64_t del_id[2];    /* timers this one deletes when it fires */
	int del_result[2];
	int64_t last_now;
};

static int64_t timer_record(struct loop *l, int64_t id, void *data)
{
	struct tdata *t = data;

	t->log->order[t->log->n] = t->index;
	t->log->ids[t->log->n] = id;
	t->log->n++;
	t->last_now = loop_now_ms(l);
	for (int i = 0; i < 2; i++)
		if (t->del_id[i])
			t->del_result[i] = loop_del_timer(l, t->del_id[i]);
	if (t->repeats > 0) {
		t->repeats--;
		return t->ret;
	}
	return LOOP_TIMER_DONE;
}

static void timer_fin(void *data)
{
	struct tdata *t = data;

	t->log->fins[t->index]++;
}

/* Adds a batch of timers from inside a turn, where they share one notion of
 * now: their order is then exactly (delay, id). */
struct batch {
	struct tdata *t;
	const int64_t *delays;
	int n;
	int64_t *ids;
	int added;
};

static int64_t batch_add(struct loop *l, int64_t id, void *data)
{
	struct batch *b = data;

	(void)id;
	for (int i = 0; i < b->n; i++) {
		b->ids[i] = loop_add_timer(l, b->delays[i], timer_record, &b->t[i], timer_fin);
		assert_true(b->ids[i] > 0);
	}
	b->added = 1;
	return LOOP_TIMER_DONE;
}

static void add_batch(struct loop *l, struct batch *b)
{
	assert_true(loop_add_timer(l, 0, batch_add, b, NULL) > 0);
	run_until_count(l, &b->added, 1);
	assert_int_equal(b->added, 1);
}

static void tdata_init(struct tdata *t, int n, struct tlog *log)
{
	for (int i = 0; i < n; i++)
		t[i] = (struct tdata){.log = log, .index = i};
}

static void test_timer_order(void **state)
{
	static const int64_t delays[] = {30, 10, 20, 0, 10};
	static const int expect[] = {3, 1, 4, 2, 0};
	struct tlog *log = calloc(1, sizeof(*log));
	struct loop *l = loop_new();
	struct tdata t[5];
	int64_t ids[5];
	struct batch b = {t, delays, 5, ids, 0};

	(void)state;
	tdata_init(t, 5, log);
	add_batch(l, &b);
	assert_int_equal(log->n, 0); /* even delay 0 waits for the next turn */
	run_until_count(l, &log->n, 5);
	assert_int_equal(log->n, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(log->order[i], expect[i]);
		assert_int_equal(log->ids[i], ids[expect[i]]);
		assert_int_equal(log->fins[i], 1);
	}
	loop_free(l);
	free(log);
}

static void test_timer_rearm(void **state)
{
	struct tlog *log = calloc(1, sizeof(*log));
	struct loop *l = loop_new();
	struct tdata t = {.log = log, .ret = 5, .repeats = 3};
	int64_t id, prev_now = 0;
	int seen = 0;

	(void)state;
	id = loop_add_timer(l, 0, timer_record, &t, timer_fin);
	assert_true(id > 0);
	while (seen < 4) {
		run_until_count(l, &log->n, seen + 1);
		assert_int_equal(log->n, seen + 1);
		assert_int_equal(log->ids[seen], id); /* the same timer, re-armed */
		if (seen)
			assert_true(t.last_now >= prev_now + 5);
		prev_now = t.last_now;
		assert_int_equal(log->fins[0], seen == 3); /* only once done */
		seen++;
	}
	/* It returned LOOP_TIMER_DONE the fourth time: finalized, gone. */
	assert_int_equal(log->fins[0], 1);
	assert_int_equal(loop_del_timer(l, id), -ENOENT);
	loop_free(l);
	assert_int_equal(log->fins[0], 1);
	free(log);
}

/* Timer 0 deletes timer 1 (due in the same turn) and timer 2 (far away). */
static void test_timer_delete_from_callback(void **state)
{
	static const int64_t delays[] = {0, 0, 100000};
	struct tlog *log = calloc(1, sizeof(*log));
	struct loop *l = loop_new();
	struct tdata t[3];
	int64_t ids[3];
	struct batch b = {t, delays, 3, ids, 0};

	(void)state;
	tdata_init(t, 3, log);
	add_batch(l, &b);
	t[0].del_id[0] = ids[1];
	t[0].del_id[1] = ids[2];
	run_until_count(l, &log->n, 1);
	assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(log->n, 1);
	assert_int_equal(log->order[0], 0);
	assert_int_equal(t[0].del_result[0], 0);
	assert_int_equal(t[0].del_result[1], 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(log->fins[i], 1);
	assert_int_equal(loop_del_timer(l, ids[1]), -ENOENT);
	assert_int_equal(loop_del_timer(l, ids[2]), -ENOENT);
	loop_free(l);
	for (int i = 0; i < 3; i++)
		assert_int_equal(log->fins[i], 1);
	free(log);
}

/* A timer deleting itself and asking to be re-armed: deletion wins. */
static void test_timer_delete_self(void **state)
{
	struct tlog *log = calloc(1, sizeof(*log));
	struct loop *l = loop_new();
	struct tdata t = {.log = log, .ret = 1, .repeats = 100};
	int64_t id = loop_add_timer(l, 0, timer_record, &t, timer_fin);

	(void)state;
	t.del_id[0] = id;
	run_until_count(l, &log->n, 1);
	assert_int_equal(t.del_result[0], 0);
	assert_int_equal(log->fins[0], 1);
	assert_int_equal(loop_del_timer(l, id), -ENOENT);
	loop_free(l);
	assert_int_equal(log->n, 1);
	assert_int_equal(log->fins[0], 1);
	free(log);
}

/* The finalizer runs exactly once however the timer ends. */
static void test_timer_finalizer_once(void **state)
{
	struct tlog *log = calloc(1, sizeof(*log));
	struct loop *l = loop_new();
	struct tdata t[3];
	int64_t done, deleted, pending;

	(void)state;
	tdata_init(t, 3, log);
	done = loop_add_timer(l, 0, timer_record, &t[0], timer_fin);
	deleted = loop_add_timer(l, 100000, timer_record, &t[1], timer_fin);
	pending = loop_add_timer(l, 100000, timer_record, &t[2], timer_fin);
	assert_true(done > 0 && deleted > done && pending > deleted);

	run_until_count(l, &log->n, 1);
	assert_int_equal(log->fins[0], 1);  /* done */
	assert_int_equal(loop_del_timer(l, deleted), 0);
	assert_int_equal(log->fins[1], 1);  /* deleted */
	assert_int_equal(loop_del_timer(l, deleted), -ENOENT);
	assert_int_equal(log->fins[2], 0);
	loop_free(l);
	assert_int_equal(log->fins[0], 1);
	assert_int_equal(log->fins[1], 1);
	assert_int_equal(log->fins[2], 1);  /* loop_free */
	assert_int_equal(log->n, 1);
	free(log);
}

static void test_timer_errors(void **state)
{
	struct tlog log = {0};
	struct loop *l = loop_new();
	struct tdata t = {.log = &log};

	(void)state;
	assert_int_equal(loop_add_timer(l, 0, NULL, &t, timer_fin), -EINVAL);
	assert_int_equal(loop_add_timer(l, -5, timer_record, &t, timer_fin), -EINVAL);
	assert_int_equal(log.fins[0], 0); /* a refused timer owns nothing */
	assert_int_equal(loop_del_timer(l, 0), -ENOENT);
	assert_int_equal(loop_del_timer(l, 12345), -ENOENT);
	loop_free(l);
}

/* 10,000 timers with scattered delays fire in (delay, id) order; half are
 * deleted first, exercising the id map and the heap under load. */
static void test_timer_many(void **state)
{
	enum { N = MAX_LOG };
	struct tlog *log = calloc(1, sizeof(*log));
	struct tdata *t = calloc(N, sizeof(*t));
	int64_t *delays = calloc(N, sizeof(*delays)), *ids = calloc(N, sizeof(*ids));
	struct loop *l = loop_new();
	struct batch b = {t, delays, N, ids, 0};
	int fired = 0, prev = -1;

	(void)state;
	tdata_init(t, N, log);
	for (int i = 0; i < N; i++)
		delays[i] = (i * 7919) % 40;
	add_batch(l, &b);
	for (int i = 1; i < N; i += 2)
		assert_int_equal(loop_del_timer(l, ids[i]), 0);
	for (int i = 1; i < N; i += 2)
		assert_int_equal(log->fins[i], 1);
	run_until_count(l, &log->n, N / 2);
	assert_int_equal(log->n, N / 2);
	for (int k = 0; k < log->n; k++) {
		int i = log->order[k];

		assert_int_equal(i % 2, 0);
		assert_int_equal(log->ids[k], ids[i]);
		if (prev >= 0) /* (delay, id) strictly increasing */
			assert_true(delays[prev] < delays[i] ||
				    (delays[prev] == delays[i] && ids[prev] < ids[i]));
		prev = i;
		fired++;
	}
	assert_int_equal(fired, N / 2);
	for (int i = 0; i < N; i++)
		assert_int_equal(log->fins[i], 1);
	loop_free(l);
	free(ids);
	free(delays);
	free(t);
	free(log);
}

/* -------------------------------------------------------------- signals */

struct sig_rec {
	int calls;
	int signo;
};

static void sig_record(struct loop *l, int signo, void *data)
{
	struct sig_rec *r = data;

	(void)l;
	r->calls++;
	r->signo = signo;
}

static void test_signal(void **state)
{
	struct loop *l = loop_new();
	struct sig_rec usr1 = {0}, usr2 = {0};
	sigset_t blocked;

	(void)state;
	assert_int_equal(loop_add_signal(l, SIGUSR1, sig_record, &usr1), 0);
	assert_int_equal(loop_add_signal(l, SIGUSR2, sig_record, &usr2), 0);
	assert_int_equal(sigprocmask(SIG_BLOCK, NULL, &blocked), 0);
	assert_true(sigismember(&blocked, SIGUSR1));
	assert_true(sigismember(&blocked, SIGUSR2));

	assert_int_equal(raise(SIGUSR1), 0); /* blocked: delivered via signalfd */
	run_until_count(l, &usr1.calls, 1);
	assert_int_equal(usr1.calls, 1);
	assert_int_equal(usr1.signo, SIGUSR1);
	assert_int_equal(usr2.calls, 0);

	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	run_until_count(l, &usr2.calls, 1);
	assert_int_equal(usr2.calls, 1);
	assert_int_equal(usr2.signo, SIGUSR2);
	assert_int_equal(usr1.calls, 1);

	assert_int_equal(loop_add_signal(l, SIGKILL, sig_record, &usr1), -EINVAL);
	assert_int_equal(loop_add_signal(l, 0, sig_record, &usr1), -EINVAL);
	loop_free(l);
}

/* --------------------------------------------------------- run and stop */

static void test_wakeups(void **state)
{
	struct loop *l = loop_new();
	struct fd_rec rec = {0};
	int p[2];

	(void)state;
	make_pipe(p);
	assert_int_equal(loop_wakeups(l), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(loop_run_once(l, 0), 0);
	assert_int_equal(loop_wakeups(l), 3);

	/* One readable fd: one more wake-up, however long the wait allowed. */
	assert_int_equal(loop_add_fd(l, p[0], EPOLLIN, fd_record, &rec), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(loop_run_once(l, BOUND_MS), 0);
	assert_int_equal(rec.calls, 1);
	assert_int_equal(loop_wakeups(l), 4);
	loop_free(l);
	close(p[0]);
	close(p[1]);
}

static int64_t stop_after(struct loop *l, int64_t id, void *data)
{
	int *left = data;

	(void)id;
	if (--*left > 0)
		return 1;
	loop_stop(l);
	return LOOP_TIMER_DONE;
}

static void test_run_stop(void **state)
{
	struct loop *l = loop_new();
	int left = 3;
	int64_t before;

	(void)state;
	assert_true(loop_add_timer(l, 1, stop_after, &left, NULL) > 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(left, 0);
	/* The cached now follows the turns; the clock is at least as late. */
	before = loop_now_ms(l);
	assert_true(loop_clock_ms() >= before);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_readable),
		cmocka_unit_test(test_fd_errors),
		cmocka_unit_test(test_fd_mask_change),
		cmocka_unit_test(test_fd_delete_in_batch),
		cmocka_unit_test(test_fd_high_number),
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_timer_rearm),
		cmocka_unit_test(test_timer_delete_from_callback),
		cmocka_unit_test(test_timer_delete_self),
		cmocka_unit_test(test_timer_finalizer_once),
		cmocka_unit_test(test_timer_errors),
		cmocka_unit_test(test_timer_many),
		cmocka_unit_test(test_signal),
		cmocka_unit_test(test_wakeups),
		cmocka_unit_test(test_run_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
