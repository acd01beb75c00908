/* One monitor run in the foreground (vigil watch) or in the supervisor (vigil
 * run): loop, plugins, engine, monitor; the live line on a terminal; waiting for
 * deliveries before exiting. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "cli_session.h"
#include "base/log.h"
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
	fprintf(stderr, "\r\033[K%s  pid %d  %s  %s  %.60s", monitor_name(s->m),
		(int)monitor_pid(s->m), cli_format_elapsed(elapsed, el, sizeof(el)), bar,
		monitor_last_event(s->m));
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

static void on_signal(struct loop *loop, int signo, void *data)
{
	struct session *s = data;

	live_clear(s);
	s->signo = signo;
	loop_stop(loop);
}

/* The notifiers of vigil.ini ($VIGIL_CONFIG, or the system one when it
 * exists), so `--notify oncall` works in watch and run as in the agent; its
 * spool_dir too, unless --state-dir DIR isolates everything under DIR. */
static int load_agent_ini(struct agent_config *ac, struct diag *d)
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

static const char *session_spool_dir(const struct agent_config *ac, char *buf, size_t len)
{
	if (cli_globals.state_dir)
		snprintf(buf, len, "%s/spool", cli_globals.state_dir);
	else if (ac->spool_dir)
		snprintf(buf, len, "%s", ac->spool_dir);
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
	if (plugin_dir_check(dir, err, sizeof(err)) != 0) {
		fprintf(stderr, "vigil: %s\n", err);
		return EXIT_USAGE;
	}
	if (load_agent_ini(&ac, &d) != 0) {
		diag_print(&d, stderr);
		diag_free(&d);
		agent_config_free(&ac);
		return EXIT_USAGE;
	}
	opt.spool_dir = session_spool_dir(&ac, spool, sizeof(spool));
	s->loop = loop_new();
	if (!s->loop)
		return agent_config_free(&ac), EXIT_USAGE;
	plugin_set_init(&s->plugins, dir);
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
	/* A notifier writing to a closed pipe must get EPIPE, not die. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Deliveries still pending get up to deliver_timeout; what is left stays in the
 * spool for the agent or the next run. */
static void drain_deliveries(struct session *s, int64_t timeout_ms)
{
	int64_t deadline = loop_clock_ms() + timeout_ms;

	while (engine_pending(s->engine) > 0 && s->signo == 0) {
		int64_t left = deadline - loop_clock_ms();

		if (left <= 0) {
			log_warnx("%zu notification(s) not delivered within %lld ms; left for retry",
				  engine_pending(s->engine), (long long)timeout_ms);
			break;
		}
		loop_run_once(s->loop, (int)(left > 200 ? 200 : left));
	}
}

int session_run(struct session *s, bool live)
{
	char err[512] = "";

	s->live = live;
	if (monitor_start(s->m, err, sizeof(err)) != 0) {
		fprintf(stderr, "vigil: %s: %s\n", monitor_name(s->m), err);
		if (s->started)
			s->started(s, err, s->started_arg);
		return EXIT_USAGE;
	}
	if (s->started)
		s->started(s, NULL, s->started_arg);
	if (live && !s->done)
		loop_add_timer(s->loop, 1000, live_tick, s, NULL);
	if (!s->done)
		loop_run(s->loop);
	live_clear(s);
	drain_deliveries(s, s->mc->deliver_timeout_ms);
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
