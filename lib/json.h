/*
 * json - a JSON string literal on stdout, for the --json outputs of
 * vadmin and facteur doctor: one escaping rule for both.
 */
#ifndef FACTEUR_JSON_H
#define FACTEUR_JSON_H

#include <stddef.h>

/* json_put_str - S (N bytes) quoted, with '"', '\\' and the control
 * bytes escaped; other bytes as they are (UTF-8 passes through) */
void json_put_str(const char *s, size_t n);

#endif
