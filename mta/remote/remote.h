/*
 * remote.h - the parts of mta-remote (docs/remote.md).
 *
 * proto.c  the reply parser, the CR LF / dot-stuffing writer, result texts
 * smtp.c   one SMTP session: connection with deadlines, STARTTLS, the
 *          transaction
 * self.c   is an address this host (127/8, ::ffff:127.0.0.1, ...) on a
 *          port where an MTA of this host may answer: the loop check
 * remote.c main(): arguments, controls, DNS routing, loop checks, output
 *
 * Everything but main() is linked into tests/unit/test_remote.c.
 */
#ifndef FACTEUR_REMOTE_H
#define FACTEUR_REMOTE_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "dns.h"
#include "route.h"
#include "str.h"

/* ---- proto.c: the reply parser */

#define REPLY_MAX_LINE 65536	/* longer reply line: protocol error */
#define REPLY_MAX_LINES 100	/* more lines in one reply: protocol error */
#define REPLY_MAX_TEXT 600	/* bytes of a reply kept for the report */

#define EXT_PIPELINING 1
#define EXT_SIZE 2
#define EXT_STARTTLS 4
#define EXT_8BITMIME 8
#define EXT_SMTPUTF8 16

struct reply {
	int code;		/* of the last line */
	size_t lines;
	int want_ext;		/* parse EHLO keywords into ext */
	unsigned ext;
	struct str text;	/* the lines joined by " / ", cut */
};

void reply_reset(struct reply *rp, int want_ext);
int reply_feed(struct reply *rp, const char *line, size_t len);
void reply_free(struct reply *rp);

/* ---- proto.c: the DATA writer (LF to CR LF, leading dots doubled) */

struct dotstuff {
	int bol;		/* the next byte starts a line */
};

void dot_start(struct dotstuff *ds);
int dot_encode(struct dotstuff *ds, const char *buf, size_t n,
	       struct str *out);
int dot_finish(struct dotstuff *ds, struct str *out);

/* ---- smtp.c: one delivery attempt to one address */

enum { RES_NONE = 0, RES_D = 'D', RES_F = 'F', RES_T = 'T' };

struct result {
	int kind;
	struct str text;
};

struct job {
	const char *domain;
	const char *sender;
	char **rcpt;
	size_t nrcpt;
	struct result *res;
	const char *me;			/* EHLO name */
	unsigned long timeout;		/* s: each reply line, each write */
	unsigned long ctimeout;		/* s: each connect */
	int body_fd;
	off_t body_off;			/* where the message starts */
	off_t body_size;
	SSL_CTX *tls;			/* made on first use (job_tls) */
	int tls_tried;
	struct str last_err;		/* why the last address was left */
};

enum { ATT_NEXT, ATT_TLS_RETRY, ATT_DONE };

int smtp_attempt(struct job *j, const char *name,
		 const struct sockaddr *sa, socklen_t salen, int use_tls);

/* ---- proto.c: results */
int result_set(struct result *r, int kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void job_fail_open(struct job *j, int kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void result_clean(const char *in, size_t len, struct str *out);

/* smtp.c */
SSL_CTX *job_tls(struct job *j);

/* ---- self.c: the loop check */

struct self {
	struct dns_addr *own;	/* interface addresses, made canonical */
	size_t nown;
	unsigned long *ports;	/* where an MTA of this host may listen */
	size_t nports;
	int any_port;		/* a listen.* file was unreadable */
};

void self_canon(const struct dns_addr *in, struct dns_addr *out);
int self_ports(struct self *sf, const char *root);
int self_ifaces(struct self *sf);
int self_load(struct self *sf, const char *root);
int self_addr(const struct self *sf, const struct dns_addr *a,
	      unsigned long port);
void self_free(struct self *sf);

#endif
