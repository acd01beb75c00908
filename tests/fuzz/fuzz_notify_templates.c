/* libFuzzer target: the webhook bodies (json, slack, ntfy, alertmanager) and
 * the e-mail message (subject template, headers, body) built from a record
 * made of the input, through the plugins' descriptors and the fake host of the
 * unit tests. No network: both point at a closed loopback port, so every
 * delivery is built in full, then fails to connect.
 * The input, split on 0x1e: flags (byte 0: webhook format), the subject
 * template, kind, message, monitor, host, then string fields (outcome, signal,
 * line, reason, path, ...) and the rest as log_tail lines.
 * Properties, beyond no crash / leak / sanitizer report: notify() starts each
 * delivery, and each reports exactly one result, a failure (nothing listens)
 * but for the alertmanager preset's "nothing to resolve", which sends nothing. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/event_json.h"
#include "fake_host.h"
#include "fuzz_util.h"

#define SEP 0x1e
#define MAX_PARTS 24
/* Generous: a refused loopback connection fails in milliseconds. */
#define WAIT_MS 10000

static const char *const formats[] = {"json", "slack", "ntfy", "alertmanager"};
static const char *const names[] = {"outcome", "signal", "line", "reason", "path", "pattern"};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

struct parts {
	struct vigil_bytes v[MAX_PARTS];
	size_t n;
};

static void split(const uint8_t *data, size_t size, struct parts *p)
{
	const char *s = (const char *)data, *end = s + size;

	for (p->n = 0; p->n < MAX_PARTS && s <= end; p->n++) {
		const char *sep = memchr(s, SEP, (size_t)(end - s));
		size_t n = sep ? (size_t)(sep - s) : (size_t)(end - s);

		p->v[p->n] = (struct vigil_bytes){s, n};
		s += n + 1;
	}
}

/* Part i as a C string (cut at a NUL, as the envelope's strings are). */
static char *part_str(const struct parts *p, size_t i, const char *dflt)
{
	return i < p->n ? strndup(p->v[i].ptr, p->v[i].len) : strdup(dflt);
}

static bool enough_deliveries(struct fake_host *fh, void *arg)
{
	return fake_host_n_deliveries(fh) >= *(size_t *)arg;
}

/* Delivered, with nothing listening? Only a message that needs no request
 * may be: the alertmanager preset resolving an alert it never fired. */
static bool delivered_to_closed_port(const struct fake_delivery *d)
{
	return d->result == VIGIL_DELIVERED &&
	       !(d->token == 1 && d->detail && !strcmp(d->detail, "nothing to resolve"));
}

struct notifiers {
	const struct vigil_plugin *p[2]; /* webhook, email */
	void *inst[2];
};

/* Start both notifiers on fh: the webhook in the given format, e-mail with
 * the subject template (or the default one, when the core refuses it). */
static void start(struct fake_host *fh, const char *format, const char *subject,
		  struct notifiers *n)
{
	char fmt[64], subj[8200];
	const char *w[] = {"url = http://127.0.0.1:1/hook", fmt, "secret = s3cret", NULL};
	const char *e[] = {"url = smtp://127.0.0.1:1", "from = vigil@example.com",
			   "to = ops@example.com", subj, NULL};

	n->p[0] = fake_host_load_plugin(FUZZ_PLUGIN_WEBHOOK);
	n->p[1] = fake_host_load_plugin(FUZZ_PLUGIN_EMAIL);
	snprintf(fmt, sizeof(fmt), "format = %s", format);
	snprintf(subj, sizeof(subj), "subject = %s", subject);
	if (fake_host_instantiate(fh, n->p[0], w, &n->inst[0]) != 0)
		abort();
	if (fake_host_instantiate(fh, n->p[1], e, &n->inst[1]) != 0) {
		e[3] = NULL;
		if (fake_host_instantiate(fh, n->p[1], e, &n->inst[1]) != 0)
			abort();
	}
}

/* The record: envelope from parts 2..5, string fields, then log_tail lines. */
static void notify_all(struct fake_host *fh, const struct notifiers *n, const struct parts *p)
{
	struct vigil_field f[N_NAMES + 2];
	size_t nf = 0, first_tail = 6 + N_NAMES;
	char *kind = part_str(p, 2, "finished"), *msg = part_str(p, 3, "");
	char *monitor = part_str(p, 4, "job"), *host = part_str(p, 5, "web-1");
	char id[EVENT_ID_LEN];
	struct buf json = BUF_INIT;
	size_t want = 2;

	for (size_t i = 0; i < N_NAMES && 6 + i < p->n; i++)
		f[nf++] = (struct vigil_field){names[i], VIGIL_FIELD_STRING, .u.s = p->v[6 + i]};
	f[nf++] = (struct vigil_field){"exit_code", VIGIL_FIELD_INT, .u.i = (int64_t)p->n - 3};
	if (p->n > first_tail)
		f[nf++] = (struct vigil_field){"log_tail", VIGIL_FIELD_STRINGS,
					       .u.list = {p->v + first_tail, p->n - first_tail}};
	event_new_id(id);
	const struct vigil_event ev = {kind, msg, f, nf};
	const struct event_envelope env = {id, 1795678927123, host, monitor, 7, "core", 42};
	if (event_json_encode(&json, &env, &ev) != 0)
		abort();
	const struct vigil_record rec = {id, monitor, 7, "core", 1795678927123, host, 42, &ev,
					 json.p, json.len};
	for (int i = 0; i < 2; i++)
		if (n->p[i]->notify(n->inst[i], (uint64_t)i + 1, &rec) != 0)
			abort(); /* could not even start */
	if (!fake_host_run_until(fh, enough_deliveries, &want, WAIT_MS) ||
	    fake_host_n_deliveries(fh) != want)
		abort(); /* a delivery without a result, or with two */
	for (size_t i = 0; i < want; i++)
		if (delivered_to_closed_port(fake_host_delivery(fh, i)))
			abort();
	buf_free(&json);
	free(kind);
	free(msg);
	free(monitor);
	free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct parts p;
	struct fake_host *fh = fake_host_new();
	struct notifiers n;
	char *subject;

	split(data, size, &p);
	subject = part_str(&p, 1, "[vigil] {summary}");
	start(fh, formats[p.v[0].len ? (unsigned char)p.v[0].ptr[0] % 4 : 0], subject, &n);
	notify_all(fh, &n, &p);
	fake_host_free(fh);
	free(subject);
	return 0;
}
