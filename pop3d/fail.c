/*
 * fail - failed-login counters shared by all session processes.
 *
 * Each session is its own process, so counts of failed logins per client
 * address and per user name live in one shared anonymous mapping that the
 * parent makes before it forks anything: a fixed table of FAIL_SLOTS
 * slots (96 KiB), each a 64-bit keyed hash of the key, a count and the
 * time of the last failure. A count is forgotten FAIL_WINDOW seconds after
 * its last failure. When the few slots a key may use are all taken, the
 * oldest is reused, so the table never grows and a flood of addresses can
 * only make us forget, never run out of memory. The hash is seeded from
 * getrandom(2) at start-up, so a client cannot aim two keys at one slot.
 *
 * A process-shared robust mutex guards the table: a session killed while
 * it holds the lock hands it to the next one, which takes the table as it
 * is (a half-written slot costs at most one wrong count).
 *
 * What the counts are used for (session.c, pop3d.c): each failed login is
 * answered after fail_delay_ms() of the larger of the address's and the
 * user's counts, and an address with maxfail failures is refused at
 * connect until its count is forgotten.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include "pop3d.h"

#define FAIL_SLOTS 4096		/* a power of two */
#define FAIL_PROBE 8
#define FAIL_DELAY_BASE 250	/* ms after the first failure, doubling */
#define FAIL_DELAY_MAX 5000

struct failslot {
	uint64_t key;		/* 0: free */
	uint32_t count;
	uint32_t pad;
	int64_t last;		/* monotonic s */
};

struct failtab {
	pthread_mutex_t mu;
	uint64_t seed;
	struct failslot slot[FAIL_SLOTS];
};

/* fail_create - the shared table, made before the first fork */
int fail_create(struct failtab **ft_r)
{
	pthread_mutexattr_t ma;
	struct failtab *ft;
	int r;

	ft = mmap(NULL, sizeof *ft, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ft == MAP_FAILED)
		return -errno;
	if (getrandom(&ft->seed, sizeof ft->seed, 0) !=
	    (ssize_t)sizeof ft->seed) {
		r = errno ? -errno : -EIO;
		goto fail;
	}
	r = -pthread_mutexattr_init(&ma);
	if (r == 0) {
		r = -pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
		if (r == 0)
			r = -pthread_mutexattr_setrobust(&ma,
							PTHREAD_MUTEX_ROBUST);
		if (r == 0)
			r = -pthread_mutex_init(&ft->mu, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	if (r < 0)
		goto fail;
	*ft_r = ft;
	return 0;
fail:
	munmap(ft, sizeof *ft);
	return r;
}

/* now_s - monotonic seconds, the same clock in every process */
static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* hash - FNV-1a over the seed and the key, then a 64-bit finaliser;
 * never 0, which marks a free slot */
static uint64_t hash(uint64_t seed, const char *key, size_t len)
{
	uint64_t h = 14695981039346656037ull;
	size_t i;

	for (i = 0; i < 8; i++, seed >>= 8)
		h = (h ^ (seed & 0xff)) * 1099511628211ull;
	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * 1099511628211ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h ? h : 1;
}

/* lock - take the mutex, recovering it from a session that died with it */
static int lock(struct failtab *ft)
{
	int r = pthread_mutex_lock(&ft->mu);

	if (r == EOWNERDEAD)
		r = pthread_mutex_consistent(&ft->mu);
	return r == 0 ? 0 : -r;
}

/* find - the slot of h; with add, a free, stale or the oldest slot for it */
static struct failslot *find(struct failtab *ft, uint64_t h, int64_t now,
			     int add)
{
	struct failslot *best = NULL;
	unsigned i;

	for (i = 0; i < FAIL_PROBE; i++) {
		struct failslot *s = &ft->slot[(h + i) & (FAIL_SLOTS - 1)];

		if (s->key == h) {
			if (now - s->last > FAIL_WINDOW)
				s->count = 0;
			return s;
		}
		if (!add)
			continue;
		if (s->key == 0 || now - s->last > FAIL_WINDOW) {
			if (!best || best->key != 0)
				best = s;
		} else if (!best || (best->key != 0 && s->last < best->last)) {
			best = s;
		}
	}
	if (best) {
		best->key = h;
		best->count = 0;
		best->last = now;
	}
	return best;
}

/* fail_get - failures recorded under key in the last FAIL_WINDOW s */
unsigned fail_get(struct failtab *ft, const char *key, size_t len)
{
	struct failslot *s;
	unsigned n = 0;

	if (!ft || lock(ft) < 0)
		return 0;
	s = find(ft, hash(ft->seed, key, len), now_s(), 0);
	if (s)
		n = s->count;
	pthread_mutex_unlock(&ft->mu);
	return n;
}

/* fail_add - one more failure under key; returns the new count */
unsigned fail_add(struct failtab *ft, const char *key, size_t len)
{
	int64_t now = now_s();
	struct failslot *s;
	unsigned n = 1;

	if (!ft || lock(ft) < 0)
		return n;
	s = find(ft, hash(ft->seed, key, len), now, 1);
	if (s) {
		if (s->count < UINT32_MAX)
			s->count++;
		s->last = now;
		n = s->count;
	}
	pthread_mutex_unlock(&ft->mu);
	return n;
}

/* fail_delay_ms - how long to hold back the answer to a failed login
 * after `fails` failures: 250 ms doubling up to 5 s, enough to make
 * guessing slow and too little to bother someone who mistyped */
unsigned fail_delay_ms(unsigned fails)
{
	unsigned d = FAIL_DELAY_BASE;

	if (fails == 0)
		return 0;
	while (--fails && d < FAIL_DELAY_MAX)
		d *= 2;
	return d < FAIL_DELAY_MAX ? d : FAIL_DELAY_MAX;
}
