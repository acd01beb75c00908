/* vigil agent [--config FILE] [--conf-dir DIR] and vigil reload. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "cli.h"
#include "agent/control.h"
#include "base/log.h"

static const char agent_usage[] =
	"usage: vigil agent [--config FILE] [--conf-dir DIR] [--state-dir DIR] [--plugin-dir DIR]\n"
	"\n"
	"Run the service: watch every monitor of conf.d (one *.ini file each) and report\n"
	"every run. FILE defaults to " "/etc/vigil/vigil.ini (the build's sysconfdir), DIR to\n"
	"its conf_dir. SIGHUP or `vigil reload` re-reads both; SIGTERM stops.\n";

static const char reload_usage[] =
	"usage: vigil reload [--state-dir DIR]\n"
	"\n"
	"Ask the running agent to re-read vigil.ini and conf.d. Prints what changed and\n"
	"what is broken. Exit 0 when everything reloaded, 1 when it refused or a file\n"
	"is broken (the rest is applied), 2 when no agent runs.\n";

int cli_agent(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'}, {"conf-dir", required_argument, NULL, 'd'},
		{"state-dir", required_argument, NULL, 's'},
		{"plugin-dir", required_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'}, {0}};
	struct agent_args args = {0};
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:d:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': args.config_file = optarg; break;
		case 'd': args.conf_dir = optarg; break;
		case 's': cli_globals.state_dir = optarg; break;
		case 'p': cli_globals.plugin_dir = optarg; break;
		case 'v': log_init("vigil", LOG_LVL_DEBUG); break;
		case 'h': return fputs(agent_usage, stdout), 0;
		default:
			fprintf(stderr, "vigil agent: bad option %s\n%s", argv[optind - 1], agent_usage);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vigil agent: unexpected argument \"%s\"\n", argv[optind]);
		return EXIT_USAGE;
	}
	args.state_dir = cli_globals.state_dir;
	args.plugin_dir = cli_globals.plugin_dir;
	return agent_main(&args);
}

int cli_reload(int argc, char **argv)
{
	const char *dir;
	char *reply = NULL, *nl;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i]))
			return fputs(reload_usage, stdout), 0;
		if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc)
			cli_globals.state_dir = argv[++i];
		else
			return fprintf(stderr, "vigil reload: unexpected \"%s\"\n", argv[i]), EXIT_USAGE;
	}
	dir = cli_agent_dir();
	if (!dir)
		return EXIT_USAGE;
	rc = control_request(dir, "reload", NULL, 0, &reply);
	if (rc != 0) {
		fprintf(stderr, "vigil reload: no agent answers on %s/control.sock: %s\n", dir,
			strerror(-rc));
		return EXIT_USAGE;
	}
	nl = strchr(reply, '\n');
	if (!control_reply_ok(reply)) {
		fprintf(stderr, "vigil reload: %s", reply);
		free(reply);
		return 1;
	}
	/* "ok added=1 ..." then the changes and the diagnostics. */
	printf("reloaded: %.*s\n", nl ? (int)(nl - reply - 3) : 0, reply + 3);
	if (nl)
		fputs(nl + 1, stdout);
	/* Anything broken (a conf.d file or vigil.ini itself) fails the reload, so
	 * that `systemctl reload` and scripts see it; the rest was applied. */
	rc = control_reply_num(reply, "broken") > 0 ? 1 : 0;
	free(reply);
	return rc;
}
