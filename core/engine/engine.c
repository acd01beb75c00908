/* The engine: shared notifiers, hooks and process-wide facts (host name, state
 * and spool folders). Monitors live in monitor.c, delivery in notify.c. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "base/buf.h"
#include "base/log.h"
#include "spool.h"

struct named_notifier {
	char *spec;
	struct notifier *n;
};

struct shared_slot {
	const struct vigil_plugin *plugin;
	void *shared;
	struct vigil_ctx ctx;
};

struct engine {
	struct loop *loop;
	struct plugin_set *plugins;
	char hostname[256];
	char *state_dir;
	char *spool_dir;
	struct engine_hooks hooks;
	struct named_notifier *notifiers;
	size_t n_notifiers;
	struct raw_section *defs; /* [notifier NAME] sections, created on first use */
	char **def_files;
	size_t n_defs;
	struct shared_slot **shared; /* each allocated once: plugins keep &slot->ctx */
	size_t n_shared;
};

struct engine *engine_new(struct loop *loop, struct plugin_set *ps,
			  const struct engine_options *opt)
{
	struct engine *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->loop = loop;
	e->plugins = ps;
	if (opt && opt->hostname)
		snprintf(e->hostname, sizeof(e->hostname), "%s", opt->hostname);
	else if (gethostname(e->hostname, sizeof(e->hostname) - 1) != 0)
		snprintf(e->hostname, sizeof(e->hostname), "localhost");
	e->state_dir = opt && opt->state_dir ? strdup(opt->state_dir) : NULL;
	e->spool_dir = opt && opt->spool_dir ? strdup(opt->spool_dir) : NULL;
	return e;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n_notifiers; i++) {
		notifier_free(e->notifiers[i].n);
		free(e->notifiers[i].spec);
	}
	free(e->notifiers);
	for (size_t i = 0; i < e->n_defs; i++) {
		struct raw_ini tmp = {.sections = &e->defs[i], .n_sections = 1};
		struct raw_section *keep = tmp.sections;

		/* raw_ini_free frees the array too: free one section through a copy. */
		tmp.sections = malloc(sizeof(*keep));
		if (tmp.sections) {
			tmp.sections[0] = *keep;
			raw_ini_free(&tmp);
		}
		free(e->def_files[i]);
	}
	free(e->defs);
	free(e->def_files);
	/* After every instance: shared state outlives the instances using it. */
	for (size_t i = 0; i < e->n_shared; i++) {
		e->shared[i]->plugin->shared_destroy(e->shared[i]->shared);
		ctx_release(&e->shared[i]->ctx);
		free(e->shared[i]);
	}
	free(e->shared);
	free(e->state_dir);
	free(e->spool_dir);
	free(e);
}

void engine_set_hooks(struct engine *e, const struct engine_hooks *h) { e->hooks = *h; }
struct loop *engine_loop(struct engine *e) { return e->loop; }
struct plugin_set *engine_plugins(struct engine *e) { return e->plugins; }
const char *engine_hostname(struct engine *e) { return e->hostname; }
const char *engine_state_dir(struct engine *e) { return e->state_dir; }
const char *engine_spool_dir(struct engine *e) { return e->spool_dir; }
const struct engine_hooks *engine_hooks(struct engine *e) { return &e->hooks; }

static bool has_shared(const struct vigil_plugin *p)
{
	return p->size >= offsetof(struct vigil_plugin, shared_destroy) + sizeof(p->shared_destroy) &&
	       p->shared_create && p->shared_destroy;
}

int engine_plugin_shared(struct engine *e, const struct vigil_plugin *p, void **shared,
			 char *err, size_t errlen)
{
	struct shared_slot **grown, *slot;
	char label[128];

	*shared = NULL;
	if (!has_shared(p))
		return 0;
	for (size_t i = 0; i < e->n_shared; i++)
		if (e->shared[i]->plugin == p) {
			*shared = e->shared[i]->shared;
			return 0;
		}
	grown = realloc(e->shared, (e->n_shared + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	e->shared = grown;
	slot = calloc(1, sizeof(*slot));
	snprintf(label, sizeof(label), "%s (shared)", p->name);
	if (!slot || ctx_init(&slot->ctx, e, label)) {
		free(slot);
		return -ENOMEM;
	}
	slot->plugin = p;
	if (p->shared_create(&engine_host, &slot->ctx, &slot->shared, err, errlen) != 0) {
		ctx_release(&slot->ctx);
		free(slot);
		return -EINVAL;
	}
	slot->ctx.shared = slot->shared;
	e->shared[e->n_shared++] = slot;
	*shared = slot->shared;
	return 0;
}

size_t engine_pending(struct engine *e)
{
	size_t n = 0;

	for (size_t i = 0; i < e->n_notifiers; i++)
		n += notifier_pending(e->notifiers[i].n);
	return n;
}

struct notifier *engine_notifier_by_folder(struct engine *e, const char *folder)
{
	for (size_t i = 0; i < e->n_notifiers; i++) {
		const char *f = notifier_spool_folder(e->notifiers[i].n);

		if (f && strcmp(f, folder) == 0)
			return e->notifiers[i].n;
	}
	return NULL;
}

static struct raw_section *find_def(struct engine *e, const char *name, const char **file)
{
	for (size_t i = 0; i < e->n_defs; i++)
		if (e->defs[i].instance && strcmp(e->defs[i].instance, name) == 0) {
			*file = e->def_files[i];
			return &e->defs[i];
		}
	return NULL;
}

static struct raw_section copy_section(const struct raw_section *s)
{
	struct raw_section c = {0};

	c.name = strdup(s->name);
	c.plugin = strdup(s->plugin);
	c.instance = s->instance ? strdup(s->instance) : NULL;
	c.line = s->line;
	for (size_t i = 0; i < s->n_kv; i++)
		raw_section_set(&c, s->kv[i].key, s->kv[i].value, s->kv[i].line);
	return c;
}

static void free_section(struct raw_section *s);

static void drop_last_def(struct engine *e)
{
	e->n_defs--;
	free_section(&e->defs[e->n_defs]);
	free(e->def_files[e->n_defs]);
}

int engine_define_notifier(struct engine *e, const char *file, const struct raw_section *s,
			   struct diag *d)
{
	struct raw_section *grown;
	char **files;
	const char *f;

	if (!s->instance) {
		diag_add(d, file, s->line, s->name, NULL, "a notifier needs a name: [notifier NAME]");
		return -EINVAL;
	}
	if (find_def(e, s->instance, &f)) {
		diag_add(d, file, s->line, s->name, NULL, "notifier %s is already defined in %s",
			 s->instance, f);
		return -EEXIST;
	}
	grown = realloc(e->defs, (e->n_defs + 1) * sizeof(*grown));
	if (grown)
		e->defs = grown;
	files = realloc(e->def_files, (e->n_defs + 1) * sizeof(*files));
	if (files)
		e->def_files = files;
	if (!grown || !files)
		return -ENOMEM;
	e->defs[e->n_defs] = copy_section(s);
	e->def_files[e->n_defs++] = strdup(file);
	/* Validate now, so a broken definition is reported once, at load. */
	if (engine_notifier(e, s->instance, file, s->line, d))
		return 0;
	/* A broken definition is not kept: a reload with the same (or a fixed)
	 * section defines it afresh instead of finding it "already defined". */
	drop_last_def(e);
	return -EINVAL;
}

/* Turn a spec into the plugin name and its section. */
static int spec_section(struct engine *e, const char *spec, struct raw_section *s,
			const char **file, bool *named, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':');
	struct raw_section *def;

	memset(s, 0, sizeof(*s));
	/* The section's name goes into diagnostics: a webhook URL may hold a secret. */
	s->name = strdup(strncmp(spec, "webhook:", 8) ? spec : "webhook:URL");
	if (strcmp(spec, "stdout") == 0 || strcmp(spec, "json") == 0) {
		s->plugin = strdup("stdout");
		raw_section_set(s, "format", spec[0] == 'j' ? "json" : "text", 0);
	} else if (colon && strncmp(spec, "webhook:", 8) == 0) {
		s->plugin = strdup("webhook");
		raw_section_set(s, "url", colon + 1, 0);
	} else if (colon && strncmp(spec, "email:", 6) == 0) {
		char from[300];

		s->plugin = strdup("email");
		snprintf(from, sizeof(from), "vigil@%s", e->hostname);
		raw_section_set(s, "url", "smtp://127.0.0.1:25", 0);
		raw_section_set(s, "from", from, 0);
		raw_section_set(s, "to", colon + 1, 0);
	} else if ((def = find_def(e, spec, file))) {
		free(s->name);
		*s = copy_section(def);
		*named = true;
		for (size_t i = 0; i < s->n_kv; i++)
			if (strcmp(s->kv[i].key, "type") == 0) {
				free(s->plugin);
				s->plugin = strdup(s->kv[i].value);
				/* `type` is the core's key, not the plugin's. */
				free(s->kv[i].key);
				free(s->kv[i].value);
				s->kv[i] = s->kv[--s->n_kv];
				break;
			}
	} else if (plugin_get(e->plugins, spec, VIGIL_PLUGIN_NOTIFIER, err, errlen)) {
		s->plugin = strdup(spec); /* a notifier plugin by name, with its defaults */
	} else {
		snprintf(err, errlen, "unknown notifier \"%s\" (use stdout, json, webhook:URL, "
			 "email:ADDRESS, a [notifier NAME] of vigil.ini or a notifier plugin)", spec);
		return -ENOENT;
	}
	return s->plugin ? 0 : -ENOMEM;
}

/* The core's own keys of a [notifier NAME] (on, max_age, parallel): read,
 * validated and removed before the rest is checked against the plugin. */
static int take_delivery_key(struct notify_opts *o, const struct raw_kv *kv, char *err,
			     size_t errlen)
{
	int64_t v;

	if (strcmp(kv->key, "on") == 0)
		return notify_parse_on(kv->value, &o->on, err, errlen);
	if (strcmp(kv->key, "max_age") == 0) {
		if (config_parse_duration_ms(kv->value, &o->max_age_ms) || o->max_age_ms <= 0)
			return snprintf(err, errlen, "expected a duration such as 24h"), -EINVAL;
		return 0;
	}
	v = strspn(kv->value, "0123456789") == strlen(kv->value) && strlen(kv->value) < 4
		    ? strtoll(kv->value, NULL, 10) : 0;
	if (v < 1 || v > NOTIFY_PARALLEL_MAX)
		return snprintf(err, errlen, "expected a number from 1 to %u", NOTIFY_PARALLEL_MAX),
		       -EINVAL;
	o->parallel = (unsigned)v;
	return 0;
}

static int delivery_keys(struct engine *e, struct raw_section *s, const char *spec, bool named,
			 const char *file, struct notify_opts *o, struct diag *d)
{
	char err[400];
	int r = 0;

	memset(o, 0, sizeof(*o));
	o->max_age_ms = NOTIFY_MAX_AGE_DEFAULT_MS;
	o->parallel = NOTIFY_PARALLEL_DEFAULT;
	o->spool_root = e->spool_dir;
	spool_folder_name(s->plugin, spec, named, o->spool_name, sizeof(o->spool_name));
	for (size_t i = 0; named && i < s->n_kv;) {
		const char *k = s->kv[i].key;

		if (strcmp(k, "on") && strcmp(k, "max_age") && strcmp(k, "parallel")) {
			i++;
			continue;
		}
		if (take_delivery_key(o, &s->kv[i], err, sizeof(err))) {
			diag_add(d, file, s->kv[i].line, s->name, k, "%s", err);
			r = -EINVAL;
		}
		free(s->kv[i].key);
		free(s->kv[i].value);
		memmove(&s->kv[i], &s->kv[i + 1], (s->n_kv - i - 1) * sizeof(s->kv[0]));
		s->n_kv--;
	}
	return r;
}

static void free_section(struct raw_section *s)
{
	struct raw_ini tmp = {.sections = malloc(sizeof(*s)), .n_sections = 1};

	if (!tmp.sections)
		return;
	tmp.sections[0] = *s;
	raw_ini_free(&tmp);
}

static struct notifier *create_notifier(struct engine *e, const char *spec,
					struct raw_section *s, const char *file, struct diag *d)
{
	char err[512] = "";
	const struct vigil_plugin *p =
		plugin_get(e->plugins, s->plugin, VIGIL_PLUGIN_NOTIFIER, err, sizeof(err));
	struct vigil_value *vals = NULL;
	size_t n_vals = 0;
	struct notifier *n = NULL;

	if (!p) {
		diag_add(d, file, s->line, s->name, "type", "%s", err);
		return NULL;
	}
	if (config_check_options(file, s, p->options, &vals, &n_vals, d))
		return NULL;
	struct vigil_config cfg = {.file = file, .section = s->name, .monitor = NULL,
				   .values = vals, .n_values = n_vals};
	n = notifier_new(e, spec, p, &cfg, err, sizeof(err));
	if (!n)
		diag_add(d, file, s->line, s->name, NULL, "%s", err);
	config_values_free(vals, n_vals);
	return n;
}

struct notifier *engine_notifier(struct engine *e, const char *spec, const char *file,
				 unsigned line, struct diag *d)
{
	struct raw_section s;
	const char *deffile = file;
	char err[512];
	struct notifier *n;
	struct named_notifier *grown;
	struct notify_opts no;
	bool named = false;

	for (size_t i = 0; i < e->n_notifiers; i++)
		if (strcmp(e->notifiers[i].spec, spec) == 0)
			return e->notifiers[i].n;
	if (spec_section(e, spec, &s, &deffile, &named, err, sizeof(err))) {
		diag_add(d, file, line, "monitor", "notify", "%s", err);
		free_section(&s);
		return NULL;
	}
	if (delivery_keys(e, &s, spec, named, deffile, &no, d)) {
		free_section(&s);
		return NULL;
	}
	n = create_notifier(e, spec, &s, deffile, d);
	free_section(&s);
	if (!n)
		return NULL;
	if (notifier_start(n, err, sizeof(err)) || notifier_configure(n, &no, err, sizeof(err))) {
		diag_add(d, deffile, line, spec, NULL, "cannot start: %s", err);
		notifier_free(n);
		return NULL;
	}
	grown = realloc(e->notifiers, (e->n_notifiers + 1) * sizeof(*grown));
	if (!grown) {
		notifier_free(n);
		return NULL;
	}
	e->notifiers = grown;
	e->notifiers[e->n_notifiers].spec = strdup(spec);
	e->notifiers[e->n_notifiers++].n = n;
	return n;
}

/* "NAME@FILE#DIGEST": the file scopes the name (two monitor files may each
 * define NAME), the digest of the definition makes a changed one (a reload) a
 * new instance while an unchanged one keeps its instance and, across reloads
 * and restarts, its spool folder (named after this key). */
static char *local_key(const char *file, const struct raw_section *s)
{
	struct buf b = BUF_INIT;
	char digest[64], *key = NULL;
	const char *hex;

	for (size_t i = 0; i < s->n_kv; i++)
		buf_printf(&b, "%s=%s\n", s->kv[i].key, s->kv[i].value);
	spool_folder_name("def", b.p ? buf_cstr(&b) : "", false, digest, sizeof(digest));
	buf_free(&b);
	hex = strchr(digest, '-');
	if (asprintf(&key, "%s@%s#%s", s->instance, file, hex ? hex + 1 : digest) < 0)
		return NULL;
	return key;
}

struct notifier *engine_local_notifier(struct engine *e, const char *file,
				       const struct raw_section *s, struct diag *d)
{
	char *key = local_key(file, s);
	struct raw_section scoped;
	struct notifier *n = NULL;

	if (!key) {
		diag_add(d, file, s->line, s->name, NULL, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < e->n_notifiers && !n; i++)
		if (strcmp(e->notifiers[i].spec, key) == 0)
			n = e->notifiers[i].n;
	scoped = copy_section(s);
	free(scoped.instance);
	scoped.instance = key; /* freed with the copy */
	if (!n && engine_define_notifier(e, file, &scoped, d) == 0)
		n = engine_notifier(e, key, file, s->line, d);
	free_section(&scoped);
	return n;
}
