/* libFuzzer target: the INI loader and the validation of a monitor file and of
 * vigil.ini (core/base/config.h), from a file as `vigil check` reads it (the
 * input is written to a memfd, so NUL bytes and odd lengths reach the reader).
 * Detector sections are validated against a table holding every option type,
 * as the plugin loader would with a plugin's table. Properties: no crash, no
 * leak, no sanitizer report; a file accepted without diagnostics yields a
 * monitor whose success expression (if any) is set. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/config.h"
#include "base/diag.h"
#include "fuzz_util.h"

/* One key of each type, as a detector plugin might declare them. */
static const struct vigil_option every_type[] = {
	{"path", VIGIL_OPT_PATH, 0, NULL, "p"},
	{"name", VIGIL_OPT_STRING, 0, "x", "s"},
	{"flag", VIGIL_OPT_BOOL, 0, "no", "b"},
	{"count", VIGIL_OPT_INT, 0, "10", "i"},
	{"stall", VIGIL_OPT_DURATION, 0, NULL, "d"},
	{"disk", VIGIL_OPT_SIZE, VIGIL_OPTF_REPEATABLE, NULL, "z"},
	{"failure", VIGIL_OPT_REGEX, 0, NULL, "r"},
	{"url", VIGIL_OPT_URL, VIGIL_OPTF_SECRET, NULL, "u"},
	{NULL, 0, 0, NULL, NULL},
};

static void check_detectors(const char *file, const struct monitor_config *m, struct diag *d)
{
	for (size_t i = 0; i < m->n_detectors; i++) {
		struct vigil_value *v = NULL;
		size_t n = 0;

		if (config_check_options(file, &m->detectors[i], every_type, &v, &n, d) == 0)
			config_values_free(v, n);
	}
}

static void load_monitor(const char *file, const struct raw_ini *ini, int allow_no_target)
{
	struct monitor_config m = {0};
	struct diag d = {0};

	if (config_load_monitor(ini, allow_no_target, &m, &d) == 0) {
		if (d.errors || !m.name)
			abort(); /* accepted, yet reported an error or has no name */
		check_detectors(file, &m, &d);
		monitor_config_free(&m);
	}
	diag_free(&d);
}

static void load_agent(const struct raw_ini *ini)
{
	struct agent_config a = {0};
	struct diag d = {0};

	if (config_load_agent(ini, &a, &d) == 0)
		agent_config_free(&a);
	diag_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = fuzz_memfd(data, size, path, sizeof(path));
	struct raw_ini ini;
	struct diag d = {0};

	if (config_read_ini(path, &ini, &d) == 0) {
		load_monitor(path, &ini, size & 1);
		load_agent(&ini);
		raw_ini_free(&ini);
	}
	diag_free(&d);
	close(fd);
	return 0;
}
