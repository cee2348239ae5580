/*
 * grant - the POP-before-SMTP grant of a login: one empty file
 * open-smtp/IP a client address, its mtime the last login (SPEC.md, "The
 * root"). Written by every program that checks a mailbox password
 * (pop3d, and vchkpw for Dovecot's IMAP logins), and by `vadmin share`
 * for a login on another host; read by mta-smtpd; expired by facteur run.
 *
 * grant_touch() creates ROOT/open-smtp/IP (0600, empty) or sets its mtime
 * to now: no lock and no shared file rewritten, so logins never wait for
 * each other. grant_set() does the same with the time AT (seconds since
 * the epoch), but never moves an existing grant back: it returns 1 when
 * it changed the file, 0 when the grant was already as new. grant_age()
 * gives the mtime of a grant in *at_r (-ENOENT when there is none). IP
 * must be an address as lib/peer writes it (peer_text, peer_parse):
 * anything else could name another file, and is -EINVAL. An empty IP (a
 * local client, a pipe) grants nothing and is 0. They return a negative
 * errno code on failure. Links are never followed, and a grant that is
 * not a regular file is -EINVAL. How long a grant lasts is
 * control/popbeforesmtp (ctl_num(root, CTL_POPBEFORESMTP, ...)), and
 * grant_live() is the one rule of every program that honours, expires,
 * counts or shares grants: a grant of time AT is live at NOW while it is
 * younger than LIFE seconds (one from the future too).
 */
#ifndef FACTEUR_GRANT_H
#define FACTEUR_GRANT_H

#include <stdint.h>
#include <time.h>

int grant_touch(const char *root, const char *ip);
int grant_set(const char *root, const char *ip, time_t at);
int grant_age(const char *root, const char *ip, time_t *at_r);
int grant_live(int64_t at, unsigned long life, int64_t now);

#endif
