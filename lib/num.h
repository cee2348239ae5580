/*
 * num - decimal numbers read from text, overflow checked, one rule for
 * every program: digits '0'-'9' only (no sign, no space, no "0x"), at
 * least one, and a value no larger than the caller's max.
 *
 * num_scan() reads the digits at the start of s[0..len) and says how many
 * it took (*used_r), for fields that a separator or a unit letter ends;
 * num_parseb() wants s[0..len) to be nothing but the number, and
 * num_parse() a whole NUL-terminated string. All return 0, -EINVAL (no
 * digit, or more than the number) or -ERANGE (larger than max); *out and
 * *used_r are written only on success.
 */
#ifndef FACTEUR_NUM_H
#define FACTEUR_NUM_H

#include <stddef.h>
#include <stdint.h>

int num_scan(const char *s, size_t len, uint64_t max, uint64_t *out,
	     size_t *used_r);
int num_parseb(const char *s, size_t len, uint64_t max, uint64_t *out);
int num_parse(const char *s, uint64_t max, uint64_t *out);

#endif
