/*
 * dnscache - see dnscache.h
 */
#include "dnscache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HDR 12			/* RFC 1035 4.1.1 */

/* skip_name - past the (possibly compressed) name at *P: 0, -EINVAL */
static int skip_name(const unsigned char *m, size_t n, size_t *p)
{
	size_t i = *p, labels = 0;

	for (;;) {
		if (i >= n || ++labels > 128)
			return -EINVAL;
		if ((m[i] & 0xc0) == 0xc0) {	/* a pointer ends the name */
			if (i + 2 > n)
				return -EINVAL;
			*p = i + 2;
			return 0;
		}
		if (m[i] & 0xc0)
			return -EINVAL;	/* 01 and 10: no such label types */
		if (m[i] == 0) {
			*p = i + 1;
			return 0;
		}
		i += 1 + (size_t)m[i];
	}
}

static unsigned get16(const unsigned char *b)
{
	return (unsigned)b[0] << 8 | b[1];
}

/* dns_answer_ttl - see dnscache.h */
int dns_answer_ttl(const unsigned char *m, size_t n, uint32_t *ttl)
{
	unsigned qd, an, k;
	size_t p = HDR;
	uint32_t least = UINT32_MAX;

	if (n < HDR)
		return -EINVAL;
	qd = get16(m + 4);
	an = get16(m + 6);
	for (k = 0; k < qd; k++) {
		if (skip_name(m, n, &p) < 0 || p + 4 > n)
			return -EINVAL;
		p += 4;		/* type, class */
	}
	for (k = 0; k < an; k++) {
		uint32_t t;

		if (skip_name(m, n, &p) < 0 || p + 10 > n)
			return -EINVAL;
		t = (uint32_t)m[p + 4] << 24 | (uint32_t)m[p + 5] << 16 |
		    (uint32_t)m[p + 6] << 8 | m[p + 7];
		if (t & 0x80000000u)	/* RFC 2181 8: such a TTL means 0 */
			t = 0;
		if (t < least)
			least = t;
		p += 10 + get16(m + p + 8);
		if (p > n)
			return -EINVAL;
	}
	if (!an)
		return -ENODATA;
	*ttl = least;
	return 0;
}

static struct slot {
	int type;
	char *name;
	unsigned char *m;
	size_t n;
	int64_t until;		/* now_ms() at which it expires */
} slots[DNSCACHE_SLOTS];
static size_t next_slot;	/* taken when no slot is free or expired */

/* dnscache_get - see dnscache.h */
int dnscache_get(const char *name, int type, int64_t now_ms,
		 const unsigned char **m, size_t *n)
{
	size_t i;

	for (i = 0; i < DNSCACHE_SLOTS; i++) {
		struct slot *s = &slots[i];

		if (s->name && s->type == type && now_ms < s->until &&
		    strcasecmp(s->name, name) == 0) {
			*m = s->m;
			*n = s->n;
			return 1;
		}
	}
	return 0;
}

static void slot_free(struct slot *s)
{
	free(s->name);
	free(s->m);
	memset(s, 0, sizeof *s);
}

/* pick - where a new answer to NAME/TYPE goes: its old slot, a free or
 * expired one, else the next in turn */
static struct slot *pick(const char *name, int type, int64_t now_ms)
{
	size_t i;

	for (i = 0; i < DNSCACHE_SLOTS; i++)
		if (slots[i].name && slots[i].type == type &&
		    strcasecmp(slots[i].name, name) == 0)
			return &slots[i];
	for (i = 0; i < DNSCACHE_SLOTS; i++)
		if (!slots[i].name || now_ms >= slots[i].until)
			return &slots[i];
	i = next_slot;
	next_slot = (next_slot + 1) % DNSCACHE_SLOTS;
	return &slots[i];
}

/* dnscache_put - see dnscache.h */
void dnscache_put(const char *name, int type, int64_t now_ms,
		  const unsigned char *m, size_t n)
{
	struct slot *s;
	uint32_t ttl;

	if (n > DNSCACHE_BYTES || dns_answer_ttl(m, n, &ttl) < 0 || !ttl)
		return;
	if (ttl > DNSCACHE_TTL_MAX)
		ttl = DNSCACHE_TTL_MAX;
	s = pick(name, type, now_ms);
	slot_free(s);
	s->name = strdup(name);
	s->m = malloc(n);
	if (!s->name || !s->m) {
		slot_free(s);
		return;
	}
	memcpy(s->m, m, n);
	s->n = n;
	s->type = type;
	s->until = now_ms + (int64_t)ttl * 1000;
}

/* dnscache_clear - see dnscache.h */
void dnscache_clear(void)
{
	size_t i;

	for (i = 0; i < DNSCACHE_SLOTS; i++)
		slot_free(&slots[i]);
}
