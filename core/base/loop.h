/* The one event loop: epoll for fds, a timer heap on the monotonic clock,
 * signals through signalfd. Shaped like Redis's ae: callbacks with an opaque
 * data pointer; a timer callback returns its next delay or LOOP_TIMER_DONE;
 * deletions are marked and swept, so a callback may delete anything. */
#ifndef VIGIL_LOOP_H
#define VIGIL_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

struct loop;

#define LOOP_TIMER_DONE (-1)

typedef void (*loop_fd_cb)(struct loop *loop, int fd, uint32_t revents, void *data);
typedef int64_t (*loop_timer_cb)(struct loop *loop, int64_t id, void *data);
typedef void (*loop_signal_cb)(struct loop *loop, int signo, void *data);
typedef void (*loop_finalizer)(void *data);

struct loop *loop_new(void);
void loop_free(struct loop *loop); /* runs pending timer finalizers */

/* Watch fd for `events` (EPOLLIN | EPOLLOUT | EPOLLPRI ...). Adding an fd that is
 * already watched replaces its mask, callback and data. 0 or -errno. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *data);
int loop_del_fd(struct loop *loop, int fd);

/* Fire after delay_ms (0: at the next turn). Returns an id > 0, or -errno.
 * The finalizer (may be NULL) runs once when the timer ends for any reason. */
int64_t loop_add_timer(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *data,
		       loop_finalizer fin);
int loop_del_timer(struct loop *loop, int64_t id); /* 0, or -ENOENT */

/* Deliver `signo` through a signalfd; the signal is blocked for the process. */
int loop_add_signal(struct loop *loop, int signo, loop_signal_cb cb, void *data);

/* Run until loop_stop(); returns 0, or -errno if epoll itself failed. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

/* One turn: wait at most timeout_ms (-1: until something happens). */
int loop_run_once(struct loop *loop, int timeout_ms);

/* Monotonic milliseconds, cached per turn. */
int64_t loop_now_ms(struct loop *loop);
/* Monotonic milliseconds read now. */
int64_t loop_clock_ms(void);

/* How many times epoll_wait returned (for the idle-cost benchmark). */
uint64_t loop_wakeups(const struct loop *loop);

#endif
