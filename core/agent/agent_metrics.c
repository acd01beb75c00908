/* The agent's metrics: metrics_textfile, rewritten when something changed,
 * and metrics_listen, the HTTP listener; both render engine/metrics.h. */
#include "agent.h"
#include "agent_internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "metrics_http.h"
#include "base/log.h"
#include "base/safe_file.h"
#include "engine/metrics.h"

/* Records come in bursts (attached, exited, finished): one write per burst,
 * after the engine has written the run record of the last one. */
#define METRICS_COALESCE_MS 50

static int agent_render_metrics(void *ctx, struct buf *out)
{
	struct agent *a = ctx;

	return metrics_render(out, a->state_dir, a->spool_dir);
}

/* metrics_textfile, replaced atomically (node_exporter never reads half). */
void agent_metrics_write(struct agent *a)
{
	const char *path = a->ac.metrics_textfile;
	struct buf b = BUF_INIT;
	char err[PATH_MAX + 200] = "";
	int rc;

	if (!path)
		return;
	rc = agent_render_metrics(a, &b);
	if (rc != 0)
		snprintf(err, sizeof(err), "%s: %s", a->state_dir, strerror(-rc));
	else
		rc = safe_file_replace(path, b.p ? b.p : "", b.len, 0644, err, sizeof(err));
	if (rc != 0 && !a->metrics_warned)
		log_warnx("metrics_textfile: %s", err);
	else if (rc == 0 && a->metrics_warned)
		log_info("metrics_textfile: %s written again", path);
	a->metrics_warned = rc != 0;
	buf_free(&b);
}

static int64_t textfile_due(struct loop *loop, int64_t id, void *data)
{
	struct agent *a = data;

	(void)loop;
	(void)id;
	a->metrics_timer = 0;
	agent_metrics_write(a);
	return LOOP_TIMER_DONE;
}

/* Something the metrics show changed: no timer runs while nothing does. */
void agent_metrics_changed(struct agent *a)
{
	if (!a->ac.metrics_textfile || a->metrics_timer > 0)
		return;
	a->metrics_timer = loop_add_timer(a->loop, METRICS_COALESCE_MS, textfile_due, a, NULL);
	if (a->metrics_timer < 0) {
		a->metrics_timer = 0;
		agent_metrics_write(a);
	}
}

/* metrics_listen, read at start like the folders. */
int agent_metrics_listen(struct agent *a)
{
	char err[512];

	if (!a->ac.metrics_listen)
		return 0;
	a->http = metrics_http_open(a->loop, a->ac.metrics_listen, agent_render_metrics, a, err,
				    sizeof(err));
	if (!a->http)
		fprintf(stderr, "vigil agent: %s\n", err);
	return a->http ? 0 : AGENT_EXIT_CONFIG;
}

void agent_metrics_close(struct agent *a)
{
	metrics_http_close(a->http);
	if (a->metrics_timer > 0)
		loop_del_timer(a->loop, a->metrics_timer);
}
