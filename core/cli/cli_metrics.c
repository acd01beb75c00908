/* vigil metrics: the Prometheus text exposition (format 0.0.4) of the state
 * folder's run records, the run history and the notification spool
 * (engine/metrics.c, which the agent's textfile and listener use too). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cli.h"
#include "cli_session.h"
#include "engine/metrics.h"

static const char usage[] =
	"usage: vigil metrics\n"
	"\n"
	"Prints the metrics of every job and monitor in the Prometheus text format:\n"
	"vigil_last_run_outcome{monitor,outcome}, vigil_last_run_exit_code{monitor},\n"
	"vigil_last_run_duration_seconds{monitor}, vigil_last_run_end_timestamp_seconds{monitor},\n"
	"vigil_running{monitor}, vigil_progress_ratio{monitor}, vigil_runs_total{monitor,outcome},\n"
	"vigil_notifications_pending{notifier}, vigil_notifications_dead_total{notifier}.\n";

int cli_metrics(int argc, char **argv)
{
	struct buf b = BUF_INIT;
	char root[4096];
	const char *sdir;
	int rc;

	if (argc > 1 && cli_is_help(argv[1]))
		return fputs(usage, stdout), 0;
	if (argc > 1)
		return fprintf(stderr, "vigil metrics: unexpected argument %s (see vigil metrics "
			       "--help)\n", argv[1]), EXIT_USAGE;
	if (!(sdir = cli_state_dir()))
		return EXIT_USAGE;
	/* The spool of this state folder, as vigil status finds it. */
	rc = metrics_render(&b, sdir, session_spool_dir(NULL, root, sizeof(root)));
	if (rc == 0)
		fwrite(b.p ? b.p : "", 1, b.len, stdout);
	else
		fprintf(stderr, "vigil metrics: %s: %s\n", sdir, strerror(-rc));
	buf_free(&b);
	return rc ? EXIT_USAGE : fflush(stdout) == 0 ? 0 : 1;
}
