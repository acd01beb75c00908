/* core/config.c: INI reading on inih, value parsers, option validation, the
 * [monitor] section and vigil.ini, with the exact text of each diagnostic. */
#include <errno.h>
#include <fcntl.h>
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

/* not "config.h": that name is also meson's generated header */
#include "base/buf.h"
#include "base/config.h"

/* ---------------------------------------------------------------- helpers */

static void expect_diags(const struct diag *d, const char *const *want, size_t n)
{
	int same = d->n == n;

	for (size_t i = 0; same && i < n; i++)
		same = !strcmp(d->lines[i], want[i]);
	if (same)
		return;
	for (size_t i = 0; i < d->n; i++)
		print_message("diag[%zu]: %s\n", i, d->lines[i]);
	for (size_t i = 0; i < n; i++)
		print_message("want[%zu]: %s\n", i, want[i]);
	fail_msg("diagnostics differ");
}
#define EXPECT_DIAGS(d, ...)                                                       \
	do {                                                                       \
		const char *const want_[] = { __VA_ARGS__ };                       \
		expect_diags((d), want_, sizeof(want_) / sizeof(want_[0]));        \
	} while (0)

static void expect_no_diags(const struct diag *d)
{
	expect_diags(d, NULL, 0);
}

/* Parse text standing for `file`, then load it as a monitor. */
static int load_monitor(const char *file, const char *text, int allow_no_target,
			struct monitor_config *m, struct diag *d)
{
	struct raw_ini ini;
	int r;

	assert_int_equal(config_read_ini_string(file, text, &ini, d), 0);
	r = config_load_monitor(&ini, allow_no_target, m, d);
	raw_ini_free(&ini);
	return r;
}

static int load_agent(const char *text, struct agent_config *a, struct diag *d)
{
	struct raw_ini ini;
	int r;

	assert_int_equal(config_read_ini_string("vigil.ini", text, &ini, d), 0);
	r = config_load_agent(&ini, a, d);
	raw_ini_free(&ini);
	return r;
}

/* The error text config_parse_value gives for `text`, or NULL when it passes. */
static const char *value_error(enum vigil_option_type type, const char *text)
{
	static char err[512];
	struct vigil_value v;

	err[0] = '\0';
	if (config_parse_value(type, text, &v, err, sizeof(err)) == 0)
		return NULL;
	assert_true(err[0] != '\0');
	return err;
}

static int64_t value_number(enum vigil_option_type type, const char *text)
{
	struct vigil_value v;
	char err[512];

	if (config_parse_value(type, text, &v, err, sizeof(err)) != 0)
		fail_msg("\"%s\" rejected: %s", text, err);
	assert_ptr_equal(v.text, text);
	return v.number;
}

/* A temporary file with `text` and `mode`; the caller unlinks it. */
static void temp_file(char *path, const char *text, mode_t mode)
{
	int fd = mkostemps(path, 4, O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* ------------------------------------------------------------ value parsers */

static void test_durations(void **state)
{
	int64_t ms;

	assert_int_equal(value_number(VIGIL_OPT_DURATION, "250ms"), 250);
	assert_int_equal(value_number(VIGIL_OPT_DURATION, "30s"), 30000);
	assert_int_equal(value_number(VIGIL_OPT_DURATION, "15m"), 900000);
	assert_int_equal(value_number(VIGIL_OPT_DURATION, "2h"), 7200000);
	assert_int_equal(value_number(VIGIL_OPT_DURATION, "1d"), 86400000);
	assert_int_equal(value_number(VIGIL_OPT_DURATION, "1h30m"), 5400000);
	assert_int_equal(value_number(VIGIL_OPT_DURATION, "1d2h3m4s5ms"), 93784005);
	assert_int_equal(value_number(VIGIL_OPT_DURATION, "45"), 45000);
	assert_int_equal(value_number(VIGIL_OPT_DURATION, "0"), 0);
	assert_int_equal(config_parse_duration_ms("90s", &ms), 0);
	assert_int_equal(ms, 90000);
	assert_int_equal(config_parse_duration_ms("90 s", &ms), -EINVAL);

	assert_string_equal(value_error(VIGIL_OPT_DURATION, "10 minutes"),
			    "\"10 minutes\" is not a duration (use e.g. 30s, 15m, 2h, 1h30m)");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, ""),
			    "empty value: expected a duration (use e.g. 30s, 15m, 2h, 1h30m)");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "-5s"),
			    "\"-5s\": a duration cannot be negative");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "5x"),
			    "\"5x\": unknown unit \"x\" (use ms, s, m, h or d)");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "5min"),
			    "\"5min\": unknown unit \"min\" (use ms, s, m, h or d)");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "30s!"),
			    "\"30s!\" is not a duration (use e.g. 30s, 15m, 2h, 1h30m)");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "1h30"),
			    "\"1h30\" is not a duration (use e.g. 30s, 15m, 2h, 1h30m)");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "1.5h"),
			    "\"1.5h\" is not a duration (use e.g. 30s, 15m, 2h, 1h30m)");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "30m1h"),
			    "\"30m1h\": units must go from largest to smallest, each once");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "1m1m"),
			    "\"1m1m\": units must go from largest to smallest, each once");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "9223372036854775807"),
			    "\"9223372036854775807\": too long a duration");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "99999999999999999999ms"),
			    "\"99999999999999999999ms\": too long a duration");
	assert_string_equal(value_error(VIGIL_OPT_DURATION, "200000000000d"),
			    "\"200000000000d\": too long a duration");
	assert_non_null(value_error(VIGIL_OPT_DURATION, "s"));
}

static void test_format_duration(void **state)
{
	char buf[32];

	assert_string_equal(config_format_duration(5400000, buf, sizeof(buf)), "1h30m");
	assert_string_equal(config_format_duration(45000, buf, sizeof(buf)), "45s");
	assert_string_equal(config_format_duration(250, buf, sizeof(buf)), "250ms");
	assert_string_equal(config_format_duration(0, buf, sizeof(buf)), "0s");
	assert_string_equal(config_format_duration(93784005, buf, sizeof(buf)), "1d2h3m4s5ms");
	assert_string_equal(config_format_duration(-1500, buf, sizeof(buf)), "-1s500ms");
	/* round trip */
	int64_t ms;
	assert_int_equal(config_parse_duration_ms(config_format_duration(93784005, buf,
									 sizeof(buf)), &ms), 0);
	assert_int_equal(ms, 93784005);
	/* a short buffer is truncated, never overrun */
	char small[4];
	config_format_duration(5400000, small, sizeof(small));
	assert_string_equal(small, "1h3");
}

static void test_sizes(void **state)
{
	int64_t bytes;
	double pc;
	struct vigil_value v;
	char err[256];

	assert_int_equal(value_number(VIGIL_OPT_SIZE, "4096"), 4096);
	assert_int_equal(value_number(VIGIL_OPT_SIZE, "512K"), 512 * 1024);
	assert_int_equal(value_number(VIGIL_OPT_SIZE, "5M"), 5 * 1024 * 1024);
	assert_int_equal(value_number(VIGIL_OPT_SIZE, "5G"), INT64_C(5) << 30);
	assert_int_equal(value_number(VIGIL_OPT_SIZE, "1T"), INT64_C(1) << 40);
	assert_int_equal(value_number(VIGIL_OPT_SIZE, "2KiB"), 2048);
	assert_int_equal(value_number(VIGIL_OPT_SIZE, "3MiB"), 3 << 20);
	assert_int_equal(value_number(VIGIL_OPT_SIZE, "1GiB"), 1 << 30);
	assert_int_equal(value_number(VIGIL_OPT_SIZE, "2TiB"), INT64_C(2) << 40);
	assert_int_equal(config_parse_value(VIGIL_OPT_SIZE, "5G", &v, err, sizeof(err)), 0);
	assert_true(v.percent == -1);

	assert_int_equal(config_parse_value(VIGIL_OPT_SIZE, "10%", &v, err, sizeof(err)), 0);
	assert_int_equal(v.number, -1);
	assert_true(v.percent == 10);
	assert_int_equal(config_parse_size("2.5%", &bytes, &pc), 0);
	assert_int_equal(bytes, -1);
	assert_true(pc == 2.5);
	assert_int_equal(config_parse_size("100%", &bytes, &pc), 0);
	assert_int_equal(config_parse_size("1K", &bytes, &pc), 0);
	assert_int_equal(bytes, 1024);
	assert_true(pc == -1);

	assert_string_equal(value_error(VIGIL_OPT_SIZE, "0%"),
			    "\"0%\": a percentage must be above 0% and at most 100%");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, "101%"),
			    "\"101%\": a percentage must be above 0% and at most 100%");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, "5MB"),
			    "\"5MB\": unknown unit \"MB\" (use K, M, G, T or KiB, MiB, GiB, TiB: "
			    "powers of 1024; or a percentage)");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, "5k"),
			    "\"5k\": unknown unit \"k\" (use K, M, G, T or KiB, MiB, GiB, TiB: "
			    "powers of 1024; or a percentage)");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, "lots"),
			    "\"lots\" is not a size (use e.g. 4096, 512K, 5M, 5G, 1T or 10%)");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, "%"),
			    "\"%\" is not a size (use e.g. 4096, 512K, 5M, 5G, 1T or 10%)");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, "1.2.3%"),
			    "\"1.2.3%\" is not a size (use e.g. 4096, 512K, 5M, 5G, 1T or 10%)");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, "-5G"),
			    "\"-5G\": a size cannot be negative");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, ""),
			    "empty value: expected a size (use e.g. 4096, 512K, 5M, 5G, 1T or "
			    "10%)");
	assert_string_equal(value_error(VIGIL_OPT_SIZE, "9000000T"),
			    "\"9000000T\": too large a size");
	assert_int_equal(config_parse_size("5 G", &bytes, &pc), -EINVAL);
}

static void test_bools(void **state)
{
	const char *yes[] = { "yes", "YES", "true", "True", "on", "ON", "1" };
	const char *no[] = { "no", "No", "false", "FALSE", "off", "Off", "0" };
	int b;

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		assert_int_equal(value_number(VIGIL_OPT_BOOL, yes[i]), 1);
		assert_int_equal(value_number(VIGIL_OPT_BOOL, no[i]), 0);
	}
	assert_int_equal(config_parse_bool("on", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(config_parse_bool("2", &b), -EINVAL);
	assert_string_equal(value_error(VIGIL_OPT_BOOL, "maybe"),
			    "\"maybe\" is not a boolean (use yes/no, true/false, on/off or 1/0)");
	assert_non_null(value_error(VIGIL_OPT_BOOL, ""));
	assert_non_null(value_error(VIGIL_OPT_BOOL, "yess"));
}

static void test_ints(void **state)
{
	assert_int_equal(value_number(VIGIL_OPT_INT, "42"), 42);
	assert_int_equal(value_number(VIGIL_OPT_INT, "-7"), -7);
	assert_int_equal(value_number(VIGIL_OPT_INT, "+7"), 7);
	assert_int_equal(value_number(VIGIL_OPT_INT, "9223372036854775807"), INT64_MAX);
	assert_int_equal(value_number(VIGIL_OPT_INT, "-9223372036854775808"), INT64_MIN);
	assert_string_equal(value_error(VIGIL_OPT_INT, "9223372036854775808"),
			    "\"9223372036854775808\": out of range");
	assert_string_equal(value_error(VIGIL_OPT_INT, "12x"), "\"12x\" is not an integer");
	assert_string_equal(value_error(VIGIL_OPT_INT, "0x10"), "\"0x10\" is not an integer");
	assert_string_equal(value_error(VIGIL_OPT_INT, ""), "\"\" is not an integer");
	assert_string_equal(value_error(VIGIL_OPT_INT, " 1"), "\" 1\" is not an integer");
	assert_string_equal(value_error(VIGIL_OPT_INT, "1.0"), "\"1.0\" is not an integer");
}

static void test_regex_path_url_string(void **state)
{
	assert_null(value_error(VIGIL_OPT_REGEX, "export (completed|finished)"));
	assert_null(value_error(VIGIL_OPT_REGEX, "([0-9]+)%"));
	assert_string_equal(value_error(VIGIL_OPT_REGEX, "error ("),
			    "\"error (\" is not a valid regular expression: missing closing "
			    "parenthesis at offset 7");
	assert_string_equal(value_error(VIGIL_OPT_REGEX, "a{2,1}"),
			    "\"a{2,1}\" is not a valid regular expression: numbers out of order "
			    "in {} quantifier at offset 5");

	assert_null(value_error(VIGIL_OPT_PATH, "/var/log/x.log"));
	assert_null(value_error(VIGIL_OPT_PATH, "relative/x"));
	assert_string_equal(value_error(VIGIL_OPT_PATH, ""), "empty value: expected a path");

	assert_null(value_error(VIGIL_OPT_URL, "https://hooks.example.com/x?y=1"));
	assert_null(value_error(VIGIL_OPT_URL, "smtp+tls://user:pw@127.0.0.1:25"));
	assert_string_equal(value_error(VIGIL_OPT_URL, "example.com/hook"),
			    "\"example.com/hook\" is not a URL (expected scheme://...)");
	assert_non_null(value_error(VIGIL_OPT_URL, "://x"));
	assert_non_null(value_error(VIGIL_OPT_URL, "http://"));
	assert_non_null(value_error(VIGIL_OPT_URL, "1http://x"));

	assert_null(value_error(VIGIL_OPT_STRING, ""));
	assert_null(value_error(VIGIL_OPT_STRING, "anything at all ;#"));
}

/* -------------------------------------------------------------- INI reading */

static void test_read_sections(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;
	const char *text = "# comment\n"
			   "; another\n"
			   "[monitor]\n"
			   "  name   =   job  \n"
			   "command = sleep 1 ; inline comment\n"
			   "match = a#b;c\n"
			   "\n"
			   "[ log   app ]\n"
			   "path = /tmp/app.log\n"
			   "success = one,\n"
			   "   two\n"
			   "\t three\n"
			   "[file]\r\n"
			   "key:value\r\n";

	assert_int_equal(config_read_ini_string("job.ini", text, &ini, &d), 0);
	expect_no_diags(&d);
	assert_string_equal(ini.file, "job.ini");
	assert_int_equal(ini.n_sections, 3);

	struct raw_section *s = &ini.sections[0];
	assert_string_equal(s->name, "monitor");
	assert_string_equal(s->plugin, "monitor");
	assert_null(s->instance);
	assert_int_equal(s->line, 3);
	assert_int_equal(s->n_kv, 3);
	assert_string_equal(s->kv[0].key, "name");
	assert_string_equal(s->kv[0].value, "job");
	assert_int_equal(s->kv[0].line, 4);
	assert_string_equal(s->kv[1].value, "sleep 1");
	/* ';' starts a comment only after whitespace; '#' only at line start */
	assert_string_equal(s->kv[2].value, "a#b;c");

	s = &ini.sections[1];
	assert_string_equal(s->name, "log app");
	assert_string_equal(s->plugin, "log");
	assert_string_equal(s->instance, "app");
	assert_int_equal(s->line, 8);
	assert_int_equal(s->n_kv, 2);
	/* indented lines continue the value, joined with a space */
	assert_string_equal(s->kv[1].key, "success");
	assert_string_equal(s->kv[1].value, "one, two three");
	assert_int_equal(s->kv[1].line, 10);

	s = &ini.sections[2];
	assert_string_equal(s->name, "file");
	assert_int_equal(s->line, 13);
	assert_string_equal(s->kv[0].key, "key");
	assert_string_equal(s->kv[0].value, "value");
	raw_ini_free(&ini);
	diag_free(&d);
}

static void test_read_empty_section_and_bom(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;

	assert_int_equal(config_read_ini_string("x.ini", "\xEF\xBB\xBF[monitor]\npid = 1\n[file]\n",
						&ini, &d), 0);
	expect_no_diags(&d);
	assert_int_equal(ini.n_sections, 2);
	assert_string_equal(ini.sections[0].name, "monitor");
	assert_string_equal(ini.sections[1].name, "file");
	assert_int_equal(ini.sections[1].line, 3);
	assert_int_equal(ini.sections[1].n_kv, 0);
	raw_ini_free(&ini);

	assert_int_equal(config_read_ini_string("x.ini", "", &ini, &d), 0);
	expect_no_diags(&d);
	assert_int_equal(ini.n_sections, 0);
	raw_ini_free(&ini);
	diag_free(&d);
}

static void test_read_syntax_errors(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;
	const char *text = "[monitor]\n"
			   "pid = 1\n"
			   "garbage without equals\n"
			   "\n"
			   "[broken\n"
			   "also garbage\n"
			   "[]\n"
			   "ok = 1\n";

	assert_int_equal(config_read_ini_string("job.ini", text, &ini, &d), 0);
	EXPECT_DIAGS(&d, "job.ini:3: syntax error: expected key = value or [section]",
		     "job.ini:5: syntax error: expected key = value or [section]",
		     "job.ini:6: syntax error: expected key = value or [section]",
		     "job.ini:7: syntax error: empty section name");
	/* the good parts are kept; the keys after a broken header are dropped */
	assert_int_equal(ini.n_sections, 1);
	assert_int_equal(ini.sections[0].n_kv, 1);
	raw_ini_free(&ini);
	diag_free(&d);
}

static void test_read_structure_errors(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;
	const char *text = "early = 1\n"
			   "[log app]\n"
			   "path = /a\n"
			   "[log  app]\n"
			   "path = /b\n"
			   "[a b c]\n"
			   "x = 1\n"
			   "[monitor]\n"
			   " = v\n";

	assert_int_equal(config_read_ini_string("job.ini", text, &ini, &d), 0);
	EXPECT_DIAGS(&d, "job.ini:1: early: key outside of any section",
		     "job.ini:4: [log app]: duplicate section (first at line 2)",
		     "job.ini:6: [a b c]: a section is named PLUGIN or PLUGIN NAME",
		     "job.ini:9: syntax error: no key before '='");
	assert_int_equal(ini.n_sections, 2);
	assert_int_equal(ini.sections[0].n_kv, 1);
	assert_string_equal(ini.sections[0].kv[0].value, "/a");
	raw_ini_free(&ini);
	diag_free(&d);
}

/* Many sections and long continued values: every duplicate found (through the
 * name index, past its growth steps) and every continuation joined in order. */
static void test_read_many_sections_and_continuations(void **state)
{
	struct buf b = BUF_INIT;
	struct diag d = { 0 };
	struct raw_ini ini;
	const unsigned n = 5000, terms = 20000;

	for (unsigned i = 0; i < n; i++)
		buf_printf(&b, "[log s%u]\npath = /a\n", i % (n / 2));
	buf_printf(&b, "[monitor]\nsuccess = t0\n");
	for (unsigned i = 1; i < terms; i++)
		buf_printf(&b, "  t%u\n", i);
	assert_int_equal(config_read_ini_string("many.ini", b.p, &ini, &d), 0);
	assert_int_equal(d.n, n / 2);
	assert_string_equal(d.lines[0], "many.ini:5001: [log s0]: duplicate section (first at line 1)");
	assert_int_equal(ini.n_sections, n / 2 + 1);
	const struct raw_section *m = &ini.sections[n / 2];
	assert_int_equal(m->n_kv, 1);
	assert_true(strncmp(m->kv[0].value, "t0 t1 t2 ", 9) == 0);
	assert_non_null(strstr(m->kv[0].value, " t19998 t19999"));
	assert_null(strstr(m->kv[0].value, "  "));
	raw_ini_free(&ini);
	diag_free(&d);
	buf_free(&b);
}

static void test_read_long_line(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;
	char text[1024];

	snprintf(text, sizeof(text), "[monitor]\ncommand = %0300d\npid = 2\n", 7);
	assert_int_equal(config_read_ini_string("job.ini", text, &ini, &d), 0);
	EXPECT_DIAGS(&d, "job.ini:2: line too long (at most 197 characters; continue a value "
			 "on indented lines)");
	/* the line after it is read normally, with its own number */
	assert_int_equal(ini.sections[0].n_kv, 1);
	assert_string_equal(ini.sections[0].kv[0].key, "pid");
	assert_int_equal(ini.sections[0].kv[0].line, 3);
	raw_ini_free(&ini);
	diag_free(&d);
}

static void test_read_file(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;
	char path[] = "/tmp/vigil-test-config-XXXXXX.ini";

	assert_int_equal(config_read_ini("/nonexistent/vigil/job.ini", &ini, &d), -ENOENT);
	EXPECT_DIAGS(&d, "/nonexistent/vigil/job.ini: cannot read: No such file or directory");
	diag_free(&d);
	raw_ini_free(&ini); /* harmless after a failure */

	temp_file(path, "[monitor]\npid = 12\n\nbad line\n", 0600);
	assert_int_equal(config_read_ini(path, &ini, &d), 0);
	assert_int_equal(d.n, 1);
	char want[128];
	snprintf(want, sizeof(want), "%s:4: syntax error: expected key = value or [section]",
		 path);
	assert_string_equal(d.lines[0], want);
	assert_string_equal(ini.file, path);
	assert_string_equal(ini.sections[0].kv[0].value, "12");
	raw_ini_free(&ini);
	diag_free(&d);
	unlink(path);

	assert_int_equal(config_read_ini("/tmp", &ini, &d), -EISDIR);
	EXPECT_DIAGS(&d, "/tmp: cannot read: Is a directory");
	diag_free(&d);
}

static void test_raw_helpers(void **state)
{
	struct raw_ini ini = { 0 };
	struct raw_section *s;

	s = raw_ini_section(&ini, "log");
	assert_non_null(s);
	assert_string_equal(s->plugin, "log");
	assert_null(s->instance);
	assert_int_equal(s->line, 0);
	raw_section_set(s, "path", "/a", 0);
	s = raw_ini_section(&ini, "pressure  x");
	assert_string_equal(s->name, "pressure x");
	assert_string_equal(s->instance, "x");
	s = raw_ini_section(&ini, "log");
	raw_section_set(s, "success", "done", 0);
	assert_int_equal(ini.n_sections, 2);
	assert_int_equal(ini.sections[0].n_kv, 2);
	assert_string_equal(ini.sections[0].kv[1].key, "success");
	assert_string_equal(ini.sections[0].kv[1].value, "done");
	raw_ini_free(&ini);
}

/* ------------------------------------------------------- option validation */

static const struct vigil_option test_opts[] = {
	{ "path", VIGIL_OPT_PATH, VIGIL_OPTF_REQUIRED, NULL, "a path" },
	{ "stall", VIGIL_OPT_DURATION, 0, "10m", "silence" },
	{ "success", VIGIL_OPT_REGEX, VIGIL_OPTF_REPEATABLE, NULL, "pattern" },
	{ "from_start", VIGIL_OPT_BOOL, 0, "no", "read from the start" },
	{ "password", VIGIL_OPT_URL, VIGIL_OPTF_SECRET, NULL, "secret" },
	{ NULL, 0, 0, NULL, NULL },
};

static struct raw_section *section_of(struct raw_ini *ini, const char *text, struct diag *d)
{
	assert_int_equal(config_read_ini_string("job.ini", text, ini, d), 0);
	expect_no_diags(d);
	return &ini->sections[0];
}

static void test_check_options_ok(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;
	struct raw_section *s = section_of(&ini, "[log app]\npath = /x\nsuccess = a\nsuccess = b\n",
					   &d);
	struct vigil_value *v;
	size_t n;

	assert_int_equal(config_check_options("job.ini", s, test_opts, &v, &n, &d), 0);
	expect_no_diags(&d);
	raw_ini_free(&ini); /* values are copies */
	assert_int_equal(n, 5);
	assert_string_equal(v[0].key, "path");
	assert_string_equal(v[0].text, "/x");
	assert_int_equal(v[0].line, 2);
	assert_string_equal(v[1].text, "a");
	assert_string_equal(v[2].text, "b");
	assert_int_equal(v[2].line, 4);
	/* defaults, line 0 */
	assert_string_equal(v[3].key, "stall");
	assert_string_equal(v[3].text, "10m");
	assert_int_equal(v[3].number, 600000);
	assert_int_equal(v[3].line, 0);
	assert_string_equal(v[4].key, "from_start");
	assert_int_equal(v[4].number, 0);
	struct vigil_config cfg = { .values = v, .n_values = n };
	assert_string_equal(vigil_config_get(&cfg, "success")->text, "b");
	config_values_free(v, n);
	diag_free(&d);
}

static void test_check_options_errors(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;
	struct raw_section *s = section_of(&ini, "[log app]\n"
						 "stall = 10 minutes\n"
						 "colour = red\n"
						 "stall = 5m\n"
						 "stall = 6m\n"
						 "success = (\n",
					   &d);
	struct vigil_value *v = (struct vigil_value *)&v;
	size_t n = 99;

	assert_int_equal(config_check_options("job.ini", s, test_opts, &v, &n, &d), -EINVAL);
	assert_null(v);
	assert_int_equal(n, 0);
	EXPECT_DIAGS(&d,
		     "job.ini:2: [log app] stall: \"10 minutes\" is not a duration (use e.g. 30s, "
		     "15m, 2h, 1h30m)",
		     "job.ini:3: [log app] colour: unknown key (known: path, stall, success, "
		     "from_start, password)",
		     "job.ini:5: [log app] stall: given twice (first at line 4)",
		     "job.ini:6: [log app] success: \"(\" is not a valid regular expression: "
		     "missing closing parenthesis at offset 1",
		     "job.ini:1: [log app] path: missing (required)");
	raw_ini_free(&ini);
	diag_free(&d);
}

static void test_check_options_flags_win(void **state)
{
	struct diag d = { 0 };
	struct raw_ini ini;
	struct raw_section *s = section_of(&ini, "[log]\npath = /file\nstall = 5m\n", &d);
	struct vigil_value *v;
	size_t n;

	/* what the CLI appends with line 0 replaces the file's value */
	raw_section_set(s, "stall", "1h", 0);
	raw_section_set(s, "path", "/flag", 0);
	assert_int_equal(config_check_options("job.ini", s, test_opts, &v, &n, &d), 0);
	expect_no_diags(&d);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].text, "/flag");
	assert_int_equal(v[0].line, 0);
	assert_int_equal(v[1].number, 3600000);
	config_values_free(v, n);
	raw_ini_free(&ini);
	diag_free(&d);
}

static void test_check_options_secret(void **state)
{
	char path[] = "/tmp/vigil-test-secret-XXXXXX.ini";
	const char *text = "[notifier x]\npath = /p\npassword = smtp://u:hunter2@h\n";
	struct diag d = { 0 };
	struct raw_ini ini;
	struct vigil_value *v;
	size_t n;
	char want[256];

	temp_file(path, text, 0644);
	assert_int_equal(config_read_ini(path, &ini, &d), 0);
	assert_int_equal(config_check_options(path, &ini.sections[0], test_opts, &v, &n, &d),
			 -EINVAL);
	assert_int_equal(d.n, 1);
	snprintf(want, sizeof(want), "%s:3: [notifier x] password: holds a secret but the file "
		 "is readable by group or others (chmod 600 %s, or 640 with group vigil)", path, path);
	assert_string_equal(d.lines[0], want);
	diag_free(&d);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(config_check_options(path, &ini.sections[0], test_opts, &v, &n, &d), 0);
	expect_no_diags(&d);
	config_values_free(v, n);
	raw_ini_free(&ini);
	unlink(path);

	/* a bad secret is not echoed */
	assert_int_equal(config_read_ini_string("x.ini", "[n]\npath=/p\npassword = hunter2\n",
						&ini, &d), 0);
	assert_int_equal(config_check_options("x.ini", &ini.sections[0], test_opts, &v, &n, &d),
			 -EINVAL);
	EXPECT_DIAGS(&d, "x.ini:3: [n] password: invalid value (not shown: it is secret)");
	raw_ini_free(&ini);
	diag_free(&d);
}

/* ------------------------------------------------------------------ monitor */

static void test_monitor_defaults(void **state)
{
	struct diag d = { 0 };
	struct monitor_config m;
	const char *text = "[monitor]\n"
			   "pid_file = /run/export.pid\n"
			   "[file]\n"
			   "path = /data/x\n"
			   "[log app]\n"
			   "path = /var/log/x\n";

	assert_int_equal(load_monitor("/etc/vigil/conf.d/nightly-export.ini", text, 0, &m, &d), 0);
	expect_no_diags(&d);
	assert_string_equal(m.file, "/etc/vigil/conf.d/nightly-export.ini");
	assert_string_equal(m.name, "nightly-export");
	assert_string_equal(m.pid_file, "/run/export.pid");
	assert_int_equal(m.pid, 0);
	assert_null(m.match);
	assert_null(m.command);
	assert_null(m.success);
	assert_int_equal(m.n_notify, 0);
	assert_int_equal(m.on_timeout, ON_TIMEOUT_NOTIFY);
	assert_int_equal(m.kill_grace_ms, 10000);
	assert_int_equal(m.retry_delay_ms, 10000);
	assert_int_equal(m.deliver_timeout_ms, 30000);
	assert_int_equal(m.expected_ms, 0);
	assert_int_equal(m.timeout_ms, 0);
	assert_int_equal(m.retry, 0);
	assert_int_equal(m.line, 1);
	assert_int_equal(m.n_detectors, 2);
	assert_string_equal(m.detectors[0].name, "file");
	assert_string_equal(m.detectors[1].plugin, "log");
	assert_string_equal(m.detectors[1].instance, "app");
	assert_string_equal(m.detectors[1].kv[0].value, "/var/log/x");
	assert_int_equal(m.detectors[1].line, 5);
	monitor_config_free(&m);
	diag_free(&d);
}

static void test_monitor_all_keys(void **state)
{
	struct diag d = { 0 };
	struct monitor_config m;
	const char *text = "[monitor]\n"
			   "name = export@db-1\n"
			   "command = pg_dump mydb > /tmp/x\n"
			   "log = /tmp/x.log\n"
			   "expected = 15m\n"
			   "timeout = 2h\n"
			   "on_timeout = term\n"
			   "kill_grace = 30s\n"
			   "success = exit and file and not failure\n"
			   "notify = json, oncall\n"
			   "notify = webhook:https://h.example/x,email:ops@example.com , stdout\n"
			   "retry = 3\n"
			   "retry_delay = 1m\n"
			   "deliver_timeout = 5s\n";

	assert_int_equal(load_monitor("job.ini", text, 0, &m, &d), 0);
	expect_no_diags(&d);
	assert_string_equal(m.name, "export@db-1");
	assert_string_equal(m.command, "pg_dump mydb > /tmp/x");
	assert_string_equal(m.log, "/tmp/x.log");
	assert_int_equal(m.expected_ms, 900000);
	assert_int_equal(m.timeout_ms, 7200000);
	assert_int_equal(m.on_timeout, ON_TIMEOUT_TERM);
	assert_int_equal(m.kill_grace_ms, 30000);
	assert_string_equal(m.success, "exit and file and not failure");
	assert_int_equal(m.n_notify, 5);
	assert_string_equal(m.notify[0], "json");
	assert_string_equal(m.notify[1], "oncall");
	assert_string_equal(m.notify[2], "webhook:https://h.example/x");
	assert_string_equal(m.notify[3], "email:ops@example.com");
	assert_string_equal(m.notify[4], "stdout");
	assert_int_equal(m.retry, 3);
	assert_int_equal(m.retry_delay_ms, 60000);
	assert_int_equal(m.deliver_timeout_ms, 5000);
	assert_int_equal(m.n_detectors, 0);
	monitor_config_free(&m);

	assert_int_equal(load_monitor("job.ini", "[monitor]\npid = 4321\non_timeout = kill\n", 0,
				      &m, &d), 0);
	assert_int_equal(m.pid, 4321);
	assert_int_equal(m.on_timeout, ON_TIMEOUT_KILL);
	monitor_config_free(&m);
	assert_int_equal(load_monitor("job.ini", "[monitor]\nmatch = ^pg_dump .* mydb\n", 0,
				      &m, &d), 0);
	assert_string_equal(m.match, "^pg_dump .* mydb");
	monitor_config_free(&m);
	expect_no_diags(&d);
	diag_free(&d);
}

static void test_monitor_targets(void **state)
{
	struct diag d = { 0 };
	struct monitor_config m;

	assert_int_equal(load_monitor("job.ini", "[monitor]\nname = x\n", 0, &m, &d), -EINVAL);
	EXPECT_DIAGS(&d, "job.ini:1: [monitor]: no target: set one of pid, pid_file, match or "
			 "command");
	diag_free(&d);

	assert_int_equal(load_monitor("job.ini", "\n[monitor]\npid = 1\ncommand = true\n", 0, &m,
				      &d), -EINVAL);
	EXPECT_DIAGS(&d, "job.ini:2: [monitor]: pid, command: set only one target (pid, "
			 "pid_file, match or command)");
	diag_free(&d);

	/* vigil run brings its own command */
	assert_int_equal(load_monitor("<command line>", "[monitor]\ntimeout = 1h\n", 1, &m, &d), 0);
	expect_no_diags(&d);
	assert_null(m.name); /* no file name to take it from */
	monitor_config_free(&m);
	assert_int_equal(load_monitor("run.ini", "[monitor]\ncommand = x\npid_file = /p\n", 1, &m,
				      &d), 0);
	expect_no_diags(&d);
	monitor_config_free(&m);
	assert_int_equal(load_monitor("run.ini", "[monitor]\npid = 3\nmatch = x\n", 1, &m, &d),
			 -EINVAL);
	EXPECT_DIAGS(&d, "run.ini:1: [monitor]: pid, match: set only one target (pid, pid_file, "
			 "match or command)");
	diag_free(&d);
}

static void test_monitor_errors(void **state)
{
	struct diag d = { 0 };
	struct monitor_config m;
	const char *text = "[monitor]\n"
			   "pid = 0\n"
			   "match = (\n"
			   "timeout = 10 minutes\n"
			   "on_timeout = explode\n"
			   "success = exit xor file\n"
			   "notify = json, Bad Spec\n"
			   "notify = webhook:nowhere, email:nobody\n"
			   "notify = stdout,,json\n"
			   "retry = -1\n"
			   "colour = blue\n"
			   "[monitor extra]\n";

	assert_int_equal(load_monitor("job.ini", text, 0, &m, &d), -EINVAL);
	EXPECT_DIAGS(&d,
		     "job.ini:12: [monitor extra]: the monitor section takes no name: write "
		     "[monitor]",
		     "job.ini:3: [monitor] match: \"(\" is not a valid regular expression: "
		     "missing closing parenthesis at offset 1",
		     "job.ini:4: [monitor] timeout: \"10 minutes\" is not a duration (use e.g. "
		     "30s, 15m, 2h, 1h30m)",
		     "job.ini:11: [monitor] colour: unknown key (known: name, pid, pid_file, "
		     "match, command, log, user, group, working_directory, environment, "
		     "expected, expected_margin, min_duration, every, grace, schedule, after, "
		     "after_any, timeout, on_timeout, kill_grace, "
		     "descendants, success, notify, retry, retry_delay, retry_command, before_retry, "
		     "on_failure, hook_timeout, deliver_timeout, match_window)");
	diag_free(&d);

	/* with the option-level errors fixed, the [monitor] checks speak */
	text = "[monitor]\n"
	       "pid = 0\n"
	       "on_timeout = explode\n"
	       "success = exit xor file\n"
	       "notify = json, Bad Spec\n"
	       "notify = webhook:nowhere, email:nobody\n"
	       "notify = stdout,,json\n"
	       "retry = -1\n"
	       "name = ../etc\n";
	assert_int_equal(load_monitor("job.ini", text, 0, &m, &d), -EINVAL);
	EXPECT_DIAGS(&d, "job.ini:2: [monitor] pid: \"0\" is not a process id",
		     "job.ini:3: [monitor] on_timeout: \"explode\": use notify, term or kill",
		     "job.ini:4: [monitor] success: unexpected \"xor\" at column 6 (expected "
		     "\"and\" or \"or\")",
		     "job.ini:5: [monitor] notify: \"Bad Spec\" is not a notify spec (use stdout, "
		     "json, webhook:URL, email:ADDRESS or a notifier name)",
		     "job.ini:6: [monitor] notify: \"webhook:nowhere\": not a URL after webhook:",
		     "job.ini:6: [monitor] notify: \"email:nobody\": not an address after email:",
		     "job.ini:7: [monitor] notify: empty notify spec in \"stdout,,json\"",
		     "job.ini:8: [monitor] retry: \"-1\": use a count from 0 up",
		     "job.ini:9: [monitor] name: \"../etc\" is not a valid name (use letters, "
		     "digits, '.', '_', '-' and '@'; starting with a letter or digit)");
	diag_free(&d);
}

static void test_monitor_missing(void **state)
{
	struct diag d = { 0 };
	struct monitor_config m;

	assert_int_equal(load_monitor("job.ini", "[log]\npath = /x\n", 0, &m, &d), -EINVAL);
	EXPECT_DIAGS(&d, "job.ini: [monitor]: missing");
	/* freed and zeroed on failure: freeing again is harmless */
	assert_null(m.file);
	assert_int_equal(m.n_detectors, 0);
	monitor_config_free(&m);
	diag_free(&d);

	assert_int_equal(load_monitor("my job.ini", "[monitor]\npid = 5\n", 0, &m, &d), -EINVAL);
	EXPECT_DIAGS(&d, "my job.ini: [monitor] name: \"my job\" is not a valid name (use "
			 "letters, digits, '.', '_', '-' and '@'; starting with a letter or digit) (from "
			 "the file name: set name)");
	diag_free(&d);
}

static void test_monitor_options_table(void **state)
{
	size_t n = 0;

	for (const struct vigil_option *o = config_monitor_options; o->key; o++, n++)
		assert_non_null(o->help);
	assert_int_equal(n, 32);
}

/* -------------------------------------------------------------------- agent */

static void test_agent_ok(void **state)
{
	struct diag d = { 0 };
	struct agent_config a;
	const char *text = "[agent]\n"
			   "conf_dir = /etc/vigil/conf.d\n"
			   "state_dir = /run/vigil\n"
			   "[defaults]\n"
			   "notify = oncall\n"
			   "timeout = 1h\n"
			   "[notifier oncall]\n"
			   "type = email\n"
			   "url = smtp://127.0.0.1:25\n"
			   "[notifier chat]\n"
			   "type = webhook\n";

	assert_int_equal(load_agent(text, &a, &d), 0);
	expect_no_diags(&d);
	assert_string_equal(a.file, "vigil.ini");
	assert_string_equal(a.conf_dir, "/etc/vigil/conf.d");
	assert_string_equal(a.state_dir, "/run/vigil");
	assert_null(a.plugin_dir);
	assert_null(a.spool_dir);
	assert_string_equal(a.defaults.name, "defaults");
	assert_int_equal(a.defaults.n_kv, 2);
	assert_string_equal(a.defaults.kv[0].value, "oncall");
	assert_int_equal(a.defaults.kv[1].line, 6);
	assert_int_equal(a.n_notifiers, 2);
	assert_string_equal(a.notifiers[0].instance, "oncall");
	assert_string_equal(a.notifiers[0].kv[1].key, "url");
	assert_string_equal(a.notifiers[1].instance, "chat");
	agent_config_free(&a);
	diag_free(&d);
}

static void test_agent_errors(void **state)
{
	struct diag d = { 0 };
	struct agent_config a;
	const char *text = "[agent]\n"
			   "conf_dir =\n"
			   "log_level = debug\n"
			   "[defaults]\n"
			   "timeout = soon\n"
			   "[notifier oncall]\n"
			   "url = smtp://x\n"
			   "[notifier]\n"
			   "[notifier Bad]\n"
			   "[notifier json]\n"
			   "[monitor]\n";

	assert_int_equal(load_agent(text, &a, &d), -EINVAL);
	EXPECT_DIAGS(&d, "vigil.ini:2: [agent] conf_dir: empty value: expected a path",
		     "vigil.ini:3: [agent] log_level: unknown key (known: conf_dir, plugin_dir, "
		     "state_dir, spool_dir, plugin_path, metrics_textfile, metrics_listen)",
		     "vigil.ini:5: [defaults] timeout: \"soon\" is not a duration (use e.g. 30s, "
		     "15m, 2h, 1h30m)",
		     "vigil.ini:6: [notifier oncall] type: missing (the notifier plugin, e.g. "
		     "webhook or email)",
		     "vigil.ini:8: [notifier]: a notifier is named [notifier NAME], NAME made of "
		     "a-z, 0-9, _ and -",
		     "vigil.ini:9: [notifier Bad]: a notifier is named [notifier NAME], NAME made "
		     "of a-z, 0-9, _ and -",
		     "vigil.ini:10: [notifier json]: \"json\" is reserved for the built-in notify "
		     "spec",
		     "vigil.ini:11: [monitor]: unknown section (known: agent, defaults, notifier "
		     "NAME)");
	assert_null(a.file);
	agent_config_free(&a);
	diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_read_many_sections_and_continuations),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_bools),
		cmocka_unit_test(test_ints),
		cmocka_unit_test(test_regex_path_url_string),
		cmocka_unit_test(test_read_sections),
		cmocka_unit_test(test_read_empty_section_and_bom),
		cmocka_unit_test(test_read_syntax_errors),
		cmocka_unit_test(test_read_structure_errors),
		cmocka_unit_test(test_read_long_line),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_raw_helpers),
		cmocka_unit_test(test_check_options_ok),
		cmocka_unit_test(test_check_options_errors),
		cmocka_unit_test(test_check_options_flags_win),
		cmocka_unit_test(test_check_options_secret),
		cmocka_unit_test(test_monitor_defaults),
		cmocka_unit_test(test_monitor_all_keys),
		cmocka_unit_test(test_monitor_targets),
		cmocka_unit_test(test_monitor_errors),
		cmocka_unit_test(test_monitor_missing),
		cmocka_unit_test(test_monitor_options_table),
		cmocka_unit_test(test_agent_ok),
		cmocka_unit_test(test_agent_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
