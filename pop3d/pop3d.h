/*
 * pop3d.h - the pieces of the POP3 server (see pop3d.c).
 *
 * proto.c   pure parsers and converters, no I/O: the command line, numbers,
 *           UIDLs and sizes from Maildir names, the plaintext-login rule
 *           and the RETR/TOP byte converter. Unit-tested and fuzzed.
 *           (Base64, the SASL messages and the login check are lib/'s,
 *           shared with mta-smtpd: lib/sasl.h, lib/login.h; so are the
 *           failed-login counts and the session table, lib/limit.h, and
 *           the timed, TLS-capable connection, lib/conn.h.)
 * mbox.c    one locked Maildir: scan, sizes, reading messages, and at
 *           QUIT deletions, maildirsize and new/ to cur/.
 * session.c the POP3 state machine and its command table.
 * pop3d.c   main(): settings, listeners, privileges, the accept loop.
 *
 * The connection (bounded line reads with a deadline, buffered writes,
 * STLS, the server certificate) is lib/conn.h, shared with mta-smtpd.
 *
 * Functions return 0 (or a count or fd) or a negative errno code, as in lib/.
 */
#ifndef FACTEUR_POP3D_H
#define FACTEUR_POP3D_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "limit.h"
#include "log.h"
#include "peer.h"
#include "conn.h"
#include "str.h"

#define POP3_LINE_MAX 255	/* RFC 2449: a command line, CRLF included */
#define POP3_SASL_MAX 2048	/* a base64 AUTH response line */

/* exit codes of the program (a session process exits 0) */
#define EX_DONE 0
#define EX_TEMP 111

/* slog - one log line on stderr (lib/log.h format), which facteur run
 * writes to log/current; a failed write is not worth failing for */
#define slog(...) ((void)log_write(2, "pop3d", __VA_ARGS__))

/* settings, read once at start-up and then only read */
struct cfg {
	const char *root;
	struct str me;			/* control/me, for the greeting */
	unsigned long timeout;		/* s: one command line (timeoutpop3) */
	unsigned long maxsessions;	/* sessions in all */
	unsigned long maxperip;		/* sessions from one address */
	unsigned long maxfail;		/* failed logins before an IP is refused */
	int plaintext;			/* control/pop3plaintext is 1 */
	SSL_CTX *tls;			/* NULL: no certificate, no STLS */
	struct str dummy;		/* a hash checked for unknown users */
	struct limit *ft;		/* shared failure counters (lib/limit) */
};

/* --- proto.c ----------------------------------------------------------- */

struct pop3_line {
	char name[5];		/* the keyword, upper case, NUL-terminated */
	const char *arg;	/* what follows the first space (may be "") */
	size_t arglen;
};

#define PROTO_TOKS 3
struct proto_tok {
	const char *s;
	size_t len;
};

struct xfer {
	int bol;		/* at the start of a line */
	int cr;			/* the last byte was CR */
	size_t linelen;		/* bytes in this line other than CR */
	int body;		/* past the empty line after the header */
	int top;		/* TOP: stop after `lines` body lines */
	unsigned long lines;
	int done;		/* TOP has sent all it should */
	uint64_t octets;	/* the message with CRLF line ends, so far */
};

int proto_parse(const char *line, size_t len, struct pop3_line *out);
int proto_split(const char *s, size_t len, struct proto_tok *tok,
		size_t max, size_t *n_r);
int proto_num(const char *s, size_t len, unsigned long *out);
int proto_uidl(const char *name, size_t len, struct str *out);
int proto_plain_ok(int tls, int loopback, int plaintext);
int proto_natcmp(const char *a, size_t alen, const char *b, size_t blen);
void xfer_init(struct xfer *x, int top, unsigned long lines);
size_t xfer_run(struct xfer *x, const char *in, size_t n, struct str *out);
int xfer_end(struct xfer *x, struct str *out);
uint64_t proto_bare_lf(const char *in, size_t n, int *cr);


/* --- mbox.c ------------------------------------------------------------ */

#define MSG_DELETED 1
#define MSG_OCTETS 2		/* octets is known */
#define MSG_RAW 4		/* raw is known */
#define MSG_NEW 8		/* the file is in new/ (could not be moved) */

struct mmsg {
	uint32_t off;		/* the file name in mbox.names */
	uint16_t len;
	uint16_t flags;
	int fd;			/* kept open since its size was counted, or -1 */
	uint64_t raw;		/* size on disk */
	uint64_t octets;	/* size with CRLF line ends (RFC 1939) */
};

struct mbox {
	int dfd, curfd, newfd, lockfd;
	struct str names;
	struct mmsg *m;
	size_t n, cap;
	int sized;		/* every message has its octets */
	char *buf;		/* MBOX_READ bytes to read messages, or NULL */
	size_t kept;		/* messages with a kept fd */
};

int mbox_open(struct mbox *mb, const char *root, const char *maildir);
int mbox_sizes(struct mbox *mb);
int mbox_octets(struct mbox *mb, size_t i, uint64_t *out);
int mbox_msgfd(struct mbox *mb, size_t i);
size_t mbox_ask(const struct mbox *mb, size_t i);
ssize_t mbox_read(struct mbox *mb, int fd, uint64_t off, size_t ask,
		  const char **p);
void mbox_name(const struct mbox *mb, size_t i, const char **s, size_t *len);
int mbox_pending(const struct mbox *mb);
int mbox_commit(struct mbox *mb, size_t *gone_r);
void mbox_close(struct mbox *mb);

/* --- session.c --------------------------------------------------------- */

#define ST_AUTH 1		/* AUTHORIZATION: before a login */
#define ST_TRANS 2		/* TRANSACTION: logged in */

int session_lookup(const char *name, int state);
int session_run(const struct cfg *cfg, int rfd, int wfd, const char *ip,
		int tls, struct limit_sess *sess, size_t slot);

#endif
