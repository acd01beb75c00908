/* pid detector: find the target process (a PID, a pid file, or a command line
 * pattern), watch it through a pidfd, and tell the core when it ended and how.
 *
 * The exit status comes from waitid() for our own children, else from the
 * kernel's process-events connector (needs CAP_NET_ADMIN), else it is unknown:
 * never guessed. Identity is (pid, start time) everywhere.
 *
 * The connector, with the per-process state every instance shares (its
 * socket, the pid -> instances table, the match targets waiting for execs,
 * the one inotify instance watching every pid file's folder), is in
 * pid_connector.c; pid_internal.h is what the two files share. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/proc.h"
#include "pid_internal.h"
#include "vigil/plugin.h"

/* How long to wait for the connector's exit message once the pidfd said the
 * process is gone: the kernel sends it first, but it may still be in flight. */
#define PID_EXIT_GRACE_MS 100
/* Rescan period for match targets and missing pid file folders when the
 * kernel cannot tell us. */
#define PID_POLL_MS 1000
/* A pid file written this long before its process started names another process
 * (a reused PID). The slack covers clock-tick resolution and coarse mtimes. */
#define PID_FILE_SLACK_MS 2000
/* An empty pid file is usually being written right now: warn only if it stays so. */
#define PID_EMPTY_GRACE_MS 1000
/* What changes a pid file in its folder (IN_ATTRIB: a touch moves its mtime). */
#define PID_DIR_MASK                                                                      \
	(IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY | IN_DELETE | IN_ATTRIB |   \
	 IN_ONLYDIR)
#define PID_AMBIGUOUS_LIST 10

static const struct vigil_option pid_options[] = {
	{ "pid", VIGIL_OPT_INT, 0, NULL, "the PID of a running process" },
	{ "pid_file", VIGIL_OPT_PATH, 0, NULL, "a pid file, waited for and re-read when it changes" },
	{ "match", VIGIL_OPT_REGEX, 0, NULL, "a pattern over /proc/*/cmdline matching one process" },
	{ "exit_via", VIGIL_OPT_STRING, 0, "auto",
	  "where the exit status comes from: auto, waitid, connector or none" },
	{ NULL, 0, 0, NULL, NULL },
};

static void pid_check_file(struct pid_det *d);
static void pid_rescan(struct pid_det *d);
static void pid_sample_start(struct pid_det *d);
static int pid_file_watch(struct pid_det *d, char *err, size_t errlen);

/* ------------------------------------------------------------- attaching */

static bool pid_uses_waitid(const struct pid_det *d)
{
	return d->via == VIA_AUTO || d->via == VIA_WAITID;
}

/* A child of ours can be waited for: waitid() does not say ECHILD. */
static bool pid_fd_is_child(int pidfd)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static void pid_on_pidfd(void *data, int fd, uint32_t revents);

/* A child of ours, by PID (no pidfd yet): waitid() does not say ECHILD. */
static bool pid_is_child(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* exit_via = auto subscribes only while attached to a process that is not
 * our child (waitid tells about children). Match targets subscribe at start,
 * for execs; exit_via = connector too, to fail early. */
static bool pid_cn_lazy(const struct pid_det *d)
{
	return d->via == VIA_AUTO && d->mode != PID_BY_MATCH;
}

/* Before opening pid: subscribe if it needs the connector, and let its exits
 * through the filter, so that none is missed once the pidfd is open. */
static void pid_cn_prepare(struct pid_det *d, pid_t pid)
{
	char why[256];
	if (pid_cn_lazy(d) && !d->cn_user && !pid_is_child(pid) &&
	    pidcn_acquire(d, why, sizeof(why)) < 0)
		pidcn_unavailable(d, why);
	if (!pidcn_on(d))
		return;
	pidcn_filter(d->sh, pid);
	/* What is still queued about this PID is about an earlier process. */
	(void)pidcn_drain(d->sh);
}

/* Not attached after all: drop a lazy subscription, narrow the filter. */
static void pid_cn_unprepare(struct pid_det *d)
{
	if (pid_cn_lazy(d))
		pidcn_release(d);
	else if (pidcn_on(d))
		pidcn_filter(d->sh, 0);
}

/* Attach to (pid, start). -ESRCH when that process is gone (or a zombie we
 * cannot wait for), another -errno otherwise; the reason goes into err. */
static int pid_attach(struct pid_det *d, pid_t pid, uint64_t start, char *err, size_t errlen)
{
	pid_cn_prepare(d, pid);
	int fd = (int)syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
	if (fd < 0 && errno != ESRCH) {
		int e = errno;
		snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(e));
		pid_cn_unprepare(d);
		return -e;
	}
	/* Opened, check identity again: the PID may have been reused meanwhile. */
	bool child = fd >= 0 && pid_fd_is_child(fd);
	if (fd < 0 || !proc_is_same(pid, start) || (proc_state(pid) == 'Z' && !child)) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "process %d does not exist (already exited?)", (int)pid);
		pid_cn_unprepare(d);
		return -ESRCH;
	}
	int r = d->host->watch_fd(d->ctx, fd, EPOLLIN, pid_on_pidfd, d);
	if (r < 0) {
		close(fd);
		snprintf(err, errlen, "cannot watch process %d: %s", (int)pid, strerror(-r));
		pid_cn_unprepare(d);
		return r;
	}
	d->pidfd = fd;
	d->pid = pid;
	d->start = start;
	d->is_child = child;
	d->exit_seen = d->leader_seen = d->grace_short = false;
	pid_sample_start(d);
	/* Events queued since the drain above stay queued until the next one:
	 * registered now, none about this process is missed. */
	if (pidcn_on(d) && pidcn_table_add(d->sh, d) < 0)
		d->host->log(d->ctx, VIGIL_LOG_WARN,
			     "out of memory: the exit status of process %d will be unknown",
			     (int)pid);
	if (pidcn_on(d))
		pidcn_filter(d->sh, 0); /* a match target found: no more execs */
	char cmdline[PID_CMDLINE_MAX];
	if (proc_cmdline(pid, cmdline, sizeof(cmdline)) < 0)
		cmdline[0] = '\0';
	d->host->attached(d->ctx, pid, start, cmdline);
	return 0;
}

/* -------------------------------------------------- the end-of-run report */

/* A process that is not our child, sampled (a child's rusage is exact): the
 * peak only grows; a zombie has no VmHWM left but keeps its CPU times. */
void pid_sample(struct pid_det *d)
{
	struct proc_usage u;
	if (d->pid <= 0 || proc_usage_read(d->pid, &u) < 0 || !proc_is_same(d->pid, d->start))
		return;
	if (u.peak_rss_bytes > d->usage.peak_rss_bytes)
		d->usage.peak_rss_bytes = u.peak_rss_bytes;
	if (u.cpu_ms > d->usage.cpu_ms)
		d->usage.cpu_ms = u.cpu_ms;
}

static void pid_sample_start(struct pid_det *d)
{
	d->usage = (struct proc_usage){ .peak_rss_bytes = -1, .cpu_ms = -1 };
	d->oom = -1;
	if (d->is_child)
		return;
	pid_sample(d);
	pidcn_sample_add(d);
}

static void pid_sample_stop(struct pid_det *d)
{
	pidcn_sample_del(d);
}

/* Reap a child with its rusage (the raw syscall: glibc's waitid() has no
 * rusage argument). It counts the children the child reaped too, so the peak
 * of `sh -c 'python3 ...'` is python's. 0, or -1 when not reaped here. */
static int pid_reap(struct pid_det *d, int fd, siginfo_t *si)
{
	struct rusage ru;
	memset(&ru, 0, sizeof(ru));
	if (syscall(SYS_waitid, P_PIDFD, fd, si, WEXITED | WNOHANG, &ru) != 0 || si->si_pid == 0)
		return -1;
	d->usage.peak_rss_bytes = (int64_t)ru.ru_maxrss * 1024;
	d->usage.cpu_ms = ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
			  (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
	return 0;
}

/* Hand the core the facts of the ended process (a core too old for them
 * goes without). Always called: nothing known is a fact too. */
static void pid_tell_facts(struct pid_det *d)
{
	const struct vigil_host *h = d->host;
	struct vigil_field f[3];
	size_t n = 0;
	if (h->size < offsetof(struct vigil_host, exit_facts) + sizeof(h->exit_facts) ||
	    !h->exit_facts)
		return;
	if (d->usage.peak_rss_bytes >= 0)
		f[n++] = (struct vigil_field){ .name = "peak_rss_bytes", .type = VIGIL_FIELD_INT,
					       .u.i = d->usage.peak_rss_bytes };
	if (d->usage.cpu_ms >= 0)
		f[n++] = (struct vigil_field){ .name = "cpu_seconds", .type = VIGIL_FIELD_DOUBLE,
					       .u.d = (double)d->usage.cpu_ms / 1000.0 };
	if (d->oom >= 0)
		f[n++] = (struct vigil_field){ .name = "oom_killed", .type = VIGIL_FIELD_BOOL,
					       .u.b = d->oom };
	h->exit_facts(d->ctx, f, n);
}

/* ------------------------------------------------------------ the ending */

static int64_t pid_on_recheck(void *data)
{
	struct pid_det *d = data;
	char err[256];
	d->recheck_timer = 0;
	if (d->ino_gone) { /* the folder went away: watch it anew, or wait for it */
		d->ino_gone = false;
		if (pid_file_watch(d, err, sizeof(err)) < 0)
			d->host->log(d->ctx, VIGIL_LOG_WARN, "%s", err);
	}
	if (d->mode == PID_BY_FILE)
		pid_check_file(d);
	else if (d->mode == PID_BY_MATCH)
		pid_rescan(d);
	return VIGIL_TIMER_DONE;
}

/* Have d look again (/proc, its pid file) from its own timer: it may call
 * lost() or attached(), and the core may destroy it there, which must not
 * happen inside a shared callback. */
void pid_recheck_soon(struct pid_det *d)
{
	if (d->recheck_timer)
		return;
	int64_t id = d->host->add_timer(d->ctx, 0, pid_on_recheck, d);
	d->recheck_timer = id > 0 ? id : 0;
}

/* Tell the core. host->exited() is the last thing done: the core may end the
 * monitor, and destroy this instance, from inside it. */
static void pid_report_now(struct pid_det *d, struct pid_status st)
{
	if (d->grace_timer)
		d->host->cancel_timer(d->ctx, d->grace_timer);
	d->grace_timer = 0;
	d->grace_short = false;
	if (d->pidfd >= 0) {
		d->host->unwatch_fd(d->ctx, d->pidfd);
		close(d->pidfd);
	}
	d->pidfd = -1;
	pidcn_table_del(d->sh, d);
	d->done_pid = d->pid;
	d->done_start = d->start;
	d->pid = 0;
	/* pid_file and match targets are recurring jobs: look for the next run. */
	if (d->mode != PID_BY_PID && !d->recheck_timer) {
		int64_t id = d->host->add_timer(d->ctx, 0, pid_on_recheck, d);
		d->recheck_timer = id > 0 ? id : 0;
	}
	if (d->mode == PID_BY_PID || pid_cn_lazy(d))
		pidcn_release(d); /* nothing more to hear until the next run */
	else if (pidcn_on(d))
		pidcn_filter(d->sh, 0); /* a match target waits again: execs */
	if (!st.known)
		st.code = st.sig = -1, st.core = 0;
	pid_tell_facts(d);
	d->host->exited(d->ctx, st.code, st.sig, st.core);
}

static int64_t pid_on_oom_recheck(void *data)
{
	struct pid_det *d = data;
	int r = proc_oom_killed(d->pid, d->start);
	d->oom_timer = 0;
	d->oom = r > 0 ? 1 : r == 0 ? 0 : -1;
	pid_report_now(d, d->pending);
	return VIGIL_TIMER_DONE;
}

/* The OOM killer kills with SIGKILL and logs it just after sending the
 * signal: a SIGKILL the kernel log does not explain yet is looked for once
 * more, a little later. Any other known ending was not the OOM killer's; an
 * unknown one is its only when the log says so. */
static void pid_report(struct pid_det *d, struct pid_status st)
{
	pid_sample_stop(d);
	if (st.known && st.sig != SIGKILL) {
		d->oom = 0;
		pid_report_now(d, st);
		return;
	}
	int r = proc_oom_killed(d->pid, d->start);
	d->oom = r > 0 ? 1 : (r == 0 && st.known) ? 0 : -1;
	if (r == 0 && st.known && !d->oom_timer) {
		int64_t id = d->host->add_timer(d->ctx, PID_EXIT_GRACE_MS, pid_on_oom_recheck, d);
		d->pending = st;
		d->oom_timer = id > 0 ? id : 0;
		if (d->oom_timer)
			return;
	}
	pid_report_now(d, st);
}

static int64_t pid_on_grace(void *data)
{
	struct pid_det *d = data;
	d->grace_timer = 0;
	(void)pidcn_drain(d->sh);
	if (!d->exit_seen)
		d->host->log(d->ctx, VIGIL_LOG_DEBUG, "no exit message for process %d",
			     (int)d->pid);
	pid_report(d, d->exit_seen ? d->cn_status : (struct pid_status){ 0 });
	return VIGIL_TIMER_DONE;
}

/* The status arrived while d waits out its grace period: end the wait now,
 * from d's own timer (reporting here could destroy instances mid-dispatch). */
void pid_grace_cut(struct pid_det *d)
{
	if (!d->grace_timer || d->grace_short)
		return;
	int64_t id = d->host->add_timer(d->ctx, 0, pid_on_grace, d);
	if (id <= 0)
		return; /* the 100 ms timer still reports it */
	d->host->cancel_timer(d->ctx, d->grace_timer);
	d->grace_timer = id;
	d->grace_short = true;
}

/* The pidfd is readable: the process has exited. Find out how. */
static void pid_on_pidfd(void *data, int fd, uint32_t revents)
{
	struct pid_det *d = data;
	d->host->unwatch_fd(d->ctx, fd);
	if (!d->is_child)
		pid_sample(d); /* a zombie still shows its final CPU times */
	if (d->is_child && pid_uses_waitid(d)) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		if (pid_reap(d, fd, &si) == 0) {
			struct pid_status st = { .known = true, .code = -1, .sig = -1 };
			if (si.si_code == CLD_EXITED)
				st.code = si.si_status;
			else
				st.sig = si.si_status, st.core = si.si_code == CLD_DUMPED;
			pid_report(d, st);
			return;
		}
		/* ECHILD: reaped elsewhere; the connector may still know. */
	}
	if (!pidcn_on(d)) {
		pid_report(d, (struct pid_status){ 0 });
		return;
	}
	/* The kernel queued the exit message before waking the pidfd, but it
	 * may still be in flight: read what is there, then wait a little. */
	(void)pidcn_drain(d->sh);
	if (d->exit_seen) {
		pid_report(d, d->cn_status);
		return;
	}
	int64_t id = d->host->add_timer(d->ctx, PID_EXIT_GRACE_MS, pid_on_grace, d);
	if (id <= 0)
		pid_report(d, (struct pid_status){ 0 });
	else
		d->grace_timer = id;
}

/* -------------------------------------------------------------- pid files */

/* Warn once per distinct complaint (it includes the file's content). */
__attribute__((format(printf, 3, 4))) static void pid_warn_once(struct pid_det *d,
								 const char *key,
								 const char *fmt, ...)
{
	if (d->warned && strcmp(d->warned, key) == 0)
		return;
	free(d->warned);
	d->warned = strdup(key);
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->host->log(d->ctx, VIGIL_LOG_WARN, "%s", msg);
}

/* The raw content of the pid file (bounded), as the key of its warnings. */
static void pid_file_key(const struct pid_det *d, int verdict, char *key, size_t len)
{
	int n = snprintf(key, len, "%d:", verdict);
	int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || n < 0 || (size_t)n >= len)
		goto out;
	ssize_t got = read(fd, key + n, len - 1 - (size_t)n);
	if (got > 0)
		for (ssize_t i = 0; i < got; i++)
			if (key[n + i] == '\0')
				key[n + i] = '\1';
	key[n + (got > 0 ? got : 0)] = '\0';
out:
	if (fd >= 0)
		close(fd);
}

static int64_t pid_on_empty(void *data)
{
	struct pid_det *d = data;
	d->empty_timer = 0;
	d->empty_grace_over = true;
	pid_check_file(d);
	return VIGIL_TIMER_DONE;
}

/* An empty file is normally one being written: complain only if it stays so. */
static bool pid_file_empty_wait(struct pid_det *d, const char *err)
{
	if (strcmp(err, "empty pid file") != 0 || d->empty_grace_over)
		return false;
	if (!d->empty_timer) {
		int64_t id = d->host->add_timer(d->ctx, PID_EMPTY_GRACE_MS, pid_on_empty, d);
		d->empty_timer = id > 0 ? id : 0;
	}
	return d->empty_timer != 0;
}

/* Did the process start after the pid file was last written? Then the file
 * names an earlier process whose PID was reused: an impostor. */
static bool pid_file_impostor(const struct stat *st, uint64_t start)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	int64_t started_ms = now_ms - proc_age_ms(start);
	int64_t mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
	return started_ms > mtime_ms + PID_FILE_SLACK_MS;
}

/* A valid PID read from the file: attach to it unless it is not the writer. */
static void pid_file_try(struct pid_det *d, pid_t pid, const char *key)
{
	char err[256];
	uint64_t start;
	struct stat st;
	if (proc_start_time(pid, &start) < 0 || stat(d->path, &st) < 0) {
		if (pid != d->done_pid)
			pid_warn_once(d, key, "pid file %s names process %d, which does not exist",
				      d->path, (int)pid);
		return;
	}
	if (pid == d->done_pid && start == d->done_start)
		return; /* the run just reported; wait for the next one */
	if (pid_file_impostor(&st, start)) {
		pid_warn_once(d, key,
			      "pid file %s names process %d, which started after the file was "
			      "written (a reused PID): not attaching",
			      d->path, (int)pid);
		return;
	}
	int r = pid_attach(d, pid, start, err, sizeof(err));
	if (r < 0 && pid != d->done_pid)
		pid_warn_once(d, key, "pid file %s: %s", d->path, err);
	if (r == 0) {
		free(d->warned);
		d->warned = NULL;
	}
}

static void pid_check_file(struct pid_det *d)
{
	char err[256], key[200];
	pid_t pid;
	if (d->ended || d->pidfd >= 0)
		return; /* attached: re-read after it ends */
	int r = proc_read_pid_file(d->path, &pid, err, sizeof(err));
	if (r == -ENOENT) {
		free(d->warned);
		d->warned = NULL;
		return;
	}
	if (r == -EINVAL && pid_file_empty_wait(d, err))
		return;
	d->empty_grace_over = false;
	pid_file_key(d, r, key, sizeof(key));
	if (r < 0)
		pid_warn_once(d, key, "pid file %s: %s; waiting for it to change", d->path, err);
	else
		pid_file_try(d, pid, key);
}

/* An event of d's folder watch (shared with the other pid files of that
 * folder): about its pid file, an overflow (anything may have been missed),
 * or the folder gone (the kernel dropped the watch with it). d reacts from
 * its recheck timer, once for the whole batch, not inside the shared read. */
void pid_ino_event(void *owner, const struct inotify_event *ev)
{
	struct pid_det *d = owner;
	bool gone = (ev->mask & IN_IGNORED) && ev->wd == d->ino_wd;
	if (gone) {
		d->ino_wd = -1;
		d->ino_gone = true;
	}
	if (gone || (ev->mask & IN_Q_OVERFLOW) || (ev->len && strcmp(ev->name, d->base) == 0))
		pid_recheck_soon(d);
}

static int64_t pid_on_dir_poll(void *data);

/* Watch the pid file's folder; while it does not exist, look every second. */
static int pid_file_watch(struct pid_det *d, char *err, size_t errlen)
{
	int r = pidcn_ino_watch(d, d->dir, PID_DIR_MASK, err, errlen);
	if (r != -ENOENT && r != -ENOTDIR)
		return r;
	if (!d->poll_timer) {
		d->host->log(d->ctx, VIGIL_LOG_INFO, "folder %s does not exist yet", d->dir);
		int64_t id = d->host->add_timer(d->ctx, PID_POLL_MS, pid_on_dir_poll, d);
		if (id < 0) {
			snprintf(err, errlen, "timer: %s", strerror((int)-id));
			return (int)id;
		}
		d->poll_timer = id;
	}
	return 0;
}

static int64_t pid_on_dir_poll(void *data)
{
	struct pid_det *d = data;
	char err[256];
	if (pidcn_ino_watch(d, d->dir, PID_DIR_MASK, err, sizeof(err)) < 0)
		return PID_POLL_MS;
	d->poll_timer = 0;
	pid_check_file(d);
	return VIGIL_TIMER_DONE;
}

static int pid_file_start(struct pid_det *d, char *err, size_t errlen)
{
	int r = pid_file_watch(d, err, errlen);
	if (r == 0)
		pid_check_file(d);
	return r;
}

/* ------------------------------------------------------------------ match */

struct pid_found {
	pid_t pid, ppid;
	uint64_t start;
	char cmdline[64];
};
/* Matches looked at for the root of a tree (pg_dump -j: a parent and its
 * workers share one command line); the first PID_AMBIGUOUS_LIST are named. */
#define PID_MATCH_MAX 64

/* The pattern is ours: the connector asks here for each exec'd process. */
bool pid_match_cmdline(struct pid_det *d, const char *cmdline)
{
	return pcre2_match(d->re, (PCRE2_SPTR)cmdline, strlen(cmdline), 0, 0, d->md, NULL) >= 0;
}

/* Does this /proc entry run a command line matching the pattern? */
static bool pid_matches(struct pid_det *d, pid_t pid, struct pid_found *f)
{
	char cmdline[PID_CMDLINE_MAX];
	if (proc_cmdline(pid, cmdline, sizeof(cmdline)) < 0 || !cmdline[0])
		return false; /* gone, a kernel thread, or a zombie */
	if (!pid_match_cmdline(d, cmdline))
		return false;
	if (proc_start_time(pid, &f->start) < 0)
		return false;
	if (pid == d->done_pid && f->start == d->done_start)
		return false;
	f->pid = pid;
	if (proc_ppid(pid, &f->ppid) < 0)
		f->ppid = 0;
	/* Kept short for the ambiguity message; "..." marks a cut. */
	size_t len = strlen(cmdline), max = sizeof(f->cmdline) - 1;
	if (len > max) {
		memcpy(f->cmdline, cmdline, max - 3);
		memcpy(f->cmdline + max - 3, "...", 4);
	} else {
		memcpy(f->cmdline, cmdline, len + 1);
	}
	return true;
}

/* All matching processes but ourselves and our parent; the first few kept. */
static size_t pid_scan(struct pid_det *d, struct pid_found *found, size_t max)
{
	DIR *proc = opendir("/proc");
	if (!proc)
		return 0;
	pid_t self = getpid(), parent = getppid();
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(proc))) {
		char *end;
		long v = strtol(de->d_name, &end, 10);
		if (*end || v <= 0 || v == self || v == parent)
			continue;
		struct pid_found f;
		if (!pid_matches(d, (pid_t)v, &f))
			continue;
		if (n < max)
			found[n] = f;
		n++;
	}
	closedir(proc);
	return n;
}

/* Several processes match: which one is meant cannot be known. */
static void pid_ambiguous(struct pid_det *d, const struct pid_found *found, size_t n)
{
	char msg[2048];
	size_t len = (size_t)snprintf(msg, sizeof(msg), "match \"%s\" is ambiguous: ", d->pattern);
	size_t shown = n < PID_AMBIGUOUS_LIST ? n : PID_AMBIGUOUS_LIST;
	for (size_t i = 0; i < shown && len < sizeof(msg); i++)
		len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s%d (%s)", i ? ", " : "",
					(int)found[i].pid, found[i].cmdline);
	if (n > shown && len < sizeof(msg))
		snprintf(msg + len, sizeof(msg) - len, " and %zu more", n - shown);
	d->ended = true;
	d->host->lost(d->ctx, msg); /* last: the core may destroy us inside */
}

/* Keep the matches whose parent is no match: the root of a tree that shares
 * one command line (a program and its workers, or a child between fork and
 * exec) is the process meant. Returns how many are left, first in found. */
static size_t pid_roots(struct pid_found *found, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		bool child = false;

		for (size_t j = 0; j < n && !child; j++)
			child = j != i && found[i].ppid == found[j].pid;
		if (!child)
			found[k++] = found[i];
	}
	return k;
}

static void pid_rescan(struct pid_det *d)
{
	struct pid_found found[PID_MATCH_MAX];
	char err[256];
	if (d->ended || d->pidfd >= 0 || d->mode != PID_BY_MATCH)
		return;
	size_t n = pid_scan(d, found, PID_MATCH_MAX);
	if (n > 1 && n <= PID_MATCH_MAX)
		n = pid_roots(found, n);
	if (n > 1) {
		pid_ambiguous(d, found, n);
		return;
	}
	/* A match that exits before we open it is simply not there: keep waiting. */
	if (n == 1 && pid_attach(d, found[0].pid, found[0].start, err, sizeof(err)) < 0)
		d->host->log(d->ctx, VIGIL_LOG_DEBUG, "%s", err);
}

static int64_t pid_on_poll(void *data)
{
	pid_rescan(data);
	return PID_POLL_MS;
}

static int pid_match_start(struct pid_det *d, char *err, size_t errlen)
{
	/* Without the connector's exec events nothing says a process appeared. */
	if (!pidcn_on(d) || !d->matcher_pos.in) {
		int64_t id = d->host->add_timer(d->ctx, PID_POLL_MS, pid_on_poll, d);
		if (id < 0) {
			snprintf(err, errlen, "timer: %s", strerror((int)-id));
			return (int)id;
		}
		d->poll_timer = id;
	}
	pid_rescan(d);
	return 0;
}

/* -------------------------------------------------------------- lifecycle */

static int pid_start_pid(struct pid_det *d)
{
	char err[256];
	uint64_t start;
	int r = proc_start_time(d->want_pid, &start);
	if (r == 0)
		r = pid_attach(d, d->want_pid, start, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "process %d does not exist (already exited?)",
			 (int)d->want_pid);
	if (r < 0) {
		d->ended = true;
		d->host->lost(d->ctx, err);
	}
	return 0;
}

static int pid_start(void *instance, char *err, size_t errlen)
{
	struct pid_det *d = instance;
	if (d->via == VIA_CONNECTOR || (d->via == VIA_AUTO && d->mode == PID_BY_MATCH)) {
		char why[256];
		int r = pidcn_acquire(d, why, sizeof(why));
		if (r < 0 && d->via == VIA_CONNECTOR) {
			snprintf(err, errlen, "%s", why);
			return r;
		}
		if (r < 0)
			pidcn_unavailable(d, why);
	}
	switch (d->mode) {
	case PID_BY_PID:
		return pid_start_pid(d);
	case PID_BY_FILE:
		return pid_file_start(d, err, errlen);
	case PID_BY_MATCH:
		return pid_match_start(d, err, errlen);
	}
	return -EINVAL;
}

static void pid_destroy(void *instance)
{
	struct pid_det *d = instance;
	if (!d)
		return;
	int64_t timers[] = { d->grace_timer, d->poll_timer, d->recheck_timer, d->empty_timer,
			     d->oom_timer };
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
		if (timers[i] > 0)
			d->host->cancel_timer(d->ctx, timers[i]);
	if (d->pidfd >= 0) {
		d->host->unwatch_fd(d->ctx, d->pidfd);
		close(d->pidfd);
	}
	pidcn_ino_unwatch(d);
	pid_sample_stop(d);
	pidcn_release(d);
	if (d->own_sh)
		pidcn_shared_destroy(d->sh);
	pcre2_match_data_free(d->md);
	pcre2_code_free(d->re);
	free(d->pattern);
	free(d->path);
	free(d->dir);
	free(d->base);
	free(d->warned);
	free(d);
}

/* Split a pid file path into its folder and its name. */
static int pid_split_path(struct pid_det *d, const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		snprintf(err, errlen, "pid_file: %s names a folder, not a file", path);
		return -EINVAL;
	}
	d->path = strdup(path);
	d->base = strdup(base);
	if (!slash)
		d->dir = strdup(".");
	else if (slash == path)
		d->dir = strdup("/");
	else
		d->dir = strndup(path, (size_t)(slash - path));
	return d->path && d->base && d->dir ? 0 : -ENOMEM;
}

static int pid_compile(struct pid_det *d, const char *pattern, char *err, size_t errlen)
{
	int code;
	PCRE2_SIZE off;
	d->pattern = strdup(pattern);
	if (!d->pattern)
		return -ENOMEM;
	d->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
	if (!d->re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(err, errlen, "match: %s at offset %zu", (const char *)msg, (size_t)off);
		return -EINVAL;
	}
	d->md = pcre2_match_data_create_from_pattern(d->re, NULL);
	return d->md ? 0 : -ENOMEM;
}

static int pid_parse_via(struct pid_det *d, const struct vigil_config *cfg, char *err,
			 size_t errlen)
{
	static const char *const names[] = { "auto", "waitid", "connector", "none" };
	const struct vigil_value *v = vigil_config_get(cfg, "exit_via");
	const char *text = v ? v->text : "auto";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i]) == 0) {
			d->via = (enum pid_via)i;
			return 0;
		}
	}
	snprintf(err, errlen, "exit_via: \"%s\" is not one of auto, waitid, connector, none",
		 text);
	return -EINVAL;
}

static int pid_parse_target(struct pid_det *d, const struct vigil_config *cfg, char *err,
			    size_t errlen)
{
	const struct vigil_value *pid = vigil_config_get(cfg, "pid");
	const struct vigil_value *file = vigil_config_get(cfg, "pid_file");
	const struct vigil_value *match = vigil_config_get(cfg, "match");
	int n = !!pid + !!file + !!match;
	if (n != 1) {
		snprintf(err, errlen, "%s one of pid, pid_file or match",
			 n ? "set only" : "set exactly");
		return -EINVAL;
	}
	if (pid) {
		d->mode = PID_BY_PID;
		return proc_parse_pid(pid->text, &d->want_pid, err, errlen);
	}
	if (file) {
		d->mode = PID_BY_FILE;
		return pid_split_path(d, file->text, err, errlen);
	}
	d->mode = PID_BY_MATCH;
	return pid_compile(d, match->text, err, errlen);
}

/* The process-wide state, or a private one when the core offers none (an
 * older core): then this instance has a socket of its own, as it used to. */
static int pid_attach_shared(struct pid_det *d, char *err, size_t errlen)
{
	const struct vigil_host *h = d->host;
	if (h->size >= offsetof(struct vigil_host, shared) + sizeof(h->shared) && h->shared)
		d->sh = h->shared(d->ctx);
	if (d->sh)
		return 0;
	void *own = NULL;
	int r = pidcn_shared_create(h, d->ctx, &own, err, errlen);
	d->sh = own;
	d->own_sh = r == 0;
	return r;
}

static int pid_create(const struct vigil_host *host, struct vigil_ctx *ctx,
		      const struct vigil_config *cfg, void **instance, char *err, size_t errlen)
{
	struct pid_det *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->host = host;
	d->ctx = ctx;
	d->pidfd = d->ino_wd = -1;
	int r = pid_attach_shared(d, err, errlen);
	if (r == 0)
		r = pid_parse_via(d, cfg, err, errlen);
	if (r == 0)
		r = pid_parse_target(d, cfg, err, errlen);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		pid_destroy(d);
		return r;
	}
	*instance = d;
	return 0;
}

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_DETECTOR, .name = "pid",
	     .summary = "the target process: attach, and report when and how it ends",
	     .options = pid_options, .create = pid_create, .start = pid_start,
	     .on_event = NULL, .settle = NULL, .notify = NULL, .destroy = pid_destroy,
	     .shared_create = pidcn_shared_create, .shared_destroy = pidcn_shared_destroy);
