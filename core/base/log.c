/* See log.h. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *log_prog = "vigil";
static int log_max = LOG_LVL_INFO;
static int log_journal = -1;

/* journald sets JOURNAL_STREAM to "dev:ino" of the stream it gave us. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%lu:%lu", &dev, &ino) != 2 || fstat(2, &st) != 0)
		return 0;
	return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_init(const char *progname, int verbosity)
{
	log_prog = progname;
	log_max = verbosity;
	log_journal = stderr_is_journal();
}

static const char *level_word(int level)
{
	switch (level) {
	case LOG_LVL_ERR: return "error: ";
	case LOG_LVL_WARN: return "warning: ";
	default: return "";
	}
}

void log_vmsg(int level, const char *label, const char *fmt, va_list ap)
{
	char msg[2048];

	if (level > log_max)
		return;
	if (log_journal < 0)
		log_journal = stderr_is_journal();
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_journal)
		fprintf(stderr, "<%d>%s%s%s%s\n", level, label ? label : "", label ? ": " : "",
			level_word(level), msg);
	else
		fprintf(stderr, "%s: %s%s%s%s\n", log_prog, label ? label : "",
			label ? ": " : "", level_word(level), msg);
}

void log_msg(int level, const char *label, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, label, fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	char msg[1536];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(LOG_LVL_WARN, NULL, "%s: %s", msg, strerror(saved));
}

void log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_WARN, NULL, fmt, ap);
	va_end(ap);
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_INFO, NULL, fmt, ap);
	va_end(ap);
}
