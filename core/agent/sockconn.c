/* See sockconn.h. */
#include "sockconn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct sockconn_server {
	struct loop *loop;
	int fd;
	struct sockconn_config cfg;
	struct sockconn **clients; /* cfg.max_clients slots */
};

static void conn_free(struct sockconn *c)
{
	struct sockconn_server *s = c->srv;

	for (size_t i = 0; i < s->cfg.max_clients; i++)
		if (s->clients[i] == c)
			s->clients[i] = NULL;
	if (c->timer > 0)
		loop_del_timer(s->loop, c->timer);
	loop_del_fd(s->loop, c->fd);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static int64_t conn_idle(struct loop *loop, int64_t id, void *data)
{
	struct sockconn *c = data;

	(void)loop;
	(void)id;
	c->timer = 0;
	conn_free(c);
	return LOOP_TIMER_DONE;
}

/* After the answer: read and drop until the peer closes (closing with unread
 * input would reset the connection before the peer reads the answer). */
static void conn_drain(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct sockconn *c = data;
	char tmp[8192];
	ssize_t r;

	(void)loop;
	(void)revents;
	while ((r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
		if ((c->discarded += (size_t)r) > c->srv->cfg.max_drain)
			break;
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
	    c->discarded <= c->srv->cfg.max_drain)
		return;
	conn_free(c);
}

static void conn_flush(struct sockconn *c)
{
	while (c->sent < c->out.len) {
		ssize_t w = send(c->fd, c->out.p + c->sent, c->out.len - c->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* EPOLLOUT brings us back */
		if (w <= 0)
			return conn_free(c);
		c->sent += (size_t)w;
	}
	shutdown(c->fd, SHUT_WR);
	loop_add_fd(c->srv->loop, c->fd, EPOLLIN, conn_drain, c);
}

static void conn_io(struct loop *loop, int fd, uint32_t revents, void *data);

/* Read at most max_in bytes in all; the protocol says when it has its answer. */
static void conn_read(struct sockconn *c)
{
	struct sockconn_server *s = c->srv;
	char tmp[8192];

	while (!c->answered) {
		size_t room = s->cfg.max_in - c->in.len;
		ssize_t r = room ? recv(c->fd, tmp, room < sizeof(tmp) ? room : sizeof(tmp),
					MSG_DONTWAIT) : 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0 || buf_append(&c->in, tmp, (size_t)r) != 0)
			return conn_free(c);
		c->answered = s->cfg.consume(c, s->cfg.ctx);
	}
	loop_add_fd(s->loop, c->fd, EPOLLOUT, conn_io, c);
	conn_flush(c);
}

static void conn_io(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct sockconn *c = data;

	(void)loop;
	(void)fd;
	if (c->answered)
		conn_flush(c);
	else if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(c);
}

/* No room: say so when there is something to say. Read what has already
 * arrived (a request line is small) before closing, so that the kernel does not
 * reset the connection and destroy the answer. */
static void conn_turn_away(const struct sockconn_config *cfg, int cfd)
{
	char tmp[8192];

	if (cfg->busy) {
		(void)!send(cfd, cfg->busy, strlen(cfg->busy), MSG_NOSIGNAL | MSG_DONTWAIT);
		shutdown(cfd, SHUT_WR);
		for (int i = 0; i < 8 && recv(cfd, tmp, sizeof(tmp), MSG_DONTWAIT) > 0; i++)
			;
	}
	close(cfd);
}

/* A client in a free slot, or NULL when full or out of memory. */
static struct sockconn *conn_new(struct sockconn_server *s, int cfd)
{
	struct sockconn *c;
	size_t slot = 0;

	while (slot < s->cfg.max_clients && s->clients[slot])
		slot++;
	if (slot == s->cfg.max_clients || !(c = calloc(1, s->cfg.conn_size)))
		return NULL;
	*c = (struct sockconn){.srv = s, .fd = cfd, .in = BUF_INIT, .out = BUF_INIT};
	if (s->cfg.accepted && s->cfg.accepted(c, s->cfg.ctx) != 0) {
		free(c);
		return NULL;
	}
	s->clients[slot] = c;
	return c;
}

static void on_accept(struct loop *loop, int fd, uint32_t revents, void *data)
{
	struct sockconn_server *s = data;
	struct sockconn *c;
	int cfd;

	(void)revents;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		/* Turned away: this client only, the others go on. */
		if (!(c = conn_new(s, cfd))) {
			conn_turn_away(&s->cfg, cfd);
			continue;
		}
		c->timer = loop_add_timer(loop, s->cfg.idle_ms, conn_idle, c, NULL);
		if (c->timer < 0 || loop_add_fd(loop, cfd, EPOLLIN, conn_io, c) != 0)
			conn_free(c);
	}
}

struct sockconn_server *sockconn_serve(struct loop *loop, int listen_fd,
				       const struct sockconn_config *cfg)
{
	struct sockconn_server *s = calloc(1, sizeof(*s));

	if (s)
		s->clients = calloc(cfg->max_clients, sizeof(*s->clients));
	if (!s || !s->clients) {
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	*s = (struct sockconn_server){.loop = loop, .fd = listen_fd, .cfg = *cfg,
				      .clients = s->clients};
	if (loop_add_fd(loop, listen_fd, EPOLLIN, on_accept, s) != 0) {
		free(s->clients);
		free(s);
		return NULL;
	}
	return s;
}

void sockconn_close(struct sockconn_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->cfg.max_clients; i++)
		if (s->clients[i])
			conn_free(s->clients[i]);
	loop_del_fd(s->loop, s->fd);
	free(s->clients);
	free(s);
}
