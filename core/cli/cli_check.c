/* vigil check [--config FILE] [PATH...]: parse and validate monitor files (and
 * vigil.ini) exactly as the agent would, without starting anything. The work is
 * the agent's (agent_check): the same [defaults], named notifiers and plugins. */
#include <getopt.h>
#include <stdio.h>

#include "agent/agent.h"
#include "cli.h"

static const char usage[] =
	"usage: vigil check [--config FILE] [PATH...]\n"
	"\n"
	"Validate monitor files as the agent would: syntax, known sections and keys, values\n"
	"(durations, sizes, regular expressions), the success rule, each plugin's options,\n"
	"against the vigil.ini in effect (its [defaults], named notifiers and plugin_path).\n"
	"PATH: a monitor file, a conf.d folder (every *.ini in it), a vigil.ini or the\n"
	"folder holding it (then its conf_dir too), in any order. Without PATH: the\n"
	"installed vigil.ini (or --config FILE) and its conf_dir.\n"
	"Prints FILE: OK, or FILE:LINE: [section] key: what is wrong. Exit 2 on any error.\n";

int cli_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct agent_check_args args = {.plugin_dir = cli_globals.plugin_dir};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': args.config_file = optarg; break;
		case 'h': return fputs(usage, stdout), 0;
		default: return fputs(usage, stderr), EXIT_USAGE;
		}
	}
	args.paths = argv + optind;
	args.n_paths = (size_t)(argc - optind);
	return agent_check(&args);
}
