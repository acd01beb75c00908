/* Shared pieces of the command line: job flags (every flag is the INI key of the
 * same name, so flags become INI sections and go through the same validation),
 * the state and log folders, diagnostics. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "agent/control.h"
#include "base/state.h"

struct cli_globals cli_globals;

/* flag -> [section] key. `where`: 0 both, 'w' watch only, 'r' run only. */
struct flag_map {
	const char *flag;
	const char *section;
	const char *key;
	char where;
};

static const struct flag_map job_flags[] = {
	{"pid", "monitor", "pid", 'w'},
	{"pid-file", "monitor", "pid_file", 0}, /* run: the pid file it writes */
	{"match", "monitor", "match", 'w'},
	{"name", "monitor", "name", 0},
	{"timeout", "monitor", "timeout", 0},
	{"expected", "monitor", "expected", 0},
	{"min-duration", "monitor", "min_duration", 0},
	{"on-timeout", "monitor", "on_timeout", 0},
	{"kill-grace", "monitor", "kill_grace", 0},
	{"rule", "monitor", "success", 0},
	{"notify", "monitor", "notify", 0},
	{"retry", "monitor", "retry", 'r'},
	{"retry-delay", "monitor", "retry_delay", 'r'},
	{"retry-command", "monitor", "retry_command", 'r'},
	{"before-retry", "monitor", "before_retry", 'r'},
	{"on-failure", "monitor", "on_failure", 0},
	{"hook-timeout", "monitor", "hook_timeout", 0},
	{"deliver-timeout", "monitor", "deliver_timeout", 0},
	{"file", "file", "path", 0},
	{"min-size", "file", "min_size", 0},
	{"stable-for", "file", "stable_for", 0},
	{"deadline", "file", "deadline", 0},
	{"log", "log", "path", 0}, /* run: the job's output log */
	{"success", "log", "success", 0},
	{"failure", "log", "failure", 0},
	{"progress", "log", "progress", 0},
	{"stall", "log", "stall", 0},
	{"from", "log", "from", 0},
	{"disk", "pressure", "disk", 0},
	{"inodes", "pressure", "inodes", 0},
	{"memory", "pressure", "memory", 0},
	{"pressure-interval", "pressure", "interval", 0},
};
#define N_JOB_FLAGS (sizeof(job_flags) / sizeof(job_flags[0]))

enum { OPT_CONFIG = 'c', OPT_HELP = 'h', OPT_JSON = 1000, OPT_PLUGIN_DIR, OPT_STATE_DIR,
       OPT_FLAG_BASE = 2000 };

struct flag_value {
	const struct flag_map *map;
	const char *value;
};

bool cli_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static int apply_flags(struct cli_job *job, struct flag_value *fv, size_t n, bool is_run)
{
	/* Flags win over -c FILE: a key given as a flag replaces the file's values. */
	for (size_t i = 0; i < n; i++) {
		const char *section = fv[i].map->section, *key = fv[i].map->key;
		struct raw_section *s;
		bool first = true;

		if (is_run && strcmp(fv[i].map->flag, "log") == 0)
			section = "monitor", key = "log";
		if (is_run && strcmp(fv[i].map->flag, "pid-file") == 0)
			continue; /* run writes it; not a target */
		s = raw_ini_section(&job->ini, section);
		if (!s)
			return -ENOMEM;
		for (size_t j = 0; j < i; j++)
			if (fv[j].map == fv[i].map)
				first = false;
		if (first)
			for (size_t k = 0; k < s->n_kv;) {
				if (strcmp(s->kv[k].key, key) == 0) {
					free(s->kv[k].key);
					free(s->kv[k].value);
					memmove(&s->kv[k], &s->kv[k + 1], (s->n_kv - k - 1) * sizeof(s->kv[0]));
					s->n_kv--;
				} else {
					k++;
				}
			}
		raw_section_set(s, key, fv[i].value, 0);
	}
	return 0;
}

static struct option *build_longopts(bool is_run)
{
	struct option *o = calloc(N_JOB_FLAGS + 8, sizeof(*o));
	size_t n = 0;

	if (!o)
		return NULL;
	for (size_t i = 0; i < N_JOB_FLAGS; i++) {
		if (job_flags[i].where == (is_run ? 'w' : 'r'))
			continue;
		o[n++] = (struct option){job_flags[i].flag, required_argument, NULL,
					 OPT_FLAG_BASE + (int)i};
	}
	o[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	o[n++] = (struct option){"json", no_argument, NULL, OPT_JSON};
	o[n++] = (struct option){"plugin-dir", required_argument, NULL, OPT_PLUGIN_DIR};
	o[n++] = (struct option){"state-dir", required_argument, NULL, OPT_STATE_DIR};
	o[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	return o;
}

static int usage_error(const char *cmd, const char *what, const char *arg)
{
	fprintf(stderr, "vigil %s: %s %s (see vigil %s --help)\n", cmd, what, arg, cmd);
	return EXIT_USAGE;
}

int cli_job_parse(struct cli_job *job, int argc, char **argv, bool is_run, const char *usage)
{
	const char *cmd = is_run ? "run" : "watch";
	struct option *longopts = build_longopts(is_run);
	struct flag_value *fv = calloc((size_t)argc + 1, sizeof(*fv));
	size_t n_fv = 0;
	int c, rc = 0;

	memset(job, 0, sizeof(*job));
	if (!longopts || !fv) {
		free(longopts);
		free(fv);
		return EXIT_USAGE;
	}
	optind = 1;
	opterr = 0;
	while (rc == 0 && (c = getopt_long(argc, argv, is_run ? "+:c:h" : ":c:h", longopts, NULL)) != -1) {
		if (c >= OPT_FLAG_BASE) {
			const struct flag_map *map = &job_flags[c - OPT_FLAG_BASE];

			fv[n_fv++] = (struct flag_value){map, optarg};
			if (strcmp(map->flag, "name") == 0)
				job->name = optarg;
			if (is_run && strcmp(map->flag, "log") == 0)
				job->log = optarg;
			if (is_run && strcmp(map->flag, "pid-file") == 0)
				job->pid_file = optarg;
			continue;
		}
		switch (c) {
		case OPT_CONFIG: job->config_file = optarg; break;
		case OPT_JSON: job->json = true; break;
		case OPT_PLUGIN_DIR: cli_globals.plugin_dir = optarg; break;
		case OPT_STATE_DIR: cli_globals.state_dir = optarg; break;
		case OPT_HELP: fputs(usage, stdout); rc = -1; break;
		case ':': rc = usage_error(cmd, "a value is missing after", argv[optind - 1]); break;
		default: rc = usage_error(cmd, "unknown option", argv[optind - 1]); break;
		}
	}
	if (rc == 0) {
		struct diag d = {0};

		if (job->config_file) {
			if (config_read_ini(job->config_file, &job->ini, &d) != 0 || d.errors) {
				diag_print(&d, stderr);
				rc = EXIT_USAGE;
			}
		} else {
			job->ini.file = strdup("<command line>");
		}
		diag_free(&d);
	}
	if (rc == 0 && apply_flags(job, fv, n_fv, is_run))
		rc = EXIT_USAGE;
	job->argv = argv + optind;
	job->argc = argc - optind;
	free(longopts);
	free(fv);
	return rc;
}

int cli_job_config(struct cli_job *job, bool is_run)
{
	struct diag d = {0};
	int rc = 0;

	if (config_load_monitor(&job->ini, is_run, &job->mc, &d) != 0 || d.errors) {
		diag_print(&d, stderr);
		rc = EXIT_USAGE;
	} else {
		job->have_mc = true;
	}
	diag_free(&d);
	return rc;
}

void cli_job_free(struct cli_job *job)
{
	if (job->have_mc)
		monitor_config_free(&job->mc);
	raw_ini_free(&job->ini);
}

const char *cli_state_dir(void)
{
	static char dir[PATH_MAX];

	if (cli_globals.state_dir)
		snprintf(dir, sizeof(dir), "%s", cli_globals.state_dir);
	else
		state_default_dir(dir, sizeof(dir));
	if (state_ensure_dir(dir) != 0) {
		fprintf(stderr, "vigil: cannot create the state folder %s: %s\n", dir,
			strerror(errno));
		return NULL;
	}
	return dir;
}

static bool same_folder(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

const char *cli_system_dir(void)
{
	const char *own = cli_state_dir(), *sys = state_system_dir();
	char sock[PATH_MAX];

	if (cli_globals.state_dir || !own || same_folder(own, sys))
		return NULL;
	/* The socket is root:vigil 0660 in a 0750 folder: only members get here. */
	control_socket_path(sys, sock, sizeof(sock));
	return access(sock, R_OK | W_OK) == 0 ? sys : NULL;
}

static bool agent_knows(const char *dir, const char *name)
{
	char line[300], *reply = NULL;
	bool known;

	if (strlen(name) > 255 || strpbrk(name, " \t\n"))
		return false;
	snprintf(line, sizeof(line), "status %s", name);
	known = control_request(dir, line, NULL, 0, &reply) == 0 && control_reply_ok(reply);
	free(reply);
	return known;
}

static bool has_job(const char *dir, const char *name)
{
	struct run_record r;

	return state_read(dir, name, &r) == 0 || agent_knows(dir, name);
}

const char *cli_state_dir_for(const char *name)
{
	const char *own = cli_state_dir(), *sys;

	if (!own || has_job(own, name) || !(sys = cli_system_dir()))
		return own;
	return has_job(sys, name) ? sys : own;
}

const char *cli_agent_dir(void)
{
	const char *own = cli_state_dir(), *sys;
	char *reply = NULL;
	bool answers = own && control_request(own, "status", NULL, 0, &reply) == 0;

	free(reply);
	if (!own || answers || !(sys = cli_system_dir()))
		return own;
	return sys;
}

const char *cli_log_dir(char *buf, size_t len)
{
	const char *state = cli_globals.state_dir ? cli_globals.state_dir : getenv("VIGIL_STATE_DIR");

	if (state && *state)
		snprintf(buf, len, "%s/logs", state);
	else
		state_home_dir("logs", buf, len);
	state_ensure_dir(buf);
	return buf;
}

static bool needs_quotes(const char *a)
{
	if (!*a)
		return true;
	for (; *a; a++)
		if (!((*a >= 'a' && *a <= 'z') || (*a >= 'A' && *a <= 'Z') || (*a >= '0' && *a <= '9') ||
		      strchr("-_./=:,+@%", *a)))
			return true;
	return false;
}

/* For display and for the record: how a shell would read it back. */
char *cli_join_command(int argc, char **argv)
{
	size_t len = 1;
	char *s, *w;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) * 4 + 3;
	s = w = malloc(len);
	if (!s)
		return NULL;
	for (int i = 0; i < argc; i++) {
		if (i)
			*w++ = ' ';
		if (!needs_quotes(argv[i])) {
			w += sprintf(w, "%s", argv[i]);
			continue;
		}
		*w++ = '\'';
		for (const char *p = argv[i]; *p; p++) {
			if (*p == '\'') {
				memcpy(w, "'\\''", 4);
				w += 4;
			} else {
				*w++ = *p;
			}
		}
		*w++ = '\'';
	}
	*w = '\0';
	return s;
}

const char *cli_format_elapsed(long long ms, char *buf, size_t len)
{
	long long s = ms / 1000;

	if (s >= 3600)
		snprintf(buf, len, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(buf, len, "%lld.%llds", s, ms % 1000 / 100);
	return buf;
}
