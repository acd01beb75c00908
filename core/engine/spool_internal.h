/* What the two halves of the spool share: spool.c (the folder: claims and
 * ownership, segments in memory, acknowledgements, dead letters, adoption,
 * status) and spool_segment.c (the bytes of a segment file: framing, CRC,
 * reading back after damage). The engine's API is spool.h. */
#ifndef VIGIL_SPOOL_INTERNAL_H
#define VIGIL_SPOOL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "spool.h"

#define SPOOL_FILE_MAX (256u << 20) /* a segment or .ack file, read whole */

/* An intact record: its number, the segment's count, its payload. */
struct spool_frame {
	uint32_t index, count, len, crc;
	size_t at; /* where its header starts */
	const char *p;
};

/* What a segment holds: its intact records, how many the writer put in it,
 * and the damaged byte ranges between them. */
struct spool_scan {
	struct spool_frame *frames; /* intact, in file order, no number twice */
	size_t n_frames, cap;
	uint32_t count;       /* records written; 0 when no intact one tells */
	size_t broken;        /* frames whose header checked out, payload not */
	struct spool_span {
		size_t at, len;
	} *spans;             /* damaged bytes */
	size_t n_spans, cap_spans, bad_bytes;
};

/* The bytes of a segment for a batch, appended to b: each item gets its
 * error (0, or -E2BIG for a record too large, left out) and its index.
 * *count: the records written. 0, -ENOMEM, or -E2BIG when none was. */
int spool_seg_encode(struct buf *b, struct spool_item *items, size_t n, uint32_t *count);
/* Read a segment's content d[0, size) back, whichever version wrote it.
 * 0 or -ENOMEM; free sc with spool_scan_free either way. */
int spool_seg_scan(struct spool_scan *sc, const char *d, size_t size);
void spool_scan_free(struct spool_scan *sc);
/* Records the segment was written with (for vigil status). */
uint32_t spool_seg_count(const char *data, size_t size);

#endif
