/*
 * queue - the spool's message files: writing one durably, reading one back.
 *
 * A queued message is ONE file: typed, length-prefixed envelope records
 * followed by the message itself, so that a message and its envelope land
 * with one fsync and one rename, and a reader never parses text that came
 * from the network to find the envelope (STYLE.md item 10). See
 * docs/queue.md for the directories and the state machine.
 *
 *   "FQ1\n"                         magic and version
 *   record*: TYPE(1) LEN(u32 LE) PAYLOAD(LEN)
 *     'T' arrival time, u64 LE microseconds since the epoch
 *     'F' envelope sender ("" for <>)
 *     'R' one recipient (repeated, at least once)
 *     'C' client IP, 'H' HELO name, 'A' authenticated user, 'P' protocol
 *     'U' uid of the local user who injected it (decimal)
 *     'B' this is a double bounce: its own failure is dropped, not bounced
 *     '_' padding, skipped: room qw_top_room() left and qw_top_fill()
 *         did not need
 *   'M' u64 LE length of the message, then the message to end of file
 *
 * The message is kept with LF line ends, as Maildir and qmail keep it:
 * writers turn CR LF into LF with queue_lf(), piece by piece, and a stray
 * CR (not before LF) into a space, as Postfix's cleanup does
 * (cleanup_replace_stray_cr_lf): sent on, a bare CR is how `\r.\r`
 * smuggles a second message past a lax next hop, and a script's odd line
 * end is no reason to refuse its mail. Its state *ST carries a CR that
 * ended the previous piece (QLF_CR; queue_lf_flush() writes its space at
 * the end) and whether a NUL was seen (QLF_BAD): the local entries refuse
 * such a message, as SMTP does (554 5.6.0); queue_lf_end() says so.
 * Addresses are refused if they hold CR, LF or NUL: those never reach a
 * file. qw_commit() fsyncs the file, renames it from queue/tmp/ into
 * queue/new/ID and fsyncs new/, and only then reports the ID: the caller
 * may say "250 ok ID" when it returns 0. The ID is the arrival time and the
 * file's inode number, unique among the files the queue holds.
 *
 * qw_reserve() leaves room in the message that qw_fill() fills before the
 * commit (the DKIM signature, lib/qsign.h, which precedes a body that
 * must be written before the signature can be made). qw_top_room() and
 * qw_top_fill() do the same for text that must come first in the
 * message (mta-smtpd's Authentication-Results): the room is a '_'
 * padding record before 'M', and filling it moves the 'M' record back
 * over the padding, never a message byte.
 *
 * Spent files are written over, not unlinked (queue_pool_put(),
 * qw_open()): mta-send renames a finished message of at most
 * QUEUE_POOL_MAX bytes into queue/pool/K, K cycling over QUEUE_POOL
 * slots (the first empty one of the next QUEUE_POOL_TRIES, else the
 * next, replaced: its file is unlinked), and qw_open() renames one it
 * finds to its queue/tmp/ name (the next two slots of its own cursor,
 * else what a listing of queue/pool/ shows; after a listing that found
 * it empty, the next 16 writes of the process do not list), then writes
 * over it from offset 0 and cuts it to length before the fsync. Why: on
 * ext4 without a journal every inode allocation skips the inodes freed nearby
 * in the last one to six minutes, one inode-table lookup each
 * (fs/ext4/ialloc.c, recently_deleted()), and the queue frees one a
 * message: the queue file's creation cost mta-smtpd 35-90 us on a quiet
 * disk and up to 0.5 ms after many removals nearby (docs/performance.md,
 * "Where the CPU of a message goes"). A reused
 * file is the same as a new one to every reader: its ID is the arrival
 * time and its inode, its bytes are the new message's only, it is
 * fsynced before the rename into new/. A slot is taken by one writer only
 * (renameat2 RENAME_NOREPLACE onto a name only that writer makes).
 *
 * qw_open_path() and qw_commit_path() write the same format to a path of
 * the caller's choosing and rename it to another: sendmail run by a local
 * user writes ROOT/drop/ with them (docs/queue.md, "Local submission").
 */
#ifndef FACTEUR_QUEUE_H
#define FACTEUR_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "str.h"

#define QUEUE_MAGIC "FQ1\n"

/*
 * Limits at every entry (SMTP, mta-inject, sendmail, drop/; SPEC "Mail
 * flow" 1). QUEUE_RCPTS_MAX recipients a message at most: more made one
 * message hold the scheduler for minutes. queue_rcpts_ok(N) is 0 when a
 * message may have N recipients, else -E2BIG; qenv_add_rcpt() refuses the
 * one past the limit with -E2BIG, and the drop/ pickup, which reads a
 * whole envelope, asks queue_rcpts_ok(). queue_addr_entry() is -EINVAL for
 * an address whose local part begins with '-': passed to a program it
 * could be read as an option (lib/args.h); "" (the null sender) passes.
 * An address is at most QUEUE_ADDR_MAX bytes (queue_addr_plain), so that
 * vdeliver, which holds a sender to the same number, can write it in a
 * Return-Path: line; mta-smtpd's addresses are shorter still (RFC 5321's
 * 64 and 255). Files already in the queue are not held to these: only
 * entries are.
 *
 * The size limit is control/databytes (ctl_num(root, CTL_DATABYTES, ...)).
 * A writer that calls qw_limit(w, MAX) takes at most MAX more message
 * bytes: qw_body() then refuses the chunk that would pass
 * it with -EFBIG (exactly MAX is accepted). mta-inject and sendmail's
 * drop/ writer cut so; mta-smtpd counts DATA itself, before a queue file
 * exists, and the drop/ pickup checks a file's size before copying it.
 */
#define QUEUE_RCPTS_MAX 1000
#define QUEUE_ADDR_MAX 998

struct qenv {
	uint64_t arrival_us;
	struct str sender;
	struct str rcpts;	/* NUL-terminated addresses, one after another */
	size_t nrcpts;
	struct str client, helo, auth, proto, uid;
	int dbl;		/* 'B': a double bounce */
};

struct qwriter {
	int fd;
	struct str tmp;
	struct str root;
	uint64_t arrival_us;
	uint64_t body_len;
	uint64_t limit;		/* body_len may not pass it (qw_limit) */
	off_t len_pos;
	size_t top_room;	/* qw_top_room's room not yet filled */
	int reused;		/* a spent file of queue/pool/: cut at commit */
};

#define QUEUE_POOL 64			/* slots of queue/pool/ */
#define QUEUE_POOL_TRIES 4		/* slots mta-send looks at */
#define QUEUE_POOL_MAX (64 * 1024)	/* bigger spent files are unlinked */

/* QUEUE_DBL_SENDER - how a double bounce's sender is written where only a
 * string can pass (mta-send to vdeliver, vdeliver's forward to
 * mta-inject): qmail's "#@[]". The queue file keeps <> and the 'B' mark;
 * a double bounce that postmaster forwards off-site stays one, so that its
 * failure is dropped instead of making a new double bounce to postmaster,
 * which would forward it again, without end. queue_sender_arg() gives
 * the string for an envelope. */
#define QUEUE_DBL_SENDER "#@[]"

const char *queue_sender_arg(const struct qenv *e);
void qenv_init(struct qenv *e);
void qenv_free(struct qenv *e);
int qenv_add_rcpt(struct qenv *e, const char *addr);
int queue_addr_ok(const char *addr, size_t len);
int queue_addr_plain(const char *addr, size_t len);
int queue_addr_entry(const char *addr, size_t len);
int queue_rcpts_ok(size_t n);
int queue_qualify(const char *in, const char *me, int is_sender,
		  struct str *out, const char **why_r);

int qw_open(struct qwriter *w, const char *root, const struct qenv *e);
#define QLF_CR 1
#define QLF_BAD 2
#define QLF_BAD_TEXT "a NUL byte"
size_t queue_lf(char *out, const char *in, size_t n, int *st);
size_t queue_lf_flush(char *out, int *st);
int queue_lf_end(int st);
void qw_limit(struct qwriter *w, uint64_t max);
int qw_body(struct qwriter *w, const void *buf, size_t n);
int qw_reserve(struct qwriter *w, size_t n, off_t *off_r);
int qw_fill(struct qwriter *w, off_t off, const void *buf, size_t n);
int qw_top_room(struct qwriter *w, size_t n);
int qw_top_fill(struct qwriter *w, const void *buf, size_t n);
int qw_commit(struct qwriter *w, struct str *id_r);
int qw_open_path(struct qwriter *w, const char *path, mode_t mode,
		 const struct qenv *e);
int qw_commit_path(struct qwriter *w, const char *dst);
void qw_abort(struct qwriter *w);

int queue_read_env(int fd, struct qenv *e, off_t *body_off_r,
		   uint64_t *body_len_r);
int queue_trigger(const char *root);
int queue_pool_put(const char *root, const char *path, uint64_t size);
int queue_id_parse(const char *name, uint64_t *arrival_us, uint64_t *ino);
int queue_msg_path(struct str *out, const char *root, const char *id,
		   const char *suffix);

#endif
