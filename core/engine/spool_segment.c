/* The bytes of a spool segment (the format is described in spool.h): a
 * record's payload, its frame and CRC, a batch framed as one segment, and
 * reading a segment back, resynchronising on the frame headers after damage
 * and counting the damaged bytes. The files themselves, the acknowledgements
 * and who owns what are spool.c's. */
#include "spool_internal.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/event_json_decode.h"

#define SEG_MAGIC_V1 "VIGILSG1" /* still read: records without frame headers */
#define SEG_MAGIC "VIGILSG2"
#define SEG_MAGIC_LEN 8
/* A record's frame header (spool.h): magic, then u32 index, count, payload
 * length, payload CRC, and the CRC of those 20 bytes. 0xff and 0xfe never
 * occur in a payload (UTF-8 JSON, type letters), so a reader that lost its
 * place finds the next frame by scanning for the magic. */
#define FRAME_MAGIC "\xff\xfeVr"
#define FRAME_HDR 24
#define SEG_REC_MAX (4u << 20)   /* one record's payload */

/* -------------------------------------------------------------- records */

int spool_encode(struct buf *b, const struct vigil_record *rec)
{
	if (buf_append(b, rec->json, rec->json_len) || buf_append(b, "\n", 1) ||
	    event_json_types(b, rec->event) || buf_append(b, "\n", 1))
		return -ENOMEM;
	return 0;
}

int spool_decode(const char *p, size_t len, struct stored_record **out, char **host,
		 char *err, size_t errlen)
{
	char *data, *nl;
	int r;

	*out = NULL;
	*host = NULL;
	if (len < 2 || p[len - 1] != '\n' || !(nl = memchr(p, '\n', len)) || nl == p + len - 1) {
		snprintf(err, errlen, "truncated record");
		return -EINVAL;
	}
	data = malloc(len);
	if (!data)
		return -ENOMEM;
	memcpy(data, p, len);
	data[len - 1] = '\0';
	r = event_json_decode(data, (size_t)(nl - p), data + (nl - p) + 1, out, host, err,
			      errlen);
	free(data);
	return r;
}

/* CRC-32 (IEEE, reflected), a nibble at a time: small table, fast enough for
 * a few MB a second. */
static uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
	static const uint32_t tab[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
		0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};
	uint32_t c = 0xffffffffu;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		c = (c >> 4) ^ tab[c & 15];
		c = (c >> 4) ^ tab[c & 15];
	}
	return ~c;
}

/* --------------------------------------------------------------- frames */

static void frame_header(char *h, uint32_t index, uint32_t count, uint32_t len, uint32_t crc)
{
	uint32_t v[4] = {htole32(index), htole32(count), htole32(len), htole32(crc)}, hc;

	memcpy(h, FRAME_MAGIC, 4);
	memcpy(h + 4, v, sizeof(v));
	hc = htole32(crc32_ieee((const unsigned char *)h, 20));
	memcpy(h + 20, &hc, 4);
}

/* A frame with the segment's record count still 0 (see set_counts). */
static int put_record(struct buf *b, const struct vigil_record *rec, uint32_t index)
{
	size_t at = b->len;
	char hdr[FRAME_HDR] = {0};
	size_t len;

	if (buf_append(b, hdr, sizeof(hdr)) || spool_encode(b, rec)) {
		b->len = at;
		return -ENOMEM;
	}
	len = b->len - at - sizeof(hdr);
	if (len > SEG_REC_MAX) {
		b->len = at;
		return -E2BIG;
	}
	frame_header(b->p + at, index, 0, (uint32_t)len,
		     crc32_ieee((const unsigned char *)b->p + at + sizeof(hdr), len));
	return 0;
}

/* Every frame of a batch gets the batch's record count. */
static void set_counts(struct buf *b, uint32_t count)
{
	for (size_t off = SEG_MAGIC_LEN; off + FRAME_HDR <= b->len;) {
		uint32_t v[4];

		memcpy(v, b->p + off + 4, sizeof(v));
		frame_header(b->p + off, le32toh(v[0]), count, le32toh(v[2]), le32toh(v[3]));
		off += FRAME_HDR + le32toh(v[2]);
	}
}

/* The frames of a batch: a record too large gets -E2BIG and is left out. */
int spool_seg_encode(struct buf *b, struct spool_item *items, size_t n, uint32_t *count)
{
	uint32_t k = 0;
	int r = 0;

	if (buf_append(b, SEG_MAGIC, SEG_MAGIC_LEN))
		r = -ENOMEM;
	for (size_t i = 0; i < n && !r; i++) {
		items[i].seg = NULL;
		items[i].error = put_record(b, items[i].rec, k);
		if (items[i].error == -ENOMEM)
			r = -ENOMEM;
		if (items[i].error == 0)
			items[i].index = k++;
	}
	if (!r && k == 0)
		r = -E2BIG;
	set_counts(b, k);
	*count = k;
	return r;
}

/* --------------------------------------------------------- reading back */

static bool frame_header_ok(const char *h, struct spool_frame *f)
{
	uint32_t v[5];

	if (memcmp(h, FRAME_MAGIC, 4) != 0)
		return false;
	memcpy(v, h + 4, sizeof(v));
	if (le32toh(v[4]) != crc32_ieee((const unsigned char *)h, 20))
		return false;
	f->index = le32toh(v[0]);
	f->count = le32toh(v[1]);
	f->len = le32toh(v[2]);
	f->crc = le32toh(v[3]);
	return f->index < f->count && f->len <= SEG_REC_MAX;
}

/* The next intact frame at or after *off: 1, or 0 when there is none. Linear
 * in the bytes scanned: memchr jumps to the next possible magic, and a frame
 * whose header checks out but whose payload does not (a flipped byte) is
 * skipped whole, its header vouching for its length. *broken counts those
 * frames, and the ones cut short. */
static int frame_find(const char *d, size_t size, size_t *off, struct spool_frame *f,
		      size_t *broken)
{
	size_t pos = *off;

	while (size - pos >= FRAME_HDR) {
		const char *m = memchr(d + pos, FRAME_MAGIC[0], size - pos - FRAME_HDR + 1);

		if (!m)
			break;
		pos = (size_t)(m - d);
		if (!frame_header_ok(m, f)) {
			pos++;
			continue;
		}
		(*broken)++; /* taken back below when the payload is whole */
		if (f->len > size - pos - FRAME_HDR) {
			pos += FRAME_HDR; /* cut short: the rest is its payload */
			continue;
		}
		f->at = pos;
		f->p = m + FRAME_HDR;
		pos += FRAME_HDR + f->len;
		if (crc32_ieee((const unsigned char *)f->p, f->len) == f->crc) {
			(*broken)--;
			*off = pos;
			return 1;
		}
	}
	*off = size;
	return 0;
}

/* A v1 record at *off (no frame header: u32 length, u32 CRC): 1, 0 at the
 * end, -EINVAL when torn or corrupt (nothing after it is trusted). */
static int v1_next(const char *data, size_t size, size_t *off, const char **p, uint32_t *len)
{
	uint32_t hdr[2];

	if (*off == size)
		return 0;
	if (size - *off < sizeof(hdr))
		return -EINVAL;
	memcpy(hdr, data + *off, sizeof(hdr));
	*len = le32toh(hdr[0]);
	if (*len > SEG_REC_MAX || *len > size - *off - sizeof(hdr))
		return -EINVAL;
	*p = data + *off + sizeof(hdr);
	if (crc32_ieee((const unsigned char *)*p, *len) != le32toh(hdr[1]))
		return -EINVAL;
	*off += sizeof(hdr) + *len;
	return 1;
}

void spool_scan_free(struct spool_scan *sc)
{
	free(sc->frames);
	free(sc->spans);
}

static int scan_add_span(struct spool_scan *sc, size_t at, size_t end)
{
	if (end <= at)
		return 0;
	if (sc->n_spans == sc->cap_spans) {
		size_t cap = sc->cap_spans ? sc->cap_spans * 2 : 8;
		struct spool_span *v = realloc(sc->spans, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		sc->spans = v;
		sc->cap_spans = cap;
	}
	sc->spans[sc->n_spans++] = (struct spool_span){at, end - at};
	sc->bad_bytes += end - at;
	return 0;
}

/* A frame of another segment's count, or a number seen already, is not
 * trusted: its bytes count as damaged. */
static int scan_add_frame(struct spool_scan *sc, const struct spool_frame *f, uint8_t *seen)
{
	if (sc->count && f->count != sc->count)
		return scan_add_span(sc, f->at, f->at + FRAME_HDR + f->len);
	if (seen && (seen[f->index / 8] & (1u << (f->index % 8))))
		return scan_add_span(sc, f->at, f->at + FRAME_HDR + f->len);
	if (seen)
		seen[f->index / 8] |= (uint8_t)(1u << (f->index % 8));
	if (sc->n_frames == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 16;
		struct spool_frame *v = realloc(sc->frames, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		sc->frames = v;
		sc->cap = cap;
	}
	sc->frames[sc->n_frames++] = *f;
	sc->count = f->count;
	return 0;
}

/* v2: resynchronise on the frame headers; the count is in every frame. */
static int scan_v2(struct spool_scan *sc, const char *d, size_t size, size_t off)
{
	uint8_t *seen = NULL;
	struct spool_frame f;
	size_t prev = off;
	int r = 0;

	while (!r && frame_find(d, size, &off, &f, &sc->broken) == 1) {
		if (!seen && !(seen = calloc(f.count / 8 + 1, 1)))
			return -ENOMEM;
		r = scan_add_span(sc, prev, f.at);
		if (!r)
			r = scan_add_frame(sc, &f, seen);
		prev = off;
	}
	if (!r)
		r = scan_add_span(sc, prev, size);
	free(seen);
	return r;
}

/* v1 (no frame headers): records in order up to the first bad one; the rest
 * is one damaged record. A file without magic is one legacy record. */
static int scan_v1(struct spool_scan *sc, const char *d, size_t size, bool magic)
{
	struct spool_frame f = {0};
	size_t off = magic ? SEG_MAGIC_LEN : 0;
	int r = 0, got;

	if (!magic) {
		f.len = (uint32_t)size;
		f.p = d;
		f.count = 1;
		return size ? scan_add_frame(sc, &f, NULL) : 0;
	}
	while (!r && (got = v1_next(d, size, &off, &f.p, &f.len)) == 1) {
		f.index = (uint32_t)sc->n_frames;
		r = scan_add_frame(sc, &f, NULL);
	}
	sc->count = (uint32_t)sc->n_frames + (off < size);
	for (size_t i = 0; i < sc->n_frames; i++)
		sc->frames[i].count = sc->count;
	return r ? r : scan_add_span(sc, off, size);
}

int spool_seg_scan(struct spool_scan *sc, const char *d, size_t size)
{
	*sc = (struct spool_scan){0};
	if (size >= SEG_MAGIC_LEN && memcmp(d, SEG_MAGIC_V1, SEG_MAGIC_LEN) == 0)
		return scan_v1(sc, d, size, true);
	if (size && d[0] == '{')
		return scan_v1(sc, d, size, false);
	/* v2, also when its magic is damaged: the frames say what they are. */
	if (size >= SEG_MAGIC_LEN && memcmp(d, SEG_MAGIC, SEG_MAGIC_LEN) == 0)
		return scan_v2(sc, d, size, SEG_MAGIC_LEN);
	return scan_v2(sc, d, size, 0);
}

/* Records the segment was written with (for vigil status). */
uint32_t spool_seg_count(const char *data, size_t size)
{
	struct spool_scan sc;
	uint32_t n = spool_seg_scan(&sc, data, size) == 0 ? sc.count : 0;

	spool_scan_free(&sc);
	return n;
}
