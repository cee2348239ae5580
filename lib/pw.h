/*
 * pw - password hashes and the CRAM-MD5 context.
 *
 * Passwords are stored only as crypt(3) hashes made by libxcrypt: yescrypt
 * ("$y$", the default) or SHA-512-crypt ("$6$"); both are always accepted
 * when checking, and so is MD5-crypt ("$1$"), which only `vadmin
 * import-vpopmail` stores (pw_hash_known; pw_hash_ok, for hashes an admin
 * gives, refuses it). For CRAM-MD5 a server needs HMAC-MD5(password, challenge)
 * without the password: pw_cram_context() keeps the two MD5 states after
 * the inner and outer pad blocks (64 hex digits, as Dovecot's CRAM-MD5
 * scheme does), and pw_cram_digest() finishes the HMAC from them.
 * Functions return 0, -EACCES (wrong password), -EINVAL (not a hash we
 * accept) or another negative errno code. pw_verify() is the check of a
 * login: an unknown user (HASH NULL) or an unusable hash costs a check
 * against DUMMY and is -EACCES, as slow as a wrong password. pw_decoy()
 * makes such a DUMMY without hashing: a fresh setting of the scheme
 * (the work a check costs) with a hash part that nothing matches.
 */
#ifndef FACTEUR_PW_H
#define FACTEUR_PW_H

#include <stddef.h>

#include "str.h"

#define PW_CRAM_HEX 64
/* the longest password vadmin stores: vpopmail's limit, and one that every
 * login path carries whole (POP3 PASS in its 255-byte line, checkpassword's
 * 512 bytes beside the longest user name, SMTP AUTH's lines); a longer one
 * would be stored and then refused by some of them */
#define PW_MAX 128

int pw_hash(const char *pw, const char *scheme, struct str *out);
int pw_decoy(const char *scheme, struct str *out);
int pw_check(const char *pw, const char *hash);
int pw_verify(const char *pw, const char *hash, const char *dummy);
int pw_hash_ok(const char *hash);
int pw_hash_known(const char *hash);
int pw_cram_context(const char *pw, size_t len, struct str *hex_out);
int pw_cram_digest(const char *ctxhex, const void *chal, size_t len,
		   char out[33]);

#endif
