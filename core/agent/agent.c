/* See agent.h. One entry per conf.d file; an entry's `key` is its text plus the
 * [defaults] it was merged with, so "changed" means changed content. Reload
 * parses and builds every new or changed monitor before touching the running
 * set; a file that fails keeps its previous version running (when it had one).
 * Here: entries, vigil.ini, reload and the process's life; agent_internal.h
 * names the files that hold the rest. */
#include "agent.h"
#include "agent_internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "build_config.h"
#include "control.h"
#include "engine/spool.h"
#include "base/log.h"
#include "lib/proc.h"
#include "base/state.h"

#define MAX_FILE_SIZE (1024 * 1024)

/* ------------------------------------------------------------ sd_notify */

/* The datagram protocol is a few lines; no libsystemd dependency for it. */
static void sd_notify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
		log_warnx("sd_notify: %s", strerror(errno));
	close(fd);
}

static void sd_notify_reloading(void)
{
	struct timespec ts;
	char msg[96];

	/* systemd >= 253 (Type=notify-reload) wants the reload's monotonic time. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
	sd_notify_send(msg);
}

/* ------------------------------------------------------------ entries */

void agent_entry_free(struct entry *en)
{
	if (!en)
		return;
	agent_missed_cancel(en);
	agent_after_cancel(en);
	monitor_free(en->m);
	monitor_config_free(&en->mc);
	raw_ini_free(&en->ini);
	free(en->file);
	free(en->key);
	free(en);
}

/* As `vigil check FILE` (config_read_ini): a NUL byte is an error at its line,
 * never a silent end of the file. */
bool agent_nul_refused(const char *file, const char *text, size_t len, struct diag *d)
{
	const char *nul = memchr(text, '\0', len);
	unsigned line = 1;

	if (!nul)
		return false;
	for (const char *p = text; p < nul; p++)
		line += *p == '\n';
	diag_add(d, file, line, NULL, NULL, "a NUL byte: not a text file");
	return true;
}

char *agent_read_text(const char *path, uid_t *uid, struct diag *d)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	char *text;
	size_t n;

	if (!f) {
		diag_add(d, path, 0, NULL, NULL, "cannot read: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE_SIZE) {
		diag_add(d, path, 0, NULL, NULL, "not a regular file of at most 1 MB");
		fclose(f);
		return NULL;
	}
	*uid = st.st_uid;
	text = malloc((size_t)st.st_size + 1);
	n = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
	fclose(f);
	if (text && agent_nul_refused(path, text, n, d)) {
		free(text);
		return NULL;
	}
	if (text)
		text[n] = '\0';
	return text;
}

/* [defaults] keys the monitor does not set itself go into its [monitor]. */
static void merge_defaults(struct agent *a, struct raw_ini *ini)
{
	struct raw_section *mon = NULL;

	for (size_t i = 0; i < ini->n_sections; i++)
		if (strcmp(ini->sections[i].name, "monitor") == 0)
			mon = &ini->sections[i];
	if (!mon)
		return;
	for (size_t i = 0; i < a->defaults.n_kv; i++) {
		const struct raw_kv *kv = &a->defaults.kv[i];
		bool set = false;

		for (size_t k = 0; k < mon->n_kv && !set; k++)
			set = strcmp(mon->kv[k].key, kv->key) == 0;
		if (!set)
			raw_section_set(mon, kv->key, kv->value, mon->line);
	}
}

/* Parse, merge, validate and build (no side effects: nothing started). */
struct entry *agent_entry_build(struct agent *a, struct engine *e, const char *file,
				const char *text, uid_t uid, struct diag *d)
{
	struct entry *en = calloc(1, sizeof(*en));
	size_t errors = d->errors;

	if (!en)
		return NULL;
	en->file = strdup(file);
	en->uid = uid;
	if (asprintf(&en->key, "%s\n\035%s", text, a->defaults_key ? a->defaults_key : "") < 0)
		en->key = NULL;
	if (!en->file || !en->key)
		goto fail;
	if (config_read_ini_string(file, text, &en->ini, d) != 0 || d->errors > errors)
		goto fail;
	merge_defaults(a, &en->ini);
	if (config_load_monitor(&en->ini, false, &en->mc, d) != 0 || d->errors > errors)
		goto fail;
	en->m = monitor_new(e, &en->mc, d);
	if (!en->m || d->errors > errors)
		goto fail;
	return en;
fail:
	if (d->errors == errors)
		diag_add(d, file, 0, NULL, NULL, "cannot be loaded");
	agent_entry_free(en);
	return NULL;
}

struct entry *agent_entry_named(struct agent *a, const char *name)
{
	return str_index_get(&a->by_name, name);
}

/* A new set of entries, indexed as it grows: by name (two monitors may not
 * share one) and by file (what a reload compares with). */
struct entry_set {
	struct entry **v;
	size_t n;
	struct str_index by_name, by_file;
};

static int entry_set_init(struct entry_set *s, size_t cap)
{
	memset(s, 0, sizeof(*s));
	s->v = calloc(cap ? cap : 1, sizeof(*s->v));
	if (!s->v || str_index_init(&s->by_name, cap) || str_index_init(&s->by_file, cap))
		return -ENOMEM;
	return 0;
}

/* The caps are the files listed: the index always has room. */
static void entry_set_push(struct entry_set *s, struct entry *en)
{
	s->v[s->n++] = en;
	str_index_put(&s->by_name, monitor_name(en->m), en);
	str_index_put(&s->by_file, en->file, en);
}

static void entry_set_free(struct entry_set *s)
{
	free(s->v);
	str_index_free(&s->by_name);
	str_index_free(&s->by_file);
}

/* The uid a watched process runs as, or -1 when none is attached. */
long long agent_process_uid(struct entry *en)
{
	const struct vigil_target *t = monitor_target(en->m);
	char path[64];
	struct stat st;

	if (t->pid <= 0 || !proc_is_same(t->pid, t->start_time))
		return -1;
	snprintf(path, sizeof(path), "/proc/%d", (int)t->pid);
	return stat(path, &st) == 0 ? (long long)st.st_uid : -1;
}

/* ------------------------------------------------------------ vigil.ini */

static char *section_text(const struct raw_section *s)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "[%s]\n", s->name);
	for (size_t i = 0; i < s->n_kv; i++)
		buf_printf(&b, "%s=%s\n", s->kv[i].key, s->kv[i].value);
	return b.p ? buf_steal(&b) : strdup("");
}

static void set_path(char **dst, const char *val, const char *fallback)
{
	free(*dst);
	*dst = strdup(val ? val : fallback);
}

/* Folders are read at start only: a reload that changes them says so. */
void agent_paths(struct agent *a, const struct agent_config *ac)
{
	char buf[PATH_MAX + 16], dir[PATH_MAX];
	const char *slash;

	snprintf(dir, sizeof(dir), "%s", a->config_file);
	slash = strrchr(dir, '/');
	if (slash)
		dir[slash - dir] = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	snprintf(buf, sizeof(buf), "%s/conf.d", dir);
	set_path(&a->conf_dir, a->conf_dir_arg ? a->conf_dir_arg : ac->conf_dir, buf);
	/* A command-line folder wins over vigil.ini, which wins over the default. */
	set_path(&a->state_dir, a->state_dir_arg ? a->state_dir_arg : ac->state_dir,
		 state_default_dir(buf, sizeof(buf)));
	spool_default_dir(buf, sizeof(buf));
	set_path(&a->spool_dir, ac->spool_dir, buf);
	set_path(&a->plugin_dir, a->plugin_dir_arg ? a->plugin_dir_arg : ac->plugin_dir,
		 plugin_default_dir(NULL, buf, sizeof(buf)));
}

static bool notifier_known(struct agent *a, const char *text, const char *name, bool *changed)
{
	char head[300];

	snprintf(head, sizeof(head), "[notifier %s]\n", name);
	*changed = false;
	for (size_t i = 0; i < a->n_notifier_keys; i++) {
		if (strncmp(a->notifier_keys[i], head, strlen(head)) != 0)
			continue;
		*changed = strcmp(a->notifier_keys[i], text) != 0;
		return true;
	}
	return false;
}

/* New named notifiers are defined; a changed one needs a restart (monitors
 * share the running instance). A broken one is not kept (the engine forgets
 * it), so the next reload tries it again: the number of those. */
size_t agent_apply_notifiers(struct agent *a, const struct agent_config *ac, struct diag *d)
{
	size_t broken = 0;

	for (size_t i = 0; i < ac->n_notifiers; i++) {
		const struct raw_section *s = &ac->notifiers[i];
		char *text = section_text(s), **grown;
		bool changed;

		if (!text)
			continue;
		if (notifier_known(a, text, s->instance, &changed)) {
			if (changed)
				log_warnx("%s: [%s] changed: it applies after a restart", ac->file, s->name);
			free(text);
			continue;
		}
		grown = realloc(a->notifier_keys, (a->n_notifier_keys + 1) * sizeof(*grown));
		if (grown)
			a->notifier_keys = grown;
		if (!grown || engine_define_notifier(a->engine, ac->file, s, d) != 0) {
			broken++;
			free(text);
			continue;
		}
		a->notifier_keys[a->n_notifier_keys++] = text;
	}
	return broken;
}

/* Read vigil.ini. A missing default file means built-in defaults; a broken
 * one fails the start, and on reload keeps the previous settings. */
int agent_load_ini(struct agent *a, struct agent_config *ac, bool explicit_file,
		   struct diag *d)
{
	struct raw_ini ini = {0};
	int rc;

	memset(ac, 0, sizeof(*ac));
	if (!explicit_file && access(a->config_file, F_OK) != 0 && errno == ENOENT) {
		ac->file = strdup(a->config_file);
		return 0;
	}
	rc = config_read_ini(a->config_file, &ini, d);
	if (rc == 0 && d->errors == 0)
		rc = config_load_agent(&ini, ac, d);
	raw_ini_free(&ini);
	return rc || d->errors ? -EINVAL : 0;
}

void agent_set_defaults(struct agent *a, const struct agent_config *ac)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < a->defaults.n_kv; i++) {
		free(a->defaults.kv[i].key);
		free(a->defaults.kv[i].value);
	}
	free(a->defaults.kv);
	a->defaults.kv = NULL;
	a->defaults.n_kv = 0;
	buf_puts(&b, "[defaults]\n");
	for (size_t i = 0; i < ac->defaults.n_kv; i++) {
		const struct raw_kv *kv = &ac->defaults.kv[i];

		raw_section_set(&a->defaults, kv->key, kv->value, kv->line);
		buf_printf(&b, "%s=%s\n", kv->key, kv->value);
	}
	free(a->defaults_key);
	a->defaults_key = buf_steal(&b);
}

/* ------------------------------------------------------------ reload */

static int by_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* conf_dir/NAME.ini, sorted; hidden files and editor leftovers are not monitors. */
char **agent_list_conf(const char *dir, size_t *n, struct diag *d)
{
	DIR *dh = opendir(dir);
	struct dirent *de;
	char **v = NULL;

	*n = 0;
	if (!dh) {
		if (errno != ENOENT)
			diag_add(d, dir, 0, NULL, NULL, "cannot read the folder: %s", strerror(errno));
		return NULL;
	}
	while ((de = readdir(dh))) {
		size_t len = strlen(de->d_name);
		char **grown;

		if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".ini") != 0)
			continue;
		grown = realloc(v, (*n + 1) * sizeof(*v));
		if (!grown)
			break;
		v = grown;
		if (asprintf(&v[*n], "%s/%s", dir, de->d_name) >= 0)
			(*n)++;
	}
	closedir(dh);
	if (*n)
		qsort(v, *n, sizeof(*v), by_str);
	return v;
}

enum seed { SEED_SKIP, SEED_NEW, SEED_ADOPTED };

/* Continue the run numbers of the record a previous life left; a process that
 * is still the same one is still the same run, and so is one that waited for
 * other jobs and never started (after =). */
static enum seed entry_seed(struct agent *a, struct entry *en)
{
	struct run_record r;
	uint64_t seed;

	if (state_read(a->state_dir, monitor_name(en->m), &r) != 0 || r.run == 0) {
		/* No record (forgotten, or a new state folder): the history goes on. */
		seed = state_last_run(a->state_dir, monitor_name(en->m));
		if (seed)
			monitor_seed_run(en->m, seed);
		return SEED_NEW;
	}
	seed = r.run;
	if ((strcmp(r.state, "running") == 0 || strcmp(r.state, "stopped") == 0) && r.pid > 0 &&
	    proc_is_same(r.pid, r.start_time)) {
		monitor_seed_run(en->m, r.run - 1);
		if (!en->mc.command)
			return SEED_NEW;
		monitor_adopt(en->m, r.pid, r.start_time); /* started by an earlier life */
		return SEED_ADOPTED;
	}
	if (en->mc.pid && r.pid == en->mc.pid && strcmp(r.state, "finished") == 0) {
		log_msg(LOG_LVL_INFO, monitor_name(en->m), "pid %d ended in run %llu already",
			(int)r.pid, (unsigned long long)r.run);
		return SEED_SKIP;
	}
	if (strcmp(r.state, "waiting") == 0 && agent_after_wanted(en))
		seed = r.run - 1;
	monitor_seed_run(en->m, seed);
	return SEED_NEW;
}

void agent_entry_run(struct agent *a, struct entry *en)
{
	char err[512] = "";

	if (monitor_start(en->m, err, sizeof(err)) != 0)
		log_msg(LOG_LVL_ERR, monitor_name(en->m), "%s: cannot start: %s", en->file, err);
	/* After the start: a process found at once has its run in the record. */
	agent_missed_arm(a, en, -1);
}

/* A run that waits for others (after =) begins waiting; one adopted from an
 * earlier life has begun already. */
static void entry_start(struct agent *a, struct entry *en)
{
	enum seed seed = entry_seed(a, en);

	if (seed == SEED_NEW && agent_after_wanted(en))
		agent_after_begin(a, en);
	else if (seed != SEED_SKIP)
		agent_entry_run(a, en);
}

struct reload_stats {
	size_t added, changed, removed, unchanged, failed;
};

/* Build the next set: unchanged entries are reused, the others built. */
static int build_next(struct agent *a, struct entry_set *next, struct reload_stats *st,
		      struct diag *d)
{
	size_t nf;
	char **files = agent_list_conf(a->conf_dir, &nf, d);
	struct str_index old_files = {0};
	int rc = entry_set_init(next, nf) || str_index_init(&old_files, a->n) ? -ENOMEM : 0;

	for (size_t i = 0; rc == 0 && i < a->n; i++)
		str_index_put(&old_files, a->v[i]->file, a->v[i]);
	for (size_t i = 0; rc == 0 && i < nf; i++) {
		struct entry *old = str_index_get(&old_files, files[i]), *en;
		size_t errors = d->errors;
		uid_t uid = 0;
		char *text = agent_read_text(files[i], &uid, d);
		char *key = NULL;
		struct entry *dup;

		if (text && asprintf(&key, "%s\n\035%s", text, a->defaults_key) < 0)
			key = NULL;
		if (old && key && strcmp(old->key, key) == 0) {
			old->keep = true;
			entry_set_push(next, old);
			st->unchanged++;
		} else if (!text || !(en = agent_entry_build(a, a->engine, files[i], text, uid, d))) {
			st->failed++;
			if (old) {
				log_msg(LOG_LVL_WARN, monitor_name(old->m),
					"%s is broken: the previous version keeps running", old->file);
				old->keep = true;
				entry_set_push(next, old);
			}
		} else if ((dup = str_index_get(&next->by_name, monitor_name(en->m)))) {
			diag_add(d, files[i], en->mc.line, "monitor", "name",
				 "\"%s\" is already the name of %s", monitor_name(en->m), dup->file);
			agent_entry_free(en);
			st->failed++;
		} else {
			entry_set_push(next, en);
			*(old ? &st->changed : &st->added) += 1;
		}
		(void)errors;
		free(key);
		free(text);
		free(files[i]);
	}
	for (size_t i = 0; i < nf; i++)
		if (rc != 0)
			free(files[i]); /* out of memory before the loop reached them */
	free(files);
	str_index_free(&old_files);
	return rc;
}

/* Stop what goes away (removed, or replaced by a changed version), then start
 * what is new. */
static void apply_next(struct agent *a, bool first, struct entry_set *next,
		       struct reload_stats *st, struct buf *out)
{
	struct entry **v = next->v;
	size_t n_next = next->n;

	/* its keys are the names of entries about to be freed */
	str_index_free(&a->by_name);
	for (size_t i = 0; i < a->n; i++) {
		struct entry *old = a->v[i];
		const char *name = monitor_name(old->m);

		if (old->keep) /* in the next set too */
			continue;
		if (!str_index_get(&next->by_file, old->file) &&
		    !str_index_get(&next->by_name, name)) {
			st->removed++;
			buf_printf(out, "removed %s (%s)\n", name, old->file);
			log_msg(LOG_LVL_INFO, name, "removed (%s)", old->file);
			if (a->state_dir)
				state_remove(a->state_dir, name);
		}
		agent_entry_free(old);
	}
	/* The new set is the agent's before any monitor starts: a start that
	 * records at once (record_made -> agent_entry_named) must not see freed
	 * entries. */
	free(a->v);
	a->v = v;
	a->n = n_next;
	a->by_name = next->by_name;
	next->v = NULL;
	next->by_name = (struct str_index){0};
	for (size_t i = 0; i < n_next; i++) {
		struct entry *en = v[i];

		if (en->keep) {
			en->keep = false;
			continue;
		}
		buf_printf(out, "started %s (%s)\n", monitor_name(en->m), en->file);
		/* Thousands of monitors at start: one summary line, details in debug. */
		log_msg(first ? LOG_LVL_DEBUG : LOG_LVL_INFO, monitor_name(en->m), "started (%s)",
			en->file);
		entry_start(a, en);
	}
	/* Every new monitor has started (or begun waiting): what one waits for
	 * has its current run now, even when it was loaded after it. */
	for (size_t i = 0; i < n_next; i++)
		agent_after_follow(v[i]);
}

/* vigil.ini: new defaults and notifiers; folders only at start. False when it
 * is broken (its previous settings stay). */
static bool reload_agent_ini(struct agent *a, bool first, struct diag *d, size_t *broken)
{
	struct agent_config ac;

	if (agent_load_ini(a, &ac, a->explicit_config, d) != 0) {
		if (!first)
			log_warnx("%s is broken: its previous settings stay", a->config_file);
		return false;
	}
	if (first) {
		agent_paths(a, &ac);
	} else if ((ac.conf_dir && !a->conf_dir_arg && strcmp(ac.conf_dir, a->conf_dir)) ||
		   (ac.state_dir && strcmp(ac.state_dir, a->state_dir)) ||
		   (ac.spool_dir && strcmp(ac.spool_dir, a->spool_dir)) ||
		   (ac.plugin_dir && strcmp(ac.plugin_dir, a->plugin_dir))) {
		log_warnx("%s: changed folders apply after a restart", a->config_file);
	}
	agent_set_defaults(a, &ac);
	if (a->engine)
		*broken += agent_apply_notifiers(a, &ac, d);
	agent_config_free(&a->ac);
	a->ac = ac;
	return true;
}

/* Build the new set first, then apply it. Diagnostics and changes go to out
 * (and the log). */
void agent_reload(struct agent *a, bool first, struct buf *out)
{
	struct reload_stats st = {0};
	struct diag d = {0};
	struct buf changes = BUF_INIT;
	struct entry_set next;

	if (!first) {
		sd_notify_reloading();
		/* A broken vigil.ini counts as broken: `vigil reload` must fail. */
		if (!reload_agent_ini(a, false, &d, &st.failed))
			st.failed++;
	}
	if (build_next(a, &next, &st, &d) == 0)
		apply_next(a, first, &next, &st, &changes);
	else
		log_warnx("out of memory: the monitors stay as they were");
	entry_set_free(&next);
	for (size_t i = 0; i < d.n; i++)
		log_msg(LOG_LVL_ERR, NULL, "%s", d.lines[i]);
	log_info("%s: %zu added, %zu changed, %zu removed, %zu unchanged, %zu broken",
		 first ? "loaded" : "reload", st.added, st.changed, st.removed, st.unchanged, st.failed);
	buf_printf(out, "ok added=%zu changed=%zu removed=%zu unchanged=%zu broken=%zu\n",
		   st.added, st.changed, st.removed, st.unchanged, st.failed);
	buf_append(out, changes.p ? changes.p : "", changes.len);
	for (size_t i = 0; i < d.n; i++)
		buf_printf(out, "%s\n", d.lines[i]);
	buf_free(&changes);
	diag_free(&d);
	agent_metrics_changed(a); /* monitors came or went */
	sd_notify_send("READY=1");
}

/* ------------------------------------------------------------ lifecycle */

static void on_hup(struct loop *loop, int signo, void *data)
{
	struct buf out = BUF_INIT;

	(void)loop;
	(void)signo;
	log_info("SIGHUP: reloading");
	agent_reload(data, false, &out);
	buf_free(&out);
}

static void on_term(struct loop *loop, int signo, void *data)
{
	struct agent *a = data;

	a->stop_signal = signo;
	loop_stop(loop);
}

static void monitor_ended(void *data, struct monitor *m)
{
	(void)data;
	log_msg(LOG_LVL_INFO, monitor_name(m), "no further runs (%s)",
		outcome_name(monitor_last_outcome(m)));
}

static void record_made(void *data, struct monitor *m, const struct vigil_record *rec)
{
	struct agent *a = data;
	struct entry *en;

	/* A run began: the next one is due every_ms after this one's start. */
	if (rec->event && strcmp(rec->event->kind, VIGIL_EV_ATTACHED) == 0 &&
	    (en = agent_entry_named(a, monitor_name(m))) && en->m == m)
		agent_missed_arm(a, en, rec->time_ms);
	agent_metrics_changed(a);
}

/* Each monitor holds a few fds (pidfd, inotify, sockets): thousands of them
 * need more than the usual soft limit of 1024. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("cannot raise the open-file limit");
	}
}

static int agent_open(struct agent *a)
{
	struct engine_options opt = {0};
	struct diag d = {0};
	char err[512], sock[PATH_MAX];
	size_t broken = 0; /* the engine does not exist yet: notifiers come later */
	int rc = 0;

	reload_agent_ini(a, true, &d, &broken);
	if (!a->ac.file || d.errors) {
		diag_print(&d, stderr);
		diag_free(&d);
		return AGENT_EXIT_CONFIG;
	}
	if (plugin_dir_check(a->plugin_dir, err, sizeof(err)) != 0 ||
	    state_ensure_dir(a->state_dir) != 0 || !(a->loop = loop_new())) {
		fprintf(stderr, "vigil agent: %s\n", plugin_dir_check(a->plugin_dir, err, sizeof(err))
			? err : "cannot create the state folder or the loop");
		diag_free(&d);
		return AGENT_EXIT_CONFIG;
	}
	plugin_set_init(&a->plugins, a->plugin_dir);
	plugin_set_add_path(&a->plugins, a->ac.plugin_path); /* read at start, like plugin_dir */
	opt.state_dir = a->state_dir;
	opt.spool_dir = a->spool_dir;
	a->engine = engine_new(a->loop, &a->plugins, &opt);
	a->ctl = control_open(a->loop, &agent_ctl_handlers, a,
			      control_socket_path(a->state_dir, sock, sizeof(sock)), err, sizeof(err));
	if (!a->engine || !a->ctl) {
		fprintf(stderr, "vigil agent: control socket: %s\n", a->ctl ? "" : err);
		rc = AGENT_EXIT_CONFIG;
	} else {
		agent_apply_notifiers(a, &a->ac, &d);
		diag_print(&d, stderr);
		rc = agent_metrics_listen(a);
	}
	diag_free(&d);
	return rc;
}

void agent_close(struct agent *a)
{
	str_index_free(&a->by_name); /* before the names it borrows go */
	for (size_t i = 0; i < a->n; i++)
		agent_entry_free(a->v[i]);
	free(a->v);
	control_close(a->ctl);
	agent_metrics_close(a);
	agent_adopt_stop(a);
	engine_free(a->engine);
	plugin_set_free(&a->plugins);
	if (a->loop)
		loop_free(a->loop);
	agent_config_free(&a->ac);
	for (size_t i = 0; i < a->n_notifier_keys; i++)
		free(a->notifier_keys[i]);
	free(a->notifier_keys);
	for (size_t i = 0; i < a->defaults.n_kv; i++) {
		free(a->defaults.kv[i].key);
		free(a->defaults.kv[i].value);
	}
	free(a->defaults.kv);
	free(a->defaults_key);
	free(a->conf_dir);
	free(a->state_dir);
	free(a->spool_dir);
	free(a->plugin_dir);
}

/* Deliveries get a few seconds; what is left stays in the spool. */
static void drain(struct agent *a)
{
	int64_t deadline = loop_clock_ms() + 5000;

	while (engine_pending(a->engine) > 0 && loop_clock_ms() < deadline)
		loop_run_once(a->loop, 200);
	if (engine_pending(a->engine))
		log_warnx("%zu notification(s) left in the spool for the next start",
			  engine_pending(a->engine));
}

int agent_main(const struct agent_args *args)
{
	struct agent a = {0};
	struct buf out = BUF_INIT;
	char cfg[PATH_MAX];
	int rc;

	snprintf(cfg, sizeof(cfg), "%s/vigil/vigil.ini", VIGIL_SYSCONFDIR);
	a.config_file = args->config_file ? args->config_file : cfg;
	a.explicit_config = args->config_file != NULL;
	a.conf_dir_arg = args->conf_dir;
	a.state_dir_arg = args->state_dir;
	a.plugin_dir_arg = args->plugin_dir;
	a.stop_signal = 0;
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	/* The processes a `command =` job leaves behind come to us, not to init:
	 * its run lasts until they exit, and a stop reaches them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	rc = agent_open(&a);
	if (rc == 0) {
		struct engine_hooks hooks = {.monitor_done = monitor_ended,
					     .after_record = record_made, .data = &a};

		engine_set_hooks(a.engine, &hooks);
		loop_add_signal(a.loop, SIGHUP, on_hup, &a);
		loop_add_signal(a.loop, SIGTERM, on_term, &a);
		loop_add_signal(a.loop, SIGINT, on_term, &a);
		log_info("agent %s: config %s, monitors from %s, state in %s", VIGIL_VERSION,
			 a.config_file, a.conf_dir, a.state_dir);
		agent_reload(&a, true, &out); /* the first load: everything is "added" */
		buf_free(&out);
		agent_adopt_start(&a); /* now: the notifiers exist */
		agent_metrics_write(&a); /* what the last life left, before anything changes */
		if (loop_run(a.loop) != 0)
			rc = 1;
		for (size_t i = 0; i < a.n; i++)
			agent_after_cancel(a.v[i]); /* nothing starts while we drain */
		sd_notify_send("STOPPING=1");
		log_info("stopping (%s)", a.stop_signal ? sigabbrev_np(a.stop_signal) : "loop ended");
		drain(&a);
	}
	agent_close(&a);
	return rc;
}
