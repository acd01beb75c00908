/* email: send each event as a mail over SMTP, SMTPS or SMTP+STARTTLS through
 * libcurl's multi interface on the host loop.
 *
 * The message is built once per notify(): RFC 5322 headers (Date, Message-ID
 * <event-id@host>, From, To, Subject, MIME), a UTF-8 text/plain body in
 * base64. Every header-bound value is cut to one line with control
 * characters replaced, and the subject is an RFC 2047 encoded-word when it is
 * not plain ASCII, so no value can start a header of its own.
 *
 * Result: accepted -> delivered; a 5xx reply -> permanent; a 4xx reply,
 * connection errors and timeouts -> retry. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curl_loop.h"
#include "lib/report.h"
#include "vigil/plugin.h"

#define EMAIL_DEFAULT_SUBJECT "[vigil] {summary}"
#define EMAIL_MAX_SUBJECT 400

enum starttls { TLS_DEFAULT, TLS_REQUIRED, TLS_OPPORTUNISTIC, TLS_OFF };

struct email {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	char *url, *where;
	int smtps;
	enum starttls starttls;
	char *username, *password;
	char *from, *from_addr;     /* as written (one line) / bare address */
	struct tbuf to;             /* the To: header value */
	struct curl_slist *rcpt;    /* bare addresses */
	char *subject;              /* template */
	int64_t timeout_ms;
	char *ca_file;
	struct curl_loop *cl;
};

struct mail {
	struct email *e;
	uint64_t token;
	struct tbuf msg;
	size_t off;
};

static const struct vigil_option email_options[] = {
	{"url", VIGIL_OPT_URL, VIGIL_OPTF_REQUIRED | VIGIL_OPTF_SECRET, NULL,
	 "smtp://host:port (STARTTLS per `starttls`) or smtps://host:port"},
	{"starttls", VIGIL_OPT_STRING, 0, NULL,
	 "required | opportunistic | off (smtp:// only; default opportunistic)"},
	{"username", VIGIL_OPT_STRING, 0, NULL, "SMTP AUTH user"},
	{"password", VIGIL_OPT_STRING, VIGIL_OPTF_SECRET, NULL, "SMTP AUTH password"},
	{"from", VIGIL_OPT_STRING, VIGIL_OPTF_REQUIRED, NULL, "sender address"},
	{"to", VIGIL_OPT_STRING, VIGIL_OPTF_REQUIRED | VIGIL_OPTF_REPEATABLE, NULL,
	 "recipient address(es), comma separated, repeatable"},
	{"subject", VIGIL_OPT_STRING, 0, EMAIL_DEFAULT_SUBJECT,
	 "template: {summary} {monitor} {kind} {outcome} {host} {run}"},
	{"timeout", VIGIL_OPT_DURATION, 0, "30s", "whole-transaction timeout"},
	{"ca_file", VIGIL_OPT_PATH, 0, NULL, "CA bundle for a private CA (TLS is always verified)"},
	{NULL, 0, 0, NULL, NULL},
};

/* ------------------------------------------------------------ event access */

static const struct vigil_field *ev_field(const struct vigil_record *rec, const char *name)
{
	const struct vigil_event *ev = rec->event;

	for (size_t i = 0; ev && i < ev->n_fields; i++)
		if (strcmp(ev->fields[i].name, name) == 0)
			return &ev->fields[i];
	return NULL;
}

static const char *ev_kind(const struct vigil_record *rec)
{
	return rec->event && rec->event->kind ? rec->event->kind : "event";
}

static int is_finished(const struct vigil_record *rec)
{
	return strcmp(ev_kind(rec), VIGIL_EV_FINISHED) == 0;
}

/* Append a field's value as text; 0 when it has none to show. */
static int field_text(struct tbuf *b, const struct vigil_field *f)
{
	switch (f->type) {
	case VIGIL_FIELD_INT:
		tbuf_printf(b, "%lld", (long long)f->u.i);
		return 1;
	case VIGIL_FIELD_DOUBLE:
		tbuf_printf(b, "%.3f", f->u.d);
		return 1;
	case VIGIL_FIELD_BOOL:
		tbuf_puts(b, f->u.b ? "yes" : "no");
		return 1;
	case VIGIL_FIELD_STRING:
		tbuf_add_utf8(b, f->u.s.ptr, f->u.s.len, 1);
		return 1;
	default:
		return 0;
	}
}

/* --------------------------------------------------------------- headers */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(struct tbuf *b, const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		char q[4];

		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		q[0] = b64[v >> 18 & 63];
		q[1] = b64[v >> 12 & 63];
		q[2] = i + 1 < n ? b64[v >> 6 & 63] : '=';
		q[3] = i + 2 < n ? b64[v & 63] : '=';
		tbuf_add(b, q, 4);
	}
}

/* A one-line, valid UTF-8 copy of s, cut at `max` bytes on a character
 * boundary. Caller frees .p. */
static struct tbuf one_line(const char *s, size_t n, size_t max)
{
	struct tbuf b = {0};

	tbuf_add_utf8(&b, s, n, 1);
	if (!b.oom && b.len > max) {
		size_t cut = max;

		while (cut && ((unsigned char)b.p[cut] & 0xc0) == 0x80)
			cut--;
		b.len = cut;
		b.p[cut] = '\0';
	}
	return b;
}

/* "Subject: " + value: as is when printable ASCII, else RFC 2047 B
 * encoded-words of at most 45 bytes (whole characters), folded. */
static void header_encoded(struct tbuf *b, const char *name, const char *value)
{
	struct tbuf v = one_line(value, strlen(value), EMAIL_MAX_SUBJECT);
	int ascii = 1;

	for (size_t i = 0; i < v.len; i++)
		if ((unsigned char)v.p[i] >= 0x80)
			ascii = 0;
	tbuf_printf(b, "%s: ", name);
	if (ascii) {
		tbuf_add(b, v.p ? v.p : "", v.len);
	} else {
		for (size_t i = 0; i < v.len;) {
			size_t k = i;

			while (k < v.len && k - i < 45) {
				size_t l = utf8_seq_len((unsigned char *)v.p + k, v.len - k);
				if (k + l - i > 45)
					break;
				k += l;
			}
			tbuf_puts(b, i ? "\r\n =?UTF-8?B?" : "=?UTF-8?B?");
			base64(b, (unsigned char *)v.p + i, k - i);
			tbuf_puts(b, "?=");
			i = k;
		}
	}
	tbuf_puts(b, "\r\n");
	b->oom |= v.oom;
	tbuf_free(&v);
}

static void header_line(struct tbuf *b, const char *name, const char *value)
{
	struct tbuf v = one_line(value, strlen(value), 900);

	tbuf_printf(b, "%s: %s\r\n", name, v.p ? v.p : "");
	b->oom |= v.oom;
	tbuf_free(&v);
}

/* Characters allowed in a Message-ID part; the rest become '-'. */
static void msgid_part(struct tbuf *b, const char *s)
{
	for (; s && *s; s++) {
		char c = *s;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
		tbuf_add(b, ok ? &c : "-", 1);
	}
}

/* RFC 5322 date in local time, English names whatever the locale. */
static void rfc5322_date(struct tbuf *b, int64_t ms)
{
	static const char days[] = "SunMonTueWedThuFriSat";
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	localtime_r(&t, &tm);
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	tbuf_printf(b, "Date: %.3s, %d %.3s %d %02d:%02d:%02d %c%02ld%02ld\r\n",
		    days + 3 * tm.tm_wday, tm.tm_mday, months + 3 * tm.tm_mon,
		    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
}

/* Expand the subject template. Unknown {names} stay as written. */
static void subject_expand(struct tbuf *b, const char *tpl, const struct vigil_record *rec)
{
	const struct vigil_field *o = is_finished(rec) ? ev_field(rec, "outcome") : NULL;
	const char *mon = rec->monitor ? rec->monitor : "?";

	for (const char *p = tpl; *p; p++) {
		if (*p != '{') {
			tbuf_add(b, p, 1);
			continue;
		}
		const char *end = strchr(p, '}');
		size_t n = end ? (size_t)(end - p - 1) : 0;
		const char *k = p + 1;
#define IS(name) (n == sizeof(name) - 1 && strncmp(k, name, n) == 0)
		if (IS("monitor")) {
			tbuf_puts(b, mon);
		} else if (IS("kind")) {
			tbuf_puts(b, ev_kind(rec));
		} else if (IS("outcome")) {
			if (o)
				field_text(b, o);
		} else if (IS("host")) {
			tbuf_puts(b, rec->host ? rec->host : "");
		} else if (IS("run")) {
			tbuf_printf(b, "%llu", (unsigned long long)rec->run);
		} else if (IS("summary")) {
			tbuf_puts(b, mon);
			if (o) {
				tbuf_puts(b, " ");
				field_text(b, o);
			} else {
				tbuf_printf(b, ": %s", ev_kind(rec));
			}
		} else {
			tbuf_add(b, p, 1);
			continue;
		}
#undef IS
		p = end;
	}
}

/* ------------------------------------------------------------------ body */

static void body_line(struct tbuf *b, const char *label, const char *value)
{
	if (!value)
		return;
	tbuf_printf(b, "%-12s ", label);
	tbuf_add_utf8(b, value, strlen(value), 1);
	tbuf_puts(b, "\r\n");
}

/* One line of the end-of-run report (lib/report.c). */
static int body_report_line(void *arg, const char *label, const char *value, size_t len)
{
	struct tbuf *b = arg;
	char l[32];

	snprintf(l, sizeof(l), "%s:", label);
	tbuf_printf(b, "%-12s ", l);
	tbuf_add_utf8(b, value, len, 1);
	tbuf_puts(b, "\r\n");
	return 0;
}

/* Was field f already told by the report block at the top? */
static bool body_reported(const struct vigil_record *rec, const struct vigil_field *f)
{
	return is_finished(rec) && report_shows(f->name);
}

/* The plain text: what happened (for `finished`, the end-of-run report), then
 * every other field, then the log tail. */
static void body_text(struct tbuf *b, const struct vigil_record *rec)
{
	const struct vigil_event *ev = rec->event;
	const struct vigil_field *tail = ev_field(rec, "log_tail");
	char num[32];

	if (!is_finished(rec))
		body_line(b, "event:", ev_kind(rec));
	else if (ev)
		report_lines(ev, body_report_line, b);
	body_line(b, "monitor:", rec->monitor);
	body_line(b, "host:", rec->host);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)rec->run);
	body_line(b, "run:", rec->run ? num : NULL);
	snprintf(num, sizeof(num), "%d", (int)rec->pid);
	body_line(b, "pid:", rec->pid ? num : NULL);
	for (size_t i = 0; ev && i < ev->n_fields; i++) {
		const struct vigil_field *f = &ev->fields[i];
		char label[64];

		if (f == tail || body_reported(rec, f) || strcmp(f->name, "pid") == 0)
			continue;
		snprintf(label, sizeof(label), "%s:", strcmp(f->name, "exit_code") == 0 ?
			 "exit status" : f->name);
		tbuf_printf(b, "%-12s ", label);
		if (!field_text(b, f))
			tbuf_puts(b, "-");
		if (strcmp(f->name, "duration") == 0 || strcmp(f->name, "silent_for") == 0)
			tbuf_puts(b, " s");
		tbuf_puts(b, "\r\n");
	}
	if (ev && ev->message)
		body_line(b, "message:", ev->message);
	if (tail && tail->type == VIGIL_FIELD_STRINGS && tail->u.list.n) {
		tbuf_puts(b, "\r\nLast log lines:\r\n");
		for (size_t i = 0; i < tail->u.list.n; i++) {
			tbuf_puts(b, "  ");
			tbuf_add_utf8(b, tail->u.list.v[i].ptr, tail->u.list.v[i].len, 1);
			tbuf_puts(b, "\r\n");
		}
	}
}

static void build_message(struct email *e, struct tbuf *m, const struct vigil_record *rec)
{
	struct tbuf subj = {0}, text = {0};

	rfc5322_date(m, rec->time_ms);
	tbuf_puts(m, "Message-ID: <");
	msgid_part(m, rec->id);
	tbuf_puts(m, "@");
	msgid_part(m, rec->host && *rec->host ? rec->host : "vigil");
	tbuf_puts(m, ">\r\n");
	header_line(m, "From", e->from);
	header_line(m, "To", e->to.p);
	subject_expand(&subj, e->subject, rec);
	header_encoded(m, "Subject", subj.p ? subj.p : "");
	tbuf_puts(m, "MIME-Version: 1.0\r\n"
		     "Content-Type: text/plain; charset=UTF-8\r\n"
		     "Content-Transfer-Encoding: base64\r\n"
		     "Auto-Submitted: auto-generated\r\n");
	if (rec->id)
		header_line(m, "X-Vigil-Event-Id", rec->id);
	tbuf_puts(m, "\r\n");
	body_text(&text, rec);
	for (size_t i = 0; i < text.len; i += 57) {
		base64(m, (unsigned char *)text.p + i, text.len - i < 57 ? text.len - i : 57);
		tbuf_puts(m, "\r\n");
	}
	m->oom |= subj.oom | text.oom;
	tbuf_free(&subj);
	tbuf_free(&text);
}

/* -------------------------------------------------------------- transfer */

static size_t on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct mail *m = userdata;
	size_t n = size * nitems, left = m->msg.len - m->off;

	if (n > left)
		n = left;
	memcpy(buf, m->msg.p + m->off, n);
	m->off += n;
	return n;
}

static void mail_free(struct mail *m)
{
	tbuf_free(&m->msg);
	free(m);
}

static void on_done(void *data, CURL *easy, CURLcode rc, long code)
{
	struct mail *m = data;
	struct email *e = m->e;
	char detail[512];
	enum vigil_delivery res;

	if (!easy) {
		mail_free(m);
		return;
	}
	if (rc == CURLE_OK) {
		res = VIGIL_DELIVERED;
		snprintf(detail, sizeof(detail), "accepted by %s", e->where);
	} else {
		res = code >= 500 && code < 600 ? VIGIL_PERMANENT : VIGIL_RETRY;
		if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
			res = VIGIL_PERMANENT;
		/* Only a refusal is worth its code: after a TLS failure the last
		 * reply is STARTTLS's "220 ready", which explains nothing. */
		if (code >= 400)
			snprintf(detail, sizeof(detail), "%s: SMTP %ld: %s", e->where, code,
				 curl_loop_strerror(easy, rc));
		else
			snprintf(detail, sizeof(detail), "%s: %s", e->where,
				 curl_loop_strerror(easy, rc));
	}
	e->host->delivered(e->ctx, m->token, res, detail, -1);
	mail_free(m);
}

static int email_notify(void *instance, uint64_t token, const struct vigil_record *rec)
{
	struct email *e = instance;
	struct mail *m;
	CURL *easy;

	if (!e->cl)
		return -ENOTCONN;
	if (!(m = calloc(1, sizeof(*m))))
		return -ENOMEM;
	m->e = e;
	m->token = token;
	build_message(e, &m->msg, rec);
	easy = m->msg.oom ? NULL : curl_loop_easy_new("smtp,smtps", e->timeout_ms, e->ca_file);
	if (!easy) {
		mail_free(m);
		return -ENOMEM;
	}
	curl_easy_setopt(easy, CURLOPT_URL, e->url);
	if (!e->smtps)
		curl_easy_setopt(easy, CURLOPT_USE_SSL,
				 e->starttls == TLS_REQUIRED ? (long)CURLUSESSL_ALL :
				 e->starttls == TLS_OFF	     ? (long)CURLUSESSL_NONE :
							       (long)CURLUSESSL_TRY);
	if (e->username)
		curl_easy_setopt(easy, CURLOPT_USERNAME, e->username);
	if (e->password)
		curl_easy_setopt(easy, CURLOPT_PASSWORD, e->password);
	curl_easy_setopt(easy, CURLOPT_MAIL_FROM, e->from_addr);
	curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, e->rcpt);
	curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)m->msg.len);
	curl_easy_setopt(easy, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(easy, CURLOPT_READDATA, m);
	int r = curl_loop_add(e->cl, easy, on_done, m);
	if (r < 0) {
		curl_easy_cleanup(easy);
		mail_free(m);
	}
	return r;
}

/* ------------------------------------------------------------ configuration */

/* The bare address of "addr" or "Name <addr>" (s[0..n)), checked: no control
 * characters, no spaces, an @. NULL with err set. */
static char *address_parse(const char *key, const char *s, size_t n, char *err, size_t errlen)
{
	const char *a = s, *end = s + n;

	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(err, errlen, "%s: control characters are not allowed", key);
			return NULL;
		}
	}
	const char *lt = memchr(s, '<', n);
	if (lt) {
		const char *gt = memchr(lt, '>', (size_t)(end - lt));
		if (!gt) {
			snprintf(err, errlen, "%s: '<' without '>'", key);
			return NULL;
		}
		a = lt + 1;
		end = gt;
	}
	if (a == end || !memchr(a, '@', (size_t)(end - a))) {
		snprintf(err, errlen, "%s: \"%.*s\" is not an address", key, (int)n, s);
		return NULL;
	}
	for (const char *p = a; p < end; p++) {
		if (*p == ' ' || *p == '<' || *p == '>' || *p == ',') {
			snprintf(err, errlen, "%s: \"%.*s\" is not an address", key, (int)n, s);
			return NULL;
		}
	}
	return strndup(a, (size_t)(end - a));
}

/* One `to` value: comma-separated addresses into rcpt and the To header. */
static int email_add_to(struct email *e, const char *v, char *err, size_t errlen)
{
	for (const char *p = v; *p;) {
		const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
		const char *q = end;

		while (*p == ' ' || *p == '\t')
			p++;
		while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
			q--;
		char *addr = address_parse("to", p, (size_t)(q - p), err, errlen);
		if (!addr)
			return -EINVAL;
		struct curl_slist *l = curl_slist_append(e->rcpt, addr);
		free(addr);
		if (!l)
			return -ENOMEM;
		e->rcpt = l;
		if (e->to.len)
			tbuf_puts(&e->to, ", ");
		tbuf_add(&e->to, p, (size_t)(q - p));
		p = comma ? comma + 1 : end;
	}
	return e->to.oom ? -ENOMEM : 0;
}

static int email_url(struct email *e, const char *url, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	int r = -EINVAL;

	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "smtp") && strcmp(scheme, "smtps")) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen, "url: expected smtp://host[:port] or smtps://host[:port]");
		goto out;
	}
	e->smtps = strcmp(scheme, "smtps") == 0;
	curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	struct tbuf w = {0};
	tbuf_printf(&w, "%s:%s", host, port ? port : "?");
	e->where = w.p;
	e->url = strdup(url);
	r = e->where && e->url ? 0 : -ENOMEM;
out:
	curl_free(scheme), curl_free(host), curl_free(port);
	curl_url_cleanup(u);
	return r;
}

static int email_starttls(struct email *e, const char *v, char *err, size_t errlen)
{
	if (!v)
		e->starttls = TLS_DEFAULT;
	else if (strcmp(v, "required") == 0)
		e->starttls = TLS_REQUIRED;
	else if (strcmp(v, "opportunistic") == 0)
		e->starttls = TLS_OPPORTUNISTIC;
	else if (strcmp(v, "off") == 0)
		e->starttls = TLS_OFF;
	else {
		snprintf(err, errlen, "starttls: expected required, opportunistic or off");
		return -EINVAL;
	}
	if (e->smtps && e->starttls == TLS_OFF) {
		snprintf(err, errlen, "starttls: smtps:// is always TLS; off makes no sense");
		return -EINVAL;
	}
	return 0;
}

static char *dup_opt(const struct vigil_config *cfg, const char *key, int *oom)
{
	const struct vigil_value *v = vigil_config_get(cfg, key);
	char *s = v ? strdup(v->text) : NULL;

	if (v && !s)
		*oom = 1;
	return s;
}

static int email_parse(struct email *e, const struct vigil_config *cfg, char *err,
		       size_t errlen)
{
	const struct vigil_value *v = vigil_config_get(cfg, "url");
	int r, oom = 0;

	if (!v || !vigil_config_get(cfg, "from") || !vigil_config_get(cfg, "to")) {
		snprintf(err, errlen, "url, from and to are required");
		return -EINVAL;
	}
	if ((r = email_url(e, v->text, err, errlen)) < 0)
		return r;
	v = vigil_config_get(cfg, "starttls");
	if ((r = email_starttls(e, v ? v->text : NULL, err, errlen)) < 0)
		return r;
	v = vigil_config_get(cfg, "from");
	if (!(e->from_addr = address_parse("from", v->text, strlen(v->text), err, errlen)))
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_values; i++)
		if (strcmp(cfg->values[i].key, "to") == 0 &&
		    (r = email_add_to(e, cfg->values[i].text, err, errlen)) < 0)
			return r;
	e->from = dup_opt(cfg, "from", &oom);
	e->username = dup_opt(cfg, "username", &oom);
	e->password = dup_opt(cfg, "password", &oom);
	e->ca_file = dup_opt(cfg, "ca_file", &oom);
	e->subject = dup_opt(cfg, "subject", &oom);
	if (!e->subject && !oom && !(e->subject = strdup(EMAIL_DEFAULT_SUBJECT)))
		oom = 1;
	if (oom)
		return -ENOMEM;
	if (e->password && !e->username) {
		snprintf(err, errlen, "password: needs a username");
		return -EINVAL;
	}
	if (e->ca_file && (r = curl_loop_ca_file_check(e->ca_file, err, errlen)) < 0)
		return r;
	v = vigil_config_get(cfg, "timeout");
	e->timeout_ms = v && v->number > 0 ? v->number : 30000;
	return 0;
}

static void email_destroy(void *instance)
{
	struct email *e = instance;

	if (!e)
		return;
	curl_loop_free(e->cl);
	free(e->url);
	free(e->where);
	free(e->username);
	if (e->password)
		explicit_bzero(e->password, strlen(e->password));
	free(e->password);
	free(e->from);
	free(e->from_addr);
	tbuf_free(&e->to);
	curl_slist_free_all(e->rcpt);
	free(e->subject);
	free(e->ca_file);
	free(e);
}

static int email_create(const struct vigil_host *host, struct vigil_ctx *ctx,
			const struct vigil_config *cfg, void **instance, char *err, size_t errlen)
{
	struct email *e = calloc(1, sizeof(*e));
	int r;

	if (!e)
		return -ENOMEM;
	e->host = host;
	e->ctx = ctx;
	r = curl_loop_global_init(err, errlen);
	if (r < 0) {
		free(e);
		return r;
	}
	r = email_parse(e, cfg, err, errlen);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		email_destroy(e);
		return r;
	}
	*instance = e;
	return 0;
}

static int email_start(void *instance, char *err, size_t errlen)
{
	struct email *e = instance;

	return curl_loop_start(&e->cl, e->host, e->ctx, err, errlen);
}

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_NOTIFIER, .name = "email",
	     .summary = "send events as e-mail over SMTP, SMTPS or STARTTLS",
	     .options = email_options, .create = email_create, .start = email_start,
	     .notify = email_notify, .destroy = email_destroy, .flags = VIGIL_PLUGIN_F_SPOOLED);
