/* Throwaway folders for the unit tests and the fuzz targets: made under /tmp,
 * removed with everything below them (links removed, never followed).
 * Header-only, so that the fuzz targets that do not link the fake host can
 * use it too. */
#ifndef VIGIL_TMP_TREE_H
#define VIGIL_TMP_TREE_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* path and everything below it; a link is removed, not followed. */
static inline void tmp_tree_remove(const char *path)
{
	char sub[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || !(d = opendir(path))) {
		unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		int n = snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);

		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && n > 0 &&
		    (size_t)n < sizeof(sub))
			tmp_tree_remove(sub);
	}
	closedir(d);
	rmdir(path);
}

/* A cmocka fixture holding one fresh folder, /tmp/vigil-test-TAG-XXXXXX. */
struct tmp_fix {
	char dir[64];
};

static inline int tmp_fix_setup(void **state, const char *tag)
{
	struct tmp_fix *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigil-test-%s-XXXXXX", tag);
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static inline int tmp_fix_teardown(void **state)
{
	struct tmp_fix *f = *state;

	tmp_tree_remove(f->dir);
	free(f);
	return 0;
}

#endif
