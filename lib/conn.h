/*
 * conn - one network connection, plain or TLS: bounded line reads,
 * buffered writes, and a deadline on every wait.
 *
 * Used by mta-smtpd and pop3d (servers) and mta-remote (a client). The
 * descriptors are made non-blocking and every wait is a poll(2) against a
 * deadline on the monotonic clock (clock.h), so a peer that stops sending
 * or stops reading costs the timeout and nothing more, under TLS as in the
 * clear. A TLS call that cannot finish is retried after waiting for the
 * direction OpenSSL asks for (WANT_READ or WANT_WRITE, both ways).
 *
 * Input is read in large chunks into a growable buffer and consumed from
 * there, so commands a peer pipelines are taken in order from one read.
 * Output is buffered and sent by conn_flush(), which every read that must
 * wait calls first: a pipelining peer gets all its replies in one write,
 * and a peer that waits for each reply still gets it.
 *
 * Results, for every function that returns int: 0, or a negative errno
 * code:
 *   -ETIMEDOUT  the deadline passed (the connection can still be used
 *               to say goodbye)
 *   -EPIPE      end of input from the peer (c->dead stays 0), or a write
 *               on a connection that already failed (c->dead is 1)
 *   -EMSGSIZE   conn_getline(): the line was longer than max; it was read
 *               to its end and thrown away, and the next line is intact
 *   -EPROTO     a TLS error (handshake or record)
 *   -ENOMEM     out of memory; other codes are read(2)/write(2) errors
 * A failed write (or TLS handshake) sets c->dead: nothing more is sent.
 * A failed read does not: the caller may still say goodbye.
 *
 * conn_tls_accept() and conn_tls_connect() throw away all input read so
 * far before the handshake: bytes that came in the clear must never be
 * taken as commands (or replies) under TLS (STARTTLS command injection,
 * CVE-2011-0411; RFC 2595 for POP3's STLS).
 */
#ifndef FACTEUR_CONN_H
#define FACTEUR_CONN_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

struct conn {
	int rfd, wfd;		/* the same socket, or stdin/stdout */
	int rfl, wfl;		/* their file status flags before, or -1 */
	SSL *ssl;		/* NULL: in the clear */
	struct str in;		/* received; from ipos on not yet used */
	size_t ipos;
	struct str out;		/* to be sent by conn_flush() */
	unsigned long timeout;	/* seconds one read or one flush may wait */
	int dead;		/* a write failed: send nothing more */
	int eof;		/* input ended or TLS broke: no TLS goodbye */
	int long_ends;		/* set by a client: see conn_getline() */
	int64_t win_until;	/* conn_getbyte's window: see conn_window() */
	size_t win_left;
};

#define CONN_WINDOW 65536	/* bytes that must come within the timeout */

/* conn_init - a connection on rfd/wfd, in the clear; both are made
 * non-blocking until conn_free(). A timeout of 0 is taken as 1 s */
void conn_init(struct conn *c, int rfd, int wfd, unsigned long timeout);

/* conn_free - send a TLS close_notify if the connection is still good,
 * free TLS state and buffers, and give the descriptors back their flags
 * (they belong to the caller) */
void conn_free(struct conn *c);

/* conn_wait - poll fd for events until the deadline (now_ms() time);
 * 0 when ready, -ETIMEDOUT, or a poll error. For callers that wait on a
 * descriptor of their own, such as a non-blocking connect */
int conn_wait(int fd, short events, int64_t deadline);

/* conn_getline - the next line into line, without its LF and one CR
 * before it (a bare LF ends a line too). max counts the line's bytes as
 * received, line end included. The whole line must arrive within the
 * timeout: a peer dribbling a byte a minute cannot stretch it. A last
 * line without LF at end of input is lost (-EPIPE). With c->long_ends
 * set, an over-long line gives -EMSGSIZE as soon as it is known to be
 * too long, without waiting for its end: a client answers nothing to a
 * server that sends one, it just hangs up */
int conn_getline(struct conn *c, struct str *line, size_t max);

/* conn_getbyte - the next input byte into *byte_r. Each CONN_WINDOW
 * bytes taken must arrive within the timeout, counted from the call that
 * starts the window (SPEC.md: "in DATA, each 64 KiB"): a peer that
 * dribbles a byte a minute cannot stretch a message body forever, and
 * one that keeps a fair pace is never cut off. A window ends after its
 * bytes, at an error, and at conn_window() */
int conn_getbyte(struct conn *c, int *byte_r);

/* conn_window - the next conn_getbyte() starts a window (a new body) */
void conn_window(struct conn *c);

/* conn_put - buffer n bytes of output; past 64 KiB they are sent at once */
int conn_put(struct conn *c, const void *p, size_t n);

/* conn_puts - buffer a C string */
int conn_puts(struct conn *c, const char *s);

/* conn_reply - buffer one formatted line; CR LF is added here */
int conn_reply(struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* conn_flush - send everything buffered within the timeout; the buffer is
 * empty afterwards whatever happened */
int conn_flush(struct conn *c);

/* conn_tls_accept - flush, drop buffered input, and be the server of a
 * TLS handshake with ctx. On failure c->dead is set */
int conn_tls_accept(struct conn *c, SSL_CTX *ctx);

/* conn_tls_connect - flush, drop buffered input, and be the client of a
 * TLS handshake with ctx, naming the server (SNI) unless name is an IP
 * address literal or NULL. Certificates are whatever ctx checks */
int conn_tls_connect(struct conn *c, SSL_CTX *ctx, const char *name);

/* conn_tls_server_ctx - a server context from root's
 * control/tls/{cert,key}.pem: TLS 1.2 and up, no renegotiation, no
 * session cache. On failure why says which file and why: -ENOENT (cannot
 * load), -EINVAL (key does not match), -EPROTO, -ENOMEM */
int conn_tls_server_ctx(const char *root, SSL_CTX **ctx_r, struct str *why);

#endif
