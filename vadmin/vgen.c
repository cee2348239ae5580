/*
 * vgen - the CDBs that delivery and login read, generated from the database.
 *
 * control/assign.cdb     DOMAIN -> REALDOMAIN \0 domains/REALDOMAIN \0 SHARDS
 *                        (alias domains map to their real domain)
 * control/rcpthosts.cdb  DOMAIN -> "" for every hosted or alias domain
 * control/domains/D.cdb  delivery table of real domain D (0600), split
 *                        into D+N+I.cdb when D is big (lib/acct.h):
 *     "u" LOCAL -> MAILDIR \0 QUOTA_BYTES \0 QUOTA_MSGS \0 FLAGS
 *     "a" LOCAL -> DEST \0 DEST ...        (an alias)
 *     "f" LOCAL -> KEEP \0 DEST            (a user's forward; KEEP 0 or 1)
 *     "*"       -> bounce | delete | ADDRESS   (the catch-all)
 * control/passwd/D.cdb   login table of D (0600, in a 0700 directory),
 *                        split the same way:
 *     LOCAL -> HASH \0 CRAM \0 FLAGS \0 MAILDIR \0 QUOTA_BYTES \0 QUOTA_MSGS
 *
 * Every file is rewritten whole and renamed into place (cdbx.h), so a
 * reader never sees half a table; a change to one user rewrites only the
 * shard that holds it, which keeps adduser cheap in a domain of 100,000. The same record generators serve
 * `vadmin check`, which compares them with the files on disk.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acct.h"
#include "cdbx.h"
#include "fsx.h"
#include "num.h"
#include "vadmin.h"

/* gen_path - the file of a table; domain and shard only for per-domain ones */
int gen_path(struct str *out, const char *root, int which, const char *domain,
	     unsigned shards, unsigned index)
{
	out->len = 0;
	switch (which) {
	case GEN_DELIVERY:
		return acct_path(out, root, ACCT_DELIVERY, domain, shards, index);
	case GEN_PASSWD:
		return acct_path(out, root, ACCT_PASSWD, domain, shards, index);
	case GEN_ASSIGN:
		return str_catf(out, "%s/control/assign.cdb", root);
	default:
		return str_catf(out, "%s/control/rcpthosts.cdb", root);
	}
}

/* col - a text column, "" for NULL */
static const char *col(struct store_stmt *st, int i)
{
	const char *t = store_column_text(st, i);

	return t ? t : "";
}

/* rec - build a value of NUL-separated fields */
static int rec(struct str *v, int n, const char *const *f)
{
	int i;

	v->len = 0;
	for (i = 0; i < n; i++)
		if ((i && str_catc(v, 0)) || str_cats(v, f[i]))
			return -ENOMEM;
	return 0;
}

/* gen_want_shards - how many files a domain of nusers should be split into;
 * grown past 2048 users a file, shrunk below 256, so it does not flap */
unsigned gen_want_shards(uint64_t nusers, unsigned cur)
{
	unsigned want = 1;

	if (nusers <= (uint64_t)cur * 2048 && (cur == 1 ||
					       nusers >= (uint64_t)cur * 256))
		return cur;
	while (want < ACCT_BUCKETS && (uint64_t)want * 1024 < nusers)
		want *= 2;
	return want;
}

/* gen_bucket_range - the buckets [lo, hi] that shard index of shards holds */
void gen_bucket_range(unsigned shards, unsigned index, unsigned *lo,
		      unsigned *hi)
{
	*lo = (unsigned)((uint64_t)index * ACCT_BUCKETS / shards);
	*hi = (unsigned)((uint64_t)(index + 1) * ACCT_BUCKETS / shards) - 1;
}

/* gen_domain_records - the records of a real domain whose local parts
 * fall in buckets [lo, hi] (one shard, or 0..65535 for the whole domain) */
int gen_domain_records(struct vctx *c, int64_t did, const char *catchall,
		       unsigned lo, unsigned hi, gen_emit_fn emit, void *arg)
{
	struct str k = STR_INIT, v = STR_INIT, p = STR_INIT;
	struct store_stmt *st = NULL;
	int r = 0, rc;

	/* users: both tables from one scan, the hot path of adduser */
	rc = store_prepare(c->db, "SELECT local, maildir, quota_bytes, "
				"quota_msgs, flags, hash, coalesce(cram, '') "
				"FROM users WHERE domain_id = ? AND bucket "
				"BETWEEN ? AND ? ORDER BY bucket, id", &st);
	if (rc != 0)
		return -EIO;
	store_bind_int(st, 1, did);
	store_bind_int(st, 2, lo);
	store_bind_int(st, 3, hi);
	while (r == 0 && (rc = store_step(st)) == STORE_ROW) {
		const char *f[6] = {col(st, 5), col(st, 6), col(st, 4),
				    col(st, 1), col(st, 2), col(st, 3)};
		const char *u[4] = {col(st, 1), col(st, 2), col(st, 3),
				    col(st, 4)};

		k.len = 0;
		r = str_catc(&k, 'u') || str_cats(&k, col(st, 0)) ? -ENOMEM : 0;
		if (r == 0)
			r = rec(&v, 4, u);
		if (r == 0)
			r = emit(arg, GEN_DELIVERY, k.s, k.len, v.s, v.len);
		if (r == 0)
			r = rec(&p, 6, f);
		if (r == 0)
			r = emit(arg, GEN_PASSWD, k.s + 1, k.len - 1, p.s, p.len);
	}
	if (r == 0 && rc != STORE_DONE)
		r = -EIO;
	store_finalize(st);

	/* aliases: rows ordered so that each alias is one record; the shard
	 * is chosen here, not in SQL, as PostgreSQL has no acct_bucket() */
	if (r == 0 && store_prepare(c->db, "SELECT local, dest FROM aliases "
				    "WHERE domain_id = ? ORDER BY local, dest",
				    &st) != 0)
		r = -EIO;
	if (r == 0) {
		store_bind_int(st, 1, did);
		k.len = v.len = 0;
		while (r == 0 && (rc = store_step(st)) == STORE_ROW) {
			const char *l = col(st, 0);
			unsigned b = acct_bucket(l, strlen(l));

			if (b < lo || b > hi)
				continue;

			if (k.len && strcmp(k.s + 1, l)) {
				r = emit(arg, GEN_DELIVERY, k.s, k.len, v.s,
					 v.len);
				k.len = v.len = 0;
			}
			if (r == 0 && !k.len &&
			    (str_catc(&k, 'a') || str_cats(&k, l)))
				r = -ENOMEM;
			if (r == 0 && ((v.len && str_catc(&v, 0)) ||
				       str_cats(&v, col(st, 1))))
				r = -ENOMEM;
		}
		if (r == 0 && rc != STORE_DONE)
			r = -EIO;
		if (r == 0 && k.len)
			r = emit(arg, GEN_DELIVERY, k.s, k.len, v.s, v.len);
		store_finalize(st);
	}

	/* forwards */
	if (r == 0 && store_prepare(c->db, "SELECT u.local, f.keep, f.dest "
					 "FROM forwards f JOIN users u ON "
					 "u.id = f.user_id WHERE u.domain_id "
					 "= ? AND u.bucket BETWEEN ? AND ? "
					 "ORDER BY u.bucket, u.id", &st) != 0)
		r = -EIO;
	if (r == 0) {
		store_bind_int(st, 1, did);
		store_bind_int(st, 2, lo);
		store_bind_int(st, 3, hi);
		while (r == 0 && (rc = store_step(st)) == STORE_ROW) {
			const char *f[2] = {col(st, 1), col(st, 2)};

			k.len = 0;
			r = str_catc(&k, 'f') || str_cats(&k, col(st, 0)) ?
			    -ENOMEM : rec(&v, 2, f);
			if (r == 0)
				r = emit(arg, GEN_DELIVERY, k.s, k.len, v.s,
					 v.len);
		}
		if (r == 0 && rc != STORE_DONE)
			r = -EIO;
		store_finalize(st);
	}
	if (r == 0)
		r = emit(arg, GEN_DELIVERY, "*", 1, catchall, strlen(catchall));
	str_free(&k);
	str_free(&v);
	str_free(&p);
	return r;
}

/* gen_global_records - assign and rcpthosts */
int gen_global_records(struct vctx *c, gen_emit_fn emit, void *arg)
{
	struct str v = STR_INIT;
	struct store_stmt *st;
	int r = 0, rc;

	if (store_prepare(c->db, "SELECT d.name, r.name, r.shards FROM "
			       "domains d JOIN domains r ON r.id = "
			       "coalesce(d.alias_of, d.id) ORDER BY d.id",
			  &st) != 0)
		return -EIO;
	while (r == 0 && (rc = store_step(st)) == STORE_ROW) {
		const char *name = col(st, 0), *real = col(st, 1);

		v.len = 0;
		r = str_cats(&v, real) || str_catc(&v, 0) ||
		    str_catf(&v, "domains/%s", real) || str_catc(&v, 0) ||
		    str_catf(&v, "%lld", (long long)store_column_int(st, 2))
		    ? -ENOMEM : 0;
		if (r == 0)
			r = emit(arg, GEN_ASSIGN, name, strlen(name), v.s,
				 v.len);
		if (r == 0)
			r = emit(arg, GEN_RCPTHOSTS, name, strlen(name), "", 0);
	}
	if (r == 0 && rc != STORE_DONE)
		r = -EIO;
	store_finalize(st);
	str_free(&v);
	return r;
}

/* emit_write - the emitter that writes into open CDB writers */
static int emit_write(void *arg, int which, const char *key, size_t klen,
		      const char *val, size_t vlen)
{
	struct cdbw *w = arg;

	return cdbw_add(&w[which], key, klen, val, vlen);
}

struct sync_job {
	struct cdbw *w;
	int r;
};

/* sync_thread - cdbw_sync in a second thread */
static void *sync_thread(void *arg)
{
	struct sync_job *j = arg;

	j->r = cdbw_sync(j->w);
	return NULL;
}

/* sync_pair - cdbw_sync both files, b in a second thread when one starts;
 * on failure neither file is left and both writers are released */
static int sync_pair(struct cdbw *a, struct cdbw *b)
{
	struct sync_job jb = {b, 0};
	pthread_t th;
	int threaded = pthread_create(&th, NULL, sync_thread, &jb) == 0;
	int ra;

	if (!threaded)
		sync_thread(&jb);
	ra = cdbw_sync(a);
	if (threaded)
		pthread_join(th, NULL);
	if (ra < 0 && jb.r == 0) {
		unlink(b->tmp.s);
		str_free(&b->path);
		str_free(&b->tmp);
	}
	if (jb.r < 0 && ra == 0) {
		unlink(a->tmp.s);
		str_free(&a->path);
		str_free(&a->tmp);
	}
	return ra < 0 ? ra : jb.r;
}

/* write_tables - regenerate two tables (a, b) with a record generator;
 * the global pair is public (0644), a domain's pair private (0600) */
static int write_tables(struct vctx *c, int a, int b, const char *domain,
			int64_t did, const char *catchall, int mode,
			unsigned shards, unsigned index)
{
	struct cdbw w[4];
	struct str pa = STR_INIT, pb = STR_INIT;
	unsigned lo, hi;
	int r;

	gen_bucket_range(shards, index, &lo, &hi);
	r = gen_path(&pa, c->root, a, domain, shards, index);
	if (r == 0)
		r = gen_path(&pb, c->root, b, domain, shards, index);
	if (r == 0)
		r = cdbw_start(&w[a], pa.s, (mode_t)mode);
	if (r < 0)
		goto out;
	r = cdbw_start(&w[b], pb.s, (mode_t)mode);
	if (r < 0) {
		cdbw_abort(&w[a]);
		goto out;
	}
	r = domain ? gen_domain_records(c, did, catchall, lo, hi, emit_write,
					w) :
	    gen_global_records(c, emit_write, w);
	if (r < 0) {
		cdbw_abort(&w[a]);
		cdbw_abort(&w[b]);
		goto out;
	}
	/* the two fsyncs in parallel (they are most of an adduser); then the
	 * login table first: a new user can log in once delivery knows it */
	r = sync_pair(&w[a], &w[b]);
	if (r == 0)
		r = cdbw_publish(&w[b]);
	if (r < 0)
		cdbw_abort(&w[a]);
	else
		r = cdbw_publish(&w[a]);
out:
	str_free(&pa);
	str_free(&pb);
	return r;
}

/* gen_parse_name - split KEY.cdb or KEY+N+I.cdb (lib/acct.h) into the
 * domain's file key, N and I; -EINVAL for other names */
int gen_parse_name(const char *name, struct str *domain, unsigned *shards,
		   unsigned *index)
{
	size_t len = strlen(name);
	const char *plus = strchr(name, '+');
	const char *e = name + len;
	uint64_t n, i;
	size_t a, b;

	if (len < 5 || strcmp(name + len - 4, ".cdb"))
		return -EINVAL;
	if (!plus) {
		*shards = 1;
		*index = 0;
		return str_copyb(domain, name, len - 4);
	}
	if (num_scan(plus + 1, (size_t)(e - plus - 1), ACCT_BUCKETS, &n, &a) ||
	    plus[1 + a] != '+' ||
	    num_scan(plus + 2 + a, (size_t)(e - plus - 2) - a, ACCT_BUCKETS, &i,
		     &b) || strcmp(plus + 2 + a + b, ".cdb") || n < 2 || i >= n)
		return -EINVAL;
	*shards = (unsigned)n;
	*index = (unsigned)i;
	return str_copyb(domain, name, (size_t)(plus - name));
}

/* gen_sweep - remove a domain's table files that its shard count disowns
 * (all of them when the domain is gone); run only after assign.cdb is new */
int gen_sweep(struct vctx *c, const char *domain)
{
	static const char *const dirs[] = {"domains", "passwd"};
	struct str dir = STR_INIT, p = STR_INIT, dom = STR_INIT, key = STR_INIT;
	struct store_stmt *st;
	unsigned cur = 0, n, i, k;
	int r = acct_file_key(&key, domain);

	if (r < 0)
		return r;
	if (store_prepare(c->db, "SELECT shards FROM domains WHERE name = "
			       "? AND alias_of IS NULL", &st) != 0)
		return -EIO;
	store_bind_text(st, 1, domain);
	if (store_step(st) == STORE_ROW)
		cur = (unsigned)store_column_int(st, 0);
	store_finalize(st);
	for (k = 0; r == 0 && k < 2; k++) {
		DIR *d;
		struct dirent *de;

		dir.len = 0;
		if (str_catf(&dir, "%s/control/%s", c->root, dirs[k]))
			return -ENOMEM;
		d = opendir(dir.s);
		if (!d)
			continue;
		while (r == 0 && (de = readdir(d)) != NULL) {
			if (gen_parse_name(de->d_name, &dom, &n, &i) < 0 ||
			    !str_eqs(&dom, key.s) || n == cur)
				continue;
			p.len = 0;
			r = str_catf(&p, "%s/%s", dir.s, de->d_name);
			if (r == 0 && unlink(p.s) < 0 && errno != ENOENT)
				r = -errno;
		}
		closedir(d);
		if (r == 0)
			r = fsx_fsync_dir(dir.s);
	}
	str_free(&dir);
	str_free(&p);
	str_free(&dom);
	str_free(&key);
	return r;
}

struct domrow {
	int64_t id, alias_of, nusers;
	unsigned shards;
	struct str catchall;
};

/* domain_row - the row of a domain; 0 when there is none */
static int domain_row(struct vctx *c, const char *domain, struct domrow *d)
{
	struct store_stmt *st;
	int found = 0;

	if (store_prepare(c->db, "SELECT id, alias_of, catchall, shards, "
			       "nusers FROM domains WHERE name = ?", &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	store_bind_text(st, 1, domain);
	if (store_step(st) == STORE_ROW) {
		d->id = store_column_int(st, 0);
		d->alias_of = store_column_int(st, 1);
		d->shards = (unsigned)store_column_int(st, 3);
		d->nusers = store_column_int(st, 4);
		if (str_copys(&d->catchall, col(st, 2)))
			vfail(EX_TEMP, "out of memory");
		found = 1;
	}
	store_finalize(st);
	return found;
}

/* gen_domain - regenerate every shard of a domain, re-splitting it when its
 * size calls for it; or owe the removal of its files if it is gone */
int gen_domain(struct vctx *c, const char *domain)
{
	struct domrow d = {0, 0, 0, 1, STR_INIT};
	unsigned want, i;
	int r = 0;

	if (!domain_row(c, domain, &d) || d.alias_of) {
		m_pending(c, "sweep", domain);
		str_free(&d.catchall);
		return 0;
	}
	want = gen_want_shards((uint64_t)d.nusers, d.shards);
	for (i = 0; r == 0 && i < want; i++)
		r = write_tables(c, GEN_DELIVERY, GEN_PASSWD, domain, d.id,
				 d.catchall.s, 0600, want, i);
	if (r == 0 && want != d.shards) {
		/* readers switch when assign.cdb says so; old files go after */
		struct store_stmt *st;

		m_begin(c);
		if (store_prepare(c->db, "UPDATE domains SET shards = ? "
				       "WHERE id = ?", &st) != 0)
			vfail(EX_TEMP, "database error: %s",
			      store_errmsg(c->db));
		store_bind_int(st, 1, want);
		store_bind_int(st, 2, d.id);
		if (store_step(st) != STORE_DONE)
			vfail(EX_TEMP, "database error: %s",
			      store_errmsg(c->db));
		store_finalize(st);
		m_pending(c, "global", "");
		m_pending(c, "sweep", domain);
		m_commit(c);
	}
	str_free(&d.catchall);
	return r;
}

/* gen_user - regenerate the shard of a domain that holds LOCAL@DOMAIN */
int gen_user(struct vctx *c, const char *addr)
{
	struct domrow d = {0, 0, 0, 1, STR_INIT};
	const char *at = strrchr(addr, '@');
	unsigned i;
	int r;

	if (!at)
		return 0;
	if (!domain_row(c, at + 1, &d) || d.alias_of ||
	    gen_want_shards((uint64_t)d.nusers, d.shards) != d.shards) {
		str_free(&d.catchall);
		return gen_domain(c, at + 1);
	}
	i = acct_shard(acct_bucket(addr, (size_t)(at - addr)), d.shards);
	r = write_tables(c, GEN_DELIVERY, GEN_PASSWD, at + 1, d.id,
			 d.catchall.s, 0600, d.shards, i);
	str_free(&d.catchall);
	return r;
}

/* gen_global - regenerate assign.cdb and rcpthosts.cdb */
int gen_global(struct vctx *c)
{
	return write_tables(c, GEN_RCPTHOSTS, GEN_ASSIGN, NULL, 0, NULL, 0644,
			    1, 0);
}

/* safe_rel - a journal path must stay below domains/ */
static int safe_rel(const char *p)
{
	return !strncmp(p, "domains/", 8) && !strstr(p, "..") &&
	       !strstr(p, "//") && p[8];
}

/* durable - whether a commit waits for the disk: a lost delete of a
 * pending row only repeats idempotent work, so those need not wait */
static int durable(struct vctx *c, int on)
{
	if (store_kind(c->db) == STORE_PG)
		return store_exec(c->db, on ? "SET synchronous_commit = on" :
				  "SET synchronous_commit = off");
	return store_exec(c->db, on ? "PRAGMA synchronous = FULL" :
			  "PRAGMA synchronous = NORMAL");
}

/* gen_do - one piece of file work (a pending row, or a change another
 * host made: `vadmin watch`, which does not remove directories, as the
 * host that made the change did so where it matters) */
int gen_do(struct vctx *c, const char *kind, const char *arg, int rmdirs)
{
	struct str path = STR_INIT;
	int r = 0;

	if (!strcmp(kind, "cdb")) {
		r = gen_domain(c, arg);
	} else if (!strcmp(kind, "user")) {
		r = gen_user(c, arg);
	} else if (!strcmp(kind, "sweep")) {
		r = gen_sweep(c, arg);
	} else if (!strcmp(kind, "global")) {
		r = gen_global(c);
	} else if (!strcmp(kind, "dkim")) {
		r = gen_dkim(c);
	} else if (!strcmp(kind, "rmdir") && rmdirs && safe_rel(arg)) {
		r = str_catf(&path, "%s/%s", c->root, arg) ? -ENOMEM :
		    fsx_rmtree(path.s);
	}
	/* anything else is not ours to do: dropped rather than looped on */
	str_free(&path);
	return r;
}

/* gen_run_pending - do the file work that committed changes still owe */
void gen_run_pending(struct vctx *c)
{
	struct str kind = STR_INIT, arg = STR_INIT;
	struct store_stmt *st, *del;
	int r;

	if (store_prepare(c->db, "SELECT id, kind, arg FROM pending "
			       "ORDER BY kind = 'rmdir', id LIMIT 1", &st) != 0 ||
	    store_prepare(c->db, "DELETE FROM pending WHERE id = ?", &del) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	for (;;) {
		int64_t id;

		store_reset(st);
		if (store_step(st) != STORE_ROW)
			break;
		id = store_column_int(st, 0);
		if (str_copys(&kind, col(st, 1)) || str_copys(&arg, col(st, 2)))
			vfail(EX_TEMP, "out of memory");
		store_reset(st);
		r = gen_do(c, kind.s, arg.s, 1);
		if (r < 0)
			vfail(EX_TEMP, "the change is saved but updating the "
			      "files failed (%s %s: %s); fix that and run "
			      "'vadmin rebuild'", kind.s, arg.s, msg_err(r));
		/* a lost delete only repeats idempotent work: no fsync */
		store_reset(del);
		store_bind_int(del, 1, id);
		if (durable(c, 0) != 0 || store_step(del) != STORE_DONE ||
		    durable(c, 1) != 0)
			vfail(EX_TEMP, "database error: %s",
			      store_errmsg(c->db));
	}
	store_finalize(st);
	store_finalize(del);
	str_free(&kind);
	str_free(&arg);
}

/* sweep_tmp - the temporary files of CDBs that a killed vadmin was
 * writing: we hold the lock every vadmin writer takes, so none is alive.
 * In control/ only vadmin's own tables (mta-rules writes relayrules.cdb
 * there without that lock) */
static void sweep_tmp(struct vctx *c)
{
	static const char *const dirs[] = {"control/domains", "control/passwd",
					   "control"};
	struct str p = STR_INIT;
	unsigned i;

	for (i = 0; i < 3; i++) {
		struct dirent *de;
		DIR *d;

		p.len = 0;
		if (str_catf(&p, "%s/%s", c->root, dirs[i]) < 0 ||
		    !(d = opendir(p.s)))
			continue;
		while ((de = readdir(d)) != NULL)
			if (strstr(de->d_name, ".tmp.") &&
			    (i < 2 || !strncmp(de->d_name, "assign.cdb.", 11) ||
			     !strncmp(de->d_name, "rcpthosts.cdb.", 14) ||
			     !strncmp(de->d_name, "dkim.cdb.", 9)))
				(void)unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	}
	str_free(&p);
}

/* gen_recover - at the start of a writer: work that a killed vadmin
 * committed but did not write out is done, and the temporary files it
 * left are removed (vadmin check would report them) */
void gen_recover(struct vctx *c)
{
	struct store_stmt *st;
	int owed;

	if (store_prepare(c->db, "SELECT 1 FROM pending LIMIT 1", &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	owed = store_step(st) == STORE_ROW;
	store_finalize(st);
	if (!owed)
		return;
	sweep_tmp(c);
	gen_run_pending(c);
}

/* gen_rebuild_all - every table from scratch, stale ones removed */
void gen_rebuild_all(struct vctx *c)
{
	struct store_stmt *st;
	int rc;

	m_begin(c);
	/* WHERE before ON CONFLICT: SQLite would read the ON as a join's */
	if (store_prepare(c->db, "INSERT INTO pending(kind, arg) SELECT "
			  "'cdb', name FROM domains WHERE alias_of IS NULL "
			  "ON CONFLICT DO NOTHING", &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	rc = store_step(st);
	store_finalize(st);
	if (rc != STORE_DONE)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	m_pending(c, "global", "");
	m_pending(c, "dkim", "");
	m_commit(c);
	gen_run_pending(c);
}
