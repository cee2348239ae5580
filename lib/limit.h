/*
 * limit - the per-client limits of mta-smtpd and pop3d: failed logins and
 * sessions. Each table is an anonymous shared mapping made before the
 * first fork, so every session process of a server counts in it, and is
 * fixed in size whatever the clients do. A client is its peer_group()
 * (lib/peer.h): an IPv4 address, an IPv6 /64.
 *
 * Failed logins (struct limit). limit_new() maps LIMIT_SLOTS counters,
 * each forgotten WINDOW seconds after its last failure, and seeds their
 * hash from getrandom(2) so that no client can choose keys that share
 * slots; limit_free() unmaps them. limit_add_ip() counts a failure of a
 * client and returns its count; limit_get_ip() only returns it;
 * limit_add() counts under any other key (pop3d: user names), which never
 * meets an address key. A NULL table counts 1 on add, 0 on get.
 * limit_slot_ip() is the first slot of a client (tests: each table has its
 * own seed). A key may use LIMIT_PROBE slots from there; a new key takes
 * a free or forgotten one, else the one with the fewest failures (the
 * least recent of those), so a flood of other keys never frees a client
 * that is being slowed unless all its slots hold clients as slowed.
 * limit_delay_ms() is the one delay schedule, 250 ms after the first
 * failure, doubling, at most 5 s (docs/security.md says why);
 * limit_wait() sleeps that long, whatever signals come.
 *
 * Several hosts (docs/scale-out.md): limit_share() makes a server's
 * table also count the failures of the other hosts whose accounts are in
 * the same database. SERVICE is "pop3" or "smtp"; it is called by the
 * server's parent before the first fork (a root whose accounts are in
 * SQLite pays one failed open at most every LIMIT_RETRY s in a process
 * that asks for a count, and nothing else). Once ROOT/db/fails.SERVICE
 * exists (made by `vadmin share`, which alone writes it), every count
 * adds the other hosts' failures of the same key read from that file,
 * and every failure counted here is told to `vadmin share` by a datagram
 * to ROOT/db/share.sock (best effort, never waited for), which publishes
 * it. No database is ever reached from a server.
 *
 * The other hosts' counts (struct limit_remote): a fixed file of
 * LIMIT_SLOTS slots under a seed of its own, keyed by the key's shared
 * text (limit_key_text: "ip GROUP" or the key's bytes, escaped), each
 * slot a count and the wall-clock time of the newest failure, forgotten
 * WINDOW seconds after it. One writer (vadmin share), lock-free readers:
 * a reader racing the writer may miss that slot once. limit_remote_open()
 * maps the file, making it when absent; limit_remote_set() stores a
 * key's count (0 forgets it), taking over slots by the rule of the local
 * table (free or forgotten, else the fewest failures, the least recent
 * of those), so a flood of keys on other hosts never frees a key slowed
 * more than they are; limit_remote_get() reads one.
 *
 * The datagram a server sends is "SERVICE KEY": limit_told() splits one
 * (0, or -EINVAL for anything else: SERVICE is 1 to 7 bytes of a-z0-9,
 * KEY is a shared text); limit_key_valid() says whether a text is one
 * limit_key_text() could have made (printable ASCII, 1 to LIMIT_KEY_MAX
 * bytes), for the texts vadmin share reads back from the database.
 *
 * Sessions (struct limit_sess): a slot per session process (or place for
 * one): its pid and its client. limit_sess_new() maps N slots,
 * limit_sess_free() unmaps them. Only the parent reserves and frees:
 * limit_sess_slot() reserves a free slot (it counts as a process waiting)
 * and returns its index, or -EAGAIN; limit_sess_pid() records the
 * process forked for it, or with pid 0 frees it; limit_sess_reap() frees
 * the slot of a process that ended and returns its index, or -ESRCH;
 * limit_sess_signal() signals every process. Any process marks its slot
 * as serving a client (limit_sess_enter) or none (limit_sess_leave, an
 * atomic store safe at any time); limit_sess_ip() is that client's text,
 * for the parent's log once the process ended. limit_sess_count() returns the
 * processes waiting and counts sessions in all and from IP's group. Slots are read
 * without a lock: a reader racing a writer may miscount that slot once.
 */
#ifndef FACTEUR_LIMIT_H
#define FACTEUR_LIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LIMIT_SLOTS 4096	/* failed-login counters; a power of two */
#define LIMIT_PROBE 8		/* slots a key may use */
#define LIMIT_WINDOW 900	/* s without a failure before it is forgotten */

#define LIMIT_RETRY 1	/* s between looks for ROOT/db/fails.SERVICE */
#define LIMIT_KEY_MAX 600	/* longer shared texts are counted here only */

struct limit;
struct limit_sess;
struct limit_remote;
struct str;

int limit_new(unsigned window, struct limit **l_r);
void limit_free(struct limit **l);
unsigned limit_add_ip(struct limit *l, const char *ip);
unsigned limit_get_ip(struct limit *l, const char *ip);
unsigned limit_add(struct limit *l, const void *key, size_t len);
unsigned limit_delay_ms(unsigned fails);
void limit_wait(unsigned fails);
size_t limit_slot_ip(const struct limit *l, const char *ip);

int limit_share(struct limit *l, const char *root, const char *service);
int limit_key_text(char kind, const void *key, size_t len, struct str *out);
int limit_remote_open(const char *path, int wr,
		      struct limit_remote **rt_r);
void limit_remote_close(struct limit_remote **rt);
void limit_remote_set(struct limit_remote *rt, const char *text,
		      unsigned count, int64_t at);
unsigned limit_remote_get(const struct limit_remote *rt, const char *text,
			  int64_t now);
int limit_told(const void *m, size_t len, struct str *service,
	       struct str *key);
int limit_key_valid(const char *text, size_t len);

int limit_sess_new(size_t n, struct limit_sess **t_r);
void limit_sess_free(struct limit_sess **t);
long limit_sess_slot(struct limit_sess *t);
void limit_sess_pid(struct limit_sess *t, size_t i, pid_t pid);
long limit_sess_reap(struct limit_sess *t, pid_t pid);
void limit_sess_signal(const struct limit_sess *t, int sig);
void limit_sess_enter(struct limit_sess *t, size_t i, const char *ip);
void limit_sess_leave(struct limit_sess *t, size_t i);
const char *limit_sess_ip(const struct limit_sess *t, size_t i);
size_t limit_sess_count(const struct limit_sess *t, const char *ip,
			size_t *all_r, size_t *same_r);

#endif
