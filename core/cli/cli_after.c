/* vigil run --after NAME: wait for other jobs' current runs, then start only
 * when they all succeeded (--after-any NAME: whatever the outcome).
 *
 * Which run: the one current when `vigil run` is called (a run already
 * finished then counts with its outcome: `vigil run A; vigil run --after A B`
 * must not depend on how fast A is). The supervisor follows the predecessors'
 * run records in their state folder with inotify (a record is replaced by a
 * rename) and their writers with a pidfd (a writer gone without a `finished`
 * leaves no outcome): no polling. When the record already belongs to a later
 * run, the outcome comes from the history: the first run that ended after the
 * check is the one we waited for (runs of one job never overlap). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cli_after.h"
#include "lib/proc.h"
#include "base/history.h"

static int64_t wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --after NAME, --after=NAME, --after-any NAME, --after-any=NAME: the name, or
 * NULL when argv[*i] is none of them (*i moves past a separate value). */
static const char *after_flag(int argc, char **argv, int *i, bool *any)
{
	const char *a = argv[*i];
	size_t len;

	*any = strncmp(a, "--after-any", 11) == 0;
	len = *any ? 11 : 7;
	if (strncmp(a, "--after", 7) != 0 || (a[len] != '\0' && a[len] != '='))
		return NULL;
	if (a[len] == '=')
		return a + len + 1;
	if (*i + 1 >= argc)
		return "";
	return argv[++*i];
}

static int add_pred(struct after_set *set, const char *name, bool any)
{
	struct after_pred *v = realloc(set->v, (set->n + 1) * sizeof(*v));

	if (!v)
		return EXIT_USAGE;
	set->v = v;
	v = &set->v[set->n++];
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->any = any;
	v->owner_fd = -1;
	return 0;
}

int after_take_flags(struct after_set *set, int *argc, char **argv)
{
	int out = 1, i;

	memset(set, 0, sizeof(*set));
	set->ino_fd = -1;
	for (i = 1; i < *argc && strcmp(argv[i], "--") != 0; i++) {
		bool any;
		const char *name = after_flag(*argc, argv, &i, &any);

		if (!name) {
			argv[out++] = argv[i];
			continue;
		}
		if (!*name || strlen(name) > 200 || strchr(name, '/')) {
			fprintf(stderr, "vigil run: --after%s needs a job name\n", any ? "-any" : "");
			return EXIT_USAGE;
		}
		if (add_pred(set, name, any))
			return EXIT_USAGE;
	}
	while (i < *argc)
		argv[out++] = argv[i++];
	argv[out] = NULL;
	*argc = out;
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

/* "failed (exit 3)", "timed out (signal SIGKILL)"; ok per --after / -any. */
static void pred_ended(struct after_pred *p, const char *outcome, int exit_code,
		       const char *signal)
{
	char words[32];

	snprintf(words, sizeof(words), "%s", *outcome ? outcome : "unknown");
	for (char *c = words; *c; c++)
		if (*c == '_')
			*c = ' ';
	if (exit_code >= 0)
		snprintf(p->verdict, sizeof(p->verdict), "%s (exit %d)", words, exit_code);
	else if (signal && *signal)
		snprintf(p->verdict, sizeof(p->verdict), "%s (%s)", words, signal);
	else
		snprintf(p->verdict, sizeof(p->verdict), "%s", words);
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

static void pred_lost(struct after_pred *p, const char *why)
{
	snprintf(p->verdict, sizeof(p->verdict), "%s", why);
	p->ended = true;
	p->ok = p->any;
}

int after_check(struct after_set *set, const char *self)
{
	set->since_ms = wall_now_ms();
	for (size_t i = 0; i < set->n; i++) {
		struct after_pred *p = &set->v[i];

		if (strcmp(p->name, self) == 0) {
			fprintf(stderr, "vigil run: --after %s: a job cannot wait for itself\n", self);
			return EXIT_USAGE;
		}
		p->dir = cli_state_dir_for(p->name);
		if (!p->dir || state_read(p->dir, p->name, &p->at) != 0) {
			fprintf(stderr, "vigil run: --after %s: no job named %s (vigil status lists "
				"them)\n", p->name, p->name);
			return EXIT_USAGE;
		}
		if (strcmp(p->at.state, "finished") == 0) {
			pred_ended_record(p, &p->at);
		} else if (p->at.run == 0 || !state_writer_alive(&p->at)) {
			fprintf(stderr, "vigil run: --after %s: %s has no current run (state %s%s)\n",
				p->name, p->name, p->at.state,
				p->at.run ? ", its owner is gone" : "");
			return EXIT_USAGE;
		}
	}
	return 0;
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

static void update_all(struct after_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		struct after_pred *p = &set->v[i];

		pred_update(set, p);
		if (p->ended && p->owner_fd >= 0) {
			loop_del_fd(set->s->loop, p->owner_fd);
			close(p->owner_fd);
			p->owner_fd = -1;
		}
	}
	if (wait_over(set))
		loop_stop(set->s->loop);
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
			const char *dot = ev->len ? strrchr(ev->name, '.') : NULL;

			ours |= ev->mask & IN_Q_OVERFLOW || (dot && strcmp(dot, ".run") == 0);
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

static int watch_preds(struct after_set *set)
{
	set->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (set->ino_fd < 0)
		return -errno;
	for (size_t i = 0; i < set->n; i++) {
		struct after_pred *p = &set->v[i];

		if (inotify_add_watch(set->ino_fd, p->dir, IN_MOVED_TO | IN_DELETE) < 0)
			return -errno;
		if (p->ended || p->at.owner_pid <= 0)
			continue;
		p->owner_fd = (int)syscall(SYS_pidfd_open, p->at.owner_pid, 0);
		if (p->owner_fd >= 0 && loop_add_fd(set->s->loop, p->owner_fd, EPOLLIN,
						     on_owner_gone, set) != 0) {
			close(p->owner_fd);
			p->owner_fd = -1;
		}
	}
	return loop_add_fd(set->s->loop, set->ino_fd, EPOLLIN, on_inotify, set);
}

/* "after: A failed (exit 3); B timed out" */
static void end_failed(struct after_set *set, struct session *s)
{
	char why[1024];
	size_t used = (size_t)snprintf(why, sizeof(why), "after:");

	if (s->signo == SIGTERM) { /* vigil stop: a run ended like any other, told */
		snprintf(why, sizeof(why), "after: stopped while waiting");
		s->signo = 0;
	} else if (s->signo)
		snprintf(why, sizeof(why), "after: interrupted (signal %d) while waiting",
			 s->signo);
	else
		for (size_t i = 0; i < set->n && used < sizeof(why); i++)
			if (set->v[i].ended && !set->v[i].ok)
				used += (size_t)snprintf(why + used, sizeof(why) - used, "%s %s %s",
							 used > 6 ? ";" : "", set->v[i].name,
							 set->v[i].verdict);
	monitor_after_failed(s->m, why);
}

static bool all_ok(const struct after_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		if (!set->v[i].ended || !set->v[i].ok)
			return false;
	return true;
}

/* The wait is over: nothing of it stays in the loop the job runs in. */
static void unwatch_preds(struct after_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i].owner_fd >= 0) {
			loop_del_fd(set->s->loop, set->v[i].owner_fd);
			close(set->v[i].owner_fd);
			set->v[i].owner_fd = -1;
		}
	if (set->ino_fd >= 0) {
		loop_del_fd(set->s->loop, set->ino_fd);
		close(set->ino_fd);
		set->ino_fd = -1;
	}
}

bool after_wait(struct after_set *set, struct session *s)
{
	char names[600];
	int r;

	set->s = s;
	if (!wait_over(set)) {
		monitor_after_waiting(s->m, after_names(set, names, sizeof(names)));
		if ((r = watch_preds(set)) != 0) {
			fprintf(stderr, "vigil run: cannot follow the jobs waited for: %s\n",
				strerror(-r));
			pred_lost(&set->v[0], "could not be followed");
		}
		update_all(set); /* what ended before the watches began */
		if (!wait_over(set))
			loop_run(s->loop);
		unwatch_preds(set);
	}
	if (all_ok(set) && !s->signo)
		return true;
	end_failed(set, s);
	return false;
}

void after_free(struct after_set *set)
{
	free(set->v);
	memset(set, 0, sizeof(*set));
	set->ino_fd = -1;
}
