/* The validate step: raw sections checked against option tables, then turned
 * into a struct monitor_config ([monitor] of a monitor file) or a struct
 * agent_config (vigil.ini: [agent], [defaults], [notifier NAME]). Every
 * problem becomes a diagnostic "FILE:LINE: [section] key: reason"; nothing
 * here touches anything but memory (and stat() for secrets' file modes). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "config_internal.h"
#include "success_expr.h"

#define COMMAND_LINE_FILE "<command line>"

/* ------------------------------------------------------- option validation */

static const struct vigil_option *option_find(const struct vigil_option *opts, const char *key)
{
	for (; opts->key; opts++)
		if (strcmp(opts->key, key) == 0)
			return opts;
	return NULL;
}

static void diag_unknown_key(struct diag *d, const char *file, const struct raw_section *s,
			     const struct raw_kv *kv, const struct vigil_option *opts)
{
	struct buf known = BUF_INIT;

	for (const struct vigil_option *o = opts; o->key; o++)
		if ((o != opts && buf_puts(&known, ", ") < 0) || buf_puts(&known, o->key) < 0)
			break;
	diag_add(d, file, kv->line, s->name, kv->key, "unknown key (known: %s)",
		 opts->key ? buf_cstr(&known) : "none");
	buf_free(&known);
}

void config_values_free(struct vigil_value *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)v[i].key);
		free((char *)v[i].text);
	}
	free(v);
}

struct value_list {
	struct vigil_value *v;
	size_t n;
	int nomem;
};

static void value_list_add(struct value_list *l, const struct vigil_value *val)
{
	struct vigil_value *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v) {
		l->nomem = 1;
		return;
	}
	l->v = v;
	v[l->n] = *val;
	v[l->n].key = strdup(val->key);
	v[l->n].text = strdup(val->text);
	if (!v[l->n].key || !v[l->n].text) {
		free((char *)v[l->n].key);
		free((char *)v[l->n].text);
		l->nomem = 1;
		return;
	}
	l->n++;
}

static struct vigil_value *value_list_find(struct value_list *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i].key, key) == 0)
			return &l->v[i];
	return NULL;
}

/* May a file holding a secret be read by others? Others never; its group only
 * when that is group vigil (the agent's: the package ships vigil.ini 0640
 * root:vigil) and the group cannot write it. */
static bool secret_file_exposed(const char *file)
{
	struct stat st;
	struct group *g;

	if (stat(file, &st) != 0 || !(st.st_mode & (S_IRGRP | S_IROTH | S_IWGRP | S_IWOTH)))
		return false;
	if (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP))
		return true;
	g = getgrnam("vigil");
	return !g || g->gr_gid != st.st_gid;
}

#define SECRET_FILE_HINT "(chmod 600 %s, or 640 with group vigil)"

/* A secret must not sit in a file others can read (plugin.h, VIGIL_OPTF_SECRET). */
static void check_secret_file(const char *file, const struct raw_section *s,
			      const struct raw_kv *kv, struct diag *d)
{
	if (kv->line && secret_file_exposed(file))
		diag_add(d, file, kv->line, s->name, kv->key,
			 "holds a secret but the file is readable by group or others "
			 SECRET_FILE_HINT, file);
}

/* One key = value of the section, checked and added to l. */
static void check_one(const char *file, const struct raw_section *s, const struct raw_kv *kv,
		      const struct vigil_option *opts, struct value_list *l, struct diag *d)
{
	const struct vigil_option *o = option_find(opts, kv->key);
	struct vigil_value val = { .key = kv->key, .line = kv->line }, *prev;
	char err[512];

	if (!o) {
		diag_unknown_key(d, file, s, kv, opts);
		return;
	}
	if (config_parse_value(o->type, kv->value, &val, err, sizeof(err)) < 0) {
		if (o->flags & VIGIL_OPTF_SECRET)
			diag_add(d, file, kv->line, s->name, kv->key,
				 "invalid value (not shown: it is secret)");
		else
			diag_add(d, file, kv->line, s->name, kv->key, "%s", err);
		return;
	}
	if (o->flags & VIGIL_OPTF_SECRET)
		check_secret_file(file, s, kv, d);
	prev = (o->flags & VIGIL_OPTF_REPEATABLE) ? NULL : value_list_find(l, kv->key);
	if (!prev) {
		value_list_add(l, &val);
	} else if (prev->line == 0) {
		/* a command-line flag wins over the file whatever the order */
	} else if (kv->line == 0) {
		char *text = strdup(kv->value);

		if (!text) {
			l->nomem = 1;
			return;
		}
		free((char *)prev->text);
		*prev = (struct vigil_value){ .key = prev->key, .text = text, .number = val.number,
					      .percent = val.percent, .line = 0 };
	} else {
		diag_add(d, file, kv->line, s->name, kv->key, "given twice (first at line %u)",
			 prev->line);
	}
}

/* Required keys that are missing, and defaults for the others. */
static void check_absent(const char *file, const struct raw_section *s,
			 const struct vigil_option *opts, struct value_list *l, struct diag *d)
{
	char err[512];

	for (const struct vigil_option *o = opts; o->key; o++) {
		struct vigil_value val = { .key = o->key };

		if (value_list_find(l, o->key))
			continue;
		if (o->flags & VIGIL_OPTF_REQUIRED)
			diag_add(d, file, s->line, s->name, o->key, "missing (required)");
		else if (!o->default_value)
			continue;
		else if (config_parse_value(o->type, o->default_value, &val, err, sizeof(err)) < 0)
			diag_add(d, file, s->line, s->name, o->key, "bad built-in default: %s",
				 err);
		else
			value_list_add(l, &val);
	}
}

int config_check_options(const char *file, const struct raw_section *s,
			 const struct vigil_option *opts, struct vigil_value **out,
			 size_t *n_out, struct diag *d)
{
	struct value_list l = { 0 };
	size_t errors = d->errors;

	*out = NULL;
	*n_out = 0;
	for (size_t i = 0; i < s->n_kv; i++)
		check_one(file, s, &s->kv[i], opts, &l, d);
	check_absent(file, s, opts, &l, d);
	if (l.nomem)
		diag_add(d, file, s->line, s->name, NULL, "out of memory");
	if (d->errors > errors) {
		config_values_free(l.v, l.n);
		return -EINVAL;
	}
	*out = l.v;
	*n_out = l.n;
	return 0;
}

/* ------------------------------------------------------------------ monitor */

const struct vigil_option config_monitor_options[] = {
	{ "name", VIGIL_OPT_STRING, 0, NULL, "monitor name (default: the file name without .ini)" },
	{ "pid", VIGIL_OPT_INT, 0, NULL, "target: this process id" },
	{ "pid_file", VIGIL_OPT_PATH, 0, NULL, "target: the pid in this file (waited for)" },
	{ "match", VIGIL_OPT_REGEX, 0, NULL, "target: the process whose command line matches" },
	{ "command", VIGIL_OPT_STRING, 0, NULL, "target: a command vigil starts (sh -c)" },
	{ "log", VIGIL_OPT_PATH, 0, NULL, "where the output of `command` goes" },
	{ "user", VIGIL_OPT_STRING, 0, NULL, "`command` runs as this user (name or uid)" },
	{ "group", VIGIL_OPT_STRING, 0, NULL,
	  "`command` runs with this group (default: the user's primary group)" },
	{ "working_directory", VIGIL_OPT_PATH, 0, NULL, "the folder `command` starts in" },
	{ "environment", VIGIL_OPT_STRING, VIGIL_OPTF_REPEATABLE, NULL,
	  "NAME=VALUE added to the environment of `command`; repeatable" },
	{ "expected", VIGIL_OPT_STRING, 0, NULL,
	  "expected run time (DUR, or auto: learned from the history): warn when overrun" },
	{ "expected_margin", VIGIL_OPT_STRING, 0, "1.5",
	  "expected = auto: the p95 of the last successful runs times this" },
	{ "min_duration", VIGIL_OPT_STRING, 0, NULL,
	  "a run shorter than this (DUR, or auto: the p5 of the last successful runs divided "
	  "by expected_margin) is reported too_fast" },
	{ "every", VIGIL_OPT_DURATION, 0, NULL,
	  "agent, pid_file/match: a run starts this often (else a missed event)" },
	{ "grace", VIGIL_OPT_DURATION, 0, "0s",
	  "slack after `every` or a `schedule` time before a run counts as missed" },
	{ "schedule", VIGIL_OPT_STRING, 0, NULL,
	  "agent, pid_file/match: a run starts at these times (cron: MIN HOUR DOM MON DOW, "
	  "SEC first for six fields, or @daily...), else a missed event" },
	{ "after", VIGIL_OPT_STRING, VIGIL_OPTF_REPEATABLE, NULL,
	  "`command` starts once these jobs' current runs succeeded (a failed one fails "
	  "this run); comma-separated" },
	{ "after_any", VIGIL_OPT_STRING, VIGIL_OPTF_REPEATABLE, NULL,
	  "`command` starts once these jobs' current runs ended, whatever the outcome" },
	{ "timeout", VIGIL_OPT_DURATION, 0, NULL, "a run longer than this has timed out" },
	{ "on_timeout", VIGIL_OPT_STRING, 0, "notify", "notify | term | kill" },
	{ "kill_grace", VIGIL_OPT_DURATION, 0, "10s", "SIGTERM to SIGKILL delay for term" },
	{ "descendants", VIGIL_OPT_STRING, 0, "wait",
	  "processes a command leaves behind: wait (the run lasts until they exit), kill, leave" },
	{ "success", VIGIL_OPT_STRING, 0, NULL,
	  "expression over exit, file, success, failure (and, or, not)" },
	{ "notify", VIGIL_OPT_STRING, VIGIL_OPTF_REPEATABLE, NULL,
	  "stdout, json, webhook:URL, email:ADDRESS or a notifier name; comma-separated" },
	{ "retry", VIGIL_OPT_INT, 0, "0", "extra attempts when `command` fails" },
	{ "retry_delay", VIGIL_OPT_DURATION, 0, "10s", "delay before a retry, doubled each time" },
	{ "retry_command", VIGIL_OPT_STRING, 0, NULL,
	  "replaces `command` for the attempts after the first (a resume)" },
	{ "before_retry", VIGIL_OPT_STRING, 0, NULL,
	  "command run before each retry, the retrying event as JSON on stdin" },
	{ "on_failure", VIGIL_OPT_STRING, 0, NULL,
	  "command run when the run failed, before its finished event (JSON on stdin)" },
	{ "hook_timeout", VIGIL_OPT_DURATION, 0, "60s",
	  "before_retry and on_failure are killed after this long" },
	{ "deliver_timeout", VIGIL_OPT_DURATION, 0, "30s", "time limit of one delivery attempt" },
	{ "match_window", VIGIL_OPT_DURATION, 0, "10s",
	  "after the first 3 matches of a burst, at most one match event (with repeats) per window; 0s: every match" },
	{ NULL, 0, 0, NULL, NULL },
};

static const char *const target_keys[] = { "pid", "pid_file", "match", "command" };
#define N_TARGET_KEYS (sizeof(target_keys) / sizeof(target_keys[0]))

/* [a-z0-9_-]+: a named notifier. */
static int notifier_name_ok(const char *s, size_t len)
{
	if (!len)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

static int email_address_ok(const char *s)
{
	const char *at = strchr(s, '@');

	if (!at || at == s || !at[1] || strchr(at + 1, '@'))
		return 0;
	for (; *s; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s) ||
		    strchr("<>,;\"", *s))
			return 0;
	return 1;
}

/* A webhook URL holds a secret when it carries userinfo (user:password@ or a
 * bare token@) or a query (?token=...): that is where receivers put them. */
static int url_has_secret(const char *url)
{
	const char *auth = strstr(url, "://");
	size_t n;

	auth = auth ? auth + 3 : url;
	n = strcspn(auth, "/?#");
	return memchr(auth, '@', n) || strchr(auth, '?');
}

/* What a diagnostic may quote of a notify value: never a webhook URL that
 * could hold a secret (an e-mail address after it hides the value too). */
static const char *notify_shown(const char *text)
{
	const char *w = strstr(text, "webhook:");

	return w && strpbrk(w, "@?#") ? "<not shown: it may hold a secret>" : text;
}

/* `notify = webhook:URL` with a secret, in a file group or others can read:
 * refused like a [notifier] secret (check_secret_file). */
static int notify_secret_exposed(const struct monitor_config *m, const struct vigil_value *v,
				 const char *spec, struct diag *d)
{
	if (!v->line || strncmp(spec, "webhook:", 8) || !url_has_secret(spec + 8) ||
	    !secret_file_exposed(m->file))
		return 0;
	diag_add(d, m->file, v->line, "monitor", "notify",
		 "holds a secret (credentials or a query in a webhook URL) but the file is "
		 "readable by group or others " SECRET_FILE_HINT, m->file);
	return 1;
}

static int notify_spec_check(const char *spec, char *err, size_t errlen)
{
	if (!strcmp(spec, "stdout") || !strcmp(spec, "json"))
		return 0;
	if (!strncmp(spec, "webhook:", 8) && config_url_check(spec + 8) < 0)
		return config_fail(err, errlen, -EINVAL, "\"%s\": not a URL after webhook:",
				   notify_shown(spec));
	if (!strncmp(spec, "email:", 6) && !email_address_ok(spec + 6))
		return config_fail(err, errlen, -EINVAL, "\"%s\": not an address after email:",
				   spec);
	if (!strncmp(spec, "webhook:", 8) || !strncmp(spec, "email:", 6))
		return 0;
	if (notifier_name_ok(spec, strlen(spec)))
		return 0;
	return config_fail(err, errlen, -EINVAL,
			   "\"%s\" is not a notify spec (use stdout, json, webhook:URL, "
			   "email:ADDRESS or a notifier name)",
			   spec);
}

/* A copy of s[0..len) without surrounding whitespace. */
static char *strndup_trim(const char *s, size_t len)
{
	while (len && isspace((unsigned char)*s))
		s++, len--;
	while (len && isspace((unsigned char)s[len - 1]))
		len--;
	return strndup(s, len);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int strv_push(char ***v, size_t *n, char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	nv[(*n)++] = s;
	*v = nv;
	return 0;
}

/* Split one `notify` value into specs appended to m->notify. */
static void monitor_add_notify(struct monitor_config *m, const struct vigil_value *v,
			       struct diag *d)
{
	char err[512];

	for (const char *p = v->text, *end;; p = end + 1) {
		char *spec;

		end = strchrnul(p, ',');
		spec = strndup_trim(p, (size_t)(end - p));
		if (!spec)
			diag_add(d, m->file, v->line, "monitor", "notify", "out of memory");
		else if (!*spec)
			diag_add(d, m->file, v->line, "monitor", "notify",
				 "empty notify spec in \"%s\"", notify_shown(v->text));
		else if (notify_spec_check(spec, err, sizeof(err)) < 0)
			diag_add(d, m->file, v->line, "monitor", "notify", "%s", err);
		else if (notify_secret_exposed(m, v, spec, d))
			;
		else if (strv_push(&m->notify, &m->n_notify, spec) < 0)
			diag_add(d, m->file, v->line, "monitor", "notify", "out of memory");
		else
			spec = NULL;
		free(spec);
		if (!*end)
			return;
	}
}

/* One `environment` entry (checked by environment_entry_check), in file order. */
static void monitor_add_environment(struct monitor_config *m, const struct vigil_value *v,
				    struct diag *d)
{
	char *entry = strdup(v->text);

	if (!entry || strv_push(&m->environment, &m->n_environment, entry) < 0) {
		free(entry);
		diag_add(d, m->file, v->line, "monitor", "environment", "out of memory");
	}
}

/* Names end up in file names of the state folder: keep them tame. */
static int monitor_name_check(const char *name, char *err, size_t errlen)
{
	const char *p = name;

	while (isalnum((unsigned char)*p) || (*p && strchr("._@-", *p)))
		p++;
	/* A leading '-' would read as an option to stop, logs and watch. */
	if (isalnum((unsigned char)*name) && !*p)
		return 0;
	return config_fail(err, errlen, -EINVAL,
			   "\"%s\" is not a valid name (use letters, digits, '.', '_', '-' "
			   "and '@'; starting with a letter or digit)",
			   name);
}

/* schedule = (checked by monitor_check_value): the text, for messages, and
 * the parsed times. */
static void monitor_set_schedule(struct monitor_config *m, const struct vigil_value *v,
				 struct diag *d)
{
	free(m->schedule);
	m->schedule = strdup(v->text);
	if (!m->schedule)
		diag_add(d, m->file, v->line, "monitor", v->key, "out of memory");
	cron_parse(&m->schedule_cron, v->text, NULL, 0);
}

/* Split one `after` / `after_any` value into job names appended to its list. */
static void monitor_add_after(struct monitor_config *m, const struct vigil_value *v,
			      struct diag *d)
{
	bool any = !strcmp(v->key, "after_any");
	char err[512];

	for (const char *p = v->text, *end;; p = end + 1) {
		char *name;

		end = strchrnul(p, ',');
		name = strndup_trim(p, (size_t)(end - p));
		if (!name)
			diag_add(d, m->file, v->line, "monitor", v->key, "out of memory");
		else if (monitor_name_check(name, err, sizeof(err)) < 0)
			diag_add(d, m->file, v->line, "monitor", v->key, "%s", err);
		else if (strv_push(any ? &m->after_any : &m->after,
				   any ? &m->n_after_any : &m->n_after, name) < 0)
			diag_add(d, m->file, v->line, "monitor", v->key, "out of memory");
		else
			name = NULL;
		free(name);
		if (!*end)
			return;
	}
}

static const struct {
	const char *key;
	size_t offset;
} monitor_strings[] = {
	{ "pid_file", offsetof(struct monitor_config, pid_file) },
	{ "match", offsetof(struct monitor_config, match) },
	{ "command", offsetof(struct monitor_config, command) },
	{ "log", offsetof(struct monitor_config, log) },
	{ "user", offsetof(struct monitor_config, user) },
	{ "group", offsetof(struct monitor_config, group) },
	{ "working_directory", offsetof(struct monitor_config, working_directory) },
	{ "success", offsetof(struct monitor_config, success) },
	{ "name", offsetof(struct monitor_config, name) },
	{ "retry_command", offsetof(struct monitor_config, retry_command) },
	{ "before_retry", offsetof(struct monitor_config, before_retry) },
	{ "on_failure", offsetof(struct monitor_config, on_failure) },
}, monitor_durations[] = {
	{ "every", offsetof(struct monitor_config, every_ms) },
	{ "grace", offsetof(struct monitor_config, grace_ms) },
	{ "timeout", offsetof(struct monitor_config, timeout_ms) },
	{ "kill_grace", offsetof(struct monitor_config, kill_grace_ms) },
	{ "retry_delay", offsetof(struct monitor_config, retry_delay_ms) },
	{ "hook_timeout", offsetof(struct monitor_config, hook_timeout_ms) },
	{ "deliver_timeout", offsetof(struct monitor_config, deliver_timeout_ms) },
	{ "match_window", offsetof(struct monitor_config, match_window_ms) },
};

/* expected, min_duration = DUR | auto; expected_margin = a number from 1 to 100. */
static int monitor_learned_check(const struct vigil_value *v, char *err, size_t errlen)
{
	int64_t ms;
	char *end;
	double x;

	if (!strcmp(v->key, "expected") || !strcmp(v->key, "min_duration")) {
		if (!strcmp(v->text, "auto") || config_parse_duration_ms(v->text, &ms) == 0)
			return 0;
		return config_fail(err, errlen, -EINVAL, "\"%s\": use a duration (15m) or auto",
				   v->text);
	}
	x = strtod(v->text, &end);
	if (end == v->text || *end || !(x >= 1 && x <= 100))
		return config_fail(err, errlen, -EINVAL, "\"%s\": use a number from 1 to 100",
				   v->text);
	return 0;
}

/* Store expected / expected_margin (checked by monitor_learned_check). */
static void monitor_apply_learned(struct monitor_config *m, const struct vigil_value *v)
{
	if (!strcmp(v->key, "expected_margin"))
		m->expected_margin = strtod(v->text, NULL);
	else if (!strcmp(v->key, "min_duration") && !strcmp(v->text, "auto"))
		m->min_duration_auto = true;
	else if (!strcmp(v->key, "min_duration"))
		config_parse_duration_ms(v->text, &m->min_duration_ms);
	else if (!strcmp(v->text, "auto"))
		m->expected_auto = true;
	else
		config_parse_duration_ms(v->text, &m->expected_ms);
}

/* environment = NAME=VALUE, NAME as a shell variable: [A-Za-z_][A-Za-z0-9_]*. */
static int environment_entry_check(const char *text, char *err, size_t errlen)
{
	const char *p = text;

	if (isalpha((unsigned char)*p) || *p == '_')
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
	if (p > text && *p == '=')
		return 0;
	return config_fail(err, errlen, -EINVAL,
			   "\"%s\": use NAME=VALUE (NAME of letters, digits and '_')", text);
}

/* Checks beyond the value's type; 0 or -EINVAL with err. */
static int monitor_check_value(const struct vigil_value *v, char *err, size_t errlen)
{
	struct success_expr *e;
	int r;

	if (!strcmp(v->key, "name"))
		return monitor_name_check(v->text, err, errlen);
	if (!strcmp(v->key, "expected") || !strcmp(v->key, "expected_margin") ||
	    !strcmp(v->key, "min_duration"))
		return monitor_learned_check(v, err, errlen);
	if (!strcmp(v->key, "pid") && (v->number < 1 || v->number > INT_MAX))
		return config_fail(err, errlen, -EINVAL, "\"%s\" is not a process id", v->text);
	if (!strcmp(v->key, "retry") && (v->number < 0 || v->number > INT_MAX))
		return config_fail(err, errlen, -EINVAL, "\"%s\": use a count from 0 up", v->text);
	if (!strcmp(v->key, "on_timeout") && strcmp(v->text, "notify") &&
	    strcmp(v->text, "term") && strcmp(v->text, "kill"))
		return config_fail(err, errlen, -EINVAL, "\"%s\": use notify, term or kill",
				   v->text);
	if (!strcmp(v->key, "descendants") && strcmp(v->text, "wait") &&
	    strcmp(v->text, "kill") && strcmp(v->text, "leave"))
		return config_fail(err, errlen, -EINVAL, "\"%s\": use wait, kill or leave", v->text);
	if (!strcmp(v->key, "environment"))
		return environment_entry_check(v->text, err, errlen);
	if (!strcmp(v->key, "schedule")) {
		struct cron c;
		return cron_parse(&c, v->text, err, errlen);
	}
	if (!strcmp(v->key, "success")) {
		r = success_expr_parse(v->text, &e, err, errlen);
		success_expr_free(e);
		return r < 0 ? -EINVAL : 0;
	}
	return 0;
}

/* A value monitor_check_value accepted. */
static enum on_timeout on_timeout_parse(const char *text)
{
	if (!strcmp(text, "term"))
		return ON_TIMEOUT_TERM;
	if (!strcmp(text, "kill"))
		return ON_TIMEOUT_KILL;
	return ON_TIMEOUT_NOTIFY;
}

/* Store one validated value of [monitor] into m. */
static void monitor_apply(struct monitor_config *m, const struct vigil_value *v, struct diag *d)
{
	char err[512];

	if (monitor_check_value(v, err, sizeof(err)) < 0) {
		diag_add(d, m->file, v->line, "monitor", v->key, "%s", err);
		return;
	}
	for (size_t i = 0; i < sizeof(monitor_strings) / sizeof(monitor_strings[0]); i++) {
		char **field = (char **)((char *)m + monitor_strings[i].offset);

		if (strcmp(v->key, monitor_strings[i].key))
			continue;
		free(*field);
		*field = strdup(v->text);
		if (!*field)
			diag_add(d, m->file, v->line, "monitor", v->key, "out of memory");
		return;
	}
	for (size_t i = 0; i < sizeof(monitor_durations) / sizeof(monitor_durations[0]); i++)
		if (!strcmp(v->key, monitor_durations[i].key))
			*(int64_t *)((char *)m + monitor_durations[i].offset) = v->number;
	if (!strcmp(v->key, "pid"))
		m->pid = (pid_t)v->number;
	else if (!strcmp(v->key, "retry"))
		m->retry = (int)v->number;
	else if (!strcmp(v->key, "on_timeout"))
		m->on_timeout = on_timeout_parse(v->text);
	else if (!strcmp(v->key, "descendants"))
		m->descendants = !strcmp(v->text, "kill") ? DESCENDANTS_KILL
				 : !strcmp(v->text, "leave") ? DESCENDANTS_LEAVE : DESCENDANTS_WAIT;
	else if (!strcmp(v->key, "notify"))
		monitor_add_notify(m, v, d);
	else if (!strcmp(v->key, "environment"))
		monitor_add_environment(m, v, d);
	else if (!strcmp(v->key, "after") || !strcmp(v->key, "after_any"))
		monitor_add_after(m, v, d);
	else if (!strcmp(v->key, "schedule"))
		monitor_set_schedule(m, v, d);
	else if (!strncmp(v->key, "expected", 8) || !strcmp(v->key, "min_duration"))
		monitor_apply_learned(m, v);
}

/* A detector section other than [pid] (which tunes a target) and [notifier
 * NAME]: such a monitor needs no process target, its detectors decide. */
static bool monitor_has_detectors(const struct monitor_config *m)
{
	for (size_t i = 0; i < m->n_detectors; i++)
		if (strcmp(m->detectors[i].plugin, "pid") && strcmp(m->detectors[i].plugin, "notifier"))
			return true;
	return false;
}

/* Exactly one target; with allow_no_target (vigil run brings the command), none
 * is fine but pid, pid_file and match still exclude each other. */
static void monitor_check_targets(struct monitor_config *m, const struct vigil_value *v,
				  size_t n, int allow_no_target, struct diag *d)
{
	size_t count = 0, limit = allow_no_target ? N_TARGET_KEYS - 1 : N_TARGET_KEYS;
	struct buf names = BUF_INIT;

	for (size_t k = 0; k < limit; k++) {
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v[i].key, target_keys[k]))
				continue;
			if ((count++ && buf_puts(&names, ", ") < 0) ||
			    buf_puts(&names, target_keys[k]) < 0)
				count = 2; /* out of memory: still an error */
			break;
		}
	}
	if (count > 1)
		diag_add(d, m->file, m->line, "monitor", NULL,
			 "%s: set only one target (pid, pid_file, match or command)",
			 buf_cstr(&names));
	else if (count == 0 && !allow_no_target && !monitor_has_detectors(m))
		diag_add(d, m->file, m->line, "monitor", NULL,
			 "no target: set one of pid, pid_file, match or command");
	buf_free(&names);
}

/* "conf.d/nightly-export.ini" -> "nightly-export". */
static char *name_from_file(const char *file)
{
	const char *base = strrchr(file, '/');
	size_t len;

	base = base ? base + 1 : file;
	len = strlen(base);
	if (len > 4 && !strcmp(base + len - 4, ".ini"))
		len -= 4;
	return strndup(base, len);
}

static const struct vigil_value *value_of(const struct vigil_value *v, size_t n,
					  const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].key, key))
			return &v[i];
	return NULL;
}

/* Keys that shape how vigil starts a command mean nothing without one: said,
 * not silently ignored (vigil run brings its command from the command line). */
static void monitor_check_command_keys(struct monitor_config *m, const struct vigil_value *v,
				       size_t n, int allow_no_target, struct diag *d)
{
	static const char *const keys[] = {"user", "group", "working_directory", "environment",
					   "retry", "retry_command", "before_retry"};

	/* after the mistakes of form: a bad value is not also a misplaced one */
	if (m->command || allow_no_target || d->errors)
		return;
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const struct vigil_value *x = value_of(v, n, keys[k]);

		/* an option's default has no line; one from [defaults] has the
		 * [monitor] line (it is meant for the command monitors only) */
		if (x && x->line && x->line != m->line)
			diag_add(d, m->file, x->line, "monitor", x->key,
				 "only for a command vigil starts (set command)");
	}
}

/* Keys that exclude or need each other. */
static void monitor_check_pairs(struct monitor_config *m, const struct vigil_value *v,
				size_t n, int allow_no_target, struct diag *d)
{
	const struct vigil_value *sched = value_of(v, n, "schedule");
	const struct vigil_value *after = value_of(v, n, "after");

	if (sched && value_of(v, n, "every"))
		diag_add(d, m->file, sched->line, "monitor", "schedule",
			 "set every or schedule, not both");
	if (!after)
		after = value_of(v, n, "after_any");
	if (after && !m->command && !allow_no_target)
		diag_add(d, m->file, after->line, "monitor", after->key,
			 "only a command vigil starts can wait for other jobs (set command)");
	monitor_check_command_keys(m, v, n, allow_no_target, d);
}

static void monitor_fill(const struct raw_section *s, int allow_no_target,
			 struct monitor_config *m, struct diag *d)
{
	struct vigil_value *v;
	size_t n;
	char err[512];

	m->line = s->line;
	if (config_check_options(m->file, s, config_monitor_options, &v, &n, d) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		monitor_apply(m, &v[i], d);
	monitor_check_targets(m, v, n, allow_no_target, d);
	monitor_check_pairs(m, v, n, allow_no_target, d);
	config_values_free(v, n);
	if (m->name || !strcmp(m->file, COMMAND_LINE_FILE))
		return;
	m->name = name_from_file(m->file);
	if (!m->name)
		diag_add(d, m->file, 0, "monitor", "name", "out of memory");
	else if (monitor_name_check(m->name, err, sizeof(err)) < 0)
		diag_add(d, m->file, 0, "monitor", "name", "%s (from the file name: set name)",
			 err);
}

int config_load_monitor(const struct raw_ini *ini, int allow_no_target,
			struct monitor_config *out, struct diag *d)
{
	const struct raw_section *mon = NULL;
	size_t errors = d->errors;

	memset(out, 0, sizeof(*out));
	out->file = strdup(ini->file);
	out->detectors = calloc(ini->n_sections ? ini->n_sections : 1, sizeof(*out->detectors));
	if (!out->file || !out->detectors) {
		diag_add(d, ini->file, 0, NULL, NULL, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < ini->n_sections; i++) {
		const struct raw_section *s = &ini->sections[i];

		if (!strcmp(s->name, "monitor")) {
			mon = s;
		} else if (!strcmp(s->plugin, "monitor")) {
			diag_add(d, ini->file, s->line, s->name, NULL,
				 "the monitor section takes no name: write [monitor]");
		} else if (raw_section_copy(&out->detectors[out->n_detectors], s) < 0) {
			diag_add(d, ini->file, s->line, s->name, NULL, "out of memory");
			goto fail;
		} else {
			out->n_detectors++;
		}
	}
	if (mon)
		monitor_fill(mon, allow_no_target, out, d);
	else
		diag_add(d, ini->file, 0, "monitor", NULL, "missing");
	if (d->errors == errors)
		return 0;
fail:
	monitor_config_free(out);
	return -EINVAL;
}

void monitor_config_free(struct monitor_config *m)
{
	free(m->file);
	free(m->name);
	free(m->pid_file);
	free(m->match);
	free(m->command);
	free(m->log);
	free(m->user);
	free(m->group);
	free(m->working_directory);
	strv_free(m->environment, m->n_environment);
	free(m->success);
	free(m->retry_command);
	free(m->before_retry);
	free(m->on_failure);
	strv_free(m->notify, m->n_notify);
	free(m->schedule);
	strv_free(m->after, m->n_after);
	strv_free(m->after_any, m->n_after_any);
	for (size_t i = 0; i < m->n_detectors; i++)
		raw_section_clear(&m->detectors[i]);
	free(m->detectors);
	memset(m, 0, sizeof(*m));
}

/* -------------------------------------------------------------------- agent */

static const struct vigil_option agent_options[] = {
	{ "conf_dir", VIGIL_OPT_PATH, 0, NULL, "folder of monitor files (*.ini)" },
	{ "plugin_dir", VIGIL_OPT_PATH, 0, NULL, "folder of plugins" },
	{ "state_dir", VIGIL_OPT_PATH, 0, NULL, "run records and the control socket" },
	{ "spool_dir", VIGIL_OPT_PATH, 0, NULL, "notifications not yet delivered" },
	{ "plugin_path", VIGIL_OPT_STRING, 0, NULL,
	  "more plugin folders (DIR:DIR), searched after the built-in one" },
	{ "metrics_textfile", VIGIL_OPT_PATH, 0, NULL,
	  "write the metrics here (node_exporter's textfile collector) when they change" },
	{ "metrics_listen", VIGIL_OPT_STRING, 0, NULL, "serve GET /metrics on ADDR:PORT (off)" },
	{ NULL, 0, 0, NULL, NULL },
};

static void agent_fill(struct agent_config *a, const struct raw_section *s, struct diag *d)
{
	char **fields[] = { &a->conf_dir, &a->plugin_dir, &a->state_dir, &a->spool_dir,
			    &a->plugin_path, &a->metrics_textfile, &a->metrics_listen };
	struct vigil_value *v;
	size_t n;

	if (config_check_options(a->file, s, agent_options, &v, &n, d) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; agent_options[k].key; k++) {
			if (strcmp(v[i].key, agent_options[k].key))
				continue;
			free(*fields[k]);
			*fields[k] = strdup(v[i].text);
			if (!*fields[k])
				diag_add(d, a->file, v[i].line, s->name, v[i].key, "out of memory");
		}
	}
	config_values_free(v, n);
}

/* [defaults] holds monitor keys; they are only checked here, merged later. */
static void agent_defaults(struct agent_config *a, const struct raw_section *s, struct diag *d)
{
	struct vigil_value *v;
	size_t n;

	if (config_check_options(a->file, s, config_monitor_options, &v, &n, d) < 0)
		return;
	config_values_free(v, n);
	raw_section_clear(&a->defaults);
	if (raw_section_copy(&a->defaults, s) < 0)
		diag_add(d, a->file, s->line, s->name, NULL, "out of memory");
}

static void agent_notifier(struct agent_config *a, const struct raw_section *s, struct diag *d)
{
	struct raw_section *n;
	int has_type = 0;

	if (!s->instance || !notifier_name_ok(s->instance, strlen(s->instance))) {
		diag_add(d, a->file, s->line, s->name, NULL,
			 "a notifier is named [notifier NAME], NAME made of a-z, 0-9, _ and -");
		return;
	}
	if (!strcmp(s->instance, "stdout") || !strcmp(s->instance, "json")) {
		diag_add(d, a->file, s->line, s->name, NULL,
			 "\"%s\" is reserved for the built-in notify spec", s->instance);
		return;
	}
	for (size_t i = 0; i < s->n_kv; i++)
		has_type |= !strcmp(s->kv[i].key, "type");
	if (!has_type)
		diag_add(d, a->file, s->line, s->name, "type",
			 "missing (the notifier plugin, e.g. webhook or email)");
	n = realloc(a->notifiers, (a->n_notifiers + 1) * sizeof(*n));
	if (!n || raw_section_copy(&n[a->n_notifiers], s) < 0) {
		if (n)
			a->notifiers = n;
		diag_add(d, a->file, s->line, s->name, NULL, "out of memory");
		return;
	}
	a->notifiers = n;
	a->n_notifiers++;
}

int config_load_agent(const struct raw_ini *ini, struct agent_config *out, struct diag *d)
{
	size_t errors = d->errors;

	memset(out, 0, sizeof(*out));
	out->file = strdup(ini->file);
	if (!out->file) {
		diag_add(d, ini->file, 0, NULL, NULL, "out of memory");
		return -EINVAL;
	}
	for (size_t i = 0; i < ini->n_sections; i++) {
		const struct raw_section *s = &ini->sections[i];

		if (!strcmp(s->name, "agent"))
			agent_fill(out, s, d);
		else if (!strcmp(s->name, "defaults"))
			agent_defaults(out, s, d);
		else if (!strcmp(s->plugin, "notifier"))
			agent_notifier(out, s, d);
		else
			diag_add(d, ini->file, s->line, s->name, NULL,
				 "unknown section (known: agent, defaults, notifier NAME)");
	}
	if (d->errors == errors)
		return 0;
	agent_config_free(out);
	return -EINVAL;
}

void agent_config_free(struct agent_config *a)
{
	free(a->file);
	free(a->conf_dir);
	free(a->plugin_dir);
	free(a->plugin_path);
	free(a->state_dir);
	free(a->spool_dir);
	free(a->metrics_textfile);
	free(a->metrics_listen);
	raw_section_clear(&a->defaults);
	for (size_t i = 0; i < a->n_notifiers; i++)
		raw_section_clear(&a->notifiers[i]);
	free(a->notifiers);
	memset(a, 0, sizeof(*a));
}
