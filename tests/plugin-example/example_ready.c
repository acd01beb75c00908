/* example_ready: a third-party detector, built out of tree against
 * vigil/plugin.h only (see vigil-plugin(7)). It reads a small status file
 * that the job writes: a line "progress N" reports N percent, a line "done"
 * is the job's success line. A timer re-reads the file: the job may create
 * it at any time, and a plugin never blocks. */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vigil/plugin.h>

struct ready {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	char *path;
	int64_t interval_ms;
	int64_t timer;
	long last_percent;
	int done_seen;
};

static int ready_create(const struct vigil_host *host, struct vigil_ctx *ctx,
			const struct vigil_config *cfg, void **instance, char *err, size_t errlen)
{
	struct ready *r = calloc(1, sizeof(*r));

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->host = host;
	r->ctx = ctx;
	/* `path` is required: the core refuses the section without it. */
	r->path = strdup(vigil_config_get(cfg, "path")->text);
	r->interval_ms = vigil_config_get(cfg, "interval")->number;
	r->last_percent = -1;
	/* The default success rule now waits for our success line. */
	host->expect(ctx, VIGIL_CRIT_SUCCESS);
	*instance = r;
	return 0;
}

static void emit_progress(struct ready *r, long percent)
{
	struct vigil_field f[] = {
		{.name = "value", .type = VIGIL_FIELD_INT, .u.i = percent},
		{.name = "unit", .type = VIGIL_FIELD_STRING, .u.s = {"percent", 7}},
	};
	struct vigil_event ev = {.kind = VIGIL_EV_PROGRESS, .message = "status file progress",
				 .fields = f, .n_fields = 2};

	r->host->emit(r->ctx, &ev);
}

static void emit_done(struct ready *r, const char *line)
{
	struct vigil_field f[] = {
		{.name = "pattern", .type = VIGIL_FIELD_STRING, .u.s = {"success", 7}},
		{.name = "line", .type = VIGIL_FIELD_STRING, .u.s = {line, strlen(line)}},
	};
	struct vigil_event ev = {.kind = VIGIL_EV_MATCH, .message = "the job says it is done",
				 .fields = f, .n_fields = 2};

	r->host->emit(r->ctx, &ev);
}

/* Report what changed since the last read. */
static void ready_read(struct ready *r)
{
	char line[256];
	FILE *fp = fopen(r->path, "re");
	long percent;

	while (fp && fgets(line, sizeof(line), fp)) {
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "progress %ld", &percent) == 1 && percent != r->last_percent) {
			r->last_percent = percent;
			emit_progress(r, percent);
		} else if (strcmp(line, "done") == 0 && !r->done_seen) {
			r->done_seen = 1;
			emit_done(r, line);
		}
	}
	if (fp)
		fclose(fp);
}

static int64_t ready_tick(void *data)
{
	struct ready *r = data;

	ready_read(r);
	return r->interval_ms;
}

static int ready_start(void *instance, char *err, size_t errlen)
{
	struct ready *r = instance;

	r->timer = r->host->add_timer(r->ctx, 0, ready_tick, r);
	if (r->timer < 0) {
		snprintf(err, errlen, "cannot add a timer");
		return (int)r->timer;
	}
	return 0;
}

/* The job ended: a last read, so a "done" written just before the exit counts. */
static enum vigil_settle ready_settle(void *instance)
{
	ready_read(instance);
	return VIGIL_SETTLED;
}

static void ready_destroy(void *instance)
{
	struct ready *r = instance;

	if (r->timer > 0)
		r->host->cancel_timer(r->ctx, r->timer);
	free(r->path);
	free(r);
}

static const struct vigil_option ready_options[] = {
	{"path", VIGIL_OPT_PATH, VIGIL_OPTF_REQUIRED, NULL, "the job's status file"},
	{"interval", VIGIL_OPT_DURATION, 0, "100ms", "how often it is read"},
	{NULL, 0, 0, NULL, NULL},
};

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_DETECTOR, .name = "example_ready",
	     .summary = "example: progress and success from a job's status file",
	     .options = ready_options, .create = ready_create, .start = ready_start,
	     .settle = ready_settle, .destroy = ready_destroy);
