/* The end-of-run report as readable lines (see report.h). Unknown facts say
 * "unknown": a reader must not take a missing line for a zero. */
#include "report.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const report_fields[] = {
	"outcome", "exit_code", "signal", "oom_killed", "duration",
	"peak_rss_bytes", "cpu_seconds", "progress",
};

bool report_shows(const char *field)
{
	for (size_t i = 0; i < sizeof(report_fields) / sizeof(report_fields[0]); i++)
		if (strcmp(field, report_fields[i]) == 0)
			return true;
	return false;
}

static const struct vigil_field *report_field(const struct vigil_event *ev, const char *name)
{
	for (size_t i = 0; i < ev->n_fields; i++)
		if (ev->fields[i].name && strcmp(ev->fields[i].name, name) == 0)
			return &ev->fields[i];
	return NULL;
}

static bool report_number(const struct vigil_field *f, double *v)
{
	if (f && f->type == VIGIL_FIELD_INT)
		*v = (double)f->u.i;
	else if (f && f->type == VIGIL_FIELD_DOUBLE)
		*v = f->u.d;
	else
		return false;
	return true;
}

/* "3", "killed by SIGTERM", "killed by the OOM killer (SIGKILL)". */
static void report_exit(const struct vigil_event *ev, char *buf, size_t len)
{
	const struct vigil_field *code = report_field(ev, "exit_code");
	const struct vigil_field *sig = report_field(ev, "signal");
	const struct vigil_field *oom = report_field(ev, "oom_killed");
	bool oom_known = oom && oom->type == VIGIL_FIELD_BOOL;

	if (code && code->type == VIGIL_FIELD_INT)
		snprintf(buf, len, "%lld", (long long)code->u.i);
	else if (sig && sig->type == VIGIL_FIELD_STRING && oom_known && oom->u.b)
		snprintf(buf, len, "killed by the OOM killer (%.*s)", (int)sig->u.s.len, sig->u.s.ptr);
	else if (sig && sig->type == VIGIL_FIELD_STRING)
		snprintf(buf, len, "killed by %.*s%s", (int)sig->u.s.len, sig->u.s.ptr,
			 !oom_known && strncmp(sig->u.s.ptr, "SIGKILL", sig->u.s.len) == 0
				 ? " (by the OOM killer or not: unknown)" : "");
	else
		snprintf(buf, len, "unknown");
}

/* 59.2 s; 1h 02m 03s */
static void report_duration(double s, char *buf, size_t len)
{
	if (s < 60) {
		snprintf(buf, len, "%.1f s", s);
		return;
	}
	long long t = (long long)(s + 0.5);
	if (t < 3600)
		snprintf(buf, len, "%lldm %02llds", t / 60, t % 60);
	else
		snprintf(buf, len, "%lldh %02lldm %02llds", t / 3600, t / 60 % 60, t % 60);
}

static void report_bytes(double n, char *buf, size_t len)
{
	static const char *const unit[] = { "bytes", "kB", "MB", "GB", "TB" };
	int i = 0;
	while (n >= 1000 && i < 4)
		n /= 1000, i++;
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", n, unit[i]);
}

/* One line from a number, "unknown" when the field is null or absent. */
static int report_put_number(const struct vigil_event *ev, const char *name, const char *label,
			     void (*fmt)(double, char *, size_t), report_put_fn put, void *arg)
{
	char text[64];
	double v;
	if (report_number(report_field(ev, name), &v))
		fmt(v, text, sizeof(text));
	else
		snprintf(text, sizeof(text), "unknown");
	return put(arg, label, text, strlen(text));
}

static void report_seconds(double s, char *buf, size_t len)
{
	snprintf(buf, len, "%.2f s", s);
}

static void report_plain(double v, char *buf, size_t len)
{
	snprintf(buf, len, "%g", v);
}

int report_lines(const struct vigil_event *ev, report_put_fn put, void *arg)
{
	const struct vigil_field *outcome = report_field(ev, "outcome");
	char text[160];
	double v;
	int r = 0;

	if (outcome && outcome->type == VIGIL_FIELD_STRING)
		r = put(arg, "outcome", outcome->u.s.ptr, outcome->u.s.len);
	report_exit(ev, text, sizeof(text));
	if (!r)
		r = put(arg, "exit status", text, strlen(text));
	if (!r)
		r = report_put_number(ev, "duration", "duration", report_duration, put, arg);
	if (!r)
		r = report_put_number(ev, "peak_rss_bytes", "peak memory", report_bytes, put, arg);
	if (!r)
		r = report_put_number(ev, "cpu_seconds", "CPU time", report_seconds, put, arg);
	if (!r && report_number(report_field(ev, "progress"), &v))
		r = report_put_number(ev, "progress", "progress", report_plain, put, arg);
	return r;
}
