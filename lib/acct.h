/*
 * acct - where the generated account tables live, for their readers.
 *
 * vadmin regenerates CDBs from the database (see docs/architecture.md);
 * vdeliver, pop3d and mta-smtpd read them through this module only:
 *
 *   control/assign.cdb     DOMAIN -> REALDOMAIN \0 DIR \0 SHARDS
 *   control/rcpthosts.cdb  DOMAIN -> ""
 *   control/domains/...    delivery records of a real domain
 *   control/passwd/...     login records of a real domain (0600)
 *
 * A domain's tables are split into SHARDS files (a power of two, 1 for all
 * but big domains) by a 16-bit hash of the local part, so that a change to
 * one user rewrites one small file instead of the whole domain. With one
 * shard the file is KEY.cdb; otherwise KEY+SHARDS+INDEX.cdb ('+' is not
 * allowed in a domain name, so the names cannot collide). KEY is the domain
 * itself, or for a domain too long for a file name (over 200 bytes) its
 * first 180 bytes, '~' and a 64-bit hash of the whole name. acct_get()
 * looks a key up and, when a shard file vanished because vadmin re-split
 * the domain between our two reads, reads assign.cdb again and retries.
 * A caller that makes many lookups wraps each unit of work (a delivery, a
 * RCPT) in cdbx_batch_begin()/cdbx_batch_end() (lib/cdbx.h), so that the
 * tables stay open and mapped between lookups and a regenerated one is
 * noticed at the next batch.
 *
 * Returns: 0 found; -ENOENT from acct_domain() when the domain is not
 * hosted, from acct_get() when the domain is not hosted or the key is not
 * in its table (call acct_domain() first to tell the two apart); -ENODATA
 * from acct_domain() when assign.cdb does not exist; -EIO from acct_get()
 * when a table file is missing (vadmin rebuild repairs that); -EILSEQ for
 * a malformed assign record.
 *
 * acct_fields() splits a record (every table's values are NUL-separated
 * fields) into exactly K fields, each a C string since the value is
 * NUL-terminated after its N bytes; -EILSEQ for more, fewer, or an
 * unterminated value. One splitter for the readers of every table.
 *
 * acct_maildir_ok() is 1 for a MAILDIR field as vadmin writes it
 * (domains/..., relative, no "." or ".." component, no control byte), 0
 * otherwise: the one rule of the login and delivery records' readers, so
 * that a table that says otherwise sends nobody outside the root.
 */
#ifndef FACTEUR_ACCT_H
#define FACTEUR_ACCT_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define ACCT_DELIVERY 0
#define ACCT_PASSWD 1
#define ACCT_BUCKETS 65536u

/* users.flags, the FLAGS field of both tables: what an account may not
 * do (vadmin moduser --disable pop|smtp|delivery); the one spelling of
 * these bits for vadmin, vdeliver, mta-smtpd and pop3d */
#define ACCT_NOPOP 1
#define ACCT_NOSMTP 2
#define ACCT_NODELIVERY 4

struct acct_domain {
	struct str real;   /* the real domain (itself unless an alias) */
	struct str dir;    /* relative to the root: domains/REAL */
	unsigned shards;   /* power of two, 1..ACCT_BUCKETS */
};

uint32_t acct_bucket(const char *local, size_t len);
int acct_file_key(struct str *out, const char *domain);
unsigned acct_shard(uint32_t bucket, unsigned shards);
int acct_path(struct str *out, const char *root, int which,
	      const char *domain, unsigned shards, unsigned index);
int acct_domain(const char *root, const char *domain, struct acct_domain *d);
int acct_get(const char *root, const char *domain, int which,
	     const char *local, const char *key, size_t klen,
	     struct str *val);
void acct_domain_free(struct acct_domain *d);
int acct_fields(const char *v, size_t n, const char **f, size_t *len,
		size_t k);
int acct_maildir_ok(const char *s, size_t len);
int acct_local(const char *root, const char *addr);

#endif
