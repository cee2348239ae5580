/*
 * limit - failed-login counters and session table (see limit.h). The
 * counters sit behind a robust process-shared mutex: a session killed
 * holding it hands it on (a half-written slot costs one wrong count at
 * most). Times are CLOCK_MONOTONIC s: one clock for every process.
 */
#include "limit.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
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

	if (r)
		return -r;
	if (!(r = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED)) &&
	    !(r = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST)))
		r = pthread_mutex_init(mu, &ma);
	pthread_mutexattr_destroy(&ma);
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
	uint64_t h = mix(mix(mix(14695981039346656037ull, &l->seed,
				 sizeof l->seed), &kind, 1), key, len);

	h = (h ^ h >> 33) * 0xff51afd7ed558ccdull;
	h = (h ^ h >> 33) * 0xc4ceb9fe1a85ec53ull;
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

/* victim - whether slot s is a better one to take over than best: free
 * (forgotten ones are freed on the way), then the fewest failures, then
 * the least recent */
static int victim(const struct limit_slot *s, const struct limit_slot *best)
{
	if (!best || !s->key || !best->key)
		return !best || (!s->key && best->key);
	return s->count < best->count ||
	       (s->count == best->count && s->seq < best->seq);
}

/* find - the slot of h, else (with add) the best victim of its probe
 * window, taken over for h with no failures */
static struct limit_slot *find(struct limit *l, uint64_t h, int64_t now,
			       int add)
{
	struct limit_slot *best = NULL, *s;
	unsigned i;

	for (i = 0; i < LIMIT_PROBE; i++) {
		s = &l->slot[(h + i) & (LIMIT_SLOTS - 1)];
		if (s->key && now - s->last > l->window)
			s->key = 0;
		if (s->key == h)
			return s;
		if (add && victim(s, best))
			best = s;
	}
	if (best) {
		best->key = h;
		best->count = 0;
	}
	return best;
}

/* count - the failures of one hashed key, one more with add */
static unsigned count(struct limit *l, uint64_t h, int add)
{
	struct timespec ts;
	struct limit_slot *s;
	unsigned n = add;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (!l || lock(l) < 0)
		return n;
	s = find(l, h, ts.tv_sec, add);
	if (s && add) {
		if (s->count < UINT32_MAX)
			s->count++;
		s->last = ts.tv_sec;
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

	peer_group(ip, &g);
	return hash(l, 'i', &g, sizeof g);
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

/* limit_wait - sleep limit_delay_ms(fails), resuming after signals */
void limit_wait(unsigned fails)
{
	unsigned ms = limit_delay_ms(fails);
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* --- the session table ------------------------------------------------ */

/* C11 atomics, lock-free for these sizes, so address-free: they work
 * across processes in a shared mapping */
struct sess_slot {
	_Atomic int pid;	/* 0 free, -1 reserved, else the process */
	_Atomic int busy;	/* in a session, counted */
	_Atomic unsigned fam;	/* the client's peer_group */
	_Atomic uint64_t bits;
	char ip[PEER_TEXT_MAX];	/* its text: read only after the process ended */
};

struct limit_sess {
	size_t n;
	_Atomic size_t hi;	/* slots in use are below this */
	struct sess_slot s[];
};

/* limit_sess_new - N slots, shared with the processes forked later */
int limit_sess_new(size_t n, struct limit_sess **t_r)
{
	struct limit_sess *t = NULL;

	if (n <= (SIZE_MAX - sizeof *t) / sizeof t->s[0])
		t = mapping(sizeof *t + n * sizeof t->s[0]);
	if (!t)
		return -ENOMEM;
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

/* limit_sess_slot - reserve a free slot, out of any session */
long limit_sess_slot(struct limit_sess *t)
{
	size_t i;

	for (i = 0; i < t->hi && t->s[i].pid; i++)
		;
	if (i == t->n)
		return -EAGAIN;
	t->s[i].busy = 0;
	t->s[i].pid = -1;
	if (i == t->hi)
		t->hi = i + 1;
	return (long)i;
}

/* limit_sess_pid - the process of slot i; 0 frees the slot */
void limit_sess_pid(struct limit_sess *t, size_t i, pid_t pid)
{
	size_t hi = t->hi;

	if (i >= hi)
		return;
	if (!pid)
		t->s[i].busy = 0;
	t->s[i].pid = pid;
	while (hi > 0 && !t->s[hi - 1].pid)
		hi--;
	t->hi = hi;
}

/* limit_sess_reap - free the slot of a process that ended: its index */
long limit_sess_reap(struct limit_sess *t, pid_t pid)
{
	size_t i;

	for (i = 0; pid > 0 && i < t->hi; i++)
		if (t->s[i].pid == pid) {
			limit_sess_pid(t, i, 0);
			return (long)i;
		}
	return -ESRCH;
}

/* limit_sess_signal - sig to every process in the table */
void limit_sess_signal(const struct limit_sess *t, int sig)
{
	size_t i;
	int pid;

	for (i = 0; i < t->hi; i++)
		if ((pid = t->s[i].pid) > 0)
			(void)kill(pid, sig);
}

/* limit_sess_enter - slot i serves the client at ip: the group is
 * written before the slot counts, so no reader sees a stale group */
void limit_sess_enter(struct limit_sess *t, size_t i, const char *ip)
{
	struct peer_group g;

	if (!t || i >= t->n)
		return;
	peer_group(ip, &g);
	(void)snprintf(t->s[i].ip, sizeof t->s[i].ip, "%s", ip);
	t->s[i].fam = g.fam;
	t->s[i].bits = g.bits;
	t->s[i].busy = 1;
}

/* limit_sess_ip - the client slot i served last */
const char *limit_sess_ip(const struct limit_sess *t, size_t i)
{
	return i < t->n ? t->s[i].ip : "";
}

/* limit_sess_leave - slot i serves nobody */
void limit_sess_leave(struct limit_sess *t, size_t i)
{
	if (t && i < t->n)
		t->s[i].busy = 0;
}

/* limit_sess_count - processes waiting for a client; sessions, in all
 * and from ip's group (either pointer may be NULL) */
size_t limit_sess_count(const struct limit_sess *t, const char *ip,
			size_t *all_r, size_t *same_r)
{
	size_t i, n[3] = {0, 0, 0};
	struct peer_group g;

	peer_group(ip ? ip : "", &g);
	for (i = 0; i < t->hi && i < t->n; i++) {
		const struct sess_slot *s = &t->s[i];

		if (!s->busy) {
			n[0] += s->pid != 0;
			continue;
		}
		n[1]++;
		n[2] += s->fam == g.fam && s->bits == g.bits;
	}
	if (all_r)
		*all_r = n[1];
	if (same_r)
		*same_r = n[2];
	return n[0];
}
