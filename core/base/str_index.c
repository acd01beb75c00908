/* See str_index.h. */
#include "str_index.h"

#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

int str_index_init(struct str_index *ix, size_t expected)
{
	struct hsearch_data *h = calloc(1, sizeof(*h));

	ix->h = NULL;
	/* hsearch_r's table is fixed: twice the keys keeps probing short */
	if (!h || !hcreate_r(2 * expected + 16, h)) {
		free(h);
		return -ENOMEM;
	}
	ix->h = h;
	return 0;
}

int str_index_put(struct str_index *ix, const char *key, void *val)
{
	ENTRY want = {.key = (char *)key, .data = NULL}, *found = NULL;

	if (!ix->h)
		return -ENOMEM;
	if (hsearch_r(want, FIND, &found, ix->h) && found)
		return -EEXIST;
	want.data = val;
	return hsearch_r(want, ENTER, &found, ix->h) ? 0 : -ENOMEM;
}

void *str_index_get(struct str_index *ix, const char *key)
{
	ENTRY want = {.key = (char *)key, .data = NULL}, *found = NULL;

	if (!ix->h || !hsearch_r(want, FIND, &found, ix->h) || !found)
		return NULL;
	return found->data;
}

void str_index_free(struct str_index *ix)
{
	if (ix->h)
		hdestroy_r(ix->h);
	free(ix->h);
	ix->h = NULL;
}
