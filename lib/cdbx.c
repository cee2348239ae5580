/*
 * cdbx - constant databases (see cdbx.h).
 */
#include "cdbx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsx.h"

/* cdbr_open - map a CDB for lookups */
int cdbr_open(struct cdbr *r, const char *path)
{
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	if (cdb_init(&r->cdb, r->fd) < 0) {
		int e = errno ? -errno : -EINVAL;

		close(r->fd);
		r->fd = -1;
		return e;
	}
	return 0;
}

/* cdbr_find - look a key up; the value points into the mapping */
int cdbr_find(struct cdbr *r, const void *key, size_t klen,
	      const char **val_r, size_t *vlen_r)
{
	int f;

	if (klen > UINT_MAX)
		return -ENOENT;
	f = cdb_find(&r->cdb, key, (unsigned)klen);
	if (f < 0)
		return -EIO;
	if (f == 0)
		return -ENOENT;
	*vlen_r = cdb_datalen(&r->cdb);
	*val_r = cdb_get(&r->cdb, cdb_datalen(&r->cdb), cdb_datapos(&r->cdb));
	return *val_r ? 0 : -EIO;
}

/* cdbr_close - unmap and close */
void cdbr_close(struct cdbr *r)
{
	if (r->fd >= 0) {
		cdb_free(&r->cdb);
		close(r->fd);
	}
	r->fd = -1;
}

/* u32 - a little-endian 32-bit number of the CDB format */
static uint32_t u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* pread_all - exactly n bytes at off, or -EIO for a short file */
static int pread_all(int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;

	while (n) {
		ssize_t r = pread(fd, p, n, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* seek_find - D. J. Bernstein's cdb lookup with a few preads: cheaper than
 * mapping the file when one key is wanted from a big table */
static int seek_find(int fd, const void *key, size_t klen, struct str *val)
{
	const unsigned char *k = key;
	unsigned char b[8];
	uint32_t h = 5381, hpos, hlen, slot, i;
	size_t j;
	int r;

	for (j = 0; j < klen; j++)
		h = ((h << 5) + h) ^ k[j];
	r = pread_all(fd, b, 8, (off_t)(h & 255) * 8);
	if (r < 0)
		return r;
	hpos = u32(b);
	hlen = u32(b + 4);
	if (hlen == 0)
		return -ENOENT;
	slot = (h >> 8) % hlen;
	for (i = 0; i < hlen; i++) {
		uint32_t sh, rpos, kl, dl;

		r = pread_all(fd, b, 8, (off_t)hpos + (off_t)slot * 8);
		if (r < 0)
			return r;
		sh = u32(b);
		rpos = u32(b + 4);
		if (rpos == 0)
			return -ENOENT;
		if (++slot == hlen)
			slot = 0;
		if (sh != h)
			continue;
		r = pread_all(fd, b, 8, (off_t)rpos);
		if (r < 0)
			return r;
		kl = u32(b);
		dl = u32(b + 4);
		if (kl != klen)
			continue;
		val->len = 0;
		r = str_ready(val, (size_t)kl + dl);
		if (r < 0)
			return r;
		/* key and data in one read; the key is compared, then dropped */
		r = pread_all(fd, val->s, (size_t)kl + dl, (off_t)rpos + 8);
		if (r < 0)
			return r;
		if (memcmp(val->s, key, klen))
			continue;
		memmove(val->s, val->s + kl, dl);
		val->len = dl;
		val->s[dl] = 0;
		return 0;
	}
	return -ENOENT;
}

/*
 * The cache of open tables (cdbx.h): a handful of entries, since a batch
 * reads assign.cdb and the tables of one or two domains; the least
 * recently used is closed to make room.
 */
#define CDBX_CACHE_MAX 8

struct cached {
	struct str path;	/* empty: a free entry */
	struct cdbr r;
	dev_t dev;
	ino_t ino;
	unsigned long checked;	/* the batch in which the path was stat'ed */
	unsigned long used;	/* for the choice of a victim */
};

static struct {
	struct cached e[CDBX_CACHE_MAX];
	unsigned long batch;	/* 0: never begun */
	unsigned long tick;
	int on;
} cache;

/* cache_drop - close one entry */
static void cache_drop(struct cached *c)
{
	if (c->path.len)
		cdbr_close(&c->r);
	c->path.len = 0;
}

/* cache_slot - the entry of path, else a free or the least recently used
 * one (closed), marked by *hit_r */
static struct cached *cache_slot(const char *path, size_t plen, int *hit_r)
{
	struct cached *c, *victim = &cache.e[0];

	for (c = cache.e; c < cache.e + CDBX_CACHE_MAX; c++) {
		if (c->path.len == plen && !memcmp(c->path.s, path, plen)) {
			*hit_r = 1;
			return c;
		}
		if (!c->path.len)
			victim = c;
		else if (victim->path.len && c->used < victim->used)
			victim = c;
	}
	*hit_r = 0;
	cache_drop(victim);
	return victim;
}

/* cache_open - the cached table of path, opened or checked again as the
 * batch requires; -ENODATA when there is no such file */
static int cache_open(const char *path, struct cdbr **r_out)
{
	size_t plen = strlen(path);
	int hit, e;
	struct cached *c = cache_slot(path, plen, &hit);
	struct stat st;

	if (hit && c->checked != cache.batch) {
		if (stat(path, &st) < 0) {
			e = errno;
			cache_drop(c);
			return e == ENOENT ? -ENODATA : -e;
		}
		if (st.st_dev != c->dev || st.st_ino != c->ino) {
			cache_drop(c);	/* regenerated: open the new one */
			hit = 0;
		}
	}
	if (!hit) {
		e = cdbr_open(&c->r, path);
		if (e < 0)
			return e == -ENOENT ? -ENODATA : e;
		e = fstat(c->r.fd, &st) < 0 ? -errno :
		    str_copyb(&c->path, path, plen);
		if (e < 0) {
			cdbr_close(&c->r);
			c->path.len = 0;
			return e;
		}
		c->dev = st.st_dev;
		c->ino = st.st_ino;
	}
	c->checked = cache.batch;
	c->used = ++cache.tick;
	*r_out = &c->r;
	return 0;
}

/* cached_lookup - a lookup in a cached table; the value is copied out */
static int cached_lookup(const char *path, const void *key, size_t klen,
			 struct str *val)
{
	struct cdbr *r = NULL;
	const char *v = NULL;
	size_t vlen = 0;
	int e = cache_open(path, &r);

	if (e == 0)
		e = cdbr_find(r, key, klen, &v, &vlen);
	if (e == 0)
		e = str_copyb(val, v, vlen);
	return e;
}

/* cdbx_batch_begin - lookups are cached; each path is checked again at
 * its first use from now on */
void cdbx_batch_begin(void)
{
	cache.batch++;
	cache.on = 1;
}

/* cdbx_batch_end - lookups open their file again; the tables stay open
 * for the next batch */
void cdbx_batch_end(void)
{
	cache.on = 0;
}

/* cdbx_recheck - every cached path is stat'ed again at its next use */
void cdbx_recheck(void)
{
	cache.batch++;
}

/* cdbx_cache_free - close every cached table */
void cdbx_cache_free(void)
{
	size_t i;

	for (i = 0; i < CDBX_CACHE_MAX; i++) {
		cache_drop(&cache.e[i]);
		str_free(&cache.e[i].path);
	}
	cache.on = 0;
}

/* cdbx_lookup - open, look up, close (or, in a batch, look up in the
 * cached table); -ENODATA when there is no file */
int cdbx_lookup(const char *path, const void *key, size_t klen,
		struct str *val)
{
	int fd, e;

	if (cache.on)
		return cached_lookup(path, key, klen, val);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENODATA : -errno;
	e = seek_find(fd, key, klen, val);
	close(fd);
	return e;
}

/* cdbw_start - begin writing a new version of path */
int cdbw_start(struct cdbw *w, const char *path, mode_t mode)
{
	int r;

	memset(w, 0, sizeof *w);
	w->fd = -1;
	w->mode = mode;
	r = str_copys(&w->path, path);
	if (r == 0)
		r = fsx_tmpname(&w->tmp, path);
	if (r < 0)
		goto fail;
	w->fd = open(w->tmp.s, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		     O_CLOEXEC, mode);
	if (w->fd < 0) {
		r = -errno;
		goto fail;
	}
	if (cdb_make_start(&w->cm, w->fd) < 0) {
		r = -ENOMEM;
		close(w->fd);
		unlink(w->tmp.s);
		w->fd = -1;
		goto fail;
	}
	return 0;
fail:
	str_free(&w->path);
	str_free(&w->tmp);
	return r;
}

/* cdbw_add - add one record */
int cdbw_add(struct cdbw *w, const void *key, size_t klen, const void *val,
	     size_t vlen)
{
	if (klen > UINT_MAX / 2 || vlen > UINT_MAX / 2)
		return -EOVERFLOW;
	if (cdb_make_add(&w->cm, key, (unsigned)klen, val, (unsigned)vlen) < 0)
		return errno ? -errno : -EIO;
	return 0;
}

/* cdbw_sync - complete the temporary file and make it durable; on failure
 * the file is gone and w is released */
int cdbw_sync(struct cdbw *w)
{
	int r = 0;

	if (cdb_make_finish(&w->cm) < 0)
		r = errno ? -errno : -EIO;
	if (r == 0 && fchmod(w->fd, w->mode) < 0)
		r = -errno;
	if (r == 0 && fsync(w->fd) < 0)
		r = -errno;
	if (close(w->fd) < 0 && r == 0)
		r = -errno;
	w->fd = -1;
	if (r < 0) {
		unlink(w->tmp.s);
		str_free(&w->path);
		str_free(&w->tmp);
	}
	return r;
}

/* cdbw_publish - rename a synced file into place, fsync the directory */
int cdbw_publish(struct cdbw *w)
{
	int r = 0;

	if (rename(w->tmp.s, w->path.s) < 0) {
		r = -errno;
		unlink(w->tmp.s);
	} else {
		r = fsx_fsync_parent(w->path.s);
	}
	str_free(&w->path);
	str_free(&w->tmp);
	return r;
}

/* cdbw_finish - complete, fsync, rename into place, fsync the directory */
int cdbw_finish(struct cdbw *w)
{
	int r = cdbw_sync(w);

	return r < 0 ? r : cdbw_publish(w);
}

/* cdbw_abort - throw the unfinished (or synced, unpublished) file away */
void cdbw_abort(struct cdbw *w)
{
	if (w->fd >= 0) {
		/* tinycdb frees its buffers only in finish; the file is discarded */
		(void)cdb_make_finish(&w->cm);
		close(w->fd);
	}
	if (w->tmp.s)
		unlink(w->tmp.s);
	w->fd = -1;
	str_free(&w->path);
	str_free(&w->tmp);
}
