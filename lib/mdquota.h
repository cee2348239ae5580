/*
 * mdquota - the Maildir++ quota file, maildirsize, as Courier and Dovecot
 * keep it, so that they can serve the same Maildirs.
 *
 *   10485760S,1000C       the limits: bytes S, messages C (either may be
 *   4096 1                absent; no limit is never written here)
 *   -2048 -1              then one line per change: bytes and messages
 *
 * The usage is the sum of the lines after the first. A writer appends one
 * line with one write(2) on an O_APPEND descriptor, so concurrent writers
 * never interleave. The file is a cache: it is recalculated from the
 * Maildir (maildir_usage()) when it is missing or malformed, when it has
 * reached MDQ_FILE_MAX bytes (Courier's 5120), when its limits are not
 * those the caller knows (for Facteur the delivery table is the truth),
 * when it has no usage line, or when it says a change would go over the
 * quota and it is either older than MDQ_STALE_SECS (15 minutes) or holds
 * more than one usage line (Courier's and Dovecot's rule: never refuse
 * mail on stale numbers). The new file is written in tmp/ and renamed
 * over the old one.
 *
 * Locking, so that the sum stays exact when many deliveries run at once:
 * a process that appends holds a shared lock from before it links its
 * message into new/ until its line is written (mdq_lock(dfd, 0)); a
 * recalculation holds the exclusive lock from the scan to the rename
 * (mdq_rebuild() takes it). Appenders do not block each other. The lock
 * is flock(2) on the regular file MDQ_LOCK_FILE in the Maildir, opened
 * for writing: Linux's NFS client makes that a POSIX lock on the server
 * (since 2.6.12), so it holds between hosts that share the Maildir; a
 * lock on the directory itself would hold on one host only. The lock is
 * held for a few system calls at a time: take no other lock under it,
 * and hold it for nothing longer (a POP3 session, for one), or
 * deliveries would wait. Courier and Dovecot do not know this lock: as
 * Dovecot, Facteur stays right without it on the rare occasions it is not
 * shared. Each line is one write(2) of less than PIPE_BUF bytes on an
 * O_APPEND descriptor; if two hosts' appends over NFS (where the client,
 * not the server, picks the offset of O_APPEND) overwrite each other,
 * the file holds a bad line (recalculated at once) or one line too few,
 * which the next recalculation (at MDQ_FILE_MAX bytes at the latest)
 * puts right. A recalculation writes a file in tmp/ (its name unique to
 * the host through the host part) and renames it over maildirsize.
 *
 * mdq_over() says whether adding a message goes past a limit, counted as
 * Dovecot counts it: usage + size > bytes limit, or messages + 1 > message
 * limit (a limit of 0 is none). mdq_reached() says whether usage is at
 * PERCENT of a limit or more. Functions return 0 or a negative errno code.
 */
#ifndef FACTEUR_MDQUOTA_H
#define FACTEUR_MDQUOTA_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "quota.h"
#include "str.h"

#define MDQ_FILE_MAX 5120
#define MDQ_STALE_SECS (15 * 60)
#define MDQ_LOCK_FILE "quota.lock"

struct mdq {
	struct quota limit;	/* the first line */
	int64_t bytes, msgs;	/* the sum of the usage lines */
	unsigned lines;		/* usage lines */
};

int mdq_parse(const char *buf, size_t len, struct mdq *q);
int mdq_stale(const struct mdq *q, size_t fsize, time_t age,
	      const struct quota *want, uint64_t add_bytes, uint64_t add_msgs);
int mdq_over(const struct quota *lim, uint64_t bytes, uint64_t msgs,
	     uint64_t add_bytes, uint64_t add_msgs);
int mdq_reached(const struct quota *lim, uint64_t bytes, uint64_t msgs,
		unsigned long percent);
int mdq_line(struct str *out, int64_t bytes, int64_t msgs);

/* the descriptor holding the lock, or a negative errno code */
int mdq_lock(int dfd, int exclusive);
void mdq_unlock(int lockfd);
int mdq_read(int dfd, struct mdq *q, size_t *fsize_r, time_t *mtime_r);
int mdq_rebuild(int dfd, int tmpfd, const struct quota *want,
		const char *host, struct mdq *q);
int mdq_usage(int dfd, int tmpfd, const struct quota *want, const char *host,
	      uint64_t add_bytes, uint64_t add_msgs, struct mdq *q);
int mdq_append(int dfd, int64_t bytes, int64_t msgs);
/* maildirsize opened O_APPEND, never through a symlink or a hard link:
 * a descriptor, -ENOENT, or -EILSEQ (not a regular file of one link) */
int mdq_open_append(int dfd);

#endif
