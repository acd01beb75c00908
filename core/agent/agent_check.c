/* `vigil check`: the given files sorted into one vigil.ini and monitor files,
 * each read and built as the agent would, in a scratch engine. */
#include "agent.h"
#include "agent_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"

/* What `vigil check` was given, sorted out: one vigil.ini and monitor files. */
struct check_set {
	const char *config_file; /* NULL: the installed one */
	bool explicit_config;    /* named: it must exist */
	char **monitors;
	size_t n_monitors;
	bool monitors_named;     /* else the vigil.ini's conf_dir is checked */
	bool ok;
};

static bool text_is_agent_file(const char *file, const char *text)
{
	struct raw_ini ini = {0};
	struct diag d = {0};
	bool agent = false, monitor = false;

	/* A monitor file may hold its own [notifier NAME]: [monitor] decides. */
	if (config_read_ini_string(file, text, &ini, &d) == 0)
		for (size_t i = 0; i < ini.n_sections; i++) {
			monitor |= !strcmp(ini.sections[i].plugin, "monitor");
			agent |= !strcmp(ini.sections[i].plugin, "agent") ||
				 !strcmp(ini.sections[i].plugin, "notifier") ||
				 !strcmp(ini.sections[i].plugin, "defaults");
		}
	agent = agent && !monitor;
	raw_ini_free(&ini);
	diag_free(&d);
	return agent;
}

static void check_add_monitor(struct check_set *cs, const char *file)
{
	char **grown = realloc(cs->monitors, (cs->n_monitors + 1) * sizeof(*grown));
	char *copy = strdup(file);

	if (grown)
		cs->monitors = grown;
	if (!grown || !copy) {
		free(copy);
		cs->ok = false;
		return;
	}
	cs->monitors[cs->n_monitors++] = copy;
}

/* A vigil.ini is recognised by its sections ([agent], [defaults], [notifier]),
 * so the order of the arguments does not matter. */
static void check_add_file(struct check_set *cs, const char *file, char *keep_dir)
{
	struct diag d = {0};
	uid_t uid;
	char *text = agent_read_text(file, &uid, &d);

	if (text && text_is_agent_file(file, text) && !cs->explicit_config) {
		snprintf(keep_dir, PATH_MAX, "%s", file);
		cs->config_file = keep_dir;
		cs->explicit_config = true;
	} else {
		check_add_monitor(cs, file);
		cs->monitors_named = true;
	}
	free(text);
	diag_free(&d);
}

/* A folder holding vigil.ini is a configuration folder (its conf_dir follows);
 * any other folder is a conf.d: its *.ini, none being fine. */
static void check_add_path(struct check_set *cs, const char *path, char *keep_dir)
{
	char ini[PATH_MAX + 16];
	struct stat st;
	struct diag d = {0};
	size_t n;
	char **files;

	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return check_add_file(cs, path, keep_dir);
	snprintf(ini, sizeof(ini), "%s/vigil.ini", path);
	if (!cs->explicit_config && access(ini, F_OK) == 0)
		return check_add_file(cs, ini, keep_dir);
	cs->monitors_named = true;
	files = agent_list_conf(path, &n, &d);
	for (size_t i = 0; i < n; i++) {
		check_add_monitor(cs, files[i]);
		free(files[i]);
	}
	free(files);
	if (d.n)
		cs->ok = false;
	diag_print(&d, stderr);
	diag_free(&d);
}

static bool check_monitor(struct agent *a, const char *file)
{
	struct diag d = {0};
	struct entry *en = NULL;
	uid_t uid = 0;
	char *text = agent_read_text(file, &uid, &d);

	if (text)
		en = agent_entry_build(a, a->engine, file, text, uid, &d);
	diag_print(&d, stderr);
	if (en)
		printf("%s: OK\n", file);
	agent_entry_free(en);
	free(text);
	diag_free(&d);
	return en != NULL;
}

/* vigil.ini as the agent reads it: its folders, [defaults], plugin_path and
 * named notifiers, in a scratch engine (nothing starts, nothing is written). */
static bool check_agent_ini(struct agent *a)
{
	struct diag d = {0};
	char err[512];
	bool ok;

	ok = agent_load_ini(a, &a->ac, a->explicit_config, &d) == 0;
	if (ok) {
		agent_paths(a, &a->ac);
		agent_set_defaults(a, &a->ac);
		if (plugin_dir_check(a->plugin_dir, err, sizeof(err)) != 0) {
			diag_add(&d, a->plugin_dir, 0, NULL, NULL, "%s", err);
			ok = false;
		}
	}
	if (ok && (a->loop = loop_new())) {
		plugin_set_init(&a->plugins, a->plugin_dir);
		plugin_set_add_path(&a->plugins, a->ac.plugin_path);
		a->engine = engine_new(a->loop, &a->plugins, NULL);
		ok = a->engine && agent_apply_notifiers(a, &a->ac, &d) == 0;
	}
	diag_print(&d, stderr);
	if (ok && access(a->config_file, F_OK) == 0)
		printf("%s: OK\n", a->config_file);
	diag_free(&d);
	return ok && a->engine;
}

static void check_set_free(struct check_set *cs)
{
	for (size_t i = 0; i < cs->n_monitors; i++)
		free(cs->monitors[i]);
	free(cs->monitors);
}

int agent_check(const struct agent_check_args *args)
{
	struct check_set cs = {.config_file = args->config_file, .ok = true,
			       .explicit_config = args->config_file != NULL};
	struct agent a = {0};
	char cfg[PATH_MAX], named[PATH_MAX];

	for (size_t i = 0; i < args->n_paths; i++)
		check_add_path(&cs, args->paths[i], named);
	/* The one in effect: $VIGIL_CONFIG (as for watch and run), else the system's. */
	if (!cs.config_file && getenv("VIGIL_CONFIG") && *getenv("VIGIL_CONFIG")) {
		cs.config_file = getenv("VIGIL_CONFIG");
		cs.explicit_config = true;
	}
	snprintf(cfg, sizeof(cfg), "%s/vigil/vigil.ini", VIGIL_SYSCONFDIR);
	a.config_file = cs.config_file ? cs.config_file : cfg;
	a.explicit_config = cs.explicit_config;
	a.plugin_dir_arg = args->plugin_dir;
	if (!check_agent_ini(&a)) {
		cs.ok = false;
	} else {
		if (!cs.monitors_named)
			check_add_path(&cs, a.conf_dir, named);
		for (size_t i = 0; i < cs.n_monitors; i++)
			cs.ok &= check_monitor(&a, cs.monitors[i]);
	}
	check_set_free(&cs);
	agent_close(&a);
	return cs.ok ? 0 : AGENT_EXIT_CONFIG;
}
