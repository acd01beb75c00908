/* See history.h. */
#include "history.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "event_json.h"
#include "event_json_decode.h"
#include "log.h"
#include "safe_file.h"
#include "state.h"

/* A line longer than this is not one of ours: skipped as corrupt. */
#define HISTORY_LINE_MAX 65536

static const char *const outcome_names[HISTORY_N_OUTCOMES] = {
	"succeeded", "failed", "timed_out", "unknown"};

int history_outcome_index(const char *outcome)
{
	for (int i = 0; i < HISTORY_N_OUTCOMES; i++)
		if (strcmp(outcome, outcome_names[i]) == 0)
			return i;
	return -1;
}

const char *history_outcome_name(int index)
{
	return index >= 0 && index < HISTORY_N_OUTCOMES ? outcome_names[index] : "unknown";
}

const char *history_dir(const char *state_dir, char *buf, size_t len)
{
	const char *env = getenv("VIGIL_HISTORY_DIR"), *st_env = getenv("VIGIL_STATE_DIR");
	char builtin[PATH_MAX];

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return buf;
	}
	state_default_dir(builtin, sizeof(builtin));
	/* A chosen state folder keeps its history with it (tests, isolated
	 * setups); the built-in one is volatile (/run), history is not. */
	if (state_dir && ((st_env && *st_env) || strcmp(state_dir, builtin) != 0))
		snprintf(buf, len, "%s/history", state_dir);
	else
		state_home_dir("history", buf, len);
	return buf;
}

size_t history_keep(void)
{
	const char *env = getenv("VIGIL_HISTORY_KEEP");
	char *end;
	unsigned long v;

	if (!env || !*env)
		return HISTORY_KEEP_DEFAULT;
	v = strtoul(env, &end, 10);
	return *end || v == 0 ? HISTORY_KEEP_DEFAULT : (size_t)v;
}

/* Monitor names are validated by the config; still, never a path. */
static int history_path(const char *dir, const char *name, char *buf, size_t len)
{
	if (!*name || strchr(name, '/') || name[0] == '.')
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s/%s.jsonl", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* ------------------------------------------------------------ encoding */

static void put_time(struct buf *b, const char *key, int64_t ms)
{
	char t[40];

	if (ms > 0 && event_time_rfc3339(ms, t, sizeof(t)) == 0)
		buf_printf(b, ",\"%s\":\"%s\"", key, t);
	else
		buf_printf(b, ",\"%s\":null", key);
}

int history_entry_json(struct buf *b, const char *name, const struct history_entry *e)
{
	buf_puts(b, "{\"monitor\":");
	json_put_string(b, name, strlen(name));
	buf_printf(b, ",\"run\":%llu", (unsigned long long)e->run);
	put_time(b, "start", e->start_ms);
	put_time(b, "end", e->end_ms);
	buf_printf(b, ",\"duration\":%.3f,\"outcome\":", e->duration);
	json_put_string(b, e->outcome, strlen(e->outcome));
	buf_printf(b, e->exit_code >= 0 ? ",\"exit_code\":%d" : ",\"exit_code\":null", e->exit_code);
	buf_puts(b, ",\"signal\":");
	if (e->signal[0])
		json_put_string(b, e->signal, strlen(e->signal));
	else
		buf_puts(b, "null");
	buf_printf(b, e->attempts > 0 ? ",\"attempts\":%d" : ",\"attempts\":null", e->attempts);
	buf_printf(b, e->peak_rss_bytes >= 0 ? ",\"peak_rss_bytes\":%lld" : ",\"peak_rss_bytes\":null",
		   (long long)e->peak_rss_bytes);
	buf_puts(b, ",\"reason\":");
	json_put_string(b, e->reason, strlen(e->reason));
	return buf_puts(b, "}\n");
}

/* ------------------------------------------------------------ decoding */

static bool get_str(json_object *o, const char *key, char *out, size_t len, bool null_ok)
{
	json_object *v;

	out[0] = '\0';
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return null_ok;
	if (!json_object_is_type(v, json_type_string))
		return false;
	snprintf(out, len, "%s", json_object_get_string(v));
	return true;
}

static bool get_int(json_object *o, const char *key, int64_t *out, int64_t if_null)
{
	json_object *v;

	*out = if_null;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return true;
	if (!json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

static bool get_time(json_object *o, const char *key, int64_t *ms)
{
	char t[64];

	*ms = 0;
	if (!get_str(o, key, t, sizeof(t), true))
		return false;
	return !t[0] || event_time_parse(t, ms) == 0;
}

/* A run line into e; false when a field is missing or of the wrong type. */
static bool entry_decode(json_object *o, struct history_entry *e)
{
	json_object *v;
	int64_t run, code, att;

	memset(e, 0, sizeof(*e));
	if (!json_object_object_get_ex(o, "duration", &v) ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return false;
	e->duration = json_object_get_double(v);
	if (!get_int(o, "run", &run, -1) || run < 0 || !get_time(o, "start", &e->start_ms) ||
	    !get_time(o, "end", &e->end_ms) ||
	    !get_str(o, "outcome", e->outcome, sizeof(e->outcome), false) ||
	    history_outcome_index(e->outcome) < 0 || !get_int(o, "exit_code", &code, -1) ||
	    !get_str(o, "signal", e->signal, sizeof(e->signal), true) ||
	    !get_int(o, "attempts", &att, 0) || !get_int(o, "peak_rss_bytes", &e->peak_rss_bytes, -1) ||
	    !get_str(o, "reason", e->reason, sizeof(e->reason), true))
		return false;
	e->run = (uint64_t)run;
	e->exit_code = code < 0 || code > 255 ? -1 : (int)code;
	e->attempts = att < 0 || att > INT_MAX ? 0 : (int)att;
	return true;
}

/* {"compacted":{...}}: the counts of runs dropped by earlier compactions. */
static bool compacted_decode(json_object *o, uint64_t total[HISTORY_N_OUTCOMES])
{
	json_object *c;
	int64_t k;

	if (!json_object_object_get_ex(o, "compacted", &c) || !json_object_is_type(c, json_type_object))
		return false;
	for (int i = 0; i < HISTORY_N_OUTCOMES; i++)
		if (get_int(c, outcome_names[i], &k, 0) && k > 0)
			total[i] += (uint64_t)k;
	return true;
}

enum line_kind { LINE_CORRUPT, LINE_RUN, LINE_COMPACTED };

static enum line_kind line_parse(const char *s, size_t len, struct history_entry *e,
				 uint64_t total[HISTORY_N_OUTCOMES])
{
	json_tokener *tok;
	json_object *o;
	enum line_kind kind = LINE_CORRUPT;

	if (len == 0 || len > HISTORY_LINE_MAX || !(tok = json_tokener_new()))
		return LINE_CORRUPT;
	o = json_tokener_parse_ex(tok, s, (int)len);
	/* Trailing garbage after the object is corruption too. */
	if (o && json_object_is_type(o, json_type_object) &&
	    (size_t)json_tokener_get_parse_end(tok) == len) {
		if (compacted_decode(o, total))
			kind = LINE_COMPACTED;
		else if (entry_decode(o, e))
			kind = LINE_RUN;
	}
	json_object_put(o);
	json_tokener_free(tok);
	return kind;
}

/* ------------------------------------------------------------ reading */

typedef void (*line_cb)(void *data, enum line_kind kind, const struct history_entry *e,
			const uint64_t compacted[HISTORY_N_OUTCOMES], const char *s, size_t len);

/* The whole file; our own folder, still never through a link. */
static int file_slurp(const char *path, struct buf *b)
{
	char chunk[65536];
	ssize_t got;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK), rc = 0;

	if (fd < 0)
		return -errno;
	while ((got = read(fd, chunk, sizeof(chunk))) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 || buf_append(b, chunk, (size_t)got) != 0) {
			rc = got < 0 ? -errno : -ENOMEM;
			break;
		}
	}
	close(fd);
	return rc;
}

/* Each line (a torn last line too) parsed and handed to cb. */
static void scan_lines(const struct buf *b, line_cb cb, void *data)
{
	size_t pos = 0;

	while (pos < b->len) {
		const char *s = b->p + pos, *nl = memchr(s, '\n', b->len - pos);
		size_t len = nl ? (size_t)(nl - s) : b->len - pos;
		uint64_t compacted[HISTORY_N_OUTCOMES] = {0};
		struct history_entry e;

		pos += len + (nl ? 1 : 0);
		if (len == 0)
			continue;
		cb(data, line_parse(s, len, &e, compacted), &e, compacted, s, len);
	}
}

static void read_line(void *data, enum line_kind kind, const struct history_entry *e,
		      const uint64_t compacted[HISTORY_N_OUTCOMES], const char *s, size_t len)
{
	struct history *h = data;
	struct history_entry *grown;

	(void)s;
	(void)len;
	if (kind == LINE_CORRUPT) {
		h->corrupt++;
		return;
	}
	for (int i = 0; i < HISTORY_N_OUTCOMES; i++)
		h->total[i] += compacted[i];
	if (kind != LINE_RUN)
		return;
	grown = realloc(h->v, (h->n + 1) * sizeof(*grown));
	if (!grown) {
		h->corrupt++; /* out of memory: counted as not read, not fatal */
		return;
	}
	h->v = grown;
	h->v[h->n++] = *e;
	h->total[history_outcome_index(e->outcome)]++;
}

int history_read(const char *dir, const char *name, struct history *h)
{
	char path[PATH_MAX];
	struct buf b;
	int rc = history_path(dir, name, path, sizeof(path));

	memset(h, 0, sizeof(*h));
	if (rc < 0)
		return rc;
	buf_init(&b);
	rc = file_slurp(path, &b);
	if (rc == 0)
		scan_lines(&b, read_line, h);
	buf_free(&b);
	return rc == -ENOENT ? 0 : rc;
}

void history_free(struct history *h)
{
	free(h->v);
	memset(h, 0, sizeof(*h));
}

static int by_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double history_success_quantile(const struct history *h, double p)
{
	double *d = malloc((h->n ? h->n : 1) * sizeof(*d)), q;
	size_t k = 0, rank;

	if (!d)
		return -1;
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->v[i].outcome, "succeeded") == 0)
			d[k++] = h->v[i].duration;
	if (k == 0) {
		free(d);
		return -1;
	}
	qsort(d, k, sizeof(*d), by_double);
	/* Nearest rank: the smallest value with at least p of the runs at or below. */
	rank = (size_t)(p * (double)k + 0.999999);
	q = d[rank == 0 ? 0 : rank > k ? k - 1 : rank - 1];
	free(d);
	return q;
}

/* The last HISTORY_LEARN_WINDOW successful runs, as a history of their own
 * (borrowing h's entries), so that the quantile follows recent runs. */
static struct history learn_window(const struct history *h, size_t *n_ok)
{
	struct history w = {0};
	size_t i = h->n;

	*n_ok = 0;
	while (i > 0 && *n_ok < HISTORY_LEARN_WINDOW)
		*n_ok += strcmp(h->v[--i].outcome, "succeeded") == 0;
	w.v = h->v + i;
	w.n = h->n - i;
	return w;
}

int64_t history_learned_expected_ms(const struct history *h, double margin, size_t *n_ok)
{
	struct history w = learn_window(h, n_ok);
	double p95;

	if (*n_ok < HISTORY_LEARN_MIN || (p95 = history_success_quantile(&w, 0.95)) < 0)
		return 0;
	if (margin <= 0)
		margin = HISTORY_MARGIN_DEFAULT;
	/* At least 1 ms: a learned limit is never "unset". */
	return (int64_t)(p95 * margin * 1000.0 + 0.5) + 1;
}

int64_t history_learned_min_ms(const struct history *h, double margin, size_t *n_ok)
{
	struct history w = learn_window(h, n_ok);
	double p5;

	if (*n_ok < HISTORY_LEARN_MIN || (p5 = history_success_quantile(&w, 0.05)) < 0)
		return 0;
	return (int64_t)(p5 / (margin > 0 ? margin : HISTORY_MARGIN_DEFAULT) * 1000.0);
}

int64_t history_learned_expected_for(const char *dir, const char *name, double margin,
				     size_t *n_ok)
{
	struct history h;
	int64_t ms = 0;

	*n_ok = 0;
	if (history_read(dir, name, &h) == 0)
		ms = history_learned_expected_ms(&h, margin, n_ok);
	history_free(&h);
	return ms;
}

/* ------------------------------------------------------------ writing */

struct compaction {
	size_t runs;  /* run lines in the file */
	size_t drop;  /* the oldest run lines left out */
	size_t seen;
	uint64_t total[HISTORY_N_OUTCOMES]; /* compacted so far plus dropped */
	struct buf kept;
};

static void count_line(void *data, enum line_kind kind, const struct history_entry *e,
		       const uint64_t compacted[HISTORY_N_OUTCOMES], const char *s, size_t len)
{
	(void)e;
	(void)compacted;
	(void)s;
	(void)len;
	if (kind == LINE_RUN)
		((struct compaction *)data)->runs++;
}

static void keep_line(void *data, enum line_kind kind, const struct history_entry *e,
		      const uint64_t compacted[HISTORY_N_OUTCOMES], const char *s, size_t len)
{
	struct compaction *c = data;

	for (int i = 0; i < HISTORY_N_OUTCOMES; i++)
		c->total[i] += compacted[i];
	if (kind != LINE_RUN)
		return; /* corrupt lines go; their count was reported on reading */
	if (c->seen++ < c->drop) {
		c->total[history_outcome_index(e->outcome)]++;
		return;
	}
	buf_append(&c->kept, s, len);
	buf_putc(&c->kept, '\n');
}

static int compaction_write(const char *path, struct compaction *c, char *err, size_t errlen)
{
	struct buf out;
	int rc;

	buf_init(&out);
	buf_puts(&out, "{\"compacted\":{");
	for (int i = 0; i < HISTORY_N_OUTCOMES; i++)
		buf_printf(&out, "%s\"%s\":%llu", i ? "," : "", outcome_names[i],
			   (unsigned long long)c->total[i]);
	buf_puts(&out, "}}\n");
	rc = buf_append(&out, c->kept.p, c->kept.len);
	if (rc == 0)
		rc = safe_file_replace(path, out.p, out.len, 0600, err, errlen);
	else
		snprintf(err, errlen, "%s: out of memory", path);
	buf_free(&out);
	return rc;
}

/* Past 1.25 x keep runs, rewrite with the last keep (the slack makes this one
 * rewrite per keep/4 runs, not one per run). */
static int compact_if_needed(const char *path, size_t keep, char *err, size_t errlen)
{
	struct compaction c = {0};
	struct buf b;
	int rc;

	buf_init(&b);
	buf_init(&c.kept);
	rc = file_slurp(path, &b);
	if (rc == 0)
		scan_lines(&b, count_line, &c);
	if (rc == 0 && c.runs > keep + keep / 4) {
		c.drop = c.runs - keep;
		scan_lines(&b, keep_line, &c);
		rc = compaction_write(path, &c, err, errlen);
	} else if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	}
	buf_free(&b);
	buf_free(&c.kept);
	return rc;
}

static int write_line(int fd, const struct buf *line)
{
	ssize_t w;

	/* One write of the whole line: O_APPEND keeps it in one piece. */
	do
		w = write(fd, line->p, line->len);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	return (size_t)w == line->len ? 0 : -EIO;
}

int history_append(const char *dir, const char *name, const struct history_entry *e, size_t keep,
		   char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct buf line;
	struct stat st;
	int fd, rc = history_path(dir, name, path, sizeof(path));

	if (rc < 0)
		return snprintf(err, errlen, "%s: not a history file name", name), rc;
	if ((rc = state_ensure_dir(dir)) != 0)
		return snprintf(err, errlen, "%s: %s", dir, strerror(-rc)), rc;
	if ((fd = safe_file_append(path, 0600, err, errlen)) < 0)
		return fd;
	buf_init(&line);
	rc = history_entry_json(&line, name, e) == 0 ? write_line(fd, &line) : -ENOMEM;
	if (rc < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	/* Lines are well over 64 bytes: a smaller file cannot need compaction. */
	if (rc == 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size > (uint64_t)keep * 64)
		rc = compact_if_needed(path, keep, err, errlen);
	close(fd);
	buf_free(&line);
	return rc;
}

/* ------------------------------------------------------------ the engine's hook */

static int64_t field_int(const struct vigil_event *ev, const char *name, int64_t if_absent)
{
	const struct vigil_field *f = event_field(ev, name);

	return f && f->type == VIGIL_FIELD_INT ? f->u.i : if_absent;
}

/* Field strings are (ptr, len): copy with the length, not up to a NUL. */
static void copy_field(const struct vigil_event *ev, const char *name, char *out, size_t len)
{
	const struct vigil_field *f = event_field(ev, name);
	size_t n = f && f->type == VIGIL_FIELD_STRING ? f->u.s.len : 0;

	if (n >= len)
		n = len - 1;
	memcpy(out, n ? f->u.s.ptr : "", n);
	out[n] = '\0';
}

static void entry_from_record(const struct vigil_record *rec, struct history_entry *e)
{
	const struct vigil_event *ev = rec->event;
	const struct vigil_field *d = event_field(ev, "duration");

	memset(e, 0, sizeof(*e));
	e->run = rec->run;
	e->duration = d && d->type == VIGIL_FIELD_DOUBLE ? d->u.d
		      : d && d->type == VIGIL_FIELD_INT ? (double)d->u.i : 0;
	e->end_ms = rec->time_ms;
	e->start_ms = rec->time_ms - (int64_t)(e->duration * 1000.0 + 0.5);
	copy_field(ev, "outcome", e->outcome, sizeof(e->outcome));
	if (history_outcome_index(e->outcome) < 0)
		snprintf(e->outcome, sizeof(e->outcome), "unknown");
	e->exit_code = (int)field_int(ev, "exit_code", -1);
	copy_field(ev, "signal", e->signal, sizeof(e->signal));
	e->attempts = (int)field_int(ev, "attempts", 0);
	e->peak_rss_bytes = field_int(ev, "peak_rss_bytes", -1);
	copy_field(ev, "reason", e->reason, sizeof(e->reason));
}

void history_note_record(const char *state_dir, const struct vigil_record *rec)
{
	struct history_entry e;
	char dir[PATH_MAX], err[PATH_MAX + 200];

	if (!state_dir || !rec->event || strcmp(rec->event->kind, VIGIL_EV_FINISHED) != 0)
		return;
	entry_from_record(rec, &e);
	history_dir(state_dir, dir, sizeof(dir));
	if (history_append(dir, rec->monitor, &e, history_keep(), err, sizeof(err)) != 0)
		log_msg(LOG_LVL_WARN, rec->monitor, "cannot append to the run history: %s", err);
}
