/* The `success` expression: a recursive-descent parser into a flat node array,
 * evaluated in Kleene's three-valued logic. An and/or chain is one node with a
 * list of operands, so that both parsing and evaluation recurse only as deep as
 * the parentheses and `not`s (bounded), never once per term of a long chain. */
#include "success_expr.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for any honest expression, shallow enough for the stack. */
#define SUCCESS_EXPR_MAX_DEPTH 64
/* Four facts need a handful of terms; the bound keeps a hostile file cheap. */
#define SUCCESS_EXPR_MAX_TERMS 1000

enum node_kind { NODE_FACT, NODE_NOT, NODE_AND, NODE_OR };
enum fact { FACT_EXIT, FACT_FILE, FACT_SUCCESS, FACT_FAILURE };

struct node {
	enum node_kind kind;
	enum fact fact;   /* NODE_FACT */
	int first;        /* NOT: the operand's node; AND, OR: the first in operands[] */
	int count;        /* AND, OR: how many operands */
};

struct success_expr {
	struct node *nodes;
	size_t n, cap;
	int *operands;    /* node indexes, each chain's operands contiguous */
	size_t n_operands;
	int root;
};

enum tok_kind { TOK_END, TOK_LPAREN, TOK_RPAREN, TOK_WORD, TOK_BAD };

struct parser {
	const char *text;
	size_t pos;          /* just after the current token */
	enum tok_kind tok;
	size_t tok_start, tok_len;
	unsigned depth;
	unsigned terms;
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

static int parser_oom(struct parser *p)
{
	p->rc = -ENOMEM;
	snprintf(p->err, p->errlen, "out of memory");
	return -1;
}

/* Append a node; its index, or -1 (p->rc set) when out of memory. */
static int node_add(struct parser *p, enum node_kind kind, enum fact fact, int first, int count)
{
	struct success_expr *e = p->e;

	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		struct node *n = realloc(e->nodes, cap * sizeof(*n));

		if (!n)
			return parser_oom(p);
		e->nodes = n;
		e->cap = cap;
	}
	e->nodes[e->n] = (struct node){ .kind = kind, .fact = fact, .first = first, .count = count };
	return (int)e->n++;
}

/* One term more; -1 (p->rc set) past the limit, so that `vigil check` refuses
 * what would only cost memory and time. */
static int parser_count_term(struct parser *p)
{
	if (++p->terms <= SUCCESS_EXPR_MAX_TERMS)
		return 0;
	p->rc = -EINVAL;
	snprintf(p->err, p->errlen, "expression too long at column %u (at most %d terms)",
		 (unsigned)p->tok_start + 1, SUCCESS_EXPR_MAX_TERMS);
	return -1;
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
			if (parser_count_term(p))
				return -1;
			parser_next(p);
			return node_add(p, NODE_FACT, (enum fact)f, -1, 0);
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
			idx = node_add(p, NODE_NOT, FACT_EXIT, idx, 1);
	} else {
		idx = parse_primary(p);
	}
	p->depth--;
	return idx;
}

struct operand_list {
	int *v;
	size_t n, cap;
};

static int operand_push(struct parser *p, struct operand_list *l, int idx)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		int *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return parser_oom(p);
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = idx;
	return 0;
}

/* The chain's operands go to the end of e->operands (after any nested chain's,
 * which were stored while parsing them): one contiguous run per chain. */
static int chain_node(struct parser *p, enum node_kind kind, const struct operand_list *l)
{
	struct success_expr *e = p->e;
	int *v = realloc(e->operands, (e->n_operands + l->n) * sizeof(*v));
	int first = (int)e->n_operands;

	if (!v)
		return parser_oom(p);
	e->operands = v;
	memcpy(v + first, l->v, l->n * sizeof(*v));
	e->n_operands += l->n;
	return node_add(p, kind, FACT_EXIT, first, (int)l->n);
}

/* operand (WORD operand)*: one node, or the single operand when WORD is absent. */
static int parse_chain(struct parser *p, const char *word, enum node_kind kind,
		       int (*operand)(struct parser *))
{
	struct operand_list l = { 0 };
	int idx = operand(p);

	while (idx >= 0 && tok_is(p, word)) {
		parser_next(p);
		if (operand_push(p, &l, idx) != 0)
			idx = -1;
		else
			idx = operand(p);
	}
	if (idx >= 0 && l.n)
		idx = operand_push(p, &l, idx) == 0 ? chain_node(p, kind, &l) : -1;
	free(l.v);
	return idx;
}

static int parse_and(struct parser *p)
{
	return parse_chain(p, "and", NODE_AND, parse_not);
}

static int parse_or(struct parser *p)
{
	return parse_chain(p, "or", NODE_OR, parse_and);
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

static enum tri eval_node(const struct success_expr *e, int idx, const struct success_facts *f);

/* Kleene: for AND, false decides and unknown is kept; OR is the dual. */
static enum tri eval_chain(const struct success_expr *e, const struct node *n,
			   const struct success_facts *f)
{
	enum tri decides = n->kind == NODE_AND ? TRI_FALSE : TRI_TRUE;
	enum tri r = n->kind == NODE_AND ? TRI_TRUE : TRI_FALSE;

	for (int i = 0; i < n->count; i++) {
		enum tri a = eval_node(e, e->operands[n->first + i], f);

		if (a == decides)
			return decides;
		if (a == TRI_UNKNOWN)
			r = TRI_UNKNOWN;
	}
	return r;
}

static enum tri eval_node(const struct success_expr *e, int idx, const struct success_facts *f)
{
	const struct node *n = &e->nodes[idx];
	enum tri a;

	switch (n->kind) {
	case NODE_FACT:
		return fact_value(n->fact, f);
	case NODE_NOT:
		a = eval_node(e, n->first, f);
		return a == TRI_UNKNOWN ? TRI_UNKNOWN : a == TRI_TRUE ? TRI_FALSE : TRI_TRUE;
	case NODE_AND:
	case NODE_OR:
		return eval_chain(e, n, f);
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
	free(e->operands);
	free(e);
}
