/* The durable spool: one folder per notifier, one file per notification.
 *
 *   SPOOL/NAME/<event id>-<seq>.<tag>   a notification not yet delivered
 *   SPOOL/NAME/dead/<same name>         refused for good, or older than max_age
 *   SPOOL/NAME/.lock                    flock: the folder's owner (adopts orphans)
 *   SPOOL/NAME/.claim-<tag>             flock held by the live process <tag>
 *
 * Each file holds the record's v1 JSON line and a second line with the type of
 * each event field (JSON cannot tell 50 from 50.0), enough to rebuild the
 * struct vigil_record the plugin gets. Files are written to a dot-name, made
 * durable (fdatasync, or one syncfs for a batch), renamed, and the folder
 * fsync'd, all before the first attempt. Names sort in event order: event ids
 * are time-ordered, the sequence breaks ties inside one process.
 *
 * Sharing a folder between processes (two `vigil watch`, watch + agent): every
 * process stamps its files with its own random tag and holds the flock on
 * .claim-<tag> while it lives, and delivers its own files. The holder of .lock
 * (the first to open the folder, or whoever takes it when the owner is gone)
 * also adopts the files whose tag is no longer locked (their writer died or
 * exited with work left), renaming them to its own tag, at open and then on a
 * periodic rescan. So one notification is only ever being delivered by one
 * process, and nothing written by a process that dies is orphaned for long. */
#ifndef VIGIL_SPOOL_H
#define VIGIL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "engine.h"

#define SPOOL_NAME_MAX 128

struct spool;

/* The default spool root: /var/lib/vigil/spool (root), else
 * $XDG_STATE_HOME/vigil/spool or ~/.local/state/vigil/spool. */
const char *spool_default_dir(char *buf, size_t len);

/* The folder name for a notifier: `name` itself for a [notifier NAME] (when
 * it is a safe file name), else "<plugin>-<12 hex of a hash of the spec>", so
 * no URL or secret ever becomes a file name. */
void spool_folder_name(const char *plugin, const char *spec, bool named, char *out,
		       size_t len);

/* Create or open root/name (and dead/), take the claim lock and try the owner
 * lock. 0 or -errno with a message. */
int spool_open(const char *root, const char *name, struct spool **out, char *err,
	       size_t errlen);
void spool_close(struct spool *s);
const char *spool_path(const struct spool *s);
bool spool_is_owner(const struct spool *s);
/* Try to become the owner (when the previous one is gone). */
bool spool_try_own(struct spool *s);

/* One notification to write: the JSON line and the field types. */
struct spool_item {
	const struct vigil_record *rec;
	char name[96]; /* out: the file name, "" when not written */
	int error;     /* out: 0 or -errno */
};
/* Write a batch durably: temp files, one flush, renames, one folder fsync.
 * Items that fail get error set and no name. Returns 0 or the first -errno. */
int spool_write(struct spool *s, struct spool_item *items, size_t n);
int spool_remove(struct spool *s, const char *name);
/* Move to dead/ (fsync'd). */
int spool_bury(struct spool *s, const char *name);

/* Owner only: claim the orphaned files (rename to this process's tag), sorted
 * in event order. *names is an array of malloc'd strings; free with
 * spool_names_free. */
int spool_adopt(struct spool *s, char ***names, size_t *n);
void spool_names_free(char **names, size_t n);
/* Read a notification back: *out (free with record_free) whose rec.host is
 * *host (free after the record). */
int spool_load(struct spool *s, const char *name, struct stored_record **out, char **host,
	       char *err, size_t errlen);

/* Encode / decode a spool file's content (exposed for tests). */
int spool_encode(struct buf *b, const struct vigil_record *rec);

/* For vigil status: pending and dead-lettered files of every notifier folder
 * under root. cb is called once per folder. 0 or -errno (root missing: 0). */
typedef void (*spool_count_cb)(void *data, const char *name, size_t pending, size_t dead);
int spool_count_all(const char *root, spool_count_cb cb, void *data);

/* ----------------------------------------------------- delivery settings */
/* A notifier's core keys ([notifier NAME] `on`, `max_age`, `parallel`). */
struct notify_opts {
	uint32_t on;         /* NOTIFY_ON_* bits; 0 = every event */
	int64_t max_age_ms;  /* dead-lettered after this; default 24h */
	unsigned parallel;   /* deliveries in flight at once; default 8 */
	const char *spool_root; /* NULL: in memory only */
	char spool_name[SPOOL_NAME_MAX];
};
#define NOTIFY_MAX_AGE_DEFAULT_MS (24LL * 3600 * 1000)
#define NOTIFY_PARALLEL_DEFAULT 8u
#define NOTIFY_PARALLEL_MAX 64u

/* Parse `on = finished, failed, ...` into bits. 0 or -EINVAL with the bad
 * word in err. */
int notify_parse_on(const char *text, uint32_t *bits, char *err, size_t errlen);
/* Does a notifier with these bits want this event? */
bool notify_on_wants(uint32_t bits, const struct vigil_event *ev);

/* Apply the settings: open the spool (when the plugin is spooled and a root
 * is given) and queue what it holds. 0 or -errno with a message. */
int notifier_configure(struct notifier *n, const struct notify_opts *o, char *err,
		       size_t errlen);
/* Totals for one notifier: in its queue, and dead-lettered by this process. */
size_t notifier_dead(const struct notifier *n);

#endif
