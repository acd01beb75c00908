/* INI configuration: parse (inih) -> validate -> commit.
 *
 * A monitor file holds one [monitor] section and any number of detector
 * sections named after their plugin ("[log]", "[log app]"). vigil.ini holds
 * [agent], [defaults] and [notifier NAME] sections. inih callbacks only fill
 * these structs; validation against plugin option tables happens afterwards;
 * nothing here has side effects beyond memory. */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cron.h"
#include "diag.h"
#include "vigil/plugin.h"

struct raw_kv {
	char *key;
	char *value;
	unsigned line;
};

/* One INI section as written. */
struct raw_section {
	char *name;     /* "log app" */
	char *plugin;   /* "log" */
	char *instance; /* "app", or NULL */
	unsigned line;
	struct raw_kv *kv;
	size_t n_kv;
};

struct raw_ini {
	char *file;
	struct raw_section *sections;
	size_t n_sections;
};

/* Parse an INI file (or, with text != NULL, a string standing for `file`).
 * Syntax errors become diagnostics with their line. 0, or -errno when the file
 * cannot be read (also reported in d). */
int config_read_ini(const char *file, struct raw_ini *out, struct diag *d);
int config_read_ini_string(const char *file, const char *text, struct raw_ini *out,
			   struct diag *d);
void raw_ini_free(struct raw_ini *ini);

/* Section helpers for building configs from command-line flags. */
struct raw_section *raw_ini_section(struct raw_ini *ini, const char *name); /* get or add */
void raw_section_set(struct raw_section *s, const char *key, const char *value,
		     unsigned line); /* appends */

/* Parse one value as `type`; fills number/percent/text of out (text is not
 * copied). 0 or -EINVAL with the reason in err. */
int config_parse_value(enum vigil_option_type type, const char *text, struct vigil_value *out,
		       char *err, size_t errlen);

/* Durations and sizes, shared with the CLI: "1h30m" -> ms, "5G" -> bytes. */
int config_parse_duration_ms(const char *text, int64_t *ms);
int config_parse_size(const char *text, int64_t *bytes, double *percent);
int config_parse_bool(const char *text, int *b);
/* Format ms as "1h30m", "45s", "250ms" into buf. */
const char *config_format_duration(int64_t ms, char *buf, size_t len);

/* Validate one section against an option table: unknown keys, bad values,
 * repeated non-repeatable keys, missing required keys. Defaults are filled in.
 * On success the values (keys and texts copied) go to *out (free with
 * config_values_free). Returns 0, or -EINVAL after adding diagnostics. */
int config_check_options(const char *file, const struct raw_section *s,
			 const struct vigil_option *opts, struct vigil_value **out,
			 size_t *n_out, struct diag *d);
void config_values_free(struct vigil_value *v, size_t n);

enum on_timeout { ON_TIMEOUT_NOTIFY = 0, ON_TIMEOUT_TERM, ON_TIMEOUT_KILL };
/* What a started job's leftover processes mean when its main process exits. */
enum descendants { DESCENDANTS_WAIT = 0, DESCENDANTS_KILL, DESCENDANTS_LEAVE };

/* The [monitor] section, validated. Durations in ms; 0 means unset. */
struct monitor_config {
	char *file;         /* source file, or "<command line>" */
	char *name;         /* default: file name without .ini */
	pid_t pid;          /* 0 unless pid = N */
	char *pid_file;
	char *match;
	char *command;      /* a shell command line (sh -c), or NULL */
	char *const *command_argv; /* vigil run: the argv to exec instead (borrowed) */
	char *log;          /* output log of `command` */
	char *user;         /* `command` runs as this user (name or uid), or NULL */
	char *group;        /* ... and this group (default: the user's), or NULL */
	char *working_directory; /* its current folder, or NULL: the agent's */
	char **environment; /* NAME=VALUE entries added to its environment */
	size_t n_environment;
	int64_t expected_ms;
	bool expected_auto;       /* expected = auto: learned from the history */
	double expected_margin;   /* times the p95 of successful runs; 0: 1.5 */
	int64_t min_duration_ms;  /* a successful-looking run shorter is too_fast */
	bool min_duration_auto;   /* min_duration = auto: learned from the history */
	int64_t every_ms, grace_ms; /* agent: a run should start every every_ms (0: off) */
	char *schedule;           /* agent: ... or at these times (a cron expression) */
	struct cron schedule_cron; /* schedule, parsed */
	char **after;             /* command: start once these jobs' runs succeeded */
	size_t n_after;
	char **after_any;         /* ... once these jobs' runs ended, however */
	size_t n_after_any;
	int64_t timeout_ms;
	enum on_timeout on_timeout;
	int64_t kill_grace_ms;    /* default 10s */
	enum descendants descendants; /* default wait */
	char *success;            /* expression, or NULL for the default rule */
	char **notify;            /* specs, in order */
	size_t n_notify;
	int retry;                /* extra attempts for `command` */
	int64_t retry_delay_ms;   /* default 10s, doubled each attempt */
	char *retry_command;      /* replaces `command` for attempts after the first */
	char *before_retry;       /* hooks (sh -c), the event as JSON on stdin */
	char *on_failure;
	int64_t hook_timeout_ms;  /* a hook running longer is killed; default 60s */
	int64_t deliver_timeout_ms; /* default 30s */
	int64_t match_window_ms;  /* a burst of matches: at most one event per window; 0: off */
	unsigned line;            /* line of [monitor] */
	/* the detector sections (everything but [monitor]), in file order */
	struct raw_section *detectors;
	size_t n_detectors;
};

/* The keys [monitor] accepts, for `vigil plugins`/docs and validation. */
extern const struct vigil_option config_monitor_options[];

/* Validate a parsed monitor file: [monitor] keys, exactly one target (pid,
 * pid_file, match or command; `allow_no_target` for `vigil run`, which supplies
 * the command itself), the success expression's syntax, notify specs syntax.
 * Detector sections are only copied here; the plugin loader checks them against
 * each plugin's options. 0 or -EINVAL with diagnostics. */
int config_load_monitor(const struct raw_ini *ini, int allow_no_target,
			struct monitor_config *out, struct diag *d);
void monitor_config_free(struct monitor_config *m);

/* vigil.ini */
struct agent_config {
	char *file;
	char *conf_dir;
	char *plugin_dir;
	char *state_dir;
	char *spool_dir;
	char *plugin_path;             /* DIR[:DIR...] searched after plugin_dir */
	char *metrics_textfile;        /* written when the metrics change; NULL: off */
	char *metrics_listen;          /* ADDR:PORT for GET /metrics; NULL: off */
	struct raw_section defaults;   /* [defaults], merged into every monitor */
	struct raw_section *notifiers; /* [notifier NAME] sections; key `type` = plugin */
	size_t n_notifiers;
};
int config_load_agent(const struct raw_ini *ini, struct agent_config *out, struct diag *d);
void agent_config_free(struct agent_config *a);

#endif
