/* expected = auto: the limit a run is armed with, learned from the monitor's
 * run history (base/history.h) when the run begins. */
#include <limits.h>

#include "base/history.h"
#include "base/log.h"
#include "monitor_internal.h"

int64_t monitor_learn_expected(struct monitor *m)
{
	const char *sdir = engine_state_dir(m->engine);
	char dir[PATH_MAX];
	size_t n_ok = 0;

	if (!m->mc->expected_auto)
		return m->mc->expected_ms;
	m->learned_expected_ms = 0;
	/* No state folder (a bare `vigil watch PID`): no history to learn from. */
	if (sdir)
		m->learned_expected_ms = history_learned_expected_for(
			history_dir(sdir, dir, sizeof(dir)), m->name, m->mc->expected_margin, &n_ok);
	if (!m->learned_expected_ms)
		log_msg(LOG_LVL_DEBUG, m->name, "expected = auto: learning (%zu/%d runs)", n_ok,
			HISTORY_LEARN_MIN);
	return m->learned_expected_ms;
}
