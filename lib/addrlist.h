/*
 * addrlist - the addresses of an RFC 5322 address-list field value.
 *
 * addrlist_parse() takes the value of a To:, Cc:, Bcc: or From: field
 * (NUL-terminated, folded or not) and appends each address it names to
 * OUT as a NUL-terminated string, adding one to *N for each:
 * "Name <a@b>" gives a@b, a bare a@b is itself, (comments) and "quoted,
 * names" are skipped, and a group ("team: a@b, c@d;") gives its members.
 * Nothing is validated: the caller checks what it takes (queue_addr_ok,
 * name_domain). Returns 0 or -ENOMEM.
 *
 * One parser for the two readers of header addresses: sendmail -t (its
 * recipients) and the DKIM signer (lib/qsign: the domain of From:).
 */
#ifndef FACTEUR_ADDRLIST_H
#define FACTEUR_ADDRLIST_H

#include <stddef.h>

#include "str.h"

int addrlist_parse(const char *v, struct str *out, size_t *n);

#endif
