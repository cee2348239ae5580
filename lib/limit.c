/*
 * limit - failed-login counters and session table (see limit.h). The
 * counters sit behind a robust process-shared mutex: a session killed
 * holding it hands it on (a half-written slot costs one wrong count at
 * most). Times are CLOCK_MONOTONIC s: one clock for every process.
 * The other hosts' counts (limit_share, limit_remote_*) are a file of
 * lock-free slots with wall-clock times, since other processes (vadmin
 * share) write it and the hosts' clocks are what the times compare. This
 * file does raw pointer arithmetic on mappings (@UNSAFE, as Dovecot
 * marks such files): the slot indexes are masked by LIMIT_SLOTS - 1.
 */
#include "limit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fsx.h"
#include "peer.h"
#include "str.h"

#define DELAY_FIRST_MS 250	/* after the first failure, doubling */
#define DELAY_MAX_MS 5000

struct limit_slot {
	uint64_t key;		/* 0: free */
	uint32_t count;
	int64_t last;		/* monotonic s of the last failure */
	uint64_t seq;		/* the table's tick then: finer than last */
};

/* what a process knows of the other hosts (limit_share): made by the
 * server's parent before it forks, so each process has its own copy at
 * the same address, and maps the file on its own when it appears */
struct share {
	struct str path;	/* ROOT/db/fails.SERVICE */
	struct sockaddr_un to;	/* ROOT/db/share.sock; "" when too long */
	char service[8];
	int fd;			/* the datagram socket, -1 when none */
	struct limit_remote *rt;
	int64_t next_try;	/* monotonic s of the next look for path */
};

struct limit {
	pthread_mutex_t mu;
	struct share *share;	/* this process's copy; NULL: one host */
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

/* share_free - this process's copy of what limit_share made; the
 * pointer in the shared table stays, for the parent's later forks */
static void share_free(struct share *sh)
{
	if (!sh)
		return;
	limit_remote_close(&sh->rt);
	if (sh->fd >= 0)
		close(sh->fd);
	str_free(&sh->path);
	free(sh);
}

/* limit_free - unmap the counters (in this process) */
void limit_free(struct limit **l)
{
	if (*l) {
		share_free((*l)->share);
		munmap(*l, sizeof **l);
	}
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

/* --- the other hosts' counts (limit_share, limit_remote_*) ------------ */

#define REMOTE_MAGIC "FACTEUR1"	/* 8 bytes: the layout's version */

/* C11 atomics, lock-free for these sizes: one writer, readers in other
 * processes; key is stored last and checked again after the read */
struct rslot {
	_Atomic uint64_t key;	/* 0: free */
	_Atomic uint32_t count;
	_Atomic int64_t at;	/* wall-clock s of the newest failure */
};

struct limit_remote {
	char magic[8];
	uint32_t slots;
	uint32_t window;
	uint64_t seed;
	struct rslot slot[LIMIT_SLOTS];
};

/* limit_key_text - the text a key is known by on every host: "ip " and
 * the client's group (an IPv4 address, an IPv6 /64 prefix), or the key's
 * bytes, those outside printable ASCII and '%' as %XX; -EINVAL for no
 * address (a local client) or an empty key, -E2BIG past LIMIT_KEY_MAX */
int limit_key_text(char kind, const void *key, size_t len, struct str *out)
{
	const unsigned char *b = key;
	unsigned char a[16];
	char t[INET6_ADDRSTRLEN];
	struct peer_group g;
	struct str ip = STR_INIT;
	size_t i;
	int r = 0;

	out->len = 0;
	if (kind == 'i') {
		if (str_copyb(&ip, key, len))
			return -ENOMEM;
		peer_group(ip.s, &g);
		str_free(&ip);
		memset(a, 0, sizeof a);
		for (i = 0; i < (g.fam == 4 ? 4u : 8u); i++)
			a[i] = (unsigned char)(g.bits >> (8 * ((g.fam == 4 ?
							       3 : 7) - i)));
		if (!g.fam || !inet_ntop(g.fam == 4 ? AF_INET : AF_INET6, a, t,
					 sizeof t))
			return -EINVAL;
		return str_catf(out, "ip %s%s", t, g.fam == 6 ? "/64" : "") ?
		       -ENOMEM : 0;
	}
	for (i = 0; r == 0 && i < len; i++)
		r = b[i] > 0x20 && b[i] < 0x7f && b[i] != '%' ?
		    str_catb(out, (const char *)b + i, 1) :
		    b[i] == ' ' ? str_cats(out, " ") :
		    str_catf(out, "%%%02X", b[i]);
	if (r)
		return -ENOMEM;
	if (!len)
		return -EINVAL;
	return out->len > LIMIT_KEY_MAX ? -E2BIG : 0;
}

/* limit_key_valid - a text limit_key_text could have made */
int limit_key_valid(const char *text, size_t len)
{
	size_t i;

	if (len == 0 || len > LIMIT_KEY_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (text[i] < 0x20 || text[i] > 0x7e)
			return 0;
	return 1;
}

/* limit_told - "SERVICE KEY", a failure a server told vadmin share */
int limit_told(const void *m, size_t len, struct str *service,
	       struct str *key)
{
	const char *s = m, *sp = memchr(s, ' ', len);
	size_t sl = sp ? (size_t)(sp - s) : 0;

	if (sl == 0 || sl > 7 || strspn(s, "abcdefghijklmnopqrstuvwxyz"
					"0123456789") < sl ||
	    !limit_key_valid(sp + 1, len - sl - 1))
		return -EINVAL;
	if (str_copyb(service, s, sl) || str_copyb(key, sp + 1, len - sl - 1))
		return -ENOMEM;
	return 0;
}

/* rhash - where a shared text lives in a remote table */
static uint64_t rhash(const struct limit_remote *rt, const char *text)
{
	uint64_t h = mix(mix(14695981039346656037ull, &rt->seed,
			     sizeof rt->seed), text, strlen(text));

	h = (h ^ h >> 33) * 0xff51afd7ed558ccdull;
	h = (h ^ h >> 33) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h ? h : 1;
}

/* remote_valid - a mapping of the layout this program writes */
static int remote_valid(const struct limit_remote *rt)
{
	return !memcmp(rt->magic, REMOTE_MAGIC, 8) &&
	       rt->slots == LIMIT_SLOTS && rt->window;
}

/* remote_make - a new empty table at path (a temporary renamed over it,
 * so a reader never maps half a header) */
static int remote_make(const char *path)
{
	struct limit_remote h;
	struct str tmp = STR_INIT;
	int fd = -1, r;

	memset(&h, 0, offsetof(struct limit_remote, slot));
	memcpy(h.magic, REMOTE_MAGIC, 8);
	h.slots = LIMIT_SLOTS;
	h.window = LIMIT_WINDOW;
	r = getrandom(&h.seed, sizeof h.seed, 0) == (ssize_t)sizeof h.seed ?
	    0 : -EIO;
	if (r == 0)
		r = fsx_tmpname(&tmp, path);
	if (r == 0 && (fd = open(tmp.s, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
				 O_CLOEXEC, 0600)) < 0)
		r = -errno;
	if (r == 0 && ftruncate(fd, sizeof(struct limit_remote)) < 0)
		r = -errno;
	if (r == 0)
		r = fsx_write_all(fd, &h, offsetof(struct limit_remote, slot));
	if (r == 0 && rename(tmp.s, path) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (r < 0 && tmp.len)
		(void)unlink(tmp.s);
	str_free(&tmp);
	return r;
}

/* remote_map - the table at path, for reading or (wr) writing */
static int remote_map(const char *path, int wr, struct limit_remote **rt_r)
{
	int fd = open(path, (wr ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	void *p;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size != (off_t)sizeof(struct limit_remote)) {
		close(fd);
		return -EPROTO;
	}
	p = mmap(NULL, sizeof(struct limit_remote), PROT_READ |
		 (wr ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	if (!remote_valid(p)) {
		munmap(p, sizeof(struct limit_remote));
		return -EPROTO;
	}
	*rt_r = p;
	return 0;
}

/* limit_remote_open - the table at path: wr, the writer's, made (or made
 * again when not of this layout) as needed; else a reader's, -ENOENT
 * while there is none */
int limit_remote_open(const char *path, int wr, struct limit_remote **rt_r)
{
	int r = remote_map(path, wr, rt_r);

	if (wr && (r == -ENOENT || r == -EPROTO) &&
	    (r = remote_make(path)) == 0)
		r = remote_map(path, wr, rt_r);
	return r;
}

/* limit_remote_close - unmap the table (in this process) */
void limit_remote_close(struct limit_remote **rt)
{
	if (*rt)
		munmap(*rt, sizeof **rt);
	*rt = NULL;
}

/* limit_remote_get - the other hosts' count of text, 0 past the window */
unsigned limit_remote_get(const struct limit_remote *rt, const char *text,
			  int64_t now)
{
	uint64_t h = rhash(rt, text);
	unsigned i;

	for (i = 0; i < LIMIT_PROBE; i++) {
		const struct rslot *s = &rt->slot[(h + i) & (LIMIT_SLOTS - 1)];
		uint32_t c;
		int64_t at;

		if (s->key != h)
			continue;
		c = s->count;
		at = s->at;
		if (s->key == h && now - at <= (int64_t)rt->window)
			return c;
	}
	return 0;
}

/* rvictim - whether s is a better slot to take over than best, by the
 * local table's rule: free or forgotten, then fewest, then oldest */
static int rvictim(const struct limit_remote *rt, const struct rslot *s,
		   const struct rslot *best, int64_t now)
{
	int sf = !s->key || now - s->at > (int64_t)rt->window;
	int bf = best && (!best->key || now - best->at > (int64_t)rt->window);

	if (!best || bf || sf)
		return !best || (sf && !bf);
	return s->count < best->count ||
	       (s->count == best->count && s->at < best->at);
}

/* limit_remote_set - text's count from the other hosts (the one writer) */
void limit_remote_set(struct limit_remote *rt, const char *text,
		      unsigned count, int64_t at)
{
	uint64_t h = rhash(rt, text);
	struct rslot *best = NULL, *s;
	int64_t now = time(NULL);
	unsigned i;

	for (i = 0; i < LIMIT_PROBE; i++) {
		s = &rt->slot[(h + i) & (LIMIT_SLOTS - 1)];
		if (s->key == h) {
			if (!count) {
				s->key = 0;
				return;
			}
			s->count = count;
			s->at = at;
			return;
		}
		if (rvictim(rt, s, best, now))
			best = s;
	}
	if (!count || !best)
		return;
	/* readers that see the old key before and the new key after the
	 * read cannot exist: it is 0 in between */
	best->key = 0;
	best->count = count;
	best->at = at;
	best->key = h;
}

/* limit_share - count the other hosts' failures too (see limit.h) */
int limit_share(struct limit *l, const char *root, const char *service)
{
	struct share *sh;
	struct str sock = STR_INIT;
	int r = 0;

	if (!l || l->share)
		return l ? 0 : -EINVAL;
	if (!(sh = calloc(1, sizeof *sh)))
		return -ENOMEM;
	sh->fd = -1;
	(void)snprintf(sh->service, sizeof sh->service, "%s", service);
	if (str_catf(&sh->path, "%s/db/fails.%s", root, service) ||
	    str_catf(&sock, "%s/db/share.sock", root))
		r = -ENOMEM;
	sh->to.sun_family = AF_UNIX;
	if (r == 0 && sock.len < sizeof sh->to.sun_path)
		memcpy(sh->to.sun_path, sock.s, sock.len + 1);
	if (r == 0 && (sh->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC |
				       SOCK_NONBLOCK, 0)) < 0)
		r = -errno;
	str_free(&sock);
	if (r < 0) {
		share_free(sh);
		return r;
	}
	(void)remote_map(sh->path.s, 0, &sh->rt);
	l->share = sh;
	return 0;
}

/* tell - one failure of this host, to vadmin share (never waited for:
 * a full or absent socket loses it, and the other hosts count less) */
static void tell(const struct share *sh, const struct str *text)
{
	struct str m = STR_INIT;

	if (sh->to.sun_path[0] && str_catf(&m, "%s %s", sh->service, text->s)
	    == 0)
		(void)sendto(sh->fd, m.s, m.len, MSG_DONTWAIT | MSG_NOSIGNAL,
			     (const struct sockaddr *)&sh->to, sizeof sh->to);
	str_free(&m);
}

/* others - the other hosts' failures of a key, after telling them of one
 * more here (add); 0 while this root shares nothing */
static unsigned others(struct limit *l, char kind, const void *key,
		       size_t len, int add)
{
	struct share *sh = l->share;
	struct str text = STR_INIT;
	struct timespec ts;
	unsigned n = 0;

	if (!sh)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (!sh->rt && ts.tv_sec >= sh->next_try) {
		sh->next_try = ts.tv_sec + LIMIT_RETRY;
		(void)remote_map(sh->path.s, 0, &sh->rt);
	}
	if (!sh->rt || limit_key_text(kind, key, len, &text) < 0) {
		str_free(&text);
		return 0;
	}
	if (add)
		tell(sh, &text);
	n = limit_remote_get(sh->rt, text.s, time(NULL));
	str_free(&text);
	return n;
}

/* limit_add_ip - one more failure of the client at ip */
unsigned limit_add_ip(struct limit *l, const char *ip)
{
	if (!l)
		return 1;
	return count(l, ip_hash(l, ip), 1) + others(l, 'i', ip, strlen(ip), 1);
}

/* limit_get_ip - the recent failures of the client at ip */
unsigned limit_get_ip(struct limit *l, const char *ip)
{
	if (!l)
		return 0;
	return count(l, ip_hash(l, ip), 0) + others(l, 'i', ip, strlen(ip), 0);
}

/* limit_slot_ip - where the key of the client at ip starts */
size_t limit_slot_ip(const struct limit *l, const char *ip)
{
	return (size_t)(ip_hash(l, ip) & (LIMIT_SLOTS - 1));
}

/* limit_add - one more failure under another key */
unsigned limit_add(struct limit *l, const void *key, size_t len)
{
	if (!l)
		return 1;
	return count(l, hash(l, 'k', key, len), 1) + others(l, 'k', key, len, 1);
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
