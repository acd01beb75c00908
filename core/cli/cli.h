/* The command line: one file per subcommand (cli_<name>.c), shared pieces in
 * cli_common.c. Exit statuses: 0 succeeded, 1 failed, 3 timed out, 4 unknown,
 * 2 usage or configuration error. */
#ifndef VIGIL_CLI_H
#define VIGIL_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "base/config.h"
#include "base/diag.h"

#define EXIT_USAGE 2

int cli_main(int argc, char **argv);
int cli_watch(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_logs(int argc, char **argv);
int cli_stop(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_plugins(int argc, char **argv);
int cli_agent(int argc, char **argv);
int cli_reload(int argc, char **argv);
int cli_history(int argc, char **argv), cli_metrics(int argc, char **argv);
int cli_forget(int argc, char **argv), cli_prune(int argc, char **argv);

/* Global settings any subcommand may take (--plugin-dir, --state-dir). */
struct cli_globals {
	const char *plugin_dir;
	const char *state_dir;
	int verbose;
};
extern struct cli_globals cli_globals;

/* A job described by -c FILE and flags (flags win), for watch and run. */
struct cli_job {
	const char *config_file;
	struct raw_ini ini;
	struct monitor_config mc;
	bool have_mc;
	char *name;
	char **argv; /* run: the command after -- */
	int argc;
	const char *log;      /* run: --log */
	const char *pid_file; /* run: --pid-file (written) */
	bool json;
	const char *status_job; /* watch NAME: the vigil run job watched */
};

/* Parse the job flags of watch (is_run false) or run. Prints what is wrong and
 * returns EXIT_USAGE, or 0; -1 after printing help (exit 0). */
int cli_job_parse(struct cli_job *job, int argc, char **argv, bool is_run, const char *usage);
/* Build the monitor config (validated) from the job. 0 or EXIT_USAGE with the
 * diagnostics printed. */
int cli_job_config(struct cli_job *job, bool is_run);
void cli_job_free(struct cli_job *job);

/* The state folder in use (created); NULL when it cannot be made. */
const char *cli_state_dir(void);
/* The system agent's folder (/run/vigil) when it is not ours and we may use
 * its socket (root, group vigil), and no --state-dir was given; else NULL. */
const char *cli_system_dir(void);
/* The folder that holds job NAME: ours, else the system agent's when it has
 * the job; ours when neither has it. NULL as cli_state_dir. */
const char *cli_state_dir_for(const char *name);
/* The folder of the agent to ask (reload): ours when an agent answers there,
 * else the system agent's when we may use it, else ours. */
const char *cli_agent_dir(void);
/* Folder for job logs: $XDG_STATE_HOME/vigil/logs or /var/lib/vigil/logs. */
const char *cli_log_dir(char *buf, size_t len);
/* Shell-quote argv into one command line for sh -c. */
char *cli_join_command(int argc, char **argv);
/* "1h02m03s" */
const char *cli_format_elapsed(long long ms, char *buf, size_t len);
bool cli_is_help(const char *arg);

#endif
