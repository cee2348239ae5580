/*
 * limit - the two per-client limits that mta-smtpd and pop3d share: the
 * failed-login counters and the session table. Both live in an anonymous
 * shared mapping made before the first fork, so that every session
 * process of one server counts in the same table; both are fixed in size
 * whatever the clients do. Clients are counted by peer_group() (lib/peer.h):
 * an IPv4 address, an IPv6 /64.
 *
 * Failed logins (struct limit):
 *
 * limit_new() maps a table of LIMIT_SLOTS counters, each forgotten WINDOW
 * seconds after its last failure (the servers use LIMIT_WINDOW), and
 * seeds its hash from getrandom(2) so that a client cannot choose keys
 * that share slots. limit_free() unmaps it and sets *l to NULL.
 *
 * limit_add_ip() counts one failure of a client and returns its count
 * now; limit_get_ip() returns the count without adding. limit_add() and
 * limit_get() do the same for any other key (pop3d counts user names
 * too); such keys never meet the address keys. With a NULL table (none
 * could be made) limit_add*() return 1 and limit_get*() 0.
 *
 * A key may use LIMIT_PROBE slots from its hash on. A new key takes a
 * free or forgotten one, else the one with the fewest failures (the
 * least recent of those): a flood of other keys makes the table forget
 * the clients that failed least, never one that is being slowed, unless
 * every slot it may use holds a client that failed as often.
 *
 * limit_slot_ip() is the first slot a client's key may use (for tests:
 * two tables place one client apart, since each has its own seed).
 *
 * limit_delay_ms() is the one delay schedule: after N failures, 250 ms
 * doubling with each failure, at most 5 s (docs/security.md says why).
 *
 * Sessions (struct limit_sess):
 *
 * limit_sess_new() maps N slots, one a session process (or a place for
 * one); limit_sess_free() unmaps them. limit_sess_enter() marks slot I as
 * serving a client, limit_sess_leave() as serving none (an atomic store,
 * safe from any process at any time). limit_sess_count() counts, among
 * the first N slots, those in a session, in all and from IP's group. A
 * slot is written by one process and read by all without a lock; a
 * reader racing a writer can miscount that one slot for that moment.
 */
#ifndef FACTEUR_LIMIT_H
#define FACTEUR_LIMIT_H

#include <stddef.h>

#define LIMIT_SLOTS 4096	/* failed-login counters; a power of two */
#define LIMIT_PROBE 8		/* slots a key may use */
#define LIMIT_WINDOW 900	/* s without a failure before it is forgotten */

struct limit;
struct limit_sess;

int limit_new(unsigned window, struct limit **l_r);
void limit_free(struct limit **l);
unsigned limit_add_ip(struct limit *l, const char *ip);
unsigned limit_get_ip(struct limit *l, const char *ip);
unsigned limit_add(struct limit *l, const void *key, size_t len);
unsigned limit_get(struct limit *l, const void *key, size_t len);
unsigned limit_delay_ms(unsigned fails);
size_t limit_slot_ip(const struct limit *l, const char *ip);

int limit_sess_new(size_t n, struct limit_sess **t_r);
void limit_sess_free(struct limit_sess **t);
void limit_sess_enter(struct limit_sess *t, size_t i, const char *ip);
void limit_sess_leave(struct limit_sess *t, size_t i);
int limit_sess_busy(const struct limit_sess *t, size_t i);
void limit_sess_count(const struct limit_sess *t, size_t n, const char *ip,
		      size_t *all_r, size_t *same_r);

#endif
