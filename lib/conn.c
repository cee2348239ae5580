/*
 * conn - one connection's bytes, plain or TLS, with deadlines (see conn.h).
 *
 * @UNSAFE: reads straight into the free tail of c->in and consumes it by
 * offset (ipos), so the pointer arithmetic below is checked by hand: ipos
 * never passes in.len, and the tail is reserved with str_ready() first.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "ctl.h"

#define CONN_READ 16384		/* bytes asked for by one read */
#define CONN_OUT_HIGH 65536	/* buffered output that is sent at once */

/* nonblock - O_NONBLOCK on fd; its flags before, or -1. A descriptor
 * that refuses (a regular file) never blocks anyway */
static int nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return fl;
}

/* restore - fd's flags as they were: stdin and stdout may be shared with
 * the program that started us (sendmail -bs, inetd), which expects them
 * blocking */
static void restore(int fd, int fl)
{
	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl);
}

/* conn_init - see conn.h */
void conn_init(struct conn *c, int rfd, int wfd, unsigned long timeout)
{
	memset(c, 0, sizeof *c);
	c->rfd = rfd;
	c->wfd = wfd;
	c->timeout = timeout ? timeout : 1;
	c->rfl = nonblock(rfd);
	c->wfl = wfd != rfd ? nonblock(wfd) : -1;
}

/* conn_free - see conn.h */
void conn_free(struct conn *c)
{
	if (c->ssl) {
		if (!c->dead && !c->eof)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	ERR_clear_error();
	/* AUTH and PASS lines passed through these: a pooled session
	 * process serves other clients after this one */
	str_wipe(&c->in);
	str_wipe(&c->out);
	c->ipos = 0;
	restore(c->rfd, c->rfl);
	restore(c->wfd, c->wfl);
	c->rfl = c->wfl = -1;
}

/* deadline - when an operation that starts now must be over */
static int64_t deadline(const struct conn *c)
{
	return now_ms() + (int64_t)c->timeout * 1000;
}

/* conn_wait - see conn.h */
int conn_wait(int fd, short events, int64_t until)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		int64_t left = until - now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		/* poll takes an int; a longer wait is taken in pieces */
		r = poll(&p, 1, left > 3600000 ? 3600000 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* tls_wait - after an SSL call that did not finish: wait for what it
 * needs and return 0 to retry, or the error that ends the connection */
static int tls_wait(struct conn *c, int ret, int64_t until)
{
	int e = SSL_get_error(c->ssl, ret), r;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		return conn_wait(c->rfd, POLLIN, until);
	case SSL_ERROR_WANT_WRITE:
		return conn_wait(c->wfd, POLLOUT, until);
	case SSL_ERROR_ZERO_RETURN:
		c->eof = 1;
		r = -EPIPE;
		break;
	case SSL_ERROR_SYSCALL:
		/* errno 0: the peer closed without close_notify */
		r = errno ? -errno : -EPIPE;
		c->eof = 1;
		break;
	default:
		c->eof = 1;	/* a broken TLS session takes no goodbye */
		r = -EPROTO;
		break;
	}
	ERR_clear_error();
	return r;
}

/* make_room - reserve CONN_READ bytes after the input, reusing the space
 * of bytes already consumed so the buffer stays bounded */
static int make_room(struct conn *c)
{
	if (c->ipos == c->in.len) {
		c->ipos = 0;
		c->in.len = 0;
	} else if (c->ipos > c->in.len / 2) {
		memmove(c->in.s, c->in.s + c->ipos, c->in.len - c->ipos);
		c->in.len -= c->ipos;
		c->ipos = 0;
	}
	return str_ready(&c->in, CONN_READ);
}

/* fill - add at least one byte to the input, waiting until the deadline;
 * -EPIPE at the end of input */
static int fill(struct conn *c, int64_t until)
{
	int r = make_room(c);

	while (r == 0) {
		char *at = c->in.s + c->in.len;
		size_t got = 0;

		if (c->ssl) {
			int ret;

			ERR_clear_error();
			errno = 0;	/* SSL_ERROR_SYSCALL reads it */
			ret = SSL_read_ex(c->ssl, at, CONN_READ, &got);
			if (ret != 1) {
				r = tls_wait(c, ret, until);
				continue;
			}
		} else {
			ssize_t n = read(c->rfd, at, CONN_READ);

			if (n == 0) {
				c->eof = 1;
				return -EPIPE;
			}
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				r = errno == EAGAIN || errno == EWOULDBLOCK ?
				    conn_wait(c->rfd, POLLIN, until) : -errno;
				continue;
			}
			got = (size_t)n;
		}
		c->in.len += got;
		c->in.s[c->in.len] = 0;
		return 0;
	}
	return r;
}

/* more_input - flush (the peer must have every reply before we wait on
 * it), then fill. A read error leaves the connection usable for writing:
 * after a timeout there is a goodbye to send, and a peer that ended its
 * input may still read; only a failed write makes it dead */
static int more_input(struct conn *c, int64_t until)
{
	int answered = c->out.len > 0, r = conn_flush(c);

	/* a peer that was answered just now cannot have answered back yet
	 * (unless it pipelines, and then its bytes are here already): wait
	 * first, rather than try a read that would fail with EAGAIN and
	 * then wait, one system call a command less. Under TLS the library
	 * may hold decrypted bytes that poll cannot see: read first */
	if (r == 0 && answered && !c->ssl)
		r = conn_wait(c->rfd, POLLIN, until);
	return r < 0 ? r : fill(c, until);
}

/* conn_getline - see conn.h */
int conn_getline(struct conn *c, struct str *line, size_t max)
{
	int64_t until = deadline(c);
	size_t scanned = 0;
	int skipping = 0, r;

	for (;;) {
		size_t avail = c->in.len - c->ipos;
		const char *p = avail ? c->in.s + c->ipos : NULL;
		const char *lf = avail > scanned ?
			memchr(p + scanned, '\n', avail - scanned) : NULL;

		if (lf) {
			size_t n = (size_t)(lf - p) + 1;

			c->ipos += n;
			if (skipping || n > max)
				return -EMSGSIZE;
			n--;
			if (n && p[n - 1] == '\r')
				n--;
			return str_copyb(line, p, n);
		}
		scanned = avail;
		if (avail > max) {
			if (c->long_ends)
				return -EMSGSIZE;
			/* too long already: read on only to find its end, so
			 * its tail is never taken for a line of its own */
			skipping = 1;
			c->ipos = c->in.len;
			scanned = 0;
		}
		r = more_input(c, until);
		if (r < 0)
			return r;
	}
}

/* conn_getbyte - see conn.h */
int conn_getbyte(struct conn *c, int *byte_r)
{
	if (c->win_left == 0) {
		c->win_until = deadline(c);
		c->win_left = CONN_WINDOW;
	}
	if (c->ipos == c->in.len) {
		int r = more_input(c, c->win_until);

		if (r < 0) {
			c->win_left = 0;
			return r;
		}
	}
	c->win_left--;
	*byte_r = (unsigned char)c->in.s[c->ipos++];
	return 0;
}

/* conn_window - see conn.h */
void conn_window(struct conn *c)
{
	c->win_left = 0;
}

/* conn_put - see conn.h */
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

/* conn_puts - see conn.h */
int conn_puts(struct conn *c, const char *s)
{
	return conn_put(c, s, strlen(s));
}

/* conn_reply - see conn.h */
int conn_reply(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (c->dead)
		return -EPIPE;
	va_start(ap, fmt);
	r = str_vcatf(&c->out, fmt, ap);
	va_end(ap);
	return r ? r : conn_put(c, "\r\n", 2);
}

/* write_some - one attempt to send out[done..]: bytes sent into *w, or 0
 * with *w == 0 after waiting for room, or an error */
static int write_some(struct conn *c, size_t done, size_t *w, int64_t until)
{
	const char *p = c->out.s + done;
	size_t left = c->out.len - done;

	*w = 0;
	if (c->ssl) {
		int ret;

		ERR_clear_error();
		errno = 0;
		ret = SSL_write_ex(c->ssl, p, left, w);
		return ret == 1 ? 0 : tls_wait(c, ret, until);
	}
	for (;;) {
		ssize_t n = write(c->wfd, p, left);

		if (n >= 0) {
			*w = (size_t)n;
			return n ? 0 : conn_wait(c->wfd, POLLOUT, until);
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return conn_wait(c->wfd, POLLOUT, until);
		if (errno != EINTR)
			return -errno;
	}
}

/* conn_flush - see conn.h */
int conn_flush(struct conn *c)
{
	int64_t until = deadline(c);
	size_t done = 0;
	int r = 0;

	if (c->dead) {
		c->out.len = 0;
		return -EPIPE;
	}
	while (r == 0 && done < c->out.len) {
		size_t w;

		r = write_some(c, done, &w, until);
		done += w;
	}
	c->out.len = 0;
	if (r < 0)
		c->dead = 1;
	return r;
}

/* tls_start - the handshake of either side (see conn.h) */
static int tls_start(struct conn *c, SSL_CTX *ctx, int server,
		     const char *name)
{
	int64_t until = deadline(c);
	struct in6_addr a;
	int r = conn_flush(c);

	if (r < 0)
		return r;
	c->ipos = c->in.len = 0;	/* nothing said in the clear counts */
	c->ssl = SSL_new(ctx);
	if (!c->ssl) {
		ERR_clear_error();
		c->dead = 1;
		return -ENOMEM;
	}
	/* flush may resend from a moved buffer after WANT_WRITE */
	SSL_set_mode(c->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
		     SSL_MODE_ENABLE_PARTIAL_WRITE);
	if (!SSL_set_rfd(c->ssl, c->rfd) || !SSL_set_wfd(c->ssl, c->wfd))
		r = -EPROTO;
	/* RFC 6066: SNI names a host, never an address */
	if (r == 0 && !server && name && inet_pton(AF_INET, name, &a) != 1 &&
	    inet_pton(AF_INET6, name, &a) != 1)
		(void)SSL_set_tlsext_host_name(c->ssl, name);
	while (r == 0) {
		int ret;

		ERR_clear_error();
		errno = 0;
		ret = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
		if (ret == 1)
			return 0;
		r = tls_wait(c, ret, until);
	}
	/* no close_notify on a connection that never was */
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->dead = 1;
	ERR_clear_error();
	return r;
}

/* conn_tls_accept - see conn.h */
int conn_tls_accept(struct conn *c, SSL_CTX *ctx)
{
	return tls_start(c, ctx, 1, NULL);
}

/* conn_tls_connect - see conn.h */
int conn_tls_connect(struct conn *c, SSL_CTX *ctx, const char *name)
{
	return tls_start(c, ctx, 0, name);
}

/* load_pair - the certificate chain and key into ctx; why says what
 * failed */
static int load_pair(SSL_CTX *ctx, const char *cert, const char *key,
		     struct str *why)
{
	unsigned long e;
	int r = 0;

	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		(void)str_catf(why, "cannot load %s", cert);
		r = -ENOENT;
	} else if (SSL_CTX_use_PrivateKey_file(ctx, key,
					       SSL_FILETYPE_PEM) != 1) {
		(void)str_catf(why, "cannot load %s", key);
		r = -ENOENT;
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		(void)str_catf(why, "%s does not match %s", key, cert);
		r = -EINVAL;
	}
	if (r < 0 && (e = ERR_peek_last_error()) != 0)
		(void)str_catf(why, " (%s)", ERR_reason_error_string(e));
	ERR_clear_error();
	return r;
}

/* conn_tls_server_ctx - see conn.h. Session tickets stay on: their key is
 * made here, once, so session processes forked from one parent can resume
 * each other's sessions */
int conn_tls_server_ctx(const char *root, SSL_CTX **ctx_r, struct str *why)
{
	struct str cert = STR_INIT, key = STR_INIT;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int r = -ENOMEM;

	str_trunc(why, 0);
	if (!ctx)
		goto out;
	if (ctl_path(&cert, root, "tls/cert.pem") ||
	    ctl_path(&key, root, "tls/key.pem"))
		goto out;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		r = -EPROTO;
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE |
			    SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	r = load_pair(ctx, cert.s, key.s, why);
out:
	ERR_clear_error();
	str_free(&cert);
	str_free(&key);
	if (r < 0)
		SSL_CTX_free(ctx);
	else
		*ctx_r = ctx;
	return r;
}
