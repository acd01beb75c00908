/* Plugin loading: see plugin_loader.h. Modelled on collectd's careful loader
 * (lstat + S_ISREG, RTLD_NOW) with Knot Resolver's version check up front. */
#include "plugin_loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"

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
}

void plugin_set_free(struct plugin_set *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->items[i].handle)
			dlclose(ps->items[i].handle);
		free(ps->items[i].name);
	}
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

static int open_plugin(struct plugin_set *ps, const char *name, struct loaded_plugin *out,
		       char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	int rc = plugin_dir_check(ps->dir, err, errlen);

	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/%s.so", ps->dir, name);
	if (lstat(path, &st) != 0) {
		snprintf(err, errlen, "unknown plugin \"%s\" (no %s)", name, path);
		return -ENOENT;
	}
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
	return 0;
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

void plugin_load_all(struct plugin_set *ps, void (*err_cb)(const char *name, const char *err))
{
	char err[512];
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;

	if (plugin_dir_check(ps->dir, err, sizeof(err))) {
		err_cb(ps->dir, err);
		return;
	}
	d = opendir(ps->dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char **grown;

		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown)
			break;
		names = grown;
		names[n++] = strndup(de->d_name, len - 3);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		if (names[i] && !plugin_get(ps, names[i], 0, err, sizeof(err)))
			err_cb(names[i], err);
		free(names[i]);
	}
	free(names);
}
