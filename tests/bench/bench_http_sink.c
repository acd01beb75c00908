/* A fast loopback HTTP/1.1 sink for bench_webhook.py: one thread, epoll,
 * keep-alive, answers every request "200 ok" in one write, and logs
 * "<wall-clock seconds.nanoseconds of the answer> <body>\n" per request to
 * the file given (buffered, flushed whenever the loop goes idle). Prints its
 * port on stdout. Bodies must fit one line (JSON events do).
 *
 *   bench_http_sink LOGFILE */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX (1 << 20)

struct conn {
	int fd;
	size_t len;
	char buf[BUF_MAX];
};

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
			     "Content-Type: text/plain\r\n\r\nok";

/* One complete request at the start of c->buf: its total length, or 0. */
static size_t request_len(struct conn *c, const char **body, size_t *blen)
{
	char *end = memmem(c->buf, c->len, "\r\n\r\n", 4), *p;
	size_t head, cl = 0;

	if (!end)
		return 0;
	head = (size_t)(end - c->buf) + 4;
	for (p = c->buf; p && p < end; p = memchr(p, '\n', (size_t)(end - p))) {
		p += *p == '\n';
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			cl = strtoul(p + 15, NULL, 10);
	}
	if (c->len < head + cl)
		return 0;
	*body = c->buf + head;
	*blen = cl;
	return head + cl;
}

static void serve(struct conn *c, FILE *log)
{
	const char *body;
	size_t blen, n;

	while ((n = request_len(c, &body, &blen))) {
		struct timespec ts;

		if (write(c->fd, answer, sizeof(answer) - 1) < 0)
			return;
		clock_gettime(CLOCK_REALTIME, &ts);
		fprintf(log, "%lld.%09ld %.*s\n", (long long)ts.tv_sec, ts.tv_nsec, (int)blen,
			body);
		memmove(c->buf, c->buf + n, c->len - n);
		c->len -= n;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t alen = sizeof(a);
	struct epoll_event ev, evs[64];
	int lfd, ep, one = 1;
	FILE *log;

	if (argc != 2 || !(log = fopen(argv[1], "w")))
		return 2;
	setvbuf(log, NULL, _IOFBF, 1 << 20);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 512) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		return 1;
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, 50);

		if (n <= 0) {
			fflush(log);
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

				if (fd < 0 || !(c = calloc(1, sizeof(*c)))) {
					if (fd >= 0)
						close(fd);
					continue;
				}
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				c->fd = fd;
				ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				continue;
			}
			r = read(c->fd, c->buf + c->len, BUF_MAX - c->len);
			if (r <= 0 || (c->len += (size_t)r) == BUF_MAX) {
				close(c->fd);
				free(c);
				continue;
			}
			serve(c, log);
		}
	}
}
