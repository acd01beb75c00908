/* The end-of-run report in `finished`: what the kernel told of the ended
 * process (peak memory, CPU time, an OOM kill: the pid detector hands them
 * over just before the exit), the last progress value, and the last lines of
 * the job's own output when no log detector gave any. Unknown is null, never
 * a guess. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "monitor_internal.h"

#define REPORT_TAIL_LINES 10
#define REPORT_TAIL_BYTES 16384 /* read from the end of the output, at most */
#define REPORT_LINE_MAX 400     /* a longer line is cut */

static bool report_current(const struct monitor *m)
{
	return m->report.known && m->report.attach_mono == m->attach_mono;
}

void monitor_exit_facts(struct monitor *m, const struct vigil_field *f, size_t n)
{
	struct run_report r = {.known = true, .attach_mono = m->attach_mono,
			       .peak_rss_bytes = -1, .cpu_seconds = -1, .oom_killed = -1};

	for (size_t i = 0; i < n; i++) {
		if (strcmp(f[i].name, "peak_rss_bytes") == 0 && f[i].type == VIGIL_FIELD_INT)
			r.peak_rss_bytes = f[i].u.i;
		else if (strcmp(f[i].name, "cpu_seconds") == 0 && f[i].type == VIGIL_FIELD_DOUBLE)
			r.cpu_seconds = f[i].u.d;
		else if (strcmp(f[i].name, "oom_killed") == 0 && f[i].type == VIGIL_FIELD_BOOL)
			r.oom_killed = f[i].u.b != 0;
	}
	m->report = r;
}

/* The last lines of buf[0..len): complete lines only, except the very last;
 * a line redrawn with carriage returns (a progress bar) shows its last state. */
static size_t tail_split(char *buf, size_t len, struct vigil_bytes *out, size_t max)
{
	size_t n = 0, end = len;

	while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r'))
		end--;
	while (end > 0 && n < max) {
		size_t start = end;

		while (start > 0 && buf[start - 1] != '\n')
			start--;
		if (start == 0 && len == REPORT_TAIL_BYTES)
			break; /* cut by the read window: not a whole line */
		size_t from = start;
		for (size_t i = start; i < end; i++)
			if (buf[i] == '\r' && i + 1 < end)
				from = i + 1;
		out[n++] = (struct vigil_bytes){buf + from, end - from > REPORT_LINE_MAX
						 ? REPORT_LINE_MAX : end - from};
		end = start ? start - 1 : 0;
	}
	for (size_t i = 0; i < n / 2; i++) { /* oldest first */
		struct vigil_bytes t = out[i];

		out[i] = out[n - 1 - i];
		out[n - 1 - i] = t;
	}
	return n;
}

/* A command's own output (its log) gives finished.log_tail when no log
 * detector did: the job printed it, so it is what people want to read. */
static void tail_from_output(struct monitor *m)
{
	const char *path = m->log_path ? m->log_path : m->mc->log;
	struct vigil_bytes lines[REPORT_TAIL_LINES];
	char *buf;
	struct stat st;
	ssize_t got;
	int fd;

	if (!m->mc->command || !path || m->n_tail)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return;
	buf = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? malloc(REPORT_TAIL_BYTES) : NULL;
	off_t from = buf && st.st_size > REPORT_TAIL_BYTES ? st.st_size - REPORT_TAIL_BYTES : 0;
	got = buf ? pread(fd, buf, REPORT_TAIL_BYTES, from) : -1;
	close(fd);
	if (got > 0)
		monitor_log_tail(m, lines, tail_split(buf, (size_t)got, lines, REPORT_TAIL_LINES));
	free(buf);
}

size_t monitor_report_fields(struct monitor *m, struct vigil_field *f, size_t max)
{
	bool cur = report_current(m);
	const struct run_report *r = &m->report;

	if (max < 4)
		return 0;
	tail_from_output(m);
	f[0] = (struct vigil_field){.name = "oom_killed", .type = VIGIL_FIELD_NULL};
	if (cur && r->oom_killed >= 0)
		f[0] = (struct vigil_field){.name = "oom_killed", .type = VIGIL_FIELD_BOOL,
					    .u.b = r->oom_killed};
	f[1] = (struct vigil_field){.name = "peak_rss_bytes", .type = VIGIL_FIELD_NULL};
	if (cur && r->peak_rss_bytes >= 0)
		f[1] = (struct vigil_field){.name = "peak_rss_bytes", .type = VIGIL_FIELD_INT,
					    .u.i = r->peak_rss_bytes};
	f[2] = (struct vigil_field){.name = "cpu_seconds", .type = VIGIL_FIELD_NULL};
	if (cur && r->cpu_seconds >= 0)
		f[2] = (struct vigil_field){.name = "cpu_seconds", .type = VIGIL_FIELD_DOUBLE,
					    .u.d = r->cpu_seconds};
	f[3] = (struct vigil_field){.name = "progress", .type = VIGIL_FIELD_NULL};
	if (m->progress >= 0)
		f[3] = (struct vigil_field){.name = "progress", .type = VIGIL_FIELD_DOUBLE,
					    .u.d = m->progress};
	return 4;
}
