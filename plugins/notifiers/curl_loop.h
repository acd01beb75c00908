/* libcurl's multi-socket interface on the host's loop: shared by the webhook
 * and email notifiers (compiled into each .so, no state outside the struct).
 *
 * Sockets curl wants watched go to host->watch_fd, its one timeout to
 * host->add_timer; on either event curl_multi_socket_action() runs and every
 * finished transfer is handed to its done() callback. Nothing blocks. */
#ifndef VIGIL_CURL_LOOP_H
#define VIGIL_CURL_LOOP_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil/plugin.h"

struct curl_loop;

/* Called once per transfer. rc is the transfer's result, http_code the last
 * response code (HTTP status or SMTP reply, 0 when none). curl_loop owns
 * `easy` and cleans it up after done() returns; done() owns `data`.
 * rc == CURLE_ABORTED_BY_CALLBACK with easy == NULL means curl_loop_free()
 * is discarding the transfer: free data and report nothing. */
typedef void (*curl_loop_done_cb)(void *data, CURL *easy, CURLcode rc, long http_code);

/* NULL on allocation failure. Opens fds (curl's wakeup pair): call from start(). */
struct curl_loop *curl_loop_new(const struct vigil_host *host, struct vigil_ctx *ctx);

/* libcurl's global initialisation, from create(): idempotent, and thread-safe
 * since libcurl 7.84 (we have no threads anyway). 0 or -EIO with err set. */
int curl_loop_global_init(char *err, size_t errlen);

/* From start(): create *cl on first use. 0 or -ENOMEM with err set. */
int curl_loop_start(struct curl_loop **cl, const struct vigil_host *host, struct vigil_ctx *ctx,
		    char *err, size_t errlen);

/* Start `easy`. On success curl_loop owns it and done() will be called
 * (never before curl_loop_add returns). 0 or -errno: then the caller still
 * owns both easy and data. */
int curl_loop_add(struct curl_loop *cl, CURL *easy, curl_loop_done_cb done, void *data);

/* Abort every transfer (see curl_loop_done_cb) and release everything. */
void curl_loop_free(struct curl_loop *cl);

/* An easy handle with what every notifier transfer needs: no signals, a total
 * timeout, only `protocols` ("http,https"), TLS peer and host verification
 * on (optionally against ca_file), no redirects. NULL on failure. */
CURL *curl_loop_easy_new(const char *protocols, int64_t timeout_ms, const char *ca_file);

/* From create(): ca_file must be a readable regular file. A missing or
 * unreadable one would otherwise fail every delivery later (retried until
 * max_age) instead of being a configuration error now. 0 or -errno, err set. */
int curl_loop_ca_file_check(const char *ca_file, char *err, size_t errlen);

/* Inside done(): the most precise text for rc (curl's error buffer when it
 * says something, else curl_easy_strerror). Never holds credentials. */
const char *curl_loop_strerror(CURL *easy, CURLcode rc);

/* ---- text helpers shared by the notifiers (both link this file) ---- */

/* A growable NUL-terminated byte string. After an allocation failure `oom` is
 * set and further appends do nothing, so callers check once at the end. */
struct tbuf {
	char *p;
	size_t len, cap;
	int oom;
};

void tbuf_add(struct tbuf *b, const void *s, size_t n);
void tbuf_puts(struct tbuf *b, const char *s);
void tbuf_printf(struct tbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;
void tbuf_free(struct tbuf *b);

/* Length of the valid UTF-8 sequence at s[0..n) (1 to 4), or 0 when the byte
 * at s starts no valid sequence (overlongs, surrogates, > U+10FFFF refused). */
size_t utf8_seq_len(const unsigned char *s, size_t n);

/* Append s[0..n) to b as valid UTF-8: each invalid byte becomes U+FFFD; with
 * `oneline`, control characters (CR and LF included) become a space. */
void tbuf_add_utf8(struct tbuf *b, const char *s, size_t n, int oneline);

#endif
