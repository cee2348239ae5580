/*
 * smtpd - the parts of mta-smtpd, one module per concern.
 *
 *   main.c     command line, listeners, one session (the listening parent
 *              and its session processes are lib/server)
 *   session.c  the command table and the SMTP state machine
 *   check.c    address syntax, relay and recipient checks, badmailfrom
 *   data.c     the DATA reader: end of data, dot-unstuffing, bad bytes,
 *              the Received: line, the queue file
 *   auth.c     AUTH PLAIN, LOGIN and CRAM-MD5: SMTP's framing of lib/sasl
 *              and lib/login (pop3d's rules too), the slow-down
 *   rbl.c      DNS blocklists (control/rblservers) and RBLSMTPD at connect
 *   inbound.c  the checks on mail from others (SPF at MAIL, DKIM and
 *              DMARC after DATA) and the Authentication-Results header
 *
 * The connection itself (bounded line reads, reply buffering for
 * PIPELINING, TLS, deadlines) is lib/conn.h, shared with pop3d and
 * mta-remote.
 *
 * All state of one session lives in struct session; nothing mutable is
 * global. Functions return 0 or a negative errno code unless they say
 * otherwise.
 */
#ifndef FACTEUR_SMTPD_H
#define FACTEUR_SMTPD_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "authres.h"
#include "conn.h"
#include "dkimv.h"
#include "dmarc.h"
#include "limit.h"
#include "peer.h"
#include "qsign.h"
#include "spf.h"
#include "queue.h"
#include "str.h"

#define SMTPD_CMD_MAX 512	/* RFC 5321 4.5.3.1.4, CR LF included */
#define SMTPD_TEXT_MAX 1000	/* RFC 5321 4.5.3.1.6, CR LF included */

enum port_kind { PORT_SMTP, PORT_SUBMISSION, PORT_SMTPS };

struct session {
	const char *root;
	enum port_kind kind;
	struct conn c;
	struct str me, ip, helo, auth_user;
	int esmtp, relay, pbs;	/* EHLO seen; may relay by rule; POP grant */
	int mail, tls;
	int utf8;		/* this MAIL declared SMTPUTF8 */
	unsigned long databytes;
	unsigned auth_failures, errors;
	unsigned auth_delay;	/* seconds more sleep per failed AUTH */
	unsigned long maxfail;	/* control/smtpmaxfail */
	struct limit *limit;	/* lib/limit; NULL: per-session slowing only */
	const char *dummy_hash;	/* checked for unknown users: same time */
	struct qenv env;
	struct str rbl;		/* the reply for a blocked client, else "" */
	/* the current transaction's SPF result (MX path only, inbound.c) */
	int spf_done;
	struct spf_result spf;
	int quit;
	/* for the log line */
	unsigned long msgs, refused;
	struct str ids, reason, end, rbl_log, spf_log;
};

/* session.c */
void session_run(struct session *s);
void session_free(struct session *s);
void session_note(struct session *s, const char *reply);

/* check.c */
int addr_parse(const char *in, struct str *addr, const char **rest_r,
	       int allow_null);
int check_badlist(const char *root, const char *file, const char *addr);
const char *check_rcpt(struct session *s, const char *addr);
const char *check_srs(struct session *s, struct str *addr, int *srs_r);
int check_pbs(const char *root, const char *ip);

/* rbl.c */
int rbl_name(const char *ip, const char *zone, struct str *out);
void rbl_start(struct session *s, const char *rblsmtpd);

/* data.c */
void data_receive(struct session *s);

/* inbound.c */
#define INBOUND_RESULTS_MAX (DKIMV_SIGS_MAX + 2)	/* dkim=, spf=, dmarc= */
#define INBOUND_REFUSE_DMARC "550 5.7.1 message refused: it fails the " \
	"DMARC policy (p=reject) of its From: domain"

/* the most of the message held in memory until the room for the header
 * is made (inbound.c): past it, the room for INBOUND_RESULTS_MAX */
#define INBOUND_HOLD_MAX (64 * 1024)

struct inbound {
	int on;			/* the MX path: checked, A-R added */
	struct authres_filter flt;
	struct dkimv dkim;
	struct str out;
	/* until the room is made: the Received line, and the message as it
	 * passed the filter, held; then both written after the room */
	struct qwriter *w;
	const char *me;
	int room;		/* the room is made */
	struct str held_rcvd, held;
};

/* the results of one message, whatever checks produced them */
struct checks {
	const struct spf_result *spf;	/* NULL: not checked */
	const struct dkimv *dkim;
	const struct dmarc_result *dmarc;	/* NULL: not checked */
	const char *from;			/* its header.from */
};

int inbound_start(struct inbound *ib, struct qwriter *w, const char *me,
		  int on);
int inbound_put(struct inbound *ib, struct qsign *qs, const char *b,
		size_t n);
int inbound_flush(struct inbound *ib, struct qsign *qs);
int inbound_received(struct inbound *ib, const char *b, size_t n);
int inbound_results(const struct checks *c, struct authres *a);
int inbound_end(struct inbound *ib, const struct session *s,
		struct qwriter *w, int *refuse);
int inbound_mx(const struct session *s);
const char *inbound_spf(struct session *s);
void inbound_free(struct inbound *ib);

/* auth.c */
void auth_command(struct session *s, const char *arg);

#endif
