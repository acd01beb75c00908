/* The agent's small non-blocking servers (the control socket, the metrics
 * listener) share one connection life: accept into a bounded table (or turn the
 * client away), read into a bounded buffer until the protocol has its answer,
 * write it out, half-close and drain, and end any client that stays longer than
 * an idle limit. The protocol only says when the input is complete. */
#ifndef VIGIL_SOCKCONN_H
#define VIGIL_SOCKCONN_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/loop.h"

struct sockconn_server;

/* One client. A protocol with state of its own puts this first in a bigger
 * struct and sets conn_size. */
struct sockconn {
	struct sockconn_server *srv;
	int fd;
	int64_t timer;
	struct buf in, out;
	size_t sent;
	size_t discarded; /* after the answer: unread input is drained, not reset */
	bool answered;
};

struct sockconn_config {
	size_t max_clients;
	size_t conn_size; /* sizeof the protocol's client struct, at least sizeof(struct sockconn) */
	size_t max_in;	  /* more input than this before an answer: the client is dropped */
	size_t max_drain; /* input read after the answer before giving up on the peer */
	int idle_ms;	  /* a client's whole life, from accept */
	const char *busy; /* said to a client turned away, or NULL to just close */
	/* Just accepted (fd set): 0 keeps the client, anything else turns it away.
	 * NULL: keep every client. */
	int (*accepted)(struct sockconn *c, void *ctx);
	/* More input is in c->in: true once the answer is in c->out. */
	bool (*consume)(struct sockconn *c, void *ctx);
	void *ctx;
};

/* Serve the clients of listen_fd (listening, non-blocking) in loop. The fd
 * stays the caller's, to close after sockconn_close. NULL on failure (errno). */
struct sockconn_server *sockconn_serve(struct loop *loop, int listen_fd,
				       const struct sockconn_config *cfg);
/* End every client and stop watching the listening fd. */
void sockconn_close(struct sockconn_server *s);

#endif
