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
