/*
 * pressure — disk, inode and memory headroom, and PSI stalls, while a job runs:
 * what one would otherwise check by hand with `df -h` and `free -h`.
 *
 * Disk, inodes and memory are sampled on ONE repeating timer, whatever the
 * number of paths, so the idle cost is one wakeup per interval. A disk that
 * fills faster than that is not missed: while free space falls, the next sample
 * is due at a fraction of the predicted time to the threshold (and the event
 * carries eta_full, the predicted time to full); as root, a write on a watched
 * filesystem (fanotify) brings the next sample forward, so a fill that starts
 * and ends between two regular samples is still measured. PSI uses kernel
 * triggers (EPOLLPRI) when the kernel accepts one and otherwise samples avg10 on
 * that same timer.
 *
 * Every crossing is reported once. "recovered" needs the value back past the
 * threshold by the hysteresis margin, so a value hovering at the threshold
 * never flaps.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "vigil/plugin.h"

/* The kernel's limits for a PSI trigger window (kernel/sched/psi.c). */
#define PSI_WINDOW_MIN_US 500000
#define PSI_WINDOW_MAX_US 10000000
#define PR_INTERVAL_MIN_MS 10
/* While a value falls toward its threshold, the next sample is due after
 * 1/PR_FALL_FRACTION of the predicted time to it, but no sooner than
 * PR_FAST_MIN_MS: a fill is caught in its last quarter at worst. */
#define PR_FALL_FRACTION 4
#define PR_FAST_MIN_MS 250
/* A write on a watched filesystem brings the next sample forward to this long
 * after the last one: a fill shorter than the interval is still measured. */
#define PR_ACTIVITY_GAP_MS 1000

enum pr_resource { PR_DISK, PR_INODES, PR_MEMORY };
enum pr_unit { PR_BYTES, PR_PERCENT, PR_COUNT };

static const char *const pr_resource_names[] = { "disk", "inodes", "memory" };
static const char *const pr_unit_names[] = { "bytes", "percent", "count" };

struct pressure;

/* One sampled threshold where low is bad: free bytes, free inodes, MemAvailable. */
struct pr_check {
	enum pr_resource res;
	enum pr_unit unit;
	char *path;      /* disk and inodes; NULL for memory */
	double threshold; /* bytes, count or percent, as written */
	bool alert;      /* pressure reported, recovery not yet */
	bool failing;    /* the last sample failed: warned once */
	bool no_total;   /* the filesystem reports no total: told once */
	double last;     /* the previous sample, for the rate of fall */
	int64_t last_ms; /* when it was taken; 0 before the first */
	double rate;     /* fall per second between the last two samples; <= 0 not falling */
};

/* One PSI resource (memory or io) where high is bad. */
struct pr_psi {
	struct pressure *pr;
	const char *key;   /* "psi_memory" or "psi_io" */
	char *file;        /* PROC_DIR/pressure/<resource> */
	char *spec;        /* as written, for messages */
	bool full;         /* "full" line, else "some" */
	int64_t stall_us, window_us;
	double threshold;  /* percent: stall / window */
	int fd;            /* trigger fd; -1 while sampling */
	bool alert, failing;
	int64_t last_trigger_ms;
	int64_t recover_timer; /* while alerting in trigger mode; 0 when none */
};

struct pressure {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	struct pr_check *checks;
	size_t n_checks;
	struct pr_psi psi[2];
	size_t n_psi;
	char *meminfo;      /* PROC_DIR/meminfo */
	char *proc_dir;
	int64_t interval_ms;
	double hysteresis;  /* a fraction: 5% -> 0.05 */
	int64_t timer;      /* the sampling timer; 0 when none */
	int64_t due_ms;     /* when it fires next */
	int64_t sampled_ms; /* when the last sample was taken */
	int activity_fd;    /* fanotify on the disk paths' filesystems; -1 when none */
	bool activity_armed; /* watched in the loop; off from a write to the next sample */
};

/* What goes into a pressure or recovered event. */
struct pr_reading {
	const char *resource, *path, *unit;
	double value, threshold;
	double eta_full; /* seconds to none left at the current fall; < 0: not falling */
	bool has_eta;    /* sampled resources carry eta_full (null when not falling) */
};

/* ------------------------------------------------------------------ parsing */

/* Digits with an optional fraction; returns the end, or NULL without a digit. */
static const char *pr_parse_number(const char *s, double *out, bool *fraction)
{
	double v = 0, scale = 1;
	bool digits = false;

	*fraction = false;
	for (; *s >= '0' && *s <= '9'; s++, digits = true)
		v = v * 10 + (*s - '0');
	if (*s == '.') {
		*fraction = true;
		for (s++; *s >= '0' && *s <= '9'; s++, digits = true) {
			scale /= 10;
			v += (*s - '0') * scale;
		}
	}
	*out = v;
	return digits ? s : NULL;
}

/* A size by core/config.c's rules (plugins cannot call the core): a whole
 * number with K, M, G, T or KiB, MiB, GiB, TiB (powers of 1024), or a percent
 * above 0 and at most 100. `count` takes no unit. */
static int pr_parse_amount(const char *s, bool count, double *value, bool *percent)
{
	static const struct {
		const char *name;
		int shift;
	} units[] = {
		{ "", 0 }, { "K", 10 }, { "M", 20 }, { "G", 30 }, { "T", 40 },
		{ "KiB", 10 }, { "MiB", 20 }, { "GiB", 30 }, { "TiB", 40 },
	};
	bool fraction;
	double v;
	const char *end = pr_parse_number(s, &v, &fraction);

	if (!end)
		return -EINVAL;
	*percent = *end == '%';
	if (*percent) {
		if (end[1] != '\0' || !(v > 0 && v <= 100))
			return -EINVAL;
		*value = v;
		return 0;
	}
	if (fraction)
		return -EINVAL;
	for (size_t i = 0; i < (count ? 1 : sizeof(units) / sizeof(*units)); i++) {
		if (strcmp(end, units[i].name) == 0) {
			v *= (double)(INT64_C(1) << units[i].shift);
			if (v > 9.2e18)
				return -EINVAL;
			*value = v;
			return 0;
		}
	}
	return -EINVAL;
}

/* "PATH:MIN_FREE" from a disk or inodes value into c. */
static int pr_parse_path_value(const char *key, const char *text, struct pr_check *c,
			       char *err, size_t errlen)
{
	const char *colon = strrchr(text, ':');
	bool count = c->res == PR_INODES, percent;

	if (!colon) {
		snprintf(err, errlen, "%s: \"%s\" lacks \":MIN_FREE\" (e.g. %s:5%%)", key, text,
			 text);
		return -EINVAL;
	}
	if (colon == text) {
		snprintf(err, errlen, "%s: \"%s\" has an empty PATH (e.g. /data:5%%)", key, text);
		return -EINVAL;
	}
	if (pr_parse_amount(colon + 1, count, &c->threshold, &percent) < 0) {
		snprintf(err, errlen, "%s: \"%s\": bad MIN_FREE \"%s\" (%s, or a percent like 5%%)",
			 key, text, colon + 1,
			 count ? "a number of inodes like 10000" : "a size like 5G or 512MiB");
		return -EINVAL;
	}
	c->unit = percent ? PR_PERCENT : count ? PR_COUNT : PR_BYTES;
	c->path = strndup(text, (size_t)(colon - text));
	return c->path ? 0 : -ENOMEM;
}

/* A duration with its unit: 150ms, 1s, 2.5s, 500000us -> microseconds. */
static const char *pr_parse_duration_us(const char *s, int64_t *us)
{
	bool fraction;
	double v, mult;
	const char *end = pr_parse_number(s, &v, &fraction);

	if (!end)
		return NULL;
	if (strncmp(end, "us", 2) == 0)
		mult = 1, end += 2;
	else if (strncmp(end, "ms", 2) == 0)
		mult = 1e3, end += 2;
	else if (*end == 's')
		mult = 1e6, end += 1;
	else
		return NULL;
	if (v * mult > 1e12)
		return NULL;
	*us = (int64_t)(v * mult + 0.5);
	return end;
}

/* "some 150ms/1s", or the kernel's own "some 150000 1000000" (microseconds). */
static int pr_parse_psi_spec(const char *text, struct pr_psi *p)
{
	const char *s = text;
	char *end;

	if (strncmp(s, "some", 4) != 0 && strncmp(s, "full", 4) != 0)
		return -EINVAL;
	p->full = s[0] == 'f';
	s += 4;
	if (*s != ' ' && *s != '\t')
		return -EINVAL;
	s += strspn(s, " \t");
	if (strchr(s, '/')) {
		s = pr_parse_duration_us(s, &p->stall_us);
		if (!s || *s != '/')
			return -EINVAL;
		s = pr_parse_duration_us(s + 1, &p->window_us);
		return s && *s == '\0' ? 0 : -EINVAL;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	p->stall_us = strtoll(s, &end, 10);
	if (*end != ' ' && *end != '\t')
		return -EINVAL;
	s = end + strspn(end, " \t");
	if (*s < '0' || *s > '9')
		return -EINVAL;
	p->window_us = strtoll(s, &end, 10);
	return *end == '\0' ? 0 : -EINVAL;
}

static int pr_parse_psi(struct pressure *pr, const char *key, const char *resource,
			const char *text, char *err, size_t errlen)
{
	struct pr_psi *p = &pr->psi[pr->n_psi];

	if (pr_parse_psi_spec(text, p) < 0) {
		snprintf(err, errlen,
			 "%s: \"%s\": expected \"some|full STALL/WINDOW\" (e.g. some 150ms/1s)",
			 key, text);
		return -EINVAL;
	}
	if (p->window_us < PSI_WINDOW_MIN_US || p->window_us > PSI_WINDOW_MAX_US) {
		snprintf(err, errlen, "%s: \"%s\": the window must be 500ms to 10s", key, text);
		return -EINVAL;
	}
	if (p->stall_us <= 0 || p->stall_us > p->window_us) {
		snprintf(err, errlen, "%s: \"%s\": the stall must be above 0 and at most the window",
			 key, text);
		return -EINVAL;
	}
	p->pr = pr;
	p->key = key;
	p->fd = -1;
	p->threshold = 100.0 * (double)p->stall_us / (double)p->window_us;
	p->spec = strdup(text);
	if (asprintf(&p->file, "%s/pressure/%s", pr->proc_dir, resource) < 0)
		p->file = NULL;
	pr->n_psi++;
	return p->spec && p->file ? 0 : -ENOMEM;
}

static int pr_parse_hysteresis(const char *text, double *out, char *err, size_t errlen)
{
	bool fraction;
	double v;
	const char *end = pr_parse_number(text, &v, &fraction);

	if (!end || (*end == '%' ? end[1] != '\0' : *end != '\0') || v > 100) {
		snprintf(err, errlen, "hysteresis: \"%s\": expected a percent like 5%%", text);
		return -EINVAL;
	}
	*out = v / 100;
	return 0;
}

static int pr_add_checks(struct pressure *pr, const struct vigil_config *cfg, char *err,
			 size_t errlen)
{
	for (size_t i = 0; i < cfg->n_values; i++) {
		const struct vigil_value *v = &cfg->values[i];
		struct pr_check *c = &pr->checks[pr->n_checks];
		int rc;

		if (strcmp(v->key, "disk") == 0 || strcmp(v->key, "inodes") == 0) {
			c->res = v->key[0] == 'd' ? PR_DISK : PR_INODES;
			rc = pr_parse_path_value(v->key, v->text, c, err, errlen);
			pr->n_checks++; /* counted even on error: its path is freed */
			if (rc < 0)
				return rc;
		} else if (strcmp(v->key, "memory") == 0) {
			c->res = PR_MEMORY;
			c->unit = v->percent >= 0 ? PR_PERCENT : PR_BYTES;
			c->threshold = v->percent >= 0 ? v->percent : (double)v->number;
			pr->n_checks++;
		}
	}
	return 0;
}

static int pr_parse(struct pressure *pr, const struct vigil_config *cfg, char *err,
		    size_t errlen)
{
	const struct vigil_value *v;
	int rc;

	v = vigil_config_get(cfg, "proc_dir");
	pr->proc_dir = strdup(v ? v->text : "/proc");
	if (!pr->proc_dir || asprintf(&pr->meminfo, "%s/meminfo", pr->proc_dir) < 0)
		return -ENOMEM;
	v = vigil_config_get(cfg, "interval");
	pr->interval_ms = v ? v->number : 10000;
	if (pr->interval_ms < PR_INTERVAL_MIN_MS) {
		snprintf(err, errlen, "interval: \"%s\" is too short (at least 10ms)",
			 v ? v->text : "");
		return -EINVAL;
	}
	v = vigil_config_get(cfg, "hysteresis");
	rc = pr_parse_hysteresis(v ? v->text : "5%", &pr->hysteresis, err, errlen);
	if (rc < 0)
		return rc;
	pr->checks = calloc(cfg->n_values ? cfg->n_values : 1, sizeof(*pr->checks));
	if (!pr->checks)
		return -ENOMEM;
	rc = pr_add_checks(pr, cfg, err, errlen);
	if (rc < 0)
		return rc;
	v = vigil_config_get(cfg, "psi_memory");
	if (v && (rc = pr_parse_psi(pr, "psi_memory", "memory", v->text, err, errlen)) < 0)
		return rc;
	v = vigil_config_get(cfg, "psi_io");
	if (v && (rc = pr_parse_psi(pr, "psi_io", "io", v->text, err, errlen)) < 0)
		return rc;
	if (pr->n_checks == 0 && pr->n_psi == 0) {
		snprintf(err, errlen, "nothing to watch: set disk, inodes, memory, psi_memory "
				      "or psi_io");
		return -EINVAL;
	}
	return 0;
}

/* ---------------------------------------------------------------- reporting */

/* A value ready to print: scaled 1024-based like df -h (5 GB, 3.1 GB, 812 MB). */
struct pr_shown {
	double v;
	size_t scale;  /* index into the byte suffixes; 0 for percent and count */
	int decimals;
};

static const char *const pr_byte_suffixes[] = { "B", "KB", "MB", "GB", "TB", "PB" };

/* One decimal below 10 unless whole; plain bytes and counts never have one. */
static struct pr_shown pr_shown(double v, enum pr_unit unit)
{
	struct pr_shown s = { v, 0, 0 };

	while (unit == PR_BYTES && s.v >= 1024 && s.scale + 1 < sizeof(pr_byte_suffixes) /
							    sizeof(*pr_byte_suffixes)) {
		s.v /= 1024;
		s.scale++;
	}
	if (!(s.v >= 10 || s.v == (double)(int64_t)s.v || (unit == PR_BYTES && s.scale == 0) ||
	      unit == PR_COUNT))
		s.decimals = 1;
	return s;
}

static const char *pr_print(struct pr_shown s, enum pr_unit unit, char *buf, size_t len)
{
	if (unit == PR_BYTES)
		snprintf(buf, len, "%.*f %s", s.decimals, s.v, pr_byte_suffixes[s.scale]);
	else
		snprintf(buf, len, "%.*f%s", s.decimals, s.v, unit == PR_PERCENT ? "%" : "");
	return buf;
}

/* A value and its threshold in the same scale get the same precision, one more
 * decimal at a time until they differ, so "21.6 GB, below 22.0 GB" never reads
 * "22 GB, below 22 GB". Different scales (512 MB, 1 GB) cannot be confused. */
static void pr_format_pair(double value, double threshold, enum pr_unit unit, char *a,
			   char *t, size_t len)
{
	struct pr_shown sv = pr_shown(value, unit), st = pr_shown(threshold, unit);

	if (sv.scale == st.scale) {
		if (sv.decimals < st.decimals)
			sv.decimals = st.decimals;
		st.decimals = sv.decimals;
		while (strcmp(pr_print(sv, unit, a, len), pr_print(st, unit, t, len)) == 0 &&
		       sv.decimals < 3 && unit != PR_COUNT)
			st.decimals = ++sv.decimals;
	}
	pr_print(sv, unit, a, len);
	pr_print(st, unit, t, len);
}

static void pr_emit(struct pressure *pr, const char *kind, const struct pr_reading *r,
		    const char *message)
{
	struct vigil_field f[] = {
		{ .name = "resource", .type = VIGIL_FIELD_STRING,
		  .u.s = { r->resource, strlen(r->resource) } },
		{ .name = "path", .type = VIGIL_FIELD_NULL },
		{ .name = "value", .type = VIGIL_FIELD_DOUBLE, .u.d = r->value },
		{ .name = "threshold", .type = VIGIL_FIELD_DOUBLE, .u.d = r->threshold },
		{ .name = "unit", .type = VIGIL_FIELD_STRING, .u.s = { r->unit, strlen(r->unit) } },
		{ .name = "eta_full", .type = VIGIL_FIELD_NULL },
	};
	struct vigil_event ev = {
		.kind = kind, .message = message, .fields = f, .n_fields = sizeof(f) / sizeof(*f),
	};

	if (!r->has_eta)
		ev.n_fields--;
	else if (r->eta_full >= 0)
		f[5] = (struct vigil_field){ .name = "eta_full", .type = VIGIL_FIELD_DOUBLE,
					     .u.d = r->eta_full };

	if (r->path) {
		f[1].type = VIGIL_FIELD_STRING;
		f[1].u.s = (struct vigil_bytes){ r->path, strlen(r->path) };
	}
	pr->host->emit(pr->ctx, &ev);
}

/* Seconds until the filesystem is full at the fall measured by the last two
 * samples; -1 when not falling. */
static double pr_eta_full(const struct pr_check *c, double value)
{
	return c->rate > 0 ? value / c->rate : -1;
}

/* "/data: 3.1 GB free, below 5.0 GB" or "memory: 9.5% available, back above
 * 10.0%"; a pressure event while falling adds ", full in about 40s". */
static void pr_report(struct pressure *pr, struct pr_check *c, double value, bool recovered)
{
	char msg[512], a[32], t[32], eta[64] = "";
	struct pr_reading r = {
		.resource = pr_resource_names[c->res], .path = c->path,
		.unit = pr_unit_names[c->unit], .value = value, .threshold = c->threshold,
		.eta_full = recovered ? -1 : pr_eta_full(c, value),
		.has_eta = !recovered && c->res != PR_MEMORY,
	};

	pr_format_pair(value, c->threshold, c->unit, a, t, sizeof(a));
	if (r.has_eta && r.eta_full >= 0)
		snprintf(eta, sizeof(eta), ", full in about %.0fs", r.eta_full);
	snprintf(msg, sizeof(msg), "%s: %s%s %s, %s %s%s", c->path ? c->path : "memory", a,
		 c->res != PR_INODES ? "" : c->unit == PR_PERCENT ? " of inodes" : " inodes",
		 c->res == PR_MEMORY ? "available" : "free", recovered ? "back above" : "below",
		 t, eta);
	pr_emit(pr, recovered ? VIGIL_EV_RECOVERED : VIGIL_EV_PRESSURE, &r, msg);
}

/* Low is bad: alert below the threshold, recover at threshold * (1 + h). */
static void pr_judge(struct pressure *pr, struct pr_check *c, double value)
{
	double back = c->threshold * (1 + pr->hysteresis);

	if (c->unit == PR_PERCENT && back > 100)
		back = 100;
	if (!c->alert && value < c->threshold) {
		c->alert = true;
		pr_report(pr, c, value, false);
	} else if (c->alert && value >= back) {
		c->alert = false;
		pr_report(pr, c, value, true);
	}
}

/* --------------------------------------------------------------- sampling */

/* 0 with *value, 1 when the filesystem reports no total, or -errno. */
static int pr_sample_fs(const struct pr_check *c, double *value)
{
	struct statvfs st;

	if (statvfs(c->path, &st) < 0)
		return -errno;
	if (c->res == PR_DISK) {
		if (c->unit == PR_BYTES) {
			*value = (double)st.f_bavail * (double)st.f_frsize;
			return 0;
		}
		if (st.f_blocks == 0)
			return 1;
		*value = 100.0 * (double)st.f_bavail / (double)st.f_blocks;
		return 0;
	}
	if (st.f_files == 0)
		return 1;
	if (c->unit == PR_COUNT)
		*value = (double)st.f_favail;
	else
		*value = 100.0 * (double)st.f_favail / (double)st.f_files;
	return 0;
}

/* Read a small /proc file whole into buf (NUL-terminated). 0 or -errno. */
static int pr_read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

/* The kB number after "\nKey:" (or at the start). -1 when absent. */
static double pr_meminfo_field(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *s = text; s; s = strchr(s, '\n')) {
		if (*s == '\n')
			s++;
		if (strncmp(s, key, klen) == 0 && s[klen] == ':')
			return strtod(s + klen + 1, NULL) * 1024;
	}
	return -1;
}

static int pr_sample_memory(struct pressure *pr, const struct pr_check *c, double *value)
{
	char buf[8192];
	double avail, total;
	int rc = pr_read_file(pr->meminfo, buf, sizeof(buf));

	if (rc < 0)
		return rc;
	avail = pr_meminfo_field(buf, "MemAvailable");
	total = pr_meminfo_field(buf, "MemTotal");
	if (avail < 0 || (c->unit == PR_PERCENT && total <= 0))
		return -ENODATA;
	*value = c->unit == PR_PERCENT ? 100.0 * avail / total : avail;
	return 0;
}

/* A failure that repeats every interval is logged once, and again when it clears. */
static void pr_note_failure(struct pressure *pr, bool *failing, int rc, const char *what,
			    const char *path)
{
	if (rc < 0 && !*failing)
		pr->host->log(pr->ctx, VIGIL_LOG_WARN, "%s %s: %s; checking again every %lld ms",
			      what, path, strerror(-rc), (long long)pr->interval_ms);
	else if (rc >= 0 && *failing)
		pr->host->log(pr->ctx, VIGIL_LOG_INFO, "%s %s: readable again", what, path);
	*failing = rc < 0;
}

/* The fall per second since the previous sample (negative while rising). */
static void pr_note_rate(struct pr_check *c, double value, int64_t now)
{
	if (c->last_ms > 0 && now > c->last_ms)
		c->rate = (c->last - value) * 1000 / (double)(now - c->last_ms);
	c->last = value;
	c->last_ms = now;
}

static void pr_sample_check(struct pressure *pr, struct pr_check *c)
{
	double value = 0;
	int rc;

	if (c->res == PR_MEMORY)
		rc = pr_sample_memory(pr, c, &value);
	else
		rc = pr_sample_fs(c, &value);
	pr_note_failure(pr, &c->failing, rc, pr_resource_names[c->res],
			c->path ? c->path : pr->meminfo);
	if (rc == 1 && !c->no_total)
		pr->host->log(pr->ctx, VIGIL_LOG_INFO,
			      "%s %s: the filesystem reports no %s total; not checked",
			      pr_resource_names[c->res], c->path,
			      c->res == PR_INODES ? "inode" : "block");
	c->no_total = rc == 1;
	/* Memory swings too much for a trend; filesystems fill steadily. */
	if (rc == 0 && c->res != PR_MEMORY)
		pr_note_rate(c, value, pr->host->now_ms(pr->ctx));
	if (rc == 0)
		pr_judge(pr, c, value);
}

/* ---------------------------------------------------------------------- PSI */

/* avg10 of the some or full line of a pressure file. 0 or -errno. */
static int pr_psi_avg10(const struct pr_psi *p, double *avg)
{
	char buf[512];
	const char *want = p->full ? "full " : "some ";
	int rc = pr_read_file(p->file, buf, sizeof(buf));

	if (rc < 0)
		return rc;
	for (const char *s = buf; s; s = strchr(s, '\n')) {
		if (*s == '\n')
			s++;
		if (strncmp(s, want, 5) == 0) {
			const char *a = strstr(s, "avg10=");
			if (!a)
				break;
			*avg = strtod(a + 6, NULL);
			return 0;
		}
	}
	return -ENODATA;
}

static double pr_psi_back(const struct pressure *pr, const struct pr_psi *p)
{
	return p->threshold / (1 + pr->hysteresis);
}

static void pr_psi_report(struct pressure *pr, struct pr_psi *p, double avg, bool recovered)
{
	char msg[512], a[32], t[32];
	struct pr_reading r = {
		.resource = "psi", .path = p->file, .unit = "percent",
		.value = avg, .threshold = p->threshold,
	};

	pr_format_pair(avg, p->threshold, PR_PERCENT, a, t, sizeof(a));
	snprintf(msg, sizeof(msg), "%s: %s avg10 %s, %s %s (%s)", p->file, p->full ? "full" : "some",
		 a, recovered ? "back below" : "above", t, p->spec);
	pr_emit(pr, recovered ? VIGIL_EV_RECOVERED : VIGIL_EV_PRESSURE, &r, msg);
}

/* Sampling mode (no trigger): high is bad, recover at threshold / (1 + h). */
static void pr_psi_sample(struct pressure *pr, struct pr_psi *p)
{
	double avg = 0;
	int rc = pr_psi_avg10(p, &avg);

	pr_note_failure(pr, &p->failing, rc, p->key, p->file);
	if (rc < 0)
		return;
	if (!p->alert && avg > p->threshold) {
		p->alert = true;
		pr_psi_report(pr, p, avg, false);
	} else if (p->alert && avg < pr_psi_back(pr, p)) {
		p->alert = false;
		pr_psi_report(pr, p, avg, true);
	}
}

/* The configured interval, shortened while a value falls fast toward its
 * threshold (predicted from the last two samples). */
static int64_t pr_next_delay(const struct pressure *pr)
{
	double delay = (double)pr->interval_ms;

	for (size_t i = 0; i < pr->n_checks; i++) {
		const struct pr_check *c = &pr->checks[i];
		double to_threshold_ms, d;

		if (c->rate <= 0 || c->alert || c->last <= c->threshold)
			continue;
		to_threshold_ms = (c->last - c->threshold) / c->rate * 1000;
		d = to_threshold_ms / PR_FALL_FRACTION;
		if (d < PR_FAST_MIN_MS)
			d = PR_FAST_MIN_MS;
		if (d < delay)
			delay = d;
	}
	return (int64_t)delay;
}

static void pr_activity_arm(struct pressure *pr);

static int64_t pr_tick(void *data)
{
	struct pressure *pr = data;
	int64_t delay;

	pr->sampled_ms = pr->host->now_ms(pr->ctx);
	for (size_t i = 0; i < pr->n_checks; i++)
		pr_sample_check(pr, &pr->checks[i]);
	for (size_t i = 0; i < pr->n_psi; i++)
		if (pr->psi[i].fd < 0)
			pr_psi_sample(pr, &pr->psi[i]);
	pr_activity_arm(pr);
	delay = pr_next_delay(pr);
	pr->due_ms = pr->sampled_ms + delay;
	return delay;
}

/* ----------------------------------------------------------------- activity */

/* What the kernel queued is only a hint that something was written: dropped. */
static void pr_activity_drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* A write: the next sample comes PR_ACTIVITY_GAP_MS after the last one at the
 * latest. The fd stays out of the loop until then, so a busy filesystem costs
 * one wakeup per sample, not one per write. */
static void pr_on_activity(void *data, int fd, uint32_t revents)
{
	struct pressure *pr = data;
	int64_t now = pr->host->now_ms(pr->ctx), due = pr->sampled_ms + PR_ACTIVITY_GAP_MS;
	int64_t timer;

	(void)revents;
	pr_activity_drain(fd);
	pr->host->unwatch_fd(pr->ctx, fd);
	pr->activity_armed = false;
	if (pr->timer <= 0 || pr->due_ms <= due)
		return;
	timer = pr->host->add_timer(pr->ctx, due > now ? due - now : 0, pr_tick, pr);
	if (timer <= 0)
		return; /* the regular timer still runs */
	pr->host->cancel_timer(pr->ctx, pr->timer);
	pr->timer = timer;
	pr->due_ms = due;
}

static void pr_activity_arm(struct pressure *pr)
{
	if (pr->activity_fd < 0 || pr->activity_armed)
		return;
	pr_activity_drain(pr->activity_fd);
	pr->activity_armed = pr->host->watch_fd(pr->ctx, pr->activity_fd, EPOLLIN,
						pr_on_activity, pr) == 0;
}

/* fanotify needs CAP_SYS_ADMIN for a filesystem mark; without it, or where a
 * filesystem reports no file ids, sampling alone it is. */
static void pr_activity_open(struct pressure *pr)
{
	int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_FID,
			       O_RDONLY);
	int err = fd < 0 ? errno : ENOENT;
	bool marked = false;

	for (size_t i = 0; fd >= 0 && i < pr->n_checks; i++) {
		const char *path = pr->checks[i].path;

		if (path && fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_MODIFY,
					  AT_FDCWD, path) == 0)
			marked = true;
		else if (path)
			err = errno;
	}
	if (!marked) {
		if (fd >= 0)
			close(fd);
		pr->host->log(pr->ctx, VIGIL_LOG_DEBUG, "no write notification (%s): disks "
			      "sampled every %lld ms, sooner while space falls", strerror(err),
			      (long long)pr->interval_ms);
		return;
	}
	pr->activity_fd = fd;
}

/* Trigger mode: recovered after two quiet windows and avg10 back below. */
static int64_t pr_psi_recover_cb(void *data)
{
	struct pr_psi *p = data;
	struct pressure *pr = p->pr;
	int64_t window_ms = p->window_us / 1000;
	int64_t quiet = pr->host->now_ms(pr->ctx) - p->last_trigger_ms;
	double avg;

	if (quiet < 2 * window_ms)
		return 2 * window_ms - quiet;
	if (pr_psi_avg10(p, &avg) < 0 || avg >= pr_psi_back(pr, p))
		return window_ms;
	p->alert = false;
	p->recover_timer = 0;
	pr_psi_report(pr, p, avg, true);
	return VIGIL_TIMER_DONE;
}

static void pr_psi_on_trigger(void *data, int fd, uint32_t revents)
{
	struct pr_psi *p = data;
	struct pressure *pr = p->pr;
	double avg;

	if (revents & EPOLLERR) {
		/* The trigger is gone (its cgroup was removed): sample instead. */
		pr->host->log(pr->ctx, VIGIL_LOG_WARN, "%s: %s: trigger failed; sampling avg10 "
			      "every %lld ms", p->key, p->file, (long long)pr->interval_ms);
		pr->host->unwatch_fd(pr->ctx, fd);
		close(fd);
		p->fd = -1;
		if (pr->timer <= 0)
			pr->timer = pr->host->add_timer(pr->ctx, pr->interval_ms, pr_tick, pr);
		return;
	}
	if (!(revents & EPOLLPRI))
		return;
	p->last_trigger_ms = pr->host->now_ms(pr->ctx);
	/* The trigger says the window's stall passed the threshold; that is the
	 * value to report if the file cannot be read. */
	if (pr_psi_avg10(p, &avg) < 0)
		avg = p->threshold;
	if (!p->alert) {
		p->alert = true;
		pr_psi_report(pr, p, avg, false);
	}
	if (p->recover_timer <= 0)
		p->recover_timer = pr->host->add_timer(pr->ctx, 2 * (p->window_us / 1000),
						       pr_psi_recover_cb, p);
}

/* Only a kernel PSI file takes a trigger; the proc_dir test seam is not one,
 * and writing a trigger into a plain file would clobber it. */
static int pr_psi_open_trigger(struct pr_psi *p)
{
	char trig[64];
	struct statfs sf;
	int n, fd = open(p->file, O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstatfs(fd, &sf) < 0 ||
	    (sf.f_type != (__typeof__(sf.f_type))PROC_SUPER_MAGIC &&
	     sf.f_type != (__typeof__(sf.f_type))CGROUP2_SUPER_MAGIC)) {
		close(fd);
		return -ENOTSUP;
	}
	n = snprintf(trig, sizeof(trig), "%s %lld %lld", p->full ? "full" : "some",
		     (long long)p->stall_us, (long long)p->window_us);
	if (write(fd, trig, (size_t)n + 1) < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	return fd;
}

static void pr_psi_start(struct pressure *pr, struct pr_psi *p)
{
	int rc, fd = pr_psi_open_trigger(p);

	if (fd >= 0) {
		rc = pr->host->watch_fd(pr->ctx, fd, EPOLLPRI, pr_psi_on_trigger, p);
		if (rc == 0) {
			p->fd = fd;
			pr->host->log(pr->ctx, VIGIL_LOG_INFO, "%s: kernel trigger \"%s %lld %lld\" on %s",
				      p->key, p->full ? "full" : "some", (long long)p->stall_us,
				      (long long)p->window_us, p->file);
			return;
		}
		close(fd);
		fd = rc;
	}
	pr->host->log(pr->ctx, VIGIL_LOG_INFO, "%s: no trigger on %s (%s); sampling avg10 every %lld ms",
		      p->key, p->file, strerror(-fd), (long long)pr->interval_ms);
}

/* ---------------------------------------------------------------- lifecycle */

static void pressure_destroy(void *instance)
{
	struct pressure *pr = instance;

	if (pr->timer > 0)
		pr->host->cancel_timer(pr->ctx, pr->timer);
	if (pr->activity_armed)
		pr->host->unwatch_fd(pr->ctx, pr->activity_fd);
	if (pr->activity_fd >= 0)
		close(pr->activity_fd);
	for (size_t i = 0; i < pr->n_psi; i++) {
		struct pr_psi *p = &pr->psi[i];

		if (p->recover_timer > 0)
			pr->host->cancel_timer(pr->ctx, p->recover_timer);
		if (p->fd >= 0) {
			pr->host->unwatch_fd(pr->ctx, p->fd);
			close(p->fd);
		}
		free(p->file);
		free(p->spec);
	}
	for (size_t i = 0; i < pr->n_checks; i++)
		free(pr->checks[i].path);
	free(pr->checks);
	free(pr->meminfo);
	free(pr->proc_dir);
	free(pr);
}

static int pressure_create(const struct vigil_host *host, struct vigil_ctx *ctx,
			   const struct vigil_config *cfg, void **instance, char *err,
			   size_t errlen)
{
	struct pressure *pr = calloc(1, sizeof(*pr));
	int rc;

	if (!pr)
		return -ENOMEM;
	pr->host = host;
	pr->ctx = ctx;
	pr->activity_fd = -1;
	rc = pr_parse(pr, cfg, err, errlen);
	if (rc < 0) {
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		pressure_destroy(pr);
		return rc;
	}
	*instance = pr;
	return 0;
}

static int pressure_start(void *instance, char *err, size_t errlen)
{
	struct pressure *pr = instance;
	bool sampled = pr->n_checks > 0;

	for (size_t i = 0; i < pr->n_psi; i++) {
		pr_psi_start(pr, &pr->psi[i]);
		sampled = sampled || pr->psi[i].fd < 0;
	}
	if (!sampled)
		return 0;
	pr->host->log(pr->ctx, VIGIL_LOG_DEBUG, "sampling every %lld ms", (long long)pr->interval_ms);
	pr_activity_open(pr);
	/* Due at once: the first sample is taken at start, then every interval. */
	pr->timer = pr->host->add_timer(pr->ctx, 0, pr_tick, pr);
	if (pr->timer < 0) {
		snprintf(err, errlen, "cannot add the sampling timer: %s", strerror((int)-pr->timer));
		return (int)pr->timer;
	}
	return 0;
}

static const struct vigil_option pressure_options[] = {
	{ "disk", VIGIL_OPT_STRING, VIGIL_OPTF_REPEATABLE, NULL,
	  "PATH:MIN_FREE, a size (5G) or a percent (5%) of free space" },
	{ "inodes", VIGIL_OPT_STRING, VIGIL_OPTF_REPEATABLE, NULL,
	  "PATH:MIN_FREE, a number or a percent of free inodes" },
	{ "memory", VIGIL_OPT_SIZE, 0, NULL,
	  "minimum MemAvailable, a size or a percent of MemTotal" },
	{ "psi_memory", VIGIL_OPT_STRING, 0, NULL,
	  "memory stall threshold per window, e.g. \"some 150ms/1s\"" },
	{ "psi_io", VIGIL_OPT_STRING, 0, NULL,
	  "io stall threshold per window, e.g. \"full 100ms/2s\"" },
	{ "interval", VIGIL_OPT_DURATION, 0, "10s",
	  "how often disk and memory are sampled; sooner while they fall fast" },
	{ "hysteresis", VIGIL_OPT_STRING, 0, "5%",
	  "margin past the threshold before \"recovered\"" },
	{ "proc_dir", VIGIL_OPT_PATH, 0, "/proc", "where meminfo and pressure/ are read" },
	{ NULL, 0, 0, NULL, NULL },
};

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_DETECTOR,
	     .name = "pressure",
	     .summary = "disk, inode and memory headroom and PSI stalls, with hysteresis",
	     .options = pressure_options,
	     .create = pressure_create,
	     .start = pressure_start,
	     .destroy = pressure_destroy);
