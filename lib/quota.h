/*
 * quota - Maildir++ quota definitions.
 *
 * A quota is a byte limit and a message limit, 0 meaning none. Parsed from
 * what an admin types (50M, 2G, 100K, 1000000, 1000000S, 500C,
 * 1000000S,500C, NOQUOTA; K, M, G are powers of 2) and formatted the way
 * the first line of maildirsize holds it ("1000000S,500C").
 */
#ifndef FACTEUR_QUOTA_H
#define FACTEUR_QUOTA_H

#include <stdint.h>

#include "str.h"

struct quota {
	uint64_t bytes;
	uint64_t msgs;
};

int quota_parse(const char *s, struct quota *q);
int quota_format(const struct quota *q, struct str *out);

#endif
