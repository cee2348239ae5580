/*
 * idna - a domain name's U-labels as A-labels ("xn--" and Punycode,
 * RFC 3492 and RFC 5891 4.4), for the Public Suffix List, which spells
 * its internationalized rules in UTF-8 while mail carries names in
 * A-labels (DKIM d=, SPF, most From: domains).
 *
 * idna_to_ascii() appends NAME (N bytes, labels separated by '.') to OUT
 * with every label that holds a byte over 0x7f encoded: the label must be
 * well-formed UTF-8 (shortest forms, no surrogates, at most U+10FFFF).
 * It does not map or normalize (IDNA2008's mapping is the caller's; the
 * list is written in the form the registries use, lowercase NFC): ASCII
 * labels are copied as they are. Returns 0, -EINVAL for UTF-8 that is
 * not well-formed or an A-label over 63 bytes, -ENOMEM.
 */
#ifndef FACTEUR_IDNA_H
#define FACTEUR_IDNA_H

#include <stddef.h>

#include "str.h"

int idna_to_ascii(const char *name, size_t n, struct str *out);

#endif
