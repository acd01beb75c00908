/* A monitor's hooks: `before_retry` and `on_failure`, the clean-up and roll-back
 * steps people script around jobs. A hook is a shell command given the event
 * as JSON on stdin (a memfd: whatever its size, writing it never blocks), the
 * job's identity in its environment and the job's log for its output. It runs
 * as the job does (its user, group, folder and environment): a step of the
 * job, not of the agent that runs as root. It runs
 * in its own process group beside the loop (a pidfd tells when it ends) and is
 * killed after hook_timeout; its failure goes into the run's reason. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "base/safe_file.h"
#include "lib/proc.h"
#include "monitor_internal.h"
#include "spawn_unit.h"

struct monitor_hook {
	struct monitor *m;
	const char *what; /* "before_retry", "on_failure": static strings */
	pid_t pid;
	int pidfd;
	int64_t timer;
	bool timed_out;
	monitor_hook_done done;
};

/* Add "what: text" to the run's hook notes (they end up in its reason). */
static void hook_note(struct monitor *m, const char *what, const char *text)
{
	char *joined;

	log_msg(LOG_LVL_WARN, m->name, "%s %s", what, text);
	if (asprintf(&joined, "%s%s%s %s", m->hook_notes ? m->hook_notes : "",
		     m->hook_notes ? "; " : "", what, text) < 0)
		return;
	free(m->hook_notes);
	m->hook_notes = joined;
}

/* The event for the hook's stdin, in a file of its own at offset 0. */
static int hook_stdin(const char *json)
{
	int fd = memfd_create("vigil-hook-event", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (safe_file_write_all(fd, json, strlen(json)) || safe_file_write_all(fd, "\n", 1) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		return close(fd), -EIO;
	return fd;
}

static void hook_child(const struct monitor_hook *h, const char *command, int in_fd, int out_fd,
		       const struct job_identity *id)
{
	const char *step = NULL;
	sigset_t none;
	int r;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	setpgid(0, 0);
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
		_exit(127);
	monitor_child_env(h->m, h->m->run, h->m->attempt);
	setenv("VIGIL_HOOK", h->what, 1);
	if ((r = job_identity_apply(id, h->m->mc, &step))) {
		dprintf(2, "vigil: %s: %s: %s\n", h->what, step ? step : "identity", strerror(-r));
		_exit(126);
	}
	execl("/bin/sh", "sh", "-c", command, (char *)NULL);
	_exit(127);
}

/* How it ended, as a note; NULL when it succeeded. */
static const char *hook_failure(const struct monitor_hook *h, const siginfo_t *si, char *buf,
				size_t len)
{
	char sig[32], dur[32];

	if (h->timed_out)
		snprintf(buf, len, "killed after %s (hook_timeout)",
			 config_format_duration(h->m->mc->hook_timeout_ms, dur, sizeof(dur)));
	else if (!si->si_pid)
		snprintf(buf, len, "ended, its exit status unknown");
	else if (si->si_code == CLD_EXITED && si->si_status == 0)
		return NULL;
	else if (si->si_code == CLD_EXITED)
		snprintf(buf, len, "failed (exit %d)", si->si_status);
	else
		snprintf(buf, len, "failed (killed by %s)",
			 proc_signal_name(si->si_status, sig, sizeof(sig)));
	return buf;
}

static void hook_release(struct monitor_hook *h)
{
	struct loop *loop = engine_loop(h->m->engine);

	if (h->timer > 0)
		loop_del_timer(loop, h->timer);
	loop_del_fd(loop, h->pidfd);
	close(h->pidfd);
	h->m->hook = NULL;
	free(h);
}

static void hook_exited(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct monitor_hook *h = data;
	struct monitor *m = h->m;
	monitor_hook_done done = h->done;
	siginfo_t si = {0};
	char why[96];
	const char *fail;

	(void)loop;
	(void)revents;
	if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0)
		return; /* not ended after all */
	if ((fail = hook_failure(h, &si, why, sizeof(why))))
		hook_note(m, h->what, fail);
	hook_release(h);
	done(m);
}

/* Past its limit: the whole group goes; the pidfd then says it has ended. */
static int64_t hook_timeout_fired(struct loop *loop, int64_t id, void *data)
{
	struct monitor_hook *h = data;

	(void)loop;
	(void)id;
	h->timer = 0;
	h->timed_out = true;
	kill(-h->pid, SIGKILL);
	syscall(SYS_pidfd_send_signal, h->pidfd, SIGKILL, NULL, 0);
	return LOOP_TIMER_DONE;
}

/* fork, with the pidfd in the loop and the time limit armed; 0 or -errno. */
static int hook_start(struct monitor_hook *h, const char *command, int in_fd, int out_fd,
		      const struct job_identity *id)
{
	struct loop *loop = engine_loop(h->m->engine);

	h->pid = fork();
	if (h->pid < 0)
		return -errno;
	if (h->pid == 0)
		hook_child(h, command, in_fd, out_fd, id);
	setpgid(h->pid, h->pid); /* also here: whichever runs first, the group exists */
	h->pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
	if (h->pidfd < 0 || loop_add_fd(loop, h->pidfd, EPOLLIN, hook_exited, h) != 0) {
		int e = h->pidfd < 0 ? errno : EIO;

		kill(-h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
		if (h->pidfd >= 0)
			close(h->pidfd);
		return -e;
	}
	h->timer = loop_add_timer(loop, h->m->mc->hook_timeout_ms, hook_timeout_fired, h, NULL);
	if (h->timer <= 0)
		log_msg(LOG_LVL_ERR, h->m->name, "cannot arm the %s time limit: %s", h->what,
			strerror((int)-h->timer));
	return 0;
}

int monitor_hook_run(struct monitor *m, const char *what, const char *command, const char *json,
		     monitor_hook_done done)
{
	struct monitor_hook *h = calloc(1, sizeof(*h));
	char err[300] = "out of memory", note[360];
	int in_fd = -1, out_fd = -1, r = -ENOMEM;
	struct job_identity id = {0};
	bool have_id = false;

	if (h && (r = job_identity_resolve(m->mc, &id, err, sizeof(err))) == 0)
		have_id = true;
	if (!have_id)
		; /* err says why (an unknown user, out of memory) */
	else if ((in_fd = hook_stdin(json ? json : "")) < 0)
		snprintf(err, sizeof(err), "memfd: %s", strerror(-(r = in_fd)));
	else if ((out_fd = monitor_open_output(m, err, sizeof(err))) < 0)
		r = out_fd;
	else {
		*h = (struct monitor_hook){.m = m, .what = what, .done = done, .pidfd = -1};
		if ((r = hook_start(h, command, in_fd, out_fd, &id)) < 0)
			snprintf(err, sizeof(err), "fork: %s", strerror(-r));
	}
	if (have_id)
		job_identity_free(&id);
	if (in_fd >= 0)
		close(in_fd);
	if (out_fd >= 0)
		close(out_fd);
	if (r < 0 || !h) {
		free(h);
		snprintf(note, sizeof(note), "could not start: %s", err);
		hook_note(m, what, note);
		return r < 0 ? r : -ENOMEM;
	}
	m->hook = h;
	return 0;
}

/* The monitor goes away with a hook still running: end it, reap it. */
void monitor_hook_free(struct monitor *m)
{
	struct monitor_hook *h = m->hook;

	if (h) {
		kill(-h->pid, SIGKILL);
		syscall(SYS_pidfd_send_signal, h->pidfd, SIGKILL, NULL, 0);
		waitpid(h->pid, NULL, 0);
		hook_release(h);
	}
	free(m->hook_notes);
	m->hook_notes = NULL;
}
