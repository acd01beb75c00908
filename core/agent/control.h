/* The control socket: a unix stream socket in the agent's state folder
 * (/run/vigil/control.sock for root, $XDG_RUNTIME_DIR/vigil/control.sock
 * otherwise), mode 0660, group vigil when that group exists.
 *
 * Protocol: one request per connection. The client sends one line (at most
 * CONTROL_MAX_LINE bytes with its '\n'), words separated by spaces:
 *   status [NAME]           the monitors the peer may see
 *   stop NAME [--force]     SIGTERM (then SIGKILL after the grace), or SIGKILL
 *   reload                  re-read vigil.ini and conf.d (privileged peers only)
 *   check NAME LENGTH       followed by LENGTH bytes (at most CONTROL_MAX_BODY and
 *                           CONTROL_MAX_CHECK_LINES lines): a monitor file,
 *                           validated with the agent's defaults
 * The agent answers with a first line "ok[ key=value...]" or "error: TEXT", then
 * the body, then closes the connection. The status body is one block of
 * key=value lines per monitor (the state folder's record format), blocks
 * separated by an empty line. Peer credentials (SO_PEERCRED, SO_PEERGROUPS)
 * decide what a peer sees: root, the agent's user and group vigil see
 * everything; others see monitors whose file they own or whose process runs
 * as them, and stop only processes running as them. */
#ifndef VIGIL_CONTROL_H
#define VIGIL_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include <stdbool.h>
#include <sys/types.h>

#include "base/loop.h"
#include "base/state.h"

#define CONTROL_MAX_LINE 4096
#define CONTROL_MAX_BODY (256 * 1024)
#define CONTROL_MAX_CHECK_LINES 2000
#define CONTROL_MAX_CLIENTS 64
#define CONTROL_IDLE_MS 5000

/* Who is asking on the control socket. Privileged: root, the agent's own user,
 * or a member of group vigil; the others see and stop only their own jobs. */
struct control_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool privileged;
};

struct buf;
struct control;

/* What the socket's owner answers: control.c parses requests and calls these, so
 * the arrow points one way (the agent knows the socket, not the reverse). Each
 * appends the reply's first line ("ok ..." or "error: ...") and its body to out. */
struct control_handlers {
	void (*status)(void *ctx, const struct control_peer *p, const char *name, struct buf *out);
	void (*stop)(void *ctx, const struct control_peer *p, const char *name, bool force,
		     struct buf *out);
	void (*reload)(void *ctx, const struct control_peer *p, struct buf *out);
	/* text: len bytes, NUL-terminated after them (a NUL among them is the
	 * handler's to refuse) */
	void (*check)(void *ctx, const struct control_peer *p, const char *file, const char *text,
		      size_t len, struct buf *out);
};

/* Bind and listen at path (a stale socket is replaced; a live agent refuses).
 * handlers and ctx must outlive the control socket. */
struct control *control_open(struct loop *loop, const struct control_handlers *handlers,
			     void *ctx, const char *path, char *err, size_t errlen);
void control_close(struct control *c);

/* <state_dir>/control.sock */
const char *control_socket_path(const char *state_dir, char *buf, size_t len);

/* Client: send one request, read the whole answer (NUL-terminated, malloc'd).
 * 0 when an agent answered; -ENOENT or -ECONNREFUSED when none runs; -EACCES
 * when the socket is not ours to use; other -errno. */
int control_request(const char *state_dir, const char *line, const char *body, size_t body_len,
		    char **reply);
/* The reply's first line is "ok...": 1; "error: ...": 0. */
int control_reply_ok(const char *reply);
/* The value of key=V on the reply's first line (e.g. "pid"), or -1. */
long long control_reply_num(const char *reply, const char *key);

/* Status bodies: records as key=value blocks. */
struct buf;
void control_put_record(struct buf *b, const struct run_record *r);
/* Parse the body of a status reply. 0 or -ENOMEM. */
int control_parse_records(const char *reply, struct run_record **v, size_t *n);

#endif
