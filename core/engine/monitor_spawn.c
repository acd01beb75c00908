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
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "monitor_internal.h"

static void child_exec(const char *command, char *const *argv, const char *log_path, int errfd)
{
	sigset_t none;
	int err, fd;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	setpgid(0, 0);
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, 0) < 0)
		goto fail;
	fd = open(log_path ? log_path : "/dev/null", O_WRONLY | O_APPEND | O_CREAT, 0640);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		goto fail;
	if (argv)
		execvp(argv[0], argv);
	else
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
fail:
	err = errno;
	if (write(errfd, &err, sizeof(err)) < 0)
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

int monitor_spawn(struct monitor *m, char *err, size_t errlen)
{
	int pipefd[2], child_err = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return -EAGAIN;
	}
	if (pid == 0) {
		close(pipefd[0]);
		child_exec(m->mc->command, m->mc->command_argv, m->log_path ? m->log_path : m->mc->log, pipefd[1]);
	}
	setpgid(pid, pid); /* also here: whichever runs first, the group exists */
	close(pipefd[1]);
	do
		n = read(pipefd[0], &child_err, sizeof(child_err));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	m->attempts++;
	if (n == sizeof(child_err)) {
		waitpid(pid, NULL, 0);
		snprintf(err, errlen, "cannot start \"%s\": %s", m->mc->command, strerror(child_err));
		return -child_err;
	}
	m->target.is_child = 1;
	return monitor_make_pid_detector(m, pid, err, errlen);
}
