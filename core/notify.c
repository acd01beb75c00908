/* Delivery: one queue per notifier, in order, one delivery in flight at a time,
 * retried with exponential backoff and jitter until delivered or permanently
 * refused. The durable spool (spool.c) sits under this queue for notifiers
 * flagged VIGIL_PLUGIN_F_SPOOLED. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "engine.h"
#include "log.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS (5 * 60 * 1000)

struct pending {
	struct pending *next;
	uint64_t token;
	unsigned attempts;
	struct stored_record *rec;
};

struct notifier {
	struct engine *engine;
	char *name;
	const struct vigil_plugin *plugin;
	void *instance;
	struct vigil_ctx ctx;
	struct pending *head, **tail;
	size_t n_pending;
	uint64_t next_token;
	bool in_flight;
	bool kicking, rekick;
	int64_t backoff_timer;
};

const char *notifier_name(const struct notifier *n) { return n->name; }
size_t notifier_pending(const struct notifier *n) { return n->n_pending; }

struct notifier *notifier_new(struct engine *e, const char *name, const struct vigil_plugin *p,
			      const struct vigil_config *cfg, char *err, size_t errlen)
{
	struct notifier *n = calloc(1, sizeof(*n));
	char label[300];
	int rc;

	if (!n || !(n->name = strdup(name))) {
		free(n);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	snprintf(label, sizeof(label), "notifier %s", p->name);
	if (ctx_init(&n->ctx, e, label)) {
		free(n->name);
		free(n);
		return NULL;
	}
	n->ctx.notifier = n;
	n->engine = e;
	n->plugin = p;
	n->tail = &n->head;
	n->next_token = 1;
	rc = p->create(&engine_host, &n->ctx, cfg, &n->instance, err, errlen);
	if (rc) {
		ctx_release(&n->ctx);
		free(n->name);
		free(n);
		return NULL;
	}
	return n;
}

int notifier_start(struct notifier *n, char *err, size_t errlen)
{
	return n->plugin->start ? n->plugin->start(n->instance, err, errlen) : 0;
}

void notifier_free(struct notifier *n)
{
	struct pending *p, *next;

	if (!n)
		return;
	n->plugin->destroy(n->instance);
	ctx_release(&n->ctx);
	for (p = n->head; p; p = next) {
		next = p->next;
		record_free(p->rec);
		free(p);
	}
	free(n->name);
	free(n);
}

static void notifier_kick(struct notifier *n);

static void start_head(struct notifier *n)
{
	struct pending *p = n->head;
	int rc;

	p->token = n->next_token++;
	p->attempts++;
	n->in_flight = true;
	rc = n->plugin->notify(n->instance, p->token, &p->rec->rec);
	if (rc < 0 && n->in_flight && n->head == p)
		notifier_delivered(n, p->token, VIGIL_RETRY, strerror(-rc), -1);
}

static void notifier_kick(struct notifier *n)
{
	if (n->kicking) {
		n->rekick = true;
		return;
	}
	n->kicking = true;
	do {
		n->rekick = false;
		while (!n->in_flight && n->head && n->backoff_timer <= 0)
			start_head(n);
	} while (n->rekick);
	n->kicking = false;
}

void notifier_submit(struct notifier *n, const struct vigil_record *rec)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p || !(p->rec = record_copy(rec))) {
		free(p);
		log_msg(LOG_LVL_ERR, n->ctx.label, "out of memory: event %s not queued", rec->id);
		return;
	}
	*n->tail = p;
	n->tail = &p->next;
	n->n_pending++;
	notifier_kick(n);
}

static void pop_head(struct notifier *n)
{
	struct pending *p = n->head;

	n->head = p->next;
	if (!n->head)
		n->tail = &n->head;
	n->n_pending--;
	record_free(p->rec);
	free(p);
}

static int64_t backoff_fired(struct loop *loop, int64_t id, void *data)
{
	struct notifier *n = data;

	(void)loop;
	(void)id;
	n->backoff_timer = 0;
	notifier_kick(n);
	return LOOP_TIMER_DONE;
}

/* Exponential backoff from 1 s to 5 min, with +-25% jitter so that many
 * agents retrying one receiver do not come back in step. */
static int64_t backoff_ms(unsigned attempts, int64_t retry_after_ms)
{
	int64_t ms = BACKOFF_FIRST_MS;
	uint32_t r = 0;

	for (unsigned i = 1; i < attempts && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)attempts * 2654435761u;
	ms = ms * 3 / 4 + (int64_t)(r % (uint32_t)(ms / 2 + 1));
	return retry_after_ms > ms ? retry_after_ms : ms;
}

void notifier_delivered(struct notifier *n, uint64_t token, enum vigil_delivery result,
			const char *detail, int64_t retry_after_ms)
{
	struct pending *p = n->head;

	if (!p || p->token != token || !n->in_flight)
		return; /* late answer for something already settled */
	n->in_flight = false;
	if (result == VIGIL_DELIVERED) {
		pop_head(n);
	} else if (result == VIGIL_PERMANENT) {
		log_msg(LOG_LVL_ERR, n->ctx.label, "event %s (%s of %s) refused for good: %s",
			p->rec->id, p->rec->ev.kind, p->rec->monitor, detail ? detail : "");
		pop_head(n);
	} else {
		int64_t ms = backoff_ms(p->attempts, retry_after_ms);

		log_msg(LOG_LVL_WARN, n->ctx.label, "event %s not delivered (attempt %u): %s; "
			"retrying in %lld ms", p->rec->id, p->attempts, detail ? detail : "",
			(long long)ms);
		n->backoff_timer = loop_add_timer(engine_loop(n->engine), ms, backoff_fired, n,
						  NULL);
	}
	notifier_kick(n);
}
