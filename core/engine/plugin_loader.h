/* Loading plugins: dlopen from trusted folders (the built-in one first, then
 * /usr/local/lib/vigil/plugins and vigil.ini's plugin_path), one descriptor
 * symbol, ABI version and size checked before anything else is read. */
#ifndef VIGIL_PLUGIN_LOADER_H
#define VIGIL_PLUGIN_LOADER_H

#include <stddef.h>

#include "vigil/plugin.h"

struct loaded_plugin {
	char *name;
	const char *dir; /* the folder it came from (owned by the set) */
	void *handle;
	const struct vigil_plugin *desc;
};

struct plugin_set {
	char *dir;      /* the built-in folder (or plugin_dir): searched first */
	char **extra;   /* then these, in order: /usr/local/lib/vigil/plugins, plugin_path */
	size_t n_extra;
	struct loaded_plugin *items;
	size_t n;
};

/* The folder plugins load from: `configured` when set, else next to the binary
 * (a build tree or a relocated copy: <exe dir>/../plugins), else VIGIL_PLUGINDIR. */
const char *plugin_default_dir(const char *configured, char *buf, size_t len);

/* A folder is trusted when it is a real directory owned by root or by us, and
 * neither it nor the files we load are writable by group or others. */
int plugin_dir_check(const char *dir, char *err, size_t errlen);

/* The folder a site installs its own plugins into, searched after `dir`. */
#define PLUGIN_LOCAL_DIR "/usr/local/lib/vigil/plugins"

/* `dir` first (an error there is an error), then PLUGIN_LOCAL_DIR. */
void plugin_set_init(struct plugin_set *ps, const char *dir);

/* Append the folders of a `plugin_path = DIR[:DIR...]` (NULL or "" adds none).
 * Extra folders follow the same trust rules; a missing one is skipped, an
 * untrusted one is skipped with its reason kept for "unknown plugin" errors.
 * A name found in two folders: the first wins, the other is logged. */
int plugin_set_add_path(struct plugin_set *ps, const char *path);
void plugin_set_free(struct plugin_set *ps); /* dlcloses */

/* Find (loading on first use) the plugin `name` of `kind` (0: any kind).
 * Refuses names with a slash or other than [a-z0-9_-], untrusted folders,
 * missing symbols, other ABI versions, a wrong kind. NULL with err set. */
const struct vigil_plugin *plugin_get(struct plugin_set *ps, const char *name,
				      enum vigil_plugin_kind kind, char *err, size_t errlen);

/* Load every *.so of every folder (for `vigil plugins`); errors go to err_cb. */
void plugin_load_all(struct plugin_set *ps, void (*err_cb)(const char *name, const char *err));

/* Check a plugin descriptor as the loader does (exported for tests). */
int plugin_check_descriptor(const struct vigil_plugin *p, const char *name, char *err,
			    size_t errlen);

#endif
