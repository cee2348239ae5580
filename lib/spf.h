/*
 * spf - Sender Policy Framework (RFC 7208): check_host() over lib/dns.
 *
 * spf_check() checks the MAIL FROM identity (sender "local@domain"), or
 * the HELO identity when sender is "" (RFC 7208 2.3: the null sender is
 * checked as postmaster@HELO). ip is the client address as text (IPv4,
 * IPv6, IPv4-mapped IPv6 taken as IPv4). It returns 0 with the verdict
 * in *out, or -EINVAL (ip not an address) or -ENOMEM; every DNS or
 * policy problem is a result, never an error: a DNS failure or timeout,
 * or the deadline passing, is SPF_TEMPERROR, never a permanent refusal.
 *
 * Limits (RFC 7208 4.6.4): 10 DNS-querying terms (include, a, mx, ptr,
 * exists, redirect) in all, 2 void lookups, 10 MX or PTR names for one
 * mechanism, records and macro expansions bounded in size, and a total
 * deadline, timeout_ms (dns_deadline() cancels the query in flight when
 * it passes). The exp= modifier is parsed and checked but
 * never fetched: out->why says which term decided instead.
 *
 * spf_parse() and spf_expand() are the record parser and the macro
 * expander alone, for the unit tests and the fuzz target.
 */
#ifndef FACTEUR_SPF_H
#define FACTEUR_SPF_H

#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "str.h"

enum spf_res {
	SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL,
	SPF_TEMPERROR, SPF_PERMERROR
};

#define SPF_LOOKUPS_MAX 10	/* DNS-querying terms, RFC 7208 4.6.4 */
#define SPF_VOIDS_MAX 2		/* void lookups */
#define SPF_NAMES_MAX 10	/* MX or PTR names one mechanism looks at */
#define SPF_EXPAND_MAX 2048	/* bytes one macro expansion may make */
#define SPF_INPUT_MAX 1024	/* sender and HELO longer than this: none */

struct spf_result {
	enum spf_res res;
	struct str domain;	/* the identity's domain (for DMARC) */
	int helo;		/* 1: the HELO identity was checked */
	struct str mech;	/* the term that decided ("-all", "default") */
	struct str why;		/* for errors: what went wrong */
	unsigned lookups;	/* DNS-querying terms evaluated */
	unsigned voids;
};

/* one term of a record; text points into the record given to spf_parse */
enum spf_kind {
	SPF_ALL, SPF_INCLUDE, SPF_A, SPF_MX, SPF_PTR, SPF_IP4, SPF_IP6,
	SPF_EXISTS, SPF_REDIRECT, SPF_EXP, SPF_MODIFIER
};

struct spf_term {
	enum spf_kind kind;
	char qual;		/* '+', '-', '~', '?'; 0 for modifiers */
	const char *arg;	/* domain-spec or network, NULL if none */
	size_t arglen;
	int cidr4, cidr6;	/* prefix lengths: 32 and 128 when absent */
	unsigned char net[16];	/* ip4: 4 bytes, ip6: 16 */
	const char *text;	/* the whole term, for spf_result.mech */
	size_t textlen;
};

struct spf_record {
	struct spf_term *t;
	size_t n, cap;
	const struct spf_term *redirect, *exp;
};

struct spf_env {
	const char *sender;	/* local@domain (postmaster@ added) */
	const char *helo;
	unsigned char ip[16];
	int v6;
	const char *p;		/* %{p}: the validated name; NULL: "unknown" */
};

int spf_check(struct dns *d, const char *ip, const char *sender,
	      const char *helo, int timeout_ms, struct spf_result *out);
void spf_result_free(struct spf_result *r);
const char *spf_res_name(enum spf_res res);

int spf_is_record(const char *txt, size_t len);
int spf_parse(const char *rec, size_t len, struct spf_record *out,
	      const char **why_r);
void spf_record_free(struct spf_record *rec);
int spf_expand(const struct spf_env *env, const char *domain,
	       const char *spec, size_t len, int exp, struct str *out);
int spf_env_ip(struct spf_env *env, const char *ip);

#endif
