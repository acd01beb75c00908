/* vigil run's supervisors and vigil watch spool under the state folder in use
 * (STATE/spool) or the agent's spool_dir; what they leave when they end is
 * ours when we have a notifier of the same folder name (a [notifier NAME], or
 * plugin + hash of the spec). A folder still owned (its .lock held) is its
 * owner's. Adopted records go to our notifier (its spool first), then are
 * marked done in theirs; that spool is closed (the marks written) only at the
 * next scan, long after our spool committed them: at least once, never lost. */
#include "agent_internal.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "engine/spool.h"

#define ADOPT_SCAN_MS 30000

struct handover {
	struct notifier *n;
	struct spool *from;
};

static void handed_over(void *data, struct spool_seg *seg, uint32_t index,
			struct stored_record *rec, char *host)
{
	struct handover *h = data;

	notifier_submit(h->n, &rec->rec);
	spool_done(h->from, seg, index);
	record_free(rec);
	free(host);
}

static void adopt_warn_once(struct agent *a, const char *path)
{
	char **grown;

	for (size_t i = 0; i < a->n_adopt_warned; i++)
		if (strcmp(a->adopt_warned[i], path) == 0)
			return;
	log_warnx("spool %s: left by a process that ended, but no notifier here uses that "
		  "folder name; not delivered", path);
	grown = realloc(a->adopt_warned, (a->n_adopt_warned + 1) * sizeof(*grown));
	if (grown && (grown[a->n_adopt_warned] = strdup(path)))
		a->n_adopt_warned++;
	if (grown)
		a->adopt_warned = grown;
}

static bool spool_has_segments(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool any = false;

	while (d && !any && (de = readdir(d)))
		any = de->d_name[0] != '.' && strcmp(de->d_name, "dead") != 0;
	if (d)
		closedir(d);
	return any;
}

/* One folder: ours to deliver (kept open until the next scan), or said once. */
static void adopt_folder(struct agent *a, const char *root, const char *name, bool own_root)
{
	struct notifier *n = engine_notifier_by_folder(a->engine, name);
	struct handover h = {n, NULL};
	struct spool **grown;
	char path[PATH_MAX], err[300];
	size_t bad = 0;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	if ((own_root && n) || !spool_has_segments(path))
		return; /* our notifier's own folder: its rescan adopts */
	if (spool_open(root, name, &h.from, err, sizeof(err)) != 0) {
		log_warnx("%s", err);
		return;
	}
	if (!spool_is_owner(h.from) || !n) {
		if (spool_is_owner(h.from))
			adopt_warn_once(a, path);
		spool_close(h.from);
		return;
	}
	grown = realloc(a->handed, (a->n_handed + 1) * sizeof(*grown));
	if (!grown) {
		spool_close(h.from);
		return;
	}
	a->handed = grown;
	a->handed[a->n_handed++] = h.from;
	spool_adopt(h.from, handed_over, &h, &bad);
	log_info("adopted the spool %s for notifier %s", path, notifier_name(n));
}

static void adopt_root(struct agent *a, const char *root, bool own_root)
{
	DIR *d = opendir(root);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN))
			adopt_folder(a, root, de->d_name, own_root);
	if (d)
		closedir(d);
}

static void handed_close(struct agent *a)
{
	for (size_t i = 0; i < a->n_handed; i++)
		spool_close(a->handed[i]);
	a->n_handed = 0;
}

static int64_t adopt_scan(struct loop *loop, int64_t id, void *data)
{
	struct agent *a = data;
	char state_spool[PATH_MAX];

	(void)loop;
	(void)id;
	handed_close(a);
	snprintf(state_spool, sizeof(state_spool), "%s/spool", a->state_dir);
	adopt_root(a, a->spool_dir, true);
	if (strcmp(state_spool, a->spool_dir) != 0)
		adopt_root(a, state_spool, false);
	return ADOPT_SCAN_MS;
}

/* At once (the notifiers exist by then), then every ADOPT_SCAN_MS. */
void agent_adopt_start(struct agent *a)
{
	a->adopt_timer = loop_add_timer(a->loop, 0, adopt_scan, a, NULL);
}

void agent_adopt_stop(struct agent *a)
{
	if (a->adopt_timer > 0)
		loop_del_timer(a->loop, a->adopt_timer);
	handed_close(a);
	free(a->handed);
	for (size_t i = 0; i < a->n_adopt_warned; i++)
		free(a->adopt_warned[i]);
	free(a->adopt_warned);
}
