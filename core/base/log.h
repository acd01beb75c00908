/* Logging for the agent and the CLI: one line per message on stderr, with a
 * syslog priority prefix ("<4>") when stderr goes to journald, so the journal
 * keeps levels. log_warn appends strerror(errno); log_warnx does not. */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

#include <stdarg.h>

enum { LOG_LVL_ERR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

void log_init(const char *progname, int verbosity); /* verbosity: max level shown */
void log_vmsg(int level, const char *label, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
void log_msg(int level, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
