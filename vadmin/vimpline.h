/*
 * vimpline - one line of a `vadmin import` file, split and checked
 * without the database (vimport.c does the rest), so that the rule is
 * fuzzed alone (tests/fuzz/fuzz_vimport.c).
 *
 * A line is what getline() read, N bytes with its end of line:
 * `USER@DOMAIN PASSWORD_OR_HASH [QUOTA]`, fields separated by spaces or
 * tabs, trailing CR and LF dropped. vimp_parse() cuts LINE in place and
 * returns VIMP_SKIP (blank, or a first field starting with '#'),
 * VIMP_USER (l filled: local part and domain folded by name_addr, the
 * secret as written, the quota parsed when given), or a refusal:
 * VIMP_NUL (a NUL byte), VIMP_FIELDS (not two or three fields),
 * VIMP_ADDR (*why says how the address is wrong) or VIMP_QUOTA. The
 * secret is judged later, after the database's checks.
 */
#ifndef FACTEUR_VIMPLINE_H
#define FACTEUR_VIMPLINE_H

#include <stddef.h>

#include "quota.h"
#include "str.h"

#define VIMP_SKIP 0
#define VIMP_USER 1
#define VIMP_NUL 2
#define VIMP_FIELDS 3
#define VIMP_ADDR 4
#define VIMP_QUOTA 5

struct vimp_line {
	char *addr, *secret, *qs;	/* into the line; qs NULL: none */
	struct quota q;			/* parsed qs */
};

int vimp_parse(char *line, size_t n, struct vimp_line *l, struct str *local,
	       struct str *domain, const char **why);

#endif
