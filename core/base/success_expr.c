/* The `success` expression: a recursive-descent parser into a flat node array,
 * evaluated in Kleene's three-valued logic. */
#include "success_expr.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for any honest expression, shallow enough for the stack. */
#define SUCCESS_EXPR_MAX_DEPTH 64

enum node_kind { NODE_FACT, NODE_NOT, NODE_AND, NODE_OR };
enum fact { FACT_EXIT, FACT_FILE, FACT_SUCCESS, FACT_FAILURE };

struct node {
	enum node_kind kind;
	enum fact fact;   /* NODE_FACT */
	int left, right;  /* indexes into nodes[]; NOT uses left */
};

struct success_expr {
	struct node *nodes;
	size_t n, cap;
	int root;
};

enum tok_kind { TOK_END, TOK_LPAREN, TOK_RPAREN, TOK_WORD, TOK_BAD };

struct parser {
	const char *text;
	size_t pos;          /* just after the current token */
	enum tok_kind tok;
	size_t tok_start, tok_len;
	unsigned depth;
	struct success_expr *e;
	char *err;
	size_t errlen;
	int rc;              /* first error: -EINVAL or -ENOMEM */
};

static const char *const fact_names[] = {
	[FACT_EXIT] = "exit", [FACT_FILE] = "file",
	[FACT_SUCCESS] = "success", [FACT_FAILURE] = "failure",
};

static int is_word_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

static void parser_next(struct parser *p)
{
	const char *t = p->text;
	size_t i = p->pos;

	while (t[i] == ' ' || t[i] == '\t')
		i++;
	p->tok_start = i;
	if (t[i] == '\0') {
		p->tok = TOK_END;
	} else if (t[i] == '(' || t[i] == ')') {
		p->tok = t[i] == '(' ? TOK_LPAREN : TOK_RPAREN;
		i++;
	} else if (is_word_char(t[i])) {
		p->tok = TOK_WORD;
		while (is_word_char(t[i]))
			i++;
	} else {
		/* a run of anything else, so that "&&" is reported whole */
		p->tok = TOK_BAD;
		while (t[i] && t[i] != ' ' && t[i] != '\t' && t[i] != '(' && t[i] != ')' &&
		       !is_word_char(t[i]))
			i++;
	}
	p->tok_len = i - p->tok_start;
	p->pos = i;
}

static int tok_is(const struct parser *p, const char *word)
{
	return p->tok == TOK_WORD && strlen(word) == p->tok_len &&
	       memcmp(p->text + p->tok_start, word, p->tok_len) == 0;
}

/* Report the current token as unexpected; `expected` may be NULL. */
static int parser_fail(struct parser *p, const char *expected)
{
	unsigned col = (unsigned)p->tok_start + 1;

	if (p->rc)
		return p->rc;
	p->rc = -EINVAL;
	if (p->tok == TOK_END)
		snprintf(p->err, p->errlen, "unexpected end of expression at column %u%s%s%s",
			 col, expected ? " (expected " : "", expected ? expected : "",
			 expected ? ")" : "");
	else
		snprintf(p->err, p->errlen, "unexpected \"%.*s\" at column %u%s%s%s",
			 (int)p->tok_len, p->text + p->tok_start, col,
			 expected ? " (expected " : "", expected ? expected : "",
			 expected ? ")" : "");
	return p->rc;
}

/* Append a node; its index, or -1 (p->rc set) when out of memory. */
static int node_add(struct parser *p, enum node_kind kind, enum fact fact, int left, int right)
{
	struct success_expr *e = p->e;

	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		struct node *n = realloc(e->nodes, cap * sizeof(*n));

		if (!n) {
			p->rc = -ENOMEM;
			snprintf(p->err, p->errlen, "out of memory");
			return -1;
		}
		e->nodes = n;
		e->cap = cap;
	}
	e->nodes[e->n] = (struct node){ .kind = kind, .fact = fact, .left = left, .right = right };
	return (int)e->n++;
}

static int parse_or(struct parser *p);

static int parse_primary(struct parser *p)
{
	static const char expect_operand[] = "exit, file, success, failure, not or \"(\"";
	int idx;

	if (p->tok == TOK_LPAREN) {
		parser_next(p);
		idx = parse_or(p);
		if (idx < 0)
			return -1;
		if (p->tok != TOK_RPAREN) {
			parser_fail(p, "\")\"");
			return -1;
		}
		parser_next(p);
		return idx;
	}
	for (size_t f = 0; f < sizeof(fact_names) / sizeof(fact_names[0]); f++) {
		if (tok_is(p, fact_names[f])) {
			parser_next(p);
			return node_add(p, NODE_FACT, (enum fact)f, -1, -1);
		}
	}
	parser_fail(p, expect_operand);
	return -1;
}

static int parse_not(struct parser *p)
{
	int idx;

	if (++p->depth > SUCCESS_EXPR_MAX_DEPTH) {
		p->rc = -EINVAL;
		snprintf(p->err, p->errlen, "expression nested too deeply at column %u",
			 (unsigned)p->tok_start + 1);
		return -1;
	}
	if (tok_is(p, "not")) {
		parser_next(p);
		idx = parse_not(p);
		if (idx >= 0)
			idx = node_add(p, NODE_NOT, FACT_EXIT, idx, -1);
	} else {
		idx = parse_primary(p);
	}
	p->depth--;
	return idx;
}

static int parse_and(struct parser *p)
{
	int left = parse_not(p);

	while (left >= 0 && tok_is(p, "and")) {
		parser_next(p);
		int right = parse_not(p);

		if (right < 0)
			return -1;
		left = node_add(p, NODE_AND, FACT_EXIT, left, right);
	}
	return left;
}

static int parse_or(struct parser *p)
{
	int left = parse_and(p);

	while (left >= 0 && tok_is(p, "or")) {
		parser_next(p);
		int right = parse_and(p);

		if (right < 0)
			return -1;
		left = node_add(p, NODE_OR, FACT_EXIT, left, right);
	}
	return left;
}

int success_expr_parse(const char *text, struct success_expr **out, char *err, size_t errlen)
{
	struct parser p = { .text = text, .err = err, .errlen = errlen };
	int root;

	*out = NULL;
	p.e = calloc(1, sizeof(*p.e));
	if (!p.e) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	parser_next(&p);
	root = parse_or(&p);
	if (root >= 0 && p.tok != TOK_END)
		parser_fail(&p, "\"and\" or \"or\"");
	if (root < 0 || p.rc) {
		success_expr_free(p.e);
		return p.rc ? p.rc : -EINVAL;
	}
	p.e->root = root;
	*out = p.e;
	return 0;
}

static enum tri fact_value(enum fact fact, const struct success_facts *f)
{
	switch (fact) {
	case FACT_EXIT:
		return f->exit;
	case FACT_FILE:
		return f->file;
	case FACT_SUCCESS:
		return f->success;
	case FACT_FAILURE:
		return f->failure;
	}
	return TRI_UNKNOWN;
}

static enum tri eval_node(const struct success_expr *e, int idx, const struct success_facts *f)
{
	const struct node *n = &e->nodes[idx];
	enum tri a, b;

	switch (n->kind) {
	case NODE_FACT:
		return fact_value(n->fact, f);
	case NODE_NOT:
		a = eval_node(e, n->left, f);
		return a == TRI_UNKNOWN ? TRI_UNKNOWN : a == TRI_TRUE ? TRI_FALSE : TRI_TRUE;
	case NODE_AND:
		a = eval_node(e, n->left, f);
		b = eval_node(e, n->right, f);
		if (a == TRI_FALSE || b == TRI_FALSE)
			return TRI_FALSE;
		return a == TRI_TRUE && b == TRI_TRUE ? TRI_TRUE : TRI_UNKNOWN;
	case NODE_OR:
		a = eval_node(e, n->left, f);
		b = eval_node(e, n->right, f);
		if (a == TRI_TRUE || b == TRI_TRUE)
			return TRI_TRUE;
		return a == TRI_FALSE && b == TRI_FALSE ? TRI_FALSE : TRI_UNKNOWN;
	}
	return TRI_UNKNOWN;
}

enum tri success_expr_eval(const struct success_expr *e, const struct success_facts *f)
{
	return eval_node(e, e->root, f);
}

void success_expr_free(struct success_expr *e)
{
	if (!e)
		return;
	free(e->nodes);
	free(e);
}
