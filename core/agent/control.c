/* See control.h. Server side: the connections are sockconn's (non-blocking,
 * bounded sizes, an idle limit, so that no client can stall or exhaust the
 * agent); this file parses one request per connection, checks the peer and
 * answers. Client side: a blocking request used by the CLI. */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "sockconn.h"

#define CTL_STR_(x) #x
#define CTL_STR(x) CTL_STR_(x)

/* A connection (sockconn's, first, so that sockconn hands back this struct) and
 * what the protocol keeps while a request comes in. */
struct client {
	struct sockconn conn;
	struct control *ctl;
	struct control_peer peer;
	size_t hdr_len;
	size_t need; /* header + body bytes expected, once the header is read */
};

struct control {
	const struct control_handlers *handlers;
	void *ctx;
	int fd;
	char *path;
	gid_t vigil_gid; /* (gid_t)-1 when the group does not exist */
	struct sockconn_server *srv;
};

const char *control_socket_path(const char *state_dir, char *buf, size_t len)
{
	snprintf(buf, len, "%s/control.sock", state_dir);
	return buf;
}

/* ------------------------------------------------------------ server */

static void client_answer_error(struct client *c, const char *msg)
{
	buf_reset(&c->conn.out);
	buf_printf(&c->conn.out, "error: %s\n", msg);
}

/* Words of the request line, split on spaces; at most `max`. */
static size_t split_words(char *line, char **w, size_t max)
{
	size_t n = 0;
	char *save = NULL;

	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return max + 1;
		w[n++] = t;
	}
	return n;
}

static bool printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return false;
	return true;
}

/* Validation runs in the loop: its cost must stay small whatever the body.
 * Some shapes (thousands of continuation lines or bad keys) cost more than
 * linear time, so bound the lines too: a monitor file has a few dozen. */
static bool check_body_small(const char *body, size_t len)
{
	size_t lines = 0;

	for (const char *p = body; (p = memchr(p, '\n', len - (size_t)(p - body))); p++)
		if (++lines > CONTROL_MAX_CHECK_LINES)
			return false;
	return true;
}

static void dispatch(struct client *c, char *line, const char *body, size_t body_len)
{
	const struct control_handlers *h = c->ctl->handlers;
	void *a = c->ctl->ctx;
	char *w[5];
	size_t n = split_words(line, w, 4);

	if (n == 0 || n > 4)
		return client_answer_error(c, "malformed request");
	if (strcmp(w[0], "status") == 0 && n <= 2)
		h->status(a, &c->peer, n == 2 ? w[1] : NULL, &c->conn.out);
	else if (strcmp(w[0], "stop") == 0 && (n == 2 || (n == 3 && strcmp(w[2], "--force") == 0)))
		h->stop(a, &c->peer, w[1], n == 3, &c->conn.out);
	else if (strcmp(w[0], "reload") == 0 && n == 1)
		h->reload(a, &c->peer, &c->conn.out);
	else if (strcmp(w[0], "check") == 0 && n == 3 && !check_body_small(body, body_len))
		client_answer_error(c, "check: more than " CTL_STR(CONTROL_MAX_CHECK_LINES) " lines: "
				    "not a monitor file");
	else if (strcmp(w[0], "check") == 0 && n == 3)
		h->check(a, &c->peer, w[1], body, body_len, &c->conn.out);
	else
		client_answer_error(c, "unknown request (status [NAME], stop NAME [--force], "
				    "reload, check NAME LENGTH)");
}

/* The request is complete: answer it into c->conn.out. */
static void client_answer(struct client *c, size_t hdr_len)
{
	char line[CONTROL_MAX_LINE + 1];
	size_t body_len = c->conn.in.len - hdr_len;
	char *body = malloc(body_len + 1);

	memcpy(line, c->conn.in.p, hdr_len - 1);
	line[hdr_len - 1] = '\0';
	if (hdr_len > 1 && line[hdr_len - 2] == '\r')
		line[hdr_len - 2] = '\0';
	/* the whole body, NUL bytes included: cutting at one would validate less
	 * than was sent */
	if (body) {
		memcpy(body, c->conn.in.p + hdr_len, body_len);
		body[body_len] = '\0';
	}
	if (!body || !printable(line, strlen(line)))
		client_answer_error(c, "malformed request");
	else
		dispatch(c, line, body, body_len);
	free(body);
}

/* A header line is in c->conn.in: how many bytes the whole request has, or 0 after
 * answering with an error. */
static size_t request_size(struct client *c, size_t hdr_len)
{
	unsigned long long len;
	const char *sp;
	char *end;

	if (hdr_len > CONTROL_MAX_LINE) {
		client_answer_error(c, "request line too long");
		return 0;
	}
	if (strncmp(c->conn.in.p, "check ", 6) != 0)
		return hdr_len;
	sp = memrchr(c->conn.in.p, ' ', hdr_len);
	errno = 0;
	len = strtoull(sp + 1, &end, 10);
	if (errno || end == sp + 1 || (*end != '\n' && *end != '\r') || sp[1] == '-') {
		client_answer_error(c, "check: malformed length");
		return 0;
	}
	if (len > CONTROL_MAX_BODY) {
		client_answer_error(c, "check: file too large");
		return 0;
	}
	return hdr_len + (size_t)len;
}

/* Feed what arrived: true once a request is complete or broken, and answered. */
static bool client_consume(struct sockconn *conn, void *ctx)
{
	struct client *c = (struct client *)conn;
	const struct buf *in = &conn->in;
	char *nl;

	(void)ctx;
	if (!c->need) {
		nl = memchr(in->p, '\n', in->len);
		if (!nl && in->len >= CONTROL_MAX_LINE)
			return client_answer_error(c, "request line too long"), true;
		if (!nl)
			return false;
		c->hdr_len = (size_t)(nl - in->p) + 1;
		c->need = request_size(c, c->hdr_len);
		if (!c->need)
			return true;
	}
	if (in->len > c->need)
		return client_answer_error(c, "more data than the request announced"), true;
	if (in->len < c->need)
		return false;
	client_answer(c, c->hdr_len);
	return true;
}

static bool peer_in_group(int fd, gid_t primary, gid_t want)
{
	gid_t groups[256];
	socklen_t len = sizeof(groups);

	if (want == (gid_t)-1)
		return false;
	if (primary == want)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == want)
			return true;
	return false;
}

/* Who is asking decides what it may see: no credentials, no client. */
static int client_accepted(struct sockconn *conn, void *ctx)
{
	struct client *c = (struct client *)conn;
	struct control *ctl = ctx;
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(conn->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	c->ctl = ctl;
	c->peer = (struct control_peer){.uid = cred.uid, .gid = cred.gid, .pid = cred.pid};
	c->peer.privileged = cred.uid == 0 || cred.uid == geteuid() ||
			     peer_in_group(conn->fd, cred.gid, ctl->vigil_gid);
	return 0;
}

/* A client turned away (the table full) is told so; after an answer, up to
 * max_drain bytes are read so that a peer still sending gets no reset. */
static struct sockconn_server *control_serve(struct loop *loop, struct control *ctl)
{
	const struct sockconn_config cfg = {
		.max_clients = CONTROL_MAX_CLIENTS,
		.conn_size = sizeof(struct client),
		/* one byte past the largest request: consume answers "more data" */
		.max_in = CONTROL_MAX_LINE + CONTROL_MAX_BODY + 1,
		.max_drain = 4 * CONTROL_MAX_BODY,
		.idle_ms = CONTROL_IDLE_MS,
		.busy = "error: busy\n",
		.accepted = client_accepted,
		.consume = client_consume,
		.ctx = ctl,
	};

	return sockconn_serve(loop, ctl->fd, &cfg);
}

/* Is an agent answering at path? */
static bool socket_alive(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return alive;
}

static int control_bind(struct control *ctl, char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	mode_t old;
	int rc;

	if (strlen(ctl->path) >= sizeof(sa.sun_path))
		return snprintf(err, errlen, "%s: path too long", ctl->path), -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl->path);
	if (socket_alive(ctl->path))
		return snprintf(err, errlen, "another agent answers on %s", ctl->path), -EADDRINUSE;
	unlink(ctl->path);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ctl->fd < 0)
		return snprintf(err, errlen, "socket: %s", strerror(errno)), -errno;
	/* Created 0660 from the start: no window where others may connect. */
	old = umask(0117);
	rc = bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || listen(ctl->fd, 128) != 0)
		return snprintf(err, errlen, "%s: %s", ctl->path, strerror(errno)), -errno;
	if (ctl->vigil_gid != (gid_t)-1 && chown(ctl->path, (uid_t)-1, ctl->vigil_gid) != 0)
		log_warnx("control socket %s: cannot give it to group vigil: %s", ctl->path,
			  strerror(errno));
	return 0;
}

struct control *control_open(struct loop *loop, const struct control_handlers *handlers,
			     void *ctx, const char *path, char *err, size_t errlen)
{
	struct control *ctl = calloc(1, sizeof(*ctl));

	if (!ctl || !(ctl->path = strdup(path))) {
		free(ctl);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->handlers = handlers;
	ctl->ctx = ctx;
	ctl->fd = -1;
	/* Looked up once, before the loop runs: NSS may block. */
	ctl->vigil_gid = state_vigil_gid();
	if (control_bind(ctl, err, errlen) != 0 || !(ctl->srv = control_serve(loop, ctl))) {
		if (ctl->fd >= 0)
			close(ctl->fd);
		free(ctl->path);
		free(ctl);
		return NULL;
	}
	return ctl;
}

void control_close(struct control *ctl)
{
	if (!ctl)
		return;
	sockconn_close(ctl->srv);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

/* ------------------------------------------------------------ records */

static void put_str(struct buf *b, const char *key, const char *v)
{
	buf_printf(b, "%s=", key);
	for (; *v; v++) {
		if (*v == '\n')
			buf_puts(b, "\\n");
		else if (*v == '\\')
			buf_puts(b, "\\\\");
		else
			buf_putc(b, *v);
	}
	buf_putc(b, '\n');
}

void control_put_record(struct buf *b, const struct run_record *r)
{
	put_str(b, "name", r->name);
	buf_printf(b, "run=%llu\n", (unsigned long long)r->run);
	put_str(b, "state", r->state);
	buf_printf(b, "pid=%d\nstart_time=%llu\nsupervisor=%d\nowner_pid=%d\nuid=%u\n",
		   (int)r->pid, (unsigned long long)r->start_time, (int)r->supervisor,
		   (int)r->owner_pid, (unsigned)r->uid);
	buf_printf(b, "started_ms=%lld\nended_ms=%lld\nexit_code=%d\nsignal=%d\n",
		   (long long)r->started_ms, (long long)r->ended_ms, r->exit_code, r->signal);
	buf_printf(b, "attempt=%d\nattempts=%d\nnext_at_ms=%lld\n", r->attempt, r->attempts,
		   (long long)r->next_at_ms);
	put_str(b, "outcome", r->outcome);
	buf_printf(b, "expected_ms=%lld\ntimeout_ms=%lld\nprogress=%.2f\nexpected_auto=%d\n",
		   (long long)r->expected_ms, (long long)r->timeout_ms, r->progress, r->expected_auto);
	put_str(b, "log", r->log);
	put_str(b, "command", r->command);
	put_str(b, "last_event", r->last_event);
	put_str(b, "reason", r->reason);
	buf_putc(b, '\n');
}

static void unescape_copy(char *dst, size_t len, const char *s, size_t n)
{
	size_t w = 0;

	for (size_t i = 0; i < n && w + 1 < len; i++) {
		if (s[i] == '\\' && i + 1 < n) {
			i++;
			dst[w++] = s[i] == 'n' ? '\n' : s[i];
		} else {
			dst[w++] = s[i];
		}
	}
	dst[w] = '\0';
}

static void record_field(struct run_record *r, const char *k, size_t klen, const char *v,
			 size_t vlen)
{
	char num[64];
#define KEY(name) (klen == sizeof(#name) - 1 && memcmp(k, #name, klen) == 0)
#define STR(name) if (KEY(name)) { unescape_copy(r->name, sizeof(r->name), v, vlen); return; }
#define NUM(name) if (KEY(name)) { r->name = strtoll(num, NULL, 10); return; }
	STR(name) STR(state) STR(outcome) STR(log) STR(command) STR(last_event) STR(reason)
	snprintf(num, sizeof(num), "%.*s", (int)(vlen < 63 ? vlen : 63), v);
	NUM(run) NUM(pid) NUM(start_time) NUM(supervisor) NUM(owner_pid) NUM(uid)
	NUM(started_ms) NUM(ended_ms) NUM(exit_code) NUM(signal) NUM(expected_ms)
	NUM(timeout_ms) NUM(expected_auto) NUM(attempt) NUM(attempts) NUM(next_at_ms)
	if (KEY(progress))
		r->progress = strtod(num, NULL);
#undef KEY
#undef STR
#undef NUM
}

int control_parse_records(const char *reply, struct run_record **out, size_t *n)
{
	const char *p = strchr(reply, '\n');
	struct run_record *v = NULL, *cur = NULL;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	for (p = p ? p + 1 : reply + strlen(reply); *p;) {
		const char *nl = strchrnul(p, '\n'), *eq = memchr(p, '=', (size_t)(nl - p));

		if (nl == p) {
			cur = NULL;
		} else if (eq) {
			if (!cur) {
				struct run_record *g = realloc(v, (cnt + 1) * sizeof(*v));

				if (!g)
					return free(v), -ENOMEM;
				v = g;
				cur = &v[cnt++];
				memset(cur, 0, sizeof(*cur));
				cur->exit_code = -1;
				cur->progress = -1;
			}
			record_field(cur, p, (size_t)(eq - p), eq + 1, (size_t)(nl - eq - 1));
		}
		p = *nl ? nl + 1 : nl;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/* ------------------------------------------------------------ client */

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, char **reply)
{
	struct buf b = BUF_INIT;
	char tmp[8192];

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t r;

		/* A reload of thousands of monitors takes a while; a dead agent does not. */
		if (poll(&pfd, 1, 60000) != 1) {
			buf_free(&b);
			return -ETIMEDOUT;
		}
		r = recv(fd, tmp, sizeof(tmp), 0);
		if (r < 0 && errno == EINTR)
			continue;
		/* a busy agent may reset us after its whole answer: keep the answer */
		if (r < 0 && errno == ECONNRESET && b.len)
			break;
		if (r < 0) {
			buf_free(&b);
			return -errno;
		}
		if (r == 0)
			break;
		if (buf_append(&b, tmp, (size_t)r) != 0) {
			buf_free(&b);
			return -ENOMEM;
		}
	}
	*reply = b.p ? buf_steal(&b) : strdup("");
	return *reply ? 0 : -ENOMEM;
}

int control_request(const char *state_dir, const char *line, const char *body, size_t body_len,
		    char **reply)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct buf req = BUF_INIT;
	int fd, rc;

	*reply = NULL;
	control_socket_path(state_dir, sa.sun_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	buf_printf(&req, "%s\n", line);
	if (body)
		buf_append(&req, body, body_len);
	rc = send_all(fd, req.p, req.len);
	buf_free(&req);
	if (rc == 0 || rc == -EPIPE || rc == -ECONNRESET)
		rc = read_all(fd, reply);
	close(fd);
	return rc;
}

int control_reply_ok(const char *reply)
{
	return reply && strncmp(reply, "ok", 2) == 0 && (reply[2] == '\n' || reply[2] == ' ');
}

long long control_reply_num(const char *reply, const char *key)
{
	const char *nl = strchrnul(reply, '\n');
	size_t klen = strlen(key);

	for (const char *p = reply; p && p < nl; p = memchr(p, ' ', (size_t)(nl - p))) {
		while (*p == ' ')
			p++;
		if (strncmp(p, key, klen) == 0 && p[klen] == '=')
			return strtoll(p + klen + 1, NULL, 10);
		if (p >= nl)
			break;
	}
	return -1;
}
