/*
 * dnscache - DNS answers kept for their time to live, in one process.
 *
 * An MX process checks message after message from the same few senders:
 * the same SPF record, DKIM key and DMARC policy each time. lib/dns asks
 * through a resolver (control/resolvers) that may cache too, but every
 * question still costs a socket round trip and the resolver's work. A
 * resolver made by dns_reuse() keeps each successful answer here, as the
 * wire message c-ares gave, until the smallest TTL of its answer records
 * runs out (at most DNSCACHE_TTL_MAX seconds); an answer without records
 * or with TTL 0 is not kept, nor a failure (NXDOMAIN, SERVFAIL, time-out),
 * so a name that appears is seen at the next question. The table is
 * small and fixed (DNSCACHE_SLOTS answers of at most DNSCACHE_BYTES).
 *
 * dns_answer_ttl() reads the smallest TTL of a DNS message's answer
 * section (RFC 1035 4.1): -EINVAL for a message that is cut short or
 * malformed, -ENODATA when it has no answer record.
 */
#ifndef FACTEUR_DNSCACHE_H
#define FACTEUR_DNSCACHE_H

#include <stddef.h>
#include <stdint.h>

#define DNSCACHE_SLOTS 64
#define DNSCACHE_BYTES 4096
#define DNSCACHE_TTL_MAX 3600

int dns_answer_ttl(const unsigned char *m, size_t n, uint32_t *ttl);
/* dnscache_get - the kept answer to NAME (any case) of TYPE, still valid
 * at NOW_MS: 1 with *m and *n pointing into the table (valid until the next
 * dnscache_put), 0 when there is none */
int dnscache_get(const char *name, int type, int64_t now_ms,
		 const unsigned char **m, size_t *n);
/* dnscache_put - keep answer M of N bytes to NAME/TYPE, received at
 * NOW_MS, when it can be kept (see above); a failure only loses it */
void dnscache_put(const char *name, int type, int64_t now_ms,
		  const unsigned char *m, size_t n);
/* dnscache_clear - forget everything (the resolvers changed) */
void dnscache_clear(void);

#endif
