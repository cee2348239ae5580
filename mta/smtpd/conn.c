/*
 * conn - one SMTP connection's bytes: bounded reads, buffered replies, TLS.
 *
 * Input is read into a fixed buffer and consumed from there, so commands a
 * client pipelines are handled in order from one read. Replies are
 * collected in c->out and written only when the input buffer is empty and
 * we are about to wait for the client (as Postfix's smtp_flush does): a
 * pipelining client gets all its replies in one write, and a client that
 * waits for each reply still gets it, because we never wait for input
 * with unsent replies. Every read waits at most c->timeout seconds, for
 * a whole command line (conn_getline) or for each buffer of DATA
 * (conn_getbyte).
 */
#include <errno.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fsx.h"
#include "smtpd.h"

/*
 * now_ms - a monotonic clock in milliseconds, for deadlines: in whole
 * seconds a wait that began just before a tick would be cut short by up
 * to a second (found by fuzz_smtpd_line: a 1 s timeout that expired at
 * once)
 */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* conn_init - a connection on two descriptors (the same one for a socket) */
void conn_init(struct conn *c, int rfd, int wfd, unsigned timeout)
{
	memset(c, 0, sizeof *c);
	c->rfd = rfd;
	c->wfd = wfd;
	c->timeout = timeout ? timeout : 1;
}

/* conn_free - release TLS state and buffers (descriptors stay open) */
void conn_free(struct conn *c)
{
	if (c->ssl) {
		(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->ctx) {
		SSL_CTX_free(c->ctx);
		c->ctx = NULL;
	}
	str_free(&c->out);
}

/* conn_flush - write every buffered reply */
int conn_flush(struct conn *c)
{
	size_t done = 0;
	int r = 0;

	if (c->dead) {
		c->out.len = 0;
		return -EPIPE;
	}
	while (done < c->out.len) {
		if (c->ssl) {
			int n = SSL_write(c->ssl, c->out.s + done,
					  (int)(c->out.len - done));

			if (n <= 0) {
				r = -EIO;
				break;
			}
			done += (size_t)n;
		} else {
			r = fsx_write_all(c->wfd, c->out.s + done,
					  c->out.len - done);
			if (r == 0)
				done = c->out.len;
			break;
		}
	}
	c->out.len = 0;
	if (r < 0)
		c->dead = 1;
	return r;
}

/* fill - refill the empty input buffer, waiting until the deadline */
static int fill(struct conn *c, int64_t deadline)
{
	ssize_t n;

	if (conn_flush(c) < 0)
		return LINE_ERR;
	/* TLS may hold decrypted bytes the descriptor no longer shows */
	if (!c->ssl || SSL_pending(c->ssl) <= 0) {
		struct pollfd p = {.fd = c->rfd, .events = POLLIN};
		int r;

		for (;;) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return LINE_TIMEOUT;
			r = poll(&p, 1, (int)left);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return LINE_ERR;
			if (r == 0)
				return LINE_TIMEOUT;
			break;
		}
	}
	if (c->ssl) {
		int k = SSL_read(c->ssl, c->ibuf, sizeof c->ibuf);

		if (k <= 0)
			return SSL_get_error(c->ssl, k) == SSL_ERROR_ZERO_RETURN
				? LINE_EOF : LINE_ERR;
		n = k;
	} else {
		do
			n = read(c->rfd, c->ibuf, sizeof c->ibuf);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return errno == EAGAIN ? LINE_TIMEOUT : LINE_ERR;
		if (n == 0)
			return LINE_EOF;
	}
	c->ipos = 0;
	c->ilen = (size_t)n;
	return LINE_OK;
}

/*
 * conn_getline - one line up to LF, without its CR LF, at most max bytes
 * counting the CR LF. A longer line is read to its end and thrown away:
 * LINE_LONG. A bare LF ends a command line too (many clients send one);
 * a CR left inside the line is the caller's to refuse.
 */
int conn_getline(struct conn *c, struct str *line, size_t max)
{
	int64_t deadline = now_ms() + (int64_t)c->timeout * 1000;
	size_t got = 0;
	int r, is_long = 0;

	str_trunc(line, 0);
	for (;;) {
		unsigned char *p, *lf;
		size_t n;

		if (c->ipos == c->ilen && (r = fill(c, deadline)) != LINE_OK)
			return r;
		p = c->ibuf + c->ipos;
		n = c->ilen - c->ipos;
		lf = memchr(p, '\n', n);
		if (lf)
			n = (size_t)(lf - p) + 1;
		c->ipos += n;
		got += n;
		if (got > max)
			is_long = 1;
		else if (str_catb(line, p, n) < 0)
			return LINE_ERR;
		if (lf)
			break;
	}
	if (is_long)
		return LINE_LONG;
	str_trunc(line, line->len - 1);		/* the LF */
	if (line->len && line->s[line->len - 1] == '\r')
		str_trunc(line, line->len - 1);
	return LINE_OK;
}

/* conn_getbyte - the next byte of DATA; each refill waits timeout again */
int conn_getbyte(struct conn *c, int *byte_r)
{
	int r;

	if (c->ipos == c->ilen &&
	    (r = fill(c, now_ms() + (int64_t)c->timeout * 1000)) != LINE_OK)
		return r;
	*byte_r = c->ibuf[c->ipos++];
	return LINE_OK;
}

/* conn_reply - queue one reply line; CR LF is added here */
int conn_reply(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = str_vcatf(&c->out, fmt, ap);
	va_end(ap);
	if (r == 0)
		r = str_cats(&c->out, "\r\n");
	return r;
}

/*
 * conn_discard_input - forget bytes already read: after STARTTLS nothing
 * sent in plaintext may be taken as a command under TLS (CVE-2011-0411).
 */
void conn_discard_input(struct conn *c)
{
	c->ipos = c->ilen = 0;
}

/* tls_err - the last OpenSSL error as text */
static void tls_err(struct str *err, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	str_trunc(err, 0);
	if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	else
		strcpy(buf, "handshake failed");
	(void)str_catf(err, "%s: %s", what, buf);
	ERR_clear_error();
}

/* conn_tls_start - the server side of a TLS handshake (TLS 1.2 or newer) */
int conn_tls_start(struct conn *c, const char *root, struct str *err)
{
	struct str cert = STR_INIT, key = STR_INIT;
	struct timeval tv = {.tv_sec = (time_t)c->timeout};
	int r = -EIO;

	if (conn_flush(c) < 0)
		return -EPIPE;
	/* bounds SSL_read waiting inside a record; fails on pipes, harmless */
	(void)setsockopt(c->rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	(void)setsockopt(c->wfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (str_catf(&cert, "%s/control/tls/cert.pem", root) ||
	    str_catf(&key, "%s/control/tls/key.pem", root)) {
		r = -ENOMEM;
		goto out;
	}
	c->ctx = SSL_CTX_new(TLS_server_method());
	if (!c->ctx) {
		tls_err(err, "SSL_CTX_new");
		goto out;
	}
	if (!SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION)) {
		tls_err(err, "TLS 1.2 minimum");
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(c->ctx, cert.s) != 1) {
		tls_err(err, cert.s);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(c->ctx, key.s, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c->ctx) != 1) {
		tls_err(err, key.s);
		goto out;
	}
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || !SSL_set_rfd(c->ssl, c->rfd) ||
	    !SSL_set_wfd(c->ssl, c->wfd)) {
		tls_err(err, "SSL_new");
		goto out;
	}
	if (SSL_accept(c->ssl) != 1) {
		tls_err(err, "handshake");
		SSL_free(c->ssl);
		c->ssl = NULL;
		c->dead = 1;
		goto out;
	}
	r = 0;
out:
	str_free(&cert);
	str_free(&key);
	return r;
}
