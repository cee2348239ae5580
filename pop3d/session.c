/*
 * session - one POP3 session: RFC 1939 with RFC 2449 CAPA and response
 * codes, RFC 2595 STLS and RFC 5034 AUTH (PLAIN and CRAM-MD5).
 *
 * Commands come from one table {name, handler, states}. In the
 * AUTHORIZATION state only CAPA, USER, PASS, AUTH, STLS and QUIT are
 * valid, and nothing touches a mailbox; the mailbox is opened (locked,
 * listed) only by a successful login, which moves the session to the
 * TRANSACTION state. A keyword not in the table gets "-ERR unknown
 * command"; one that is there but not valid now gets "-ERR command not
 * valid in this state". Errors in a command are answered -ERR and the
 * session goes on; it ends on QUIT, a timeout, a vanished client, a
 * failed TLS handshake, 3 failed logins or 20 bad commands.
 *
 * Deletions happen in mbox_commit() at QUIT and nowhere else, with the
 * termination signals blocked, so a session that is dropped or killed
 * before that has deleted nothing.
 *
 * Every login (USER/PASS, AUTH PLAIN, AUTH CRAM-MD5) goes through
 * login(): lib/login's check, shared with mta-smtpd, then the same
 * failure counting, log line and delay. AUTH's exchanges are lib/sasl's.
 * CRAM-MD5 is offered only where PLAIN is: a digest sent in the clear
 * lets a listener guess the password offline.
 *
 * The session writes one log line when it ends (who, from where, what
 * came of it) and one for each failed login (user and address; never the
 * password), on stderr, which `facteur run` puts into log/current.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdbx.h"
#include "fsx.h"
#include "grant.h"
#include "log.h"
#include "login.h"
#include "msg.h"
#include "name.h"
#include "pop3d.h"
#include "sasl.h"

#define SESSION_MAXFAIL 3	/* failed logins before we hang up */
#define SESSION_MAXBAD 20	/* bad commands before we hang up */

_Static_assert(sizeof "PASS \r\n" - 1 + PW_MAX <= POP3_LINE_MAX &&
	       LOGIN_PLAIN_B64_MAX + 2 <= POP3_SASL_MAX,
	       "PASS and AUTH carry any password vadmin stores");
#define SEND_CHUNK 65536	/* converted bytes sent at once */

struct sess {
	const struct cfg *cfg;
	struct conn c;
	const char *ip;		/* "" when the peer has no address */
	int loopback;
	int state;
	struct str user;	/* USER's argument */
	int have_user;
	struct str tried;	/* the last user name tried, for the log */
	unsigned fails, bad;
	struct login login;
	struct mbox mb;
	int mb_open;
	unsigned long nretr;
	size_t ndele;
	uint64_t sent;		/* message octets sent */
	const char *result;
	const char *reason;
	int done;
	struct str line, tmp, tmp2;
};

struct cmd {
	const char *name;
	int (*fn)(struct sess *s, const char *arg, size_t len);
	int states;
};

/* reply - one line; lib/conn adds the CR LF */
static int reply(struct sess *s, const char *text)
{
	return conn_reply(&s->c, "%s", text);
}

/* replyf - one formatted line (checked as printf by conn_reply) */
#define replyf(s, ...) conn_reply(&(s)->c, __VA_ARGS__)

/* plain_ok - may a password be sent on this connection now */
static int plain_ok(const struct sess *s)
{
	return proto_plain_ok(s->c.ssl != NULL, s->loopback,
			      s->cfg->plaintext);
}

/* no_args - the commands that take none refuse any */
static int no_args(struct sess *s, size_t len)
{
	if (len == 0)
		return 0;
	s->bad++;
	(void)reply(s, "-ERR this command takes no arguments");
	return -1;
}

/* msgarg - a message number argument as a 0-based index; answers the
 * client itself when it is not one */
static int msgarg(struct sess *s, const struct proto_tok *t, size_t *i_r)
{
	unsigned long v;

	if (proto_num(t->s, t->len, &v) < 0) {
		s->bad++;
		(void)reply(s, "-ERR invalid message number");
		return -1;
	}
	if (v == 0 || v > s->mb.n) {
		(void)replyf(s, "-ERR no such message, only %zu in maildrop",
			     s->mb.n);
		return -1;
	}
	if (s->mb.m[v - 1].flags & MSG_DELETED) {
		(void)replyf(s, "-ERR message %lu already deleted", v);
		return -1;
	}
	*i_r = v - 1;
	return 0;
}

/* cmd_capa - RFC 2449; what may be used depends on the connection */
static int cmd_capa(struct sess *s, const char *arg, size_t len)
{
	(void)arg;
	if (no_args(s, len))
		return 0;
	if (conn_puts(&s->c, "+OK capability list follows\r\n"
		      "TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
		      "AUTH-RESP-CODE\r\n"))
		return -ENOMEM;
	if (s->state == ST_AUTH && plain_ok(s) &&
	    conn_puts(&s->c, "USER\r\nSASL PLAIN CRAM-MD5\r\n"))
		return -ENOMEM;
	if (s->state == ST_AUTH && s->cfg->tls && !s->c.ssl &&
	    conn_puts(&s->c, "STLS\r\n"))
		return -ENOMEM;
	return reply(s, ".");
}

/* refuse_plain - the answer to a login where passwords may not go */
static int refuse_plain(struct sess *s)
{
	return reply(s, s->cfg->tls ?
		     "-ERR [AUTH] plaintext login is refused on this "
		     "connection; use STLS or pop3s" :
		     "-ERR [AUTH] plaintext login is refused on this "
		     "connection");
}

/* cmd_user - remember the name until PASS */
static int cmd_user(struct sess *s, const char *arg, size_t len)
{
	if (!plain_ok(s))
		return refuse_plain(s);
	if (len == 0) {
		s->bad++;
		return reply(s, "-ERR USER needs a name");
	}
	if (str_copyb(&s->user, arg, len))
		return -ENOMEM;
	s->have_user = 1;
	return reply(s, "+OK");
}

/* user_key - the per-user failure key: local@domain as vadmin folds it
 * (so U%Dom and u@dom count as one user), else the name as typed */
static int user_key(struct str *k, const char *user, size_t ulen)
{
	struct str l = STR_INIT, d = STR_INIT;
	int r;

	k->len = 0;
	if (login_user(user, ulen, &l, &d) == 0)
		r = str_catf(k, "user %s@%s", l.s, d.s);
	else
		r = str_cats(k, "user ") || name_fold(k, user, ulen) ? -ENOMEM :
		    0;
	str_free(&l);
	str_free(&d);
	return r;
}

/* login_failed - count, log, hold back and answer a failed login */
static int login_failed(struct sess *s, const char *user, size_t ulen)
{
	unsigned fi = 0, fu = 0;

	fi = limit_add_ip(s->cfg->ft, s->ip);
	if (user_key(&s->tmp2, user, ulen) == 0)
		fu = limit_add(s->cfg->ft, s->tmp2.s, s->tmp2.len);
	s->fails++;
	s->result = "auth failed";
	slog("auth failed: user=%.*s ip=%s failures: ip %u user %u",
	     (int)(ulen > 128 ? 128 : ulen), user, *s->ip ? s->ip : "local",
	     fi, fu);
	/* before the answer: a guesser cannot go faster than we let it */
	limit_wait(fi > fu ? fi : fu);
	if (s->fails >= SESSION_MAXFAIL) {
		s->done = 1;
		s->reason = "too many failed logins";
	}
	return reply(s, "-ERR [AUTH] authentication failed");
}

/* login - check a user and password (CHAL NULL) or CRAM-MD5 digest of
 * CHAL, and open the mailbox */
static int login(struct sess *s, const char *user, size_t ulen,
		 const char *pass, const struct str *chal)
{
	int r;

	s->have_user = 0;
	if (str_copyb(&s->tried, user, ulen > 128 ? 128 : ulen))
		return -ENOMEM;
	if (*s->ip && limit_get_ip(s->cfg->ft, s->ip) >= s->cfg->maxfail) {
		s->done = 1;
		s->reason = "address refused after too many failed logins";
		return reply(s, "-ERR [SYS/TEMP] too many failed logins from "
			     "your address; try again later");
	}
	/* in a batch, lib/cdbx keeps assign.cdb and the domain's table
	 * mapped from one login to the next of this session process (up to
	 * 100 sessions, lib/server) and only stats each path to see that
	 * vadmin has not replaced it: a stat a table instead of an open,
	 * four reads and a close; each login still sees the tables as they
	 * are when it starts */
	cdbx_batch_begin();
	r = login_check(s->cfg->root, user, ulen, pass, chal, s->cfg->dummy.s,
			ACCT_NOPOP, &s->login);
	cdbx_batch_end();
	if (r == -EACCES)
		return login_failed(s, user, ulen);
	if (r == -EPERM) {
		s->result = "pop3 disabled";
		slog("login refused: user=%.*s ip=%s: POP3 disabled for the "
		     "account", (int)(ulen > 128 ? 128 : ulen), user,
		     *s->ip ? s->ip : "local");
		return reply(s, "-ERR [AUTH] POP3 access disabled for this "
			     "account");
	}
	if (r < 0) {
		slog("cannot check the login of %.*s: %s; run vadmin check",
		     (int)(ulen > 128 ? 128 : ulen), user, msg_err(r));
		return reply(s, "-ERR [SYS/TEMP] cannot check logins now; try "
			     "again later");
	}
	r = mbox_open(&s->mb, s->cfg->root, s->login.maildir.s);
	if (r < 0) {
		mbox_close(&s->mb);
		if (r == -EWOULDBLOCK) {
			s->result = "mailbox in use";
			return reply(s, "-ERR [IN-USE] the mailbox is in use by "
				     "another session");
		}
		s->result = "mailbox error";
		slog("cannot open %s/%s for %s: %s", s->cfg->root,
		     s->login.maildir.s, s->login.addr.s, msg_err(r));
		return reply(s, "-ERR [SYS/TEMP] cannot open the mailbox; try "
			     "again later");
	}
	s->mb_open = 1;
	s->state = ST_TRANS;
	s->result = "login ok";
	r = grant_touch(s->cfg->root, s->ip);
	if (r < 0)
		slog("cannot touch %s/open-smtp/%s: %s", s->cfg->root, s->ip,
		     msg_err(r));
	return replyf(s, "+OK logged in, %zu message%s", s->mb.n,
		      s->mb.n == 1 ? "" : "s");
}

/* forget - wipe what held a password */
static void forget(struct str *sa)
{
	if (sa->s)
		explicit_bzero(sa->s, sa->cap);
	sa->len = 0;
}

/* cmd_pass - RFC 1939: the rest of the line is the password, spaces and
 * all */
static int cmd_pass(struct sess *s, const char *arg, size_t len)
{
	if (!plain_ok(s))
		return refuse_plain(s);
	if (!s->have_user)
		return reply(s, "-ERR USER first");
	/* arg runs to the end of the line, which is NUL-terminated, and
	 * holds no NUL (proto_parse refuses control bytes) */
	(void)len;
	return login(s, s->user.s, s->user.len, arg, NULL);
}

/* auth_end - answer the end of an AUTH exchange (lib/sasl's codes, and
 * conn_line's); a finished one is a login like any other */
static int auth_end(struct sess *s, struct sasl *x, int r)
{
	switch (r) {
	case 0:
		return login(s, x->user.s, x->user.len, x->pass.s,
			     x->mech == SASL_CRAM ? &x->chal : NULL);
	case -EMSGSIZE:
		return reply(s, "-ERR line too long");
	case -ETIMEDOUT:
		s->reason = "timeout";
		s->done = 1;
		return reply(s, "-ERR disconnected for inactivity");
	case -ECANCELED:
		return reply(s, "-ERR authentication cancelled");
	case -EILSEQ:
		return reply(s, "-ERR invalid base64 in the AUTH response");
	case -EINVAL:
		return reply(s, x->mech == SASL_CRAM ?
			     "-ERR malformed AUTH CRAM-MD5 response" :
			     "-ERR malformed AUTH PLAIN response");
	case -EPERM:
		return reply(s, "-ERR [AUTH] logging in as another user is not "
			     "supported");
	case -EPROTO:
		return reply(s, "-ERR CRAM-MD5 takes no initial response");
	case -EAGAIN:
		return reply(s, "-ERR [SYS/TEMP] no randomness for a "
			     "challenge; try again later");
	}
	return r;
}

/* cmd_auth - RFC 5034: PLAIN (with or without an initial response) and
 * CRAM-MD5 (which has none); "+ " and a challenge until it is done */
static int cmd_auth(struct sess *s, const char *arg, size_t len)
{
	struct sasl x = SASL_INIT;
	struct proto_tok t[2];
	size_t n;
	int r, mech;

	if (proto_split(arg, len, t, 2, &n) < 0) {
		s->bad++;
		return reply(s, "-ERR too many arguments");
	}
	if (n == 0) {
		/* the pre-RFC 5034 listing some clients still ask for */
		return conn_puts(&s->c, plain_ok(s) ?
				 "+OK\r\nPLAIN\r\nCRAM-MD5\r\n.\r\n" :
				 "+OK\r\n.\r\n");
	}
	mech = sasl_mech(t[0].s, t[0].len);
	if (mech != SASL_PLAIN && mech != SASL_CRAM)
		return reply(s, "-ERR unsupported authentication mechanism");
	if (!plain_ok(s))
		return refuse_plain(s);
	r = sasl_start(&x, mech, n == 2 ? t[1].s : NULL, n == 2 ? t[1].len : 0,
		       s->cfg->me.s);
	while (r == SASL_MORE) {
		r = replyf(s, "+ %s", x.prompt.s);
		if (r == 0)
			r = conn_getline(&s->c, &s->tmp2, POP3_SASL_MAX);
		if (r == -EPROTO)
			r = -EIO;	/* the TLS layer failed: not -EPROTO's reply */
		if (r == 0)
			r = sasl_step(&x, s->tmp2.s, s->tmp2.len);
	}
	r = auth_end(s, &x, r);
	forget(&s->tmp2);
	sasl_free(&x);
	return r;
}

/* cmd_stls - RFC 2595 */
static int cmd_stls(struct sess *s, const char *arg, size_t len)
{
	int r;

	(void)arg;
	if (no_args(s, len))
		return 0;
	if (s->c.ssl)
		return reply(s, "-ERR TLS is already on");
	if (!s->cfg->tls)
		return reply(s, "-ERR TLS is not available here");
	r = reply(s, "+OK begin TLS negotiation");
	if (r == 0)
		r = conn_tls_accept(&s->c, s->cfg->tls);
	if (r < 0) {
		s->done = 1;
		s->reason = "TLS handshake failed";
		return 0;
	}
	/* RFC 2595: forget everything said in the clear */
	s->have_user = 0;
	forget(&s->user);
	return 0;
}

/* cmd_quit - end the session; in TRANSACTION, the deletions happen now */
static int cmd_quit(struct sess *s, const char *arg, size_t len)
{
	sigset_t all, old;
	size_t gone = 0;
	int r;

	(void)arg;
	if (no_args(s, len))
		return 0;
	s->done = 1;
	s->reason = "quit";
	/* nothing to remove nor move: no signals to hold back */
	if (s->state != ST_TRANS || !mbox_pending(&s->mb))
		return reply(s, s->state != ST_TRANS ? "+OK bye" :
			     "+OK bye, 0 messages deleted");
	/* a SIGTERM from the supervisor waits until the files are gone and
	 * maildirsize says so */
	sigemptyset(&all);
	sigaddset(&all, SIGTERM);
	sigaddset(&all, SIGINT);
	sigaddset(&all, SIGHUP);
	sigprocmask(SIG_BLOCK, &all, &old);
	r = mbox_commit(&s->mb, &gone);
	sigprocmask(SIG_SETMASK, &old, NULL);
	s->ndele = gone;
	if (r < 0) {
		slog("%s: deleting messages: %s", s->login.addr.s, msg_err(r));
		return replyf(s, "-ERR [SYS/TEMP] some deleted messages not "
			      "removed (%zu removed)", gone);
	}
	return replyf(s, "+OK bye, %zu message%s deleted", gone,
		      gone == 1 ? "" : "s");
}

/* cmd_stat - count and size of the messages not marked deleted */
static int cmd_stat(struct sess *s, const char *arg, size_t len)
{
	uint64_t total = 0;
	size_t i, n = 0;
	int r;

	(void)arg;
	if (no_args(s, len))
		return 0;
	r = mbox_sizes(&s->mb);
	if (r < 0)
		return r;
	for (i = 0; i < s->mb.n; i++)
		if (!(s->mb.m[i].flags & MSG_DELETED)) {
			total += s->mb.m[i].octets;
			n++;
		}
	return replyf(s, "+OK %zu %llu", n, (unsigned long long)total);
}

/* scan_listing - LIST and UIDL: one message, or all not deleted */
static int scan_listing(struct sess *s, const char *arg, size_t len,
			int uidl)
{
	struct proto_tok t[1];
	const char *name;
	size_t n, i, nlen;
	uint64_t sz;
	int r;

	if (proto_split(arg, len, t, 1, &n) < 0) {
		s->bad++;
		return reply(s, "-ERR too many arguments");
	}
	if (n == 1) {
		if (msgarg(s, &t[0], &i) < 0)
			return 0;
		if (uidl) {
			mbox_name(&s->mb, i, &name, &nlen);
			r = proto_uidl(name, nlen, &s->tmp2);
			return r ? r : replyf(s, "+OK %zu %s", i + 1, s->tmp2.s);
		}
		(void)mbox_octets(&s->mb, i, &sz);
		return replyf(s, "+OK %zu %llu", i + 1, (unsigned long long)sz);
	}
	if (!uidl && (r = mbox_sizes(&s->mb)) < 0)
		return r;
	r = reply(s, uidl ? "+OK unique-id listing follows" :
		  "+OK scan listing follows");
	for (i = 0; r == 0 && i < s->mb.n; i++) {
		if (s->mb.m[i].flags & MSG_DELETED)
			continue;
		s->tmp.len = 0;
		if (uidl) {
			mbox_name(&s->mb, i, &name, &nlen);
			r = proto_uidl(name, nlen, &s->tmp2);
			if (r == 0)
				r = str_catf(&s->tmp, "%zu %s\r\n", i + 1,
					     s->tmp2.s);
		} else {
			r = str_catf(&s->tmp, "%zu %llu\r\n", i + 1,
				     (unsigned long long)s->mb.m[i].octets);
		}
		if (r == 0)
			r = conn_put(&s->c, s->tmp.s, s->tmp.len);
	}
	return r ? r : reply(s, ".");
}

/* cmd_list - RFC 1939 LIST [msg] */
static int cmd_list(struct sess *s, const char *arg, size_t len)
{
	return scan_listing(s, arg, len, 0);
}

/* cmd_uidl - RFC 1939 UIDL [msg] */
static int cmd_uidl(struct sess *s, const char *arg, size_t len)
{
	return scan_listing(s, arg, len, 1);
}

/* send_msg - message i, whole or its header and `lines` body lines,
 * converted on the way (CRLF, byte-stuffing). Once +OK is out, an error
 * can no longer be told to the client: the session is ended instead, so
 * that a truncated message is never taken for a whole one. */
static int send_msg(struct sess *s, size_t i, int top, unsigned long lines)
{
	struct xfer x;
	int fd = mbox_msgfd(&s->mb, i), r;
	size_t ask = mbox_ask(&s->mb, i);
	uint64_t off = 0;
	const char *p;
	ssize_t n;

	if (fd < 0) {
		if (fd == -ENOENT)
			return replyf(s, "-ERR message %zu was removed by another "
				      "program", i + 1);
		slog("%s: cannot read message %zu: %s", s->login.addr.s, i + 1,
		     msg_err(fd));
		return replyf(s, "-ERR cannot read message %zu", i + 1);
	}
	if (top)
		r = reply(s, "+OK top of message follows");
	else if (s->mb.m[i].flags & MSG_OCTETS)
		r = replyf(s, "+OK %llu octets",
			   (unsigned long long)s->mb.m[i].octets);
	else
		r = reply(s, "+OK message follows");
	xfer_init(&x, top, lines);
	/* the reply and a small message leave in one write, at the next
	 * command's read; a short read is the end of the file (mbox_read) */
	while (r == 0 && !x.done) {
		n = mbox_read(&s->mb, fd, off, ask, &p);
		if (n < 0) {
			r = (int)n;
			break;
		}
		off += (uint64_t)n;
		if (xfer_run(&x, p, (size_t)n, &s->c.out) < (size_t)n &&
		    !x.done)
			r = -ENOMEM;
		if (r == 0 && s->c.out.len >= SEND_CHUNK)
			r = conn_flush(&s->c);
		if ((size_t)n < ask)
			break;
	}
	close(fd);
	if (r == 0)
		r = xfer_end(&x, &s->c.out);
	if (r < 0) {
		s->done = 1;
		s->reason = s->c.dead ? "disconnected during a transfer" :
			    "read error during a transfer";
		if (!s->c.dead)
			slog("%s: reading message %zu: %s", s->login.addr.s,
			     i + 1, msg_err(r));
		return 0;
	}
	if (!top) {
		s->mb.m[i].octets = x.octets;
		s->mb.m[i].flags |= MSG_OCTETS;
		s->nretr++;
	}
	s->sent += x.octets;
	return 0;
}

/* cmd_retr - RFC 1939 RETR msg */
static int cmd_retr(struct sess *s, const char *arg, size_t len)
{
	struct proto_tok t[1];
	size_t n, i;

	if (proto_split(arg, len, t, 1, &n) < 0 || n != 1) {
		s->bad++;
		return reply(s, "-ERR RETR takes one message number");
	}
	if (msgarg(s, &t[0], &i) < 0)
		return 0;
	return send_msg(s, i, 0, 0);
}

/* cmd_top - RFC 1939 TOP msg n */
static int cmd_top(struct sess *s, const char *arg, size_t len)
{
	struct proto_tok t[2];
	unsigned long lines;
	size_t n, i;
	int r;

	if (proto_split(arg, len, t, 2, &n) < 0 || n != 2) {
		s->bad++;
		return reply(s, "-ERR TOP takes a message number and a line "
			     "count");
	}
	if (msgarg(s, &t[0], &i) < 0)
		return 0;
	r = proto_num(t[1].s, t[1].len, &lines);
	if (r == -EINVAL) {
		s->bad++;
		return reply(s, "-ERR invalid line count");
	}
	/* a count too big for a number means the whole body */
	if (r == -ERANGE)
		lines = (unsigned long)-1;
	return send_msg(s, i, 1, lines);
}

/* cmd_dele - RFC 1939 DELE msg: only marked; removed at QUIT */
static int cmd_dele(struct sess *s, const char *arg, size_t len)
{
	struct proto_tok t[1];
	size_t n, i;

	if (proto_split(arg, len, t, 1, &n) < 0 || n != 1) {
		s->bad++;
		return reply(s, "-ERR DELE takes one message number");
	}
	if (msgarg(s, &t[0], &i) < 0)
		return 0;
	s->mb.m[i].flags |= MSG_DELETED;
	return replyf(s, "+OK message %zu deleted", i + 1);
}

/* cmd_noop - RFC 1939 NOOP */
static int cmd_noop(struct sess *s, const char *arg, size_t len)
{
	(void)arg;
	if (no_args(s, len))
		return 0;
	return reply(s, "+OK");
}

/* cmd_rset - RFC 1939 RSET: unmark every deletion */
static int cmd_rset(struct sess *s, const char *arg, size_t len)
{
	size_t i;

	(void)arg;
	if (no_args(s, len))
		return 0;
	for (i = 0; i < s->mb.n; i++)
		s->mb.m[i].flags &= (uint16_t)~MSG_DELETED;
	return replyf(s, "+OK maildrop has %zu message%s", s->mb.n,
		      s->mb.n == 1 ? "" : "s");
}

static const struct cmd cmds[] = {
	{"CAPA", cmd_capa, ST_AUTH | ST_TRANS},
	{"USER", cmd_user, ST_AUTH},
	{"PASS", cmd_pass, ST_AUTH},
	{"AUTH", cmd_auth, ST_AUTH},
	{"STLS", cmd_stls, ST_AUTH},
	{"QUIT", cmd_quit, ST_AUTH | ST_TRANS},
	{"STAT", cmd_stat, ST_TRANS},
	{"LIST", cmd_list, ST_TRANS},
	{"RETR", cmd_retr, ST_TRANS},
	{"DELE", cmd_dele, ST_TRANS},
	{"NOOP", cmd_noop, ST_TRANS},
	{"RSET", cmd_rset, ST_TRANS},
	{"TOP", cmd_top, ST_TRANS},
	{"UIDL", cmd_uidl, ST_TRANS},
};

/* lookup - the table entry of a keyword (upper case), or NULL */
static const struct cmd *lookup(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

/* session_lookup - for tests: 1 valid in state, -1 known but not valid
 * in state, 0 unknown */
int session_lookup(const char *name, int state)
{
	const struct cmd *c = lookup(name);

	return !c ? 0 : (c->states & state) ? 1 : -1;
}

/* dispatch - one command line */
static int dispatch(struct sess *s)
{
	struct pop3_line pl;
	const struct cmd *c;
	int r = proto_parse(s->line.s, s->line.len, &pl);

	if (r == -EILSEQ) {
		s->bad++;
		return reply(s, "-ERR control characters in the command line");
	}
	c = r < 0 ? NULL : lookup(pl.name);
	if (!c) {
		s->bad++;
		return reply(s, "-ERR unknown command");
	}
	if (!(c->states & s->state)) {
		s->bad++;
		return reply(s, "-ERR command not valid in this state");
	}
	r = c->fn(s, pl.arg, pl.arglen);
	if (c->fn == cmd_pass || c->fn == cmd_auth)
		forget(&s->line);
	return r;
}

/* session_run - a whole session on rfd/wfd; tls: start TLS at once
 * (pop3s). Slot `slot` of sess (when not NULL) is left before the last
 * reply goes out: from then on the parent no longer counts this session
 * against the limits. Returns 0; everything worth knowing is in the log
 * line. */
int session_run(const struct cfg *cfg, int rfd, int wfd, const char *ip,
		int tls, struct limit_sess *sess, size_t slot)
{
	struct sess s;
	int r = 0;

	memset(&s, 0, sizeof s);
	s.cfg = cfg;
	s.ip = ip;
	s.loopback = !*ip || peer_loopback(ip);
	s.state = ST_AUTH;
	s.result = "no login";
	s.reason = "disconnected";
	conn_init(&s.c, rfd, wfd, cfg->timeout);
	if (tls && conn_tls_accept(&s.c, cfg->tls) < 0) {
		s.reason = "TLS handshake failed";
		goto out;
	}
	r = replyf(&s, "+OK %s POP3 ready", cfg->me.s);
	while (r == 0 && !s.done) {
		r = conn_getline(&s.c, &s.line, POP3_LINE_MAX);
		if (r == -EMSGSIZE) {
			s.bad++;
			r = reply(&s, "-ERR line too long");
		} else if (r == -ETIMEDOUT) {
			s.reason = "timeout";
			(void)reply(&s, "-ERR disconnected for inactivity");
			break;
		} else if (r == 0) {
			r = dispatch(&s);
		}
		if (r == 0 && s.bad >= SESSION_MAXBAD) {
			s.done = 1;
			s.reason = "too many bad commands";
			r = reply(&s, "-ERR too many bad commands; bye");
		}
	}
	if (r == -ENOMEM)
		s.reason = "out of memory";
	/* the lock goes and the parent stops counting us before the last
	 * reply: a client that logs in again the moment it has read
	 * "+OK bye" must find the mailbox free */
	if (s.mb_open) {
		mbox_close(&s.mb);
		s.mb_open = 0;
	}
	limit_sess_leave(sess, slot);
	(void)conn_flush(&s.c);
out:
	limit_sess_leave(sess, slot);
	slog("session end: ip=%s user=%s tls=%s result=%s retr=%lu dele=%zu "
	     "octets=%llu reason=%s", *ip ? ip : "local",
	     s.login.addr.len ? s.login.addr.s : s.tried.len ? s.tried.s : "-",
	     s.c.ssl ? "yes" : "no", s.result, s.nretr, s.ndele,
	     (unsigned long long)s.sent, s.reason);
	if (s.mb_open)
		mbox_close(&s.mb);
	conn_free(&s.c);
	login_free(&s.login);
	str_wipe(&s.user);
	str_wipe(&s.line);
	str_wipe(&s.tmp);
	str_wipe(&s.tmp2);
	str_free(&s.tried);
	return 0;
}
