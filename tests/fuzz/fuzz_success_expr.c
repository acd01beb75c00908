/* libFuzzer target: the `success` expression (core/base/success_expr.h).
 * Any text is parsed; what compiles is evaluated on all 81 combinations of
 * the four facts. Properties, beyond no crash / leak / sanitizer report:
 * - with every fact known, the result is known (two-valued logic);
 * - Kleene's logic is monotone: when a result is known, settling any unknown
 *   fact to true or false never changes it;
 * - a failed parse leaves a message in err. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/success_expr.h"
#include "fuzz_util.h"

#define N_FACTS 4

static enum tri eval_combo(const struct success_expr *e, const enum tri v[N_FACTS])
{
	const struct success_facts f = {v[0], v[1], v[2], v[3]};
	enum tri r = success_expr_eval(e, &f);

	if (r != TRI_FALSE && r != TRI_TRUE && r != TRI_UNKNOWN)
		abort();
	return r;
}

/* Settle each unknown fact of v both ways: a known result must not move. */
static void check_monotone(const struct success_expr *e, enum tri v[N_FACTS], enum tri r)
{
	bool known = true;

	for (int i = 0; i < N_FACTS; i++) {
		if (v[i] != TRI_UNKNOWN)
			continue;
		known = false;
		for (enum tri t = TRI_FALSE; t <= TRI_TRUE; t++) {
			v[i] = t;
			if (r != TRI_UNKNOWN && eval_combo(e, v) != r)
				abort();
		}
		v[i] = TRI_UNKNOWN;
	}
	if (known && r == TRI_UNKNOWN)
		abort();
}

static void check_all(const struct success_expr *e)
{
	enum tri v[N_FACTS];

	for (int c = 0; c < 81; c++) {
		for (int i = 0, k = c; i < N_FACTS; i++, k /= 3)
			v[i] = (enum tri)(k % 3);
		check_monotone(e, v, eval_combo(e, v));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = strndup((const char *)data, size);
	struct success_expr *e = NULL;
	char err[256] = "";

	if (!text)
		return 0;
	if (success_expr_parse(text, &e, err, sizeof(err)) == 0) {
		check_all(e);
		success_expr_free(e);
	} else if (!err[0]) {
		abort(); /* refused without saying why */
	}
	free(text);
	return 0;
}
