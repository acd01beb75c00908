/* See metrics_http.h. Shaped like control.c's server: accept, read until the
 * end of the request head, answer, half-close, drain; an idle timer ends a
 * client that stalls. */
#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"

struct http_client {
	struct metrics_http *h;
	int fd;
	int64_t timer;
	struct buf in, out;
	size_t sent;
	bool answered;
};

struct metrics_http {
	struct loop *loop;
	int fd;
	metrics_http_render render;
	void *ctx;
	struct http_client *clients[METRICS_HTTP_MAX_CLIENTS];
};

static void client_free(struct http_client *c)
{
	struct metrics_http *h = c->h;

	for (size_t i = 0; i < METRICS_HTTP_MAX_CLIENTS; i++)
		if (h->clients[i] == c)
			h->clients[i] = NULL;
	if (c->timer > 0)
		loop_del_timer(h->loop, c->timer);
	loop_del_fd(h->loop, c->fd);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static int64_t client_idle(struct loop *loop, int64_t id, void *data)
{
	struct http_client *c = data;

	(void)loop;
	(void)id;
	c->timer = 0;
	client_free(c);
	return LOOP_TIMER_DONE;
}

/* After the answer: read and drop until the peer closes (closing with unread
 * input would reset the connection before the answer is read). */
static void client_drain(struct loop *loop, int fd, uint32_t revents, void *data)
{
	char tmp[4096];
	ssize_t r;

	(void)loop;
	(void)revents;
	while ((r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
		;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	client_free(data);
}

static void client_flush(struct http_client *c)
{
	while (c->sent < c->out.len) {
		ssize_t w = send(c->fd, c->out.p + c->sent, c->out.len - c->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* EPOLLOUT brings us back */
		if (w <= 0)
			return client_free(c);
		c->sent += (size_t)w;
	}
	shutdown(c->fd, SHUT_WR);
	loop_add_fd(c->h->loop, c->fd, EPOLLIN, client_drain, c);
}

static void respond(struct http_client *c, const char *status, const char *type,
		    const char *body, size_t len)
{
	buf_printf(&c->out, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		   "Connection: close\r\n\r\n", status, type, len);
	buf_append(&c->out, body, len);
}

/* GET /metrics (a query string ignored), HEAD too; anything else is refused. */
static void client_answer(struct http_client *c)
{
	const char *p = c->in.p;
	bool head = strncmp(p, "HEAD ", 5) == 0, get = strncmp(p, "GET ", 4) == 0;
	const char *path = p + (head ? 5 : 4);
	size_t plen = strcspn(path, " ?\r\n");
	struct buf body = BUF_INIT;

	c->answered = true;
	if (!get && !head)
		respond(c, "405 Method Not Allowed", "text/plain", "GET /metrics only\n", 18);
	else if (plen != 8 || strncmp(path, "/metrics", 8) != 0)
		respond(c, "404 Not Found", "text/plain", "GET /metrics only\n", 18);
	else if (c->h->render(c->h->ctx, &body) != 0)
		respond(c, "500 Internal Server Error", "text/plain", "cannot read the state\n", 22);
	else
		respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
			body.p ? body.p : "", head ? 0 : body.len);
	buf_free(&body);
}

static void client_io(struct loop *loop, int fd, uint32_t revents, void *data);

/* The head ends at an empty line; a bigger request is refused. */
static void client_read(struct http_client *c)
{
	char tmp[1024];
	ssize_t r;

	while ((r = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0) {
		if (c->in.len + (size_t)r > METRICS_HTTP_MAX_REQUEST || buf_append(&c->in, tmp, (size_t)r))
			return client_free(c);
		if (strstr(buf_cstr(&c->in), "\r\n\r\n") || strstr(buf_cstr(&c->in), "\n\n"))
			break;
	}
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		return client_free(c);
	if (r > 0) {
		client_answer(c);
		loop_add_fd(c->h->loop, c->fd, EPOLLOUT, client_io, c);
		client_flush(c);
	}
}

static void client_io(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct http_client *c = data;

	(void)loop;
	(void)fd;
	if (c->answered)
		client_flush(c);
	else if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_read(c);
}

static void on_accept(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct metrics_http *h = data;
	struct http_client *c;
	size_t slot = 0;
	int cfd;

	(void)revents;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		while (slot < METRICS_HTTP_MAX_CLIENTS && h->clients[slot])
			slot++;
		/* Full, or out of memory: this client is turned away, the others go on. */
		if (slot == METRICS_HTTP_MAX_CLIENTS || !(c = calloc(1, sizeof(*c)))) {
			close(cfd);
			continue;
		}
		*c = (struct http_client){.h = h, .fd = cfd, .in = BUF_INIT, .out = BUF_INIT};
		h->clients[slot] = c;
		c->timer = loop_add_timer(loop, METRICS_HTTP_IDLE_MS, client_idle, c, NULL);
		if (c->timer < 0 || loop_add_fd(loop, cfd, EPOLLIN, client_io, c) != 0)
			client_free(c);
	}
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

struct metrics_http *metrics_http_open(struct loop *loop, const char *addr,
				       metrics_http_render render, void *ctx, char *err,
				       size_t errlen)
{
	struct metrics_http *h = calloc(1, sizeof(*h));

	if (!h)
		return snprintf(err, errlen, "out of memory"), NULL;
	*h = (struct metrics_http){.loop = loop, .render = render, .ctx = ctx};
	h->fd = listen_on(addr, err, errlen);
	if (h->fd >= 0 && loop_add_fd(loop, h->fd, EPOLLIN, on_accept, h) == 0)
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
	for (size_t i = 0; i < METRICS_HTTP_MAX_CLIENTS; i++)
		if (h->clients[i])
			client_free(h->clients[i]);
	loop_del_fd(h->loop, h->fd);
	close(h->fd);
	free(h);
}
