/*
 * auth - SMTP AUTH (RFC 4954): PLAIN, LOGIN and CRAM-MD5.
 *
 * Logins are USER@DOMAIN checked against the domain's passwd table
 * (lib/acct.h): HASH \0 CRAM \0 FLAGS ... A user with flag 2 may not use
 * SMTP. An unknown user is checked against a dummy hash so that it takes
 * as long to refuse as a wrong password. Every failure in a session
 * sleeps one second more than the last before the reply, and the third
 * ends the session, so a session is a poor tool for guessing. CRAM-MD5 is
 * possible only for users whose CRAM context is stored.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "name.h"
#include "pw.h"
#include "rcpt.h"
#include "smtpd.h"

#define AUTH_LINE_MAX 4096
#define AUTH_FAILURES_MAX 3

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64_encode - standard base64 with padding */
int b64_encode(const void *in, size_t n, struct str *out)
{
	const unsigned char *p = in;
	size_t i;
	int r = 0;

	str_trunc(out, 0);
	for (i = 0; r == 0 && i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		char q[4];

		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = b64[v >> 18];
		q[1] = b64[(v >> 12) & 63];
		q[2] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? b64[v & 63] : '=';
		r = str_catb(out, q, 4);
	}
	return r;
}

/*
 * b64_decode - strict base64: whole quanta, '=' only at the end, and the
 * bits a padded quantum does not use must be zero, so that one text is the
 * only spelling of its bytes (found by fuzz_smtpd_b64: "D+/=" was taken)
 */
int b64_decode(const char *in, size_t n, struct str *out)
{
	size_t i;
	int j;

	str_trunc(out, 0);
	if (n % 4)
		return -EINVAL;
	/* allocated even for "": callers may then pass out->s to memchr */
	if (str_ready(out, n / 4 * 3 + 1) < 0)
		return -ENOMEM;
	for (i = 0; i < n; i += 4) {
		unsigned v = 0;
		int pad = 0;

		for (j = 0; j < 4; j++) {
			const char *c = in[i + j] ? strchr(b64, in[i + j]) : NULL;

			if (in[i + j] == '=' && i + 4 == n && j >= 2) {
				pad++;
				v <<= 6;
				continue;
			}
			if (!c || pad)
				return -EINVAL;
			v = v << 6 | (unsigned)(c - b64);
		}
		if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
			return -EINVAL;
		if (str_catc(out, (char)(v >> 16)) < 0 ||
		    (pad < 2 && str_catc(out, (char)(v >> 8)) < 0) ||
		    (pad < 1 && str_catc(out, (char)v) < 0))
			return -ENOMEM;
	}
	out->s[out->len] = 0;
	return 0;
}

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

/* login - the user's passwd record fields; -ENOENT when unknown */
static int login(struct session *s, const char *user, struct str *rec,
		 const char **hash, const char **cram, unsigned long *flags)
{
	struct str local = STR_INIT, domain = STR_INIT;
	const char *why, *end;
	int r;

	r = name_addr(user, &local, &domain, &why);
	if (r == -EINVAL)
		r = -ENOENT;
	if (r == 0)
		r = acct_get(s->root, domain.s, ACCT_PASSWD, local.s, local.s,
			     local.len, rec);
	str_free(&local);
	str_free(&domain);
	if (r < 0)
		return r;
	end = rec->s + rec->len;
	*hash = rec->s;
	*cram = *hash + strlen(*hash) + 1;
	if (*cram >= end)
		return -EILSEQ;
	if (*cram + strlen(*cram) + 1 >= end)
		*flags = 0;
	else
		*flags = strtoul(*cram + strlen(*cram) + 1, NULL, 10);
	return 0;
}

/* check_pass - 0 when USER/PASS may log in, -EACCES when not */
static int check_pass(struct session *s, const char *user, const char *pass)
{
	struct str rec = STR_INIT;
	const char *hash, *cram;
	unsigned long flags = 0;
	int r;

	r = login(s, user, &rec, &hash, &cram, &flags);
	/* the same work for an unknown user, an unusable hash and a wrong
	 * password: no user enumeration (lib/pw) */
	if (r == -ENOENT)
		r = pw_verify(pass, NULL, s->dummy_hash);
	else if (r == 0) {
		r = pw_verify(pass, hash, s->dummy_hash);
		if (r == 0 && (flags & RCPT_FLAG_NOSMTP))
			r = -EACCES;
	}
	str_free(&rec);
	return r;
}

/* check_cram - 0 when DIGEST answers CHALLENGE for USER */
static int check_cram(struct session *s, const char *user, const char *digest,
		      const struct str *chal)
{
	struct str rec = STR_INIT;
	const char *hash, *cram;
	unsigned long flags = 0;
	char want[33];
	int r;

	r = login(s, user, &rec, &hash, &cram, &flags);
	if (r == -ENOENT)
		r = -EACCES;
	if (r == 0 && (!*cram || (flags & 2)))
		r = -EACCES;
	if (r == 0 && pw_cram_digest(cram, chal->s, chal->len, want) < 0)
		r = -EACCES;
	if (r == 0 && (strlen(digest) != 32 ||
		       CRYPTO_memcmp(want, digest, 32)))
		r = -EACCES;
	str_free(&rec);
	return r;
}

/* read_response - one client line after a 334; 0, or -1 with a reply sent */
static int read_response(struct session *s, struct str *raw, struct str *dec)
{
	int r = conn_getline(&s->c, raw, AUTH_LINE_MAX);

	if (r == -EMSGSIZE) {
		(void)conn_reply(&s->c, "500 5.5.2 line too long");
		return -1;
	}
	if (r < 0) {
		s->quit = 1;
		return -1;
	}
	if (str_eqs(raw, "*")) {
		(void)conn_reply(&s->c, "501 5.7.0 authentication cancelled");
		return -1;
	}
	if (b64_decode(raw->s, raw->len, dec) < 0) {
		(void)conn_reply(&s->c, "501 5.5.2 malformed base64");
		session_note(s, "501 5.5.2 malformed base64");
		return -1;
	}
	return 0;
}

/* challenge - 334 and a base64 text */
static void challenge(struct session *s, const void *text, size_t n)
{
	struct str e = STR_INIT;

	if (b64_encode(text, n, &e) == 0)
		(void)conn_reply(&s->c, "334 %s", e.s);
	str_free(&e);
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

/* finish - the result of a check */
static void finish(struct session *s, const char *user, int r)
{
	if (r == 0) {
		if (str_copys(&s->auth_user, user) < 0) {
			(void)conn_reply(&s->c, "454 4.7.0 out of memory");
			return;
		}
		(void)conn_reply(&s->c, "235 2.7.0 authentication successful");
	} else if (r == -EACCES) {
		failed(s, user);
	} else {
		(void)conn_reply(&s->c, "454 4.7.0 temporary authentication "
				 "failure");
		session_note(s, "454 4.7.0 temporary authentication failure");
	}
}

/* auth_plain - RFC 4616: [authzid] NUL authcid NUL passwd */
static void auth_plain(struct session *s, const char *initial)
{
	struct str raw = STR_INIT, dec = STR_INIT;
	const char *authz, *user, *pass;

	if (*initial) {
		/* "=" is an empty initial response (RFC 4954 4) */
		if (strcmp(initial, "=") &&
		    b64_decode(initial, strlen(initial), &dec) < 0) {
			(void)conn_reply(&s->c, "501 5.5.2 malformed base64");
			session_note(s, "501 5.5.2 malformed base64");
			goto out;
		}
	} else {
		(void)conn_reply(&s->c, "334 ");
		if (read_response(s, &raw, &dec) < 0)
			goto out;
	}
	if (str_catc(&dec, 0) < 0)
		goto out;
	authz = dec.s;
	user = memchr(dec.s, 0, dec.len);
	pass = user ? memchr(user + 1, 0, dec.len - (size_t)(user + 1 - dec.s))
		    : NULL;
	if (!user || !pass || pass + 1 + strlen(pass + 1) != dec.s + dec.len - 1) {
		(void)conn_reply(&s->c, "501 5.5.2 malformed AUTH PLAIN data");
		session_note(s, "501 5.5.2 malformed AUTH PLAIN data");
		goto out;
	}
	user++;
	pass++;
	if (*authz && strcmp(authz, user)) {
		failed(s, user);
		goto out;
	}
	finish(s, user, check_pass(s, user, pass));
out:
	if (dec.s)
		explicit_bzero(dec.s, dec.len);
	str_free(&raw);
	str_free(&dec);
}

/* auth_login - the LOGIN mechanism: user, then password, each base64 */
static void auth_login(struct session *s, const char *initial)
{
	struct str raw = STR_INIT, user = STR_INIT, pass = STR_INIT;

	if (*initial) {
		if (b64_decode(initial, strlen(initial), &user) < 0) {
			(void)conn_reply(&s->c, "501 5.5.2 malformed base64");
			session_note(s, "501 5.5.2 malformed base64");
			goto out;
		}
	} else {
		challenge(s, "Username:", 9);
		if (read_response(s, &raw, &user) < 0)
			goto out;
	}
	challenge(s, "Password:", 9);
	if (read_response(s, &raw, &pass) < 0)
		goto out;
	if (memchr(user.s, 0, user.len) || memchr(pass.s, 0, pass.len)) {
		failed(s, "?");
		goto out;
	}
	finish(s, user.s, check_pass(s, user.s, pass.s));
out:
	if (pass.s)
		explicit_bzero(pass.s, pass.len);
	str_free(&raw);
	str_free(&user);
	str_free(&pass);
}

/* auth_cram - RFC 2195, with a challenge that never repeats */
static void auth_cram(struct session *s)
{
	struct str chal = STR_INIT, raw = STR_INIT, dec = STR_INIT;
	unsigned char rnd[12];
	struct timespec ts;
	char *sp;
	size_t i;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		(void)conn_reply(&s->c, "454 4.7.0 no randomness");
		return;
	}
	(void)str_catc(&chal, '<');
	for (i = 0; i < sizeof rnd; i++)
		(void)str_catf(&chal, "%02x", rnd[i]);
	if (str_catf(&chal, ".%ld.%ld@%s>", (long)ts.tv_sec,
		     (long)getpid(), s->me.s) < 0) {
		(void)conn_reply(&s->c, "454 4.7.0 out of memory");
		goto out;
	}
	challenge(s, chal.s, chal.len);
	if (read_response(s, &raw, &dec) < 0)
		goto out;
	sp = memchr(dec.s, ' ', dec.len);
	if (!sp || memchr(dec.s, 0, dec.len)) {
		(void)conn_reply(&s->c, "501 5.5.2 malformed CRAM-MD5 response");
		session_note(s, "501 5.5.2 malformed CRAM-MD5 response");
		goto out;
	}
	*sp = 0;
	finish(s, dec.s, check_cram(s, dec.s, sp + 1, &chal));
out:
	str_free(&chal);
	str_free(&raw);
	str_free(&dec);
}

/* auth_command - AUTH MECHANISM [initial-response] */
void auth_command(struct session *s, const char *arg)
{
	const char *sp = strchr(arg, ' ');
	size_t n = sp ? (size_t)(sp - arg) : strlen(arg);
	const char *initial = sp ? sp + 1 : "";
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
	if (n == 5 && !strncasecmp(arg, "PLAIN", 5))
		auth_plain(s, initial);
	else if (n == 5 && !strncasecmp(arg, "LOGIN", 5))
		auth_login(s, initial);
	else if (n == 8 && !strncasecmp(arg, "CRAM-MD5", 8) && !*initial)
		auth_cram(s);
	else {
		(void)conn_reply(&s->c, "504 5.5.4 unrecognized authentication "
				 "mechanism");
		session_note(s, "504 5.5.4 unrecognized mechanism");
	}
}
