/* The agent (`vigil agent`): vigil.ini and conf.d/NAME.ini, one monitor per file,
 * in one loop. SIGHUP or the control socket's `reload` builds the new set of
 * monitors first and then applies it: added, removed and changed (by content)
 * monitors; unchanged ones are not touched. Run numbers continue from the state
 * folder, across reloads and restarts. */
#ifndef VIGIL_AGENT_H
#define VIGIL_AGENT_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"

struct agent;

struct agent_args {
	const char *config_file; /* NULL: <sysconfdir>/vigil/vigil.ini */
	const char *conf_dir;    /* NULL: vigil.ini's conf_dir, else next to it */
};

/* Runs until SIGTERM or SIGINT: the process exit status. */
int agent_main(const struct agent_args *args);

/* Who is asking on the control socket. Privileged: root, the agent's own user,
 * or a member of group vigil; the others see and stop only their own jobs. */
struct control_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool privileged;
};

/* The control socket's commands (control.c parses, these answer). Each appends
 * the reply's first line ("ok ..." or "error: ...") and its body to out. */
void agent_ctl_status(struct agent *a, const struct control_peer *p, const char *name,
		      struct buf *out);
void agent_ctl_stop(struct agent *a, const struct control_peer *p, const char *name, bool force,
		    struct buf *out);
void agent_ctl_reload(struct agent *a, const struct control_peer *p, struct buf *out);
void agent_ctl_check(struct agent *a, const struct control_peer *p, const char *file,
		     const char *text, struct buf *out);

#endif
