/*
 * auth - SMTP AUTH (RFC 4954): PLAIN, LOGIN and CRAM-MD5.
 *
 * The exchanges are lib/sasl's and the login check lib/login's, pop3d's
 * rules (an unknown user costs as much as a wrong password; SMTP off for
 * an account, ACCT_NOSMTP, is refused as a wrong password). Here are
 * SMTP's framing and the slowing down: every failure in a session sleeps
 * one second more than the last before the reply and the third ends the
 * session; an address that failed often waits before its next attempt
 * is checked (lib/limit, the schedule pop3d uses).
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "login.h"
#include "sasl.h"
#include "smtpd.h"

#define AUTH_LINE_MAX 4096
_Static_assert(LOGIN_PLAIN_B64_MAX + 2 <= AUTH_LINE_MAX,
	       "an AUTH response line carries any password vadmin stores");
#define AUTH_FAILURES_MAX 3

/* failed - slow down, answer, and end the session after too many */
static void failed(struct session *s, const char *user)
{
	s->auth_failures++;
	(void)limit_add_ip(s->limit, s->ip.s);
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
		if (r == -EMSGSIZE)
			(void)conn_reply(&s->c, "500 5.5.2 line too long");
		else if (r < 0)
			s->quit = 1;
		if (r < 0)
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
	unsigned fails;

	while (*initial == ' ')
		initial++;
	/* an address (an IPv6 /64) that failed waits before its attempt is
	 * checked, whichever session it uses, by lib/limit's schedule (the
	 * one pop3d uses); other addresses are not slowed. One that failed
	 * smtpmaxfail times is not checked at all, as pop3d refuses one at
	 * pop3maxfail: cut off there, it would go on guessing here */
	fails = limit_get_ip(s->limit, s->ip.s);
	if (s->maxfail && fails >= s->maxfail) {
		(void)conn_reply(&s->c, "454 4.7.0 too many failed logins from "
				 "your address; try again later");
		session_note(s, "454 4.7.0 too many failed logins");
		return;
	}
	if (fails && s->auth_delay) {
		(void)conn_flush(&s->c);
		limit_wait(fails);
	}
	if (mech && (mech != SASL_CRAM || !*initial))
		exchange(s, mech, initial);
	else {
		(void)conn_reply(&s->c, "504 5.5.4 unrecognized authentication "
				 "mechanism");
		session_note(s, "504 5.5.4 unrecognized mechanism");
	}
}
