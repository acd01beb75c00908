/* Facts about processes from /proc: identity (pid + start time), pid files,
 * signal names. A leaf: libc only, no state. The pid detector builds it in
 * (plugins include nothing from core/), and so does the core's base layer. */
#include "proc.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The kernel's PID_MAX_LIMIT on 64-bit, used when pid_max cannot be read. */
#define PROC_PID_MAX_FALLBACK 4194304L
/* Field 22 (starttime) counted from field 3 (state), the first after comm. */
#define PROC_STAT_STARTTIME_SKIP (22 - 3)

/* Read at most len-1 bytes of a small file and NUL-terminate them. Bytes read,
 * or -errno. O_NONBLOCK so that a FIFO put in place of a file cannot hang us. */
static ssize_t proc_read_small(const char *path, char *buf, size_t len, int want_reg)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (want_reg) {
		struct stat st;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			return -EINVAL;
		}
	}
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* The part of /proc/PID/stat after comm: starts at field 3 (state). comm may
 * hold spaces and ')', but never the last ')' of the line. */
static int proc_stat_rest(pid_t pid, char *buf, size_t len, const char **rest)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	ssize_t n = proc_read_small(path, buf, len, 0);
	if (n < 0)
		return (int)n;
	char *close_paren = strrchr(buf, ')');
	if (!close_paren || close_paren[1] != ' ')
		return -EIO;
	*rest = close_paren + 2;
	return 0;
}

int proc_ppid(pid_t pid, pid_t *ppid)
{
	char buf[1024];
	const char *p = NULL;
	int r = pid > 0 ? proc_stat_rest(pid, buf, sizeof(buf), &p) : -EINVAL;
	int v;

	if (r < 0)
		return r;
	if (sscanf(p, "%*c %d", &v) != 1)
		return -EIO;
	*ppid = (pid_t)v;
	return 0;
}

int proc_start_time(pid_t pid, uint64_t *start_time)
{
	char buf[1024];
	const char *p = NULL;
	if (pid <= 0)
		return -EINVAL;
	int r = proc_stat_rest(pid, buf, sizeof(buf), &p);
	if (r < 0)
		return r;
	for (int i = 0; i < PROC_STAT_STARTTIME_SKIP; i++) {
		p = strchr(p, ' ');
		if (!p)
			return -EIO;
		p++;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || end == p || (*end != ' ' && *end != '\n' && *end != '\0'))
		return -EIO;
	*start_time = v;
	return 0;
}

char proc_state(pid_t pid)
{
	char buf[1024];
	const char *p = NULL;
	if (pid <= 0 || proc_stat_rest(pid, buf, sizeof(buf), &p) < 0)
		return 0;
	return isalpha((unsigned char)*p) ? *p : 0;
}

int proc_cmdline(pid_t pid, char *buf, size_t len)
{
	char path[64];
	if (!buf || len == 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	ssize_t n = proc_read_small(path, buf, len, 0);
	if (n < 0) {
		buf[0] = '\0';
		return (int)n;
	}
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	while (n > 0 && buf[n - 1] == ' ')
		buf[--n] = '\0';
	return 0;
}

int proc_is_same(pid_t pid, uint64_t start_time)
{
	uint64_t now;
	return proc_start_time(pid, &now) == 0 && now == start_time;
}

static long proc_pid_max(void)
{
	char buf[32];
	if (proc_read_small("/proc/sys/kernel/pid_max", buf, sizeof(buf), 0) <= 0)
		return PROC_PID_MAX_FALLBACK;
	long v = strtol(buf, NULL, 10);
	return v > 0 ? v : PROC_PID_MAX_FALLBACK;
}

/* Copy text for an error message: without surrounding white space, bounded,
 * control bytes shown as '?'. */
static void proc_quote(const char *text, char *out, size_t outlen)
{
	size_t i = 0, len;
	while (isspace((unsigned char)*text))
		text++;
	for (len = strlen(text); len > 0 && isspace((unsigned char)text[len - 1]);)
		len--;
	for (; i < len && i + 4 < outlen && i < 32; i++)
		out[i] = isprint((unsigned char)text[i]) ? text[i] : '?';
	if (i < len && i + 4 < outlen) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

int proc_parse_pid(const char *text, pid_t *pid, char *err, size_t errlen)
{
	char shown[48];
	const char *p = text;
	while (isspace((unsigned char)*p))
		p++;
	const char *digits = (*p == '-' || *p == '+') ? p + 1 : p;
	char *end = NULL;
	errno = 0;
	long long v = isdigit((unsigned char)*digits) ? strtoll(p, &end, 10) : 0;
	if (end)
		while (isspace((unsigned char)*end))
			end++;
	if (!end || *end != '\0') {
		proc_quote(text, shown, sizeof(shown));
		snprintf(err, errlen, "\"%s\" is not a PID", shown);
		return -EINVAL;
	}
	if (v <= 0) {
		snprintf(err, errlen, "%lld is not a valid PID", v);
		return -EINVAL;
	}
	long max = proc_pid_max();
	if (errno == ERANGE || v > max) {
		snprintf(err, errlen, "%lld is above pid_max (%ld)", v, max);
		return -EINVAL;
	}
	*pid = (pid_t)v;
	return 0;
}

int proc_read_pid_file(const char *path, pid_t *pid, char *err, size_t errlen)
{
	char buf[128];
	ssize_t n = proc_read_small(path, buf, sizeof(buf), 1);
	if (n == -EINVAL) {
		snprintf(err, errlen, "not a regular file");
		return -EINVAL;
	}
	if (n < 0) {
		snprintf(err, errlen, "%s", strerror((int)-n));
		return (int)n;
	}
	if ((size_t)n == sizeof(buf) - 1) {
		snprintf(err, errlen, "pid file too long for a PID");
		return -EINVAL;
	}
	if (memchr(buf, '\0', (size_t)n)) {
		snprintf(err, errlen, "pid file holds binary data");
		return -EINVAL;
	}
	const char *p = buf;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0') {
		snprintf(err, errlen, "empty pid file");
		return -EINVAL;
	}
	return proc_parse_pid(buf, pid, err, errlen);
}

const char *proc_signal_name(int sig, char *buf, size_t len)
{
	const char *abbrev = NULL;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	abbrev = sigabbrev_np(sig);
#endif
	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "SIG%d", sig);
	return buf;
}

int64_t proc_age_ms(uint64_t start_time)
{
	struct timespec ts;
	long hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0)
		hz = 100;
	if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
		return 0;
	int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int64_t start_ms = (int64_t)(start_time / (uint64_t)hz) * 1000 +
			   (int64_t)(start_time % (uint64_t)hz) * 1000 / hz;
	return now_ms > start_ms ? now_ms - start_ms : 0;
}

/* VmHWM of /proc/PID/status in bytes; -1 when absent (a zombie, a kernel thread). */
static int64_t proc_peak_rss(pid_t pid)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (proc_read_small(path, buf, sizeof(buf), 0) < 0)
		return -1;
	const char *p = strstr(buf, "\nVmHWM:");
	long long kb;
	if (!p || sscanf(p + 7, " %lld kB", &kb) != 1 || kb < 0)
		return -1;
	return (int64_t)kb * 1024;
}

/* utime + stime (fields 14 and 15 of /proc/PID/stat) in ms; -1 when unknown. */
static int64_t proc_cpu_ms(pid_t pid)
{
	char buf[1024];
	const char *p = NULL;
	if (proc_stat_rest(pid, buf, sizeof(buf), &p) < 0)
		return -1;
	for (int i = 0; i < 14 - 3; i++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	unsigned long long ut, st;
	long hz = sysconf(_SC_CLK_TCK);
	if (sscanf(p, "%llu %llu", &ut, &st) != 2 || hz <= 0)
		return -1;
	return (int64_t)((ut + st) * 1000 / (unsigned long long)hz);
}

int proc_usage_read(pid_t pid, struct proc_usage *u)
{
	u->peak_rss_bytes = proc_peak_rss(pid);
	u->cpu_ms = proc_cpu_ms(pid);
	return u->peak_rss_bytes < 0 && u->cpu_ms < 0 ? -ENOENT : 0;
}

/* One /dev/kmsg record, "PRIO,SEQ,USEC,FLAGS;TEXT": does it say the OOM killer
 * killed pid, at or after since_us (microseconds after boot)? */
static int proc_kmsg_is_oom_kill(const char *rec, pid_t pid, uint64_t since_us)
{
	unsigned long long usec;
	const char *text = strchr(rec, ';');
	if (!text || sscanf(rec, "%*u,%*u,%llu", &usec) != 1 || usec < since_us)
		return 0;
	/* "Out of memory: Killed process N (comm)" or "Memory cgroup out of memory: ..." */
	const char *k = strstr(text, "Killed process ");
	char *end;
	if (!k)
		return 0;
	long v = strtol(k + 15, &end, 10);
	return v == (long)pid && strncmp(end, " (", 2) == 0;
}

int proc_oom_killed(pid_t pid, uint64_t start_time)
{
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t since_us = start_time * 1000000u / (uint64_t)(hz > 0 ? hz : 100);
	/* Opened, it reads from the oldest record the kernel still holds. */
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	char rec[8192]; /* a record longer than the buffer is refused (EINVAL) */
	int found = 0, err = 0;
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && (errno == EINTR || errno == EPIPE))
			continue; /* EPIPE: records overwritten meanwhile; go on */
		if (n < 0) {
			err = errno == EAGAIN ? 0 : -errno;
			break;
		}
		if (n == 0)
			break;
		rec[n] = '\0';
		if (proc_kmsg_is_oom_kill(rec, pid, since_us)) {
			found = 1;
			break;
		}
	}
	close(fd);
	return found ? 1 : err;
}
