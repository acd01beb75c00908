/* example_jsonl: a third-party notifier, built out of tree against
 * vigil/plugin.h only (see vigil-plugin(7)). It appends each event's JSON line
 * to a file. Usable as `notify = example_jsonl` (every option has a default)
 * or through a [notifier NAME] section with `type = example_jsonl`. */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vigil/plugin.h>

struct jsonl {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	char *path;
};

static int jsonl_create(const struct vigil_host *host, struct vigil_ctx *ctx,
			const struct vigil_config *cfg, void **instance, char *err, size_t errlen)
{
	struct jsonl *j = calloc(1, sizeof(*j));

	if (!j || !(j->path = strdup(vigil_config_get(cfg, "path")->text))) {
		free(j);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->host = host;
	j->ctx = ctx;
	*instance = j;
	return 0;
}

/* A local file write is quick: the delivery ends before notify() returns. */
static int jsonl_notify(void *instance, uint64_t token, const struct vigil_record *rec)
{
	struct jsonl *j = instance;
	FILE *fp = fopen(j->path, "ae");
	int ok = fp && fwrite(rec->json, 1, rec->json_len, fp) == rec->json_len &&
		 fputc('\n', fp) != EOF;

	if (fp && fclose(fp) != 0)
		ok = 0;
	j->host->delivered(j->ctx, token, ok ? VIGIL_DELIVERED : VIGIL_RETRY,
			   ok ? NULL : "cannot append to the file", -1);
	return 0;
}

static void jsonl_destroy(void *instance)
{
	struct jsonl *j = instance;

	free(j->path);
	free(j);
}

static const struct vigil_option jsonl_options[] = {
	{"path", VIGIL_OPT_PATH, 0, "vigil-events.jsonl", "the file events are appended to"},
	{NULL, 0, 0, NULL, NULL},
};

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_NOTIFIER, .name = "example_jsonl",
	     .summary = "example: append each event's JSON line to a file",
	     .options = jsonl_options, .create = jsonl_create, .notify = jsonl_notify,
	     .destroy = jsonl_destroy);
