/* Waiting for other jobs' runs (see after.h), for vigil run's supervisor and
 * for the agent alike.
 *
 * Which run: the one current at after_check (a run already finished then
 * counts with its outcome: `vigil run A; vigil run --after A B` must not
 * depend on how fast A is). The predecessors' run records are followed in
 * their state folder with inotify (a record is replaced by a rename) and their
 * writers with a pidfd (a writer gone without a `finished` leaves no
 * outcome): no polling. When the record already belongs to a later run, the
 * outcome comes from the history: the first run that ended after the check is
 * the one we waited for (runs of one job never overlap). */
#include "after.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/history.h"
#include "lib/proc.h"

static int64_t wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void after_init(struct after_set *set)
{
	memset(set, 0, sizeof(*set));
	set->ino_fd = -1;
}

static struct after_pred *find_pred(struct after_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i].name, name) == 0)
			return &set->v[i];
	return NULL;
}

int after_add(struct after_set *set, const char *name, const char *dir, bool any)
{
	struct after_pred *p = find_pred(set, name);

	if (p) { /* after wins over after_any: it asks more */
		p->any = p->any && any;
		return 0;
	}
	p = realloc(set->v, (set->n + 1) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	set->v = p;
	p = &set->v[set->n];
	memset(p, 0, sizeof(*p));
	if (dir && !(p->dir = strdup(dir)))
		return -ENOMEM;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->any = any;
	p->owner_fd = -1;
	set->n++;
	return 0;
}

const char *after_names(const struct after_set *set, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < set->n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
					 set->v[i].name);
	return buf;
}

/* "A failed (exit 3)", "A timed out (SIGKILL)"; ok per after / after_any. */
static void pred_ended(struct after_pred *p, const char *outcome, int exit_code,
		       const char *signal)
{
	char words[32];

	snprintf(words, sizeof(words), "%s", *outcome ? outcome : "unknown");
	for (char *c = words; *c; c++)
		if (*c == '_')
			*c = ' ';
	if (exit_code >= 0)
		snprintf(p->verdict, sizeof(p->verdict), "%s %s (exit %d)", p->name, words,
			 exit_code);
	else if (signal && *signal)
		snprintf(p->verdict, sizeof(p->verdict), "%s %s (%s)", p->name, words, signal);
	else
		snprintf(p->verdict, sizeof(p->verdict), "%s %s", p->name, words);
	p->ended = true;
	p->ok = p->any || strcmp(outcome, "succeeded") == 0;
}

static void pred_ended_record(struct after_pred *p, const struct run_record *r)
{
	char sig[32] = "";

	if (r->signal > 0)
		proc_signal_name(r->signal, sig, sizeof(sig));
	pred_ended(p, r->outcome, r->exit_code, sig);
}

/* Ended with no outcome to tell: `why` follows the name. */
static void pred_lost(struct after_pred *p, const char *why)
{
	snprintf(p->verdict, sizeof(p->verdict), "%s %s", p->name, why);
	p->ended = true;
	p->ok = p->any;
}

/* A predecessor we cannot wait for ends at once, failed, saying why. */
static enum after_problem pred_refused(struct after_pred *p, enum after_problem e)
{
	if (e == AFTER_SELF)
		snprintf(p->verdict, sizeof(p->verdict), "%s: a job cannot wait for itself", p->name);
	else if (e == AFTER_NO_JOB)
		snprintf(p->verdict, sizeof(p->verdict), "%s: no such job", p->name);
	else
		snprintf(p->verdict, sizeof(p->verdict), "%s has no current run (state %s%s)",
			 p->name, p->at.state, p->at.run ? ", its owner is gone" : "");
	p->ended = true;
	p->ok = false;
	return e;
}

/* Which run of p we wait for: its record now. */
static enum after_problem pred_check(struct after_pred *p, const char *self)
{
	if (strcmp(p->name, self) == 0)
		return pred_refused(p, AFTER_SELF);
	if (!p->dir || state_read(p->dir, p->name, &p->at) != 0)
		return pred_refused(p, AFTER_NO_JOB);
	if (strcmp(p->at.state, "finished") == 0)
		pred_ended_record(p, &p->at);
	else if (p->at.run == 0 || !state_writer_alive(&p->at))
		return pred_refused(p, AFTER_NO_RUN);
	return AFTER_OK;
}

enum after_problem after_check(struct after_set *set, const char *self, size_t *bad)
{
	enum after_problem first = AFTER_OK;

	set->since_ms = wall_now_ms();
	for (size_t i = 0; i < set->n; i++) {
		enum after_problem e = pred_check(&set->v[i], self);

		if (e != AFTER_OK && first == AFTER_OK) {
			first = e;
			*bad = i;
		}
	}
	return first;
}

/* The record belongs to a later run: ours is in the history. */
static void pred_from_history(struct after_set *set, struct after_pred *p)
{
	char dir[PATH_MAX];
	struct history h;

	if (history_read(history_dir(p->dir, dir, sizeof(dir)), p->name, &h) == 0) {
		for (size_t i = 0; i < h.n && !p->ended; i++)
			if (h.v[i].end_ms >= set->since_ms)
				pred_ended(p, h.v[i].outcome, h.v[i].exit_code, h.v[i].signal);
		history_free(&h);
	}
	if (!p->ended)
		pred_lost(p, "ended, with no outcome in its history");
}

/* Look again at a predecessor's record. */
static void pred_update(struct after_set *set, struct after_pred *p)
{
	struct run_record r;

	if (p->ended)
		return;
	if (state_read(p->dir, p->name, &r) != 0)
		pred_lost(p, "ended, its record removed");
	else if (r.owner_pid != p->at.owner_pid || r.run != p->at.run)
		pred_from_history(set, p);
	else if (strcmp(r.state, "finished") == 0)
		pred_ended_record(p, &r);
	else if (!state_writer_alive(&r))
		pred_lost(p, "ended without an outcome (its owner is gone)");
}

/* Waiting is over when all ended, or when one we need has failed. */
static bool wait_over(const struct after_set *set)
{
	bool all = true;

	for (size_t i = 0; i < set->n; i++) {
		if (set->v[i].ended && !set->v[i].ok)
			return true;
		all &= set->v[i].ended;
	}
	return all;
}

static bool all_ok(const struct after_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		if (!set->v[i].ended || !set->v[i].ok)
			return false;
	return true;
}

/* "after: A failed (exit 3); B timed out" */
static void failure_reason(const struct after_set *set, char *why, size_t len)
{
	size_t used = (size_t)snprintf(why, len, "after:");

	for (size_t i = 0; i < set->n && used < len; i++)
		if (set->v[i].ended && !set->v[i].ok)
			used += (size_t)snprintf(why + used, len - used, "%s %s",
						 used > 6 ? ";" : "", set->v[i].verdict);
}

static void unwatch_owner(struct after_set *set, struct after_pred *p)
{
	if (p->owner_fd < 0)
		return;
	loop_del_fd(set->loop, p->owner_fd);
	close(p->owner_fd);
	p->owner_fd = -1;
}

/* The wait is over: nothing of it stays in the loop, then the caller is told
 * (last: it may free the set). */
static void finish(struct after_set *set)
{
	after_started_fn started = set->started;
	void *arg = set->arg;
	bool ok = all_ok(set);
	char why[1024] = "";

	if (!ok)
		failure_reason(set, why, sizeof(why));
	after_cancel(set);
	started(arg, ok, ok ? NULL : why);
}

static void update_all(struct after_set *set)
{
	if (!set->started)
		return; /* cancelled: a late event of a swept fd */
	for (size_t i = 0; i < set->n; i++) {
		pred_update(set, &set->v[i]);
		if (set->v[i].ended)
			unwatch_owner(set, &set->v[i]);
	}
	if (wait_over(set))
		finish(set);
}

/* Is this one of our predecessors' records? (A folder may hold thousands of
 * records, rewritten every second while their runs go on.) */
static bool is_pred_record(const struct after_set *set, const struct inotify_event *ev)
{
	size_t len = ev->len ? strlen(ev->name) : 0;

	if (len < 5 || strcmp(ev->name + len - 4, ".run") != 0)
		return false;
	for (size_t i = 0; i < set->n; i++)
		if (strlen(set->v[i].name) == len - 4 && !strncmp(set->v[i].name, ev->name, len - 4))
			return true;
	return false;
}

/* A record renamed into place or removed: only our predecessors' matter. */
static void on_inotify(struct loop *loop, int fd, uint32_t revents, void *data)
{
	char chunk[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool ours = false;
	ssize_t n;

	(void)loop;
	(void)revents;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		for (char *c = chunk; c < chunk + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)c;

			ours |= ev->mask & IN_Q_OVERFLOW || is_pred_record(data, ev);
			c += sizeof(*ev) + ev->len;
		}
	if (ours)
		update_all(data);
}

static void on_owner_gone(struct loop *loop, int fd, uint32_t revents, void *data)
{
	(void)loop;
	(void)fd;
	(void)revents;
	update_all(data);
}

/* The writer of p's record: its exit without a `finished` is the end too. We
 * never see our own exit: no pidfd for a record we write (the agent's). */
static void watch_owner(struct after_set *set, struct after_pred *p)
{
	if (p->ended || p->at.owner_pid <= 0 || p->at.owner_pid == getpid())
		return;
	p->owner_fd = (int)syscall(SYS_pidfd_open, p->at.owner_pid, 0);
	if (p->owner_fd >= 0 &&
	    loop_add_fd(set->loop, p->owner_fd, EPOLLIN, on_owner_gone, set) != 0) {
		close(p->owner_fd);
		p->owner_fd = -1;
	}
}

static int watch_preds(struct after_set *set)
{
	set->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (set->ino_fd < 0)
		return -errno;
	for (size_t i = 0; i < set->n; i++) {
		struct after_pred *p = &set->v[i];

		if (!p->ended && inotify_add_watch(set->ino_fd, p->dir, IN_MOVED_TO | IN_DELETE) < 0)
			return -errno;
		watch_owner(set, p);
	}
	return loop_add_fd(set->loop, set->ino_fd, EPOLLIN, on_inotify, set);
}

int after_start(struct after_set *set, struct loop *loop, after_started_fn started, void *arg)
{
	int rc = 0;

	set->loop = loop;
	set->started = started;
	set->arg = arg;
	if (!wait_over(set) && (rc = watch_preds(set)) != 0)
		for (size_t i = 0; i < set->n; i++)
			if (!set->v[i].ended)
				pred_lost(&set->v[i], "could not be followed");
	update_all(set); /* what ended before the watches began; maybe the end */
	return rc;
}

void after_cancel(struct after_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		unwatch_owner(set, &set->v[i]);
	if (set->ino_fd >= 0) {
		loop_del_fd(set->loop, set->ino_fd);
		close(set->ino_fd);
		set->ino_fd = -1;
	}
	set->started = NULL;
}

void after_free(struct after_set *set)
{
	after_cancel(set);
	for (size_t i = 0; i < set->n; i++)
		free(set->v[i].dir);
	free(set->v);
	after_init(set);
}
