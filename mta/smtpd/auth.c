/*
 * auth - SMTP AUTH (RFC 4954): PLAIN, LOGIN and CRAM-MD5.
 *
 * The exchanges are lib/sasl's and the login check lib/login's, pop3d's
 * rules (an unknown user costs as much as a wrong password; SMTP off for
 * an account, ACCT_NOSMTP, is refused as a wrong password). Here are
 * SMTP's framing and the slowing down: every failure in a session sleeps
 * one second more than the last before the reply and the third ends the
 * session; an address that failed often waits before its next attempt
 * is checked (authlimit_*).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "login.h"
#include "sasl.h"
#include "smtpd.h"

#define AUTH_LINE_MAX 4096
#define AUTH_FAILURES_MAX 3

#define AUTHLIMIT_FORGET 900	/* seconds after which an address is forgiven */
#define AUTHLIMIT_MAX_DELAY 30
#define AUTHLIMIT_WAYS 8	/* slots an address may use, from its hash on */

/* authlimit_new - the shared table, before the first fork */
struct authlimit *authlimit_new(void)
{
	void *p = mmap(NULL, sizeof(struct authlimit), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * ip_key - FNV-1a-64 of the client; never 0 (0 marks a free slot). An
 * IPv6 client counts by its /64: one host usually has a whole /64 and
 * could otherwise take a fresh address for every ten tries.
 */
static uint64_t ip_key(const char *ip)
{
	uint64_t h = 0xcbf29ce484222325ull;
	unsigned char v6[16];
	size_t i;

	if (strchr(ip, ':') && inet_pton(AF_INET6, ip, v6) == 1) {
		h = (h ^ '6') * 0x100000001b3ull;	/* never an IPv4 text */
		for (i = 0; i < 8; i++)
			h = (h ^ v6[i]) * 0x100000001b3ull;
	} else {
		while (*ip)
			h = (h ^ (unsigned char)*ip++) * 0x100000001b3ull;
	}
	return h ? h : 1;
}

/*
 * find - the slot of key K among the AUTHLIMIT_WAYS after its hash, or -1.
 * Several ways, not one: with a single slot two addresses that collide
 * could fail in turn and keep resetting each other's count for ever.
 */
static long find(struct authlimit *l, uint64_t k)
{
	size_t i, j;

	for (i = 0; i < AUTHLIMIT_WAYS; i++) {
		j = (size_t)((k + i) % AUTHLIMIT_SLOTS);
		if (__atomic_load_n(&l->slot[j].key, __ATOMIC_RELAXED) == k)
			return (long)j;
	}
	return -1;
}

/* authlimit_delay - seconds to wait before an AUTH from IP is checked */
unsigned authlimit_delay(struct authlimit *l, const char *ip)
{
	uint64_t k = ip_key(ip);
	uint32_t fails;
	int64_t last;
	long i;

	if (!l || (i = find(l, k)) < 0)
		return 0;
	fails = __atomic_load_n(&l->slot[i].fails, __ATOMIC_RELAXED);
	last = __atomic_load_n(&l->slot[i].last, __ATOMIC_RELAXED);
	if (time(NULL) - last > AUTHLIMIT_FORGET || fails < AUTHLIMIT_FREE)
		return 0;
	fails -= AUTHLIMIT_FREE - 1;
	return fails > AUTHLIMIT_MAX_DELAY ? AUTHLIMIT_MAX_DELAY : fails;
}

/*
 * authlimit_fail - count one failure of IP (racy by a count at worst). A
 * new address takes a free or forgotten slot of its ways, else the one
 * with the fewest failures: pushing out an address that is being slowed
 * takes as many failures from colliding addresses, which are slowed too.
 */
void authlimit_fail(struct authlimit *l, const char *ip)
{
	uint64_t k = ip_key(ip);
	int64_t now = time(NULL);
	uint32_t least = UINT32_MAX;
	long i;
	size_t w, j, pick;

	if (!l)
		return;
	pick = (size_t)(k % AUTHLIMIT_SLOTS);
	i = find(l, k);
	for (w = 0; i < 0 && w < AUTHLIMIT_WAYS; w++) {
		uint32_t f;

		j = (size_t)((k + w) % AUTHLIMIT_SLOTS);
		f = __atomic_load_n(&l->slot[j].fails, __ATOMIC_RELAXED);
		if (!__atomic_load_n(&l->slot[j].key, __ATOMIC_RELAXED) ||
		    now - __atomic_load_n(&l->slot[j].last, __ATOMIC_RELAXED) >
		    AUTHLIMIT_FORGET)
			f = 0;
		if (f < least) {
			least = f;
			pick = j;
		}
		if (!f || w + 1 == AUTHLIMIT_WAYS)
			i = (long)pick;
	}
	if (__atomic_exchange_n(&l->slot[i].key, k, __ATOMIC_RELAXED) != k ||
	    now - __atomic_load_n(&l->slot[i].last, __ATOMIC_RELAXED) >
	    AUTHLIMIT_FORGET)
		__atomic_store_n(&l->slot[i].fails, 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&l->slot[i].fails, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&l->slot[i].last, now, __ATOMIC_RELAXED);
}

/* failed - slow down, answer, and end the session after too many */
static void failed(struct session *s, const char *user)
{
	s->auth_failures++;
	authlimit_fail(s->limit, s->ip.s);
	(void)conn_flush(&s->c);
	sleep(s->auth_failures * s->auth_delay);
	(void)conn_reply(&s->c, "535 5.7.8 authentication failed");
	session_note(s, "535 5.7.8 authentication failed");
	str_trunc(&s->reason, 0);
	(void)str_catf(&s->reason, "535 5.7.8 authentication failed for %s",
		       user);
	if (s->auth_failures >= AUTH_FAILURES_MAX) {
		(void)conn_reply(&s->c, "421 4.7.0 too many authentication "
				 "failures, closing connection");
		str_trunc(&s->end, 0);
		(void)str_cats(&s->end, "too many auth failures");
		s->quit = 1;
	}
}

/* check - the login of a finished exchange; 0, -EPERM (a wrong password,
 * an unknown user, or SMTP off for the account, all alike), or -EIO */
static int check(struct session *s, struct sasl *x)
{
	struct login l = LOGIN_INIT;
	int r = login_check(s->root, x->user.s, x->user.len, x->pass.s,
			    x->mech == SASL_CRAM ? &x->chal : NULL,
			    s->dummy_hash, ACCT_NOSMTP, &l);

	login_free(&l);
	if (r == -EACCES || r == -EPERM)
		return -EPERM;
	return r == 0 && str_copys(&s->auth_user, x->user.s) == 0 ? 0 : -EIO;
}

/* result - answer the end of an exchange (lib/sasl's codes) */
static void result(struct session *s, struct sasl *x, int r)
{
	const char *no = NULL;	/* a refusal for the session's log line */

	if (r == 0 && (r = check(s, x)) == 0)
		(void)conn_reply(&s->c, "235 2.7.0 authentication successful");
	else if (r == -EPERM)
		failed(s, x->user.s);
	else if (r == -ECANCELED)
		(void)conn_reply(&s->c, "501 5.7.0 authentication cancelled");
	else if (r == -EILSEQ)
		no = "501 5.5.2 malformed base64";
	else if (r == -EINVAL)
		no = x->mech == SASL_CRAM ? "501 5.5.2 malformed CRAM-MD5 "
		     "response" : "501 5.5.2 malformed AUTH PLAIN data";
	else if (r == -EIO)
		no = "454 4.7.0 temporary authentication failure";
	else
		(void)conn_reply(&s->c, "454 4.7.0 %s", r == -EAGAIN ?
				 "no randomness" : "out of memory");
	if (no) {
		(void)conn_reply(&s->c, "%s", no);
		session_note(s, no);
	}
}

/* exchange - one SASL exchange: 334 and a challenge until it is done */
static void exchange(struct session *s, int mech, const char *initial)
{
	struct sasl x = SASL_INIT;
	struct str raw = STR_INIT;
	int r = sasl_start(&x, mech, *initial ? initial : NULL,
			   strlen(initial), s->me.s);

	while (r == SASL_MORE) {
		(void)conn_reply(&s->c, "334 %s", x.prompt.s);
		r = conn_getline(&s->c, &raw, AUTH_LINE_MAX);
		if (r == LINE_LONG)
			(void)conn_reply(&s->c, "500 5.5.2 line too long");
		else if (r != LINE_OK)
			s->quit = 1;
		if (r != LINE_OK)
			goto out;
		r = sasl_step(&x, raw.s, raw.len);
	}
	result(s, &x, r);
out:
	str_wipe(&raw);
	sasl_free(&x);
}

/* auth_command - AUTH MECHANISM [initial-response] */
void auth_command(struct session *s, const char *arg)
{
	const char *sp = strchr(arg, ' ');
	size_t n = sp ? (size_t)(sp - arg) : strlen(arg);
	const char *initial = sp ? sp + 1 : "";
	int mech = sasl_mech(arg, n);
	unsigned n2;

	while (*initial == ' ')
		initial++;
	/* an address that failed often waits before its attempt is checked,
	 * whichever session it uses; other addresses are not slowed */
	n2 = authlimit_delay(s->limit, s->ip.s);
	if (n2 && s->auth_delay) {
		(void)conn_flush(&s->c);
		sleep(n2);
	}
	if (mech && (mech != SASL_CRAM || !*initial))
		exchange(s, mech, initial);
	else {
		(void)conn_reply(&s->c, "504 5.5.4 unrecognized authentication "
				 "mechanism");
		session_note(s, "504 5.5.4 unrecognized mechanism");
	}
}
