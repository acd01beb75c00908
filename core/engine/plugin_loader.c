/* Plugin loading: see plugin_loader.h. Modelled on collectd's careful loader
 * (lstat + S_ISREG, RTLD_NOW) with Knot Resolver's version check up front. */
#include "plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "base/log.h"

const char *plugin_default_dir(const char *configured, char *buf, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n;
	struct stat st;

	if (configured && *configured) {
		snprintf(buf, len, "%s", configured);
		return buf;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/../plugins", exe);
			if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
				return buf;
		}
	}
	snprintf(buf, len, "%s", VIGIL_PLUGINDIR);
	return buf;
}

static int owner_ok(const struct stat *st)
{
	return st->st_uid == 0 || st->st_uid == geteuid();
}

int plugin_dir_check(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (stat(dir, &st) != 0) {
		snprintf(err, errlen, "plugin folder %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "plugin folder %s: not a directory", dir);
		return -ENOTDIR;
	}
	if (!owner_ok(&st) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen,
			 "plugin folder %s is not trusted: it must be owned by root (or you) "
			 "and not writable by group or others (mode %03o, owner %u)",
			 dir, (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
		return -EPERM;
	}
	return 0;
}

void plugin_set_init(struct plugin_set *ps, const char *dir)
{
	memset(ps, 0, sizeof(*ps));
	ps->dir = strdup(dir);
	if (strcmp(dir, PLUGIN_LOCAL_DIR) != 0)
		plugin_set_add_path(ps, PLUGIN_LOCAL_DIR);
}

/* The folders in search order: 0 is the built-in one (or plugin_dir). */
static const char *set_dir(const struct plugin_set *ps, size_t i)
{
	return i == 0 ? ps->dir : ps->extra[i - 1];
}

static bool set_has_dir(const struct plugin_set *ps, const char *dir)
{
	for (size_t i = 0; i <= ps->n_extra; i++)
		if (set_dir(ps, i) && strcmp(set_dir(ps, i), dir) == 0)
			return true;
	return false;
}

int plugin_set_add_path(struct plugin_set *ps, const char *path)
{
	char *copy = path ? strdup(path) : NULL, *save = NULL;
	int rc = 0;

	if (path && !copy)
		return -ENOMEM;
	for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d && !rc;
	     d = strtok_r(NULL, ":", &save)) {
		char **grown;

		if (set_has_dir(ps, d))
			continue; /* searched already: a second look finds nothing new */
		grown = realloc(ps->extra, (ps->n_extra + 1) * sizeof(*grown));
		if (!grown || !(grown[ps->n_extra] = strdup(d)))
			rc = -ENOMEM;
		if (grown)
			ps->extra = grown;
		if (!rc)
			ps->n_extra++;
	}
	free(copy);
	return rc;
}

void plugin_set_free(struct plugin_set *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->items[i].handle)
			dlclose(ps->items[i].handle);
		free(ps->items[i].name);
	}
	for (size_t i = 0; i < ps->n_extra; i++)
		free(ps->extra[i]);
	free(ps->extra);
	free(ps->items);
	free(ps->dir);
	memset(ps, 0, sizeof(*ps));
}

static int name_ok(const char *name)
{
	if (!*name || strlen(name) > 64)
		return 0;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
		      *c == '-'))
			return 0;
	return 1;
}

int plugin_check_descriptor(const struct vigil_plugin *p, const char *name, char *err,
			    size_t errlen)
{
	if (p->abi_version != VIGIL_PLUGIN_ABI_VERSION) {
		snprintf(err, errlen,
			 "plugin %s was built for plugin ABI %u, this vigil speaks ABI %u: "
			 "rebuild it against this vigil's plugin.h",
			 name, p->abi_version, VIGIL_PLUGIN_ABI_VERSION);
		return -EPROTO;
	}
	if (p->size < offsetof(struct vigil_plugin, destroy) + sizeof(p->destroy)) {
		snprintf(err, errlen, "plugin %s: descriptor too small (%u bytes)", name,
			 p->size);
		return -EPROTO;
	}
	if (!p->name || strcmp(p->name, name) != 0) {
		snprintf(err, errlen, "plugin %s: its descriptor calls it \"%s\"", name,
			 p->name ? p->name : "(null)");
		return -EPROTO;
	}
	if ((p->kind != VIGIL_PLUGIN_DETECTOR && p->kind != VIGIL_PLUGIN_NOTIFIER) ||
	    !p->create || !p->destroy ||
	    (p->kind == VIGIL_PLUGIN_NOTIFIER && !p->notify)) {
		snprintf(err, errlen, "plugin %s: incomplete descriptor", name);
		return -EPROTO;
	}
	return 0;
}

/* Open dir/name.so: -ENOENT when there is none (look further), another
 * -errno (with err) when there is one that must not or cannot be loaded. */
static int open_in(const char *dir, const char *name, struct loaded_plugin *out, char *err,
		   size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	snprintf(path, sizeof(path), "%s/%s.so", dir, name);
	if (lstat(path, &st) != 0)
		return -ENOENT;
	if (!S_ISREG(st.st_mode) || !owner_ok(&st) || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(err, errlen, "plugin %s: %s is not a regular file owned by root "
			 "(or you) and writable only by its owner", name, path);
		return -EPERM;
	}
	out->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!out->handle) {
		snprintf(err, errlen, "plugin %s: %s (check it with ldd %s)", name, dlerror(),
			 path);
		return -ENOEXEC;
	}
	out->desc = dlsym(out->handle, VIGIL_PLUGIN_SYMBOL);
	if (!out->desc) {
		snprintf(err, errlen, "plugin %s: %s is not a vigil plugin (no symbol %s)",
			 name, path, VIGIL_PLUGIN_SYMBOL);
		dlclose(out->handle);
		return -ENOEXEC;
	}
	rc = plugin_check_descriptor(out->desc, name, err, errlen);
	if (rc) {
		dlclose(out->handle);
		return rc;
	}
	out->name = strdup(name);
	out->dir = dir;
	return 0;
}

/* A plugin of the same name further down the search order is never loaded:
 * say so, since whoever installed it expects it to be used. */
static void note_shadowed(const struct plugin_set *ps, size_t from, const char *name,
			  const char *winner)
{
	char path[PATH_MAX];
	struct stat st;

	for (size_t i = from; i <= ps->n_extra; i++) {
		snprintf(path, sizeof(path), "%s/%s.so", set_dir(ps, i), name);
		if (lstat(path, &st) == 0)
			log_msg(LOG_LVL_WARN, "plugins", "%s is ignored: plugin %s loads from %s, "
				"which comes first", path, name, winner);
	}
}

/* Search the folders in order. The first folder must be usable; a missing
 * extra folder is skipped, an untrusted one too, its reason kept in `why`. */
static int open_plugin(struct plugin_set *ps, const char *name, struct loaded_plugin *out,
		       char *err, size_t errlen)
{
	char why[512] = "", searched[1024] = "";
	size_t used = 0;

	for (size_t i = 0; i <= ps->n_extra; i++) {
		const char *dir = set_dir(ps, i);
		int rc = plugin_dir_check(dir, err, errlen);

		if (rc && i == 0)
			return rc;
		if (rc && rc != -ENOENT && !why[0])
			snprintf(why, sizeof(why), "; %s", err);
		if (rc)
			continue;
		rc = open_in(dir, name, out, err, errlen);
		if (rc == 0)
			note_shadowed(ps, i + 1, name, dir);
		if (rc != -ENOENT)
			return rc;
		used += (size_t)snprintf(searched + used, used < sizeof(searched) ?
					 sizeof(searched) - used : 0, "%s%s", used ? ", " : "", dir);
		if (used >= sizeof(searched))
			used = sizeof(searched) - 1;
	}
	snprintf(err, errlen, "unknown plugin \"%s\" (no %s.so in %s)%s", name, name, searched,
		 why);
	return -ENOENT;
}

const struct vigil_plugin *plugin_get(struct plugin_set *ps, const char *name,
				      enum vigil_plugin_kind kind, char *err, size_t errlen)
{
	struct loaded_plugin lp = {0};
	const struct vigil_plugin *p = NULL;

	if (!name_ok(name)) {
		snprintf(err, errlen, "\"%s\" is not a plugin name (letters, digits, _ and - "
			 "only; plugins load from the plugin folder, never from a path)", name);
		return NULL;
	}
	for (size_t i = 0; i < ps->n && !p; i++)
		if (strcmp(ps->items[i].name, name) == 0)
			p = ps->items[i].desc;
	if (!p) {
		struct loaded_plugin *grown;

		if (open_plugin(ps, name, &lp, err, errlen))
			return NULL;
		grown = realloc(ps->items, (ps->n + 1) * sizeof(*grown));
		if (!grown) {
			dlclose(lp.handle);
			free(lp.name);
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		ps->items = grown;
		ps->items[ps->n++] = lp;
		p = lp.desc;
	}
	if (kind && p->kind != kind) {
		snprintf(err, errlen, "plugin %s is a %s, not a %s", name,
			 p->kind == VIGIL_PLUGIN_DETECTOR ? "detector" : "notifier",
			 kind == VIGIL_PLUGIN_DETECTOR ? "detector" : "notifier");
		return NULL;
	}
	return p;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct name_list {
	char **v;
	size_t n;
};

/* Add the basenames of dir's *.so files to `names`. */
static void list_folder(const char *dir, struct name_list *names)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char **grown;

		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		grown = realloc(names->v, (names->n + 1) * sizeof(*grown));
		if (!grown)
			break;
		names->v = grown;
		names->v[names->n++] = strndup(de->d_name, len - 3);
	}
	if (d)
		closedir(d);
}

void plugin_load_all(struct plugin_set *ps, void (*err_cb)(const char *name, const char *err))
{
	char err[512];
	struct name_list names = {0};

	for (size_t i = 0; i <= ps->n_extra; i++) {
		int rc = plugin_dir_check(set_dir(ps, i), err, sizeof(err));

		if (rc && (i == 0 || rc != -ENOENT))
			err_cb(set_dir(ps, i), err);
		if (rc && i == 0)
			return;
		if (!rc)
			list_folder(set_dir(ps, i), &names);
	}
	qsort(names.v, names.n, sizeof(*names.v), cmp_names);
	for (size_t i = 0; i < names.n; i++) {
		bool again = i > 0 && names.v[i] && names.v[i - 1] &&
			     strcmp(names.v[i], names.v[i - 1]) == 0;

		if (names.v[i] && !again && !plugin_get(ps, names.v[i], 0, err, sizeof(err)))
			err_cb(names.v[i], err);
	}
	for (size_t i = 0; i < names.n; i++)
		free(names.v[i]);
	free(names.v);
}
