/*
 * utf8 - one code point of UTF-8, and the mask of log text.
 *
 * utf8_next() decodes the sequence at S (N bytes available) into *CP and
 * returns its length, 1 to 4, or -1 when it is not well-formed UTF-8
 * (RFC 3629: shortest form, no surrogate, at most U+10FFFF, all of it
 * within N). The one decoder of the tree: lib/idna reads labels with it,
 * utf8_mask() log text.
 *
 * utf8_valid() is 1 when all N bytes of S are well-formed UTF-8,
 * utf8_8bit() when any of them is over 0x7f (so ASCII is valid UTF-8).
 *
 * utf8_mask() writes '?' over every byte of S that a reader of a log
 * could take for anything but text on this line: ASCII control bytes
 * and DEL, bytes that are not well-formed UTF-8 (a lone 0x9b is CSI to
 * an 8-bit terminal), and the well-formed sequences of the C1 controls
 * (U+0080-U+009F: NEL, CSI), the line and paragraph separators (U+2028,
 * U+2029: line breaks to Unicode-aware readers) and the bidirectional
 * embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069),
 * which reorder what a reader sees. Other UTF-8 (an SMTPUTF8 address,
 * a name) is kept as it is, and the length never changes.
 */
#ifndef FACTEUR_UTF8_H
#define FACTEUR_UTF8_H

#include <stddef.h>
#include <stdint.h>

int utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
int utf8_valid(const char *s, size_t n);
int utf8_8bit(const char *s, size_t n);
void utf8_mask(char *s, size_t n);

#endif
