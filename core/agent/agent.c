/* See agent.h. One entry per conf.d file; an entry's `key` is its text plus the
 * [defaults] it was merged with, so "changed" means changed content. Reload
 * parses and builds every new or changed monitor before touching the running
 * set; a file that fails keeps its previous version running (when it had one). */
#include "agent.h"
#include "engine/spool.h"

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
#include "base/safe_file.h"
#include "control.h"
#include "engine/engine.h"
#include "engine/metrics.h"
#include "metrics_http.h"
#include "base/log.h"
#include "lib/proc.h"
#include "base/state.h"

#define MAX_FILE_SIZE (1024 * 1024)

struct entry {
	char *file;
	char *key; /* file text + defaults: equal keys mean an unchanged monitor */
	uid_t uid; /* owner of the file */
	struct raw_ini ini;
	struct monitor_config mc;
	struct monitor *m;
	bool keep; /* reload: unchanged */
	struct loop *loop;     /* set while a missed-run timer may run */
	int64_t missed_timer;  /* every = : when the next run is due (0: none) */
};

struct agent {
	struct loop *loop;
	struct plugin_set plugins;
	struct engine *engine;
	struct control *ctl;
	const char *config_file;
	const char *conf_dir_arg;
	const char *state_dir_arg, *plugin_dir_arg; /* from the command line */
	char *conf_dir;
	char *state_dir;
	char *spool_dir;
	char *plugin_dir;
	char *defaults_key;     /* [defaults] as text */
	struct raw_section defaults;
	struct agent_config ac; /* the last vigil.ini that loaded */
	bool explicit_config;
	char **notifier_keys;   /* [notifier NAME] as defined, for "changed" */
	size_t n_notifier_keys;
	struct entry **v;
	size_t n;
	int stop_signal;
	int64_t metrics_timer;     /* a textfile write is due */
	bool metrics_warned;       /* the textfile failed: said once until it works */
	struct metrics_http *http; /* metrics_listen, NULL: off */
	/* Spools of other processes (vigil run, watch) under our folders. */
	int64_t adopt_timer;
	struct spool **handed;     /* adopted folders, closed at the next scan */
	size_t n_handed;
	char **adopt_warned;       /* "root/name" said once: no notifier for it */
	size_t n_adopt_warned;
};

static void metrics_changed(struct agent *a);
static void missed_arm(struct agent *a, struct entry *en, int64_t last_start_ms);
static void missed_cancel(struct entry *en);

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

static void entry_free(struct entry *en)
{
	if (!en)
		return;
	missed_cancel(en);
	monitor_free(en->m);
	monitor_config_free(&en->mc);
	raw_ini_free(&en->ini);
	free(en->file);
	free(en->key);
	free(en);
}

/* As `vigil check FILE` (config_read_ini): a NUL byte is an error at its line,
 * never a silent end of the file. */
static bool nul_refused(const char *file, const char *text, size_t len, struct diag *d)
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

static char *read_text(const char *path, uid_t *uid, struct diag *d)
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
	if (text && nul_refused(path, text, n, d)) {
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
static struct entry *entry_build(struct agent *a, struct engine *e, const char *file,
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
	entry_free(en);
	return NULL;
}

static struct entry *find_file(struct entry **v, size_t n, const char *file)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && strcmp(v[i]->file, file) == 0)
			return v[i];
	return NULL;
}

static struct entry *find_name(struct entry **v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && v[i]->m && strcmp(monitor_name(v[i]->m), name) == 0)
			return v[i];
	return NULL;
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
static void agent_paths(struct agent *a, const struct agent_config *ac)
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
 * share the running instance). */
static void apply_notifiers(struct agent *a, const struct agent_config *ac, struct diag *d)
{
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
		if (!grown || engine_define_notifier(a->engine, ac->file, s, d) != 0) {
			if (grown)
				a->notifier_keys = grown;
			free(text);
			continue;
		}
		a->notifier_keys = grown;
		a->notifier_keys[a->n_notifier_keys++] = text;
	}
}

/* Read vigil.ini. A missing default file means built-in defaults; a broken
 * one fails the start, and on reload keeps the previous settings. */
static int load_agent_ini(struct agent *a, struct agent_config *ac, bool explicit_file,
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

static void set_defaults(struct agent *a, const struct agent_config *ac)
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
static char **list_conf(const char *dir, size_t *n, struct diag *d)
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

/* Continue the run numbers of the record a previous life left; a process that
 * is still the same one is still the same run. */
static bool entry_seed(struct agent *a, struct entry *en)
{
	struct run_record r;
	uint64_t seed;

	if (state_read(a->state_dir, monitor_name(en->m), &r) != 0 || r.run == 0)
		return true;
	seed = r.run;
	if ((strcmp(r.state, "running") == 0 || strcmp(r.state, "stopped") == 0) && r.pid > 0 &&
	    proc_is_same(r.pid, r.start_time)) {
		seed = r.run - 1;
		if (en->mc.command) /* started by an earlier life of the agent */
			monitor_adopt(en->m, r.pid, r.start_time);
	} else if (en->mc.pid && r.pid == en->mc.pid && strcmp(r.state, "finished") == 0) {
		log_msg(LOG_LVL_INFO, monitor_name(en->m), "pid %d ended in run %llu already",
			(int)r.pid, (unsigned long long)r.run);
		return false;
	}
	monitor_seed_run(en->m, seed);
	return true;
}

static void entry_start(struct agent *a, struct entry *en)
{
	char err[512] = "";

	if (!entry_seed(a, en))
		return;
	if (monitor_start(en->m, err, sizeof(err)) != 0)
		log_msg(LOG_LVL_ERR, monitor_name(en->m), "%s: cannot start: %s", en->file, err);
	/* After the start: a process found at once has its run in the record. */
	missed_arm(a, en, -1);
}

struct reload_stats {
	size_t added, changed, removed, unchanged, failed;
};

/* Build the next set: unchanged entries are reused, the others built. */
static struct entry **build_next(struct agent *a, size_t *n_next, struct reload_stats *st,
				 struct diag *d)
{
	size_t nf, k = 0;
	char **files = list_conf(a->conf_dir, &nf, d);
	struct entry **next = calloc(nf ? nf : 1, sizeof(*next));

	for (size_t i = 0; next && i < nf; i++) {
		struct entry *old = find_file(a->v, a->n, files[i]), *en;
		size_t errors = d->errors;
		uid_t uid = 0;
		char *text = read_text(files[i], &uid, d);
		char *key = NULL;

		if (text && asprintf(&key, "%s\n\035%s", text, a->defaults_key) < 0)
			key = NULL;
		if (old && key && strcmp(old->key, key) == 0) {
			old->keep = true;
			next[k++] = old;
			st->unchanged++;
		} else if (!text || !(en = entry_build(a, a->engine, files[i], text, uid, d))) {
			st->failed++;
			if (old) {
				log_msg(LOG_LVL_WARN, monitor_name(old->m),
					"%s is broken: the previous version keeps running", old->file);
				old->keep = true;
				next[k++] = old;
			}
		} else if (find_name(next, k, monitor_name(en->m))) {
			diag_add(d, files[i], en->mc.line, "monitor", "name",
				 "\"%s\" is already the name of %s", monitor_name(en->m),
				 find_name(next, k, monitor_name(en->m))->file);
			entry_free(en);
			st->failed++;
		} else {
			next[k++] = en;
			*(old ? &st->changed : &st->added) += 1;
		}
		(void)errors;
		free(key);
		free(text);
		free(files[i]);
	}
	free(files);
	*n_next = k;
	return next;
}

static bool in_set(struct entry **v, size_t n, const struct entry *en)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == en)
			return true;
	return false;
}

/* Stop what goes away (removed, or replaced by a changed version), then start
 * what is new. */
static void apply_next(struct agent *a, bool first, struct entry **next, size_t n_next,
		       struct reload_stats *st, struct buf *out)
{
	for (size_t i = 0; i < a->n; i++) {
		struct entry *old = a->v[i];
		const char *name = monitor_name(old->m);

		if (in_set(next, n_next, old))
			continue;
		if (!find_file(next, n_next, old->file) && !find_name(next, n_next, name)) {
			st->removed++;
			buf_printf(out, "removed %s (%s)\n", name, old->file);
			log_msg(LOG_LVL_INFO, name, "removed (%s)", old->file);
			if (a->state_dir)
				state_remove(a->state_dir, name);
		}
		entry_free(old);
	}
	for (size_t i = 0; i < n_next; i++) {
		struct entry *en = next[i];

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
	free(a->v);
	a->v = next;
	a->n = n_next;
}

/* vigil.ini: new defaults and notifiers; folders only at start. False when it
 * is broken (its previous settings stay). */
static bool reload_agent_ini(struct agent *a, bool first, struct diag *d)
{
	struct agent_config ac;

	if (load_agent_ini(a, &ac, a->explicit_config, d) != 0) {
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
	set_defaults(a, &ac);
	if (a->engine)
		apply_notifiers(a, &ac, d);
	agent_config_free(&a->ac);
	a->ac = ac;
	return true;
}

/* Build the new set first, then apply it. Diagnostics and changes go to out
 * (and the log). */
static void agent_reload(struct agent *a, bool first, struct buf *out)
{
	struct reload_stats st = {0};
	struct diag d = {0};
	struct buf changes = BUF_INIT;
	struct entry **next;
	size_t n_next;

	if (!first) {
		sd_notify_reloading();
		/* A broken vigil.ini counts as broken: `vigil reload` must fail. */
		if (!reload_agent_ini(a, false, &d))
			st.failed++;
	}
	next = build_next(a, &n_next, &st, &d);
	if (next)
		apply_next(a, first, next, n_next, &st, &changes);
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
	metrics_changed(a); /* monitors came or went */
	sd_notify_send("READY=1");
}

/* ------------------------------------------------------------ control */

/* The uid a watched process runs as, or -1 when none is attached. */
static long long process_uid(struct entry *en)
{
	const struct vigil_target *t = monitor_target(en->m);
	char path[64];
	struct stat st;

	if (t->pid <= 0 || !proc_is_same(t->pid, t->start_time))
		return -1;
	snprintf(path, sizeof(path), "/proc/%d", (int)t->pid);
	return stat(path, &st) == 0 ? (long long)st.st_uid : -1;
}

static bool visible(struct entry *en, const struct control_peer *p)
{
	return p->privileged || en->uid == p->uid || process_uid(en) == (long long)p->uid;
}

static void entry_record(struct agent *a, struct entry *en, struct run_record *r)
{
	if (!a->state_dir || state_read(a->state_dir, monitor_name(en->m), r) != 0) {
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", monitor_name(en->m));
		snprintf(r->state, sizeof(r->state), "waiting");
		r->exit_code = -1;
		r->progress = -1;
		r->owner_pid = getpid();
	}
	r->uid = en->uid;
}

static void agent_ctl_status(void *ctx, const struct control_peer *p, const char *name,
			     struct buf *out)
{
	struct agent *a = ctx;
	struct buf body = BUF_INIT;
	size_t shown = 0;

	for (size_t i = 0; i < a->n; i++) {
		struct run_record r;

		if ((name && strcmp(name, monitor_name(a->v[i]->m)) != 0) || !visible(a->v[i], p))
			continue;
		entry_record(a, a->v[i], &r);
		control_put_record(&body, &r);
		shown++;
	}
	if (name && !shown)
		buf_printf(out, "error: no monitor named \"%s\"\n", name);
	else
		buf_printf(out, "ok pid=%d monitors=%zu\n%s", (int)getpid(), shown, buf_cstr(&body));
	buf_free(&body);
}

static void agent_ctl_stop(void *ctx, const struct control_peer *p, const char *name, bool force,
			   struct buf *out)
{
	struct agent *a = ctx;
	struct entry *en = find_name(a->v, a->n, name);
	const struct vigil_target *t;
	long long uid;

	/* A monitor the peer may not see does not exist for it. */
	if (!en || !visible(en, p)) {
		buf_printf(out, "error: no monitor named \"%s\"\n", name);
		return;
	}
	uid = process_uid(en);
	t = monitor_target(en->m);
	if (uid < 0) {
		buf_printf(out, "error: %s is not running\n", name);
	} else if (!p->privileged && uid != (long long)p->uid) {
		buf_printf(out, "error: permission denied: %s runs as uid %lld\n", name, uid);
	} else if (monitor_stop(en->m, force) != 0) {
		buf_printf(out, "error: %s is not running\n", name);
	} else {
		log_msg(LOG_LVL_INFO, name, "%s sent to pid %d (asked by uid %u, pid %d)",
			force ? "SIGKILL" : "SIGTERM", (int)t->pid, (unsigned)p->uid, (int)p->pid);
		buf_printf(out, "ok pid=%d start_time=%llu run=%llu signal=%s\n", (int)t->pid,
			   (unsigned long long)t->start_time,
			   (unsigned long long)monitor_run_number(en->m), force ? "SIGKILL" : "SIGTERM");
	}
}

static void agent_ctl_reload(void *ctx, const struct control_peer *p, struct buf *out)
{
	struct agent *a = ctx;
	if (!p->privileged) {
		buf_puts(out, "error: permission denied: reload is for root and group vigil\n");
		return;
	}
	log_info("reload asked by uid %u (pid %d)", (unsigned)p->uid, (int)p->pid);
	agent_reload(a, false, out);
}

/* Validated in a scratch engine: a peer's check never changes the agent. */
static void agent_ctl_check(void *ctx, const struct control_peer *p, const char *file,
			    const char *text, size_t len, struct buf *out)
{
	struct agent *a = ctx;
	struct engine *e;
	struct diag d = {0};
	struct entry *en;

	if (nul_refused(file, text, len, &d)) {
		buf_printf(out, "error: invalid\n%s\n", d.lines[0]);
		diag_free(&d);
		return;
	}
	e = engine_new(a->loop, &a->plugins, NULL);
	if (!e) {
		buf_puts(out, "error: out of memory\n");
		return;
	}
	for (size_t i = 0; i < a->ac.n_notifiers; i++)
		engine_define_notifier(e, a->ac.file, &a->ac.notifiers[i], &d);
	en = entry_build(a, e, file, text, p->uid, &d);
	buf_puts(out, en ? "ok\n" : "error: invalid\n");
	for (size_t i = 0; i < d.n; i++)
		buf_printf(out, "%s\n", d.lines[i]);
	entry_free(en);
	diag_free(&d);
	engine_free(e);
}

/* ------------------------------------------------------------ metrics */

/* Records come in bursts (attached, exited, finished): one write per burst,
 * after the engine has written the run record of the last one. */
#define METRICS_COALESCE_MS 50

static int agent_render_metrics(void *ctx, struct buf *out)
{
	struct agent *a = ctx;

	return metrics_render(out, a->state_dir, a->spool_dir);
}

/* metrics_textfile, replaced atomically (node_exporter never reads half). */
static void write_textfile(struct agent *a)
{
	const char *path = a->ac.metrics_textfile;
	struct buf b = BUF_INIT;
	char err[PATH_MAX + 200] = "";
	int rc;

	if (!path)
		return;
	rc = agent_render_metrics(a, &b);
	if (rc != 0)
		snprintf(err, sizeof(err), "%s: %s", a->state_dir, strerror(-rc));
	else
		rc = safe_file_replace(path, b.p ? b.p : "", b.len, 0644, err, sizeof(err));
	if (rc != 0 && !a->metrics_warned)
		log_warnx("metrics_textfile: %s", err);
	else if (rc == 0 && a->metrics_warned)
		log_info("metrics_textfile: %s written again", path);
	a->metrics_warned = rc != 0;
	buf_free(&b);
}

static int64_t textfile_due(struct loop *loop, int64_t id, void *data)
{
	struct agent *a = data;

	(void)loop;
	(void)id;
	a->metrics_timer = 0;
	write_textfile(a);
	return LOOP_TIMER_DONE;
}

/* Something the metrics show changed: no timer runs while nothing does. */
static void metrics_changed(struct agent *a)
{
	if (!a->ac.metrics_textfile || a->metrics_timer > 0)
		return;
	a->metrics_timer = loop_add_timer(a->loop, METRICS_COALESCE_MS, textfile_due, a, NULL);
	if (a->metrics_timer < 0) {
		a->metrics_timer = 0;
		write_textfile(a);
	}
}

/* ------------------------------------------------------------ missed runs */

#define VIGIL_EV_MISSED "missed"

/* every = on a monitor whose runs start on their own (pid_file, match). */
static bool recurring(const struct entry *en)
{
	return en->mc.every_ms > 0 && (en->mc.pid_file || en->mc.match);
}

static void missed_cancel(struct entry *en)
{
	if (en->missed_timer > 0)
		loop_del_timer(en->loop, en->missed_timer);
	en->missed_timer = 0;
}

static int64_t now_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* No run started within every + grace: say so, then again one period later
 * at most (never a flood), until the next run's `attached` re-arms. */
static int64_t missed_fired(struct loop *loop, int64_t id, void *data)
{
	struct entry *en = data;
	char msg[200], every[32];
	struct vigil_field f[2] = {
		{.name = "every", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)en->mc.every_ms / 1000},
		{.name = "grace", .type = VIGIL_FIELD_DOUBLE, .u.d = (double)en->mc.grace_ms / 1000},
	};
	struct vigil_event ev = {.kind = VIGIL_EV_MISSED, .message = msg, .fields = f,
				 .n_fields = 2};

	(void)loop;
	(void)id;
	/* A long run still going is not a missed one (timeout is for that). */
	if (process_uid(en) >= 0)
		return en->mc.every_ms;
	snprintf(msg, sizeof(msg), "no run started within %s (every) + grace",
		 config_format_duration(en->mc.every_ms, every, sizeof(every)));
	monitor_emit(en->m, NULL, &ev);
	return en->mc.every_ms;
}

/* The last run's start: the record of this or an earlier life of the agent;
 * none (-1): the agent's start counts as one. */
static int64_t last_start_ms(struct agent *a, struct entry *en)
{
	struct run_record r;

	if (a->state_dir && state_read(a->state_dir, monitor_name(en->m), &r) == 0 &&
	    r.started_ms > 0)
		return r.started_ms;
	return -1;
}

static void missed_arm(struct agent *a, struct entry *en, int64_t last_ms)
{
	int64_t now = now_wall_ms(), due;

	missed_cancel(en);
	if (!recurring(en))
		return;
	if (last_ms < 0)
		last_ms = last_start_ms(a, en);
	if (last_ms < 0 || last_ms > now)
		last_ms = now;
	due = last_ms + en->mc.every_ms + en->mc.grace_ms - now;
	en->loop = a->loop;
	en->missed_timer = loop_add_timer(a->loop, due > 0 ? due : 0, missed_fired, en, NULL);
	if (en->missed_timer < 0) {
		log_msg(LOG_LVL_ERR, monitor_name(en->m), "cannot arm the missed-run timer");
		en->missed_timer = 0;
	}
}

static void record_made(void *data, struct monitor *m, const struct vigil_record *rec)
{
	struct agent *a = data;
	struct entry *en;

	/* A run began: the next one is due every_ms after this one's start. */
	if (rec->event && strcmp(rec->event->kind, VIGIL_EV_ATTACHED) == 0 &&
	    (en = find_name(a->v, a->n, monitor_name(m))) && en->m == m)
		missed_arm(a, en, rec->time_ms);
	metrics_changed(a);
}

/* metrics_listen, read at start like the folders. */
static int open_listener(struct agent *a)
{
	char err[512];

	if (!a->ac.metrics_listen)
		return 0;
	a->http = metrics_http_open(a->loop, a->ac.metrics_listen, agent_render_metrics, a, err,
				    sizeof(err));
	if (!a->http)
		fprintf(stderr, "vigil agent: %s\n", err);
	return a->http ? 0 : AGENT_EXIT_CONFIG;
}

/* ------------------------------------------- spools left by other processes */
/* vigil run's supervisors and vigil watch spool under the state folder in use
 * (STATE/spool) or the agent's spool_dir; what they leave when they end is
 * ours when we have a notifier of the same folder name (a [notifier NAME], or
 * plugin + hash of the spec). A folder still owned (its .lock held) is its
 * owner's. Adopted records go to our notifier (its spool first), then are
 * marked done in theirs; that spool is closed (the marks written) only at the
 * next scan, long after our spool committed them: at least once, never lost. */
#define ADOPT_SCAN_MS 30000

struct handover {
	struct notifier *n;
	struct spool *from;
};

static void handed_over(void *data, struct spool_seg *seg, uint32_t index,
			struct stored_record *rec, char *host)
{
	struct handover *h = data;

	notifier_submit(h->n, &rec->rec);
	spool_done(h->from, seg, index);
	record_free(rec);
	free(host);
}

static void adopt_warn_once(struct agent *a, const char *path)
{
	char **grown;

	for (size_t i = 0; i < a->n_adopt_warned; i++)
		if (strcmp(a->adopt_warned[i], path) == 0)
			return;
	log_warnx("spool %s: left by a process that ended, but no notifier here uses that "
		  "folder name; not delivered", path);
	grown = realloc(a->adopt_warned, (a->n_adopt_warned + 1) * sizeof(*grown));
	if (grown && (grown[a->n_adopt_warned] = strdup(path)))
		a->n_adopt_warned++;
	if (grown)
		a->adopt_warned = grown;
}

static bool spool_has_segments(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool any = false;

	while (d && !any && (de = readdir(d)))
		any = de->d_name[0] != '.' && strcmp(de->d_name, "dead") != 0;
	if (d)
		closedir(d);
	return any;
}

/* One folder: ours to deliver (kept open until the next scan), or said once. */
static void adopt_folder(struct agent *a, const char *root, const char *name, bool own_root)
{
	struct notifier *n = engine_notifier_by_folder(a->engine, name);
	struct handover h = {n, NULL};
	struct spool **grown;
	char path[PATH_MAX], err[300];
	size_t bad = 0;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	if ((own_root && n) || !spool_has_segments(path))
		return; /* our notifier's own folder: its rescan adopts */
	if (spool_open(root, name, &h.from, err, sizeof(err)) != 0) {
		log_warnx("%s", err);
		return;
	}
	if (!spool_is_owner(h.from) || !n) {
		if (spool_is_owner(h.from))
			adopt_warn_once(a, path);
		spool_close(h.from);
		return;
	}
	grown = realloc(a->handed, (a->n_handed + 1) * sizeof(*grown));
	if (!grown) {
		spool_close(h.from);
		return;
	}
	a->handed = grown;
	a->handed[a->n_handed++] = h.from;
	spool_adopt(h.from, handed_over, &h, &bad);
	log_info("adopted the spool %s for notifier %s", path, notifier_name(n));
}

static void adopt_root(struct agent *a, const char *root, bool own_root)
{
	DIR *d = opendir(root);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN))
			adopt_folder(a, root, de->d_name, own_root);
	if (d)
		closedir(d);
}

static void handed_close(struct agent *a)
{
	for (size_t i = 0; i < a->n_handed; i++)
		spool_close(a->handed[i]);
	a->n_handed = 0;
}

static int64_t adopt_scan(struct loop *loop, int64_t id, void *data)
{
	struct agent *a = data;
	char state_spool[PATH_MAX];

	(void)loop;
	(void)id;
	handed_close(a);
	snprintf(state_spool, sizeof(state_spool), "%s/spool", a->state_dir);
	adopt_root(a, a->spool_dir, true);
	if (strcmp(state_spool, a->spool_dir) != 0)
		adopt_root(a, state_spool, false);
	return ADOPT_SCAN_MS;
}

static void adopt_stop(struct agent *a)
{
	if (a->adopt_timer > 0)
		loop_del_timer(a->loop, a->adopt_timer);
	handed_close(a);
	free(a->handed);
	for (size_t i = 0; i < a->n_adopt_warned; i++)
		free(a->adopt_warned[i]);
	free(a->adopt_warned);
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

static const struct control_handlers agent_ctl = {
	.status = agent_ctl_status,
	.stop = agent_ctl_stop,
	.reload = agent_ctl_reload,
	.check = agent_ctl_check,
};

static int agent_open(struct agent *a)
{
	struct engine_options opt = {0};
	struct diag d = {0};
	char err[512], sock[PATH_MAX];
	int rc = 0;

	reload_agent_ini(a, true, &d);
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
	a->ctl = control_open(a->loop, &agent_ctl, a, control_socket_path(a->state_dir, sock, sizeof(sock)),
			      err, sizeof(err));
	if (!a->engine || !a->ctl) {
		fprintf(stderr, "vigil agent: control socket: %s\n", a->ctl ? "" : err);
		rc = AGENT_EXIT_CONFIG;
	} else {
		apply_notifiers(a, &a->ac, &d);
		diag_print(&d, stderr);
		rc = open_listener(a);
	}
	diag_free(&d);
	return rc;
}

static void agent_close(struct agent *a)
{
	for (size_t i = 0; i < a->n; i++)
		entry_free(a->v[i]);
	free(a->v);
	control_close(a->ctl);
	metrics_http_close(a->http);
	if (a->metrics_timer > 0)
		loop_del_timer(a->loop, a->metrics_timer);
	adopt_stop(a);
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
		/* At once (the notifiers exist now), then every ADOPT_SCAN_MS. */
		a.adopt_timer = loop_add_timer(a.loop, 0, adopt_scan, &a, NULL);
		write_textfile(&a); /* what the last life left, before anything changes */
		if (loop_run(a.loop) != 0)
			rc = 1;
		sd_notify_send("STOPPING=1");
		log_info("stopping (%s)", a.stop_signal ? sigabbrev_np(a.stop_signal) : "loop ended");
		drain(&a);
	}
	agent_close(&a);
	return rc;
}
