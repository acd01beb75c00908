/* The pid detector, loaded from the built pid.so and driven through the fake
 * host with real processes: children, reparented non-children, pid files and
 * command line matches. Every wait is bounded. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>

#include <cmocka.h>

#include "fake_host.h"
#include "tmp_tree.h"

#define WAIT_MS 5000
#define MAX_KIDS 8
#define N_MANY 200

struct t {
	const struct vigil_plugin *p;
	struct fake_host *fh;
	pid_t kids[MAX_KIDS]; /* killed at teardown */
	size_t n_kids;
	int go_many[2]; /* closing [k] ends the N_MANY orphans i with i % 2 == k */
	char dir[64];
	char pidfile[128];
	char marker[64];
};

/* ---------------------------------------------------------------- helpers */

static bool is_attached(struct fake_host *fh, void *arg)
{
	pid_t pid = 0;
	return fake_host_attached(fh, &pid, NULL) && (!arg || pid == *(pid_t *)arg);
}

static bool is_exited(struct fake_host *fh, void *arg)
{
	(void)arg;
	return fake_host_exited(fh, NULL, NULL, NULL);
}

/* The last reported exit has code *arg (the flag of an earlier run stays set). */
static bool is_exit_code(struct fake_host *fh, void *arg)
{
	int code = -2;
	return fake_host_exited(fh, &code, NULL, NULL) && code == *(int *)arg;
}

static bool is_lost(struct fake_host *fh, void *arg)
{
	(void)arg;
	return fake_host_lost(fh) != NULL;
}

static void track(struct t *t, pid_t pid)
{
	assert_true(t->n_kids < MAX_KIDS);
	t->kids[t->n_kids++] = pid;
}

/* A child that waits for one byte on *go, then exits with `code`. An EOF (the
 * test died) makes it exit too. */
static pid_t spawn_waiter(struct t *t, int code, int *go)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(100);
		_exit(code);
	}
	close(p[0]);
	*go = p[1];
	track(t, pid);
	return pid;
}

static void say_go(int *go)
{
	assert_int_equal(write(*go, "g", 1), 1);
	close(*go);
	*go = -1;
}

/* A process that is not our child: double fork in a new session, so it is
 * reparented. Its PID comes back through a pipe; it exits `code` on a byte. */
static pid_t spawn_orphan(struct t *t, int code, int *go)
{
	int info[2], g[2];
	assert_int_equal(pipe2(info, O_CLOEXEC), 0);
	assert_int_equal(pipe2(g, O_CLOEXEC), 0);
	pid_t mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		close(info[0]);
		close(g[1]);
		setsid();
		pid_t pid = fork();
		if (pid == 0) {
			char c;
			close(info[1]);
			if (read(g[0], &c, 1) != 1)
				_exit(100);
			_exit(code);
		}
		_exit(write(info[1], &pid, sizeof(pid)) == sizeof(pid) ? 0 : 1);
	}
	close(info[1]);
	close(g[0]);
	pid_t pid = 0;
	assert_int_equal(read(info[0], &pid, sizeof(pid)), sizeof(pid));
	close(info[0]);
	int status;
	assert_int_equal(waitpid(mid, &status, 0), mid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(pid > 0);
	track(t, pid);
	*go = g[1];
	return pid;
}

/* `sh -c 'read x; exit 3' MARKER`, its stdin a pipe: a byte ends it. Returns
 * once exec has happened, so its command line is the final one. */
static pid_t spawn_marked(struct t *t, int *go)
{
	int in[2], exec_done[2];
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(exec_done, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(in[1]);
		close(exec_done[0]);
		dup2(in[0], 0);
		execl("/bin/sh", "sh", "-c", "read x; exit 3", t->marker, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(exec_done[1]);
	char c;
	assert_int_equal(read(exec_done[0], &c, 1), 0);
	close(exec_done[0]);
	track(t, pid);
	*go = in[1];
	return pid;
}

/* A PID that named a process a moment ago and names nothing now. */
static pid_t gone_pid(void)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

static void write_pidfile_at(const char *path, const char *content)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	assert_int_equal(rename(tmp, path), 0); /* how daemons should write it */
}

static void write_pidfile(const struct t *t, const char *content)
{
	write_pidfile_at(t->pidfile, content);
}

static void write_pid_at(const char *path, pid_t pid)
{
	char text[32];
	snprintf(text, sizeof(text), "%d\n", (int)pid);
	write_pidfile_at(path, text);
}

static void write_pid(const struct t *t, pid_t pid)
{
	write_pid_at(t->pidfile, pid);
}

static int start(struct t *t, const char *const *lines)
{
	void *inst;
	return fake_host_instantiate(t->fh, t->p, lines, &inst);
}

static void expect_exit(struct t *t, int code, int sig)
{
	int c = -2, s = -2, core = -2;
	assert_true(fake_host_run_until(t->fh, is_exited, NULL, WAIT_MS));
	assert_true(fake_host_exited(t->fh, &c, &s, &core));
	assert_int_equal(c, code);
	assert_int_equal(s, sig);
	assert_int_equal(core, 0);
}

/* Can this process subscribe to the process-events connector? Asked of the
 * kernel the same way the plugin does, to tell a skip from a failure: bind
 * (EPERM without CAP_NET_ADMIN), then the ack of the subscription, which the
 * kernel queues before send() returns (newer kernels send none: then no news
 * is good news, as for the plugin). */
static bool connector_usable(void)
{
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC };
	_Alignas(struct nlmsghdr) char buf[4096];
	if (fd < 0)
		return false;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return false;
	}
	memset(buf, 0, sizeof(buf));
	struct nlmsghdr *nh = (void *)buf;
	nh->nlmsg_len = NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(uint32_t));
	nh->nlmsg_type = NLMSG_DONE;
	struct cn_msg *cn = NLMSG_DATA(nh);
	cn->id = (struct cb_id){ CN_IDX_PROC, CN_VAL_PROC };
	cn->seq = 0x7e57;
	cn->len = sizeof(uint32_t);
	uint32_t op = PROC_CN_MCAST_LISTEN;
	memcpy(cn->data, &op, sizeof(op));
	bool ok = send(fd, buf, nh->nlmsg_len, 0) >= 0;
	while (ok) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == ENOBUFS)
			continue;
		if (n < 0)
			break; /* EAGAIN: everything queued was read */
		if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct cn_msg)))
			continue;
		cn = NLMSG_DATA(nh);
		struct proc_event ev; /* copied: the payload is not 8-byte aligned */
		memset(&ev, 0, sizeof(ev));
		memcpy(&ev, cn->data, cn->len < sizeof(ev) ? cn->len : sizeof(ev));
		if (ev.what == PROC_EVENT_NONE && cn->seq == 0x7e57)
			ok = ev.event_data.ack.err == 0;
	}
	close(fd);
	return ok;
}

/* How many of this process's fds are process-events connector sockets: the
 * inodes of NETLINK_CONNECTOR sockets (/proc/self/net/netlink) that one of
 * /proc/self/fd links to. The last one found goes into *last. */
static size_t connector_sockets_fd(int *last)
{
	unsigned long inodes[256];
	size_t n_inodes = 0, found = 0;
	char line[512];
	FILE *f = fopen("/proc/self/net/netlink", "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long ino;
		int proto;
		/* sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode */
		if (sscanf(line, "%*s %d %*s %*s %*s %*s %*s %*s %*s %lu", &proto, &ino) == 2 &&
		    proto == NETLINK_CONNECTOR && n_inodes < 256)
			inodes[n_inodes++] = ino;
	}
	fclose(f);
	DIR *dir = opendir("/proc/self/fd");
	assert_non_null(dir);
	struct dirent *de;
	while ((de = readdir(dir))) {
		char path[300], target[64];
		unsigned long ino;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		ssize_t len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (sscanf(target, "socket:[%lu]", &ino) != 1)
			continue;
		for (size_t i = 0; i < n_inodes; i++) {
			if (inodes[i] == ino) {
				found++;
				if (last)
					*last = atoi(de->d_name);
			}
		}
	}
	closedir(dir);
	return found;
}

static size_t connector_sockets(void)
{
	return connector_sockets_fd(NULL);
}

/* The plugin's connector socket (there must be exactly one) and the length
 * of the socket filter attached to it (0: none). */
static int plugin_connector(unsigned *filter_len)
{
	int fd = -1;
	assert_int_equal(connector_sockets_fd(&fd), 1);
	socklen_t len = 0;
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, NULL, &len), 0);
	*filter_len = (unsigned)len; /* in instructions */
	return fd;
}

/* Fork n processes that exec /bin/true (fork, exec and exit events) and reap
 * them: when waitpid() returns, the kernel has queued their exit events. */
static void churn(int n)
{
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
}

/* Read what the filter let into the plugin's socket without running the loop:
 * the number of process events (acks of other listeners aside). */
static int pending_events(int fd)
{
	_Alignas(struct nlmsghdr) char buf[4096];
	int events = 0;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == ENOBUFS) {
			events++; /* an overflow: plenty came in */
			continue;
		}
		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			return events;
		}
		struct nlmsghdr *nh = (void *)buf;
		assert_true(n >= (ssize_t)NLMSG_LENGTH(sizeof(struct cn_msg)));
		struct cn_msg *cn = NLMSG_DATA(nh);
		struct proc_event ev;
		memset(&ev, 0, sizeof(ev));
		memcpy(&ev, cn->data, cn->len < sizeof(ev) ? cn->len : sizeof(ev));
		if (ev.what != PROC_EVENT_NONE)
			events++;
	}
}

/* N_MANY processes that are not our children, in a new session; process i
 * exits 10 + i when t->go_many[i % 2] is closed (half of them at once), or
 * when the test dies. */
static void spawn_many_orphans(struct t *t, pid_t *pids)
{
	int info[2], g[2], g2[2];
	assert_int_equal(pipe2(info, O_CLOEXEC), 0);
	assert_int_equal(pipe2(g, O_CLOEXEC), 0);
	assert_int_equal(pipe2(g2, O_CLOEXEC), 0);
	pid_t mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		close(info[0]);
		close(g[1]);
		close(g2[1]);
		setsid();
		for (int i = 0; i < N_MANY; i++) {
			pid_t pid = fork();
			if (pid == 0) {
				char c;
				close(info[1]);
				(void)!read(i % 2 ? g2[0] : g[0], &c, 1);
				_exit(10 + i);
			}
			if (pid < 0 || write(info[1], &pid, sizeof(pid)) != sizeof(pid))
				_exit(1);
		}
		_exit(0);
	}
	close(info[1]);
	close(g[0]);
	close(g2[0]);
	t->go_many[0] = g[1];
	t->go_many[1] = g2[1];
	for (int i = 0; i < N_MANY; i++)
		assert_int_equal(read(info[0], &pids[i], sizeof(pids[i])), sizeof(pids[i]));
	close(info[0]);
	int status;
	assert_int_equal(waitpid(mid, &status, 0), mid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

struct ctxs {
	struct vigil_ctx **v;
	size_t n, step; /* every step-th of the first n */
};

static bool all_exited(struct fake_host *fh, void *arg)
{
	const struct ctxs *c = arg;
	(void)fh;
	for (size_t i = 0; i < c->n; i += c->step)
		if (!fake_ctx_exited(c->v[i], NULL, NULL, NULL))
			return false;
	return true;
}

/* Exit codes as they should be for every other orphan from `from`: 10 + i,
 * or unknown without the connector (never guessed). */
static void expect_many_codes(struct vigil_ctx **v, size_t from, bool usable)
{
	for (size_t i = from; i < N_MANY; i += 2) {
		int code = -2, sig = -2;
		assert_true(fake_ctx_exited(v[i], &code, &sig, NULL));
		assert_int_equal(sig, -1);
		assert_int_equal(code, usable ? 10 + (int)i : -1);
	}
}

/* Instantiate the pid detector for `pid` in ctx. */
static void start_in(struct t *t, struct vigil_ctx *ctx, pid_t pid)
{
	char line[32];
	void *inst;
	snprintf(line, sizeof(line), "pid = %d", (int)pid);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(fake_host_instantiate_ctx(t->fh, ctx, t->p, cfg, &inst), 0);
	assert_true(fake_ctx_attached(ctx, NULL, NULL));
}

/* ------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
	static struct t t;
	t.p = fake_host_load_plugin(getenv("VIGIL_TEST_PLUGIN"));
	*state = &t;
	return 0;
}

static int setup(void **state)
{
	static unsigned counter;
	struct t *t = *state;
	t->fh = fake_host_new();
	t->n_kids = 0;
	t->go_many[0] = t->go_many[1] = -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/vigil-test-pid-XXXXXX");
	if (!t->fh || !mkdtemp(t->dir))
		return -1;
	snprintf(t->pidfile, sizeof(t->pidfile), "%s/job.pid", t->dir);
	snprintf(t->marker, sizeof(t->marker), "vigil-test-marker-%d-%u", (int)getpid(),
		 ++counter);
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	fake_host_free(t->fh); /* destroys the instance: closes its fds */
	for (int k = 0; k < 2; k++)
		if (t->go_many[k] >= 0)
			close(t->go_many[k]); /* the orphans read EOF and exit */
	for (size_t i = 0; i < t->n_kids; i++) {
		kill(t->kids[i], SIGKILL);
		waitpid(t->kids[i], NULL, 0); /* ECHILD at once when not ours */
	}
	tmp_tree_remove(t->dir);
	return 0;
}

/* ------------------------------------------------------------------ tests */

static void test_options(void **state)
{
	struct t *t = *state;
	char err[256] = "";
	void *inst = NULL;
	const char *const none[] = { NULL };
	const char *const two[] = { "pid = 1", "match = x", NULL };
	const char *const bad_via[] = { "pid = 1", "exit_via = ptrace", NULL };
	const char *const bad_pid[] = { "pid = 0", NULL };
	const char *const ok[] = { "pid_file = /run/x.pid", NULL };
	const struct vigil_config *cfg = fake_host_config(t->fh, t->p, none);
	assert_non_null(cfg);
	assert_int_equal(t->p->create(fake_host_api(t->fh), fake_host_ctx(t->fh), cfg, &inst,
				      err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "set exactly one of pid, pid_file or match");
	cfg = fake_host_config(t->fh, t->p, two);
	assert_int_equal(t->p->create(fake_host_api(t->fh), fake_host_ctx(t->fh), cfg, &inst,
				      err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "set only one of pid, pid_file or match");
	cfg = fake_host_config(t->fh, t->p, bad_via);
	assert_int_equal(t->p->create(fake_host_api(t->fh), fake_host_ctx(t->fh), cfg, &inst,
				      err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "exit_via"));
	cfg = fake_host_config(t->fh, t->p, bad_pid);
	assert_int_equal(t->p->create(fake_host_api(t->fh), fake_host_ctx(t->fh), cfg, &inst,
				      err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "0 is not a valid PID");
	cfg = fake_host_config(t->fh, t->p, ok);
	assert_int_equal(t->p->create(fake_host_api(t->fh), fake_host_ctx(t->fh), cfg, &inst,
				      err, sizeof(err)), 0);
	t->p->destroy(inst);
	assert_null(t->p->settle);
}

static void test_child_exits_3(void **state)
{
	struct t *t = *state;
	int go;
	pid_t pid = spawn_waiter(t, 3, &go), got = 0;
	char line[32];
	snprintf(line, sizeof(line), "pid = %d", (int)pid);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(fake_host_attached(t->fh, &got, NULL));
	assert_int_equal(got, pid);
	assert_false(fake_host_exited(t->fh, NULL, NULL, NULL));
	say_go(&go);
	expect_exit(t, 3, -1);
}

static void test_child_killed(void **state)
{
	struct t *t = *state;
	int go;
	pid_t pid = spawn_waiter(t, 0, &go);
	char line[32];
	snprintf(line, sizeof(line), "pid = %d", (int)pid);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(fake_host_attached(t->fh, NULL, NULL));
	assert_int_equal(kill(pid, SIGKILL), 0);
	expect_exit(t, -1, SIGKILL);
	close(go);
}

static void test_orphan_via_connector(void **state)
{
	struct t *t = *state;
	int go;
	pid_t pid = spawn_orphan(t, 3, &go);
	char line[32];
	snprintf(line, sizeof(line), "pid = %d", (int)pid);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(is_attached(t->fh, &pid));
	say_go(&go);
	if (!connector_usable()) {
		printf("skip: the process-events connector is not usable here (EPERM: "
		       "needs CAP_NET_ADMIN); only checking the status is unknown\n");
		expect_exit(t, -1, -1);
		return;
	}
	expect_exit(t, 3, -1);
}

static void test_orphan_via_none(void **state)
{
	struct t *t = *state;
	int go;
	pid_t pid = spawn_orphan(t, 3, &go);
	char line[32];
	snprintf(line, sizeof(line), "pid = %d", (int)pid);
	const char *const cfg[] = { line, "exit_via = none", NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(is_attached(t->fh, &pid));
	say_go(&go);
	expect_exit(t, -1, -1); /* ended, how is unknown: never guessed */
}

static void test_missing_pid_is_lost(void **state)
{
	struct t *t = *state;
	char line[32], want[80];
	pid_t pid = gone_pid();
	snprintf(line, sizeof(line), "pid = %d", (int)pid);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(fake_host_run_until(t->fh, is_lost, NULL, WAIT_MS));
	snprintf(want, sizeof(want), "process %d does not exist (already exited?)", (int)pid);
	assert_string_equal(fake_host_lost(t->fh), want);
	assert_false(fake_host_attached(t->fh, NULL, NULL));
}

static void test_pid_file_later_and_again(void **state)
{
	struct t *t = *state;
	char line[160];
	int go1, go2;
	snprintf(line, sizeof(line), "pid_file = %s", t->pidfile);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	fake_host_run_for(t->fh, 200);
	assert_false(fake_host_attached(t->fh, NULL, NULL));
	pid_t first = spawn_waiter(t, 3, &go1);
	write_pid(t, first);
	assert_true(fake_host_run_until(t->fh, is_attached, &first, WAIT_MS));
	say_go(&go1);
	expect_exit(t, 3, -1);
	/* A recurring job: the next run writes its own PID. */
	pid_t second = spawn_waiter(t, 5, &go2);
	write_pid(t, second);
	assert_true(fake_host_run_until(t->fh, is_attached, &second, WAIT_MS));
	say_go(&go2);
	int code = 5;
	assert_true(fake_host_run_until(t->fh, is_exit_code, &code, WAIT_MS));
}

static void test_pid_file_garbage_then_valid(void **state)
{
	struct t *t = *state;
	char line[160];
	int go;
	write_pidfile(t, "garbage\n");
	snprintf(line, sizeof(line), "pid_file = %s", t->pidfile);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	fake_host_run_for(t->fh, 200);
	assert_false(fake_host_attached(t->fh, NULL, NULL));
	assert_null(fake_host_lost(t->fh)); /* still waiting */
	pid_t pid = spawn_waiter(t, 0, &go);
	write_pid(t, pid);
	assert_true(fake_host_run_until(t->fh, is_attached, &pid, WAIT_MS));
	close(go);
}

/* The pid file was written an hour before the process it names started: that
 * PID was reused. Not attached until the file is written again. */
static void test_pid_file_impostor(void **state)
{
	struct t *t = *state;
	char line[160];
	int go;
	pid_t pid = spawn_waiter(t, 0, &go);
	write_pid(t, pid);
	struct timespec times[2];
	clock_gettime(CLOCK_REALTIME, &times[0]);
	times[0].tv_sec -= 3600;
	times[1] = times[0];
	assert_int_equal(utimensat(AT_FDCWD, t->pidfile, times, 0), 0);
	snprintf(line, sizeof(line), "pid_file = %s", t->pidfile);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	fake_host_run_for(t->fh, 300);
	assert_false(fake_host_attached(t->fh, NULL, NULL));
	assert_null(fake_host_lost(t->fh));
	/* Written (touched) again now, after the process started: it is the writer. */
	times[0].tv_nsec = times[1].tv_nsec = UTIME_NOW;
	assert_int_equal(utimensat(AT_FDCWD, t->pidfile, times, 0), 0);
	assert_true(fake_host_run_until(t->fh, is_attached, &pid, WAIT_MS));
	close(go);
}

static void test_match_none_then_one(void **state)
{
	struct t *t = *state;
	char line[128];
	int go;
	snprintf(line, sizeof(line), "match = %s$", t->marker);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	fake_host_run_for(t->fh, 300);
	assert_false(fake_host_attached(t->fh, NULL, NULL));
	pid_t pid = spawn_marked(t, &go);
	assert_true(fake_host_run_until(t->fh, is_attached, &pid, WAIT_MS));
	say_go(&go);
	expect_exit(t, 3, -1);
	assert_null(fake_host_lost(t->fh));
}

static void test_match_ambiguous(void **state)
{
	struct t *t = *state;
	char line[128], a[32], b[32];
	int go1, go2;
	pid_t p1 = spawn_marked(t, &go1), p2 = spawn_marked(t, &go2);
	snprintf(line, sizeof(line), "match = %s", t->marker);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(fake_host_run_until(t->fh, is_lost, NULL, WAIT_MS));
	const char *why = fake_host_lost(t->fh);
	snprintf(a, sizeof(a), "%d (sh -c read x", (int)p1);
	snprintf(b, sizeof(b), "%d (sh -c read x", (int)p2);
	assert_non_null(strstr(why, "is ambiguous: "));
	assert_non_null(strstr(why, t->marker));
	assert_non_null(strstr(why, a));
	assert_non_null(strstr(why, b));
	assert_false(fake_host_attached(t->fh, NULL, NULL));
	close(go1);
	close(go2);
}

/* A process whose child runs the same command line (a subshell, a worker, a
 * child between fork and exec): the match is the root, not ambiguous. */
static void test_match_takes_the_root_of_a_tree(void **state)
{
	struct t *t = *state;
	char line[128], ready[600];
	int in[2];

	snprintf(ready, sizeof(ready), "%s/ready", t->dir);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char script[800];

		close(in[1]);
		dup2(in[0], 0);
		/* the ( ) subshell is a fork of sh: the same command line */
		snprintf(script, sizeof(script), "(touch %s; read x); exit 3", ready);
		execl("/bin/sh", "sh", "-c", script, t->marker, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	track(t, pid);
	while (access(ready, F_OK) != 0)
		usleep(10000);
	snprintf(line, sizeof(line), "match = %s", t->marker);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(fake_host_run_until(t->fh, is_attached, &pid, WAIT_MS));
	assert_null(fake_host_lost(t->fh));
	close(in[1]);
	expect_exit(t, 3, -1);
}

/* Two monitors of two processes that are not ours: one shared state, one
 * connector socket, and each gets its own exit code through it. */
static void test_two_orphans_one_socket(void **state)
{
	struct t *t = *state;
	bool usable = connector_usable();
	int go1, go2;
	pid_t p1 = spawn_orphan(t, 7, &go1), p2 = spawn_orphan(t, 9, &go2);
	struct vigil_ctx *c1 = fake_host_ctx(t->fh), *c2 = fake_host_new_ctx(t->fh);
	const struct vigil_host *host = fake_host_api(t->fh);
	start_in(t, c1, p1);
	assert_int_equal(connector_sockets(), usable ? 1 : 0);
	start_in(t, c2, p2);
	assert_non_null(host->shared(c1));
	assert_ptr_equal(host->shared(c1), host->shared(c2));
	assert_ptr_equal(host->shared(c1), fake_host_shared(t->fh, t->p));
	assert_int_equal(connector_sockets(), usable ? 1 : 0);
	say_go(&go2);
	say_go(&go1);
	struct vigil_ctx *v[] = { c1, c2 };
	struct ctxs all = { v, 2, 1 };
	assert_true(fake_host_run_until(t->fh, all_exited, &all, WAIT_MS));
	int code1 = -2, code2 = -2, sig1 = -2, sig2 = -2;
	assert_true(fake_ctx_exited(c1, &code1, &sig1, NULL));
	assert_true(fake_ctx_exited(c2, &code2, &sig2, NULL));
	assert_int_equal(sig1, -1);
	assert_int_equal(sig2, -1);
	assert_int_equal(code1, usable ? 7 : -1); /* unknown without it, never guessed */
	assert_int_equal(code2, usable ? 9 : -1);
	/* Both runs are over: nobody needs process events any more. */
	assert_int_equal(connector_sockets(), 0);
}

/* N_MANY processes that are not ours end, half at once, then the other half
 * (looked up after the first half left the table), each with its own code:
 * every monitor gets the right one. */
static void test_many_orphans_at_once(void **state)
{
	struct t *t = *state;
	bool usable = connector_usable();
	static pid_t pids[N_MANY];
	static struct vigil_ctx *v[N_MANY];
	spawn_many_orphans(t, pids);
	for (size_t i = 0; i < N_MANY; i++) {
		v[i] = i ? fake_host_new_ctx(t->fh) : fake_host_ctx(t->fh);
		start_in(t, v[i], pids[i]);
	}
	assert_int_equal(connector_sockets(), usable ? 1 : 0);
	for (size_t k = 0; k < 2; k++) {
		close(t->go_many[k]);
		t->go_many[k] = -1;
		struct ctxs half = { v + k, N_MANY - k, 2 };
		assert_true(fake_host_run_until(t->fh, all_exited, &half, WAIT_MS));
		expect_many_codes(v, k, usable);
		if (k == 0)
			assert_false(fake_ctx_exited(v[1], NULL, NULL, NULL));
	}
	assert_int_equal(connector_sockets(), 0);
}

/* create() only allocates (vigil check calls it): no socket until start(). */
static void test_create_opens_nothing(void **state)
{
	struct t *t = *state;
	char err[256] = "";
	void *inst = NULL;
	const char *const cfg_lines[] = { "pid = 1", NULL };
	const struct vigil_config *cfg = fake_host_config(t->fh, t->p, cfg_lines);
	assert_non_null(cfg);
	assert_non_null(fake_host_shared(t->fh, t->p));
	assert_int_equal(t->p->create(fake_host_api(t->fh), fake_host_ctx(t->fh), cfg, &inst,
				      err, sizeof(err)), 0);
	assert_int_equal(connector_sockets(), 0);
	t->p->destroy(inst);
}

/* Attached to a process that is not ours, the socket filter lets nothing in
 * about other processes: 50 forks, execs and exits leave the socket empty (no
 * wakeup), and the watched exit still arrives with its code. */
static void test_unrelated_exits_filtered(void **state)
{
	struct t *t = *state;
	bool usable = connector_usable();
	int go;
	pid_t pid = spawn_orphan(t, 3, &go);
	char line[32];
	snprintf(line, sizeof(line), "pid = %d", (int)pid);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(is_attached(t->fh, &pid));
	if (!usable) {
		printf("skip: the process-events connector is not usable here\n");
		close(go);
		return;
	}
	unsigned filter_len;
	int fd = plugin_connector(&filter_len);
	assert_true(filter_len > 0);
	assert_int_equal(pending_events(fd), 0);
	churn(50);
	assert_int_equal(pending_events(fd), 0);
	say_go(&go);
	expect_exit(t, 3, -1);
}

/* Our own child: waitid() gives its status, no connector is opened. */
static void test_child_needs_no_connector(void **state)
{
	struct t *t = *state;
	int go;
	pid_t pid = spawn_waiter(t, 4, &go);
	char line[32];
	snprintf(line, sizeof(line), "pid = %d", (int)pid);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	assert_true(is_attached(t->fh, &pid));
	assert_int_equal(connector_sockets(), 0);
	say_go(&go);
	expect_exit(t, 4, -1);
	assert_int_equal(connector_sockets(), 0);
}

/* A match target hears of execs while it waits (it finds its process with no
 * polling), not while it is attached; after the run it waits, and finds, again. */
static void test_match_execs_only_while_waiting(void **state)
{
	struct t *t = *state;
	bool usable = connector_usable();
	char line[128];
	int go1, go2, code = 3;
	snprintf(line, sizeof(line), "match = %s$", t->marker);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(start(t, cfg), 0);
	pid_t p1 = spawn_marked(t, &go1);
	assert_true(fake_host_run_until(t->fh, is_attached, &p1, WAIT_MS));
	if (usable) {
		unsigned filter_len;
		int fd = plugin_connector(&filter_len);
		assert_true(filter_len > 0);
		(void)pending_events(fd); /* execs from before the attach */
		churn(20);
		assert_int_equal(pending_events(fd), 0);
	}
	say_go(&go1);
	assert_true(fake_host_run_until(t->fh, is_exit_code, &code, WAIT_MS));
	pid_t p2 = spawn_marked(t, &go2);
	assert_true(fake_host_run_until(t->fh, is_attached, &p2, WAIT_MS));
	close(go2);
	assert_null(fake_host_lost(t->fh));
}

#define N_LISTED 60

/* N_LISTED of N_MANY processes watched, so the filter names each of them: the
 * watched ones get their codes while the unwatched ones end around them. */
static void test_filter_lists_many(void **state)
{
	struct t *t = *state;
	bool usable = connector_usable();
	static pid_t pids[N_MANY];
	static struct vigil_ctx *v[N_LISTED];
	spawn_many_orphans(t, pids);
	for (size_t i = 0; i < N_LISTED; i++) {
		v[i] = i ? fake_host_new_ctx(t->fh) : fake_host_ctx(t->fh);
		start_in(t, v[i], pids[i]);
	}
	if (usable) {
		unsigned filter_len;
		(void)plugin_connector(&filter_len);
		assert_true(filter_len > N_LISTED); /* one comparison per PID */
	}
	for (size_t k = 0; k < 2; k++) {
		close(t->go_many[k]);
		t->go_many[k] = -1;
		struct ctxs half = { v + k, N_LISTED - k, 2 };
		assert_true(fake_host_run_until(t->fh, all_exited, &half, WAIT_MS));
		for (size_t i = k; i < N_LISTED; i += 2) {
			int code = -2;
			assert_true(fake_ctx_exited(v[i], &code, NULL, NULL));
			assert_int_equal(code, usable ? 10 + (int)i : -1);
		}
	}
	assert_int_equal(connector_sockets(), 0);
}

/* Instantiate the pid detector for the pid file at path in ctx. */
static void start_file_in(struct t *t, struct vigil_ctx *ctx, const char *path)
{
	char line[PATH_MAX + 16];
	void *inst;
	snprintf(line, sizeof(line), "pid_file = %s", path);
	const char *const cfg[] = { line, NULL };
	assert_int_equal(fake_host_instantiate_ctx(t->fh, ctx, t->p, cfg, &inst), 0);
}

/* Pid file i of the many: two in each folder, t->dir/dI/jI.pid. */
static void many_path(const struct t *t, size_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/d%zu/j%zu.pid", t->dir, i / 2, i);
}

static bool all_attached(struct fake_host *fh, void *arg)
{
	const struct ctxs *c = arg;
	(void)fh;
	for (size_t i = 0; i < c->n; i += c->step)
		if (!fake_ctx_attached(c->v[i], NULL, NULL))
			return false;
	return true;
}

/* N_MANY pid_file monitors (more than the 128 inotify instances a user may
 * have) in one process: one inotify instance for all. Two share each folder,
 * so one watch: each attaches when its own file names the process, not when
 * its neighbour's does. */
static void test_pid_files_one_inotify(void **state)
{
	struct t *t = *state;
	static struct vigil_ctx *v[N_MANY];
	char path[PATH_MAX];
	int go;
	for (size_t i = 0; i < N_MANY; i++) {
		many_path(t, i, path, sizeof(path));
		*strrchr(path, '/') = '\0';
		if (i % 2 == 0)
			assert_int_equal(mkdir(path, 0755), 0);
		many_path(t, i, path, sizeof(path));
		v[i] = i ? fake_host_new_ctx(t->fh) : fake_host_ctx(t->fh);
		start_file_in(t, v[i], path);
	}
	assert_int_equal(fake_host_inotify_instances(), 1);
	pid_t pid = spawn_waiter(t, 0, &go);
	for (size_t i = 0; i < N_MANY; i += 2) {
		many_path(t, i, path, sizeof(path));
		write_pid_at(path, pid);
	}
	struct ctxs even = { v, N_MANY, 2 };
	assert_true(fake_host_run_until(t->fh, all_attached, &even, WAIT_MS));
	fake_host_run_for(t->fh, 100);
	for (size_t i = 1; i < N_MANY; i += 2)
		assert_false(fake_ctx_attached(v[i], NULL, NULL));
	for (size_t i = 1; i < N_MANY; i += 2) {
		many_path(t, i, path, sizeof(path));
		write_pid_at(path, pid);
	}
	struct ctxs odd = { v + 1, N_MANY - 1, 2 };
	assert_true(fake_host_run_until(t->fh, all_attached, &odd, WAIT_MS));
	close(go);
}

struct ctx_pid {
	struct vigil_ctx *ctx;
	pid_t pid;
};

static bool ctx_attached_to(struct fake_host *fh, void *arg)
{
	const struct ctx_pid *c = arg;
	pid_t pid = 0;
	(void)fh;
	return fake_ctx_attached(c->ctx, &pid, NULL) && pid == c->pid;
}

static void wait_attached(struct t *t, struct vigil_ctx *ctx, pid_t pid)
{
	struct ctx_pid c = { ctx, pid };
	assert_true(fake_host_run_until(t->fh, ctx_attached_to, &c, WAIT_MS));
}

/* Two monitors, one folder: made after the first one started (it looks
 * every second), then removed and made again (the shared watch goes with it:
 * each watches again). Each still finds its own pid file. */
static void test_pid_file_folder_gone_and_back(void **state)
{
	struct t *t = *state;
	char sub[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
	struct vigil_ctx *ca = fake_host_ctx(t->fh), *cb = fake_host_new_ctx(t->fh);
	int go1, go2;
	snprintf(sub, sizeof(sub), "%s/sub", t->dir);
	snprintf(a, sizeof(a), "%s/sub/a.pid", t->dir);
	snprintf(b, sizeof(b), "%s/sub/b.pid", t->dir);
	start_file_in(t, ca, a);
	fake_host_run_for(t->fh, 100);
	assert_int_equal(mkdir(sub, 0755), 0);
	start_file_in(t, cb, b);
	pid_t p1 = spawn_waiter(t, 0, &go1);
	write_pid_at(a, p1);
	wait_attached(t, ca, p1);
	assert_false(fake_ctx_attached(cb, NULL, NULL));
	assert_int_equal(unlink(a), 0);
	assert_int_equal(rmdir(sub), 0);
	fake_host_run_for(t->fh, 100);
	assert_int_equal(mkdir(sub, 0755), 0);
	write_pid_at(b, p1);
	wait_attached(t, cb, p1);
	/* The run of a ends; its next one is found in the folder made again. */
	say_go(&go1);
	assert_true(fake_host_run_until(t->fh, is_exited, NULL, WAIT_MS));
	pid_t p2 = spawn_waiter(t, 0, &go2);
	write_pid_at(a, p2);
	wait_attached(t, ca, p2);
	assert_int_equal(fake_host_inotify_instances(), 1);
	close(go2);
}

/* create() + start() of a pid_file instance the fake host does not destroy:
 * the test does. */
static void *start_own(struct t *t, const char *path, struct vigil_ctx **ctx)
{
	char line[PATH_MAX + 16], err[256] = "";
	void *inst = NULL;
	snprintf(line, sizeof(line), "pid_file = %s", path);
	const char *const lines[] = { line, NULL };
	const struct vigil_config *cfg = fake_host_config(t->fh, t->p, lines);
	assert_non_null(cfg);
	*ctx = fake_host_new_ctx(t->fh);
	assert_int_equal(t->p->create(fake_host_api(t->fh), *ctx, cfg, &inst, err, sizeof(err)),
			 0);
	assert_int_equal(t->p->start(inst, err, sizeof(err)), 0);
	return inst;
}

/* Destroyed with events of its folder still unread: the instance lets go of
 * its watch (kept for the other instance of that folder, removed for the one
 * that was alone) and hears nothing more. */
static void test_pid_file_destroyed_lets_go(void **state)
{
	struct t *t = *state;
	char x[PATH_MAX], y[PATH_MAX], solo[PATH_MAX], z[PATH_MAX];
	struct vigil_ctx *cx, *cz, *cy = fake_host_ctx(t->fh);
	int go;
	snprintf(x, sizeof(x), "%s/x.pid", t->dir);
	snprintf(y, sizeof(y), "%s/y.pid", t->dir);
	snprintf(solo, sizeof(solo), "%s/solo", t->dir);
	snprintf(z, sizeof(z), "%s/solo/z.pid", t->dir);
	assert_int_equal(mkdir(solo, 0755), 0);
	start_file_in(t, cy, y);
	void *ix = start_own(t, x, &cx), *iz = start_own(t, z, &cz);
	pid_t pid = spawn_waiter(t, 0, &go);
	write_pid_at(x, pid);
	write_pid_at(z, pid);
	t->p->destroy(ix);
	t->p->destroy(iz);
	write_pid_at(y, pid);
	wait_attached(t, cy, pid);
	fake_host_run_for(t->fh, 100);
	assert_false(fake_ctx_attached(cx, NULL, NULL));
	assert_false(fake_ctx_attached(cz, NULL, NULL));
	assert_int_equal(fake_host_inotify_instances(), 1);
	close(go);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_options),
		T(test_child_exits_3),
		T(test_child_killed),
		T(test_orphan_via_connector),
		T(test_orphan_via_none),
		T(test_missing_pid_is_lost),
		T(test_pid_file_later_and_again),
		T(test_pid_file_garbage_then_valid),
		T(test_pid_file_impostor),
		T(test_match_none_then_one),
		T(test_match_ambiguous),
		T(test_match_takes_the_root_of_a_tree),
		T(test_create_opens_nothing),
		T(test_two_orphans_one_socket),
		T(test_many_orphans_at_once),
		T(test_unrelated_exits_filtered),
		T(test_child_needs_no_connector),
		T(test_match_execs_only_while_waiting),
		T(test_filter_lists_many),
		T(test_pid_files_one_inotify),
		T(test_pid_file_folder_gone_and_back),
		T(test_pid_file_destroyed_lets_go),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
