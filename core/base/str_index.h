/* A string -> pointer index built once and looked up many times (glibc's
 * hsearch_r): the agent's thousands of monitors by name and by file, where a
 * scan per lookup made loading and reloading quadratic. Keys are borrowed:
 * they must outlive the index. No removal: rebuild instead. */
#ifndef VIGIL_STR_INDEX_H
#define VIGIL_STR_INDEX_H

#include <stddef.h>

/* <search.h> stays in str_index.c: its `struct entry` would clash. */
struct str_index {
	void *h; /* struct hsearch_data, NULL: not made */
};

/* Room for `expected` keys. 0 or -ENOMEM. */
int str_index_init(struct str_index *ix, size_t expected);
/* Add key -> val unless key is there already: 0, -EEXIST, or -ENOMEM. */
int str_index_put(struct str_index *ix, const char *key, void *val);
/* The value of key, or NULL (also for an index never made). */
void *str_index_get(struct str_index *ix, const char *key);
void str_index_free(struct str_index *ix);

#endif
