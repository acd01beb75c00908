/* webhook: POST each event over HTTP(S), asynchronously through libcurl's
 * multi interface on the host loop.
 *
 * Formats: json (the event's schema v1 JSON, byte for byte), slack, ntfy and
 * alertmanager (Prometheus Alertmanager API v2).
 *
 * Alertmanager: every run-scoped event fires the alert vigil_<kind> with the
 * labels alertname, monitor, host, run, kind, severity, kept in the instance.
 * `finished` resolves them all (endsAt = the finished event's time) in the
 * same POST as its own alert vigil_finished (label outcome). A succeeded
 * finish is sent already resolved (endsAt = startsAt: recorded, never paged);
 * any other outcome is sent firing and Alertmanager resolves it after its
 * resolve_timeout. `recovered` resolves the run's vigil_pressure alert.
 * `missed` belongs to the monitor, not to a run: vigil_missed has no run label
 * (one alert per monitor, however many periods pass) and the next run's
 * `attached` resolves it.
 *
 * Result: 2xx delivered; 408, 429, 5xx and transport errors retry (with
 * Retry-After); any other status is permanent. Details name the URL's host
 * and path only: never its credentials, query or the secret. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "curl_loop.h"
#include "vigil/plugin.h"

#define WEBHOOK_MAX_BODY_DETAIL 200
#define WEBHOOK_MAX_FIRED 4096
#define AM_PATH "/api/v2/alerts"

enum webhook_format { FMT_JSON, FMT_SLACK, FMT_NTFY, FMT_ALERTMANAGER };

/* An Alertmanager alert this instance fired and has not resolved yet. */
struct fired {
	char *monitor, *host, *kind, *severity;
	uint64_t run;
	int64_t starts_ms;
};

struct webhook {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	char *url;       /* where to POST (with /api/v2/alerts for alertmanager) */
	char *where;     /* host and path, for details */
	struct curl_slist *headers;
	char *secret;
	int64_t timeout_ms;
	enum webhook_format format;
	char *ca_file;
	struct curl_loop *cl;
	struct fired *fired;
	size_t n_fired;
};

/* One POST in flight. */
struct delivery {
	struct webhook *w;
	uint64_t token;
	struct tbuf body;
	struct curl_slist *headers;
	char response[WEBHOOK_MAX_BODY_DETAIL + 1];
	size_t response_len;
	int64_t retry_after_ms;
	/* alertmanager: on success, forget these fired alerts */
	char *resolve_monitor;
	uint64_t resolve_run;
	const char *resolve_kind; /* NULL: every kind */
};

static const struct vigil_option webhook_options[] = {
	{"url", VIGIL_OPT_URL, VIGIL_OPTF_REQUIRED | VIGIL_OPTF_SECRET, NULL,
	 "http:// or https:// URL to POST to (may carry credentials)"},
	{"header", VIGIL_OPT_STRING, VIGIL_OPTF_REPEATABLE, NULL,
	 "extra request header, \"Name: value\""},
	{"secret", VIGIL_OPT_STRING, VIGIL_OPTF_SECRET, NULL,
	 "HMAC-SHA256 key: adds X-Vigil-Signature: sha256=<hex> of the body"},
	{"timeout", VIGIL_OPT_DURATION, 0, "10s", "whole-request timeout"},
	{"format", VIGIL_OPT_STRING, 0, "json", "json | slack | ntfy | alertmanager"},
	{"ca_file", VIGIL_OPT_PATH, 0, NULL, "CA bundle for a private CA (TLS is always verified)"},
	{NULL, 0, 0, NULL, NULL},
};

/* ------------------------------------------------------------- event access */

static const struct vigil_field *ev_field(const struct vigil_record *rec, const char *name)
{
	const struct vigil_event *ev = rec->event;

	for (size_t i = 0; ev && i < ev->n_fields; i++)
		if (strcmp(ev->fields[i].name, name) == 0)
			return &ev->fields[i];
	return NULL;
}

/* A string field as a C string in tmp (cut to its size), or NULL. */
static const char *ev_str(const struct vigil_record *rec, const char *name, char *tmp,
			  size_t len)
{
	const struct vigil_field *f = ev_field(rec, name);

	if (!f || f->type != VIGIL_FIELD_STRING || len == 0)
		return NULL;
	size_t n = f->u.s.len < len - 1 ? f->u.s.len : len - 1;
	memcpy(tmp, f->u.s.ptr, n);
	tmp[n] = '\0';
	return tmp;
}

static const char *ev_kind(const struct vigil_record *rec)
{
	return rec->event && rec->event->kind ? rec->event->kind : "event";
}

static int is_finished(const struct vigil_record *rec)
{
	return strcmp(ev_kind(rec), VIGIL_EV_FINISHED) == 0;
}

/* "failed", "succeeded"... for finished events; "" otherwise. */
static const char *ev_outcome(const struct vigil_record *rec, char *tmp, size_t len)
{
	const char *o = is_finished(rec) ? ev_str(rec, "outcome", tmp, len) : NULL;

	return o ? o : "";
}

static int is_urgent(const struct vigil_record *rec)
{
	char o[32];
	const char *out = ev_outcome(rec, o, sizeof(o));
	const char *k = ev_kind(rec);

	return strcmp(out, "failed") == 0 || strcmp(out, "timed_out") == 0 ||
	       strcmp(k, VIGIL_EV_PRESSURE) == 0 || strcmp(k, VIGIL_EV_TIMEOUT) == 0;
}

static const char *severity(const struct vigil_record *rec)
{
	const char *k = ev_kind(rec);
	char o[32];
	const char *out = ev_outcome(rec, o, sizeof(o));

	if (strcmp(out, "failed") == 0 || strcmp(out, "timed_out") == 0)
		return "critical";
	if (!strcmp(k, VIGIL_EV_STALLED) || !strcmp(k, VIGIL_EV_PRESSURE) ||
	    !strcmp(k, VIGIL_EV_OVERDUE) || !strcmp(k, VIGIL_EV_TIMEOUT) ||
	    !strcmp(k, VIGIL_EV_MISSED))
		return "warning";
	return "info";
}

/* One readable line (valid UTF-8, no control characters):
 * "export failed on db1 (run 3): exit code 2" or "export: stalled on db1: ...". */
static void readable_line(struct tbuf *b, const struct vigil_record *rec)
{
	char o[32];
	const char *mon = rec->monitor ? rec->monitor : "?";
	const char *host = rec->host ? rec->host : "?";
	const char *msg = rec->event ? rec->event->message : NULL;

	if (is_finished(rec)) {
		tbuf_add_utf8(b, mon, strlen(mon), 1);
		tbuf_printf(b, " %s", ev_outcome(rec, o, sizeof(o)));
	} else {
		tbuf_add_utf8(b, mon, strlen(mon), 1);
		tbuf_printf(b, ": %s", ev_kind(rec));
	}
	tbuf_puts(b, " on ");
	tbuf_add_utf8(b, host, strlen(host), 1);
	if (rec->run)
		tbuf_printf(b, " (run %llu)", (unsigned long long)rec->run);
	if (msg && *msg) {
		tbuf_puts(b, ": ");
		tbuf_add_utf8(b, msg, strlen(msg), 1);
	}
}

/* ------------------------------------------------------------------- JSON */

static void json_str(struct tbuf *b, const char *s, size_t n)
{
	struct tbuf clean = {0};

	tbuf_add_utf8(&clean, s, n, 0);
	if (clean.oom) {
		b->oom = 1;
		return;
	}
	tbuf_add(b, "\"", 1);
	for (size_t i = 0; i < clean.len; i++) {
		unsigned char c = (unsigned char)clean.p[i];

		if (c == '"' || c == '\\')
			tbuf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			tbuf_printf(b, "\\u%04x", c);
		else
			tbuf_add(b, &clean.p[i], 1);
	}
	tbuf_add(b, "\"", 1);
	tbuf_free(&clean);
}

static void json_cstr(struct tbuf *b, const char *s)
{
	if (s)
		json_str(b, s, strlen(s));
	else
		tbuf_puts(b, "null");
}

static void rfc3339(char *out, size_t len, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, len - n, ".%03dZ", (int)(ms % 1000));
}

/* ------------------------------------------------------------ alertmanager */

static void am_alert(struct tbuf *b, const char *alertname, const char *monitor,
		     const char *host, uint64_t run, const char *kind, const char *sev,
		     const char *outcome, int64_t starts_ms, int64_t ends_ms,
		     const struct vigil_record *rec)
{
	char ts[40];

	tbuf_puts(b, "{\"labels\":{\"alertname\":");
	json_cstr(b, alertname);
	tbuf_puts(b, ",\"monitor\":");
	json_cstr(b, monitor ? monitor : "");
	tbuf_puts(b, ",\"host\":");
	json_cstr(b, host ? host : "");
	if (run)
		tbuf_printf(b, ",\"run\":\"%llu\"", (unsigned long long)run);
	tbuf_puts(b, ",\"kind\":");
	json_cstr(b, kind);
	if (outcome && *outcome) {
		tbuf_puts(b, ",\"outcome\":");
		json_cstr(b, outcome);
	}
	tbuf_puts(b, ",\"severity\":");
	json_cstr(b, sev);
	tbuf_puts(b, "}");
	if (rec) {
		struct tbuf line = {0};
		const char *msg = rec->event ? rec->event->message : NULL;

		readable_line(&line, rec);
		tbuf_puts(b, ",\"annotations\":{\"summary\":");
		json_cstr(b, line.oom ? "" : line.p);
		tbuf_puts(b, ",\"description\":");
		json_cstr(b, msg && *msg ? msg : (line.oom ? "" : line.p));
		tbuf_puts(b, ",\"event_id\":");
		json_cstr(b, rec->id ? rec->id : "");
		tbuf_puts(b, "}");
		tbuf_free(&line);
	}
	rfc3339(ts, sizeof(ts), starts_ms);
	tbuf_printf(b, ",\"startsAt\":\"%s\"", ts);
	if (ends_ms >= 0) {
		rfc3339(ts, sizeof(ts), ends_ms);
		tbuf_printf(b, ",\"endsAt\":\"%s\"", ts);
	}
	tbuf_puts(b, "}");
}

static int fired_same(const struct fired *f, const char *monitor, uint64_t run,
		      const char *kind)
{
	return f->run == run && strcmp(f->monitor, monitor) == 0 &&
	       (!kind || strcmp(f->kind, kind) == 0);
}

static void fired_drop(struct webhook *w, size_t i)
{
	struct fired *f = &w->fired[i];

	free(f->monitor), free(f->host), free(f->kind), free(f->severity);
	memmove(f, f + 1, (w->n_fired - i - 1) * sizeof(*f));
	w->n_fired--;
}

/* Remember a firing alert (once per monitor, run and kind; the oldest is
 * forgotten past WEBHOOK_MAX_FIRED). */
static void fired_add(struct webhook *w, const struct vigil_record *rec, uint64_t run,
		      const char *sev)
{
	const char *mon = rec->monitor ? rec->monitor : "", *kind = ev_kind(rec);

	for (size_t i = 0; i < w->n_fired; i++)
		if (fired_same(&w->fired[i], mon, run, kind))
			return;
	if (w->n_fired == WEBHOOK_MAX_FIRED)
		fired_drop(w, 0);
	struct fired *nf = realloc(w->fired, (w->n_fired + 1) * sizeof(*nf));
	if (!nf)
		return;
	w->fired = nf;
	struct fired f = {strdup(mon), strdup(rec->host ? rec->host : ""), strdup(kind),
			  strdup(sev), run, rec->time_ms};
	if (!f.monitor || !f.host || !f.kind || !f.severity) {
		free(f.monitor), free(f.host), free(f.kind), free(f.severity);
		return;
	}
	w->fired[w->n_fired++] = f;
}

/* The alerts of rec's monitor and run `run` to resolve at rec's time,
 * appended to b; the count. */
static size_t am_resolutions(struct webhook *w, struct tbuf *b, const struct vigil_record *rec,
			     uint64_t run, const char *only_kind, int comma)
{
	const char *mon = rec->monitor ? rec->monitor : "";
	size_t n = 0;

	for (size_t i = 0; i < w->n_fired; i++) {
		const struct fired *f = &w->fired[i];
		char name[96];

		if (!fired_same(f, mon, run, only_kind))
			continue;
		if (comma || n)
			tbuf_puts(b, ",");
		snprintf(name, sizeof(name), "vigil_%s", f->kind);
		am_alert(b, name, f->monitor, f->host, f->run, f->kind, f->severity, NULL,
			 f->starts_ms, rec->time_ms, NULL);
		n++;
	}
	return n;
}

/* The Alertmanager body for rec; 0, or 1 when there is nothing to send. */
static int am_body(struct webhook *w, struct delivery *d, const struct vigil_record *rec)
{
	const char *kind = ev_kind(rec), *sev = severity(rec);
	char name[96], o[32];
	int finished = is_finished(rec);

	snprintf(name, sizeof(name), "vigil_%s", kind);
	tbuf_puts(&d->body, "[");
	d->resolve_run = rec->run;
	if (strcmp(kind, VIGIL_EV_RECOVERED) == 0) {
		if (!am_resolutions(w, &d->body, rec, rec->run, VIGIL_EV_PRESSURE, 0))
			return 1;
		d->resolve_kind = VIGIL_EV_PRESSURE;
	} else {
		const char *out = ev_outcome(rec, o, sizeof(o));
		int64_t ends = finished && strcmp(out, "succeeded") == 0 ? rec->time_ms : -1;
		int missed = strcmp(kind, VIGIL_EV_MISSED) == 0;
		uint64_t run = missed ? 0 : rec->run;

		am_alert(&d->body, name, rec->monitor, rec->host, run, kind, sev, out,
			 rec->time_ms, ends, rec);
		if (finished)
			am_resolutions(w, &d->body, rec, rec->run, NULL, 1);
		else if (run || missed)
			fired_add(w, rec, run, sev);
		if (strcmp(kind, VIGIL_EV_ATTACHED) == 0 &&
		    am_resolutions(w, &d->body, rec, 0, VIGIL_EV_MISSED, 1)) {
			d->resolve_kind = VIGIL_EV_MISSED; /* a run began: none is missed */
			d->resolve_run = 0;
		}
	}
	tbuf_puts(&d->body, "]");
	if (finished || d->resolve_kind) {
		d->resolve_monitor = strdup(rec->monitor ? rec->monitor : "");
		if (!d->resolve_monitor)
			d->body.oom = 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ bodies */

static int add_header(struct curl_slist **l, const char *h)
{
	struct curl_slist *n = curl_slist_append(*l, h);

	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

/* "Name: value" with the value made a safe single line. */
static int add_header_clean(struct curl_slist **l, const char *name, const char *value)
{
	struct tbuf h = {0};

	tbuf_printf(&h, "%s: ", name);
	tbuf_add_utf8(&h, value, strlen(value), 1);
	int r = h.oom ? -ENOMEM : add_header(l, h.p);
	tbuf_free(&h);
	return r;
}

static int ntfy_body(struct delivery *d, const struct vigil_record *rec)
{
	char o[32], title[512];
	const char *mon = rec->monitor ? rec->monitor : "?";

	readable_line(&d->body, rec);
	if (is_finished(rec))
		snprintf(title, sizeof(title), "vigil: %s %s", mon, ev_outcome(rec, o, sizeof(o)));
	else
		snprintf(title, sizeof(title), "vigil: %s: %s", mon, ev_kind(rec));
	if (add_header_clean(&d->headers, "Title", title) < 0 ||
	    add_header(&d->headers, is_urgent(rec) ? "Priority: high" : "Priority: default") < 0)
		return -ENOMEM;
	snprintf(title, sizeof(title), "vigil,%s%s%s", ev_kind(rec),
		 is_finished(rec) ? "," : "", ev_outcome(rec, o, sizeof(o)));
	return add_header_clean(&d->headers, "Tags", title);
}

static int build_body(struct webhook *w, struct delivery *d, const struct vigil_record *rec)
{
	const char *ctype = "Content-Type: application/json";
	int r = 0;

	switch (w->format) {
	case FMT_JSON:
		tbuf_add(&d->body, rec->json ? rec->json : "", rec->json ? rec->json_len : 0);
		break;
	case FMT_SLACK: {
		struct tbuf line = {0};

		readable_line(&line, rec);
		tbuf_puts(&d->body, "{\"text\":");
		json_cstr(&d->body, line.oom ? "" : line.p);
		tbuf_puts(&d->body, "}");
		d->body.oom |= line.oom;
		tbuf_free(&line);
		break;
	}
	case FMT_NTFY:
		ctype = "Content-Type: text/plain; charset=utf-8";
		if (ntfy_body(d, rec) < 0)
			return -ENOMEM;
		break;
	case FMT_ALERTMANAGER:
		r = am_body(w, d, rec);
		break;
	}
	/* "Expect:" off: many receivers never answer 100-continue (a 1 s stall). */
	if (d->body.oom || add_header(&d->headers, ctype) < 0 ||
	    add_header(&d->headers, "Expect:") < 0)
		return -ENOMEM;
	return r;
}

static int sign_body(struct webhook *w, struct delivery *d)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char hdr[40 + 2 * EVP_MAX_MD_SIZE];

	if (!HMAC(EVP_sha256(), w->secret, (int)strlen(w->secret),
		  (const unsigned char *)(d->body.p ? d->body.p : ""), d->body.len, mac, &mac_len))
		return -EIO;
	int n = snprintf(hdr, sizeof(hdr), "X-Vigil-Signature: sha256=");
	for (unsigned i = 0; i < mac_len; i++)
		n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "%02x", mac[i]);
	return add_header(&d->headers, hdr);
}

/* --------------------------------------------------------------- responses */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct delivery *d = userdata;
	size_t n = size * nmemb, room = WEBHOOK_MAX_BODY_DETAIL - d->response_len;

	if (n < room)
		room = n;
	memcpy(d->response + d->response_len, ptr, room);
	d->response_len += room;
	return n;
}

/* Retry-After: delay-seconds or an HTTP date (RFC 9110 10.2.3); -1 if neither. */
static int64_t parse_retry_after(const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	if (isdigit((unsigned char)*v)) {
		char *end;
		unsigned long long s = strtoull(v, &end, 10);

		if (s > 86400ULL * 365)
			s = 86400ULL * 365;
		return (int64_t)s * 1000;
	}
	struct tm tm = {0};
	const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end)
		return -1;
	int64_t diff = ((int64_t)timegm(&tm) - (int64_t)time(NULL)) * 1000;
	return diff > 0 ? diff : 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct delivery *d = userdata;
	size_t n = size * nmemb;
	static const char name[] = "retry-after:";

	if (n > sizeof(name) - 1 && n < 256 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
		char v[256];

		memcpy(v, ptr + sizeof(name) - 1, n - (sizeof(name) - 1));
		v[n - (sizeof(name) - 1)] = '\0';
		d->retry_after_ms = parse_retry_after(v);
	}
	return n;
}

static void delivery_free(struct delivery *d)
{
	tbuf_free(&d->body);
	curl_slist_free_all(d->headers);
	free(d->resolve_monitor);
	free(d);
}

static void forget_resolved(struct webhook *w, const struct delivery *d)
{
	for (size_t i = w->n_fired; i-- > 0;)
		if (fired_same(&w->fired[i], d->resolve_monitor, d->resolve_run, d->resolve_kind))
			fired_drop(w, i);
}

static void on_done(void *data, CURL *easy, CURLcode rc, long code)
{
	struct delivery *d = data;
	struct webhook *w = d->w;
	char detail[512];
	enum vigil_delivery res;

	if (!easy) {
		delivery_free(d);
		return;
	}
	if (rc != CURLE_OK) {
		res = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL ? VIGIL_PERMANENT
										      : VIGIL_RETRY;
		snprintf(detail, sizeof(detail), "%s: %s", w->where, curl_loop_strerror(easy, rc));
	} else if (code >= 200 && code < 300) {
		res = VIGIL_DELIVERED;
		snprintf(detail, sizeof(detail), "HTTP %ld from %s", code, w->where);
		if (d->resolve_monitor)
			forget_resolved(w, d);
	} else {
		struct tbuf clean = {0};

		res = code == 408 || code == 429 || code >= 500 ? VIGIL_RETRY : VIGIL_PERMANENT;
		tbuf_add_utf8(&clean, d->response, d->response_len, 1);
		snprintf(detail, sizeof(detail), "HTTP %ld: %s", code, clean.p ? clean.p : "");
		tbuf_free(&clean);
	}
	w->host->delivered(w->ctx, d->token, res, detail,
			   res == VIGIL_RETRY ? d->retry_after_ms : -1);
	delivery_free(d);
}

/* ------------------------------------------------------------------ plugin */

static int webhook_notify(void *instance, uint64_t token, const struct vigil_record *rec)
{
	struct webhook *w = instance;
	struct delivery *d;
	CURL *easy = NULL;
	int r;

	if (!w->cl)
		return -ENOTCONN;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->w = w;
	d->token = token;
	d->retry_after_ms = -1;
	r = build_body(w, d, rec);
	if (r == 1) { /* nothing to say to this receiver */
		delivery_free(d);
		w->host->delivered(w->ctx, token, VIGIL_DELIVERED, "nothing to resolve", -1);
		return 0;
	}
	if (r == 0 && w->secret)
		r = sign_body(w, d);
	for (struct curl_slist *h = w->headers; r == 0 && h; h = h->next)
		r = add_header(&d->headers, h->data);
	if (r == 0 && !(easy = curl_loop_easy_new("http,https", w->timeout_ms, w->ca_file)))
		r = -ENOMEM;
	if (r < 0)
		goto fail;
	curl_easy_setopt(easy, CURLOPT_URL, w->url);
	curl_easy_setopt(easy, CURLOPT_POST, 1L);
	curl_easy_setopt(easy, CURLOPT_POSTFIELDS, d->body.p ? d->body.p : "");
	curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)d->body.len);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, d->headers);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "vigil-webhook/1");
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, d);
	r = curl_loop_add(w->cl, easy, on_done, d);
	if (r == 0)
		return 0;
fail:
	curl_easy_cleanup(easy);
	delivery_free(d);
	return r;
}

/* "Name: value": a token name, a colon, no CR or LF anywhere. */
static int header_ok(const char *h, char *err, size_t errlen)
{
	const char *colon = strchr(h, ':');

	if (strpbrk(h, "\r\n")) {
		snprintf(err, errlen, "header: must not contain CR or LF");
		return 0;
	}
	if (!colon || colon == h) {
		snprintf(err, errlen, "header: expected \"Name: value\"");
		return 0;
	}
	for (const char *p = h; p < colon; p++) {
		if (!isgraph((unsigned char)*p)) {
			snprintf(err, errlen, "header: bad character in the name");
			return 0;
		}
	}
	return 1;
}

static int parse_format(const char *s, enum webhook_format *f)
{
	static const char *const names[] = {"json", "slack", "ntfy", "alertmanager"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*f = (enum webhook_format)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* host[:port]/path of url, for details: never userinfo, query or fragment. */
static char *url_where(const char *url, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *path = NULL, *out = NULL;
	char *scheme = NULL;

	if (!u)
		return NULL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") && strcmp(scheme, "https")) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen, "url: not a valid http:// or https:// URL");
		goto out;
	}
	curl_url_get(u, CURLUPART_PORT, &port, 0);
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	struct tbuf b = {0};
	tbuf_printf(&b, "%s%s%s%s", host, port ? ":" : "", port ? port : "", path ? path : "/");
	out = b.p;
out:
	curl_free(scheme), curl_free(host), curl_free(port), curl_free(path);
	curl_url_cleanup(u);
	return out;
}

/* The POST URL: for alertmanager, url + /api/v2/alerts unless already there. */
static char *post_url(const char *url, enum webhook_format f)
{
	size_t n = strlen(url), k = strlen(AM_PATH);
	struct tbuf b = {0};

	if (f != FMT_ALERTMANAGER || (n >= k && strcmp(url + n - k, AM_PATH) == 0))
		return strdup(url);
	while (n && url[n - 1] == '/')
		n--;
	tbuf_add(&b, url, n);
	tbuf_puts(&b, AM_PATH);
	return b.oom ? NULL : b.p;
}

static void webhook_destroy(void *instance)
{
	struct webhook *w = instance;

	if (!w)
		return;
	curl_loop_free(w->cl);
	while (w->n_fired)
		fired_drop(w, w->n_fired - 1);
	free(w->fired);
	free(w->url);
	free(w->where);
	curl_slist_free_all(w->headers);
	if (w->secret)
		explicit_bzero(w->secret, strlen(w->secret));
	free(w->secret);
	free(w->ca_file);
	free(w);
}

static int webhook_parse(struct webhook *w, const struct vigil_config *cfg, char *err,
			 size_t errlen)
{
	const struct vigil_value *v;

	v = vigil_config_get(cfg, "format");
	if (v && parse_format(v->text, &w->format) < 0) {
		snprintf(err, errlen, "format: expected json, slack, ntfy or alertmanager");
		return -EINVAL;
	}
	v = vigil_config_get(cfg, "url");
	if (!v) {
		snprintf(err, errlen, "url: required");
		return -EINVAL;
	}
	if (!(w->where = url_where(v->text, err, errlen)))
		return -EINVAL;
	if (!(w->url = post_url(v->text, w->format)))
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_values; i++) {
		if (strcmp(cfg->values[i].key, "header") != 0)
			continue;
		if (!header_ok(cfg->values[i].text, err, errlen))
			return -EINVAL;
		if (add_header(&w->headers, cfg->values[i].text) < 0)
			return -ENOMEM;
	}
	v = vigil_config_get(cfg, "timeout");
	w->timeout_ms = v && v->number > 0 ? v->number : 10000;
	if ((v = vigil_config_get(cfg, "secret")) && !(w->secret = strdup(v->text)))
		return -ENOMEM;
	if ((v = vigil_config_get(cfg, "ca_file")) && !(w->ca_file = strdup(v->text)))
		return -ENOMEM;
	return w->ca_file ? curl_loop_ca_file_check(w->ca_file, err, errlen) : 0;
}

static int webhook_create(const struct vigil_host *host, struct vigil_ctx *ctx,
			  const struct vigil_config *cfg, void **instance, char *err,
			  size_t errlen)
{
	struct webhook *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->host = host;
	w->ctx = ctx;
	r = curl_loop_global_init(err, errlen);
	if (r < 0) {
		free(w);
		return r;
	}
	r = webhook_parse(w, cfg, err, errlen);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		webhook_destroy(w);
		return r;
	}
	*instance = w;
	return 0;
}

static int webhook_start(void *instance, char *err, size_t errlen)
{
	struct webhook *w = instance;

	return curl_loop_start(&w->cl, w->host, w->ctx, err, errlen);
}

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_NOTIFIER, .name = "webhook",
	     .summary = "POST events as JSON, Slack, ntfy or Alertmanager alerts over HTTP(S)",
	     .options = webhook_options, .create = webhook_create, .start = webhook_start,
	     .notify = webhook_notify, .destroy = webhook_destroy, .flags = VIGIL_PLUGIN_F_SPOOLED);
