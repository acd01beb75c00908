/* The `success` expression of a monitor (DESIGN.md, "How finished is decided"):
 * exit, file, success and failure combined with and, or, not and parentheses,
 * evaluated in Kleene's three-valued logic so that an unknown exit status
 * stays unknown unless the other facts decide. Precedence: not > and > or. */
#ifndef VIGIL_SUCCESS_EXPR_H
#define VIGIL_SUCCESS_EXPR_H

#include <stddef.h>

struct success_expr;

enum tri { TRI_FALSE = 0, TRI_TRUE = 1, TRI_UNKNOWN = 2 };

/* What the run showed. exit: status 0 (unknown when the status is unknown);
 * file: every expected file present; success: the success pattern seen;
 * failure: a failure line seen. */
struct success_facts {
	enum tri exit;
	enum tri file;
	enum tri success;
	enum tri failure;
};

/* Compile `text`. 0, -EINVAL with e.g. `unexpected "xor" at column 10` in err,
 * or -ENOMEM. */
int success_expr_parse(const char *text, struct success_expr **out, char *err, size_t errlen);
enum tri success_expr_eval(const struct success_expr *e, const struct success_facts *f);
void success_expr_free(struct success_expr *e);

#endif
