/*
 * conn - one client connection, plain or TLS.
 *
 * The descriptors are non-blocking and every wait is a poll(2) against a
 * deadline, so a client that stops sending or stops reading costs the
 * session its timeout and nothing more, under TLS as in the clear.
 *
 * conn_line() returns one command line without its CRLF (a bare LF also
 * ends a line). A line longer than max bytes, CRLF included, is read to
 * its end and thrown away, and reported as -E2BIG, so the session can
 * answer -ERR and go on; the buffer never holds more than max plus one
 * read. The whole line must arrive within the timeout (SPEC.md
 * timeoutpop3), which a client dribbling one byte a minute cannot stretch.
 * Output is buffered and sent before the next read that would wait, so
 * pipelined commands (RFC 2449 PIPELINING) get their replies in one send.
 *
 * conn_tls() starts TLS (pop3s at once, STLS after its +OK) and first
 * throws away whatever the client sent after the command: RFC 2595 says
 * that input is not to be trusted, and it is how STARTTLS command
 * injection worked (CVE-2011-0411 and its POP3 relatives).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "pop3d.h"

#define CONN_READ 4096		/* bytes asked for by one read */
#define CONN_OUT_HIGH 65536	/* buffered output that is sent at once */

/* now_ms - monotonic milliseconds */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* conn_init - a connection on rfd/wfd (the same socket, or stdin/stdout
 * under inetd), in the clear */
void conn_init(struct conn *c, int rfd, int wfd, unsigned long timeout)
{
	memset(c, 0, sizeof *c);
	c->rfd = rfd;
	c->wfd = wfd;
	c->timeout = timeout;
	(void)fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
	if (wfd != rfd)
		(void)fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK);
}

/* wait_fd - until fd is ready for events or the deadline passes */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd pf = {fd, events, 0};
		long long left = deadline - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pf, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* tls_wait - what an SSL call that could not finish is waiting for;
 * 0 to retry, else an error (-EPIPE for a clean or abrupt close) */
static int tls_wait(struct conn *c, int ret, long long deadline)
{
	int e = SSL_get_error(c->ssl, ret);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(c->rfd, POLLIN, deadline);
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(c->wfd, POLLOUT, deadline);
	case SSL_ERROR_ZERO_RETURN:
		return -EPIPE;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return errno ? -errno : -EPIPE;
	default:
		ERR_clear_error();
		return -EPROTO;
	}
}

/* fill - read what is there (waiting until the deadline for something);
 * 0 when bytes were added, -EPIPE at the end of input */
static int fill(struct conn *c, long long deadline)
{
	int r;

	if (c->ipos && c->ipos == c->in.len)
		c->ipos = c->in.len = 0;
	if (c->ipos > c->in.len / 2) {
		memmove(c->in.s, c->in.s + c->ipos, c->in.len - c->ipos);
		c->in.len -= c->ipos;
		c->ipos = 0;
	}
	r = str_ready(&c->in, CONN_READ);
	if (r < 0)
		return r;
	for (;;) {
		if (c->ssl) {
			size_t got = 0;
			int ret = SSL_read_ex(c->ssl, c->in.s + c->in.len,
					      CONN_READ, &got);

			if (ret == 1) {
				c->in.len += got;
				return 0;
			}
			r = tls_wait(c, ret, deadline);
		} else {
			ssize_t n = read(c->rfd, c->in.s + c->in.len, CONN_READ);

			if (n > 0) {
				c->in.len += (size_t)n;
				return 0;
			}
			if (n == 0)
				return -EPIPE;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = wait_fd(c->rfd, POLLIN, deadline);
		}
		if (r < 0)
			return r;
	}
}

/* conn_line - the next command line into line; 0, -E2BIG (too long,
 * skipped), -ETIMEDOUT, -EPIPE (client gone) or another error */
int conn_line(struct conn *c, size_t max, struct str *line)
{
	long long deadline = now_ms() + (long long)c->timeout * 1000;
	size_t scanned = 0;
	int skipping = 0, r;

	for (;;) {
		const char *p = c->in.s + c->ipos, *nl;
		size_t avail = c->in.len - c->ipos;

		nl = avail > scanned ? memchr(p + scanned, '\n',
					      avail - scanned) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - p);

			c->ipos += n + 1;
			if (skipping || n + 1 + (n && p[n - 1] != '\r') > max)
				return -E2BIG;
			if (n && p[n - 1] == '\r')
				n--;
			return str_copyb(line, p, n);
		}
		scanned = avail;
		if (avail > max) {
			/* too long already: keep reading only to find its end */
			skipping = 1;
			c->ipos = c->in.len;
			scanned = 0;
		}
		/* about to wait: the client must have every reply first */
		r = conn_flush(c);
		if (r == 0)
			r = fill(c, deadline);
		if (r < 0) {
			/* after a timeout there is still a goodbye to send */
			if (r != -ETIMEDOUT)
				c->dead = 1;
			return r;
		}
	}
}

/* conn_put - buffer output; sent at once past CONN_OUT_HIGH */
int conn_put(struct conn *c, const void *p, size_t n)
{
	int r;

	if (c->dead)
		return -EPIPE;
	r = str_catb(&c->out, p, n);
	if (r == 0 && c->out.len >= CONN_OUT_HIGH)
		r = conn_flush(c);
	return r;
}

/* conn_puts - buffer a C string */
int conn_puts(struct conn *c, const char *s)
{
	return conn_put(c, s, strlen(s));
}

/* conn_flush - send everything buffered, each wait within the timeout */
int conn_flush(struct conn *c)
{
	long long deadline = now_ms() + (long long)c->timeout * 1000;
	size_t done = 0;
	int r = 0;

	if (c->dead)
		return -EPIPE;
	while (done < c->out.len) {
		size_t left = c->out.len - done;

		if (c->ssl) {
			size_t w = 0;
			int ret = SSL_write_ex(c->ssl, c->out.s + done, left, &w);

			if (ret == 1) {
				done += w;
				continue;
			}
			r = tls_wait(c, ret, deadline);
		} else {
			ssize_t w = write(c->wfd, c->out.s + done, left);

			if (w > 0) {
				done += (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			r = w < 0 && errno != EAGAIN ? -errno :
			    wait_fd(c->wfd, POLLOUT, deadline);
		}
		if (r < 0)
			break;
	}
	if (r < 0)
		c->dead = 1;
	c->out.len = 0;
	return r;
}

/* conn_tls - TLS handshake on the connection; earlier input is dropped */
int conn_tls(struct conn *c, SSL_CTX *ctx)
{
	long long deadline = now_ms() + (long long)c->timeout * 1000;
	int r = conn_flush(c);

	if (r < 0)
		return r;
	c->ipos = c->in.len = 0;
	c->ssl = SSL_new(ctx);
	if (!c->ssl)
		return -ENOMEM;
	if (!SSL_set_rfd(c->ssl, c->rfd) || !SSL_set_wfd(c->ssl, c->wfd))
		return -EPROTO;
	for (;;) {
		int ret = SSL_accept(c->ssl);

		if (ret == 1)
			return 0;
		r = tls_wait(c, ret, deadline);
		if (r < 0) {
			/* no close_notify on a connection that never was */
			SSL_free(c->ssl);
			c->ssl = NULL;
			c->dead = 1;
			return r;
		}
	}
}

/* conn_free - say goodbye under TLS if we can, and release everything;
 * the descriptors belong to the caller */
void conn_free(struct conn *c)
{
	if (c->ssl) {
		if (!c->dead)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	str_free(&c->in);
	str_free(&c->out);
}

/* tls_setup - the server context from control/tls/{cert,key}.pem: TLS 1.2
 * and up, no renegotiation, session tickets (their key is made here, once,
 * so every session process forked from us can resume the others') */
int tls_setup(const char *root, SSL_CTX **ctx_r, struct str *why)
{
	struct str cert = STR_INIT, key = STR_INIT;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long e;
	int r = 0;

	why->len = 0;
	if (!ctx)
		return -ENOMEM;
	if (ctl_path(&cert, root, "tls/cert.pem") ||
	    ctl_path(&key, root, "tls/key.pem")) {
		r = -ENOMEM;
		goto out;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		r = -EPROTO;
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE |
			    SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* our output buffer may move between retries of SSL_write */
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			 SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert.s) != 1) {
		(void)str_catf(why, "cannot load %s", cert.s);
		r = -ENOENT;
	} else if (SSL_CTX_use_PrivateKey_file(ctx, key.s,
					       SSL_FILETYPE_PEM) != 1) {
		(void)str_catf(why, "cannot load %s", key.s);
		r = -ENOENT;
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		(void)str_catf(why, "%s does not match %s", key.s, cert.s);
		r = -EINVAL;
	}
	if (r < 0 && (e = ERR_peek_last_error()) != 0)
		(void)str_catf(why, " (%s)", ERR_reason_error_string(e));
	ERR_clear_error();
out:
	str_free(&cert);
	str_free(&key);
	if (r < 0)
		SSL_CTX_free(ctx);
	else
		*ctx_r = ctx;
	return r;
}
