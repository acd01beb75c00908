/* The agent (`vigil agent`): vigil.ini and conf.d/NAME.ini, one monitor per file,
 * in one loop. SIGHUP or the control socket's `reload` builds the new set of
 * monitors first and then applies it: added, removed and changed (by content)
 * monitors; unchanged ones are not touched. Run numbers continue from the state
 * folder, across reloads and restarts. */
#ifndef VIGIL_AGENT_H
#define VIGIL_AGENT_H

#include <stdbool.h>
#include <sys/types.h>


struct agent;

struct agent_args {
	const char *config_file; /* NULL: <sysconfdir>/vigil/vigil.ini */
	const char *conf_dir;    /* NULL: vigil.ini's conf_dir, else next to it */
	const char *state_dir;   /* NULL: vigil.ini's state_dir, else the default */
	const char *plugin_dir;  /* NULL: vigil.ini's plugin_dir, else the built-in */
};

/* agent_main's status for a broken vigil.ini or folder: the command line's
 * "usage or configuration error". */
#define AGENT_EXIT_CONFIG 2

/* vigil check: paths are monitor files, conf.d folders, a vigil.ini or its
 * folder, in any order; checked against that vigil.ini (config_file wins, else
 * the installed one). 0 when clean, else AGENT_EXIT_CONFIG (diagnostics). */
struct agent_check_args {
	const char *config_file, *plugin_dir;
	char **paths;
	size_t n_paths;
};
int agent_check(const struct agent_check_args *args);

/* Runs until SIGTERM or SIGINT: the process exit status. */
int agent_main(const struct agent_args *args);

#endif
