/*
 * name - validation and case folding of domain names and local parts.
 *
 * These names become directory names and CDB keys, so the rules are strict:
 * a domain is dot-separated labels of letters, digits and hyphens (no label
 * empty, over 63 bytes or starting or ending with a hyphen), at most 253
 * bytes; a local part is 1 to 64 bytes of RFC 5322 atext and dots, with no
 * leading, trailing or doubled dot. Upper case is folded, never refused.
 * Each function returns 0 or -EINVAL and sets *why_r to a phrase for the
 * user ("contains a slash", ...). name_fold() is the folding alone: it
 * appends a lower-case copy (ASCII letters only) and returns 0 or -ENOMEM.
 *
 * name_ldh() is the host-name rule alone, for every program that checks
 * one (domains here, names asked of DNS, DNSBL zones): 1 to 253 bytes of
 * labels of letters, digits and hyphens, each 1 to 63 bytes, no hyphen at
 * a label's start or end. NAME_LDH_UNDERSCORE lets '_' in (DNS names such
 * as _dmarc.DOMAIN), NAME_LDH_ANY_HYPHEN lets hyphens stand anywhere (a
 * resolver may be asked any name that exists). It returns NULL for a good
 * name, else the phrase; it folds nothing, and a final dot is an empty
 * label (callers that allow one remove it first).
 *
 * name_domain_ascii() appends a domain as it is looked up and queued:
 * with a byte over 0x7f (a U-label, which an SMTPUTF8 client may send) its
 * labels as A-labels (lib/idna), else as it is; 0, -EINVAL (not
 * well-formed UTF-8, an A-label over 63 bytes) or -ENOMEM. mta-smtpd and
 * the local entries (queue_qualify) apply it, so that a hosted domain is
 * found however it is spelled and mta-remote gets a name DNS can ask.
 *
 * name_receivable() is why a hosted local part could never receive mail
 * from outside, or NULL: every entry refuses one that begins with '-'
 * (lib/queue.h queue_addr_entry: a program could take it for an option)
 * and mta-smtpd refuses '%' and '!' in a recipient (the source routes
 * that once opened relays). vadmin creates no user, alias or local
 * destination that fails it, so that no mailbox exists that RCPT refuses.
 */
#ifndef FACTEUR_NAME_H
#define FACTEUR_NAME_H

#include <stddef.h>

#include "str.h"

#define NAME_LOCAL_MAX 64
#define NAME_DOMAIN_MAX 253

/* why a domain name_domain_ascii() refused is refused */
#define NAME_NOT_UTF8 \
	"is not well-formed UTF-8, or has a label too long written as an " \
	"A-label"

#define NAME_LDH_UNDERSCORE 1u
#define NAME_LDH_ANY_HYPHEN 2u

int name_fold(struct str *out, const char *in, size_t len);
const char *name_ldh(const char *s, size_t len, unsigned flags);
int name_domain(const char *in, size_t len, struct str *out,
		const char **why_r);
int name_local(const char *in, size_t len, struct str *out,
	       const char **why_r);
int name_addr(const char *in, struct str *local, struct str *domain,
	      const char **why_r);
const char *name_receivable(const char *local, size_t len);
int name_domain_ascii(const char *d, size_t n, struct str *out);

#endif
