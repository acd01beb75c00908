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
