/* vigil check FILE...: parse and validate monitor files (and vigil.ini) exactly
 * as the agent would, without starting anything. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "engine/engine.h"

static const char usage[] =
	"usage: vigil check FILE...\n"
	"\n"
	"Validate monitor files: syntax, known sections and keys, values (durations, sizes,\n"
	"regular expressions), the target, the success rule, each plugin's options.\n"
	"Prints FILE: OK, or FILE:LINE: [section] key: what is wrong. Exit 2 on any error.\n";

static bool is_agent_file(const struct raw_ini *ini)
{
	for (size_t i = 0; i < ini->n_sections; i++)
		if (strcmp(ini->sections[i].plugin, "agent") == 0 ||
		    strcmp(ini->sections[i].plugin, "notifier") == 0 ||
		    strcmp(ini->sections[i].plugin, "defaults") == 0)
			return true;
	return false;
}

static bool check_one(struct engine *e, const char *file)
{
	struct diag d = {0};
	struct raw_ini ini = {0};
	bool ok = false;

	if (config_read_ini(file, &ini, &d) == 0 && d.errors == 0) {
		if (is_agent_file(&ini)) {
			struct agent_config ac = {0};

			if (config_load_agent(&ini, &ac, &d) == 0 && d.errors == 0) {
				for (size_t i = 0; i < ac.n_notifiers; i++)
					engine_define_notifier(e, file, &ac.notifiers[i], &d);
				agent_config_free(&ac);
			}
		} else {
			struct monitor_config mc = {0};

			if (config_load_monitor(&ini, false, &mc, &d) == 0 && d.errors == 0) {
				struct monitor *m = monitor_new(e, &mc, &d);
				monitor_free(m);
			}
			monitor_config_free(&mc);
		}
		ok = d.errors == 0;
	}
	diag_print(&d, stderr);
	if (ok)
		printf("%s: OK\n", file);
	diag_free(&d);
	raw_ini_free(&ini);
	return ok;
}

int cli_check(int argc, char **argv)
{
	char dirbuf[PATH_MAX], err[512];
	const char *dir = plugin_default_dir(cli_globals.plugin_dir, dirbuf, sizeof(dirbuf));
	struct plugin_set ps;
	struct loop *loop;
	struct engine *e;
	bool ok = true;

	if (argc < 2)
		return fputs(usage, stderr), EXIT_USAGE;
	for (int i = 1; i < argc; i++)
		if (cli_is_help(argv[i]))
			return fputs(usage, stdout), 0;
	if (plugin_dir_check(dir, err, sizeof(err)) != 0)
		return fprintf(stderr, "vigil: %s\n", err), EXIT_USAGE;
	loop = loop_new();
	plugin_set_init(&ps, dir);
	e = engine_new(loop, &ps, NULL);
	for (int i = 1; i < argc; i++)
		ok &= check_one(e, argv[i]);
	engine_free(e);
	plugin_set_free(&ps);
	loop_free(loop);
	return ok ? 0 : EXIT_USAGE;
}
