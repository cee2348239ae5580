/*
 * smtp - one SMTP client session of mta-remote (docs/remote.md).
 *
 * The connection is lib/conn.h: every wait goes through poll() against a
 * deadline, so a whole reply must arrive within the timeout (a server
 * that trickles a byte a second, or a continuation line a minute, is cut
 * off like one that says nothing), each write must finish within it, a
 * connect within its own.
 * A reply line is held to 64 KiB and a reply to 100 lines, so a hostile
 * server costs bounded memory and time.
 *
 * smtp_attempt() returns ATT_NEXT when this address gave no usable
 * session (connect failed, no or a 4xx greeting): the caller tries the
 * next one. ATT_TLS_RETRY asks for the same address again without
 * STARTTLS. ATT_DONE means every recipient's result is set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "msg.h"
#include "peer.h"
#include "remote.h"
#include "utf8.h"

/* a session: its connection (lib/conn.h) on the socket fd, the server's
 * address for messages, the last reply and the line it came in */
struct client {
	struct conn io;
	int fd;
	const char *ip;
	struct reply rp;
	struct str line;
};

/* ---- the connection */

/* io_err - a lib/conn error in this file's words: its -EPROTO is a TLS
 * failure, not a malformed reply */
static int io_err(int r)
{
	return r == -EPROTO ? -EIO : r;
}

/* read_reply - one whole reply into c->rp, sending what is buffered
 * first; -EPROTO for a malformed one. The whole reply must arrive within
 * the timeout, not each of its lines: a server that sends one
 * continuation line just before each line's deadline would otherwise
 * hold the delivery 100 times the timeout. A line is held to
 * REPLY_MAX_LINE bytes without its CR LF */
static int read_reply(struct client *c, int want_ext)
{
	unsigned long keep = c->io.timeout;
	int64_t end = now_ms() + (int64_t)keep * 1000;
	int r;

	reply_reset(&c->rp, want_ext);
	do {
		int64_t left = end - now_ms();

		if (left <= 0) {
			r = -ETIMEDOUT;
			break;
		}
		/* lib/conn counts whole seconds: round up, at most 1 s over */
		c->io.timeout = (unsigned long)((left + 999) / 1000);
		r = io_err(conn_getline(&c->io, &c->line, REPLY_MAX_LINE + 2));
		if (r == 0)
			r = reply_feed(&c->rp, c->line.s, c->line.len);
	} while (r == 0);
	c->io.timeout = keep;
	return r < 0 ? r : 0;
}

/* client_close - TLS state, socket and buffers */
static void client_close(struct client *c)
{
	conn_free(&c->io);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	str_free(&c->line);
	reply_free(&c->rp);
}

/* client_connect - a non-blocking connect that must finish in ctimeout,
 * then the connection on it with the session's timeout */
static int client_connect(struct client *c, const struct sockaddr *sa,
			  socklen_t salen, unsigned long ctimeout,
			  unsigned long timeout)
{
	socklen_t elen = sizeof(int);
	int e = 0, r;

	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
		       SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, sa, salen) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		r = conn_wait(c->fd, POLLOUT,
			      now_ms() + (int64_t)ctimeout * 1000);
		if (r < 0)
			return r;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
			return -errno;
		if (e)
			return -e;
	}
	conn_init(&c->io, c->fd, c->fd, timeout);
	c->io.long_ends = 1;	/* a hostile server is not read to its end */
	return 0;
}

static SSL_CTX *tls_client(void);

/* job_tls - the context for opportunistic STARTTLS, made the first time a
 * server offers it: making it loads OpenSSL's configuration and costs a
 * few milliseconds, most of a run to a server without STARTTLS or to one
 * that is down. NULL: plaintext */
SSL_CTX *job_tls(struct job *j)
{
	if (!j->tls_tried) {
		j->tls_tried = 1;
		j->tls = tls_client();
		if (!j->tls)
			msg_warn("no TLS context: STARTTLS will not be used");
	}
	return j->tls;
}

/* tls_client - a new context for opportunistic STARTTLS */
static SSL_CTX *tls_client(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* client_tls - the client side of the handshake, no certificate checks:
 * opportunistic TLS protects against passive eavesdropping only. Bytes the
 * server sent before it are dropped by lib/conn, never read as replies */
static int client_tls(struct client *c, SSL_CTX *ctx, const char *name)
{
	int r = conn_tls_connect(&c->io, ctx, name);

	return r < 0 && r != -ETIMEDOUT ? -ECONNABORTED : r;
}

/* why - an error code of this file as words for a result */
static const char *why(int r)
{
	switch (r) {
	case -ETIMEDOUT:
		return "timed out";
	case -ECONNRESET:
	case -EPIPE:
		return "connection closed";
	case -EMSGSIZE:
		return "reply line too long";
	case -EPROTO:
		return "malformed reply";
	case -EIO:
		return "TLS error";
	case -ECONNABORTED:
		return "TLS handshake failed";
	default:
		return strerror(-r);
	}
}

/* ---- the transaction */

/* cmd - send a command and read its reply; -errno when the session died */
static int cmd(struct client *c, const char *line, int want_ext)
{
	int r = conn_puts(&c->io, line);

	return r < 0 ? r : read_reply(c, want_ext);
}

/* ehlo - EHLO, or HELO when EHLO is refused as a 5xx; 0 or -errno */
static int ehlo(struct client *c, struct job *j, struct str *buf)
{
	int r;

	str_trunc(buf, 0);
	if (str_catf(buf, "EHLO %s\r\n", j->me))
		return -ENOMEM;
	r = cmd(c, buf->s, 1);
	if (r < 0 || c->rp.code / 100 != 5)
		return r;
	str_trunc(buf, 0);
	if (str_catf(buf, "HELO %s\r\n", j->me))
		return -ENOMEM;
	r = cmd(c, buf->s, 0);
	c->rp.ext = 0;
	return r;
}

/* str_copy_reply - keep the text of the reply just read */
static int str_copy_reply(struct str *to, struct client *c)
{
	return str_copyb(to, str_cstr(&c->rp.text), c->rp.text.len);
}

/* send_body - the message from body_fd, dot-stuffed, then the dot; it is
 * encoded straight into the connection's output buffer */
static int send_body(struct client *c, struct job *j, struct str *err)
{
	struct dotstuff ds;
	char buf[65536];

	dot_start(&ds);
	if (lseek(j->body_fd, j->body_off, SEEK_SET) < 0) {
		(void)str_catf(err, "cannot read the message: %s",
			       strerror(errno));
		return -errno;
	}
	for (;;) {
		ssize_t n = read(j->body_fd, buf, sizeof buf);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			(void)str_catf(err, "cannot read the message: %s",
				       strerror(errno));
			return r;
		}
		r = n ? dot_encode(&ds, buf, (size_t)n, &c->io.out)
		      : dot_finish(&ds, &c->io.out);
		if (r == 0)
			r = io_err(conn_flush(&c->io));
		if (r < 0) {
			(void)str_catf(err, "connection to %s died while "
				       "sending the message: %s", c->ip,
				       why(r));
			return r;
		}
		if (n == 0)
			return 0;
	}
}

/* one transaction's progress */
struct txn {
	struct str cmds;	/* commands not yet sent */
	struct str mail;	/* the text of the reply to MAIL */
	char *state;		/* per recipient: 1 RCPT sent, 2 accepted */
	size_t accepted;
	int pipe;		/* PIPELINING: one write, replies in order */
	int mail_code, data_code;
};

/* died - the session died in the middle of the transaction: err says so;
 * returns r */
static int died(struct client *c, struct str *err, int r)
{
	str_trunc(err, 0);
	(void)str_catf(err, "connection to %s died: %s", c->ip, why(r));
	return r;
}

/* needs_utf8 - an address of the envelope is not ASCII */
static int needs_utf8(const struct job *j)
{
	int utf8 = utf8_8bit(j->sender, strlen(j->sender));
	size_t i;

	for (i = 0; i < j->nrcpt; i++)
		utf8 |= utf8_8bit(j->rcpt[i], strlen(j->rcpt[i]));
	return utf8;
}

/* no_utf8_here - RFC 6531 3.4: no 8-bit address goes to a server that
 * did not offer SMTPUTF8, and the sender learns why (Postfix bounces it
 * too): an 8-bit sender fails every recipient, an 8-bit recipient fails
 * alone and the others go on. 1 when none is left to send */
static int no_utf8_here(const struct client *c, struct job *j)
{
	static const char why[] = "5.6.7 an address of this message is UTF-8, "
				  "and %s does not offer SMTPUTF8";
	size_t i, open = 0;

	if (utf8_8bit(j->sender, strlen(j->sender))) {
		job_fail_open(j, RES_F, why, c->ip);
		return 1;
	}
	for (i = 0; i < j->nrcpt; i++) {
		if (j->res[i].kind != RES_NONE)
			continue;
		if (utf8_8bit(j->rcpt[i], strlen(j->rcpt[i])))
			(void)result_set(&j->res[i], RES_F, why, c->ip);
		else
			open++;
	}
	return open == 0;
}

/* mail_cmd - MAIL FROM with SIZE and SMTPUTF8 where the server has them
 * and the message needs them, into t->cmds */
static int mail_cmd(struct job *j, unsigned ext, struct txn *t)
{
	int utf8 = needs_utf8(j);

	if (str_catf(&t->cmds, "MAIL FROM:<%s>", j->sender) ||
	    ((ext & EXT_SIZE) && j->body_size >= 0 &&
	     str_catf(&t->cmds, " SIZE=%llu",
		      (unsigned long long)j->body_size)) ||
	    (utf8 && (ext & EXT_SMTPUTF8) && str_cats(&t->cmds, " SMTPUTF8")) ||
	    str_cats(&t->cmds, "\r\n"))
		return -ENOMEM;
	return 0;
}

/* mail_reply - keep the reply to MAIL just read */
static int mail_reply(struct client *c, struct txn *t)
{
	t->mail_code = c->rp.code;
	return str_copy_reply(&t->mail, c);
}

/* mail_refused - every open recipient fails with MAIL's reply */
static void mail_refused(struct client *c, struct job *j, struct txn *t)
{
	job_fail_open(j, t->mail_code / 100 == 5 ? RES_F : RES_T,
		      "%s does not like sender: %s", c->ip, str_cstr(&t->mail));
}

/* rcpt_reply - the reply to one RCPT into state and result */
static void rcpt_reply(struct client *c, struct job *j, size_t i,
		       struct txn *t)
{
	if (c->rp.code / 100 == 2) {
		t->state[i] = 2;
		t->accepted++;
	} else {
		(void)result_set(&j->res[i], c->rp.code / 100 == 5 ?
				 RES_F : RES_T,
				 "%s does not like recipient: %s", c->ip,
				 c->rp.text.s);
	}
}

/* rcpts - RCPT for every recipient still open; without PIPELINING each
 * waits for its reply, with it they stay in t->cmds */
static int rcpts(struct client *c, struct job *j, struct txn *t)
{
	size_t i;
	int r;

	for (i = 0; i < j->nrcpt; i++) {
		if (j->res[i].kind != RES_NONE)
			continue;	/* refused before we started */
		if (str_catf(&t->cmds, "RCPT TO:<%s>\r\n", j->rcpt[i]))
			return -ENOMEM;
		t->state[i] = 1;
		if (t->pipe)
			continue;
		r = cmd(c, t->cmds.s, 0);
		str_trunc(&t->cmds, 0);
		if (r < 0)
			return r;
		rcpt_reply(c, j, i, t);
	}
	return 0;
}

/* pipelined - send MAIL, the RCPTs and DATA in one write (RFC 2920) and
 * read their replies in order, one per command sent; 1 when there is no
 * message to send after all */
static int pipelined(struct client *c, struct job *j, struct txn *t)
{
	int ok, r = str_cats(&t->cmds, "DATA\r\n");
	size_t i;

	if (r == 0)
		r = cmd(c, t->cmds.s, 0);
	if (r < 0 || (r = mail_reply(c, t)) < 0)
		return r;
	ok = t->mail_code / 100 == 2;
	/* settled now: a server may hang up after refusing MAIL */
	if (!ok)
		mail_refused(c, j, t);
	for (i = 0; i < j->nrcpt; i++) {
		if (t->state[i] != 1)
			continue;
		r = read_reply(c, 0);
		if (r < 0)
			return r;
		if (ok)
			rcpt_reply(c, j, i, t);
	}
	r = read_reply(c, 0);
	if (r < 0)
		return r;
	t->data_code = c->rp.code;
	if (ok && t->accepted)
		return 0;
	/* DATA accepted with nobody to deliver to: send an empty message,
	 * which no recipient gets */
	if (t->data_code == 354 && (r = cmd(c, ".\r\n", 0)) < 0)
		return r;
	return 1;
}

/* data - after the reply to DATA: the message and the final reply, which
 * settles every open recipient. A session that dies here leaves err
 * saying where */
static int data(struct client *c, struct job *j, struct txn *t,
		struct str *err)
{
	int r;

	if (t->data_code != 354) {
		job_fail_open(j, t->data_code / 100 == 5 ? RES_F : RES_T,
			      "%s failed on DATA command: %s", c->ip,
			      c->rp.text.s);
		return 0;
	}
	r = send_body(c, j, err);
	if (r < 0)
		return r;
	r = read_reply(c, 0);
	if (r < 0) {
		/* the server may have the message: it is delivered twice if
		 * it did, which beats losing it (RFC 1047) */
		str_trunc(err, 0);
		(void)str_catf(err, "connection to %s died after I sent the "
			       "message: %s", c->ip, why(r));
		return r;
	}
	if (c->rp.code / 100 == 2)
		job_fail_open(j, RES_D, "%s accepted message: %s", c->ip,
			      c->rp.text.s);
	else
		job_fail_open(j, c->rp.code / 100 == 5 ? RES_F : RES_T,
			      "%s failed after I sent the message: %s", c->ip,
			      c->rp.text.s);
	return 0;
}

/* steps - MAIL, the RCPTs and DATA, with or without PIPELINING; 0 with
 * the reply to DATA in t->data_code, 1 when the transaction is over, or
 * an error */
static int steps(struct client *c, struct job *j, struct txn *t)
{
	int r;

	if (t->pipe) {
		r = rcpts(c, j, t);
		return r < 0 ? r : pipelined(c, j, t);
	}
	r = cmd(c, t->cmds.s, 0);
	str_trunc(&t->cmds, 0);
	if (r < 0 || (r = mail_reply(c, t)) < 0)
		return r;
	if (t->mail_code / 100 != 2) {
		mail_refused(c, j, t);
		return 1;
	}
	r = rcpts(c, j, t);
	if (r < 0 || t->accepted == 0)
		return r < 0 ? r : 1;
	r = cmd(c, "DATA\r\n", 0);
	t->data_code = c->rp.code;
	return r;
}

/* transaction - MAIL, RCPTs, DATA, message; sets every result. A session
 * that dies leaves the open results to the caller, with err saying why */
static int transaction(struct client *c, struct job *j, unsigned ext,
		       struct str *err)
{
	struct txn t = {.cmds = STR_INIT, .mail = STR_INIT,
			.pipe = (ext & EXT_PIPELINING) != 0};
	int r = -ENOMEM;

	if (!(ext & EXT_SMTPUTF8) && no_utf8_here(c, j))
		return 0;	/* nothing left to send here */
	t.state = calloc(j->nrcpt ? j->nrcpt : 1, 1);
	if (t.state && mail_cmd(j, ext, &t) == 0) {
		r = steps(c, j, &t);
		if (r < 0 && r != -ENOMEM)
			(void)died(c, err, r);
		else if (r == 0)
			r = data(c, j, &t, err);
		else if (r == 1)
			r = 0;
	}
	free(t.state);
	str_free(&t.cmds);
	str_free(&t.mail);
	return r;
}

/* smtp_attempt - one session with the address sa (see the top) */
int smtp_attempt(struct job *j, const char *name, const struct sockaddr *sa,
		 socklen_t salen, int use_tls)
{
	struct client c = {.fd = -1};
	struct str b = STR_INIT, err = STR_INIT;
	char ip[PEER_TEXT_MAX];
	unsigned ext;
	int r, ret = ATT_DONE;
	size_t i;

	(void)peer_text(sa, salen, ip, sizeof ip);
	c.ip = ip;
	conn_init(&c.io, -1, -1, j->timeout);	/* no socket yet */
	str_trunc(&j->last_err, 0);
	r = client_connect(&c, sa, salen, j->ctimeout, j->timeout);
	if (r < 0) {
		(void)str_catf(&j->last_err, "%s: connect: %s", ip,
			       r == -ETIMEDOUT ? "timed out" : strerror(-r));
		ret = ATT_NEXT;
		goto out;
	}
	r = read_reply(&c, 0);
	if (r < 0 || c.rp.code / 100 == 4 || c.rp.code / 100 == 3 ||
	    c.rp.code == 0) {
		if (r < 0)
			(void)str_catf(&j->last_err, "%s: greeting: %s", ip,
				       why(r));
		else
			(void)str_catf(&j->last_err, "%s said: %s", ip,
				       c.rp.text.s);
		ret = ATT_NEXT;
		goto out;
	}
	if (c.rp.code / 100 == 5) {
		job_fail_open(j, RES_F, "%s refused mail at its greeting: %s",
			      ip, c.rp.text.s);
		goto quit;
	}
	r = ehlo(&c, j, &b);
	if (r < 0)
		goto died;
	if (c.rp.code / 100 != 2) {
		job_fail_open(j, RES_T, "%s rejected my name: %s", ip,
			      c.rp.text.s);
		goto quit;
	}
	ext = c.rp.ext;
	if (use_tls && (ext & EXT_STARTTLS) && job_tls(j)) {
		r = cmd(&c, "STARTTLS\r\n", 0);
		if (r == 0 && c.rp.code == 220)
			r = client_tls(&c, j->tls, name);
		if (r < 0) {
			/* a server that cannot finish TLS may still take the
			 * mail in plaintext: the caller reconnects once */
			(void)str_catf(&j->last_err, "%s: STARTTLS: %s", ip,
				       why(r));
			ret = ATT_TLS_RETRY;
			goto out;
		}
		if (c.rp.code == 220) {
			r = ehlo(&c, j, &b);
			if (r < 0)
				goto died;
			if (c.rp.code / 100 != 2) {
				job_fail_open(j, RES_T,
					      "%s rejected my name: %s", ip,
					      c.rp.text.s);
				goto quit;
			}
			ext = c.rp.ext;
		}
	}
	r = transaction(&c, j, ext, &err);
	if (r == -ENOMEM) {
		job_fail_open(j, RES_T, "out of memory");
		goto out;
	}
	if (r < 0) {
		job_fail_open(j, RES_T, "%s", err.len ? err.s : "session died");
		goto out;
	}
quit:
	c.io.timeout = c.io.timeout < 10 ? c.io.timeout : 10;
	(void)cmd(&c, "QUIT\r\n", 0);
	goto out;
died:
	(void)died(&c, &err, r);
	job_fail_open(j, RES_T, "%s", str_cstr(&err));
out:
	if (ret == ATT_DONE)
		for (i = 0; i < j->nrcpt; i++)
			if (j->res[i].kind == RES_NONE)
				(void)result_set(&j->res[i], RES_T,
						 "%s: no result", ip);
	client_close(&c);
	str_free(&b);
	str_free(&err);
	return ret;
}
