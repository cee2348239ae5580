/*
 * cdbx - constant databases: lookups and atomic regeneration (tinycdb).
 *
 * Readers open only the final name; a writer builds NAME.tmp.PID.NS, fsyncs
 * it, renames it over NAME and fsyncs the directory, so a lookup sees the
 * whole old table or the whole new one. cdbr_find() returns a pointer into
 * the mapped file, valid until cdbr_close(). Functions return 0 (found),
 * -ENOENT (no such key, or no such file for cdbr_open) or another negative
 * errno code. cdbw_finish() is cdbw_sync() (complete and fsync the
 * temporary file) then cdbw_publish() (rename it over the target, fsync
 * the directory); a writer of several tables may sync them in parallel and
 * publish them in the order it wants readers to see them.
 *
 * A process that looks many keys up over time (a delivery worker, an SMTP
 * session process, the scheduler) may keep its tables open between
 * lookups: between cdbx_batch_begin() and cdbx_batch_end(), cdbx_lookup()
 * serves a path from a small per-process cache of mapped files instead of
 * opening, reading and closing it each time. The first lookup of a path
 * in a batch stats it and compares its device and inode with those of the
 * open file: vadmin replaces a table by rename, so a new inode is a new
 * table (and the old inode cannot be reused while we hold it open), and a
 * path that is gone is -ENODATA as without the cache. Later lookups of the
 * same path in the batch use the file checked at its first: a batch sees
 * each table as it was once, never older than the batch. A batch is short
 * (one delivery, one RCPT, one message's pickup). Outside a batch, nothing
 * is cached and cdbx_lookup() opens the file each time, as processes that
 * never begin one (vadmin, doctor) expect; pop3d's batch is one login.
 * cdbx_recheck() makes
 * every path be checked again at its next use (a reader that found one
 * table of a set gone and reads the set again); cdbx_cache_free() closes
 * every cached table.
 */
#ifndef FACTEUR_CDBX_H
#define FACTEUR_CDBX_H

#include <cdb.h>
#include <stddef.h>
#include <sys/types.h>

#include "str.h"

struct cdbr {
	int fd;
	struct cdb cdb;
};

int cdbr_open(struct cdbr *r, const char *path);
int cdbr_find(struct cdbr *r, const void *key, size_t klen,
	      const char **val_r, size_t *vlen_r);
void cdbr_close(struct cdbr *r);
int cdbx_lookup(const char *path, const void *key, size_t klen,
		struct str *val);
void cdbx_batch_begin(void);
void cdbx_batch_end(void);
void cdbx_recheck(void);
void cdbx_cache_free(void);

struct cdbw {
	int fd;
	struct cdb_make cm;
	struct str tmp;
	struct str path;
	mode_t mode;
};

int cdbw_start(struct cdbw *w, const char *path, mode_t mode);
int cdbw_add(struct cdbw *w, const void *key, size_t klen, const void *val,
	     size_t vlen);
int cdbw_finish(struct cdbw *w);
int cdbw_sync(struct cdbw *w);
int cdbw_publish(struct cdbw *w);
void cdbw_abort(struct cdbw *w);

#endif
