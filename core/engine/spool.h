/* The durable spool: one folder per notifier, append-only segments.
 *
 *   SPOOL/NAME/<first event id>-<seq>.<tag>   a segment: the notifications
 *                                             written in one group commit
 *   SPOOL/NAME/.ack-<segment name>            ids (record numbers) of the
 *                                             segment's delivered records
 *   SPOOL/NAME/dead/<event id>-<seq>.<tag>    one file per dead letter
 *   SPOOL/NAME/.lock                          flock: the folder's owner
 *   SPOOL/NAME/.claim-<tag>                   flock held by live process <tag>
 *
 * A segment is "VIGILSG2" then records, each a frame: a 24-byte header (the
 * magic ff fe 'V' 'r', then little-endian u32s: the record's number in the
 * segment, the segment's record count, the payload length, the payload's
 * CRC-32, and the CRC-32 of those first 20 header bytes), then the payload =
 * the record's v1 JSON line and a line with the type of each event field
 * (JSON cannot tell 50 from 50.0).
 * It is written once, fdatasync'd, and the folder fsync'd, before any of its
 * records is attempted: one create and one flush per batch, not per event.
 *
 * Damage (a flipped byte, a bad length or magic, a torn or cut tail) costs
 * only the damaged records: the reader skips a frame whose payload fails its
 * CRC (its checked header vouches for its length) and otherwise scans forward
 * to the next magic whose header checks out (bytes 0xff/0xfe never occur in
 * a payload, so the scan is linear). Every frame carries its number and the
 * count, so the records lost are known exactly (and acknowledgements keep
 * pointing at the right records); their bytes go to dead/ as
 * <segment's first event id>-<offset>.bad.<tag>. "VIGILSG1" segments (no
 * frame header: u32 length, u32 CRC) are still read, up to their first bad
 * record.
 *
 * Deliveries are cheap: a record done (delivered or dead-lettered) is marked
 * in memory and its number appended to the .ack file at the next
 * spool_flush (the caller runs it lazily, on a timer and at close). When
 * every record of a segment is done, the segment and its .ack are unlinked;
 * nothing is written at all for a segment finished between two flushes. A
 * crash may therefore redeliver records delivered since the last flush
 * (at least once, same event id); it never loses one.
 *
 * Sharing a folder between processes (two `vigil watch`, watch + agent): every
 * process names its segments with its own random tag, holds the flock on
 * .claim-<tag> while it lives and delivers its own segments. The holder of
 * .lock (the first to open the folder, or whoever takes it when the owner is
 * gone) also adopts the segments whose tag is no longer locked (their writer
 * died or exited with work left), renaming them (and their .ack) to its own
 * tag, at open and on a periodic rescan, and replays their records not yet
 * acknowledged, in event order (names sort by their first event id, which
 * is time-ordered). */
#ifndef VIGIL_SPOOL_H
#define VIGIL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
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

/* A segment in memory (owned by the spool; valid until its last record is
 * done). */
struct spool_seg;

/* One notification to write. */
struct spool_item {
	const struct vigil_record *rec;
	struct spool_seg *seg; /* out: its segment, NULL when not written */
	uint32_t index;        /* out: its record number in the segment */
	int error;             /* out: 0 or -errno */
};
/* Write a batch durably as one segment: one file, one fdatasync, one folder
 * fsync. On failure every item gets error set and no segment. Returns 0 or
 * -errno. */
int spool_write(struct spool *s, struct spool_item *items, size_t n);
/* Record `index` of seg is delivered: marked now, written at the next
 * spool_flush; the segment is removed once all its records are done (seg
 * is invalid after the last one). */
void spool_done(struct spool *s, struct spool_seg *seg, uint32_t index);
/* Copy the record to dead/ (fsync'd), then mark it done. */
int spool_bury(struct spool *s, struct spool_seg *seg, uint32_t index,
	       const struct vigil_record *rec);
/* Append the acknowledgements marked since the last flush to their .ack
 * files and fdatasync them. Cheap when nothing is marked. */
int spool_flush(struct spool *s);
/* Are acknowledgements waiting for spool_flush? */
bool spool_dirty(const struct spool *s);
const char *spool_seg_name(const struct spool_seg *seg);

/* Owner only: claim the orphaned segments (rename to this process's tag)
 * and hand their records not yet done to cb, in event order. cb owns rec
 * and host (free host after the record). Records that cannot be read back
 * (damaged, torn tail, undecodable) are counted in *bad, exactly, and kept in
 * dead/ (the damaged bytes, spool_bad_bytes of them); every intact record of
 * a segment is handed out, before and after the damage. 0 or -errno. */
typedef void (*spool_replay_cb)(void *data, struct spool_seg *seg, uint32_t index,
				struct stored_record *rec, char *host);
int spool_adopt(struct spool *s, spool_replay_cb cb, void *data, size_t *bad);
/* Damaged bytes the last spool_adopt moved to dead/. */
size_t spool_bad_bytes(const struct spool *s);

/* Encode a record's payload (exposed for tests). */
int spool_encode(struct buf *b, const struct vigil_record *rec);
/* Decode a payload of len bytes (not NUL-terminated). */
int spool_decode(const char *p, size_t len, struct stored_record **out, char **host,
		 char *err, size_t errlen);

/* For vigil status: pending records and dead letters of every notifier folder
 * under root. cb is called once per folder. 0 or -errno (root missing: 0). */
typedef void (*spool_count_cb)(void *data, const char *name, size_t pending, size_t dead);
int spool_count_all(const char *root, spool_count_cb cb, void *data);

/* ----------------------------------------------------- delivery settings */
/* A notifier's core keys ([notifier NAME] `on`, `max_age`, `parallel`). */
struct notify_opts {
	uint32_t on;         /* NOTIFY_ON_* bits; 0 = every event */
	int64_t max_age_ms;  /* dead-lettered after this; default 24h */
	unsigned parallel;   /* deliveries in flight at once; default 1 (in order) */
	const char *spool_root; /* NULL: in memory only */
	char spool_name[SPOOL_NAME_MAX];
};
#define NOTIFY_MAX_AGE_DEFAULT_MS (24LL * 3600 * 1000)
#define NOTIFY_PARALLEL_DEFAULT 1u
#define NOTIFY_PARALLEL_MAX 64u

/* Parse `on = finished, failed, ...` into bits. 0 or -EINVAL with the bad
 * word in err. */
/* The bit of an event kind in an `on =` filter (1u << 31 when unknown). */
uint32_t notify_kind_bit(const char *kind);
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
