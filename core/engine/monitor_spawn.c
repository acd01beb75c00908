/* Starting the command of a `command =` monitor (vigil run): its own process
 * group, stdin from /dev/null, stdout and stderr appended to the log, signals
 * unblocked and reset (the loop blocks the ones it reads through signalfd). An
 * exec failure comes back through a close-on-exec pipe, so it is reported here
 * rather than as a mysterious exit 127. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "lib/proc.h"
#include "base/safe_file.h"
#include "monitor_internal.h"
#include "spawn_unit.h"

/* What a child that could not start sends back: errno and the step (a string
 * literal: the same address in the parent, a copy of this process). */
struct start_failure {
	int err;
	const char *step;
};

static void child_exec(const char *command, char *const *argv, int log_fd, int errfd,
		       const struct job_identity *id, const struct monitor_config *mc)
{
	struct start_failure f = { 0, NULL };
	sigset_t none;
	int fd, r;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	setpgid(0, 0);
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, 0) < 0)
		goto fail;
	if (dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
		goto fail;
	if ((r = job_identity_apply(id, mc, &f.step))) {
		errno = -r;
		goto fail;
	}
	if (argv)
		execvp(argv[0], argv);
	else
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
fail:
	f.err = errno;
	if (write(errfd, &f, sizeof(f)) < 0)
		_exit(127);
	_exit(127);
}

int monitor_make_pid_detector(struct monitor *m, pid_t pid, char *err, size_t errlen)
{
	struct diag d = {0};
	struct detector *det;

	for (size_t i = 0; i < m->n_dets; i++)
		if (m->dets[i] == m->pid_det) {
			detector_free(m->pid_det);
			m->dets[i] = m->dets[--m->n_dets];
			m->pid_det = NULL;
			break;
		}
	det = monitor_pid_detector_new(m, pid, &d);
	if (!det) {
		snprintf(err, errlen, "%s", d.n ? d.lines[0] : "cannot watch the process");
		diag_free(&d);
		return -EINVAL;
	}
	diag_free(&d);
	if (monitor_add_detector(m, det)) {
		detector_free(det);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->pid_det = det;
	if (det->plugin->start && det->plugin->start(det->instance, err, errlen))
		return -EINVAL;
	return 0;
}

/* Opened here rather than in the child, so that a refusal (a link planted in a
 * folder others can write: see base/safe_file.h) comes back with its reason. */
static int open_output(const struct monitor *m, char *err, size_t errlen)
{
	const char *log = m->log_path ? m->log_path : m->mc->log;
	int fd;

	if (!log) {
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			snprintf(err, errlen, "/dev/null: %s", strerror(errno));
		return fd < 0 ? -errno : fd;
	}
	return safe_file_append(log, 0640, err, errlen);
}

int monitor_open_output(const struct monitor *m, char *err, size_t errlen)
{
	return open_output(m, err, errlen);
}

/* Which attempt a spawn starts now (1: a new run), and of which run. */
static int spawn_attempt(const struct monitor *m, uint64_t *run)
{
	bool retry = m->state == RUN_RETRYING;

	*run = retry ? m->run : m->run + 1;
	return retry ? m->attempt : 1;
}

/* In a child: who it works for (after fork: one thread, setenv is safe). */
void monitor_child_env(const struct monitor *m, uint64_t run, int attempt)
{
	char num[32];

	setenv("VIGIL_JOB", m->name, 1);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)run);
	setenv("VIGIL_RUN", num, 1);
	snprintf(num, sizeof(num), "%d", attempt);
	setenv("VIGIL_ATTEMPT", num, 1);
}

static char *tree_marker(struct monitor *m);

void monitor_adopt(struct monitor *m, pid_t pid, uint64_t start_time)
{
	m->adopt_pid = pid;
	m->adopt_start = start_time;
}

/* 1: the job of an earlier agent is followed; 0: it is gone, start afresh. It
 * keeps its run number (seeded by the agent) and its limits (they count from
 * the process's start time); its exit status comes where the kernel tells. */
static int adopt_job(struct monitor *m, int *rc, char *err, size_t errlen)
{
	pid_t pid = m->adopt_pid;

	m->adopt_pid = 0;
	if (!proc_is_same(pid, m->adopt_start))
		return 0;
	log_msg(LOG_LVL_INFO, m->name, "pid %d still runs from an earlier start: following it "
		"(run %llu), not starting the command again", (int)pid,
		(unsigned long long)m->run + 1);
	m->attempts = 1;
	*rc = monitor_make_pid_detector(m, pid, err, errlen);
	return 1;
}

/* The child's report: 0 when it reached exec, else -errno with err set. */
static int start_result(int pipe_rd, pid_t pid, const char *command, char *err, size_t errlen)
{
	struct start_failure f = { 0, NULL };
	ssize_t n;

	do
		n = read(pipe_rd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(pipe_rd);
	if (n != sizeof(f))
		return 0;
	waitpid(pid, NULL, 0);
	if (f.step)
		snprintf(err, errlen, "cannot start \"%s\": %s: %s", command, f.step,
			 strerror(f.err));
	else
		snprintf(err, errlen, "cannot start \"%s\": %s", command, strerror(f.err));
	return -f.err;
}

/* The output log and the close-on-exec pipe a failed start reports through. */
static int open_channels(const struct monitor *m, int *log_fd, int pipefd[2], char *err,
			 size_t errlen)
{
	int e;

	if ((*log_fd = open_output(m, err, errlen)) < 0)
		return *log_fd;
	if (pipe2(pipefd, O_CLOEXEC) == 0)
		return 0;
	e = errno;
	snprintf(err, errlen, "pipe: %s", strerror(e));
	close(*log_fd);
	return -e;
}

/* fork/exec as the job's user (where no systemd can start it as a unit). */
static int spawn_direct(struct monitor *m, const char *command, char *const *argv,
			const struct job_identity *id, char *err, size_t errlen)
{
	int pipefd[2], log_fd, r;
	char *marker = tree_marker(m);
	uint64_t run;
	int attempt = spawn_attempt(m, &run);
	pid_t pid;

	if ((r = open_channels(m, &log_fd, pipefd, err, errlen)))
		return r;
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		close(log_fd);
		return -EAGAIN;
	}
	if (pid == 0) {
		close(pipefd[0]);
		if (marker)
			putenv(marker);
		monitor_child_env(m, run, attempt);
		child_exec(command, argv, log_fd, pipefd[1], id, m->mc);
	}
	setpgid(pid, pid); /* also here: whichever runs first, the group exists */
	close(pipefd[1]);
	close(log_fd);
	m->attempts++;
	if ((r = start_result(pipefd[0], pid, command, err, errlen)))
		return r;
	m->target.is_child = 1;
	return monitor_make_pid_detector(m, pid, err, errlen);
}

/* As a transient unit of the system's systemd: outside the agent's sandbox.
 * Not our child: its exit status comes through the process-events connector
 * (the agent's CAP_NET_ADMIN). */
static int spawn_as_unit(struct monitor *m, const char *command, char *const *argv,
			 const struct job_identity *id, char *err, size_t errlen)
{
	struct unit_job job = { .name = m->name, .command = command, .argv = argv, .id = id,
				.mc = m->mc };
	int gate = -1, r;
	pid_t pid;

	job.attempt = spawn_attempt(m, &job.run);
	if ((job.out_fd = open_output(m, err, errlen)) < 0)
		return job.out_fd;
	pid = spawn_unit_start(&job, &gate, err, errlen);
	close(job.out_fd);
	m->attempts++;
	if (pid < 0)
		return (int)pid;
	m->target.is_child = 0;
	r = monitor_make_pid_detector(m, pid, err, errlen);
	spawn_unit_release(gate); /* watched now: the job may run (and end) */
	return r;
}

int monitor_spawn(struct monitor *m, char *err, size_t errlen)
{
	/* retry_command replaces the command after the first attempt (a resume) */
	bool resume = m->state == RUN_RETRYING && m->mc->retry_command;
	const char *command = resume ? m->mc->retry_command : m->mc->command;
	char *const *argv = resume ? NULL : m->mc->command_argv;
	struct job_identity id;
	int r = 0;

	if (m->adopt_pid > 0 && adopt_job(m, &r, err, errlen))
		return r; /* followed, not started: its result */
	if ((r = job_identity_resolve(m->mc, &id, err, errlen))) {
		m->attempts++;
		return r;
	}
	if (spawn_unit_available())
		r = spawn_as_unit(m, command, argv, &id, err, errlen);
	else
		r = spawn_direct(m, command, argv, &id, err, errlen);
	job_identity_free(&id);
	return r;
}

/* ------------------------------------------------------------ process trees */
/* A job owns its whole process tree. vigil run's supervisor and the agent are
 * child subreapers, so whatever the job leaves behind (a daemonizing command's
 * worker, a setsid'd grandchild) becomes our child when its parent dies. The
 * run then goes on until the last of them has exited (descendants = wait),
 * ends them (kill), or ignores them (leave). Which job an orphan belongs to is
 * told by VIGIL_TREE in its environment: the agent is the parent of many jobs. */

struct tree_worker {
	pid_t pid;
	int fd; /* pidfd, in the loop */
};

struct job_tree {
	struct monitor *m;
	char marker[320];     /* "VIGIL_TREE=<owner pid>:<name>" */
	struct tree_worker *w;
	size_t n, cap;
	bool holding;         /* the main process exited; workers it left run on */
	bool releasing;       /* monitor_exited is being given the final status */
	bool main_ok;         /* the main process exited 0: the last worker decides */
	int code, sig, core;  /* the status the run will report */
	int64_t kill_timer;   /* descendants = kill: SIGKILL after the grace */
};

struct proc_link {
	pid_t pid, ppid;
	char state;
};

/* One process's parent and state, from /proc/PID/stat. */
static int read_link(pid_t pid, struct proc_link *l)
{
	char path[64], buf[512], *p;
	int ppid, fd;
	ssize_t len;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return -EIO;
	buf[len] = '\0';
	/* the command name may hold ')' and spaces: the state follows the last ')' */
	if (!(p = strrchr(buf, ')')) || sscanf(p + 1, " %c %d", &l->state, &ppid) != 2)
		return -EIO;
	l->pid = pid;
	l->ppid = (pid_t)ppid;
	return 0;
}

/* Every process with its parent. */
static int proc_links(struct proc_link **out, size_t *n_out)
{
	struct proc_link *v = NULL, l;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *dir = opendir("/proc");

	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		pid_t pid = (pid_t)atoi(e->d_name);

		if (pid <= 0 || read_link(pid, &l) != 0)
			continue;
		if (n == cap) {
			struct proc_link *nv = realloc(v, (cap = cap ? cap * 2 : 256) * sizeof(*v));

			if (!nv)
				break;
			v = nv;
		}
		v[n++] = l;
	}
	closedir(dir);
	*out = v;
	*n_out = n;
	return 0;
}

static bool pid_listed(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

int engine_descendants(const pid_t *roots, size_t n_roots, bool live_only, pid_t **out,
		       size_t *n_out)
{
	struct proc_link *links;
	size_t n_links, n = 0, added = 1;
	pid_t *v;
	int r = proc_links(&links, &n_links);

	*out = NULL;
	*n_out = 0;
	if (r)
		return r;
	v = calloc(n_links + 1, sizeof(*v));
	if (!v)
		return free(links), -ENOMEM;
	/* Each pass adds the children of what is listed; a zombie has none. */
	while (added) {
		added = 0;
		for (size_t i = 0; i < n_links; i++) {
			const struct proc_link *l = &links[i];

			if ((pid_listed(roots, n_roots, l->ppid) || pid_listed(v, n, l->ppid)) &&
			    !pid_listed(v, n, l->pid) && !(live_only && l->state == 'Z')) {
				v[n++] = l->pid;
				added++;
			}
		}
	}
	free(links);
	*out = v;
	*n_out = n;
	return 0;
}

/* Does pid carry this job's marker? One whose environment cannot be read (a
 * zombie has none left) is taken only by vigil run's supervisor, where every
 * child is the job's; in the agent it may be another job's main process. */
static bool tree_owns(const struct job_tree *t, pid_t pid)
{
	char path[64], *buf;
	size_t len = 0, cap = 1 << 16, mlen = strlen(t->marker) + 1;
	ssize_t r;
	bool found = false;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return t->m->supervisor == getpid();
	if (!(buf = malloc(cap)))
		return close(fd), false;
	while ((r = read(fd, buf + len, cap - len)) > 0 && (len += (size_t)r) == cap) {
		char *nb = realloc(buf, cap * 2);

		if (!nb)
			break;
		buf = nb;
		cap *= 2;
	}
	close(fd);
	for (size_t i = 0; i + mlen <= len && !found; i += strlen(buf + i) + 1)
		found = memcmp(buf + i, t->marker, mlen) == 0;
	free(buf);
	return found || (len == 0 && t->m->supervisor == getpid());
}

static void tree_worker_exited(struct loop *loop, int fd, uint32_t revents, void *data);

static void tree_track(struct job_tree *t, pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		return;
	if (t->n == t->cap) {
		struct tree_worker *nw = realloc(t->w, (t->cap ? t->cap * 2 : 4) * sizeof(*nw));

		if (!nw)
			return (void)close(fd);
		t->w = nw;
		t->cap = t->cap ? t->cap * 2 : 4;
	}
	if (loop_add_fd(engine_loop(t->m->engine), fd, EPOLLIN, tree_worker_exited, t) != 0)
		return (void)close(fd);
	t->w[t->n++] = (struct tree_worker){pid, fd};
}

/* Our children that belong to this job and are not followed yet. */
static void tree_scan(struct job_tree *t)
{
	struct proc_link *links;
	size_t n_links;
	pid_t self = getpid();

	if (proc_links(&links, &n_links) != 0)
		return;
	for (size_t i = 0; i < n_links; i++) {
		bool known = false;

		if (links[i].ppid != self)
			continue;
		for (size_t k = 0; k < t->n; k++)
			known |= t->w[k].pid == links[i].pid;
		if (!known && tree_owns(t, links[i].pid))
			tree_track(t, links[i].pid);
	}
	free(links);
}

static void tree_forget(struct job_tree *t, size_t i)
{
	loop_del_fd(engine_loop(t->m->engine), t->w[i].fd);
	close(t->w[i].fd);
	t->w[i] = t->w[--t->n];
}

/* The last process of the tree is gone: the run ends with the status kept. */
static void tree_release(struct job_tree *t)
{
	if (t->kill_timer > 0)
		loop_del_timer(engine_loop(t->m->engine), t->kill_timer);
	t->kill_timer = 0;
	t->holding = false;
	t->releasing = true;
	monitor_exited(t->m, t->code, t->sig, t->core);
	t->releasing = false;
}

static void tree_worker_exited(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct job_tree *t = data;
	siginfo_t si = {0};

	(void)loop;
	(void)revents;
	for (size_t i = 0; i < t->n; i++) {
		if (t->w[i].fd != fd)
			continue;
		/* ECHILD: reaped elsewhere, its status unknown; it is gone all the same */
		if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) == 0 &&
		    si.si_pid == 0)
			return; /* not exited yet after all */
		if (t->main_ok && t->m->mc->descendants == DESCENDANTS_WAIT) {
			bool exited = si.si_pid && si.si_code == CLD_EXITED;

			t->code = !si.si_pid ? -1 : exited ? si.si_status : -1;
			t->sig = !si.si_pid ? -1 : exited ? 0 : si.si_status;
			t->core = si.si_pid && si.si_code == CLD_DUMPED;
		}
		tree_forget(t, i);
		break;
	}
	tree_scan(t); /* what the dead worker left is ours now */
	if (t->holding && t->n == 0)
		tree_release(t);
}

/* The main process while it lives: its pidfd, opened and then checked against
 * the start time (race-free against PID reuse); -1 once it is gone. */
static int main_pidfd(const struct monitor *m)
{
	int fd = m->target.pid > 0 ? (int)syscall(SYS_pidfd_open, m->target.pid, 0) : -1;

	if (fd >= 0 && !proc_is_same(m->target.pid, m->target.start_time)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Signal every process of the tree: the main process and its group while it
 * lives, the workers it left, and all their descendants, setsid or not. A
 * SIGCONT follows a SIGTERM so that a stopped process gets to act on it. */
static void tree_signal_all(struct job_tree *t, int sig)
{
	struct monitor *m = t->m;
	pid_t *roots = calloc(t->n + 1, sizeof(*roots)), *desc = NULL;
	size_t n_roots = 0, n_desc = 0;
	int mfd = main_pidfd(m);

	if (!roots)
		return;
	if (mfd >= 0)
		roots[n_roots++] = m->target.pid;
	for (size_t i = 0; i < t->n; i++)
		roots[n_roots++] = t->w[i].pid;
	engine_descendants(roots, n_roots, true, &desc, &n_desc);
	for (int pass = 0; pass < (sig == SIGKILL ? 1 : 2); pass++) {
		int s = pass ? SIGCONT : sig;

		if (mfd >= 0) {
			kill(-m->target.pid, s);
			syscall(SYS_pidfd_send_signal, mfd, s, NULL, 0);
		}
		for (size_t i = 0; i < t->n; i++)
			syscall(SYS_pidfd_send_signal, t->w[i].fd, s, NULL, 0);
		for (size_t i = 0; i < n_desc; i++)
			kill(desc[i], s);
	}
	if (mfd >= 0)
		close(mfd);
	free(desc);
	free(roots);
}

/* 1: the job's tree was signalled; 0: not a job vigil started (or no tree). */
bool monitor_tree_signal(struct monitor *m, int sig)
{
	if (!m->tree || !m->target.is_child)
		return false;
	tree_signal_all(m->tree, sig);
	return true;
}

static int64_t tree_kill_fired(struct loop *loop, int64_t id, void *data)
{
	struct job_tree *t = data;

	(void)loop;
	(void)id;
	t->kill_timer = 0;
	if (t->holding)
		tree_signal_all(t, SIGKILL);
	return LOOP_TIMER_DONE;
}

bool monitor_tree_hold(struct monitor *m, int code, int sig, int core_dumped)
{
	struct job_tree *t = m->tree;

	if (!t || t->releasing || t->holding || !m->target.is_child ||
	    m->mc->descendants == DESCENDANTS_LEAVE)
		return false;
	tree_scan(t);
	if (t->n == 0)
		return false;
	t->holding = true;
	t->code = code;
	t->sig = sig;
	t->core = core_dumped;
	t->main_ok = code == 0 && sig <= 0;
	log_msg(LOG_LVL_INFO, m->name, "process %d ended (%s %d); %zu process(es) it left %s",
		(int)m->target.pid, sig > 0 ? "signal" : "exit", sig > 0 ? sig : code, t->n,
		m->mc->descendants == DESCENDANTS_KILL ? "are ended" : "still run: waiting");
	if (m->mc->descendants == DESCENDANTS_KILL) {
		tree_signal_all(t, SIGTERM);
		t->kill_timer = loop_add_timer(engine_loop(m->engine), m->mc->kill_grace_ms,
					       tree_kill_fired, t, NULL);
	}
	return true;
}

void monitor_tree_free(struct monitor *m)
{
	struct job_tree *t = m->tree;

	if (!t)
		return;
	while (t->n)
		tree_forget(t, t->n - 1);
	if (t->kill_timer > 0)
		loop_del_timer(engine_loop(m->engine), t->kill_timer);
	free(t->w);
	free(t);
	m->tree = NULL;
}

/* The environment entry that marks the job's processes, made before the fork. */
static char *tree_marker(struct monitor *m)
{
	if (!m->tree && !(m->tree = calloc(1, sizeof(*m->tree))))
		return NULL;
	m->tree->m = m;
	snprintf(m->tree->marker, sizeof(m->tree->marker), "VIGIL_TREE=%d:%s", (int)getpid(),
		 m->name);
	return m->tree->marker;
}
