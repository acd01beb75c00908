/* Starting a `command =` job outside the agent: who it runs as (resolved
 * here, applied in the child or handed to systemd). See spawn_unit.h. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "spawn_unit.h"

/* A name, or a number when no entry has that name (like chown). */
static bool numeric_id(const char *text, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(text, &end, 10);
	return *text && !*end && !errno;
}

static int resolve_user(const char *name, struct job_identity *id, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(name);
	unsigned long n;
	int count = 0;

	if (!pw && numeric_id(name, &n))
		pw = getpwuid((uid_t)n);
	if (!pw) {
		snprintf(err, errlen, "user \"%s\": no such user", name);
		return -ENOENT;
	}
	id->set_user = true;
	id->uid = pw->pw_uid;
	if (!id->set_group)
		id->gid = pw->pw_gid;
	id->user = strdup(pw->pw_name);
	id->home = strdup(pw->pw_dir);
	/* like initgroups (and systemd's Group=): the group, and those naming the user */
	getgrouplist(pw->pw_name, id->gid, NULL, &count);
	id->groups = calloc((size_t)count + 1, sizeof(gid_t));
	if (!id->user || !id->home || !id->groups) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (getgrouplist(pw->pw_name, id->gid, id->groups, &count) < 0)
		count = 0; /* the groups changed meanwhile: the primary one only */
	id->n_groups = count;
	return 0;
}

static int resolve_group(const char *name, struct job_identity *id, char *err, size_t errlen)
{
	struct group *gr = getgrnam(name);
	unsigned long n;

	if (!gr && numeric_id(name, &n))
		gr = getgrgid((gid_t)n);
	if (!gr) {
		snprintf(err, errlen, "group \"%s\": no such group", name);
		return -ENOENT;
	}
	id->set_group = true;
	id->gid = gr->gr_gid;
	return 0;
}

/* A crontab job starts in its user's home; "/" when that does not exist. */
static const char *start_folder(const struct monitor_config *mc, const struct job_identity *id)
{
	struct stat st;

	if (mc->working_directory || !id->set_user)
		return mc->working_directory;
	return stat(id->home, &st) == 0 && S_ISDIR(st.st_mode) ? id->home : "/";
}

int job_identity_resolve(const struct monitor_config *mc, struct job_identity *id,
			 char *err, size_t errlen)
{
	int r = 0;

	memset(id, 0, sizeof(*id));
	if (mc->group)
		r = resolve_group(mc->group, id, err, errlen);
	if (!r && mc->user)
		r = resolve_user(mc->user, id, err, errlen);
	if (r) {
		job_identity_free(id);
		return r;
	}
	id->workdir = start_folder(mc, id);
	return 0;
}

void job_identity_free(struct job_identity *id)
{
	free(id->groups);
	free(id->user);
	free(id->home);
	memset(id, 0, sizeof(*id));
}

/* The environment a login would give, then the monitor's own entries. */
static void apply_environment(const struct job_identity *id, const struct monitor_config *mc)
{
	if (id->set_user) {
		setenv("HOME", id->home, 1);
		setenv("USER", id->user, 1);
		setenv("LOGNAME", id->user, 1);
	}
	for (size_t i = 0; i < mc->n_environment; i++)
		putenv(mc->environment[i]); /* the child's copy of the config lives on */
}

/* Groups first, the uid last: after setuid there is no way back. */
static int apply_credentials(const struct job_identity *id, const char **step)
{
	const gid_t *groups = id->set_user ? id->groups : &id->gid;
	size_t n = id->set_user ? (size_t)id->n_groups : 1;

	if ((id->set_user || id->set_group) && setgroups(n, groups) != 0)
		return *step = "setgroups", -errno;
	if ((id->set_user || id->set_group) && setgid(id->gid) != 0)
		return *step = "setgid", -errno;
	if (id->set_user && setuid(id->uid) != 0)
		return *step = "setuid", -errno;
	return 0;
}

int job_identity_apply(const struct job_identity *id, const struct monitor_config *mc,
		       const char **step)
{
	int r;

	apply_environment(id, mc);
	if ((r = apply_credentials(id, step)))
		return r;
	/* after the uid: the folder must be one the user may enter */
	if (id->workdir && chdir(id->workdir) != 0)
		return *step = "working_directory", -errno;
	return 0;
}

/* ------------------------------------------------------------ transient units */
#if VIGIL_HAVE_SDBUS
#include <fcntl.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

#define UNIT_CALL_USEC (5 * 1000 * 1000ULL)
/* The job blocks on its stdin (our pipe) until we watch its PID, then runs
 * the real command with stdin from /dev/null: it cannot exit unseen. */
#define GATE_SCRIPT "read _ || exit 125; exec </dev/null; exec \"$@\""

bool spawn_unit_available(void)
{
	/* INVOCATION_ID: the agent itself is a systemd unit, not a shell's child */
	return geteuid() == 0 && sd_booted() > 0 && getenv("INVOCATION_ID");
}

/* vigil-job-NAME-RUN.service ('@' would make it a template instance). */
static void unit_name(const struct unit_job *job, char *out, size_t len)
{
	if (job->attempt > 1)
		snprintf(out, len, "vigil-job-%s-%llu-a%d.service", job->name,
			 (unsigned long long)job->run, job->attempt);
	else
		snprintf(out, len, "vigil-job-%s-%llu.service", job->name,
			 (unsigned long long)job->run);
	for (char *p = out; *p; p++)
		if (*p == '@')
			*p = '_';
}

/* Open ("Key", variant of type sig, and the array inside): (sv) -> v -> a. */
static int open_array_property(sd_bus_message *msg, const char *key, const char *vsig,
			       const char *asig)
{
	int r = sd_bus_message_open_container(msg, 'r', "sv");

	if (r >= 0)
		r = sd_bus_message_append(msg, "s", key);
	if (r >= 0)
		r = sd_bus_message_open_container(msg, 'v', vsig);
	return r >= 0 ? sd_bus_message_open_container(msg, 'a', asig) : r;
}

static int close_containers(sd_bus_message *msg, int n)
{
	int r = 0;

	while (n-- > 0 && r >= 0)
		r = sd_bus_message_close_container(msg);
	return r;
}

/* One argument of ExecStart: systemd expands $VAR and ${VAR} in them at exec
 * time ("$$" stands for "$"), so every '$' is doubled to reach sh as written. */
static int append_exec_arg(sd_bus_message *msg, const char *arg)
{
	size_t n = strlen(arg);
	char *out = malloc(2 * n + 1), *p = out;
	int r;

	if (!out)
		return -ENOMEM;
	for (const char *a = arg; *a; a++)
		if ((*p++ = *a) == '$')
			*p++ = '$';
	*p = '\0';
	r = sd_bus_message_append(msg, "s", out);
	free(out);
	return r;
}

/* ExecStart=/bin/sh -c GATE vigil-job COMMAND...: a(sasb), one entry. */
static int append_exec_start(sd_bus_message *msg, const struct unit_job *job)
{
	int r = open_array_property(msg, "ExecStart", "a(sasb)", "(sasb)");

	if (r >= 0)
		r = sd_bus_message_open_container(msg, 'r', "sasb");
	if (r >= 0)
		r = sd_bus_message_append(msg, "s", "/bin/sh");
	if (r >= 0)
		r = sd_bus_message_open_container(msg, 'a', "s");
	if (r >= 0)
		r = sd_bus_message_append(msg, "ss", "sh", "-c");
	if (r >= 0)
		r = append_exec_arg(msg, GATE_SCRIPT);
	if (r >= 0)
		r = sd_bus_message_append(msg, "s", "vigil-job");
	if (r >= 0 && job->argv)
		for (char *const *a = job->argv; *a && r >= 0; a++)
			r = append_exec_arg(msg, *a);
	else if (r >= 0)
		r = sd_bus_message_append(msg, "ss", "/bin/sh", "-c");
	if (r >= 0 && !job->argv)
		r = append_exec_arg(msg, job->command);
	if (r >= 0)
		r = sd_bus_message_close_container(msg);
	if (r >= 0)
		r = sd_bus_message_append(msg, "b", 0);
	return r >= 0 ? close_containers(msg, 4) : r;
}

static int append_environment(sd_bus_message *msg, const struct unit_job *job)
{
	char run[64], attempt[32], jobname[300];
	int r = open_array_property(msg, "Environment", "as", "s");

	snprintf(jobname, sizeof(jobname), "VIGIL_JOB=%s", job->name);
	snprintf(run, sizeof(run), "VIGIL_RUN=%llu", (unsigned long long)job->run);
	snprintf(attempt, sizeof(attempt), "VIGIL_ATTEMPT=%d", job->attempt);
	if (r >= 0)
		r = sd_bus_message_append(msg, "sss", jobname, run, attempt);
	for (size_t i = 0; r >= 0 && i < job->mc->n_environment; i++)
		r = sd_bus_message_append(msg, "s", job->mc->environment[i]);
	return r >= 0 ? close_containers(msg, 3) : r;
}

static int append_properties(sd_bus_message *msg, const struct unit_job *job, int gate_rd)
{
	const struct job_identity *id = job->id;
	int r = sd_bus_message_open_container(msg, 'a', "(sv)");

	if (r >= 0)
		r = sd_bus_message_append(msg, "(sv)(sv)(sv)(sv)(sv)", "Type", "s", "exec",
					  "CollectMode", "s", "inactive-or-failed",
					  "StandardInputFileDescriptor", "h", gate_rd,
					  "StandardOutputFileDescriptor", "h", job->out_fd,
					  "StandardErrorFileDescriptor", "h", job->out_fd);
	if (r >= 0 && id->set_user)
		r = sd_bus_message_append(msg, "(sv)", "User", "s", id->user);
	if (r >= 0 && job->mc->group)
		r = sd_bus_message_append(msg, "(sv)", "Group", "s", job->mc->group);
	if (r >= 0 && id->workdir)
		r = sd_bus_message_append(msg, "(sv)", "WorkingDirectory", "s", id->workdir);
	if (r >= 0)
		r = append_exec_start(msg, job);
	if (r >= 0)
		r = append_environment(msg, job);
	return r >= 0 ? sd_bus_message_close_container(msg) : r;
}

static int call_start(sd_bus *bus, const struct unit_job *job, const char *name, int gate_rd,
		      char *err, size_t errlen)
{
	sd_bus_error e = SD_BUS_ERROR_NULL;
	sd_bus_message *msg = NULL, *reply = NULL;
	int r = sd_bus_message_new_method_call(bus, &msg, "org.freedesktop.systemd1",
					       "/org/freedesktop/systemd1",
					       "org.freedesktop.systemd1.Manager",
					       "StartTransientUnit");

	if (r >= 0)
		r = sd_bus_message_append(msg, "ss", name, "fail");
	if (r >= 0)
		r = append_properties(msg, job, gate_rd);
	if (r >= 0)
		r = sd_bus_message_append(msg, "a(sa(sv))", 0);
	if (r >= 0)
		r = sd_bus_call(bus, msg, UNIT_CALL_USEC, &e, &reply);
	if (r < 0)
		snprintf(err, errlen, "cannot start %s: %s", name,
			 e.message ? e.message : strerror(-r));
	sd_bus_error_free(&e);
	sd_bus_message_unref(reply);
	sd_bus_message_unref(msg);
	return r < 0 ? r : 0;
}

/* The unit's MainPID once it runs (the job waits at the gate: it cannot end
 * first); -errno when the unit failed to start or 5 s went by. */
static pid_t wait_main_pid(sd_bus *bus, const char *name, char *err, size_t errlen)
{
	char *path = NULL, *state = NULL;
	uint32_t pid = 0;
	int r = sd_bus_path_encode("/org/freedesktop/systemd1/unit", name, &path);

	for (int i = 0; r >= 0 && i < 500 && !pid; i++) {
		r = sd_bus_get_property_trivial(bus, "org.freedesktop.systemd1", path,
						"org.freedesktop.systemd1.Service", "MainPID",
						NULL, 'u', &pid);
		free(state);
		state = NULL;
		if (r >= 0 && !pid)
			r = sd_bus_get_property_string(bus, "org.freedesktop.systemd1", path,
						       "org.freedesktop.systemd1.Unit",
						       "ActiveState", NULL, &state);
		/* Only a unit that failed or is going down has ended: "inactive" is a
		 * start job still queued, "active" a MainPID not published yet. */
		if (r >= 0 && !pid && (!strcmp(state, "failed") || !strcmp(state, "deactivating")))
			r = -ENOEXEC; /* failed: the journal has systemd's reason */
		else if (!pid)
			usleep(10000);
	}
	free(path);
	if (r >= 0 && !pid)
		r = -ETIMEDOUT;
	if (r < 0)
		snprintf(err, errlen, "%s did not start: %s (state %s; see journalctl -u %s)",
			 name, strerror(-r), state ? state : "unknown", name);
	free(state);
	return r < 0 ? r : (pid_t)pid;
}

pid_t spawn_unit_start(const struct unit_job *job, int *gate, char *err, size_t errlen)
{
	char name[512];
	sd_bus *bus = NULL;
	int pipefd[2], r;
	pid_t pid = -1;

	unit_name(job, name, sizeof(name));
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	r = sd_bus_open_system(&bus);
	if (r < 0)
		snprintf(err, errlen, "system bus: %s", strerror(-r));
	else if ((r = call_start(bus, job, name, pipefd[0], err, errlen)) == 0)
		pid = wait_main_pid(bus, name, err, errlen);
	sd_bus_flush_close_unref(bus);
	close(pipefd[0]);
	if (r < 0 || pid < 0) {
		close(pipefd[1]); /* a job past the gate's read exits 125 */
		return r < 0 ? r : pid;
	}
	*gate = pipefd[1];
	return pid;
}

void spawn_unit_release(int gate)
{
	if (gate < 0)
		return;
	if (write(gate, "\n", 1) < 0) {
		/* the job is gone already: its exit is reported as any other */
	}
	close(gate);
}
#else
bool spawn_unit_available(void)
{
	return false;
}

pid_t spawn_unit_start(const struct unit_job *job, int *gate, char *err, size_t errlen)
{
	(void)job;
	(void)gate;
	snprintf(err, errlen, "built without libsystemd");
	return -ENOTSUP;
}

void spawn_unit_release(int gate)
{
	if (gate >= 0)
		close(gate);
}
#endif
