/*
 * smtp - one SMTP client session of mta-remote (docs/remote.md).
 *
 * The socket is non-blocking and every wait goes through poll() against a
 * deadline: a reply line must arrive whole within the timeout (a server
 * that trickles a byte a second is cut off like one that says nothing),
 * each write must finish within it, a connect within its own. A reply
 * line is held to 64 KiB and a reply to 100 lines, so a hostile server
 * costs bounded memory and time.
 *
 * smtp_attempt() returns ATT_NEXT when this address gave no usable
 * session (connect failed, no or a 4xx greeting): the caller tries the
 * next one. ATT_TLS_RETRY asks for the same address again without
 * STARTTLS. ATT_DONE means every recipient's result is set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "peer.h"
#include "remote.h"

/* a connection: socket, optional TLS, input buffer consumed from pos */
struct conn {
	int fd;
	SSL *ssl;
	struct str in;
	size_t pos;
	unsigned long timeout;
	const char *ip;
	struct reply rp;
	struct str line;
};

/* ---- the connection */

/* now_ms - a monotonic clock for deadlines */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd - until fd is ready for ev or the deadline passed */
static int wait_fd(int fd, short ev, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = ev};
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&p, 1, left > 3600000 ? 3600000 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* tls_wait - the poll direction a non-blocking SSL call asked for;
 * 0: an error that ends the session */
static short tls_wait(SSL *ssl, int ret)
{
	switch (SSL_get_error(ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return POLLIN;
	case SSL_ERROR_WANT_WRITE:
		return POLLOUT;
	default:
		return 0;
	}
}

/* conn_fill - read at least one more byte into c->in */
static int conn_fill(struct conn *c, int64_t deadline)
{
	char buf[16384];

	if (c->pos == c->in.len) {
		c->pos = 0;
		str_trunc(&c->in, 0);
	}
	for (;;) {
		ssize_t n;
		short ev = POLLIN;
		int r;

		if (c->ssl) {
			int k;

			ERR_clear_error();
			k = SSL_read(c->ssl, buf, sizeof buf);
			n = k;
			if (k <= 0) {
				if (SSL_get_error(c->ssl, k) ==
				    SSL_ERROR_ZERO_RETURN)
					return -ECONNRESET;
				ev = tls_wait(c->ssl, k);
				if (!ev)
					return -EIO;
			}
		} else {
			n = read(c->fd, buf, sizeof buf);
			if (n == 0)
				return -ECONNRESET;
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					return -errno;
			}
			ev = POLLIN;
		}
		if (n > 0)
			return str_catb(&c->in, buf, (size_t)n) ? -ENOMEM : 0;
		r = wait_fd(c->fd, ev, deadline);
		if (r < 0)
			return r;
	}
}

/* conn_getline - one line into c->line, CR LF or LF removed; the whole
 * line must arrive before the timeout */
static int conn_getline(struct conn *c)
{
	int64_t deadline = now_ms() + (int64_t)c->timeout * 1000;
	size_t scanned = 0;
	int r;

	for (;;) {
		const char *base = c->in.s + c->pos;
		size_t have = c->in.len - c->pos;
		const char *lf = have > scanned ?
			memchr(base + scanned, '\n', have - scanned) : NULL;

		if (lf) {
			size_t len = (size_t)(lf - base);

			c->pos += len + 1;
			if (len && base[len - 1] == '\r')
				len--;
			if (len > REPLY_MAX_LINE)
				return -EMSGSIZE;
			return str_copyb(&c->line, base, len) ? -ENOMEM : 0;
		}
		scanned = have;
		if (have > REPLY_MAX_LINE + 1)
			return -EMSGSIZE;
		if (c->pos > 0 && c->pos == c->in.len) {
			c->pos = 0;
			str_trunc(&c->in, 0);
		} else if (c->pos > REPLY_MAX_LINE) {
			memmove(c->in.s, c->in.s + c->pos, have);
			str_trunc(&c->in, have);
			c->pos = 0;
		}
		r = conn_fill(c, deadline);
		if (r < 0)
			return r;
	}
}

/* conn_reply - one whole reply into c->rp; -EPROTO for a malformed one */
static int conn_reply(struct conn *c, int want_ext)
{
	int r;

	reply_reset(&c->rp, want_ext);
	do {
		r = conn_getline(c);
		if (r == 0)
			r = reply_feed(&c->rp, c->line.s, c->line.len);
	} while (r == 0);
	return r < 0 ? r : 0;
}

/* conn_write - all n bytes before the timeout */
static int conn_write(struct conn *c, const char *buf, size_t n)
{
	int64_t deadline = now_ms() + (int64_t)c->timeout * 1000;

	while (n > 0) {
		ssize_t w;
		short ev = POLLOUT;
		int r;

		if (c->ssl) {
			int k, chunk = n > 65536 ? 65536 : (int)n;

			ERR_clear_error();
			k = SSL_write(c->ssl, buf, chunk);
			w = k;
			if (k <= 0) {
				ev = tls_wait(c->ssl, k);
				if (!ev)
					return -EIO;
			}
		} else {
			w = send(c->fd, buf, n, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				return -errno;
		}
		if (w > 0) {
			buf += w;
			n -= (size_t)w;
			continue;
		}
		r = wait_fd(c->fd, ev, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

/* conn_close - TLS state, socket and buffers */
static void conn_close(struct conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	str_free(&c->in);
	str_free(&c->line);
	reply_free(&c->rp);
}

/* conn_connect - a non-blocking connect that must finish in ctimeout */
static int conn_connect(struct conn *c, const struct sockaddr *sa,
			socklen_t salen, unsigned long ctimeout)
{
	int64_t deadline = now_ms() + (int64_t)ctimeout * 1000;
	socklen_t elen = sizeof(int);
	int e = 0, r;

	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
		       SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	if (connect(c->fd, sa, salen) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	r = wait_fd(c->fd, POLLOUT, deadline);
	if (r < 0)
		return r;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
		return -errno;
	return -e;
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

/* conn_tls - the client side of the handshake, no certificate checks:
 * opportunistic TLS protects against passive eavesdropping only */
static int conn_tls(struct conn *c, SSL_CTX *ctx, const char *name)
{
	int64_t deadline = now_ms() + (int64_t)c->timeout * 1000;
	struct in6_addr a;

	c->ssl = SSL_new(ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return -ENOMEM;
	if (inet_pton(AF_INET, name, &a) != 1 &&
	    inet_pton(AF_INET6, name, &a) != 1)
		(void)SSL_set_tlsext_host_name(c->ssl, name);
	for (;;) {
		int k, r;
		short ev;

		ERR_clear_error();
		k = SSL_connect(c->ssl);
		if (k == 1)
			return 0;
		ev = tls_wait(c->ssl, k);
		if (!ev)
			return -ECONNABORTED;
		r = wait_fd(c->fd, ev, deadline);
		if (r < 0)
			return r;
	}
}

/* why - an error code of this file as words for a result */
static const char *why(int r)
{
	switch (r) {
	case -ETIMEDOUT:
		return "timed out";
	case -ECONNRESET:
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
static int cmd(struct conn *c, const char *line, int want_ext)
{
	int r = conn_write(c, line, strlen(line));

	return r < 0 ? r : conn_reply(c, want_ext);
}

/* ehlo - EHLO, or HELO when EHLO is refused as a 5xx; 0 or -errno */
static int ehlo(struct conn *c, struct job *j, struct str *buf)
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
static int str_copy_reply(struct str *to, struct conn *c)
{
	return str_copyb(to, str_cstr(&c->rp.text), c->rp.text.len);
}

/* has_8bit - an address that needs SMTPUTF8 */
static int has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* send_body - the message from body_fd, dot-stuffed, then the dot */
static int send_body(struct conn *c, struct job *j, struct str *err)
{
	struct str out = STR_INIT;
	struct dotstuff ds;
	char buf[65536];
	int r = 0;

	dot_start(&ds);
	if (lseek(j->body_fd, j->body_off, SEEK_SET) < 0) {
		r = -errno;
		(void)str_catf(err, "cannot read the message: %s",
			       strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n = read(j->body_fd, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			(void)str_catf(err, "cannot read the message: %s",
				       strerror(errno));
			goto out;
		}
		str_trunc(&out, 0);
		r = n ? dot_encode(&ds, buf, (size_t)n, &out)
		      : dot_finish(&ds, &out);
		if (r == 0)
			r = conn_write(c, out.s, out.len);
		if (r < 0) {
			(void)str_catf(err, "connection to %s died while "
				       "sending the message: %s", c->ip,
				       why(r));
			goto out;
		}
		if (n == 0)
			break;
	}
out:
	str_free(&out);
	return r;
}

/* rcpt_reply - the reply to one RCPT into state and result */
static void rcpt_reply(struct conn *c, struct job *j, size_t i, char *state,
		       size_t *accepted)
{
	if (c->rp.code / 100 == 2) {
		state[i] = 2;
		(*accepted)++;
	} else {
		(void)result_set(&j->res[i], c->rp.code / 100 == 5 ?
				 RES_F : RES_T,
				 "%s does not like recipient: %s", c->ip,
				 c->rp.text.s);
	}
}

/* transaction - MAIL, RCPTs, DATA, message; sets every result. A session
 * that dies leaves the open results to the caller, with err saying why.
 * With PIPELINING, MAIL, every RCPT and DATA go in one write (RFC 2920)
 * and the replies are read in order, one per command sent. */
static int transaction(struct conn *c, struct job *j, unsigned ext,
		       struct str *err)
{
	struct str b = STR_INIT, mail = STR_INIT;
	size_t i, accepted = 0;
	int pipe = (ext & EXT_PIPELINING) != 0, utf8 = has_8bit(j->sender);
	int mail_code = 0, r = 0, data_code = 0;
	char *state = calloc(j->nrcpt ? j->nrcpt : 1, 1); /* 1 sent, 2 ok */

	if (!state)
		return -ENOMEM;
	for (i = 0; i < j->nrcpt; i++)
		utf8 |= has_8bit(j->rcpt[i]);
	if (str_catf(&b, "MAIL FROM:<%s>", j->sender) ||
	    ((ext & EXT_SIZE) && j->body_size >= 0 &&
	     str_catf(&b, " SIZE=%llu", (unsigned long long)j->body_size)) ||
	    (utf8 && (ext & EXT_SMTPUTF8) && str_cats(&b, " SMTPUTF8")) ||
	    str_cats(&b, "\r\n")) {
		r = -ENOMEM;
		goto out;
	}
	if (!pipe) {
		r = cmd(c, b.s, 0);
		if (r < 0)
			goto died;
		str_trunc(&b, 0);
		mail_code = c->rp.code;
		if (str_copy_reply(&mail, c)) {
			r = -ENOMEM;
			goto out;
		}
		if (mail_code / 100 != 2)
			goto mail_refused;
	}
	for (i = 0; i < j->nrcpt; i++) {
		if (j->res[i].kind != RES_NONE)
			continue;	/* refused before we started */
		if (str_catf(&b, "RCPT TO:<%s>\r\n", j->rcpt[i])) {
			r = -ENOMEM;
			goto out;
		}
		state[i] = 1;
		if (pipe)
			continue;
		r = cmd(c, b.s, 0);
		str_trunc(&b, 0);
		if (r < 0)
			goto died;
		rcpt_reply(c, j, i, state, &accepted);
	}
	if (pipe) {
		if (str_cats(&b, "DATA\r\n")) {
			r = -ENOMEM;
			goto out;
		}
		r = conn_write(c, b.s, b.len);
		if (r == 0)
			r = conn_reply(c, 0);
		if (r < 0)
			goto died;
		mail_code = c->rp.code;
		if (str_copy_reply(&mail, c)) {
			r = -ENOMEM;
			goto out;
		}
		/* settled now: a server may hang up after refusing MAIL */
		if (mail_code / 100 != 2)
			job_fail_open(j, mail_code / 100 == 5 ? RES_F : RES_T,
				      "%s does not like sender: %s", c->ip,
				      str_cstr(&mail));
		for (i = 0; i < j->nrcpt; i++) {
			if (state[i] != 1)
				continue;
			r = conn_reply(c, 0);
			if (r < 0)
				goto died;
			if (mail_code / 100 == 2)
				rcpt_reply(c, j, i, state, &accepted);
		}
		r = conn_reply(c, 0);
		if (r < 0)
			goto died;
		data_code = c->rp.code;
		if (data_code == 354 &&
		    (mail_code / 100 != 2 || accepted == 0)) {
			/* DATA accepted with nobody to deliver to: send an
			 * empty message, which no recipient gets */
			r = cmd(c, ".\r\n", 0);
			if (r < 0)
				goto died;
		}
		if (mail_code / 100 != 2 || accepted == 0)
			goto out;
	} else {
		if (accepted == 0)
			goto out;
		r = cmd(c, "DATA\r\n", 0);
		if (r < 0)
			goto died;
		data_code = c->rp.code;
	}
	if (data_code != 354) {
		job_fail_open(j, data_code / 100 == 5 ? RES_F : RES_T,
			      "%s failed on DATA command: %s", c->ip,
			      c->rp.text.s);
		goto out;
	}
	r = send_body(c, j, err);
	if (r < 0)
		goto out;
	r = conn_reply(c, 0);
	if (r < 0) {
		/* the server may have the message: it is delivered twice if
		 * it did, which beats losing it (RFC 1047) */
		str_trunc(err, 0);
		(void)str_catf(err, "connection to %s died after I sent the "
			       "message: %s", c->ip, why(r));
		goto out;
	}
	if (c->rp.code / 100 == 2)
		job_fail_open(j, RES_D, "%s accepted message: %s", c->ip,
			      c->rp.text.s);
	else
		job_fail_open(j, c->rp.code / 100 == 5 ? RES_F : RES_T,
			      "%s failed after I sent the message: %s", c->ip,
			      c->rp.text.s);
	goto out;
mail_refused:
	job_fail_open(j, mail_code / 100 == 5 ? RES_F : RES_T,
		      "%s does not like sender: %s", c->ip, str_cstr(&mail));
	goto out;
died:
	str_trunc(err, 0);
	(void)str_catf(err, "connection to %s died: %s", c->ip, why(r));
out:
	free(state);
	str_free(&b);
	str_free(&mail);
	return r;
}

/* smtp_attempt - one session with the address sa (see the top) */
int smtp_attempt(struct job *j, const char *name, const struct sockaddr *sa,
		 socklen_t salen, int use_tls)
{
	struct conn c = {.fd = -1, .timeout = j->timeout};
	struct str b = STR_INIT, err = STR_INIT;
	char ip[PEER_TEXT_MAX];
	unsigned ext;
	int r, ret = ATT_DONE;
	size_t i;

	(void)peer_text(sa, salen, ip, sizeof ip);
	c.ip = ip;
	str_trunc(&j->last_err, 0);
	r = conn_connect(&c, sa, salen, j->ctimeout);
	if (r < 0) {
		(void)str_catf(&j->last_err, "%s: connect: %s", ip,
			       r == -ETIMEDOUT ? "timed out" : strerror(-r));
		ret = ATT_NEXT;
		goto out;
	}
	r = conn_reply(&c, 0);
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
		if (r == 0 && c.rp.code == 220) {
			/* bytes the server sent before the handshake are
			 * not protected by it: never read them as replies */
			c.pos = c.in.len;
			r = conn_tls(&c, j->tls, name);
		}
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
	c.timeout = c.timeout < 10 ? c.timeout : 10;
	(void)cmd(&c, "QUIT\r\n", 0);
	goto out;
died:
	str_trunc(&err, 0);
	(void)str_catf(&err, "connection to %s died: %s", ip, why(r));
	job_fail_open(j, RES_T, "%s", str_cstr(&err));
out:
	if (ret == ATT_DONE)
		for (i = 0; i < j->nrcpt; i++)
			if (j->res[i].kind == RES_NONE)
				(void)result_set(&j->res[i], RES_T,
						 "%s: no result", ip);
	conn_close(&c);
	str_free(&b);
	str_free(&err);
	return ret;
}
