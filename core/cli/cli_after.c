/* vigil run --after NAME: the command line's side of waiting for other jobs
 * (see cli_after.h): the flags, the folder of each job, the messages, and the
 * supervisor's loop until engine/after.c says whether the command may start. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_after.h"

/* --after NAME, --after=NAME, --after-any NAME, --after-any=NAME: the name, or
 * NULL when argv[*i] is none of them (*i moves past a separate value). */
static const char *after_flag(int argc, char **argv, int *i, bool *any)
{
	const char *a = argv[*i];
	size_t len;

	*any = strncmp(a, "--after-any", 11) == 0;
	len = *any ? 11 : 7;
	if (strncmp(a, "--after", 7) != 0 || (a[len] != '\0' && a[len] != '='))
		return NULL;
	if (a[len] == '=')
		return a + len + 1;
	if (*i + 1 >= argc)
		return "";
	return argv[++*i];
}

static int add_flag(struct cli_after *ca, const char *name, bool any)
{
	struct after_flag *v = realloc(ca->flags, (ca->n_flags + 1) * sizeof(*v));

	if (!v)
		return EXIT_USAGE;
	ca->flags = v;
	ca->flags[ca->n_flags++] = (struct after_flag){name, any};
	return 0;
}

int cli_after_take_flags(struct cli_after *ca, int *argc, char **argv)
{
	int out = 1, i;

	memset(ca, 0, sizeof(*ca));
	after_init(&ca->set);
	for (i = 1; i < *argc && strcmp(argv[i], "--") != 0; i++) {
		bool any;
		const char *name = after_flag(*argc, argv, &i, &any);

		if (!name) {
			argv[out++] = argv[i];
			continue;
		}
		if (!*name || strlen(name) > 200 || strchr(name, '/')) {
			fprintf(stderr, "vigil run: --after%s needs a job name\n", any ? "-any" : "");
			return EXIT_USAGE;
		}
		if (add_flag(ca, name, any))
			return EXIT_USAGE;
	}
	while (i < *argc)
		argv[out++] = argv[i++];
	argv[out] = NULL;
	*argc = out;
	return 0;
}

/* The job may be ours or the system agent's: its folder, found now. */
static int add_pred(struct cli_after *ca, const char *name, bool any)
{
	if (after_add(&ca->set, name, cli_state_dir_for(name), any) == 0)
		return 0;
	fprintf(stderr, "vigil run: out of memory\n");
	return EXIT_USAGE;
}

/* -c FILE's names first: the flags add to them. */
static int collect(struct cli_after *ca, const struct monitor_config *mc)
{
	int rc = 0;

	for (size_t i = 0; i < mc->n_after && !rc; i++)
		rc = add_pred(ca, mc->after[i], false);
	for (size_t i = 0; i < mc->n_after_any && !rc; i++)
		rc = add_pred(ca, mc->after_any[i], true);
	for (size_t i = 0; i < ca->n_flags && !rc; i++)
		rc = add_pred(ca, ca->flags[i].name, ca->flags[i].any);
	return rc;
}

int cli_after_check(struct cli_after *ca, const struct monitor_config *mc, const char *self)
{
	size_t bad = 0;
	const struct after_pred *p;
	int rc = collect(ca, mc);

	if (rc)
		return rc;
	switch (after_check(&ca->set, self, &bad)) {
	case AFTER_OK:
		return 0;
	case AFTER_SELF:
		fprintf(stderr, "vigil run: --after %s: a job cannot wait for itself\n", self);
		break;
	case AFTER_NO_JOB:
		p = &ca->set.v[bad];
		fprintf(stderr, "vigil run: --after %s: no job named %s (vigil status lists "
			"them)\n", p->name, p->name);
		break;
	case AFTER_NO_RUN:
		p = &ca->set.v[bad];
		fprintf(stderr, "vigil run: --after %s: %s\n", p->name, p->verdict);
		break;
	}
	return EXIT_USAGE;
}

static void wait_over(void *arg, bool ok, const char *reason)
{
	struct cli_after *ca = arg;

	ca->over = true;
	ca->ok = ok;
	snprintf(ca->why, sizeof(ca->why), "%s", reason ? reason : "");
	loop_stop(ca->s->loop);
}

void cli_after_begin(struct cli_after *ca, struct session *s)
{
	char names[600];
	int r;

	ca->s = s;
	snprintf(ca->why, sizeof(ca->why), "after: interrupted while waiting");
	r = after_start(&ca->set, s->loop, wait_over, ca);
	if (r != 0)
		fprintf(stderr, "vigil run: cannot follow the jobs waited for: %s\n", strerror(-r));
	if (!ca->over) /* else all had ended already: nothing to wait for */
		monitor_after_waiting(s->m, after_names(&ca->set, names, sizeof(names)));
}

/* The run ends before its command: a predecessor failed, or a signal came. */
static void end_failed(struct cli_after *ca, struct session *s)
{
	if (s->signo == SIGTERM) { /* vigil stop: a run ended like any other, told */
		snprintf(ca->why, sizeof(ca->why), "after: stopped while waiting");
		s->signo = 0;
	} else if (s->signo) {
		snprintf(ca->why, sizeof(ca->why), "after: interrupted (signal %d) while waiting",
			 s->signo);
	}
	monitor_after_failed(s->m, ca->why);
}

bool cli_after_wait(struct cli_after *ca)
{
	struct session *s = ca->s;

	if (!ca->over) {
		loop_run(s->loop); /* until wait_over, or a signal */
		after_cancel(&ca->set);
	}
	if (ca->over && ca->ok && !s->signo)
		return true;
	end_failed(ca, s);
	return false;
}

void cli_after_free(struct cli_after *ca)
{
	after_free(&ca->set);
	free(ca->flags);
	memset(ca, 0, sizeof(*ca));
	after_init(&ca->set);
}
