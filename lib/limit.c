/*
 * limit - failed-login counters and the session table, shared by the
 * session processes of one server (see limit.h).
 *
 * The counters sit behind a process-shared robust mutex: a session killed
 * while it holds the lock hands it to the next one, which takes the table
 * as it is (a half-written slot costs at most one wrong count). Times are
 * CLOCK_MONOTONIC seconds, the same clock in every process and deaf to a
 * change of the system time.
 */
#include "limit.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include "peer.h"

#define DELAY_FIRST_MS 250	/* after the first failure, doubling */
#define DELAY_MAX_MS 5000

struct limit_slot {
	uint64_t key;		/* 0: free */
	uint32_t count;
	int64_t last;		/* monotonic s of the last failure */
	uint64_t seq;		/* the table's tick then: finer than last */
};

struct limit {
	pthread_mutex_t mu;
	uint64_t seed;
	int64_t window;
	uint64_t tick;		/* failures counted so far */
	struct limit_slot slot[LIMIT_SLOTS];
};

/* mapping - zeroed memory that the processes forked later share */
static void *mapping(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* mutex_init - a lock for processes, robust against a holder's death */
static int mutex_init(pthread_mutex_t *mu)
{
	pthread_mutexattr_t ma;
	int r = pthread_mutexattr_init(&ma);

	if (r == 0) {
		r = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
		if (r == 0)
			r = pthread_mutexattr_setrobust(&ma,
							PTHREAD_MUTEX_ROBUST);
		if (r == 0)
			r = pthread_mutex_init(mu, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	return -r;
}

/* limit_new - the shared counters, made before the first fork */
int limit_new(unsigned window, struct limit **l_r)
{
	struct limit *l = mapping(sizeof *l);
	int r;

	if (!l)
		return -errno;
	if (getrandom(&l->seed, sizeof l->seed, 0) != (ssize_t)sizeof l->seed) {
		r = errno ? -errno : -EIO;
		goto fail;
	}
	l->window = window;
	r = mutex_init(&l->mu);
	if (r < 0)
		goto fail;
	*l_r = l;
	return 0;
fail:
	munmap(l, sizeof *l);
	return r;
}

/* limit_free - unmap the counters (in this process) */
void limit_free(struct limit **l)
{
	if (*l)
		munmap(*l, sizeof **l);
	*l = NULL;
}

/* now_s - monotonic seconds */
static int64_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* mix - FNV-1a-64 of more bytes */
static uint64_t mix(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

/* hash - the seed, a kind byte that keeps address keys apart from the
 * others, the key, then a 64-bit finaliser; never 0 (a free slot) */
static uint64_t hash(const struct limit *l, char kind, const void *key,
		     size_t len)
{
	uint64_t h = 14695981039346656037ull;

	h = mix(h, &l->seed, sizeof l->seed);
	h = mix(h, &kind, 1);
	h = mix(h, key, len);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h ? h : 1;
}

/* lock - take the mutex, recovering it from a process that died with it */
static int lock(struct limit *l)
{
	int r = pthread_mutex_lock(&l->mu);

	if (r == EOWNERDEAD)
		r = pthread_mutex_consistent(&l->mu);
	return -r;
}

/* worse - whether slot a is a better victim than slot b: free or
 * forgotten first, then the fewest failures, then the least recent */
static int worse(const struct limit *l, const struct limit_slot *a,
		 const struct limit_slot *b, int64_t now)
{
	int a_gone = !a->key || now - a->last > l->window;
	int b_gone = !b->key || now - b->last > l->window;

	if (a_gone != b_gone)
		return a_gone;
	if (a_gone)
		return 0;
	if (a->count != b->count)
		return a->count < b->count;
	return a->seq < b->seq;
}

/* find - the slot of h; with add, the best victim of its probe window,
 * taken over for h with no failures */
static struct limit_slot *find(struct limit *l, uint64_t h, int64_t now,
			       int add)
{
	struct limit_slot *best = NULL, *s;
	unsigned i;

	for (i = 0; i < LIMIT_PROBE; i++) {
		s = &l->slot[(h + i) & (LIMIT_SLOTS - 1)];
		if (s->key == h) {
			if (now - s->last > l->window)
				s->count = 0;
			return s;
		}
		if (add && (!best || worse(l, s, best, now)))
			best = s;
	}
	if (best) {
		best->key = h;
		best->count = 0;
		best->last = now;
	}
	return best;
}

/* count - the failures of one hashed key, one more with add */
static unsigned count(struct limit *l, uint64_t h, int add)
{
	int64_t now = now_s();
	struct limit_slot *s;
	unsigned n = add;

	if (!l || lock(l) < 0)
		return n;
	s = find(l, h, now, add);
	if (s && add) {
		if (s->count < UINT32_MAX)
			s->count++;
		s->last = now;
		s->seq = ++l->tick;
	}
	if (s)
		n = s->count;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* ip_hash - the hash of a client's group */
static uint64_t ip_hash(const struct limit *l, const char *ip)
{
	struct peer_group g;
	unsigned char b[9];
	int i;

	peer_group(ip, &g);
	b[0] = (unsigned char)g.fam;
	for (i = 0; i < 8; i++)
		b[1 + i] = (unsigned char)(g.bits >> (56 - 8 * i));
	return hash(l, 'i', b, sizeof b);
}

/* limit_add_ip - one more failure of the client at ip */
unsigned limit_add_ip(struct limit *l, const char *ip)
{
	return l ? count(l, ip_hash(l, ip), 1) : 1;
}

/* limit_get_ip - the recent failures of the client at ip */
unsigned limit_get_ip(struct limit *l, const char *ip)
{
	return l ? count(l, ip_hash(l, ip), 0) : 0;
}

/* limit_slot_ip - where the key of the client at ip starts */
size_t limit_slot_ip(const struct limit *l, const char *ip)
{
	return (size_t)(ip_hash(l, ip) & (LIMIT_SLOTS - 1));
}

/* limit_add - one more failure under another key */
unsigned limit_add(struct limit *l, const void *key, size_t len)
{
	return l ? count(l, hash(l, 'k', key, len), 1) : 1;
}

/* limit_get - the recent failures under another key */
unsigned limit_get(struct limit *l, const void *key, size_t len)
{
	return l ? count(l, hash(l, 'k', key, len), 0) : 0;
}

/* limit_delay_ms - how long to hold back a login after `fails` failures:
 * enough to make guessing slow, too little to bother someone who
 * mistyped or shares an address with a guesser */
unsigned limit_delay_ms(unsigned fails)
{
	unsigned d = DELAY_FIRST_MS;

	if (fails == 0)
		return 0;
	while (--fails && d < DELAY_MAX_MS)
		d *= 2;
	return d < DELAY_MAX_MS ? d : DELAY_MAX_MS;
}

/* --- the session table ------------------------------------------------ */

struct sess_slot {
	int busy;		/* atomic: counted */
	unsigned fam;		/* atomic: the client's peer_group */
	uint64_t bits;		/* atomic */
};

struct limit_sess {
	size_t n;
	struct sess_slot s[];
};

/* limit_sess_new - N slots, shared with the processes forked later */
int limit_sess_new(size_t n, struct limit_sess **t_r)
{
	struct limit_sess *t;

	if (n > (SIZE_MAX - sizeof *t) / sizeof t->s[0])
		return -ENOMEM;
	t = mapping(sizeof *t + n * sizeof t->s[0]);
	if (!t)
		return -errno;
	t->n = n;
	*t_r = t;
	return 0;
}

/* limit_sess_free - unmap the table (in this process) */
void limit_sess_free(struct limit_sess **t)
{
	if (*t)
		munmap(*t, sizeof **t + (*t)->n * sizeof (*t)->s[0]);
	*t = NULL;
}

/* limit_sess_enter - slot i serves the client at ip: the group is
 * written before the slot counts, so no reader sees a stale group */
void limit_sess_enter(struct limit_sess *t, size_t i, const char *ip)
{
	struct peer_group g;

	if (!t || i >= t->n)
		return;
	peer_group(ip, &g);
	__atomic_store_n(&t->s[i].fam, g.fam, __ATOMIC_RELAXED);
	__atomic_store_n(&t->s[i].bits, g.bits, __ATOMIC_RELAXED);
	__atomic_store_n(&t->s[i].busy, 1, __ATOMIC_RELEASE);
}

/* limit_sess_leave - slot i serves nobody */
void limit_sess_leave(struct limit_sess *t, size_t i)
{
	if (t && i < t->n)
		__atomic_store_n(&t->s[i].busy, 0, __ATOMIC_RELEASE);
}

/* limit_sess_busy - whether slot i is in a session */
int limit_sess_busy(const struct limit_sess *t, size_t i)
{
	return i < t->n && __atomic_load_n(&t->s[i].busy, __ATOMIC_ACQUIRE);
}

/* limit_sess_count - sessions among the first n slots, in all and from
 * ip's group */
void limit_sess_count(const struct limit_sess *t, size_t n, const char *ip,
		      size_t *all_r, size_t *same_r)
{
	struct peer_group g;
	size_t i, all = 0, same = 0;

	peer_group(ip, &g);
	for (i = 0; i < n && i < t->n; i++) {
		const struct sess_slot *s = &t->s[i];

		if (!__atomic_load_n(&s->busy, __ATOMIC_ACQUIRE))
			continue;
		all++;
		same += __atomic_load_n(&s->fam, __ATOMIC_RELAXED) == g.fam &&
			__atomic_load_n(&s->bits, __ATOMIC_RELAXED) == g.bits;
	}
	*all_r = all;
	*same_r = same;
}
