/*
 * vdeliver.h - the local delivery agent's internal interfaces.
 *
 * vdeliver.c  command line, qmail's environment, privileges, the exit
 *             contract (vd_fail, vd_classify) and the log
 * resolve.c   the recipient expanded into mailboxes and remote addresses
 *             through the generated tables (lib/rcpt.h)
 * deliver.c   reading the message once, the loop check, Maildir writes,
 *             Maildir++ quotas and the quota warning
 * inject.c    remote destinations handed to the queue through mta-inject
 * server.c    --server: mta-send's fork server, one child a delivery
 */
#ifndef FACTEUR_VDELIVER_H
#define FACTEUR_VDELIVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hdrscan.h"
#include "maildir.h"
#include "mdquota.h"
#include "quota.h"
#include "rcpt.h"
#include "str.h"

/* qmail's exit codes (qmail-command(8)) */
#define EX_DELIVERED 0
#define EX_PERM 100
#define EX_TEMP 111

/* sendmail's (sysexits.h), for callers such as Postfix's pipe(8) that
 * read only those: --sysexits */
#define SX_USAGE 64
#define SX_DATAERR 65
#define SX_NOUSER 67
#define SX_NOHOST 68
#define SX_UNAVAILABLE 69
#define SX_CANTCREAT 73
#define SX_TEMPFAIL 75

/* table lookups for one recipient: 8 a name followed, room for an alias
 * of RCPT_TARGETS_MAX mailboxes (at 4000, 499 of them were too many) */
#define VD_LOOKUPS_MAX (8 * (RCPT_TARGETS_MAX + RCPT_DEPTH_MAX + 1))
/* Delivered-To: lines a message may carry: as many as hdrscan compares */
#define VD_DELIVERED_MAX HDRSCAN_DELIVERED_MAX

/* one destination of the message */
struct target {
	int remote;		/* 1: a remote address, 0: a mailbox */
	struct str addr;	/* the mailbox's address or the remote one */
	struct str chain;	/* Delivered-To: addresses, newest first,
				 * each NUL-terminated */
	struct str maildir;	/* a mailbox: relative to the root */
	struct quota quota;
	int sent;		/* a remote address already handed over */
	struct maildir md;
	struct mdfile f;
	struct mdq usage;	/* before this delivery (with a quota) */
};

struct vd {
	const char *root;
	int rootfd;
	const char *sender;	/* as given; "" for <> */
	struct str sender_buf, env_rcpt;
	struct str rcpt;	/* local@domain, folded */
	struct str local, domain;
	int sysexits;
	int logfd;
	struct str host;	/* for Maildir names (maildir_host) */
	struct target *t;
	size_t n, cap;
	struct str seen;	/* every address passed through, NUL-ended */
	unsigned lookups;
	int discard;		/* a catch-all "delete" was reached */
	int spoolfd;		/* the message read once, for many targets */
	int spool_named;	/* spoolfd has a name in spool_dir */
	int spool_dir;
	struct str spool_name;
};

/* vdeliver.c */
int vd_classify(int err, const char **dsn_r);
_Noreturn void vd_fail(struct vd *v, int code, const char *dsn,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
_Noreturn void vd_fail_errno(struct vd *v, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void vd_log(struct vd *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void vd_cleanup(struct vd *v);
void vd_reset(struct vd *v);
void vd_open_root(struct vd *v);
int vd_run(struct vd *v, const char *rcpt, const char *from);

/* server.c */
int vd_serve(struct vd *v);

/* resolve.c */
void resolve(struct vd *v);

/* deliver.c */
void deliver(struct vd *v);
int prefix(struct str *out, const char *sender, const struct target *t,
	   int crlf);

/* inject.c */
int inject_path(struct str *out);
void inject_check(struct vd *v, const struct str *path);
void inject(struct vd *v, const struct str *path, int crlf, int srcfd,
	    off_t off, uint64_t len);

#endif
