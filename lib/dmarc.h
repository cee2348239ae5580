/*
 * dmarc - DMARC (RFC 7489): the organizational domain, the policy record,
 * alignment and the verdict of one message.
 *
 *   psl_load()       a Public Suffix List file (publicsuffix.org's
 *                    format: rules, "*." wildcards, "!" exceptions, "//"
 *                    comments), at most PSL_FILE_MAX bytes and
 *                    PSL_RULES_MAX rules
 *   psl_default()    the system's list (PSL_PATH), loaded once a process
 *   psl_registrable() the public suffix of a domain plus one label (the
 *                    PSL algorithm); -ENOENT when the domain is itself a
 *                    public suffix
 *   dmarc_org()      RFC 7489 3.2's organizational domain: that, or the
 *                    domain itself when it is a public suffix
 *   dmarc_parse()    one TXT record: v=DMARC1 first, p, sp, pct, adkim,
 *                    aspf, rua (only whether it is there); others ignored
 *   dmarc_aligned()  relaxed (same organizational domain) or strict
 *                    (equal) alignment of two domains
 *   dmarc_check()    _dmarc.FROM, then _dmarc.ORG through lib/dns under
 *                    one deadline, alignment of the passing SPF (MAIL
 *                    FROM, never HELO) and DKIM d= domains, the verdict
 *                    and the policy applied after pct= sampling; a
 *                    fail that an aligned identifier's temperror may
 *                    have caused is a temperror
 *
 * Results: 0 with the verdict, -ENOMEM; every DNS or record problem is a
 * verdict. A DNS timeout or failure is DMARC_TEMPERROR, which no caller
 * may turn into a permanent refusal.
 */
#ifndef FACTEUR_DMARC_H
#define FACTEUR_DMARC_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"
#define PSL_FILE_MAX (8 * 1024 * 1024)	/* the real one is 250 KiB */
#define PSL_RULES_MAX 200000		/* and has 10,000 rules */
#define DMARC_TXT_MAX 4096	/* a longer TXT record is not a policy */

enum dmarc_res {
	DMARC_NONE, DMARC_PASS, DMARC_FAIL, DMARC_TEMPERROR, DMARC_PERMERROR
};

enum dmarc_policy { DMARC_P_NONE, DMARC_P_QUARANTINE, DMARC_P_REJECT };

struct psl;

struct dmarc_record {
	enum dmarc_policy p, sp;
	int has_sp;
	unsigned pct;		/* 0..100 */
	int adkim_strict, aspf_strict;
};

struct dmarc_in {
	const char *from;		/* the header From: domain, folded */
	const char *spf_domain;		/* NULL unless SPF passed MAIL FROM */
	const char *const *dkim_d;	/* d= of each passing signature */
	size_t ndkim;
	/* the domains whose SPF (MAIL FROM) or DKIM check was a
	 * temperror: one of them aligned turns a fail into a temperror */
	const char *const *temp_d;
	size_t ntemp;
};

struct dmarc_result {
	enum dmarc_res res;
	enum dmarc_policy policy;	/* the record's, p= or sp= */
	enum dmarc_policy applied;	/* after pct=: what to do with a fail */
	const char *why;		/* reason= in the A-R header, or NULL */
};

struct dns;

int psl_load(const char *path, struct psl **out);
int psl_parse(const char *text, size_t len, struct psl **out);
void psl_free(struct psl *p);
int psl_default(const struct psl **out);
int psl_registrable(const struct psl *p, const char *domain, struct str *out);
int dmarc_org(const struct psl *p, const char *domain, struct str *out);

int dmarc_parse(const char *txt, size_t len, struct dmarc_record *out);
int dmarc_aligned(const struct psl *p, const char *a, const char *b,
		  int strict);
int dmarc_check(struct dns *d, const struct psl *p, const struct dmarc_in *in,
		int64_t deadline_ms, struct dmarc_result *out);
const char *dmarc_res_name(enum dmarc_res r);
const char *dmarc_policy_name(enum dmarc_policy p);

#endif
