/* Building a monitor from its validated configuration: detector instances (each
 * section checked against its plugin's option table first), notifiers, the
 * success expression; starting it; spawning the command of `vigil run`. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "monitor_internal.h"
#include "base/success_expr.h"

void detector_free(struct detector *d)
{
	if (!d)
		return;
	if (d->instance)
		d->plugin->destroy(d->instance);
	ctx_release(&d->ctx);
	free(d->section);
	free(d->file_path);
	free(d->config_path);
	free(d);
}

/* Validate one section against the plugin's options and create the instance. */
static struct detector *detector_new(struct monitor *m, const char *file,
				     const struct raw_section *s, struct diag *d)
{
	char err[512] = "", label[400];
	const struct vigil_plugin *p =
		plugin_get(engine_plugins(m->engine), s->plugin, VIGIL_PLUGIN_DETECTOR, err, sizeof(err));
	struct vigil_value *vals = NULL;
	size_t n_vals = 0;
	struct detector *det;

	if (!p) {
		diag_add(d, file, s->line, s->name, NULL, "%s", err);
		return NULL;
	}
	if (config_check_options(file, s, p->options, &vals, &n_vals, d))
		return NULL;
	det = calloc(1, sizeof(*det));
	snprintf(label, sizeof(label), "%s/%s", m->name, s->name);
	if (!det || ctx_init(&det->ctx, m->engine, label)) {
		free(det);
		config_values_free(vals, n_vals);
		return NULL;
	}
	det->monitor = m;
	det->section = strdup(s->name);
	for (size_t i = 0; i < n_vals; i++)
		if (strcmp(vals[i].key, "path") == 0 && vals[i].text)
			det->config_path = strdup(vals[i].text);
	det->plugin = p;
	det->ctx.monitor = m;
	det->ctx.detector = det;
	struct vigil_config cfg = {.file = file, .section = s->name, .monitor = m->name,
				   .values = vals, .n_values = n_vals};
	if (engine_plugin_shared(m->engine, p, &det->ctx.shared, err, sizeof(err)) != 0 ||
	    p->create(&engine_host, &det->ctx, &cfg, &det->instance, err, sizeof(err)) != 0) {
		diag_add(d, file, s->line, s->name, NULL, "%s", err[0] ? err : "invalid");
		det->instance = NULL;
		detector_free(det);
		det = NULL;
	}
	config_values_free(vals, n_vals);
	return det;
}

int monitor_add_detector(struct monitor *m, struct detector *det)
{
	struct detector **grown = realloc(m->dets, (m->n_dets + 1) * sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	m->dets = grown;
	m->dets[m->n_dets++] = det;
	return 0;
}

/* The pid detector is configured from [monitor]'s target keys. */
struct detector *monitor_pid_detector_new(struct monitor *m, pid_t pid, struct diag *d)
{
	const struct monitor_config *mc = m->mc;
	struct raw_section s = {.name = "pid", .plugin = "pid", .line = mc->line};
	char num[32];
	struct detector *det;

	if (pid > 0) {
		snprintf(num, sizeof(num), "%d", (int)pid);
		raw_section_set(&s, "pid", num, mc->line);
	} else if (mc->pid_file) {
		raw_section_set(&s, "pid_file", mc->pid_file, mc->line);
	} else if (mc->match) {
		raw_section_set(&s, "match", mc->match, mc->line);
	}
	/* A [pid] section tunes the detector (exit_via); the target stays in [monitor]. */
	for (size_t i = 0; i < mc->n_detectors; i++)
		if (strcmp(mc->detectors[i].plugin, "pid") == 0)
			for (size_t k = 0; k < mc->detectors[i].n_kv; k++)
				raw_section_set(&s, mc->detectors[i].kv[k].key,
						mc->detectors[i].kv[k].value, mc->detectors[i].kv[k].line);
	det = detector_new(m, mc->file, &s, d);
	for (size_t i = 0; i < s.n_kv; i++) {
		free(s.kv[i].key);
		free(s.kv[i].value);
	}
	free(s.kv);
	return det;
}

/* The file's own [notifier NAME] of that name, or NULL. */
static const struct raw_section *local_notifier(const struct monitor_config *mc, const char *name)
{
	for (size_t i = 0; i < mc->n_detectors; i++)
		if (!strcmp(mc->detectors[i].plugin, "notifier") && mc->detectors[i].instance &&
		    !strcmp(mc->detectors[i].instance, name))
			return &mc->detectors[i];
	return NULL;
}

/* The shape of a [notifier NAME] in a monitor file: as in vigil.ini. */
static int local_notifier_shape(const struct monitor_config *mc, const struct raw_section *s,
				struct diag *d)
{
	bool has_type = false;

	if (!s->instance) {
		diag_add(d, mc->file, s->line, s->name, NULL,
			 "a notifier needs a name: [notifier NAME]");
		return -EINVAL;
	}
	if (!strcmp(s->instance, "stdout") || !strcmp(s->instance, "json")) {
		diag_add(d, mc->file, s->line, s->name, NULL,
			 "\"%s\" is reserved for the built-in notify spec", s->instance);
		return -EINVAL;
	}
	if (local_notifier(mc, s->instance) != s) {
		diag_add(d, mc->file, s->line, s->name, NULL, "defined twice in this file");
		return -EEXIST;
	}
	for (size_t k = 0; k < s->n_kv; k++)
		has_type |= !strcmp(s->kv[k].key, "type");
	if (!has_type) {
		diag_add(d, mc->file, s->line, s->name, "type",
			 "missing (the notifier plugin, e.g. webhook or email)");
		return -EINVAL;
	}
	return 0;
}

/* Every [notifier NAME] of the file is validated and created, used or not,
 * so that `vigil check` finds a broken one. */
static void define_local_notifiers(struct monitor *m, struct diag *d)
{
	const struct monitor_config *mc = m->mc;

	for (size_t i = 0; i < mc->n_detectors; i++) {
		const struct raw_section *s = &mc->detectors[i];

		if (!strcmp(s->plugin, "notifier") && local_notifier_shape(mc, s, d) == 0)
			engine_local_notifier(m->engine, mc->file, s, d);
	}
}

/* A notify spec: the file's own [notifier NAME] first, then the engine's. */
static struct notifier *notifier_for(struct monitor *m, const char *spec, struct diag *d)
{
	const struct monitor_config *mc = m->mc;
	const struct raw_section *local = local_notifier(mc, spec);
	struct diag said = {0}; /* a broken section was reported once already */
	struct notifier *n = NULL;

	if (!local)
		return engine_notifier(m->engine, spec, mc->file, mc->line, d);
	if (local_notifier_shape(mc, local, &said) == 0)
		n = engine_local_notifier(m->engine, mc->file, local, &said);
	diag_free(&said);
	return n;
}

static int add_notifiers(struct monitor *m, struct diag *d)
{
	const struct monitor_config *mc = m->mc;

	for (size_t i = 0; i < mc->n_notify; i++) {
		char *list = strdup(mc->notify[i]), *save = NULL;

		for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			struct notifier *n, **grown;

			while (*t == ' ' || *t == '\t')
				t++;
			for (char *e = t + strlen(t); e > t && (e[-1] == ' ' || e[-1] == '\t');)
				*--e = '\0';
			if (!*t)
				continue;
			n = notifier_for(m, t, d);
			if (!n) {
				free(list);
				return -EINVAL;
			}
			grown = realloc(m->notifiers, (m->n_notifiers + 1) * sizeof(*grown));
			uint32_t *filters = realloc(m->notify_filters, (m->n_notifiers + 1) * sizeof(*filters));
			if (grown)
				m->notifiers = grown;
			if (filters)
				m->notify_filters = filters;
			if (!grown || !filters) {
				free(list);
				return -ENOMEM;
			}
			m->notify_filters[m->n_notifiers] = 0;
			m->notifiers[m->n_notifiers++] = n;
		}
		free(list);
	}
	return 0;
}

struct monitor *monitor_new(struct engine *e, const struct monitor_config *mc, struct diag *d)
{
	struct monitor *m = calloc(1, sizeof(*m));
	size_t errors = d->errors;
	char err[256];

	if (!m)
		return NULL;
	m->engine = e;
	m->mc = mc;
	m->progress = -1;
	m->name = strdup(mc->name ? mc->name : "job");
	if (mc->success && success_expr_parse(mc->success, &m->expr, err, sizeof(err)) != 0)
		diag_add(d, mc->file, mc->line, "monitor", "success", "%s", err);
	define_local_notifiers(m, d);
	add_notifiers(m, d);
	for (size_t i = 0; i < mc->n_detectors; i++) {
		const struct raw_section *s = &mc->detectors[i];
		struct detector *det;

		if (strcmp(s->plugin, "notifier") == 0)
			continue; /* the file's own notifiers, defined above */

		if (strcmp(s->plugin, "pid") == 0) {
			for (size_t k = 0; k < s->n_kv; k++)
				if (!strcmp(s->kv[k].key, "pid") || !strcmp(s->kv[k].key, "pid_file") ||
				    !strcmp(s->kv[k].key, "match"))
					diag_add(d, mc->file, s->kv[k].line, s->name, s->kv[k].key,
						 "the target is set in [monitor] (pid, pid_file, match "
						 "or command)");
			continue; /* merged into the pid detector's own section */
		}
		det = detector_new(m, mc->file, s, d);
		if (det && monitor_add_detector(m, det))
			detector_free(det);
	}
	if (!mc->command && (mc->pid || mc->pid_file || mc->match)) {
		m->pid_det = monitor_pid_detector_new(m, mc->pid, d);
		if (m->pid_det && monitor_add_detector(m, m->pid_det)) {
			detector_free(m->pid_det);
			m->pid_det = NULL;
		}
	}
	if (d->errors > errors) {
		monitor_free(m);
		return NULL;
	}
	return m;
}

int monitor_start(struct monitor *m, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->n_dets; i++) {
		struct detector *det = m->dets[i];

		if (det == m->pid_det || !det->plugin->start)
			continue;
		if (det->plugin->start(det->instance, err, errlen) != 0)
			return -EINVAL;
	}
	m->started = true;
	/* A command is recorded once it runs: a failed start leaves no record. */
	if (m->mc->command)
		return monitor_spawn(m, err, errlen);
	if (monitor_is_targetless(m)) {
		monitor_targetless_start(m);
		return 0;
	}
	monitor_save_state(m);
	if (m->pid_det && m->pid_det->plugin->start)
		return m->pid_det->plugin->start(m->pid_det->instance, err, errlen) ? -EINVAL : 0;
	return 0;
}

void monitor_free(struct monitor *m)
{
	struct loop *loop;

	if (!m)
		return;
	loop = engine_loop(m->engine);
	if (m->state_dirty)
		monitor_save_state(m);
	for (size_t i = 0; i < m->n_dets; i++)
		detector_free(m->dets[i]);
	free(m->dets);
	free(m->notifiers);
	free(m->notify_filters);
	success_expr_free(m->expr);
	monitor_tree_free(m);
	monitor_hook_free(m);
	monitor_flood_free(m);
	monitor_journal_close(m);
	int64_t *timers[] = {&m->timeout_timer, &m->expected_timer, &m->kill_timer,
			     &m->settle_timer, &m->retry_timer,
			     &m->state_timer, &m->turn_timer};
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
		if (*timers[i] > 0)
			loop_del_timer(loop, *timers[i]);
	for (size_t i = 0; i < m->n_tail; i++)
		free((char *)m->tail[i].ptr);
	free(m->tail);
	free(m->cmdline);
	free(m->failure_line);
	free(m->reason);
	free(m->waiting_for);
	free(m->log_path);
	free(m->name);
	free(m);
}

bool monitor_lost_target(const struct monitor *m) { return m->lost; }
