/* Delivery: one queue per notifier, in event order.
 *
 * Spooled notifiers (VIGIL_PLUGIN_F_SPOOLED) write each notification to the
 * spool before its first attempt. Records submitted during one loop turn are
 * committed together at the next turn (group commit: one segment file, one
 * flush for the batch), then attempted. A record is marked done in the spool
 * only when its delivery succeeded (or it was dead-lettered); the marks
 * reach the disk lazily (ACK_FLUSH_MS), see spool.h.
 *
 * By default one delivery is in flight at a time: receivers see a notifier's
 * events exactly in event order, also across outages and restarts. The next
 * one starts the moment the previous one is answered, over the connection
 * libcurl keeps alive, so throughput is one round trip per event.
 * `parallel = N` allows N in flight, started in event order: more
 * throughput to a slow receiver, but receivers may then see neighbours
 * inside that window swapped. `finished` and `recovered` resolve what came
 * before them (Alertmanager), so they are barriers: they start alone, after
 * everything older was delivered, and nothing starts while they are in
 * flight. After a retryable failure the notifier pauses (exponential backoff
 * with jitter, or the receiver's Retry-After) and resumes from the oldest
 * undelivered notification, alone, until one gets through: so a failure
 * reorders at most what was in flight with it. Past max_age, or refused for good, a
 * notification moves to the dead-letter folder, with a log line. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine.h"
#include "base/log.h"
#include "spool.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS (5 * 60 * 1000)
#define RESCAN_MS 30000
/* Group commit: at most one spool flush per this many ms while events keep
 * coming; an event after a quiet spell is committed at the next loop turn. */
#define COMMIT_GROUP_MS 20
/* Delivered marks are written to the spool at most this late: a crash may
 * redeliver what was delivered in the last ACK_FLUSH_MS (same event id). */
#define ACK_FLUSH_MS 200

struct pending {
	struct pending *next;
	uint64_t token; /* of the attempt in flight */
	unsigned attempts;
	bool in_flight, committed, barrier;
	struct spool_seg *seg; /* in the spool, or NULL: in memory only */
	uint32_t index;        /* its record in seg */
	char *host; /* owned host of a replayed record, or NULL */
	struct stored_record *rec;
};

struct notifier {
	struct loop *loop; /* the engine's; notify.c calls nothing of engine.c */
	char *name;
	const struct vigil_plugin *plugin;
	void *instance;
	struct vigil_ctx ctx;
	struct pending *head, **tail;
	size_t n_pending, n_dead, n_replayed;
	unsigned n_in_flight;
	bool barrier_in_flight;
	uint64_t next_token;
	bool kicking, rekick;
	int64_t backoff_timer, commit_timer, rescan_timer, flush_timer;
	int64_t last_commit_ms;
	/* settings */
	uint32_t on;
	int64_t max_age_ms;
	unsigned parallel;
	struct spool *spool;
	bool spool_full_logged, failing;
	bool probing; /* after a failure: one at a time until one gets through */
	unsigned failures;
	/* A delivery tried on the caller's record (submit_direct), in the call */
	uint64_t direct_token;
	bool direct_answered;
	enum vigil_delivery direct_result;
	int64_t direct_retry_after;
	char direct_detail[256];
};

const char *notifier_name(const struct notifier *n) { return n->name; }
size_t notifier_pending(const struct notifier *n) { return n->n_pending; }
size_t notifier_dead(const struct notifier *n) { return n->n_dead; }

const char *notifier_spool_folder(const struct notifier *n)
{
	const char *slash = n->spool ? strrchr(spool_path(n->spool), '/') : NULL;

	return slash ? slash + 1 : NULL;
}

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
	n->loop = engine_loop(e);
	n->plugin = p;
	n->tail = &n->head;
	n->next_token = 1;
	n->max_age_ms = NOTIFY_MAX_AGE_DEFAULT_MS;
	n->parallel = NOTIFY_PARALLEL_DEFAULT;
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

static void pending_free(struct pending *p)
{
	record_free(p->rec);
	free(p->host);
	free(p);
}

void notifier_free(struct notifier *n)
{
	struct pending *p, *next;
	struct loop *loop;
	size_t lost = 0;

	if (!n)
		return;
	loop = n->loop;
	n->plugin->destroy(n->instance);
	ctx_release(&n->ctx);
	for (int64_t *t = &n->backoff_timer; t <= &n->flush_timer; t++)
		if (*t > 0)
			loop_del_timer(loop, *t);
	for (p = n->head; p; p = next) {
		next = p->next;
		lost += !p->seg && n->spool;
		pending_free(p);
	}
	if (lost)
		log_msg(LOG_LVL_ERR, n->ctx.label, "%zu notification(s) held only in memory "
			"(the spool was not writable) are lost", lost);
	spool_close(n->spool);
	free(n->name);
	free(n);
}

static bool spooled_plugin(const struct vigil_plugin *p)
{
	return p->size >= offsetof(struct vigil_plugin, flags) + sizeof(p->flags) &&
	       (p->flags & VIGIL_PLUGIN_F_SPOOLED);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ the queue */

static void unlink_pending(struct notifier *n, struct pending *p)
{
	struct pending **pp = &n->head;

	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	if (n->tail == &p->next)
		n->tail = pp;
	n->n_pending--;
	pending_free(p);
}

static void append(struct notifier *n, struct pending *p)
{
	const char *k = p->rec->ev.kind;

	p->barrier = strcmp(k, VIGIL_EV_FINISHED) == 0 || strcmp(k, VIGIL_EV_RECOVERED) == 0;
	*n->tail = p;
	n->tail = &p->next;
	n->n_pending++;
}

static int64_t flush_fired(struct loop *loop, int64_t id, void *data)
{
	struct notifier *n = data;

	(void)loop;
	(void)id;
	n->flush_timer = 0;
	spool_flush(n->spool);
	return LOOP_TIMER_DONE;
}

/* A record of the spool is done: marked now, written lazily. */
static void spool_mark_done(struct notifier *n, struct pending *p)
{
	spool_done(n->spool, p->seg, p->index);
	p->seg = NULL;
	if (spool_dirty(n->spool) && n->flush_timer <= 0)
		n->flush_timer = loop_add_timer(n->loop, ACK_FLUSH_MS, flush_fired,
						n, NULL);
}

/* Dead-letter: out of the queue, into dead/, one log line that says why. */
static void bury(struct notifier *n, struct pending *p, const char *why, const char *detail)
{
	bool kept = p->seg && n->spool;
	int r = kept ? spool_bury(n->spool, NULL, p->index, &p->rec->rec) : 0;

	if (kept)
		spool_mark_done(n, p);
	log_msg(LOG_LVL_ERR, n->ctx.label, "event %s (%s of %s) dead-lettered, %s: %s%s%s",
		p->rec->id, p->rec->ev.kind, p->rec->monitor, why, detail ? detail : "",
		kept && r == 0 ? "; kept in " : "", kept && r == 0 ? "dead/" : "");
	n->n_dead++;
	unlink_pending(n, p);
}

static bool too_old(struct notifier *n, struct pending *p)
{
	return n->max_age_ms > 0 && wall_ms() - p->rec->time_ms > n->max_age_ms;
}

static void notifier_kick(struct notifier *n);

static void start_one(struct notifier *n, struct pending *p)
{
	uint64_t token = n->next_token++;
	int rc;

	p->token = token;
	p->attempts++;
	p->in_flight = true;
	n->n_in_flight++;
	n->barrier_in_flight |= p->barrier;
	/* May report (and free p) before it returns. */
	rc = n->plugin->notify(n->instance, token, &p->rec->rec);
	if (rc < 0)
		notifier_delivered(n, token, VIGIL_RETRY, strerror(-rc), -1);
}

/* The next notification that may start now, or NULL. */
static struct pending *next_startable(struct notifier *n)
{
	if (n->backoff_timer > 0 || n->barrier_in_flight ||
	    n->n_in_flight >= (n->probing ? 1u : n->parallel))
		return NULL;
	for (struct pending *p = n->head; p; p = p->next) {
		if (!p->committed)
			return NULL; /* not durable yet: neither it nor anything after */
		if (p->in_flight)
			continue;
		if (p->barrier && (p != n->head || n->n_in_flight))
			return NULL;
		return p;
	}
	return NULL;
}

static void notifier_kick(struct notifier *n)
{
	struct pending *p;

	if (n->kicking) {
		n->rekick = true;
		return;
	}
	n->kicking = true;
	do {
		n->rekick = false;
		while ((p = next_startable(n)))
			start_one(n, p);
	} while (n->rekick);
	n->kicking = false;
}

/* ----------------------------------------------------- group commit */

static void spool_full(struct notifier *n, int err)
{
	if (n->spool_full_logged)
		return;
	n->spool_full_logged = true;
	log_msg(LOG_LVL_ERR, n->ctx.label, "cannot write to the spool %s: %s; notifications "
		"are kept in memory only until it is writable again (lost if vigil stops)",
		spool_path(n->spool), strerror(-err));
}

static void commit_batch(struct notifier *n)
{
	struct spool_item *items;
	struct pending **ps;
	size_t k = 0, max = n->n_pending;
	bool all_ok = true;

	items = calloc(max ? max : 1, sizeof(*items));
	ps = calloc(max ? max : 1, sizeof(*ps));
	for (struct pending *p = n->head; items && ps && p; p = p->next)
		if (!p->committed) {
			ps[k] = p;
			items[k++].rec = &p->rec->rec;
		}
	if (k && items && ps)
		spool_write(n->spool, items, k);
	for (size_t i = 0; i < k; i++) {
		ps[i]->committed = true;
		if (items[i].error) {
			all_ok = false;
			spool_full(n, items[i].error);
		} else {
			ps[i]->seg = items[i].seg;
			ps[i]->index = items[i].index;
		}
	}
	if (all_ok && k && n->spool_full_logged) {
		n->spool_full_logged = false;
		log_msg(LOG_LVL_INFO, n->ctx.label, "the spool is writable again");
	}
	/* Out of memory for the batch: deliver from memory rather than never. */
	for (struct pending *p = n->head; (!items || !ps) && p; p = p->next)
		p->committed = true;
	free(items);
	free(ps);
}

static int64_t commit_fired(struct loop *loop, int64_t id, void *data)
{
	struct notifier *n = data;

	(void)loop;
	(void)id;
	n->commit_timer = 0;
	n->last_commit_ms = loop_now_ms(loop);
	commit_batch(n);
	notifier_kick(n);
	return LOOP_TIMER_DONE;
}

/* A queue entry holding a copy of rec, or NULL (logged). */
static struct pending *pending_new(struct notifier *n, const struct vigil_record *rec)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p || !(p->rec = record_copy(rec))) {
		free(p);
		log_msg(LOG_LVL_ERR, n->ctx.label, "out of memory: event %s not queued", rec->id);
		return NULL;
	}
	return p;
}

static bool direct_possible(const struct notifier *n)
{
	return !n->spool && !n->head && !n->n_in_flight && !n->kicking && !n->probing &&
	       n->backoff_timer <= 0 && !n->barrier_in_flight;
}

/* An idle notifier without a spool tries the delivery on the caller's record
 * (borrowed for the call): an answer within the call (stdout) costs no copy
 * of the record. Anything else is queued as a copy, in flight, and its answer
 * (already given, or to come) goes the usual way. */
static void submit_direct(struct notifier *n, const struct vigil_record *rec)
{
	uint64_t token = n->next_token++;
	struct pending *p;
	int rc;

	n->direct_token = token;
	n->direct_answered = false;
	rc = n->plugin->notify(n->instance, token, rec);
	n->direct_token = 0;
	if (n->direct_answered && n->direct_result == VIGIL_DELIVERED) {
		n->probing = false;
		return;
	}
	p = pending_new(n, rec);
	if (!p)
		return;
	p->committed = p->in_flight = true;
	p->token = token;
	p->attempts = 1;
	append(n, p);
	n->n_in_flight++;
	n->barrier_in_flight |= p->barrier;
	if (rc < 0)
		notifier_delivered(n, token, VIGIL_RETRY, strerror(-rc), -1);
	else if (n->direct_answered)
		notifier_delivered(n, token, n->direct_result, n->direct_detail,
				   n->direct_retry_after);
}

void notifier_submit(struct notifier *n, const struct vigil_record *rec)
{
	struct pending *p;

	if (!notify_on_wants(n->on, rec->event))
		return;
	if (direct_possible(n)) {
		submit_direct(n, rec);
		return;
	}
	p = pending_new(n, rec);
	if (!p)
		return;
	p->committed = !n->spool;
	append(n, p);
	if (n->spool && n->commit_timer <= 0) {
		struct loop *loop = n->loop;
		int64_t wait = n->last_commit_ms + COMMIT_GROUP_MS - loop_now_ms(loop);

		n->commit_timer = loop_add_timer(loop, wait > 0 && n->last_commit_ms ? wait : 0,
						 commit_fired, n, NULL);
	}
	if (n->spool && n->commit_timer <= 0) { /* no timer: commit now */
		commit_batch(n);
		n->commit_timer = 0;
	}
	notifier_kick(n);
}

/* ---------------------------------------------------------- results */

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

static void delivered_ok(struct notifier *n, struct pending *p)
{
	if (p->seg && n->spool)
		spool_mark_done(n, p);
	n->probing = false;
	if (n->failing) {
		n->failing = false;
		log_msg(LOG_LVL_INFO, n->ctx.label, "delivering again (after %u failed attempt(s))",
			n->failures);
		n->failures = 0;
	}
	unlink_pending(n, p);
}

static void delivery_failed(struct notifier *n, struct pending *p, const char *detail,
			    int64_t retry_after_ms)
{
	int64_t ms;

	n->failures++;
	if (too_old(n, p)) {
		bury(n, p, "older than max_age", detail);
		return;
	}
	ms = backoff_ms(p->attempts, retry_after_ms);
	/* Logged when a failure streak starts; the rest are counted. */
	if (!n->failing)
		log_msg(LOG_LVL_WARN, n->ctx.label, "event %s not delivered (attempt %u): %s; "
			"retrying in %lld ms", p->rec->id, p->attempts, detail ? detail : "",
			(long long)ms);
	n->failing = true;
	n->probing = true;
	if (n->backoff_timer <= 0)
		n->backoff_timer = loop_add_timer(n->loop, ms, backoff_fired, n,
						  NULL);
}

void notifier_delivered(struct notifier *n, uint64_t token, enum vigil_delivery result,
			const char *detail, int64_t retry_after_ms)
{
	struct pending *p = n->head;

	if (token && token == n->direct_token) { /* submit_direct: within the call */
		n->direct_answered = true;
		n->direct_result = result;
		n->direct_retry_after = retry_after_ms;
		snprintf(n->direct_detail, sizeof(n->direct_detail), "%s", detail ? detail : "");
		return;
	}
	while (p && !(p->in_flight && p->token == token))
		p = p->next;
	if (!p)
		return; /* a late answer for something already settled */
	p->in_flight = false;
	n->n_in_flight--;
	if (p->barrier)
		n->barrier_in_flight = false;
	if (result == VIGIL_DELIVERED)
		delivered_ok(n, p);
	else if (result == VIGIL_PERMANENT)
		bury(n, p, "refused for good", detail);
	else
		delivery_failed(n, p, detail, retry_after_ms);
	notifier_kick(n);
}

/* ------------------------------------------------------ replay, rescan */

static void replayed(void *data, struct spool_seg *seg, uint32_t index,
		     struct stored_record *rec, char *host)
{
	struct notifier *n = data;
	struct pending *p = calloc(1, sizeof(*p));

	if (!p) {
		record_free(rec);
		free(host);
		return; /* left in the segment: delivered by the next process */
	}
	p->seg = seg;
	p->index = index;
	p->rec = rec;
	p->host = host;
	p->committed = true;
	append(n, p);
	n->n_replayed++;
	if (too_old(n, p))
		bury(n, p, "older than max_age", "found in the spool");
}

/* Queue the records of the folder's orphaned segments (ours now), in event
 * order. */
static void adopt(struct notifier *n)
{
	size_t bad = 0;

	if (!spool_try_own(n->spool))
		return;
	n->n_replayed = 0;
	spool_adopt(n->spool, replayed, n, &bad);
	if (n->n_replayed)
		log_msg(LOG_LVL_INFO, n->ctx.label, "replaying %zu notification(s) from %s",
			n->n_replayed, spool_path(n->spool));
	if (bad)
		log_msg(LOG_LVL_ERR, n->ctx.label, "%zu record(s) in %s unreadable (torn by a "
			"crash or corrupt, %zu damaged bytes): skipped, kept in dead/", bad,
			spool_path(n->spool), spool_bad_bytes(n->spool));
	notifier_kick(n);
}

static int64_t rescan_fired(struct loop *loop, int64_t id, void *data)
{
	struct notifier *n = data;

	(void)loop;
	(void)id;
	adopt(n);
	return RESCAN_MS;
}

int notifier_configure(struct notifier *n, const struct notify_opts *o, char *err,
		       size_t errlen)
{
	char label[SPOOL_NAME_MAX + 32];
	int r;

	n->on = o->on;
	n->max_age_ms = o->max_age_ms;
	n->parallel = o->parallel ? o->parallel : NOTIFY_PARALLEL_DEFAULT;
	if (!o->spool_root || !spooled_plugin(n->plugin) || n->spool)
		return 0;
	snprintf(label, sizeof(label), "notifier %s", o->spool_name);
	free(n->ctx.label);
	n->ctx.label = strdup(label);
	if (!n->ctx.label)
		return -ENOMEM;
	r = spool_open(o->spool_root, o->spool_name, &n->spool, err, errlen);
	if (r)
		return r;
	adopt(n);
	n->rescan_timer = loop_add_timer(n->loop, RESCAN_MS, rescan_fired, n, NULL);
	return 0;
}

/* -------------------------------------------------------------- `on` */

/* Every event kind, once: `on =` filters and notify_kind_bit index this (at
 * most 16: outcomes take the bits from 16 on). */
static const char *const on_kinds[] = {
	VIGIL_EV_ATTACHED, VIGIL_EV_EXITED, VIGIL_EV_FILE, VIGIL_EV_MATCH,
	VIGIL_EV_PROGRESS, VIGIL_EV_STALLED, VIGIL_EV_OVERDUE, VIGIL_EV_TIMEOUT,
	VIGIL_EV_PRESSURE, VIGIL_EV_RECOVERED, VIGIL_EV_FINISHED, VIGIL_EV_WAITING,
	VIGIL_EV_RETRYING, VIGIL_EV_STOPPED, VIGIL_EV_CONTINUED, VIGIL_EV_MISSED,
};
static const char *const on_outcomes[] = {"succeeded", "failed", "timed_out", "unknown"};
#define N_ON_KINDS (sizeof(on_kinds) / sizeof(on_kinds[0]))
#define N_ON_OUTCOMES (sizeof(on_outcomes) / sizeof(on_outcomes[0]))
_Static_assert(N_ON_KINDS <= 16, "event kinds share a word with the outcomes");

uint32_t notify_kind_bit(const char *kind)
{
	for (size_t i = 0; i < N_ON_KINDS; i++)
		if (strcmp(on_kinds[i], kind) == 0)
			return 1u << i;
	return 1u << 31;
}

/* "attached, exited, ..." for messages. */
static void on_kinds_list(char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; i < N_ON_KINDS && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", on_kinds[i]);
}

int notify_parse_on(const char *text, uint32_t *bits, char *err, size_t errlen)
{
	char *copy = strdup(text), *save = NULL;
	int r = 0;

	*bits = 0;
	if (!copy)
		return -ENOMEM;
	for (char *t = strtok_r(copy, ", \t", &save); t && !r; t = strtok_r(NULL, ", \t", &save)) {
		uint32_t b = 0;

		for (size_t i = 0; i < N_ON_KINDS; i++)
			if (strcmp(t, on_kinds[i]) == 0)
				b = 1u << i;
		for (size_t i = 0; i < N_ON_OUTCOMES; i++)
			if (strcmp(t, on_outcomes[i]) == 0)
				b = 1u << (16 + i);
		if (!b) {
			char kinds[256];

			on_kinds_list(kinds, sizeof(kinds));
			snprintf(err, errlen, "unknown event \"%s\" (event kinds: %s; outcomes: "
				 "succeeded, failed, timed_out, unknown)", t, kinds);
			r = -EINVAL;
		}
		*bits |= b;
	}
	free(copy);
	if (!r && !*bits) {
		snprintf(err, errlen, "empty: name at least one event kind or outcome");
		r = -EINVAL;
	}
	return r;
}

bool notify_on_wants(uint32_t bits, const struct vigil_event *ev)
{
	if (bits == 0)
		return true;
	for (size_t i = 0; i < N_ON_KINDS; i++)
		if (strcmp(ev->kind, on_kinds[i]) == 0 && (bits & (1u << i)))
			return true;
	if (strcmp(ev->kind, VIGIL_EV_FINISHED) == 0) {
		const struct vigil_field *f = event_field(ev, "outcome");

		for (size_t i = 0; f && f->type == VIGIL_FIELD_STRING && i < N_ON_OUTCOMES; i++)
			if ((bits & (1u << (16 + i))) && f->u.s.len == strlen(on_outcomes[i]) &&
			    memcmp(f->u.s.ptr, on_outcomes[i], f->u.s.len) == 0)
				return true;
	}
	return false;
}
