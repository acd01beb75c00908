/* See metrics_http.h. The connections are sockconn's (as the control
 * socket's): this file reads the request head and writes the answer. */
#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "sockconn.h"

struct metrics_http {
	int fd;
	metrics_http_render render;
	void *ctx;
	struct sockconn_server *srv;
};

static void respond(struct sockconn *c, const char *status, const char *type,
		    const char *body, size_t len)
{
	buf_printf(&c->out, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		   "Connection: close\r\n\r\n", status, type, len);
	buf_append(&c->out, body, len);
}

/* GET /metrics (a query string ignored), HEAD too; anything else is refused. */
static void client_answer(struct metrics_http *h, struct sockconn *c)
{
	const char *p = c->in.p;
	bool head = strncmp(p, "HEAD ", 5) == 0, get = strncmp(p, "GET ", 4) == 0;
	const char *path = p + (head ? 5 : 4);
	size_t plen = strcspn(path, " ?\r\n");
	struct buf body = BUF_INIT;

	if (!get && !head)
		respond(c, "405 Method Not Allowed", "text/plain", "GET /metrics only\n", 18);
	else if (plen != 8 || strncmp(path, "/metrics", 8) != 0)
		respond(c, "404 Not Found", "text/plain", "GET /metrics only\n", 18);
	else if (h->render(h->ctx, &body) != 0)
		respond(c, "500 Internal Server Error", "text/plain", "cannot read the state\n", 22);
	else
		respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
			body.p ? body.p : "", head ? 0 : body.len);
	buf_free(&body);
}

/* The head ends at an empty line; a bigger request is dropped (max_in). */
static bool client_consume(struct sockconn *c, void *ctx)
{
	const char *in = buf_cstr(&c->in);

	if (!strstr(in, "\r\n\r\n") && !strstr(in, "\n\n"))
		return false;
	client_answer(ctx, c);
	return true;
}

/* "HOST:PORT" or "[HOST]:PORT" into host and port; false when malformed. */
static bool split_addr(const char *addr, char *host, size_t hlen, const char **port)
{
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t n;

	if (!colon || !colon[1])
		return false;
	n = (size_t)(colon - addr);
	if (addr[0] == '[') {
		if (n < 2 || addr[n - 1] != ']')
			return false;
		h = addr + 1;
		n -= 2;
	}
	if (n == 0 || n >= hlen)
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = colon + 1;
	return true;
}

static int listen_on(const char *addr, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	char host[256];
	const char *port;
	int fd = -1, one = 1, rc;

	if (!split_addr(addr, host, sizeof(host), &port))
		return snprintf(err, errlen, "metrics_listen \"%s\": use ADDR:PORT (numeric)", addr), -1;
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0)
		return snprintf(err, errlen, "metrics_listen \"%s\": %s", addr, gai_strerror(rc)), -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
		snprintf(err, errlen, "metrics_listen \"%s\": %s", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* A client's life is sockconn's; a full table closes the newcomer at once. */
static struct sockconn_server *serve(struct loop *loop, struct metrics_http *h)
{
	const struct sockconn_config cfg = {
		.max_clients = METRICS_HTTP_MAX_CLIENTS,
		.conn_size = sizeof(struct sockconn),
		.max_in = METRICS_HTTP_MAX_REQUEST,
		.max_drain = SIZE_MAX, /* the idle limit ends a peer that never closes */
		.idle_ms = METRICS_HTTP_IDLE_MS,
		.consume = client_consume,
		.ctx = h,
	};

	return sockconn_serve(loop, h->fd, &cfg);
}

struct metrics_http *metrics_http_open(struct loop *loop, const char *addr,
				       metrics_http_render render, void *ctx, char *err,
				       size_t errlen)
{
	struct metrics_http *h = calloc(1, sizeof(*h));

	if (!h)
		return snprintf(err, errlen, "out of memory"), NULL;
	*h = (struct metrics_http){.render = render, .ctx = ctx};
	h->fd = listen_on(addr, err, errlen);
	if (h->fd >= 0 && (h->srv = serve(loop, h)))
		return h;
	if (h->fd >= 0) {
		snprintf(err, errlen, "metrics_listen: cannot watch the socket");
		close(h->fd);
	}
	free(h);
	return NULL;
}

void metrics_http_close(struct metrics_http *h)
{
	if (!h)
		return;
	sockconn_close(h->srv);
	close(h->fd);
	free(h);
}
