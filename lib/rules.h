/*
 * rules - client-IP rules in tcprules syntax, compiled to a CDB.
 *
 * control/relayrules holds lines like
 *     127.0.0.1:allow,RELAYCLIENT=""
 *     10.1.:allow,RELAYCLIENT=""
 *     1.2.3.10-20:deny
 *     ::1:allow,RELAYCLIENT=""
 *     2001:db8::/32:allow,RELAYCLIENT=""      (IPv6 prefix, in bits)
 *     2001:db8:1::deny                       (IPv6 prefix, whole groups:
 *                                             the groups, ":", then ":deny")
 *     :allow
 * ADDR is an exact IPv4 address, an IPv4 prefix ending in '.', a last-octet
 * range A.B.C.X-Y, an exact IPv6 address, an IPv6 prefix of whole groups
 * ending in ':' or a /BITS prefix, or empty for every client. After the
 * action, any number of VAR="value" (or VAR=value) settings, comma
 * separated. The most specific rule wins, as with tcpserver: the exact
 * address, then ever shorter prefixes, then the empty rule.
 *
 * rules_check() parses control/relayrules as rules_compile() does and
 * writes nothing (for `facteur doctor`). rules_compile() writes control/relayrules.cdb atomically (lib/cdbx.h);
 * rules_lookup() reads it at each connection, so a change needs no
 * restart. Without relayrules.cdb the defaults of SPEC.md apply
 * (127.:allow,RELAYCLIENT="" and ::1:allow,RELAYCLIENT="").
 * The CDB's keys are described in rules.c; readers use rules_lookup only.
 */
#ifndef FACTEUR_RULES_H
#define FACTEUR_RULES_H

#include <stddef.h>

#include "str.h"

struct rule {
	int allow;		/* 1 allow, 0 deny */
	int matched;		/* 0 when no rule matched (default allow) */
	struct str env;		/* NAME=value\0NAME=value\0... */
};

int rules_check(const char *root, struct str *err, size_t *rule_r);
int rules_compile(const char *root, struct str *err, unsigned long *nrules);
int rules_lookup(const char *root, const char *ip, struct rule *out);
const char *rules_env(const struct rule *r, const char *name);
void rules_free(struct rule *r);

#endif
