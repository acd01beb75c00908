/* libFuzzer target: the control socket's request parser (core/agent/control.h),
 * driven through a real socket: control_open on a temporary path, one client
 * connection per input, which sends the input and half-closes; the loop runs
 * until the server has answered and closed. The handlers answer "ok".
 * Properties, beyond no crash / leak / sanitizer report: every request gets
 * exactly one answer, a first line "ok..." or "error: ...", and "ok" only
 * after one handler call. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/control.h"
#include "base/buf.h"
#include "base/loop.h"
#include "fuzz_util.h"

/* Generous: the answer takes a few loop turns. */
#define WAIT_MS 10000

struct server {
	struct loop *loop;
	struct control *ctl;
	char dir[256], path[300];
	size_t calls;
};

static void on_status(void *ctx, const struct control_peer *p, const char *name,
		      struct buf *out)
{
	((struct server *)ctx)->calls++;
	buf_puts(out, "ok\n");
}

static void on_stop(void *ctx, const struct control_peer *p, const char *name, bool force,
		    struct buf *out)
{
	((struct server *)ctx)->calls++;
	buf_puts(out, "ok\n");
}

static void on_reload(void *ctx, const struct control_peer *p, struct buf *out)
{
	((struct server *)ctx)->calls++;
	buf_puts(out, "ok\n");
}

static void on_check(void *ctx, const struct control_peer *p, const char *file,
		     const char *text, size_t len, struct buf *out)
{
	((struct server *)ctx)->calls++;
	buf_printf(out, "ok length=%zu\n", len);
}

static const struct control_handlers handlers = {on_status, on_stop, on_reload, on_check};

/* One server for the whole run: opening a socket per input would only test
 * bind(). */
static struct server *server(void)
{
	static struct server s;
	char err[256];

	if (s.ctl)
		return &s;
	fuzz_mkdtemp(s.dir, sizeof(s.dir), "control");
	snprintf(s.path, sizeof(s.path), "%s/control.sock", s.dir);
	s.loop = loop_new();
	s.ctl = s.loop ? control_open(s.loop, &handlers, &s, s.path, err, sizeof(err)) : NULL;
	if (!s.ctl) {
		fprintf(stderr, "fuzz_control: %s\n", err);
		abort();
	}
	return &s;
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		abort();
	return fd;
}

/* Send what the socket takes now (the server reads between turns). */
static size_t send_some(int fd, const uint8_t *p, size_t len)
{
	ssize_t w = len ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT) : 0;

	return w > 0 ? (size_t)w : 0;
}

/* Run the loop until the server closes; the whole reply in *reply. */
static void exchange(struct server *s, const uint8_t *data, size_t size, struct buf *reply)
{
	int fd = connect_to(s->path);
	size_t sent = 0;
	int64_t deadline = loop_clock_ms() + WAIT_MS;
	char tmp[4096];

	for (;;) {
		ssize_t r;

		if (sent < size && (sent += send_some(fd, data + sent, size - sent)) == size)
			shutdown(fd, SHUT_WR);
		if (!size && sent == 0 && (sent = 1))
			shutdown(fd, SHUT_WR);
		loop_run_once(s->loop, 5);
		while ((r = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0)
			buf_append(reply, tmp, (size_t)r);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			break;
		if (loop_clock_ms() > deadline)
			abort(); /* no answer */
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server *s = server();
	struct buf reply = BUF_INIT;
	size_t calls = s->calls;

	exchange(s, data, size, &reply);
	buf_append(&reply, "", 1);
	if (strncmp(reply.p, "ok", 2) != 0 && strncmp(reply.p, "error: ", 7) != 0 &&
	    reply.len > 1)
		abort(); /* an answer that is neither */
	if (strncmp(reply.p, "ok", 2) == 0 && s->calls != calls + 1)
		abort(); /* ok without a handler call */
	buf_free(&reply);
	return 0;
}
