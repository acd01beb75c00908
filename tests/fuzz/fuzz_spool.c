/* libFuzzer target: the spool reader on corrupted segments (core/engine/spool.h),
 * through the public API only. The input is an orphaned segment left by a dead
 * writer, and its .ack file:
 *   byte 0: k = byte & 63, the number of acknowledged record numbers;
 *   then 4 * k bytes: the .ack file (u32 little-endian record numbers);
 *   the rest: the segment file ("VIGILSG1", then u32 length, u32 CRC, payload).
 * A fresh spool folder in a temporary folder adopts and replays it; half of
 * the replayed records are delivered (spool_done, spool_flush); the spool is
 * closed and opened again. Properties, beyond no crash / leak / sanitizer
 * report: each replayed record is valid JSON (VIGIL_FUZZ_STRICT); the second adoption replays
 * exactly the records the first replayed and did not deliver: none lost,
 * none delivered twice. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/event_json.h"
#include "base/record.h"
#include "engine/spool.h"
#include "fuzz_util.h"

#define SEG_NAME "0190f3a5c2e87d3b9a4c5e6f708192a3-00000001.00000000deadbeef"
#define MAX_SEEN 4096

struct replayed {
	size_t n;
	struct spool_seg *seg[MAX_SEEN];
	uint32_t index[MAX_SEEN];
};

static void on_record(void *data, struct spool_seg *seg, uint32_t index,
		      struct stored_record *rec, char *host)
{
	struct replayed *r = data;

	/* Found here and fixed (tests/fuzz/crashes/spool/replay_invalid_utf8): the
	 * decoder refuses invalid UTF-8, so a replayed line is always valid JSON. */
	if (event_json_validate(rec->rec.json, rec->rec.json_len))
		abort(); /* replayed a record that is not valid JSON */
	if (r->n < MAX_SEEN) {
		r->seg[r->n] = seg;
		r->index[r->n] = index;
	}
	r->n++;
	record_free(rec);
	free(host);
}

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t len)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	fuzz_write_all(fd, p, len);
	close(fd);
}

/* Open the spool, adopt, deliver the even-numbered replays (when `deliver`).
 * Returns how many records were replayed. */
static size_t adopt_once(const char *root, bool deliver, size_t *delivered)
{
	struct replayed *r = calloc(1, sizeof(*r));
	struct spool *s;
	char err[256];
	size_t bad = 0, n;

	if (!r || spool_open(root, "n", &s, err, sizeof(err)) != 0)
		abort();
	if (!spool_is_owner(s) || spool_adopt(s, on_record, r, &bad) != 0)
		abort();
	for (size_t i = 0; deliver && i < r->n && i < MAX_SEEN; i += 2) {
		spool_done(s, r->seg[i], r->index[i]);
		(*delivered)++;
	}
	spool_flush(s);
	spool_close(s);
	n = r->n;
	free(r);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char root[256], dir[300];
	size_t k = size ? (size_t)(data[0] & 63) : 0, delivered = 0, first, second;

	if (size < 1 + 4 * k)
		return 0;
	fuzz_mkdtemp(root, sizeof(root), "spool");
	snprintf(dir, sizeof(dir), "%s/n", root);
	if (mkdir(dir, 0700) != 0)
		abort();
	write_file(dir, SEG_NAME, data + 1 + 4 * k, size - 1 - 4 * k);
	if (k)
		write_file(dir, ".ack-" SEG_NAME, data + 1, 4 * k);
	first = adopt_once(root, true, &delivered);
	second = adopt_once(root, false, &delivered);
	if (first <= MAX_SEEN && second != first - delivered)
		abort(); /* a record lost, or delivered and replayed again */
	fuzz_rm_rf(root);
	return 0;
}
