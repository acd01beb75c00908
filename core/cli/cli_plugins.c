/* vigil plugins: every plugin of the plugin folders, its kind, its folder and
 * its options. */
#include <limits.h>
#include <stdio.h>

#include "cli.h"
#include "cli_session.h"
#include "engine/plugin_loader.h"

static const char *type_name(enum vigil_option_type t)
{
	switch (t) {
	case VIGIL_OPT_STRING: return "string";
	case VIGIL_OPT_BOOL: return "bool";
	case VIGIL_OPT_INT: return "integer";
	case VIGIL_OPT_DURATION: return "duration";
	case VIGIL_OPT_SIZE: return "size";
	case VIGIL_OPT_REGEX: return "regex";
	case VIGIL_OPT_PATH: return "path";
	case VIGIL_OPT_URL: return "url";
	}
	return "?";
}

static void print_options(const struct vigil_option *o)
{
	for (; o && o->key; o++)
		printf("    %-16s %-8s %-12s %s%s%s%s\n", o->key, type_name(o->type),
		       o->default_value ? o->default_value : "-", o->help ? o->help : "",
		       o->flags & VIGIL_OPTF_REQUIRED ? " (required)" : "",
		       o->flags & VIGIL_OPTF_REPEATABLE ? " (repeatable)" : "",
		       o->flags & VIGIL_OPTF_SECRET ? " (secret)" : "");
}

static int load_errors;

static void on_error(const char *name, const char *err)
{
	fprintf(stderr, "vigil plugins: %s: %s\n", name, err);
	load_errors++;
}

/* The folders in search order, as the agent and `vigil watch` use them: the
 * built-in one (or --plugin-dir), PLUGIN_LOCAL_DIR, vigil.ini's plugin_path. */
static int open_plugin_set(struct plugin_set *ps)
{
	char dirbuf[PATH_MAX];
	struct agent_config ac = {0};
	struct diag d = {0};
	int rc = session_load_agent_ini(&ac, &d);

	diag_print(&d, stderr);
	diag_free(&d);
	plugin_set_init(ps, plugin_default_dir(cli_globals.plugin_dir, dirbuf, sizeof(dirbuf)));
	if (rc == 0)
		plugin_set_add_path(ps, ac.plugin_path);
	agent_config_free(&ac);
	return rc;
}

static void print_folders(const struct plugin_set *ps)
{
	printf("plugin folder: %s\n", ps->dir);
	for (size_t i = 0; i < ps->n_extra; i++)
		printf("plugin folder: %s (searched next)\n", ps->extra[i]);
}

int cli_plugins(int argc, char **argv)
{
	struct plugin_set ps;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i]))
			return puts("usage: vigil plugins\n\nEach plugin of the plugin folders (the "
				    "built-in one, " PLUGIN_LOCAL_DIR ", vigil.ini's plugin_path, "
				    "in this order; the first of a name wins): its kind, folder, "
				    "summary and options (key, type, default, help)."), 0;
		return fprintf(stderr, "vigil plugins: unexpected argument %s\n", argv[i]), EXIT_USAGE;
	}
	rc = open_plugin_set(&ps);
	plugin_load_all(&ps, on_error);
	print_folders(&ps);
	printf("\n[monitor] (core)\n    %-16s %-8s %-12s %s\n", "KEY", "TYPE", "DEFAULT", "HELP");
	print_options(config_monitor_options);
	for (size_t i = 0; i < ps.n; i++) {
		const struct vigil_plugin *p = ps.items[i].desc;

		printf("\n%s (%s, %s): %s\n", p->name,
		       p->kind == VIGIL_PLUGIN_DETECTOR ? "detector" : "notifier",
		       ps.items[i].dir, p->summary ? p->summary : "");
		print_options(p->options);
	}
	plugin_set_free(&ps);
	return load_errors || rc ? 1 : 0;
}
