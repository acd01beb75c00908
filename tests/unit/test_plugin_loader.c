/* Unit tests for core/plugin_loader.c with real shared objects: every built
 * plugin by name, the mock plugins (another ABI, no descriptor symbol), names
 * that are paths, untrusted folders and files, and plugin_check_descriptor on
 * crafted descriptors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/plugin_loader.h"

struct fix {
	char dir[64]; /* a private plugin folder, 0755 */
	char build[1024];
};

static const char *build_root(void)
{
	const char *r = getenv("VIGIL_BUILD_ROOT");

	assert_non_null(r);
	return r;
}

/* Copy src to dir/name with `mode` (set explicitly: the umask does not count). */
static void copy_file(const char *src, const char *dir, const char *name, mode_t mode)
{
	char path[PATH_MAX], buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC), out;
	ssize_t n;

	assert_true(in >= 0);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	assert_int_equal(fchmod(out, mode), 0);
	close(out);
}

static void copy_mock(struct fix *f, const char *mock, const char *as, mode_t mode)
{
	char src[PATH_MAX];

	snprintf(src, sizeof(src), "%s/tests/unit/%s", f->build, mock);
	copy_file(src, f->dir, as, mode);
}

static void copy_plugin(struct fix *f, const char *name, mode_t mode)
{
	char src[PATH_MAX], as[128];

	snprintf(src, sizeof(src), "%s/plugins/%s.so", f->build, name);
	snprintf(as, sizeof(as), "%s.so", name);
	copy_file(src, f->dir, as, mode);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->build, sizeof(f->build), "%s", build_root());
	snprintf(f->dir, sizeof(f->dir), "/tmp/vigil-test-loader-XXXXXX");
	if (!mkdtemp(f->dir) || chmod(f->dir, 0755) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *de;
	char path[PATH_MAX];

	chmod(f->dir, 0755);
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
		if (unlink(path) != 0)
			rmdir(path);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* --------------------------------------------------------------- real ones */

static void test_real_plugins_by_name(void **state)
{
	static const struct {
		const char *name;
		enum vigil_plugin_kind kind;
	} want[] = {
		{"pid", VIGIL_PLUGIN_DETECTOR},   {"file", VIGIL_PLUGIN_DETECTOR},
		{"log", VIGIL_PLUGIN_DETECTOR},   {"pressure", VIGIL_PLUGIN_DETECTOR},
		{"stdout", VIGIL_PLUGIN_NOTIFIER}, {"webhook", VIGIL_PLUGIN_NOTIFIER},
		{"email", VIGIL_PLUGIN_NOTIFIER},
	};
	struct fix *f = *state;
	struct plugin_set ps;
	char dir[PATH_MAX], err[512];

	snprintf(dir, sizeof(dir), "%s/plugins", f->build);
	plugin_set_init(&ps, dir);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct vigil_plugin *p, *again;

		err[0] = '\0';
		p = plugin_get(&ps, want[i].name, want[i].kind, err, sizeof(err));
		if (!p)
			fail_msg("%s: %s", want[i].name, err);
		assert_string_equal(p->name, want[i].name);
		assert_int_equal(p->kind, want[i].kind);
		assert_int_equal(p->abi_version, VIGIL_PLUGIN_ABI_VERSION);
		assert_true(p->size >= sizeof(struct vigil_plugin));
		assert_non_null(p->create);
		assert_non_null(p->destroy);
		assert_non_null(p->options);
		/* Loaded once: the second lookup (any kind) is the same descriptor. */
		again = plugin_get(&ps, want[i].name, 0, err, sizeof(err));
		assert_ptr_equal(again, p);
		assert_int_equal(ps.n, i + 1);
	}
	plugin_set_free(&ps);
	assert_int_equal(ps.n, 0);
	assert_null(ps.items);
}

static int n_load_errors;
static char load_errors[1024];

static void load_err(const char *name, const char *err)
{
	size_t used = strlen(load_errors);

	(void)err;
	n_load_errors++;
	snprintf(load_errors + used, sizeof(load_errors) - used, "%s%s", used ? " " : "", name);
}

/* Every .so of the build's plugin folder loads; a folder with mocks reports
 * each bad one, in name order, and keeps the good ones. */
static void test_load_all(void **state)
{
	struct fix *f = *state;
	struct plugin_set ps;
	char dir[PATH_MAX];
	struct dirent *de;
	size_t n_so = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/plugins", f->build);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		n_so += len > 3 && !strcmp(de->d_name + len - 3, ".so");
	}
	closedir(d);
	assert_true(n_so >= 7);
	plugin_set_init(&ps, dir);
	n_load_errors = 0;
	load_errors[0] = '\0';
	plugin_load_all(&ps, load_err);
	assert_int_equal(n_load_errors, 0);
	assert_int_equal(ps.n, n_so);
	plugin_set_free(&ps);

	copy_mock(f, "no_symbol.so", "no_symbol.so", 0644);
	copy_mock(f, "bad_abi.so", "bad_abi.so", 0644);
	copy_plugin(f, "stdout", 0644);
	plugin_set_init(&ps, f->dir);
	plugin_load_all(&ps, load_err);
	assert_int_equal(n_load_errors, 2);
	assert_string_equal(load_errors, "bad_abi no_symbol");
	assert_int_equal(ps.n, 1);
	assert_string_equal(ps.items[0].name, "stdout");
	plugin_set_free(&ps);
}

/* ------------------------------------------------------------ refusals */

static void expect_refused(struct plugin_set *ps, const char *name, enum vigil_plugin_kind kind,
			   const char *needle)
{
	char err[512] = "";
	size_t before = ps->n;

	assert_null(plugin_get(ps, name, kind, err, sizeof(err)));
	if (!strstr(err, needle))
		fail_msg("plugin \"%s\": error \"%s\" does not say \"%s\"", name, err, needle);
	if (kind == 0)
		assert_int_equal(ps->n, before); /* nothing kept */
}

static void test_bad_names(void **state)
{
	struct fix *f = *state;
	const char *bad[] = {"a/b", "/tmp/x", "..", "../pid", "Pid", "PID", "", "pid.so",
			     "pi d", "p\nid", "é"};
	char long_name[80], err[256];
	struct plugin_set ps;

	copy_plugin(f, "pid", 0644);
	plugin_set_init(&ps, f->dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused(&ps, bad[i], 0, "is not a plugin name");
	memset(long_name, 'a', 65);
	long_name[65] = '\0';
	expect_refused(&ps, long_name, 0, "is not a plugin name");
	/* The same folder still loads a good name. */
	assert_non_null(plugin_get(&ps, "pid", 0, err, sizeof(err)));
	plugin_set_free(&ps);
}

static void test_bad_abi(void **state)
{
	struct fix *f = *state;
	struct plugin_set ps;
	char theirs[32], ours[32], err[512] = "";

	copy_mock(f, "bad_abi.so", "bad_abi.so", 0644);
	plugin_set_init(&ps, f->dir);
	assert_null(plugin_get(&ps, "bad_abi", 0, err, sizeof(err)));
	snprintf(theirs, sizeof(theirs), "ABI %u", VIGIL_PLUGIN_ABI_VERSION + 41);
	snprintf(ours, sizeof(ours), "ABI %u", VIGIL_PLUGIN_ABI_VERSION);
	assert_non_null(strstr(err, "bad_abi"));
	assert_non_null(strstr(err, theirs));
	assert_non_null(strstr(err, ours));
	assert_int_equal(ps.n, 0);
	plugin_set_free(&ps);
}

static void test_not_a_plugin(void **state)
{
	struct fix *f = *state;
	struct plugin_set ps;
	char path[PATH_MAX];
	FILE *fp;

	copy_mock(f, "no_symbol.so", "no_symbol.so", 0644);
	plugin_set_init(&ps, f->dir);
	expect_refused(&ps, "no_symbol", 0, "not a vigil plugin");
	/* A file that is not a shared object at all: dlopen's own words. */
	snprintf(path, sizeof(path), "%s/junk.so", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("not an ELF file\n", fp);
	fclose(fp);
	assert_int_equal(chmod(path, 0644), 0);
	expect_refused(&ps, "junk", 0, "ldd");
	plugin_set_free(&ps);
}

static void test_unknown_plugin(void **state)
{
	struct fix *f = *state;
	struct plugin_set ps;

	plugin_set_init(&ps, f->dir);
	expect_refused(&ps, "nope", 0, "unknown plugin");
	expect_refused(&ps, "nope", VIGIL_PLUGIN_NOTIFIER, "unknown plugin");
	plugin_set_free(&ps);
}

static void test_untrusted_folder(void **state)
{
	struct fix *f = *state;
	struct plugin_set ps;
	char err[512];

	copy_plugin(f, "stdout", 0644);
	plugin_set_init(&ps, f->dir);
	assert_int_equal(chmod(f->dir, 0775), 0);
	expect_refused(&ps, "stdout", 0, "not trusted");
	assert_int_equal(plugin_dir_check(f->dir, err, sizeof(err)), -EPERM);
	assert_int_equal(chmod(f->dir, 0757), 0);
	expect_refused(&ps, "stdout", 0, "not trusted");
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(plugin_dir_check(f->dir, err, sizeof(err)), 0);
	assert_non_null(plugin_get(&ps, "stdout", 0, err, sizeof(err)));
	plugin_set_free(&ps);
}

static void test_untrusted_file(void **state)
{
	struct fix *f = *state;
	struct plugin_set ps;
	char path[PATH_MAX], target[PATH_MAX];

	copy_plugin(f, "stdout", 0664);
	copy_plugin(f, "file", 0646);
	plugin_set_init(&ps, f->dir);
	expect_refused(&ps, "stdout", 0, "writable only by its owner");
	expect_refused(&ps, "file", 0, "writable only by its owner");
	/* A symlink is not a regular file, even to a good plugin. */
	copy_plugin(f, "pid", 0644);
	snprintf(target, sizeof(target), "%s/pid.so", f->dir);
	snprintf(path, sizeof(path), "%s/log.so", f->dir);
	assert_int_equal(symlink(target, path), 0);
	expect_refused(&ps, "log", 0, "not a regular file");
	plugin_set_free(&ps);
}

static void test_folder_errors(void **state)
{
	struct fix *f = *state;
	struct plugin_set ps;
	char dir[PATH_MAX], err[512];

	snprintf(dir, sizeof(dir), "%s/missing", f->dir);
	plugin_set_init(&ps, dir);
	expect_refused(&ps, "stdout", 0, "missing");
	assert_int_equal(plugin_dir_check(dir, err, sizeof(err)), -ENOENT);
	plugin_set_free(&ps);

	copy_plugin(f, "stdout", 0644);
	snprintf(dir, sizeof(dir), "%s/stdout.so", f->dir);
	assert_int_equal(plugin_dir_check(dir, err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, "not a directory"));
}

static void test_kind_mismatch(void **state)
{
	struct fix *f = *state;
	struct plugin_set ps;
	char err[512] = "";
	const struct vigil_plugin *p;

	copy_plugin(f, "stdout", 0644);
	copy_plugin(f, "pid", 0644);
	plugin_set_init(&ps, f->dir);
	assert_null(plugin_get(&ps, "stdout", VIGIL_PLUGIN_DETECTOR, err, sizeof(err)));
	assert_non_null(strstr(err, "is a notifier, not a detector"));
	assert_null(plugin_get(&ps, "pid", VIGIL_PLUGIN_NOTIFIER, err, sizeof(err)));
	assert_non_null(strstr(err, "is a detector, not a notifier"));
	p = plugin_get(&ps, "stdout", VIGIL_PLUGIN_NOTIFIER, err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(p->name, "stdout");
	plugin_set_free(&ps);
}

static void test_default_dir(void **state)
{
	char buf[PATH_MAX];

	(void)state;
	assert_string_equal(plugin_default_dir("/opt/vigil/plugins", buf, sizeof(buf)),
			    "/opt/vigil/plugins");
	assert_ptr_equal(plugin_default_dir(NULL, buf, sizeof(buf)), buf);
	assert_true(buf[0] != '\0');
	assert_ptr_equal(plugin_default_dir("", buf, sizeof(buf)), buf);
	assert_true(buf[0] != '\0');
}

/* ------------------------------------------------------ extra folders */

/* A second private folder, 0755, inside the first one's fixture. */
static void make_extra(struct fix *f, char *dir, size_t len, const char *leaf)
{
	snprintf(dir, len, "%s/%s", f->dir, leaf);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(chmod(dir, 0755), 0);
}

static void copy_plugin_to(struct fix *f, const char *name, const char *dir)
{
	char src[PATH_MAX], as[128];

	snprintf(src, sizeof(src), "%s/plugins/%s.so", f->build, name);
	snprintf(as, sizeof(as), "%s.so", name);
	copy_file(src, dir, as, 0644);
}

static void remove_extra(const char *dir, const char *const *names)
{
	char path[PATH_MAX];

	for (; *names; names++) {
		snprintf(path, sizeof(path), "%s/%s.so", dir, *names);
		unlink(path);
	}
	rmdir(dir);
}

/* plugin_path adds folders after the built-in one; a name in both loads from
 * the first; each loaded plugin knows its folder; load_all lists each once. */
static void test_plugin_path_order(void **state)
{
	struct fix *f = *state;
	char a[256], b[256], path[1024], err[512] = "";
	const char *const in_a[] = {"stdout", "file", NULL}, *const in_b[] = {"stdout", "log", NULL};
	struct plugin_set ps;

	copy_plugin(f, "pid", 0644);
	make_extra(f, a, sizeof(a), "a");
	make_extra(f, b, sizeof(b), "b");
	copy_plugin_to(f, "stdout", a);
	copy_plugin_to(f, "file", a);
	copy_plugin_to(f, "stdout", b);
	copy_plugin_to(f, "log", b);
	snprintf(path, sizeof(path), "%s/missing:%s::%s", f->dir, a, b);
	plugin_set_init(&ps, f->dir);
	assert_int_equal(plugin_set_add_path(&ps, path), 0);
	assert_non_null(plugin_get(&ps, "log", VIGIL_PLUGIN_DETECTOR, err, sizeof(err)));
	assert_string_equal(ps.items[0].dir, b);
	assert_non_null(plugin_get(&ps, "stdout", VIGIL_PLUGIN_NOTIFIER, err, sizeof(err)));
	assert_string_equal(ps.items[1].dir, a); /* a comes before b */
	assert_non_null(plugin_get(&ps, "pid", 0, err, sizeof(err)));
	assert_string_equal(ps.items[2].dir, f->dir);
	expect_refused(&ps, "nope", 0, b); /* the error names the folders searched */
	plugin_set_free(&ps);

	plugin_set_init(&ps, f->dir);
	assert_int_equal(plugin_set_add_path(&ps, path), 0);
	n_load_errors = 0;
	plugin_load_all(&ps, load_err);
	assert_int_equal(n_load_errors, 0);
	assert_int_equal(ps.n, 4); /* file log pid stdout: stdout once */
	plugin_set_free(&ps);
	remove_extra(a, in_a);
	remove_extra(b, in_b);
}

/* An extra folder follows the built-in folder's trust rules: untrusted, its
 * plugins are not loaded and the error says why; the built-in ones still are. */
static void test_plugin_path_untrusted(void **state)
{
	struct fix *f = *state;
	char a[256], err[512] = "";
	const char *const in_a[] = {"log", NULL};
	struct plugin_set ps;

	copy_plugin(f, "pid", 0644);
	make_extra(f, a, sizeof(a), "a");
	copy_plugin_to(f, "log", a);
	assert_int_equal(chmod(a, 0777), 0);
	plugin_set_init(&ps, f->dir);
	assert_int_equal(plugin_set_add_path(&ps, a), 0);
	expect_refused(&ps, "log", 0, "not trusted");
	assert_non_null(plugin_get(&ps, "pid", 0, err, sizeof(err)));
	n_load_errors = 0;
	load_errors[0] = '\0';
	plugin_load_all(&ps, load_err);
	assert_int_equal(n_load_errors, 1);
	assert_string_equal(load_errors, a);
	assert_int_equal(ps.n, 1);
	plugin_set_free(&ps);
	assert_int_equal(chmod(a, 0755), 0);
	remove_extra(a, in_a);
}

/* ---------------------------------------------------------- descriptors */

static int fake_create(const struct vigil_host *h, struct vigil_ctx *c,
		       const struct vigil_config *cfg, void **inst, char *err, size_t len)
{
	(void)h, (void)c, (void)cfg, (void)err, (void)len;
	*inst = NULL;
	return 0;
}

static void fake_destroy(void *inst) { (void)inst; }

static int fake_notify(void *inst, uint64_t token, const struct vigil_record *rec)
{
	(void)inst, (void)token, (void)rec;
	return 0;
}

static struct vigil_plugin good_desc(void)
{
	return (struct vigil_plugin){
		.abi_version = VIGIL_PLUGIN_ABI_VERSION, .size = sizeof(struct vigil_plugin),
		.kind = VIGIL_PLUGIN_NOTIFIER, .name = "crafted", .create = fake_create,
		.notify = fake_notify, .destroy = fake_destroy,
	};
}

static void expect_desc(const struct vigil_plugin *p, const char *name, int rc,
			const char *needle)
{
	char err[512] = "";

	assert_int_equal(plugin_check_descriptor(p, name, err, sizeof(err)), rc);
	if (needle && !strstr(err, needle))
		fail_msg("error \"%s\" does not say \"%s\"", err, needle);
}

static void test_check_descriptor(void **state)
{
	struct vigil_plugin p = good_desc();
	char abi[32];

	(void)state;
	expect_desc(&p, "crafted", 0, NULL);
	p.kind = VIGIL_PLUGIN_DETECTOR;
	p.notify = NULL;
	expect_desc(&p, "crafted", 0, NULL); /* a detector needs no notify */

	p = good_desc();
	p.abi_version = VIGIL_PLUGIN_ABI_VERSION + 1;
	snprintf(abi, sizeof(abi), "ABI %u", VIGIL_PLUGIN_ABI_VERSION + 1);
	expect_desc(&p, "crafted", -EPROTO, abi);

	p = good_desc();
	p.size = (uint32_t)offsetof(struct vigil_plugin, destroy);
	expect_desc(&p, "crafted", -EPROTO, "too small");
	p.size = 8;
	expect_desc(&p, "crafted", -EPROTO, "too small");
	/* Up to destroy is enough; later fields are optional (appended). */
	p.size = (uint32_t)(offsetof(struct vigil_plugin, destroy) + sizeof(p.destroy));
	expect_desc(&p, "crafted", 0, NULL);
	p.size = sizeof(struct vigil_plugin) + 64;
	expect_desc(&p, "crafted", 0, NULL);

	p = good_desc();
	expect_desc(&p, "other", -EPROTO, "\"crafted\"");
	p.name = NULL;
	expect_desc(&p, "crafted", -EPROTO, "(null)");

	p = good_desc();
	p.create = NULL;
	expect_desc(&p, "crafted", -EPROTO, "incomplete");
	p = good_desc();
	p.destroy = NULL;
	expect_desc(&p, "crafted", -EPROTO, "incomplete");
	p = good_desc();
	p.notify = NULL;
	expect_desc(&p, "crafted", -EPROTO, "incomplete");
	p = good_desc();
	p.kind = (enum vigil_plugin_kind)0;
	expect_desc(&p, "crafted", -EPROTO, "incomplete");
	p.kind = (enum vigil_plugin_kind)3;
	expect_desc(&p, "crafted", -EPROTO, "incomplete");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_real_plugins_by_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_abi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_folder, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folder_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kind_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plugin_path_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plugin_path_untrusted, setup, teardown),
		cmocka_unit_test(test_default_dir),
		cmocka_unit_test(test_check_descriptor),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
