/* The stdout notifier: one readable line per event (format = text), or the
 * event's schema v1 JSON object per line (format = json; `--notify json`).
 *
 * Lines are written whole and in order. When the reader is slow (a pipe into
 * less, a full socket buffer) the rest is queued and written when the fd is
 * writable again, through the host's loop; a line counts as delivered only
 * once all of it is written. The loop never blocks on a pipe or a terminal:
 * start() opens a private, non-blocking description of it (see out_open). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/report.h"
#include "vigil/plugin.h"

/* A growable byte buffer (plugins link no core code, so not core/buf.c). */
struct lbuf {
	char *p;
	size_t len, cap;
};

struct pending {
	uint64_t token;
	size_t end; /* offset in the queue just past the token's last byte */
};

struct out {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	bool json;
	int cfg_fd;    /* the configured fd, never closed by us */
	int fd;        /* where we write: cfg_fd or own_fd */
	int own_fd;    /* our private non-blocking description, or -1 */
	bool is_sock;  /* send(MSG_DONTWAIT | MSG_NOSIGNAL) */
	bool watching; /* EPOLLOUT watch installed */
	struct lbuf line;  /* scratch: the line being formatted */
	struct lbuf queue; /* bytes not yet written, from q_head */
	size_t q_head;
	struct pending *tok; /* tokens waiting for their bytes, in order */
	size_t n_tok, cap_tok;
};

/* ------------------------------------------------------------------ lbuf */

static int lb_reserve(struct lbuf *b, size_t extra)
{
	size_t cap;
	char *p;

	if (b->cap - b->len > extra)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len <= extra)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int lb_add(struct lbuf *b, const void *p, size_t len)
{
	if (lb_reserve(b, len) < 0)
		return -ENOMEM;
	if (len)
		memcpy(b->p + b->len, p, len);
	b->len += len;
	return 0;
}

static int lb_puts(struct lbuf *b, const char *s)
{
	return lb_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static int lb_printf(struct lbuf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENOMEM; /* only short numbers are printed here */
	return lb_add(b, tmp, (size_t)n);
}

/* ------------------------------------------------------------ text lines */

/* The length of the well-formed UTF-8 sequence at s[0..n), 0 if none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 1;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 2, lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 3, lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	for (size_t i = 1; i <= need; i++, lo = 0x80, hi = 0xbf)
		if (i >= n || s[i] < lo || s[i] > hi)
			return 0;
	return need + 1;
}

static bool txt_needs_quotes(const char *s, size_t len)
{
	if (len == 0)
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c == 0x7f || strchr("\"\\=[]", c))
			return true;
	}
	return false;
}

/* Append s so that it cannot break the line or fool a terminal: control
 * characters (C0, DEL, C1) and invalid UTF-8 bytes become escapes. Quoted,
 * " and \ are escaped too. */
static int txt_put(struct lbuf *b, const char *s, size_t len, bool quoted)
{
	const unsigned char *u = (const unsigned char *)s;
	int rc = quoted ? lb_add(b, "\"", 1) : 0;

	for (size_t i = 0; i < len && rc == 0;) {
		size_t n = utf8_len(u + i, len - i);

		if (n == 1 && u[i] >= 0x20 && u[i] != 0x7f &&
		    !(quoted && (u[i] == '"' || u[i] == '\\')))
			rc = lb_add(b, s + i, 1);
		else if (n == 1 && strchr("\"\\\n\t\r", u[i]) && u[i])
			rc = lb_printf(b, "\\%c", u[i] == '\n' ? 'n' : u[i] == '\t' ? 't' :
					     u[i] == '\r' ? 'r' : u[i]);
		else if (n == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0)
			rc = lb_printf(b, "\\u%04x", u[i + 1]); /* C1 control */
		else if (n > 1)
			rc = lb_add(b, s + i, n);
		else
			rc = lb_printf(b, "\\x%02x", u[i]);
		i += n ? n : 1;
	}
	return rc == 0 && quoted ? lb_add(b, "\"", 1) : rc;
}

static bool field_is_seconds(const char *name)
{
	static const char *const secs[] = {"duration", "elapsed", "limit", "silent_for"};

	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++)
		if (strcmp(name, secs[i]) == 0)
			return true;
	return false;
}

/* A short number: at most three decimals, trailing zeros dropped. */
static int txt_put_double(struct lbuf *b, double d, const char *unit)
{
	char tmp[64];
	size_t n;

	if (!(d > -1e15 && d < 1e15))
		snprintf(tmp, sizeof(tmp), "%g", d);
	else
		snprintf(tmp, sizeof(tmp), "%.3f", d);
	n = strlen(tmp);
	if (strchr(tmp, '.') && !strchr(tmp, 'e')) {
		while (n > 0 && tmp[n - 1] == '0')
			n--;
		if (n > 0 && tmp[n - 1] == '.')
			n--;
	}
	if (lb_add(b, tmp, n) < 0)
		return -ENOMEM;
	return lb_puts(b, unit);
}

/* Null and list fields (log_tail) are left out of the one-line form, and so
 * is a string the message already says (the outcome, the reason, a path). */
static bool field_shown(const struct vigil_field *f, const char *message)
{
	if (f->type == VIGIL_FIELD_NULL || f->type == VIGIL_FIELD_STRINGS)
		return false;
	if (f->type != VIGIL_FIELD_STRING)
		return true;
	if (!f->u.s.ptr)
		return false;
	return !(message && f->u.s.len &&
		 memmem(message, strlen(message), f->u.s.ptr, f->u.s.len));
}

static int txt_put_field(struct lbuf *b, const struct vigil_field *f)
{
	if (txt_put(b, f->name, strlen(f->name), false) < 0 || lb_add(b, "=", 1) < 0)
		return -ENOMEM;
	switch (f->type) {
	case VIGIL_FIELD_INT:
		return lb_printf(b, "%" PRId64, f->u.i);
	case VIGIL_FIELD_DOUBLE:
		return txt_put_double(b, f->u.d, field_is_seconds(f->name) ? "s" : "");
	case VIGIL_FIELD_BOOL:
		return lb_puts(b, f->u.b ? "true" : "false");
	case VIGIL_FIELD_STRING:
		return txt_put(b, f->u.s.ptr, f->u.s.len,
			       txt_needs_quotes(f->u.s.ptr, f->u.s.len));
	default:
		return 0;
	}
}

/* One line of the end-of-run report: "  peak memory  52.4 MB". */
static int txt_report_line(void *arg, const char *label, const char *value, size_t len)
{
	struct lbuf *b = arg;

	if (lb_printf(b, "  %-12s ", label) < 0 || txt_put(b, value, len, false) < 0)
		return -ENOMEM;
	return lb_add(b, "\n", 1);
}

/* Under the line of `finished`: the report block, then the last lines of output. */
static int txt_report(struct lbuf *b, const struct vigil_event *ev)
{
	const struct vigil_field *tail = NULL;

	if (report_lines(ev, txt_report_line, b) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_fields; i++)
		if (ev->fields[i].name && strcmp(ev->fields[i].name, "log_tail") == 0 &&
		    ev->fields[i].type == VIGIL_FIELD_STRINGS)
			tail = &ev->fields[i];
	if (!tail || !tail->u.list.n)
		return 0;
	if (lb_puts(b, "  last lines:\n") < 0)
		return -ENOMEM;
	for (size_t i = 0; i < tail->u.list.n; i++)
		if (lb_puts(b, "    ") < 0 ||
		    txt_put(b, tail->u.list.v[i].ptr, tail->u.list.v[i].len, false) < 0 ||
		    lb_add(b, "\n", 1) < 0)
			return -ENOMEM;
	return 0;
}

/* "HH:MM:SS monitor#run kind: message [key=value ...]\n", local time; a
 * `finished` event adds its report, indented, below. */
static int txt_format(struct lbuf *b, const struct vigil_record *rec)
{
	const struct vigil_event *ev = rec->event;
	const char *mon = rec->monitor ? rec->monitor : "?";
	time_t t = (time_t)(rec->time_ms / 1000 - (rec->time_ms % 1000 < 0));
	struct tm tm;
	bool open = false;

	if (!localtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	if (lb_printf(b, "%02d:%02d:%02d ", tm.tm_hour, tm.tm_min, tm.tm_sec) < 0 ||
	    txt_put(b, mon, strlen(mon), false) < 0 ||
	    lb_printf(b, "#%" PRIu64 " ", rec->run) < 0 ||
	    txt_put(b, ev->kind, strlen(ev->kind), false) < 0)
		return -ENOMEM;
	if (ev->message && (lb_puts(b, ": ") < 0 ||
			    txt_put(b, ev->message, strlen(ev->message), false) < 0))
		return -ENOMEM;
	for (size_t i = 0; i < ev->n_fields; i++) {
		if (!ev->fields[i].name || !field_shown(&ev->fields[i], ev->message))
			continue;
		if (lb_puts(b, open ? " " : " [") < 0 || txt_put_field(b, &ev->fields[i]) < 0)
			return -ENOMEM;
		open = true;
	}
	if (open && lb_add(b, "]", 1) < 0)
		return -ENOMEM;
	if (lb_add(b, "\n", 1) < 0)
		return -ENOMEM;
	return strcmp(ev->kind, VIGIL_EV_FINISHED) == 0 ? txt_report(b, ev) : 0;
}

/* ----------------------------------------------------------------- output */

/* Bytes written (maybe fewer than len), or -errno; -EAGAIN when full. */
static ssize_t out_write(struct out *o, const char *p, size_t len)
{
	ssize_t n;

	do {
		if (o->is_sock)
			n = send(o->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(o->fd, p, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n == 0 && len ? -EIO : n;
}

/* Write as much of p as the fd takes now: bytes written or -errno (not
 * -EAGAIN, which just stops early). */
static ssize_t out_write_some(struct out *o, const char *p, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = out_write(o, p + done, len - done);

		if (n == -EAGAIN)
			break;
		if (n < 0)
			return n;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static void out_unwatch(struct out *o)
{
	if (o->watching)
		o->host->unwatch_fd(o->ctx, o->fd);
	o->watching = false;
}

/* A write failed for good: every queued line fails with it. The tokens are
 * taken first, so delivered() may call notify() again safely. */
static void out_fail_all(struct out *o, int err)
{
	struct pending *tok = o->tok;
	size_t n = o->n_tok;

	o->tok = NULL;
	o->n_tok = o->cap_tok = 0;
	o->queue.len = o->q_head = 0;
	out_unwatch(o);
	for (size_t i = 0; i < n; i++)
		o->host->delivered(o->ctx, tok[i].token, VIGIL_PERMANENT, strerror(err), -1);
	free(tok);
}

/* Report the tokens whose last byte is written, oldest first. */
static void out_complete(struct out *o)
{
	while (o->n_tok && o->tok[0].end <= o->q_head) {
		uint64_t token = o->tok[0].token;

		memmove(o->tok, o->tok + 1, --o->n_tok * sizeof(*o->tok));
		if (o->n_tok == 0)
			o->queue.len = o->q_head = 0;
		o->host->delivered(o->ctx, token, VIGIL_DELIVERED, NULL, -1);
	}
}

static void out_writable(void *data, int fd, uint32_t revents)
{
	struct out *o = data;
	ssize_t n;

	/* EPOLLERR/EPOLLHUP: write() tells which error it is. */
	n = out_write_some(o, o->queue.p + o->q_head, o->queue.len - o->q_head);
	if (n < 0) {
		out_fail_all(o, (int)-n);
		return;
	}
	o->q_head += (size_t)n;
	if (o->q_head == o->queue.len)
		out_unwatch(o);
	out_complete(o);
}

/* Queue line[0..len) for token; the tail of a line, or a line behind others. */
static int out_enqueue(struct out *o, uint64_t token, const char *p, size_t len)
{
	if (o->q_head) { /* drop what is written; token ends move with it */
		memmove(o->queue.p, o->queue.p + o->q_head, o->queue.len - o->q_head);
		o->queue.len -= o->q_head;
		for (size_t i = 0; i < o->n_tok; i++)
			o->tok[i].end -= o->q_head;
		o->q_head = 0;
	}
	if (o->n_tok == o->cap_tok) {
		size_t cap = o->cap_tok ? o->cap_tok * 2 : 8;
		struct pending *t = realloc(o->tok, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		o->tok = t;
		o->cap_tok = cap;
	}
	if (lb_reserve(&o->queue, len) < 0)
		return -ENOMEM;
	if (!o->watching) {
		int rc = o->host->watch_fd(o->ctx, o->fd, EPOLLOUT, out_writable, o);

		if (rc < 0)
			return rc;
		o->watching = true;
	}
	lb_add(&o->queue, p, len); /* cannot fail: reserved */
	o->tok[o->n_tok++] = (struct pending){token, o->queue.len};
	return 0;
}

/* ---------------------------------------------------------------- plugin */

static const struct vigil_option out_options[] = {
	{"format", VIGIL_OPT_STRING, 0, "text",
	 "text: one readable line per event; json: one schema v1 JSON object per line"},
	{"fd", VIGIL_OPT_INT, 0, "1", "the file descriptor to write to"},
	{NULL, 0, 0, NULL, NULL},
};

static int out_create(const struct vigil_host *host, struct vigil_ctx *ctx,
		      const struct vigil_config *cfg, void **instance, char *err, size_t errlen)
{
	const struct vigil_value *fmt = vigil_config_get(cfg, "format");
	const struct vigil_value *fd = vigil_config_get(cfg, "fd");
	struct out *o;
	bool json = false;

	if (fmt && strcmp(fmt->text, "json") == 0) {
		json = true;
	} else if (fmt && strcmp(fmt->text, "text") != 0) {
		snprintf(err, errlen, "format: expected text or json, not \"%s\"", fmt->text);
		return -EINVAL;
	}
	if (fd && (fd->number < 0 || fd->number > INT_MAX)) {
		snprintf(err, errlen, "fd: %" PRId64 " is not a file descriptor", fd->number);
		return -EINVAL;
	}
	o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	o->host = host;
	o->ctx = ctx;
	o->json = json;
	o->cfg_fd = o->fd = fd ? (int)fd->number : STDOUT_FILENO;
	o->own_fd = -1;
	*instance = o;
	return 0;
}

/* A pipe or a terminal shared with other processes must not be switched to
 * O_NONBLOCK under their feet (they share the file description). Opening it
 * again through /proc gives a description of our own that can be. A socket
 * needs no copy: send() takes MSG_DONTWAIT. Regular files never block for
 * long, so they are written as they are (keeping O_APPEND and the offset). */
static void out_open(struct out *o)
{
	char path[64];
	struct stat st;

	if (fstat(o->cfg_fd, &st) < 0)
		return;
	if (S_ISSOCK(st.st_mode)) {
		o->is_sock = true;
		return;
	}
	if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", o->cfg_fd);
	o->own_fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (o->own_fd >= 0)
		o->fd = o->own_fd;
}

static int out_start(void *instance, char *err, size_t errlen)
{
	struct out *o = instance;

	if (fcntl(o->cfg_fd, F_GETFL) < 0) {
		int e = errno;

		snprintf(err, errlen, "fd %d: %s", o->cfg_fd, strerror(e));
		return -e;
	}
	out_open(o);
	return 0;
}

static int out_format(struct out *o, const struct vigil_record *rec)
{
	o->line.len = 0;
	if (!o->json)
		return txt_format(&o->line, rec);
	if (!rec->json)
		return -EINVAL;
	if (lb_add(&o->line, rec->json, rec->json_len) < 0 || lb_add(&o->line, "\n", 1) < 0)
		return -ENOMEM;
	return 0;
}

static int out_notify(void *instance, uint64_t token, const struct vigil_record *rec)
{
	struct out *o = instance;
	ssize_t n = 0;
	int rc;

	if (!rec || !rec->event || !rec->event->kind)
		return -EINVAL;
	rc = out_format(o, rec);
	if (rc < 0)
		return rc;
	/* Behind queued lines: wait in line, order is kept. */
	if (o->n_tok == 0) {
		n = out_write_some(o, o->line.p, o->line.len);
		if (n < 0) {
			o->host->delivered(o->ctx, token, VIGIL_PERMANENT, strerror((int)-n), -1);
			return 0;
		}
		if ((size_t)n == o->line.len) {
			o->host->delivered(o->ctx, token, VIGIL_DELIVERED, NULL, -1);
			return 0;
		}
	}
	rc = out_enqueue(o, token, o->line.p + n, o->line.len - (size_t)n);
	if (rc < 0 && n > 0) {
		/* Half a line is out already: a retry would repeat it. */
		o->host->delivered(o->ctx, token, VIGIL_PERMANENT, strerror(-rc), -1);
		return 0;
	}
	return rc;
}

static void out_destroy(void *instance)
{
	struct out *o = instance;

	out_unwatch(o);
	if (o->own_fd >= 0)
		close(o->own_fd);
	free(o->line.p);
	free(o->queue.p);
	free(o->tok);
	free(o);
}

VIGIL_PLUGIN(
	.kind = VIGIL_PLUGIN_NOTIFIER,
	.name = "stdout",
	.summary = "print events on standard output, as readable lines or JSON lines",
	.options = out_options,
	.create = out_create,
	.start = out_start,
	.notify = out_notify,
	.destroy = out_destroy,
);
