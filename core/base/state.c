/* See state.h. The record is "key=value" lines; values are single-line (newlines
 * and backslashes escaped), so any command line or log line round-trips. */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history.h"
#include "log.h"
#include "safe_file.h"

const char *state_default_dir(char *buf, size_t len)
{
	const char *xdg = getenv("VIGIL_STATE_DIR");

	if (xdg && *xdg)
		snprintf(buf, len, "%s", xdg);
	else if (geteuid() == 0)
		snprintf(buf, len, "%s", state_system_dir());
	else if ((xdg = getenv("XDG_RUNTIME_DIR")) && *xdg)
		snprintf(buf, len, "%s/vigil", xdg);
	else
		snprintf(buf, len, "/tmp/vigil-%u", (unsigned)geteuid());
	return buf;
}

const char *state_system_dir(void)
{
	const char *dir = getenv("VIGIL_SYSTEM_STATE_DIR");

	return dir && *dir ? dir : "/run/vigil";
}

gid_t state_vigil_gid(void)
{
	static bool looked;
	static gid_t gid = (gid_t)-1;

	if (!looked) {
		struct group *g = getgrnam("vigil");

		gid = g ? g->gr_gid : (gid_t)-1;
		looked = true;
	}
	return gid;
}

/* Records and journals say which jobs run, as whom, with what command line:
 * only the agent's folder (group vigil may read it) shares them, and only with
 * that group. *gid: (gid_t)-1 when the group stays as it is. */
static mode_t share_mode(const char *dir, gid_t *gid)
{
	struct stat st;
	gid_t vigil = state_vigil_gid();

	*gid = (gid_t)-1;
	if (vigil == (gid_t)-1 || stat(dir, &st) != 0 || st.st_gid != vigil ||
	    !(st.st_mode & S_IRGRP))
		return 0600;
	*gid = vigil;
	return 0640;
}

int state_share_fd(const char *dir, int fd)
{
	gid_t gid;
	mode_t mode = share_mode(dir, &gid);

	if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) != 0)
		return -errno;
	return fchmod(fd, mode) == 0 ? 0 : -errno;
}

const char *state_home_dir(const char *sub, char *buf, size_t len)
{
	const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		snprintf(buf, len, "/var/lib/vigil/%s", sub);
	else if (xdg && *xdg)
		snprintf(buf, len, "%s/vigil/%s", xdg, sub);
	else
		snprintf(buf, len, "%s/.local/state/vigil/%s", home ? home : "/tmp", sub);
	return buf;
}

/* Ours (or root's), a real folder, writable by nobody else: otherwise whoever
 * made it could plant links in it or forge our records. NULL when fine. */
static const char *dir_problem(const struct stat *st, char *why, size_t len)
{
	if (S_ISLNK(st->st_mode))
		return "a symbolic link";
	if (!S_ISDIR(st->st_mode))
		return "not a folder";
	if (st->st_uid != geteuid() && st->st_uid != 0) {
		snprintf(why, len, "owned by uid %u, not by us (uid %u)", (unsigned)st->st_uid,
			 (unsigned)geteuid());
		return why;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "writable by others (mode %04o)", (unsigned)(st->st_mode & 07777));
		return why;
	}
	return NULL;
}

int state_check_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	char why[96];
	const char *problem;

	if (lstat(dir, &st) != 0) {
		snprintf(err, errlen, "state folder %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!(problem = dir_problem(&st, why, sizeof(why))))
		return 0;
	snprintf(err, errlen, "state folder %s: %s: refused (remove it, or set "
		 "VIGIL_STATE_DIR or XDG_RUNTIME_DIR)", dir, problem);
	return -EPERM;
}

/* The system folder as the package's tmpfiles.d makes it: 0750 root:vigil, so
 * that others cannot list it nor reach the agent's socket. */
static int make_last_dir(const char *dir)
{
	bool system = geteuid() == 0 && strcmp(dir, state_system_dir()) == 0;
	gid_t vigil = state_vigil_gid();

	if (mkdir(dir, system ? 0750 : geteuid() == 0 ? 0755 : 0700) != 0)
		return errno == EEXIST ? 0 : -1;
	if (system && vigil != (gid_t)-1 && chown(dir, (uid_t)-1, vigil) != 0)
		log_warn("state folder %s: cannot give it to group vigil", dir);
	return 0;
}

int state_ensure_dir(const char *dir)
{
	char tmp[PATH_MAX], err[PATH_MAX + 160];
	int rc;

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	if (make_last_dir(tmp) != 0)
		return -errno;
	rc = state_check_dir(dir, err, sizeof(err));
	if (rc < 0) {
		log_warnx("%s", err);
		errno = -rc;
	}
	return rc;
}

static void put_str(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s=", key);
	for (; *v; v++) {
		if (*v == '\n')
			fputs("\\n", f);
		else if (*v == '\\')
			fputs("\\\\", f);
		else
			fputc(*v, f);
	}
	fputc('\n', f);
}

static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (*s == '\\' && s[1]) {
			s++;
			*w++ = *s == 'n' ? '\n' : *s;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

static void put_record(FILE *f, const struct run_record *r)
{
	put_str(f, "name", r->name);
	fprintf(f, "run=%llu\n", (unsigned long long)r->run);
	put_str(f, "state", r->state);
	fprintf(f, "pid=%d\nstart_time=%llu\nsupervisor=%d\nowner_pid=%d\nuid=%u\n", (int)r->pid,
		(unsigned long long)r->start_time, (int)r->supervisor, (int)r->owner_pid,
		(unsigned)r->uid);
	fprintf(f, "started_ms=%lld\nended_ms=%lld\nexit_code=%d\nsignal=%d\n",
		(long long)r->started_ms, (long long)r->ended_ms, r->exit_code, r->signal);
	put_str(f, "outcome", r->outcome);
	fprintf(f, "expected_ms=%lld\ntimeout_ms=%lld\nprogress=%.2f\n", (long long)r->expected_ms,
		(long long)r->timeout_ms, r->progress);
	fprintf(f, "attempt=%d\nattempts=%d\nnext_at_ms=%lld\nexpected_auto=%d\n", r->attempt,
		r->attempts, (long long)r->next_at_ms, r->expected_auto);
	put_str(f, "log", r->log);
	put_str(f, "command", r->command);
	put_str(f, "last_event", r->last_event);
	put_str(f, "reason", r->reason);
}

int state_write(const char *dir, const struct run_record *r)
{
	char path[PATH_MAX], err[PATH_MAX + 128], *text = NULL;
	size_t len = 0;
	FILE *f;
	gid_t gid;
	mode_t mode;
	int rc;

	if (snprintf(path, sizeof(path), "%s/%s.run", dir, r->name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	put_record(f, r);
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	/* a fresh temporary file renamed over the record: readers never see half */
	mode = share_mode(dir, &gid);
	rc = safe_file_replace(path, text, len, mode, err, sizeof(err));
	free(text);
	if (rc == 0 && gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0)
		rc = -errno;
	return rc;
}

static void set_field(struct run_record *r, const char *k, char *v)
{
#define STR(name) else if (strcmp(k, #name) == 0) snprintf(r->name, sizeof(r->name), "%s", v)
#define NUM(name) else if (strcmp(k, #name) == 0) r->name = strtoll(v, NULL, 10)
	unescape(v);
	if (0) {}
	STR(name); STR(state); STR(outcome); STR(log); STR(command); STR(last_event); STR(reason);
	NUM(run); NUM(pid); NUM(start_time); NUM(supervisor); NUM(owner_pid); NUM(uid);
	NUM(started_ms); NUM(ended_ms); NUM(exit_code); NUM(signal); NUM(expected_ms);
	NUM(timeout_ms); NUM(attempt); NUM(attempts); NUM(next_at_ms); NUM(expected_auto);
	else if (strcmp(k, "progress") == 0) r->progress = strtod(v, NULL);
#undef STR
#undef NUM
}

static int read_path(const char *path, struct run_record *r)
{
	char line[4096];
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	memset(r, 0, sizeof(*r));
	r->exit_code = -1;
	r->progress = -1;
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '=');
		size_t len = strlen(line);

		if (len && line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (!eq)
			continue;
		*eq = '\0';
		set_field(r, line, eq + 1);
	}
	fclose(f);
	return r->name[0] ? 0 : -EINVAL;
}

int state_read(const char *dir, const char *name, struct run_record *r)
{
	char path[PATH_MAX];

	if (strchr(name, '/') || !*name)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/%s.run", dir, name);
	return read_path(path, r);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct run_record *)a)->name, ((const struct run_record *)b)->name);
}

int state_list(const char *dir, struct run_record **out, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct run_record *v = NULL;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char path[PATH_MAX];
		struct run_record *grown;

		if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".run") != 0)
			continue;
		grown = realloc(v, (cnt + 1) * sizeof(*v));
		if (!grown)
			break;
		v = grown;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (read_path(path, &v[cnt]) == 0)
			cnt++;
	}
	closedir(d);
	if (cnt > 1) /* qsort(NULL, 0, ...) is undefined behaviour */
		qsort(v, cnt, sizeof(*v), by_name);
	*out = v;
	*n = cnt;
	return 0;
}

int state_writer_alive(const struct run_record *r)
{
	return r->owner_pid > 0 && (kill(r->owner_pid, 0) == 0 || errno == EPERM);
}

int state_remove(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s.run", dir, name);
	return unlink(path) == 0 ? 0 : -errno;
}

uint64_t state_last_run(const char *dir, const char *name)
{
	struct run_record r;
	struct history h;
	char hdir[PATH_MAX];
	uint64_t last = state_read(dir, name, &r) == 0 ? r.run : 0;

	if (history_read(history_dir(dir, hdir, sizeof(hdir)), name, &h) == 0)
		for (size_t i = 0; i < h.n; i++)
			if (h.v[i].run > last)
				last = h.v[i].run;
	history_free(&h);
	return last;
}
