/* Cron expressions for `schedule =` (the times a recurring job should start):
 * five fields (minute hour day-of-month month day-of-week), or six with the
 * seconds first, or one of @yearly @annually @monthly @weekly @daily
 * @midnight @hourly. Each field: `*`, N, N-M, lists (a,b), steps (*\/S, N-M/S,
 * N/S), month and day names (jan..dec, sun..sat; 7 is Sunday too). As in
 * Vixie cron, when both day fields are restricted a day matching either
 * counts. Times are local (the TZ of the process), like cron's; a time that
 * a clock change skips (02:30 on the night clocks go forward) does not come
 * that day. libc only. */
#ifndef VIGIL_CRON_H
#define VIGIL_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cron {
	uint64_t sec, min;      /* bit n: second / minute n */
	uint32_t hour, dom;     /* hour 0-23; day of month 1-31 */
	uint16_t month;         /* 1-12 */
	uint8_t dow;            /* 0-6, Sunday 0 */
	bool dom_any, dow_any;  /* the field was `*` (or a step over all of it) */
};

/* Parse text into *c: 0, or -EINVAL with the reason in err (the field and
 * what is wrong with it). */
int cron_parse(struct cron *c, const char *text, char *err, size_t errlen);

/* The first time strictly after `after` (seconds since the epoch) that c
 * matches, or -1 when none comes within the next 5 years (Feb 30). */
time_t cron_next(const struct cron *c, time_t after);

#endif
