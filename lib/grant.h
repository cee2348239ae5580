/*
 * grant - the POP-before-SMTP grant of a login: one empty file
 * open-smtp/IP a client address, its mtime the last login (SPEC.md, "The
 * root"). Written by every program that checks a mailbox password
 * (pop3d, and vchkpw for Dovecot's IMAP logins); read by mta-smtpd;
 * expired by facteur run.
 *
 * grant_touch() creates ROOT/open-smtp/IP (0600, empty) or sets its mtime
 * to now: no lock and no shared file rewritten, so logins never wait for
 * each other. IP must be an address as lib/peer writes it (peer_text,
 * peer_parse): anything else could name another file, and is -EINVAL.
 * An empty IP (a local client, a pipe) grants nothing and is 0. It
 * returns 0 or a negative errno code. Links are never followed.
 */
#ifndef FACTEUR_GRANT_H
#define FACTEUR_GRANT_H

int grant_touch(const char *root, const char *ip);

#endif
