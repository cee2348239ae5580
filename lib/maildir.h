/*
 * maildir - writing into a Maildir the safe way, and what its names say.
 *
 * Delivery (D. J. Bernstein's maildir(5), with Maildir++ sizes):
 *
 *   maildir_open()     opens the Maildir below a root directory, one path
 *                      component at a time and never through a symbolic
 *                      link (except the first component, ROOT/domains,
 *                      which an admin may move to another disk), and its
 *                      tmp/ and new/ (recreated 0700 when missing; a
 *                      symbolic link there is refused, -ELOOP). The path
 *                      must be relative, without "." or ".." components.
 *   maildir_create()   a new file in tmp/ under a unique name, created with
 *                      O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600.
 *   maildir_sync()     fsync and close it.
 *   maildir_deliver()  link it into new/ under its final name (rename when
 *                      the file system has no hard links), remove the tmp/
 *                      name, fsync new/.
 *   maildir_abort()    close and remove a file that is not to be delivered.
 *
 * A name is TIME.M<usec>P<pid>Q<seq>.HOST in tmp/ and
 * TIME.M<usec>P<pid>Q<seq>V<dev>I<ino>.HOST,S=<size> in new/ (hexadecimal
 * device and inode of the file, as Dovecot writes them; the size in bytes
 * as Maildir++ readers expect it). Q is a counter of this process, so two
 * files of one process in one microsecond differ too. HOST is the host
 * name with '/', ':' and ',' written as \057, \072 and \054 (maildir_host),
 * so that no host name can fake a size or a flag.
 *
 * maildir_usage() adds up the sizes and the number of the messages in new/
 * and cur/ of the Maildir and of each of its Maildir++ folders (.NAME/), as
 * Dovecot counts a Maildir++ quota: the size from ",S=" in the name, else
 * from stat(). maildir_name_size() reads ",S=" or ",W=" (the size with
 * CRLF line ends, which pop3d announces) from a name, before its ':'.
 *
 * maildir_dovecot_marker() is 1 for the one file Dovecot leaves in a
 * Maildir read-only on purpose, "dovecot-uidvalidity.HEX" with mode 0444
 * (a marker whose name holds the UIDVALIDITY), so that the mode checks
 * of vadmin check and facteur doctor let a Maildir that Dovecot serves
 * be (docs/imap.md); else 0.
 *
 * maildir_mode_ok() is the one mode rule of those two checks, for an
 * entry NAME of type and mode ST_MODE below domains/: a directory 0700;
 * a regular file readable by the mail user and with no bit for the
 * group, others or execution (0600 as we make it, or 0400: read-only is
 * no risk), or Dovecot's marker. Their
 * walks stop MAILDIR_DEPTH_MAX directories down, deeper than a Maildir's
 * folders go.
 *
 * The other functions return 0 or a negative errno code.
 */
#ifndef FACTEUR_MAILDIR_H
#define FACTEUR_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

struct maildir {
	int dfd;	/* the Maildir */
	int tmpfd;	/* tmp/ */
	int newfd;	/* new/ */
};

#define MAILDIR_INIT {-1, -1, -1}

/* the parts of a unique name */
struct mdname {
	uint64_t sec;
	unsigned long usec, pid, seq;
	int have_inode;
	uint64_t dev, ino;
	int have_size;
	uint64_t size;
	const char *host;	/* escaped by maildir_host() */
};

struct mdfile {
	int fd;
	struct mdname id;
	struct str tmpname;
};

#define MDFILE_INIT {-1, {0, 0, 0, 0, 0, 0, 0, 0, 0, NULL}, STR_INIT}

int maildir_host(struct str *out, const char *host);
int maildir_name(struct str *out, const struct mdname *n);
int maildir_name_size(const char *name, size_t len, char field,
		      uint64_t *out);
int maildir_dovecot_marker(const char *name, unsigned mode);
int maildir_mode_ok(const char *name, unsigned st_mode);

#define MAILDIR_DEPTH_MAX 16
int maildir_open(int rootfd, const char *rel, struct maildir *md);
void maildir_close(struct maildir *md);
int maildir_create(struct maildir *md, const char *host, struct mdfile *f);
int maildir_sync(struct mdfile *f);
int maildir_deliver(struct maildir *md, struct mdfile *f, uint64_t size,
		    struct str *newname);
void maildir_abort(struct maildir *md, struct mdfile *f);
int maildir_usage(int dfd, uint64_t *bytes_r, uint64_t *msgs_r);

#endif
