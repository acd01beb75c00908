/* The pressure detector, loaded as the built .so and driven through the fake
 * host. Memory and PSI read a fake proc_dir the tests rewrite; disk runs on a
 * real tmpfs when mounting is allowed, else relative to a temp folder's free
 * space.
 *
 * Proving that nothing was reported needs proof that a sample was taken: the
 * "sentinel" is psi_io sampled from the fake proc_dir, flipped above and below
 * its threshold at every step. Each step waits for the sentinel's event; the
 * other resources were sampled in the same tick, before PSI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fake_host.h"
#include "vigil/plugin.h"

#define WAIT_MS 5000
#define GIB (1024.0 * 1024 * 1024)
#define MIB (1024.0 * 1024)

static const struct vigil_plugin *plugin;

struct fx {
	char dir[64];    /* temp root */
	char proc[96];   /* the fake proc_dir */
	char mnt[96];    /* tmpfs mount point, when mounted */
	bool mounted;
	struct fake_host *fh;
	bool io_high;    /* the sentinel's state */
	int saved_stderr;
	char log[96];    /* captured stderr */
	/* config lines, built per test */
	char line[8][256];
	const char *lines[9];
	size_t n_lines;
};

/* ---------------------------------------------------------------- helpers */

static void write_file(const char *path, const char *text)
{
	char tmp[256];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static void write_meminfo(struct fx *f, double total, double avail)
{
	char path[160], text[512];

	snprintf(path, sizeof(path), "%s/meminfo", f->proc);
	snprintf(text, sizeof(text),
		 "MemTotal:       %.0f kB\nMemFree:          123456 kB\n"
		 "MemAvailable:   %.0f kB\nBuffers:            1024 kB\n",
		 total / 1024, avail / 1024);
	write_file(path, text);
}

static void write_psi(struct fx *f, const char *res, double some, double full)
{
	char path[160], text[512];

	snprintf(path, sizeof(path), "%s/pressure/%s", f->proc, res);
	snprintf(text, sizeof(text),
		 "some avg10=%.2f avg60=1.00 avg300=0.50 total=123456\n"
		 "full avg10=%.2f avg60=0.50 avg300=0.25 total=65432\n",
		 some, full);
	write_file(path, text);
}

__attribute__((format(printf, 2, 3))) static void add_line(struct fx *f, const char *fmt, ...)
{
	va_list ap;

	assert_true(f->n_lines < 8);
	va_start(ap, fmt);
	vsnprintf(f->line[f->n_lines], sizeof(f->line[0]), fmt, ap);
	va_end(ap);
	f->lines[f->n_lines] = f->line[f->n_lines];
	f->lines[++f->n_lines] = NULL;
}

/* proc_dir and a 100ms interval, the base of every sampled test. */
static void add_base(struct fx *f)
{
	add_line(f, "proc_dir = %s", f->proc);
	add_line(f, "interval = %s", "100ms");
}

static void instantiate(struct fx *f)
{
	void *inst;
	int rc = fake_host_instantiate(f->fh, plugin, f->lines, &inst);

	if (rc < 0)
		fprintf(stderr, "instantiate: %s\n", fake_host_last_error(f->fh));
	assert_int_equal(rc, 0);
	assert_non_null(inst);
}

static const char *ev_str(const struct fake_event *e, const char *name)
{
	const struct vigil_field *v = fake_event_field(e, name);

	assert_non_null(v);
	if (v->type == VIGIL_FIELD_NULL)
		return NULL;
	assert_int_equal(v->type, VIGIL_FIELD_STRING);
	return v->u.s.ptr;
}

static double ev_num(const struct fake_event *e, const char *name)
{
	const struct vigil_field *v = fake_event_field(e, name);

	assert_non_null(v);
	assert_int_equal(v->type, VIGIL_FIELD_DOUBLE);
	return v->u.d;
}

/* Events of `kind` about `resource` at index >= from. */
static size_t count(struct fx *f, const char *kind, const char *resource, size_t from)
{
	size_t n = 0;

	for (size_t i = from; i < fake_host_n_events(f->fh); i++) {
		const struct fake_event *e = fake_host_event(f->fh, i);

		if (strcmp(e->kind, kind) == 0 && strcmp(ev_str(e, "resource"), resource) == 0)
			n++;
	}
	return n;
}

struct psi_wait {
	size_t from;
	const char *kind;
};

static bool pred_psi(struct fake_host *fh, void *arg)
{
	struct psi_wait *w = arg;

	for (size_t i = w->from; i < fake_host_n_events(fh); i++) {
		const struct fake_event *e = fake_host_event(fh, i);
		const struct vigil_field *r = fake_event_field(e, "resource");

		if (strcmp(e->kind, w->kind) == 0 && r && r->type == VIGIL_FIELD_STRING &&
		    strcmp(r->u.s.ptr, "psi") == 0)
			return true;
	}
	return false;
}

/* Flip the sentinel and wait for its event: one more tick has run. */
static void step(struct fx *f)
{
	struct psi_wait w = { fake_host_n_events(f->fh), NULL };

	f->io_high = !f->io_high;
	w.kind = f->io_high ? VIGIL_EV_PRESSURE : VIGIL_EV_RECOVERED;
	write_psi(f, "io", f->io_high ? 50 : 0, 0);
	assert_true(fake_host_run_until(f->fh, pred_psi, &w, WAIT_MS));
}

static void add_sentinel(struct fx *f)
{
	add_line(f, "psi_io = %s", "some 100ms/1s");
}

static void capture_stderr(struct fx *f)
{
	int fd;

	snprintf(f->log, sizeof(f->log), "%s/stderr.log", f->dir);
	fflush(stderr);
	f->saved_stderr = dup(STDERR_FILENO);
	fd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(f->saved_stderr >= 0 && fd >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static void restore_stderr(struct fx *f)
{
	if (f->saved_stderr < 0)
		return;
	fflush(stderr);
	dup2(f->saved_stderr, STDERR_FILENO);
	close(f->saved_stderr);
	f->saved_stderr = -1;
}

/* How often `needle` occurs in the captured stderr (echoed for the test log). */
static int log_count(struct fx *f, const char *needle)
{
	static char text[65536];
	int n = 0, fd = open(f->log, O_RDONLY | O_CLOEXEC);
	ssize_t len;

	assert_true(fd >= 0);
	len = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(len >= 0);
	text[len] = '\0';
	for (const char *s = text; (s = strstr(s, needle)) != NULL; s++)
		n++;
	return n;
}

/* ---------------------------------------------------------------- fixture */

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char path[160];

	if (!f)
		return -1;
	f->saved_stderr = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigil-pressure-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->proc, sizeof(f->proc), "%s/proc", f->dir);
	snprintf(path, sizeof(path), "%s/pressure", f->proc);
	if (mkdir(f->proc, 0755) < 0 || mkdir(path, 0755) < 0)
		return -1;
	f->fh = fake_host_new();
	f->lines[0] = NULL;
	*state = f;
	write_meminfo(f, 8 * GIB, 4 * GIB);
	write_psi(f, "memory", 0, 0);
	write_psi(f, "io", 0, 0);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	const char *files[] = { "proc/meminfo", "proc/pressure/memory", "proc/pressure/io",
				"proc/pressure", "proc", "stderr.log", "missing", "mnt", NULL };
	char path[192];

	restore_stderr(f);
	fake_host_free(f->fh); /* destroys the instances first */
	if (f->mounted && umount2(f->mnt, MNT_DETACH) < 0)
		perror("umount tmpfs");
	for (size_t i = 0; files[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
		if (unlink(path) < 0 && errno != ENOENT)
			rmdir(path);
	}
	if (rmdir(f->dir) < 0)
		perror(f->dir);
	free(f);
	return 0;
}

/* ------------------------------------------------------------------ tests */

/* below -> pressure once; still below -> nothing; within the hysteresis ->
 * nothing; well above -> recovered once. */
static void test_memory_hysteresis(void **state)
{
	struct fx *f = *state;
	const struct fake_event *e;
	size_t at;

	add_base(f);
	add_line(f, "memory = %s", "1G");
	add_sentinel(f);
	instantiate(f);
	step(f);
	assert_int_equal(count(f, VIGIL_EV_PRESSURE, "memory", 0), 0);

	write_meminfo(f, 8 * GIB, 512 * MIB);
	at = fake_host_n_events(f->fh);
	step(f);
	assert_int_equal(count(f, VIGIL_EV_PRESSURE, "memory", at), 1);
	e = fake_host_event(f->fh, at);
	assert_string_equal(e->kind, VIGIL_EV_PRESSURE);
	assert_string_equal(ev_str(e, "resource"), "memory");
	assert_null(ev_str(e, "path"));
	assert_true(ev_num(e, "value") == 512 * MIB);
	assert_true(ev_num(e, "threshold") == GIB);
	assert_string_equal(ev_str(e, "unit"), "bytes");
	assert_string_equal(e->message, "memory: 512 MB available, below 1 GB");

	write_meminfo(f, 8 * GIB, 600 * MIB);
	at = fake_host_n_events(f->fh);
	step(f);
	write_meminfo(f, 8 * GIB, 1.02 * GIB); /* above, inside 5% hysteresis */
	step(f);
	assert_int_equal(fake_host_n_events(f->fh), at + 2); /* the sentinel only */

	write_meminfo(f, 8 * GIB, 2 * GIB);
	step(f);
	assert_int_equal(count(f, VIGIL_EV_RECOVERED, "memory", at), 1);
	e = fake_host_event(f->fh, at + 2);
	assert_string_equal(e->kind, VIGIL_EV_RECOVERED);
	assert_string_equal(ev_str(e, "resource"), "memory");
	assert_true(ev_num(e, "value") == 2 * GIB);
	assert_string_equal(e->message, "memory: 2 GB available, back above 1 GB");
	at = fake_host_n_events(f->fh);
	step(f);
	assert_int_equal(fake_host_n_events(f->fh), at + 1);
}

static void test_memory_percent(void **state)
{
	struct fx *f = *state;
	const struct fake_event *e;

	write_meminfo(f, 8 * GIB, 512 * MIB);
	add_base(f);
	add_line(f, "memory = %s", "10%");
	instantiate(f);
	assert_true(fake_host_wait_events(f->fh, 1, WAIT_MS));
	e = fake_host_event(f->fh, 0);
	assert_string_equal(e->kind, VIGIL_EV_PRESSURE);
	assert_true(ev_num(e, "value") == 6.25);
	assert_true(ev_num(e, "threshold") == 10);
	assert_string_equal(ev_str(e, "unit"), "percent");

	write_meminfo(f, 8 * GIB, 896 * MIB); /* 10.9375%: above 10.5% */
	assert_true(fake_host_wait_events(f->fh, 2, WAIT_MS));
	e = fake_host_event(f->fh, 1);
	assert_string_equal(e->kind, VIGIL_EV_RECOVERED);
	assert_true(ev_num(e, "value") == 10.9375);
}

/* The threshold is shown with the value's precision, one more decimal until
 * the two differ: never "22 GB available, below 22 GB". */
static void test_message_precision(void **state)
{
	struct fx *f = *state;

	write_meminfo(f, 64 * GIB, 21.98 * GIB);
	add_base(f);
	add_line(f, "memory = %s", "22G");
	instantiate(f);
	assert_true(fake_host_wait_events(f->fh, 1, WAIT_MS));
	assert_string_equal(fake_host_event(f->fh, 0)->message,
			    "memory: 21.98 GB available, below 22.00 GB");
	assert_null(fake_event_field(fake_host_event(f->fh, 0), "eta_full"));

	write_meminfo(f, 64 * GIB, 23.2 * GIB);
	assert_true(fake_host_wait_events(f->fh, 2, WAIT_MS));
	assert_string_equal(fake_host_event(f->fh, 1)->message,
			    "memory: 23 GB available, back above 22 GB");

	write_meminfo(f, 64 * GIB, 21.6 * GIB);
	assert_true(fake_host_wait_events(f->fh, 3, WAIT_MS));
	assert_string_equal(fake_host_event(f->fh, 2)->message,
			    "memory: 21.6 GB available, below 22.0 GB");
}

static void test_message_precision_percent(void **state)
{
	struct fx *f = *state;

	write_meminfo(f, 8 * GIB, 0.0996 * 8 * GIB);
	add_base(f);
	add_line(f, "memory = %s", "10%");
	instantiate(f);
	assert_true(fake_host_wait_events(f->fh, 1, WAIT_MS));
	assert_string_equal(fake_host_event(f->fh, 0)->message,
			    "memory: 9.96% available, below 10.00%");
}

/* A fake proc_dir takes no trigger: both PSI resources fall back to sampling
 * avg10, each from its own line (some or full). */
static void test_psi_sampling_fallback(void **state)
{
	struct fx *f = *state;
	const struct fake_event *e;
	char path[160];

	write_psi(f, "memory", 50, 5);
	write_psi(f, "io", 90, 30);
	add_base(f);
	add_line(f, "psi_memory = %s", "some 150ms/1s");
	add_line(f, "psi_io = %s", "full 200000 2000000"); /* the kernel's syntax */
	capture_stderr(f);
	instantiate(f);
	assert_true(fake_host_wait_events(f->fh, 2, WAIT_MS));

	e = fake_host_event(f->fh, 0);
	snprintf(path, sizeof(path), "%s/pressure/memory", f->proc);
	assert_string_equal(e->kind, VIGIL_EV_PRESSURE);
	assert_string_equal(ev_str(e, "resource"), "psi");
	assert_string_equal(ev_str(e, "path"), path);
	assert_string_equal(ev_str(e, "unit"), "percent");
	assert_true(ev_num(e, "value") == 50);
	assert_true(ev_num(e, "threshold") == 15);
	e = fake_host_event(f->fh, 1);
	assert_string_equal(e->kind, VIGIL_EV_PRESSURE);
	assert_true(ev_num(e, "value") == 30);
	assert_true(ev_num(e, "threshold") == 10);

	/* memory 14.5% stays inside the hysteresis (15 / 1.05 = 14.29); io 9% recovers
	 * (10 / 1.05 = 9.52) */
	write_psi(f, "memory", 14.5, 0);
	write_psi(f, "io", 90, 9);
	assert_true(fake_host_wait_events(f->fh, 3, WAIT_MS));
	e = fake_host_event(f->fh, 2);
	assert_string_equal(e->kind, VIGIL_EV_RECOVERED);
	assert_true(ev_num(e, "value") == 9);

	write_psi(f, "memory", 1, 0);
	assert_true(fake_host_wait_events(f->fh, 4, WAIT_MS));
	e = fake_host_event(f->fh, 3);
	assert_string_equal(e->kind, VIGIL_EV_RECOVERED);
	assert_string_equal(ev_str(e, "path"), path);
	assert_true(ev_num(e, "value") == 1);
	restore_stderr(f);
	assert_int_equal(log_count(f, "psi_memory: no trigger on"), 1);
	assert_int_equal(log_count(f, "psi_io: no trigger on"), 1);
	assert_int_equal(log_count(f, "kernel trigger"), 0);
}

/* With the real /proc the plugin sets a kernel trigger exactly when the
 * kernel accepts one (probed here the same way), and says which mode it uses. */
static void test_psi_real_proc(void **state)
{
	struct fx *f = *state;
	const char trig[] = "some 2000000 2000000";
	int fd = open("/proc/pressure/memory", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	bool kernel = fd >= 0 && write(fd, trig, sizeof(trig)) == (ssize_t)sizeof(trig);

	if (fd >= 0)
		close(fd);
	print_message("real PSI: %s\n", kernel ? "kernel trigger" : "sampling fallback");
	add_line(f, "psi_memory = %s", "some 2s/2s");
	capture_stderr(f);
	instantiate(f);
	restore_stderr(f);
	assert_int_equal(log_count(f, "kernel trigger \"some 2000000 2000000\""), kernel ? 1 : 0);
	assert_int_equal(log_count(f, "no trigger on"), kernel ? 0 : 1);
}

static void disk_tmpfs(struct fx *f)
{
	const struct fake_event *e;
	char file[160];
	static char block[1 << 20];
	int fd;

	add_line(f, "disk = %s:%s", f->mnt, "8M");
	add_line(f, "disk = %s:%s", f->mnt, "40%");
	instantiate(f);
	snprintf(file, sizeof(file), "%s/fill", f->mnt);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	memset(block, 'x', sizeof(block));
	for (int i = 0; i < 10; i++)
		assert_int_equal(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	close(fd);

	assert_true(fake_host_wait_events(f->fh, 2, WAIT_MS));
	e = fake_host_event(f->fh, 0);
	assert_string_equal(e->kind, VIGIL_EV_PRESSURE);
	assert_string_equal(ev_str(e, "resource"), "disk");
	assert_string_equal(ev_str(e, "path"), f->mnt);
	assert_string_equal(ev_str(e, "unit"), "bytes");
	assert_true(ev_num(e, "threshold") == 8 * MIB);
	assert_true(ev_num(e, "value") <= 6 * MIB);
	e = fake_host_event(f->fh, 1);
	assert_string_equal(e->kind, VIGIL_EV_PRESSURE);
	assert_string_equal(ev_str(e, "unit"), "percent");
	assert_true(ev_num(e, "threshold") == 40);
	assert_true(ev_num(e, "value") <= 37.5);

	assert_int_equal(unlink(file), 0);
	assert_true(fake_host_wait_events(f->fh, 4, WAIT_MS));
	for (size_t i = 2; i < 4; i++) {
		e = fake_host_event(f->fh, i);
		assert_string_equal(e->kind, VIGIL_EV_RECOVERED);
		assert_string_equal(ev_str(e, "resource"), "disk");
	}
	assert_true(ev_num(fake_host_event(f->fh, 2), "value") >= 15 * MIB);
	assert_true(ev_num(fake_host_event(f->fh, 3), "value") >= 90);
}

/* No mount privilege: a threshold above the current free space crosses at
 * once, a tiny one (sampled first, in the same tick) never does. */
static void disk_relative(struct fx *f)
{
	struct statvfs st;
	char huge[64];
	const struct fake_event *e;
	double free_bytes;

	assert_int_equal(statvfs(f->dir, &st), 0);
	free_bytes = (double)st.f_bavail * (double)st.f_frsize;
	snprintf(huge, sizeof(huge), "%.0f", free_bytes + GIB);
	add_line(f, "disk = %s:%s", f->dir, "1K");
	add_line(f, "disk = %s:%s", f->dir, huge);
	instantiate(f);
	assert_true(fake_host_wait_events(f->fh, 1, WAIT_MS));
	e = fake_host_event(f->fh, 0);
	assert_string_equal(e->kind, VIGIL_EV_PRESSURE);
	assert_string_equal(ev_str(e, "path"), f->dir);
	assert_true(ev_num(e, "threshold") == free_bytes + GIB);
	assert_true(ev_num(e, "value") < free_bytes + GIB);
	assert_int_equal(fake_host_n_events(f->fh), 1);
}

static void test_disk_crossing(void **state)
{
	struct fx *f = *state;

	add_base(f);
	snprintf(f->mnt, sizeof(f->mnt), "%s/mnt", f->dir);
	assert_int_equal(mkdir(f->mnt, 0755), 0);
	if (geteuid() == 0 &&
	    mount("tmpfs", f->mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m") == 0) {
		f->mounted = true;
		print_message("disk: a 16 MiB tmpfs, filled and emptied\n");
		disk_tmpfs(f);
	} else {
		print_message("disk: no mount (%s); thresholds relative to free space\n",
			      geteuid() == 0 ? strerror(errno) : "not root");
		disk_relative(f);
	}
}

/* A missing path is logged once, once again when it appears, and never
 * reported as pressure. */
static void test_disk_missing_path(void **state)
{
	struct fx *f = *state;
	char missing[128], needle[192];

	snprintf(missing, sizeof(missing), "%s/missing", f->dir);
	add_base(f);
	add_line(f, "disk = %s:%s", missing, "1K");
	add_sentinel(f);
	capture_stderr(f);
	instantiate(f);
	step(f);
	step(f);
	step(f);
	assert_int_equal(mkdir(missing, 0755), 0);
	step(f);
	step(f);
	restore_stderr(f);
	snprintf(needle, sizeof(needle), "disk %s: No such file or directory", missing);
	assert_int_equal(log_count(f, needle), 1);
	snprintf(needle, sizeof(needle), "disk %s: readable again", missing);
	assert_int_equal(log_count(f, needle), 1);
	assert_int_equal(count(f, VIGIL_EV_PRESSURE, "disk", 0), 0);
	assert_int_equal(count(f, VIGIL_EV_RECOVERED, "disk", 0), 0);
}

static void test_inodes(void **state)
{
	struct fx *f = *state;
	struct statvfs st;
	char n[64];
	const struct fake_event *e;

	assert_int_equal(statvfs(f->dir, &st), 0);
	if (st.f_files == 0) {
		print_message("inodes: %s reports no inode total\n", f->dir);
		skip();
	}
	snprintf(n, sizeof(n), "%.0f", (double)st.f_favail + 1e6);
	add_base(f);
	add_line(f, "inodes = %s:%s", f->dir, "100%");
	add_line(f, "inodes = %s:%s", f->dir, n);
	instantiate(f);
	assert_true(fake_host_wait_events(f->fh, 2, WAIT_MS));
	e = fake_host_event(f->fh, 0);
	assert_string_equal(e->kind, VIGIL_EV_PRESSURE);
	assert_string_equal(ev_str(e, "resource"), "inodes");
	assert_string_equal(ev_str(e, "unit"), "percent");
	assert_true(ev_num(e, "value") < 100);
	e = fake_host_event(f->fh, 1);
	assert_string_equal(ev_str(e, "unit"), "count");
	assert_true(ev_num(e, "threshold") == (double)st.f_favail + 1e6);
	assert_non_null(strstr(e->message, " inodes free, below "));
}

static void test_bad_options(void **state)
{
	static const struct {
		const char *line, *want;
	} cases[] = {
		{ "disk = /data", "disk: \"/data\" lacks \":MIN_FREE\" (e.g. /data:5%)" },
		{ "disk = /data:5X", "disk: \"/data:5X\": bad MIN_FREE \"5X\"" },
		{ "disk = /data:150%", "disk: \"/data:150%\"" },
		{ "disk = /data:", "disk: \"/data:\"" },
		{ "disk = :5G", "disk: \":5G\" has an empty PATH" },
		{ "disk = /data: 5G", "disk: \"/data: 5G\"" },
		{ "inodes = /data:1.5", "inodes: \"/data:1.5\"" },
		{ "disk = /data:1.5G", "disk: \"/data:1.5G\"" },
		{ "disk = /data:5g", "disk: \"/data:5g\"" },
		{ "disk = /data:0%", "disk: \"/data:0%\"" },
		{ "inodes = /data:5G", "inodes: \"/data:5G\"" },
		{ "psi_memory = some 150ms", "psi_memory: \"some 150ms\"" },
		{ "psi_memory = half 150ms/1s", "psi_memory: \"half 150ms/1s\"" },
		{ "psi_memory = some 2s/1s", "psi_memory: \"some 2s/1s\": the stall" },
		{ "psi_io = full 100ms/20s", "psi_io: \"full 100ms/20s\": the window" },
		{ "psi_io = full 100 100000", "psi_io: \"full 100 100000\": the window" },
		{ "psi_io = full 0ms/1s", "psi_io: \"full 0ms/1s\": the stall" },
		{ "hysteresis = lots", "hysteresis: \"lots\"" },
		{ "interval = 1ms", "interval: \"1ms\"" },
		{ "interval = 1s", "nothing to watch" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct fake_host *fh = fake_host_new();
		const char *lines[] = { cases[i].line, "disk = /:1K", NULL };
		void *inst;

		if (strncmp(cases[i].line, "interval = 1s", 13) == 0)
			lines[1] = NULL;
		assert_int_equal(fake_host_instantiate(fh, plugin, lines, &inst), -EINVAL);
		if (!strstr(fake_host_last_error(fh), cases[i].want))
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].line,
				 fake_host_last_error(fh), cases[i].want);
		fake_host_free(fh);
	}
}

/* create() accepts every documented form and touches nothing. */
static void test_good_options(void **state)
{
	const char *const lines[] = {
		"disk = /data:5G", "disk = /a:b:15GiB", "disk = /data:5%", "disk = /x:4096",
		"disk = /x:512K", "inodes = /data:10000", "inodes = /data:5%",
		"memory = 10%", "psi_memory = some 150ms/1s", "psi_io = full  100000\t2000000",
		"hysteresis = 0%", "interval = 10ms", "proc_dir = /nonexistent", NULL,
	};
	struct fake_host *fh = fake_host_new();
	const struct vigil_config *cfg = fake_host_config(fh, plugin, lines);
	char err[256] = "";
	void *inst = NULL;

	(void)state;
	assert_non_null(cfg);
	if (plugin->create(fake_host_api(fh), fake_host_ctx(fh), cfg, &inst, err, sizeof(err)))
		fail_msg("create: %s", err);
	assert_int_equal(fake_host_n_events(fh), 0);
	plugin->destroy(inst);
	assert_null(plugin->settle);
	assert_int_equal(fake_host_criteria(fh), 0);
	fake_host_free(fh);
}

/* ------------------------------------------------------------------- main */

static int group_setup(void **state)
{
	const char *so = getenv("VIGIL_TEST_PLUGIN");

	(void)state;
	plugin = fake_host_load_plugin(so);
	if (plugin->abi_version != VIGIL_PLUGIN_ABI_VERSION ||
	    strcmp(plugin->name, "pressure") != 0) {
		fprintf(stderr, "%s: not the pressure plugin\n", so);
		return -1;
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_memory_hysteresis, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_percent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_psi_sampling_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_psi_real_proc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_crossing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_missing_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inodes, setup, teardown),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_good_options),
		cmocka_unit_test_setup_teardown(test_message_precision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_precision_percent, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
