/* What the agent's files share: the agent, its entries (one per conf.d file)
 * and the calls that cross files. agent.h is the API; this is not.
 *   agent.c          entries, vigil.ini, conf.d reload, sd_notify, lifecycle
 *   agent_ctl.c      the answers to control-socket requests
 *   agent_missed.c   missed runs (every = or schedule =, + grace)
 *   agent_after.c    after = / after_any =: a run that waits for other runs
 *   agent_metrics.c  metrics_textfile and metrics_listen
 *   agent_adopt.c    spools left by other processes
 *   agent_check.c    `vigil check` */
#ifndef VIGIL_AGENT_INTERNAL_H
#define VIGIL_AGENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/str_index.h"
#include "engine/engine.h"

struct entry {
	char *file;
	char *key; /* file text + defaults: equal keys mean an unchanged monitor */
	uid_t uid; /* owner of the file */
	struct raw_ini ini;
	struct monitor_config mc;
	struct monitor *m;
	bool keep; /* reload: unchanged */
	struct loop *loop;     /* set while a missed-run timer may run */
	int64_t missed_timer;  /* every = : when the next run is due (0: none) */
	time_t missed_slot;    /* schedule = : the scheduled time it waits for */
	struct entry_after *after; /* after = : the wait before the run (NULL: none, over) */
};

struct agent {
	struct loop *loop;
	struct plugin_set plugins;
	struct engine *engine;
	struct control *ctl;
	const char *config_file;
	const char *conf_dir_arg;
	const char *state_dir_arg, *plugin_dir_arg; /* from the command line */
	char *conf_dir;
	char *state_dir;
	char *spool_dir;
	char *plugin_dir;
	char *defaults_key;     /* [defaults] as text */
	struct raw_section defaults;
	struct agent_config ac; /* the last vigil.ini that loaded */
	bool explicit_config;
	char **notifier_keys;   /* [notifier NAME] as defined, for "changed" */
	size_t n_notifier_keys;
	struct entry **v;
	size_t n;
	struct str_index by_name; /* v by monitor name */
	int stop_signal;
	int64_t metrics_timer;     /* a textfile write is due */
	bool metrics_warned;       /* the textfile failed: said once until it works */
	struct metrics_http *http; /* metrics_listen, NULL: off */
	/* Spools of other processes (vigil run, watch) under our folders. */
	int64_t adopt_timer;
	struct spool **handed;     /* adopted folders, closed at the next scan */
	size_t n_handed;
	char **adopt_warned;       /* "root/name" said once: no notifier for it */
	size_t n_adopt_warned;
};

/* agent.c: entries. A control `check` and `vigil check` build entries as a
 * reload does, so a file passes or fails the same way everywhere. */
void agent_entry_free(struct entry *en);
bool agent_nul_refused(const char *file, const char *text, size_t len, struct diag *d);
char *agent_read_text(const char *path, uid_t *uid, struct diag *d);
struct entry *agent_entry_build(struct agent *a, struct engine *e, const char *file,
				const char *text, uid_t uid, struct diag *d);
/* The running monitor of that name, or NULL (an index: thousands of them). */
struct entry *agent_entry_named(struct agent *a, const char *name);
/* Start the entry's monitor (its run begins), as at load. */
void agent_entry_run(struct agent *a, struct entry *en);
long long agent_process_uid(struct entry *en);

/* agent.c: vigil.ini and conf.d, also read by `vigil check`. */
int agent_load_ini(struct agent *a, struct agent_config *ac, bool explicit_file,
		   struct diag *d);
void agent_paths(struct agent *a, const struct agent_config *ac);
void agent_set_defaults(struct agent *a, const struct agent_config *ac);
size_t agent_apply_notifiers(struct agent *a, const struct agent_config *ac, struct diag *d);
char **agent_list_conf(const char *dir, size_t *n, struct diag *d);
void agent_reload(struct agent *a, bool first, struct buf *out);
void agent_close(struct agent *a);

/* agent_ctl.c: what agent_open hands control_open. */
struct control_handlers;
extern const struct control_handlers agent_ctl_handlers;

/* agent_missed.c: last_start_ms < 0 reads the last start from the record. */
void agent_missed_arm(struct agent *a, struct entry *en, int64_t last_start_ms);
void agent_missed_cancel(struct entry *en);

/* agent_after.c: a `command =` with after = / after_any = does not start at
 * load: begin (a `waiting` event) when it would start, follow once the whole
 * new set has started (a predecessor loaded after it has its run by then);
 * the command starts (agent_entry_run) or the run ends failed when they end. */
bool agent_after_wanted(const struct entry *en);
void agent_after_begin(struct agent *a, struct entry *en);
void agent_after_follow(struct entry *en);
/* vigil stop while waiting: the run ends failed, never started. false: not waiting. */
bool agent_after_stop(struct entry *en);
/* Forget the wait (reload, stop, free): no fd or timer stays. */
void agent_after_cancel(struct entry *en);

/* agent_metrics.c */
void agent_metrics_write(struct agent *a);
void agent_metrics_changed(struct agent *a);
int agent_metrics_listen(struct agent *a);
void agent_metrics_close(struct agent *a);

/* agent_adopt.c */
void agent_adopt_start(struct agent *a);
void agent_adopt_stop(struct agent *a);

#endif
