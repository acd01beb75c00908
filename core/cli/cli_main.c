/* `vigil SUBCOMMAND ...`: dispatch, global help and version. */
#include <stdio.h>
#include <string.h>

#include "build_config.h"
#include "cli.h"
#include "base/log.h"

static const char usage[] =
	"usage: vigil COMMAND [OPTIONS]\n"
	"\n"
	"Watch long-running processes and tell people when they finish, fail, hang or\n"
	"starve the machine.\n"
	"\n"
	"  run     start a command in the background, watched (nohup done right)\n"
	"  watch   attach to a running process in the foreground until it ends\n"
	"  status  running and finished jobs\n"
	"  logs    a job's output (-f to follow)\n"
	"  stop    stop a job: SIGTERM, then SIGKILL after a grace (--force: at once)\n"
	"  check   validate monitor files\n"
	"  plugins list plugins and their options\n"
	"  agent   run the service: every monitor of conf.d, reloaded on SIGHUP\n"
	"  reload  ask the running agent to re-read its configuration\n"
	"  history a job's finished runs, p50/p95 durations and success rate\n"
	"  metrics the Prometheus text exposition of every job and notifier\n"
	"  forget  remove a finished job's record, pid file, journal and log\n"
	"  prune   forget every job finished longer ago than --older-than DUR\n"
	"\n"
	"vigil COMMAND --help tells more. Exit status of watch: 0 succeeded, 1 failed,\n"
	"3 timed out, 4 unknown, 2 usage or configuration error.\n";

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static const struct subcommand commands[] = {
	{"watch", cli_watch}, {"run", cli_run}, {"status", cli_status}, {"logs", cli_logs},
	{"stop", cli_stop}, {"check", cli_check}, {"plugins", cli_plugins},
	{"agent", cli_agent}, {"reload", cli_reload}, {"history", cli_history}, {"metrics", cli_metrics},
	{"forget", cli_forget}, {"prune", cli_prune},
};

/* --state-dir and --plugin-dir work with every subcommand: take them out
 * before it parses its own flags (never past "--": that is the job's argv). */
static int take_globals(int argc, char **argv)
{
	int w = 1;

	for (int i = 1; i < argc; i++) {
		const char **slot = NULL;
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			while (i < argc)
				argv[w++] = argv[i++];
			break;
		}
		if (strncmp(a, "--state-dir", 11) == 0 && (a[11] == '=' || a[11] == '\0'))
			slot = &cli_globals.state_dir;
		else if (strncmp(a, "--plugin-dir", 12) == 0 && (a[12] == '=' || a[12] == '\0'))
			slot = &cli_globals.plugin_dir;
		if (!slot) {
			argv[w++] = argv[i];
			continue;
		}
		if (strchr(a, '='))
			*slot = strchr(a, '=') + 1;
		else if (i + 1 < argc)
			*slot = argv[++i];
		else
			return -1;
	}
	argv[w] = NULL;
	return w;
}

int cli_main(int argc, char **argv)
{
	log_init("vigil", LOG_LVL_INFO);
	argc = take_globals(argc, argv);
	if (argc < 0) {
		fprintf(stderr, "vigil: --state-dir and --plugin-dir need a folder\n");
		return EXIT_USAGE;
	}
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("vigil %s\n", VIGIL_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vigil: unknown command \"%s\" (see vigil --help)\n", argv[1]);
	return EXIT_USAGE;
}
