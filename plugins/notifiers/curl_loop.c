/* libcurl multi-socket driven by the host loop. See curl_loop.h. */
#include "curl_loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

/* One transfer in flight; reached from its easy handle via CURLOPT_PRIVATE. */
struct curl_xfer {
	struct curl_xfer *next, *prev;
	CURL *easy;
	curl_loop_done_cb done;
	void *data;
	char errbuf[CURL_ERROR_SIZE];
};

struct curl_loop {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	CURLM *multi;
	int64_t timer_id; /* 0: none */
	struct curl_xfer *xfers;
};

static void curl_loop_unlink(struct curl_loop *cl, struct curl_xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		cl->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
}

/* Hand every finished transfer to its owner. */
static void curl_loop_drain(struct curl_loop *cl)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(cl->multi, &left))) {
		struct curl_xfer *x = NULL;
		long code = 0;
		CURL *easy = msg->easy_handle;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
		CURLcode rc = msg->data.result; /* msg is invalid after remove */
		curl_multi_remove_handle(cl->multi, easy);
		curl_loop_unlink(cl, x);
		x->done(x->data, easy, rc, code);
		curl_easy_cleanup(easy);
		free(x);
	}
}

static void curl_loop_on_fd(void *data, int fd, uint32_t revents)
{
	struct curl_loop *cl = data;
	int flags = 0, running;

	if (revents & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (revents & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(cl->multi, fd, flags, &running);
	curl_loop_drain(cl);
}

static int64_t curl_loop_on_timer(void *data)
{
	struct curl_loop *cl = data;
	int running;

	/* Cleared first: socket_action may ask for a new timer right away. */
	cl->timer_id = 0;
	curl_multi_socket_action(cl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	curl_loop_drain(cl);
	return VIGIL_TIMER_DONE;
}

/* CURLMOPT_SOCKETFUNCTION: watch what curl asks for, on the host's loop. */
static int curl_loop_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
			       void *socketp)
{
	struct curl_loop *cl = userp;
	uint32_t ev = 0;

	if (what == CURL_POLL_REMOVE) {
		cl->host->unwatch_fd(cl->ctx, s);
		return 0;
	}
	if (what & CURL_POLL_IN)
		ev |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev |= EPOLLOUT;
	return cl->host->watch_fd(cl->ctx, s, ev, curl_loop_on_fd, cl) < 0 ? -1 : 0;
}

/* CURLMOPT_TIMERFUNCTION: curl's single timeout, replaced on every call. A
 * timeout of 0 is served from a 0 ms timer, never from inside this callback
 * (curl forbids re-entering socket_action here). */
static int curl_loop_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct curl_loop *cl = userp;

	if (cl->timer_id > 0) {
		cl->host->cancel_timer(cl->ctx, cl->timer_id);
		cl->timer_id = 0;
	}
	if (timeout_ms < 0)
		return 0;
	int64_t id = cl->host->add_timer(cl->ctx, timeout_ms, curl_loop_on_timer, cl);
	if (id < 0)
		return -1;
	cl->timer_id = id;
	return 0;
}

struct curl_loop *curl_loop_new(const struct vigil_host *host, struct vigil_ctx *ctx)
{
	struct curl_loop *cl = calloc(1, sizeof(*cl));

	if (!cl)
		return NULL;
	cl->host = host;
	cl->ctx = ctx;
	cl->multi = curl_multi_init();
	if (!cl->multi) {
		free(cl);
		return NULL;
	}
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETFUNCTION, curl_loop_socket_cb);
	curl_multi_setopt(cl->multi, CURLMOPT_SOCKETDATA, cl);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERFUNCTION, curl_loop_timer_cb);
	curl_multi_setopt(cl->multi, CURLMOPT_TIMERDATA, cl);
	return cl;
}

int curl_loop_add(struct curl_loop *cl, CURL *easy, curl_loop_done_cb done, void *data)
{
	struct curl_xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	x->easy = easy;
	x->done = done;
	x->data = data;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x->errbuf);
	if (curl_multi_add_handle(cl->multi, easy) != CURLM_OK) {
		curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
		free(x);
		return -ENOMEM;
	}
	x->next = cl->xfers;
	if (x->next)
		x->next->prev = x;
	cl->xfers = x;
	return 0;
}

void curl_loop_free(struct curl_loop *cl)
{
	if (!cl)
		return;
	while (cl->xfers) {
		struct curl_xfer *x = cl->xfers;

		curl_loop_unlink(cl, x);
		curl_multi_remove_handle(cl->multi, x->easy);
		curl_easy_cleanup(x->easy);
		x->done(x->data, NULL, CURLE_ABORTED_BY_CALLBACK, 0);
		free(x);
	}
	/* Closing cached connections may still call the socket callback. */
	curl_multi_cleanup(cl->multi);
	if (cl->timer_id > 0)
		cl->host->cancel_timer(cl->ctx, cl->timer_id);
	free(cl);
}

CURL *curl_loop_easy_new(const char *protocols, int64_t timeout_ms, const char *ca_file)
{
	CURL *easy = curl_easy_init();

	if (!easy)
		return NULL;
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, protocols);
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, ca_file);
	return easy;
}

int curl_loop_ca_file_check(const char *ca_file, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(ca_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	int r = fd < 0 || fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;

	if (fd >= 0)
		close(fd);
	if (r < 0)
		snprintf(err, errlen, "ca_file: %s: %s", ca_file,
			 r == -EINVAL ? "not a regular file" : strerror(-r));
	return r;
}

const char *curl_loop_strerror(CURL *easy, CURLcode rc)
{
	struct curl_xfer *x = NULL;

	if (easy)
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	if (x && x->errbuf[0]) {
		size_t n = strlen(x->errbuf);

		if (n && x->errbuf[n - 1] == '\n')
			x->errbuf[n - 1] = '\0';
		return x->errbuf;
	}
	return curl_easy_strerror(rc);
}

/* ------------------------------------------------------------ text helpers */

void tbuf_add(struct tbuf *b, const void *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void tbuf_puts(struct tbuf *b, const char *s)
{
	tbuf_add(b, s, strlen(s));
}

void tbuf_printf(struct tbuf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		tbuf_add(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big) {
		b->oom = 1;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	tbuf_add(b, big, (size_t)n);
	free(big);
}

void tbuf_free(struct tbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void tbuf_add_utf8(struct tbuf *b, const char *s, size_t n, int oneline)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		size_t k = utf8_seq_len(u + i, n - i);

		if (k == 0) {
			tbuf_add(b, "\xef\xbf\xbd", 3);
			i++;
		} else if (oneline && k == 1 && (u[i] < 0x20 || u[i] == 0x7f)) {
			tbuf_add(b, " ", 1);
			i++;
		} else {
			tbuf_add(b, u + i, k);
			i += k;
		}
	}
}

int curl_loop_global_init(char *err, size_t errlen)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "libcurl initialisation failed");
		return -EIO;
	}
	return 0;
}

int curl_loop_start(struct curl_loop **cl, const struct vigil_host *host, struct vigil_ctx *ctx,
		    char *err, size_t errlen)
{
	if (!*cl && !(*cl = curl_loop_new(host, ctx))) {
		snprintf(err, errlen, "cannot create a libcurl multi handle");
		return -ENOMEM;
	}
	return 0;
}
