/*
 * vigil plugin ABI. The guide (a tutorial, the events the core acts on, the
 * lifecycle, plugin folders, the sandbox): vigil-plugin(7).
 *
 * A plugin is one shared object exporting one symbol, `vigil_plugin_descriptor`,
 * made with VIGIL_PLUGIN(). The core checks `abi_version` (exact match) and `size`
 * (fields are only ever appended; the core reads a later field only when `size`
 * covers it) before it touches anything else.
 *
 * Plugins never link against core symbols: everything they need from the core
 * comes through `struct vigil_host`, a table of functions the core passes to
 * create(). Each instance gets its own `struct vigil_ctx *` handle; it is the
 * first argument of every host call.
 *
 * Ownership: the core owns instances and calls destroy() exactly once, never after
 * a failed create(). Anything passed into a callback is borrowed for the duration
 * of the call; a plugin copies what it keeps.
 *
 * Errors: 0 or a negative errno; human text goes into the caller's `err` buffer.
 * Plugins never exit and never block: every wait is an fd watch or a timer.
 */
#ifndef VIGIL_PLUGIN_H
#define VIGIL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIGIL_PLUGIN_ABI_VERSION 1u
#define VIGIL_HOST_VERSION 1u

enum vigil_plugin_kind {
	VIGIL_PLUGIN_DETECTOR = 1,
	VIGIL_PLUGIN_NOTIFIER = 2,
};

/* ------------------------------------------------------------------ options */

/* How the core validates a value before the plugin sees it. */
enum vigil_option_type {
	VIGIL_OPT_STRING = 1, /* any text */
	VIGIL_OPT_BOOL,       /* yes/no, true/false, on/off, 1/0 -> number 1 or 0 */
	VIGIL_OPT_INT,        /* decimal integer -> number */
	VIGIL_OPT_DURATION,   /* 30s, 15m, 2h, 1h30m, 250ms, bare seconds -> number in ms */
	VIGIL_OPT_SIZE,       /* 5G, 512M, 4096, or 10% -> number in bytes, or percent */
	VIGIL_OPT_REGEX,      /* a PCRE2 pattern that must compile -> text */
	VIGIL_OPT_PATH,       /* an absolute or relative path, no NUL, not empty -> text */
	VIGIL_OPT_URL,        /* scheme://... -> text; may carry credentials (a secret) */
};

enum vigil_option_flags {
	VIGIL_OPTF_REQUIRED = 1u << 0,   /* the section is an error without it */
	VIGIL_OPTF_REPEATABLE = 1u << 1, /* may appear several times; all values kept */
	VIGIL_OPTF_SECRET = 1u << 2,     /* never logged; the file must not be readable
					    by group or others */
};

/* One accepted key. A plugin's option table ends with an entry whose key is NULL. */
struct vigil_option {
	const char *key;
	enum vigil_option_type type;
	unsigned flags;            /* enum vigil_option_flags */
	const char *default_value; /* as it would be written in the INI file, or NULL */
	const char *help;          /* one line, shown by `vigil plugins` */
};

/* One validated value. The core fills in defaults, so a key with a default_value
 * is always present. */
struct vigil_value {
	const char *key;
	const char *text;   /* trimmed, as written */
	int64_t number;     /* BOOL 0/1, INT, DURATION in ms, SIZE in bytes (-1 if percent) */
	double percent;     /* SIZE written as N%: N; otherwise -1 */
	unsigned line;      /* line in `file`, 0 for defaults and flags */
};

/* The validated configuration of one plugin instance, borrowed for create(). */
struct vigil_config {
	const char *file;    /* the INI file, or "<command line>" */
	const char *section; /* e.g. "log app" */
	const char *monitor; /* the monitor's name */
	const struct vigil_value *values;
	size_t n_values;
};

/* The last value of `key`, or NULL when absent. */
static inline const struct vigil_value *
vigil_config_get(const struct vigil_config *cfg, const char *key)
{
	for (size_t i = cfg->n_values; i-- > 0;) {
		const char *a = cfg->values[i].key, *b = key;
		while (*a && *a == *b)
			a++, b++;
		if (*a == *b)
			return &cfg->values[i];
	}
	return NULL;
}

/* ------------------------------------------------------------------- events */

enum vigil_field_type {
	VIGIL_FIELD_NULL = 0,
	VIGIL_FIELD_INT,
	VIGIL_FIELD_DOUBLE,
	VIGIL_FIELD_BOOL,
	VIGIL_FIELD_STRING,  /* bytes, any content: the encoder escapes invalid UTF-8 */
	VIGIL_FIELD_STRINGS, /* an array of byte strings */
};

struct vigil_bytes {
	const char *ptr;
	size_t len;
};

/* A typed event field, e.g. {"exit_code", VIGIL_FIELD_INT, .i = 3}. */
struct vigil_field {
	const char *name;
	enum vigil_field_type type;
	union {
		int64_t i;
		double d;
		int b;
		struct vigil_bytes s;
		struct {
			const struct vigil_bytes *v;
			size_t n;
		} list;
	} u;
};

/* Event kinds of schema v1: which ones the core acts on, see vigil-plugin(7). */
#define VIGIL_EV_ATTACHED "attached"
#define VIGIL_EV_EXITED "exited"
#define VIGIL_EV_FILE "file"
#define VIGIL_EV_MATCH "match"
#define VIGIL_EV_PROGRESS "progress"
#define VIGIL_EV_STALLED "stalled"
#define VIGIL_EV_OVERDUE "overdue"
#define VIGIL_EV_TIMEOUT "timeout"
#define VIGIL_EV_PRESSURE "pressure"
#define VIGIL_EV_RECOVERED "recovered"
#define VIGIL_EV_FINISHED "finished"
/* Emitted by the core only (a notifier sees them; a detector never sends them). */
#define VIGIL_EV_WAITING "waiting"
#define VIGIL_EV_RETRYING "retrying"
#define VIGIL_EV_STOPPED "stopped"
#define VIGIL_EV_CONTINUED "continued"
#define VIGIL_EV_MISSED "missed"

/* What a detector reports. The core adds v, id, time, host, monitor, run and
 * detector; `pid` is taken from the fields when present, else from the target. */
struct vigil_event {
	const char *kind;    /* one of VIGIL_EV_* */
	const char *message; /* one human sentence, may be NULL */
	const struct vigil_field *fields;
	size_t n_fields;
};

/* A complete event as the core recorded it, handed to notifiers and to
 * detectors' on_event(). All pointers are borrowed for the call. */
struct vigil_record {
	const char *id;       /* unique, stable across retries */
	const char *monitor;
	uint64_t run;
	const char *detector; /* instance that emitted it, "core" for the core's own */
	int64_t time_ms;      /* wall clock, ms since the epoch */
	const char *host;
	pid_t pid;            /* 0 when none */
	const struct vigil_event *event;
	const char *json;     /* the schema v1 JSON object, one line, no newline */
	size_t json_len;
};

/* ------------------------------------------------------------------- target */

/* What the core knows of the watched process. */
struct vigil_target {
	pid_t pid;               /* 0 while waiting for the process */
	uint64_t start_time;     /* /proc/PID/stat field 22, clock ticks since boot */
	int is_child;            /* started by this process: waitid gives its status */
	const char *log_path;    /* where its output goes, when vigil started it */
};

/* --------------------------------------------------------------------- host */

struct vigil_ctx; /* opaque, one per plugin instance */

enum vigil_log_level { VIGIL_LOG_ERR = 3, VIGIL_LOG_WARN = 4, VIGIL_LOG_INFO = 6, VIGIL_LOG_DEBUG = 7 };

/* Watch callbacks: `revents` are EPOLL* bits. */
typedef void (*vigil_fd_cb)(void *data, int fd, uint32_t revents);
/* Timer callbacks return the next delay in ms, or VIGIL_TIMER_DONE. */
#define VIGIL_TIMER_DONE (-1)
typedef int64_t (*vigil_timer_cb)(void *data);

enum vigil_delivery {
	VIGIL_DELIVERED = 0,
	VIGIL_RETRY = 1,     /* temporary: try again later (receiver down, 5xx, 429...) */
	VIGIL_PERMANENT = 2, /* will never succeed: dead-letter it */
};

/* What a detector says its configuration makes the outcome depend on. */
enum vigil_criterion {
	VIGIL_CRIT_FILE = 1,    /* an expected file must be present */
	VIGIL_CRIT_SUCCESS = 2, /* a success pattern must be seen */
	VIGIL_CRIT_FAILURE = 3, /* a failure pattern must not be seen */
};

struct vigil_host {
	uint32_t version; /* VIGIL_HOST_VERSION */
	uint32_t size;    /* sizeof(struct vigil_host) as the core knows it */

	/* printf-style log line, prefixed by the core with monitor and instance. */
	void (*log)(struct vigil_ctx *ctx, enum vigil_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
		__attribute__((format(printf, 3, 4)))
#endif
		;

	/* Watch an fd (EPOLLIN, EPOLLOUT, EPOLLPRI). Re-adding an fd changes its mask.
	 * Returns 0 or -errno. unwatch_fd before closing the fd. */
	int (*watch_fd)(struct vigil_ctx *ctx, int fd, uint32_t events, vigil_fd_cb cb, void *data);
	void (*unwatch_fd)(struct vigil_ctx *ctx, int fd);

	/* One-shot or repeating timer on the monotonic clock; returns an id > 0 or
	 * -errno. cancel_timer on an id that already finished is harmless. */
	int64_t (*add_timer)(struct vigil_ctx *ctx, int64_t delay_ms, vigil_timer_cb cb, void *data);
	void (*cancel_timer)(struct vigil_ctx *ctx, int64_t id);

	/* Monotonic milliseconds, the loop's notion of now. */
	int64_t (*now_ms)(struct vigil_ctx *ctx);

	/* Detectors: report an event; the core copies what it keeps. */
	void (*emit)(struct vigil_ctx *ctx, const struct vigil_event *ev);

	/* Detectors: declare a criterion of the default success rule (from create()). */
	void (*expect)(struct vigil_ctx *ctx, enum vigil_criterion c);

	/* Detectors: the target the monitor watches (never NULL; pid 0 when none). */
	const struct vigil_target *(*target)(struct vigil_ctx *ctx);

	/* The pid detector: the process was found / it ended. The core fills the
	 * target, starts the run and emits `attached` / `exited` itself.
	 * exit_code or signal < 0 means unknown. */
	void (*attached)(struct vigil_ctx *ctx, pid_t pid, uint64_t start_time,
			 const char *cmdline);
	void (*exited)(struct vigil_ctx *ctx, int exit_code, int signal, int core_dumped);

	/* The pid detector: the target cannot be found and never will (gone at
	 * attach time, bad pid): the monitor ends with outcome unknown. */
	void (*lost)(struct vigil_ctx *ctx, const char *why);

	/* Detectors: settle() returned VIGIL_SETTLING; now it is settled. */
	void (*settled)(struct vigil_ctx *ctx);

	/* Notifiers: the delivery of `token` ended. `detail` is logged (no secrets);
	 * retry_after_ms >= 0 is the receiver's wish (Retry-After), -1 for none. */
	void (*delivered)(struct vigil_ctx *ctx, uint64_t token, enum vigil_delivery result,
			  const char *detail, int64_t retry_after_ms);

	/* The host name put in every event. */
	const char *(*hostname)(struct vigil_ctx *ctx);

	/* Detectors following the job's log: its last lines, for finished.log_tail.
	 * Call it from settle() (and whenever cheap); the core copies them. */
	void (*log_tail)(struct vigil_ctx *ctx, const struct vigil_bytes *lines, size_t n);

	/* The plugin's shared state (see shared_create), or NULL. */
	void *(*shared)(struct vigil_ctx *ctx);

	/* The pid detector, just before exited(): what the kernel tells of the
	 * ended process, as `finished` fields (peak_rss_bytes, cpu_seconds,
	 * oom_killed); one left out or VIGIL_FIELD_NULL is unknown. Copied. */
	void (*exit_facts)(struct vigil_ctx *ctx, const struct vigil_field *fields, size_t n);

	/* Detectors: a small opaque blob kept with the monitor's run record
	 * (a log detector's position), read back by the next process that runs
	 * this monitor with the same state folder. save_state: 0 or -errno (none
	 * kept without a state folder). load_state: the blob's length (at most
	 * len bytes copied), or -errno (-ENOENT: nothing saved). */
	int (*save_state)(struct vigil_ctx *ctx, const void *blob, size_t len);
	ssize_t (*load_state)(struct vigil_ctx *ctx, void *buf, size_t len);
};

/* ---------------------------------------------------------------- descriptor */

enum vigil_settle {
	VIGIL_SETTLED = 0,  /* nothing pending: the outcome may be decided */
	VIGIL_SETTLING = 1, /* wait: host->settled() follows (bounded by the core) */
};

struct vigil_plugin {
	uint32_t abi_version; /* VIGIL_PLUGIN_ABI_VERSION */
	uint32_t size;        /* sizeof(struct vigil_plugin) */
	enum vigil_plugin_kind kind;
	const char *name;     /* equals the .so basename */
	const char *summary;  /* one line for `vigil plugins` */
	const struct vigil_option *options; /* NULL-key terminated */

	/* Parse and validate `cfg`, allocate the instance. No side effects beyond
	 * memory: `vigil check` calls create() then destroy(). */
	int (*create)(const struct vigil_host *host, struct vigil_ctx *ctx,
		      const struct vigil_config *cfg, void **instance, char *err, size_t errlen);

	/* Acquire fds, watches and timers. NULL: nothing to start. */
	int (*start)(void *instance, char *err, size_t errlen);

	/* Detectors: every recorded event of the monitor, including the core's own
	 * (attached, exited, timeout, finished...). NULL: not interested. */
	void (*on_event)(void *instance, const struct vigil_record *rec);

	/* Detectors: the target ended; finish reading what is pending. NULL means
	 * VIGIL_SETTLED. */
	enum vigil_settle (*settle)(void *instance);

	/* Notifiers: begin delivering `rec`; completion is reported through
	 * host->delivered(ctx, token, ...), possibly before notify() returns.
	 * Returns 0 when started, -errno when it could not even start (then
	 * delivered() must not be called). */
	int (*notify)(void *instance, uint64_t token, const struct vigil_record *rec);

	/* Release everything; called exactly once after a successful create(). */
	void (*destroy)(void *instance);

	/* VIGIL_PLUGIN_F_* bits. */
	uint32_t flags;

	/* Optional state shared by every instance of this plugin in one process,
	 * such as one kernel subscription instead of one per instance. The core
	 * calls shared_create() once, before the first create(), with a ctx of its
	 * own (fd watches and timers work; emit and the target do not), and
	 * shared_destroy() after the last instance is destroyed. Instances reach
	 * it through host->shared(ctx). NULL: nothing shared. */
	int (*shared_create)(const struct vigil_host *host, struct vigil_ctx *ctx, void **shared,
			     char *err, size_t errlen);
	void (*shared_destroy)(void *shared);
};

/* Notifiers: deliveries go through the core's durable spool (fsync'd before the
 * first attempt, replayed after a restart). Without it (stdout) they are not
 * written to disk, so a full disk never keeps them from the terminal. */
#define VIGIL_PLUGIN_F_SPOOLED (1u << 0)

#if defined(__GNUC__)
#define VIGIL_EXPORT __attribute__((visibility("default")))
#else
#define VIGIL_EXPORT
#endif

/* The one exported symbol. */
#define VIGIL_PLUGIN_SYMBOL "vigil_plugin_descriptor"
#define VIGIL_PLUGIN(...)                                                           \
	VIGIL_EXPORT extern const struct vigil_plugin vigil_plugin_descriptor;      \
	const struct vigil_plugin vigil_plugin_descriptor = {                       \
		.abi_version = VIGIL_PLUGIN_ABI_VERSION,                             \
		.size = sizeof(struct vigil_plugin),                                 \
		__VA_ARGS__}

#ifdef __cplusplus
}
#endif
#endif
