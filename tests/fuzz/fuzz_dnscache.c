/*
 * fuzz_dnscache - libFuzzer target for lib/dnscache: dns_answer_ttl() on
 * any bytes as a DNS answer from the network, and the cache fed with them.
 *
 * Checks: dns_answer_ttl() returns 0, -EINVAL or -ENODATA only; a TTL it
 * reports never has the top bit set (RFC 2181 8); an answer the cache
 * keeps comes back byte for byte, and only while its TTL lasts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnscache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *got;
	size_t n = 0;
	uint32_t ttl = 0;
	int r = dns_answer_ttl(data, size, &ttl), hit;

	if (r != 0 && r != -EINVAL && r != -ENODATA)
		abort();
	if (r == 0 && (ttl & 0x80000000u))
		abort();
	dnscache_put("f.test", 16, 1000, data, size);
	hit = dnscache_get("F.test", 16, 1000, &got, &n);
	if (hit && (n != size || memcmp(got, data, size)))
		abort();
	if (hit && (r != 0 || ttl == 0))
		abort();	/* kept what must not be */
	if (hit && dnscache_get("f.test", 16,
				1000 + (int64_t)(ttl > DNSCACHE_TTL_MAX ?
						 DNSCACHE_TTL_MAX : ttl) * 1000,
				&got, &n))
		abort();	/* outlived its TTL */
	dnscache_clear();
	return 0;
}
