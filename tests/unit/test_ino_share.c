/* The shared inotify instance of a plugin (plugins/lib/ino_share.c), with real
 * files in a temporary folder: owners of one watch all hear its events; a
 * watch stays until its last owner leaves; an owner removed by another's
 * callback is not called again; a watch the kernel drops is forgotten; and
 * 500 owners live on one inotify instance, where one each stopped at about
 * 120 (fs.inotify.max_user_instances is 128). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/ino_share.h"
#include "tmp_tree.h"

#define N_MANY 500

struct owner {
	int events;
	uint32_t last_mask;
	struct ino_share *s;
	struct owner *victim; /* deleted from this owner's callback */
	int victim_wd;
};

static void on_event(void *data, const struct inotify_event *ev)
{
	struct owner *o = data;

	o->events++;
	o->last_mask = ev->mask;
	if (o->victim) {
		ino_share_del(o->s, o->victim_wd, o->victim);
		o->victim = NULL;
	}
}

static void touch(const char *dir, const char *name)
{
	char p[512];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

static char *temp_dir(void)
{
	char *d = strdup("/tmp/vigil-test-ino-XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void test_shared_watch(void **state)
{
	char *d = temp_dir();
	struct ino_share *s = ino_share_new();
	struct owner a = {0}, b = {0};
	int wa, wb;

	(void)state;
	assert_non_null(s);
	wa = ino_share_add(s, d, IN_CREATE, &a);
	wb = ino_share_add(s, d, IN_CLOSE_WRITE, &b);
	assert_true(wa > 0);
	assert_int_equal(wa, wb); /* one inode, one watch: both masks on it */
	touch(d, "f1");
	ino_share_dispatch(s, on_event);
	assert_true(a.events >= 2 && b.events >= 2); /* create and close_write, both */
	ino_share_del(s, wa, &a);
	a.events = b.events = 0;
	touch(d, "f2");
	ino_share_dispatch(s, on_event);
	assert_int_equal(a.events, 0);
	assert_true(b.events >= 1); /* the watch stays for b */
	ino_share_del(s, wb, &b);
	b.events = 0;
	touch(d, "f3");
	ino_share_dispatch(s, on_event);
	assert_int_equal(b.events, 0);
	assert_int_equal(inotify_rm_watch(ino_share_fd(s), wa), -1); /* gone in the kernel */
	ino_share_free(s);
	tmp_tree_remove(d);
	free(d);
}

static void test_deleted_in_a_callback(void **state)
{
	char *d = temp_dir();
	struct ino_share *s = ino_share_new();
	struct owner a = {0}, b = {0};

	(void)state;
	a.s = s;
	a.victim = &b;
	a.victim_wd = ino_share_add(s, d, IN_CREATE, &b);
	assert_int_equal(ino_share_add(s, d, IN_CREATE, &a), a.victim_wd);
	/* the order owners are called in is the table's: make b come after a */
	touch(d, "f1");
	ino_share_dispatch(s, on_event);
	assert_int_equal(a.events, 1);
	assert_true(b.events <= 1); /* called before a removed it, or never after */
	b.events = 0;
	touch(d, "f2");
	ino_share_dispatch(s, on_event);
	assert_int_equal(b.events, 0);
	ino_share_free(s);
	tmp_tree_remove(d);
	free(d);
}

static void test_twice_then_twice(void **state)
{
	char *d = temp_dir();
	struct ino_share *s = ino_share_new();
	struct owner a = {0};
	int w1, w2;

	(void)state;
	w1 = ino_share_add(s, d, IN_CREATE, &a);
	w2 = ino_share_add(s, d, IN_CREATE, &a);
	assert_int_equal(w1, w2);
	ino_share_del(s, w1, &a);
	touch(d, "f1");
	ino_share_dispatch(s, on_event);
	assert_int_equal(a.events, 1); /* still held once */
	ino_share_del(s, w2, &a);
	ino_share_del(s, w2, &a); /* once too often: harmless */
	ino_share_free(s);
	tmp_tree_remove(d);
	free(d);
}

static void test_kernel_drops_a_watch(void **state)
{
	char *d = temp_dir(), sub[512];
	struct ino_share *s = ino_share_new();
	struct owner a = {0};
	int wd;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/sub", d);
	assert_int_equal(mkdir(sub, 0700), 0);
	wd = ino_share_add(s, sub, IN_CREATE | IN_DELETE_SELF, &a);
	assert_true(wd > 0);
	assert_int_equal(rmdir(sub), 0);
	ino_share_dispatch(s, on_event);
	assert_true(a.events >= 1); /* IN_DELETE_SELF, IN_IGNORED */
	ino_share_del(s, wd, &a); /* forgotten already: a no-op */
	ino_share_free(s);
	tmp_tree_remove(d);
	free(d);
}

static void test_many_owners_one_instance(void **state)
{
	char *d = temp_dir(), name[32];
	struct ino_share *s = ino_share_new();
	static struct owner o[N_MANY];
	int total = 0;

	(void)state;
	for (int i = 0; i < N_MANY; i++) {
		char p[512];

		snprintf(name, sizeof(name), "f%d", i);
		touch(d, name);
		snprintf(p, sizeof(p), "%s/%s", d, name);
		assert_true(ino_share_add(s, p, IN_MODIFY, &o[i]) > 0);
	}
	for (int i = 0; i < N_MANY; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		touch(d, name);
	}
	ino_share_dispatch(s, on_event);
	for (int i = 0; i < N_MANY; i++) {
		assert_true(o[i].events >= 1);
		total += o[i].events;
	}
	assert_true(total >= N_MANY);
	ino_share_free(s);
	tmp_tree_remove(d);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_watch),
		cmocka_unit_test(test_deleted_in_a_callback),
		cmocka_unit_test(test_twice_then_twice),
		cmocka_unit_test(test_kernel_drops_a_watch),
		cmocka_unit_test(test_many_owners_one_instance),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
