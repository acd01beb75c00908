/* One monitor run in the foreground (vigil watch) or in the supervisor (vigil
 * run): loop, plugins, engine, monitor; the live line on a terminal; waiting for
 * deliveries before exiting. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build_config.h"
#include "cli_session.h"
#include "base/buf.h"
#include "base/event_json_decode.h"
#include "base/journal.h"
#include "base/log.h"
#include "base/record.h"
#include "base/state.h"
#include "engine/spool.h"

static void live_clear(struct session *s)
{
	if (s->live_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		s->live_shown = false;
	}
}

static void live_draw(struct session *s)
{
	char el[32], bar[64] = "";
	int64_t elapsed = monitor_elapsed_ms(s->m), expected = monitor_expected_ms(s->m);
	double pct = monitor_progress(s->m);
	int cols = 20;

	if (!s->live || monitor_done(s->m))
		return;
	if (pct < 0 && expected > 0)
		pct = 100.0 * (double)elapsed / (double)expected;
	if (pct >= 0) {
		int fill = pct >= 100 ? cols : (int)(pct * cols / 100);
		char *w = bar;

		*w++ = '[';
		for (int i = 0; i < cols; i++)
			*w++ = i < fill ? '#' : '-';
		snprintf(w, sizeof(bar) - (size_t)(w - bar), "] %3.0f%%%s", pct,
			 expected > 0 && elapsed > expected ? " overdue" : "");
	}
	char pid[32] = "";

	if (monitor_pid(s->m) > 0) /* none for a run of detectors only, or not yet */
		snprintf(pid, sizeof(pid), "  pid %d", (int)monitor_pid(s->m));
	fprintf(stderr, "\r\033[K%s%s  %s  %s  %.60s", monitor_name(s->m), pid,
		cli_format_elapsed(elapsed, el, sizeof(el)), bar, monitor_last_event(s->m));
	fflush(stderr);
	s->live_shown = true;
}

static int64_t live_tick(struct loop *loop, int64_t id, void *data)
{
	struct session *s = data;

	(void)loop;
	(void)id;
	live_draw(s);
	return monitor_done(s->m) ? LOOP_TIMER_DONE : 1000;
}

static void before_record(void *data, struct monitor *m, const struct vigil_record *rec)
{
	(void)m;
	(void)rec;
	live_clear(data);
}

static void after_record(void *data, struct monitor *m, const struct vigil_record *rec)
{
	(void)m;
	(void)rec;
	live_draw(data);
}

static void monitor_is_done(void *data, struct monitor *m)
{
	struct session *s = data;

	(void)m;
	live_clear(s);
	s->done = true;
	loop_stop(s->loop);
}

/* vigil run's supervisor is the job's parent: the kernel tells it when the job
 * stops and continues (SIGCHLD). Only stop/continue are collected here; the
 * exit is the pid detector's (no WEXITED: nothing is reaped). */
static void on_child(struct loop *loop, int signo, void *data)
{
	struct session *s = data;
	pid_t pid = monitor_pid(s->m);
	siginfo_t si;

	(void)loop;
	(void)signo;
	while (pid > 0 && (memset(&si, 0, sizeof(si)),
			   waitid(P_PID, (id_t)pid, &si, WSTOPPED | WCONTINUED | WNOHANG)) == 0 &&
	       si.si_pid == pid) {
		if (si.si_code == CLD_STOPPED || si.si_code == CLD_TRAPPED)
			monitor_stopped(s->m, true, si.si_status);
		else if (si.si_code == CLD_CONTINUED)
			monitor_stopped(s->m, false, 0);
		else
			break;
	}
}

static void on_signal(struct loop *loop, int signo, void *data)
{
	struct session *s = data;

	/* vigil stop between two attempts: the run ends here, failed, and the
	 * loop goes on to tell it (monitor_is_done stops it). */
	if (signo == SIGTERM &&
	    monitor_end_retrying(s->m, "stopped during the retry delay") == 0)
		return;
	live_clear(s);
	s->signo = signo;
	loop_stop(loop);
}

/* The notifiers of vigil.ini ($VIGIL_CONFIG, or the system one when it
 * exists), so `--notify oncall` works in watch and run as in the agent; its
 * spool_dir too, unless --state-dir DIR isolates everything under DIR. */
int session_load_agent_ini(struct agent_config *ac, struct diag *d)
{
	const char *env = getenv("VIGIL_CONFIG");
	char path[PATH_MAX];
	struct raw_ini ini = {0};
	int r;

	snprintf(path, sizeof(path), "%s", env && *env ? env : VIGIL_SYSCONFDIR "/vigil/vigil.ini");
	if (!(env && *env) && access(path, R_OK) != 0)
		return 0;
	r = config_read_ini(path, &ini, d);
	if (r == 0 && d->errors == 0)
		r = config_load_agent(&ini, ac, d);
	raw_ini_free(&ini);
	return r || d->errors ? -EINVAL : 0;
}

const char *session_spool_dir(const char *ini_spool, char *buf, size_t len)
{
	const char *state = cli_globals.state_dir ? cli_globals.state_dir : getenv("VIGIL_STATE_DIR");

	if (state && *state)
		snprintf(buf, len, "%s/spool", state);
	else if (ini_spool)
		snprintf(buf, len, "%s", ini_spool);
	else
		spool_default_dir(buf, len);
	return buf;
}

static int define_notifiers(struct session *s, struct agent_config *ac, struct diag *d)
{
	for (size_t i = 0; i < ac->n_notifiers; i++)
		if (engine_define_notifier(s->engine, ac->file, &ac->notifiers[i], d))
			return -EINVAL;
	return 0;
}

int session_open(struct session *s, struct cli_job *job, const char *state_dir)
{
	char dirbuf[PATH_MAX], err[512], spool[PATH_MAX];
	struct engine_options opt = {.state_dir = state_dir};
	struct agent_config ac = {0};
	struct diag d = {0};
	const char *dir = plugin_default_dir(cli_globals.plugin_dir, dirbuf, sizeof(dirbuf));

	memset(s, 0, sizeof(*s));
	s->state_dir = state_dir;
	if (plugin_dir_check(dir, err, sizeof(err)) != 0) {
		fprintf(stderr, "vigil: %s\n", err);
		return EXIT_USAGE;
	}
	if (session_load_agent_ini(&ac, &d) != 0) {
		diag_print(&d, stderr);
		diag_free(&d);
		agent_config_free(&ac);
		return EXIT_USAGE;
	}
	opt.spool_dir = session_spool_dir(ac.spool_dir, spool, sizeof(spool));
	s->loop = loop_new();
	if (!s->loop)
		return agent_config_free(&ac), EXIT_USAGE;
	plugin_set_init(&s->plugins, dir);
	plugin_set_add_path(&s->plugins, ac.plugin_path);
	s->engine = engine_new(s->loop, &s->plugins, &opt);
	if (!s->engine || define_notifiers(s, &ac, &d)) {
		diag_print(&d, stderr);
		diag_free(&d);
		agent_config_free(&ac);
		return EXIT_USAGE;
	}
	agent_config_free(&ac);
	s->mc = &job->mc;
	s->m = monitor_new(s->engine, &job->mc, &d);
	diag_print(&d, stderr);
	diag_free(&d);
	if (!s->m)
		return EXIT_USAGE;
	struct engine_hooks hooks = {.before_record = before_record, .after_record = after_record,
				     .monitor_done = monitor_is_done, .data = s};
	engine_set_hooks(s->engine, &hooks);
	loop_add_signal(s->loop, SIGINT, on_signal, s);
	loop_add_signal(s->loop, SIGTERM, on_signal, s);
	loop_add_signal(s->loop, SIGHUP, on_signal, s);
	if (job->mc.command)
		loop_add_signal(s->loop, SIGCHLD, on_child, s);
	/* A notifier writing to a closed pipe must get EPIPE, not die. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int session_pending_path(const char *dir, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.pending", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A spec as vigil status may show it: a URL or address can hold a secret. */
static void spec_label(const char *spec, char *buf, size_t len)
{
	const char *colon = strchr(spec, ':');
	int n = colon ? (int)(colon - spec) : (int)strlen(spec);

	snprintf(buf, len, "%.*s%s", n, spec, colon ? ":..." : "");
}

/* STATE/NAME.pending as it is now (removed at 0): vigil status reads it while
 * this process lives. Rewritten only when the count changed. */
static void pending_publish(struct session *s)
{
	size_t total = engine_pending(s->engine);
	char path[PATH_MAX], tmp[PATH_MAX + 8], label[64];
	struct diag d = {0};
	FILE *f;

	if (!s->state_dir || total == s->pending_shown ||
	    session_pending_path(s->state_dir, monitor_name(s->m), path, sizeof(path)))
		return;
	s->pending_shown = total;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (total == 0 || !(f = fopen(tmp, "we"))) {
		unlink(path);
		return;
	}
	for (size_t i = 0; i < s->mc->n_notify; i++) {
		struct notifier *n = engine_notifier(s->engine, s->mc->notify[i], "", 0, &d);

		spec_label(s->mc->notify[i], label, sizeof(label));
		if (n && notifier_pending(n))
			fprintf(f, "%zu %s\n", notifier_pending(n), label);
	}
	diag_free(&d);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		unlink(tmp);
}

/* Nothing left to show once this process stops delivering (what it leaves
 * in the spool is the spool's to count). */
static void pending_clear(struct session *s)
{
	char path[PATH_MAX];

	if (s->pending_shown && s->state_dir &&
	    session_pending_path(s->state_dir, monitor_name(s->m), path, sizeof(path)) == 0)
		unlink(path);
	s->pending_shown = 0;
}

/* Deliveries still pending after the run: until each is delivered or
 * dead-lettered (deadline_ms < 0: vigil run's supervisor, which nobody waits
 * for), else up to the deadline, leaving the rest in the spool for the agent
 * or the next run. No polling: the loop sleeps until a delivery answers or a
 * backoff timer fires. */
static void drain_deliveries(struct session *s, int64_t timeout_ms)
{
	int64_t deadline = loop_clock_ms() + timeout_ms;

	while (engine_pending(s->engine) > 0 && s->signo == 0) {
		int64_t left = deadline - loop_clock_ms();

		pending_publish(s);
		if (timeout_ms >= 0 && left <= 0) {
			log_warnx("%zu notification(s) not delivered within %lld ms; left for retry",
				  engine_pending(s->engine), (long long)timeout_ms);
			break;
		}
		loop_run_once(s->loop, timeout_ms < 0 ? -1 : (int)(left > INT_MAX ? INT_MAX : left));
	}
	pending_clear(s);
}

int session_run(struct session *s, bool live)
{
	char err[512] = "";

	s->live = live;
	/* s->done already: vigil run --after ended the run before its start */
	if (!s->done && monitor_start(s->m, err, sizeof(err)) != 0) {
		fprintf(stderr, "vigil: %s: %s\n", monitor_name(s->m), err);
		if (s->started)
			s->started(s, err, s->started_arg);
		return EXIT_USAGE;
	}
	if (s->started && !s->done)
		s->started(s, NULL, s->started_arg);
	monitor_wait_begins(s->m);
	if (live && !s->done)
		loop_add_timer(s->loop, 1000, live_tick, s, NULL);
	if (!s->done)
		loop_run(s->loop);
	live_clear(s);
	drain_deliveries(s, s->outlive ? -1 : s->mc->deliver_timeout_ms);
	if (s->signo)
		return 128 + s->signo;
	return outcome_exit_status(monitor_last_outcome(s->m));
}

void session_close(struct session *s)
{
	monitor_free(s->m);
	engine_free(s->engine);
	plugin_set_free(&s->plugins);
	if (s->loop)
		loop_free(s->loop);
}

/* ------------------------------------------------------------ following */
/* vigil watch NAME and vigil logs -f NAME read what the run's owner wrote: the
 * event journal (and the job's log), woken by inotify; the owner's pidfd says
 * when nothing more will come. The outcome is the owner's `finished` event. */

struct follow {
	struct loop *loop;
	struct plugin_set plugins;
	struct engine *engine;
	struct notifier **nots;
	size_t n_nots;
	const char *dir, *name;
	char jpath[PATH_MAX];
	int ino, jfd, owner_fd, lfd;
	ino_t jino, lino;
	off_t loff;
	const char *log; /* logs -f: the log to copy out */
	struct buf line;
	bool finished, owner_gone;
	int signo;
	enum outcome outcome;
	char outcome_line[700];
};

static enum outcome outcome_from_name(const char *s, size_t len)
{
	for (enum outcome o = OUTCOME_SUCCEEDED; o <= OUTCOME_UNKNOWN; o++)
		if (strlen(outcome_name(o)) == len && memcmp(outcome_name(o), s, len) == 0)
			return o;
	return OUTCOME_UNKNOWN;
}

static void follow_finished(struct follow *f, const struct vigil_event *ev)
{
	const struct vigil_field *o = event_field(ev, "outcome");

	f->finished = true;
	f->outcome = o && o->type == VIGIL_FIELD_STRING ? outcome_from_name(o->u.s.ptr, o->u.s.len)
							 : OUTCOME_UNKNOWN;
	snprintf(f->outcome_line, sizeof(f->outcome_line), "finished: %s",
		 ev->message ? ev->message : outcome_name(f->outcome));
}

/* One journal line: to every notifier, in the form they give a live event. */
static void follow_line(struct follow *f, const char *json, size_t len)
{
	struct stored_record *sr;
	struct buf types;
	char *host, err[200];

	buf_init(&types);
	if (journal_types(json, len, &types) == 0 &&
	    event_json_decode(json, len, buf_cstr(&types), &sr, &host, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < f->n_nots; i++)
			notifier_submit(f->nots[i], &sr->rec);
		if (strcmp(sr->ev.kind, VIGIL_EV_FINISHED) == 0)
			follow_finished(f, &sr->ev);
		record_free(sr);
		free(host);
	}
	buf_free(&types);
}

/* Read what was appended; whole lines only, up to the run's `finished`. */
static void follow_journal_read(struct follow *f)
{
	char chunk[8192];
	ssize_t n;

	while (!f->finished && (n = read(f->jfd, chunk, sizeof(chunk))) > 0) {
		size_t start = 0;

		if (buf_append(&f->line, chunk, (size_t)n) != 0)
			return;
		for (size_t i = 0; i < f->line.len && !f->finished; i++)
			if (f->line.p[i] == '\n') {
				follow_line(f, f->line.p + start, i - start);
				start = i + 1;
			}
		memmove(f->line.p, f->line.p + start, f->line.len - start);
		f->line.len -= start;
	}
}

/* The journal as it is now: opened when it appears, reopened when a new run
 * replaced it (after the old one is read to its end). */
static void follow_journal(struct follow *f)
{
	struct stat st;

	if (f->jfd >= 0)
		follow_journal_read(f);
	if (f->finished || stat(f->jpath, &st) != 0 || (f->jfd >= 0 && st.st_ino == f->jino))
		return;
	if (f->jfd >= 0)
		close(f->jfd);
	f->jfd = open(f->jpath, O_RDONLY | O_CLOEXEC);
	f->jino = st.st_ino;
	f->line.len = 0;
	if (f->jfd >= 0)
		follow_journal_read(f);
}

static void log_copy(struct follow *f)
{
	char chunk[65536];
	ssize_t n;

	while ((n = read(f->lfd, chunk, sizeof(chunk))) > 0) {
		fwrite(chunk, 1, (size_t)n, stdout);
		f->loff += n;
	}
	fflush(stdout);
}

/* logs -f: copy the log out like tail -F (rename and copytruncate rotation). */
static void follow_log(struct follow *f)
{
	struct stat st;

	if (!f->log)
		return;
	if (f->lfd >= 0) {
		log_copy(f);
		if (fstat(f->lfd, &st) == 0 && st.st_size < f->loff)
			f->loff = lseek(f->lfd, 0, SEEK_SET); /* truncated in place */
	}
	if (stat(f->log, &st) != 0 || (f->lfd >= 0 && st.st_ino == f->lino))
		return;
	if (f->lfd >= 0)
		close(f->lfd);
	f->lfd = open(f->log, O_RDONLY | O_CLOEXEC);
	f->lino = st.st_ino;
	f->loff = 0;
	if (f->lfd >= 0)
		log_copy(f);
}

static void follow_pump(struct follow *f)
{
	follow_journal(f);
	follow_log(f);
	if (f->finished || f->owner_gone)
		loop_stop(f->loop);
}

static void follow_inotify(struct loop *loop, int fd, uint32_t revents, void *data)
{
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)loop;
	(void)revents;
	while (read(fd, ev, sizeof(ev)) > 0)
		;
	follow_pump(data);
}

static void follow_owner_exit(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct follow *f = data;

	(void)revents;
	loop_del_fd(loop, fd);
	f->owner_gone = true;
	follow_pump(f);
}

static void follow_signal(struct loop *loop, int signo, void *data)
{
	((struct follow *)data)->signo = signo;
	loop_stop(loop);
}

/* What the notifiers still deliver gets up to timeout_ms. */
static void drain_notifiers(struct engine *e, struct loop *loop, int64_t timeout_ms)
{
	int64_t deadline = loop_clock_ms() + timeout_ms;

	while (engine_pending(e) > 0 && loop_clock_ms() < deadline)
		loop_run_once(loop, 200);
}

static int follow_notifiers(struct follow *f, const char *const *specs, size_t n)
{
	struct agent_config ac = {0};
	struct diag d = {0};
	int rc = session_load_agent_ini(&ac, &d);

	for (size_t i = 0; rc == 0 && i < ac.n_notifiers; i++)
		if (engine_define_notifier(f->engine, ac.file, &ac.notifiers[i], &d))
			rc = -EINVAL;
	agent_config_free(&ac);
	f->nots = calloc(n ? n : 1, sizeof(*f->nots));
	for (size_t i = 0; rc == 0 && f->nots && i < n; i++)
		if (!(f->nots[f->n_nots++] = engine_notifier(f->engine, specs[i], "<command line>",
							      0, &d)))
			rc = -EINVAL;
	diag_print(&d, stderr);
	diag_free(&d);
	return rc == 0 && f->nots ? 0 : EXIT_USAGE;
}

static int follow_watch_dir(struct follow *f, const char *path, bool parent)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (parent && slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else if (parent)
		snprintf(dir, sizeof(dir), ".");
	if (inotify_add_watch(f->ino, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
		return fprintf(stderr, "vigil: cannot watch %s: %s\n", dir, strerror(errno)), EXIT_USAGE;
	return 0;
}

/* The owner's pidfd: when it ends, what the journal has is all there is. */
static void follow_owner(struct follow *f, const struct run_record *r)
{
	int fd = state_writer_alive(r) ? (int)syscall(SYS_pidfd_open, r->owner_pid, 0) : -1;

	f->owner_fd = fd;
	if (fd < 0 || loop_add_fd(f->loop, fd, EPOLLIN, follow_owner_exit, f) != 0)
		f->owner_gone = true;
}

static int follow_open(struct follow *f, const struct run_record *r, const char *const *specs,
		       size_t n)
{
	char dirbuf[PATH_MAX];
	struct engine_options opt = {0};
	int rc;

	f->loop = loop_new();
	plugin_set_init(&f->plugins, plugin_default_dir(cli_globals.plugin_dir, dirbuf,
							 sizeof(dirbuf)));
	f->engine = f->loop ? engine_new(f->loop, &f->plugins, &opt) : NULL;
	f->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (!f->engine || f->ino < 0 || journal_path(f->dir, f->name, f->jpath, sizeof(f->jpath)))
		return fprintf(stderr, "vigil: cannot follow %s\n", f->name), EXIT_USAGE;
	if ((rc = follow_notifiers(f, specs, n)) || (rc = follow_watch_dir(f, f->dir, false)) ||
	    (f->log && (rc = follow_watch_dir(f, f->log, true))))
		return rc;
	loop_add_fd(f->loop, f->ino, EPOLLIN, follow_inotify, f);
	loop_add_signal(f->loop, SIGINT, follow_signal, f);
	loop_add_signal(f->loop, SIGTERM, follow_signal, f);
	follow_owner(f, r);
	return 0;
}

/* The owner ended without a `finished` in the journal: its record may still
 * hold the outcome (a journal lost with the folder); otherwise it is unknown. */
static void follow_from_record(struct follow *f)
{
	struct run_record r;

	memset(&r, 0, sizeof(r));
	if (state_read(f->dir, f->name, &r) == 0 && strcmp(r.state, "finished") == 0 &&
	    r.outcome[0]) {
		f->outcome = outcome_from_name(r.outcome, strlen(r.outcome));
		snprintf(f->outcome_line, sizeof(f->outcome_line), "finished: %s: %s", r.outcome,
			 r.reason);
		return;
	}
	f->outcome = OUTCOME_UNKNOWN;
	snprintf(f->outcome_line, sizeof(f->outcome_line),
		 "finished: unknown: the run's owner (pid %d) ended without an outcome",
		 (int)r.owner_pid);
}

static void follow_close(struct follow *f)
{
	int fds[] = {f->ino, f->jfd, f->owner_fd, f->lfd};

	free(f->nots); /* the notifiers themselves are the engine's */
	engine_free(f->engine);
	plugin_set_free(&f->plugins);
	if (f->loop)
		loop_free(f->loop);
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	buf_free(&f->line);
}

int session_follow(const char *dir, const char *name, const char *const *specs, size_t n_specs,
		   const char *log)
{
	struct follow f = {.dir = dir, .name = name, .log = log, .ino = -1, .jfd = -1,
			   .owner_fd = -1, .lfd = -1};
	struct run_record r;
	int rc;

	buf_init(&f.line);
	if (state_read(dir, name, &r) != 0)
		return fprintf(stderr, "vigil: no job named \"%s\" (see vigil status)\n", name), EXIT_USAGE;
	rc = follow_open(&f, &r, specs, n_specs);
	if (rc == 0) {
		follow_pump(&f);
		if (!f.finished && !f.owner_gone)
			loop_run(f.loop);
		follow_pump(&f); /* the last bytes of the log */
		if (!f.finished && !f.signo)
			follow_from_record(&f);
		drain_notifiers(f.engine, f.loop, 5000);
		if (log && !f.signo)
			printf("%s\n", f.outcome_line);
		rc = f.signo ? 128 + f.signo : outcome_exit_status(f.outcome);
	}
	follow_close(&f);
	return rc;
}
