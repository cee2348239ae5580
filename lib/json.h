/*
 * json - a JSON string literal on stdout, for the --json outputs of
 * vadmin and facteur doctor: one escaping rule for both.
 */
#ifndef FACTEUR_JSON_H
#define FACTEUR_JSON_H

#include <stddef.h>

/* json_put_str - S (N bytes) quoted, with '"', '\\' and the control
 * bytes escaped; well-formed UTF-8 as it is, and each byte that is not
 * UTF-8 (a hand-made queue file's address) as \ufffd, so that the
 * output is always valid JSON */
void json_put_str(const char *s, size_t n);

#endif
