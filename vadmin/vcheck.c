/*
 * vcheck - `vadmin check [--repair]`: the files against the database.
 *
 * Checks what a hand edit, a crash or a careless chmod can leave: modes
 * (directories 0700, files without any x bit and private to the owner),
 * symbolic links where mail lives, each user's Maildir shape and
 * maildirsize, and every CDB record by record against what the database
 * says it must hold. With --repair it fixes what is safe to fix (modes,
 * missing Maildir directories, maildirsize, CDBs, leftover temporary
 * files). It never deletes mail: a directory the database does not know
 * is reported as a warning and left for the admin.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acct.h"
#include "cdbx.h"
#include "fsx.h"
#include "maildir.h"
#include "num.h"
#include "vadmin.h"

struct chk {
	struct vctx *c;
	int repair;
	int left;
};

/* problem - report one finding; fixed says whether --repair mended it */
static void problem(struct chk *k, int fixed, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct chk *k, int fixed, const char *fmt, ...)
{
	va_list ap;

	fputs(fixed ? "repaired: " : "problem: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!fixed)
		k->left++;
}

/* check_mode_tree - modes below dir, without following links */
static void check_mode_tree(struct chk *k, const char *dir, int depth)
{
	DIR *d;
	struct dirent *de;
	struct str p = STR_INIT;

	if (depth >= MAILDIR_DEPTH_MAX)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		mode_t m;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p.len = 0;
		if (str_catf(&p, "%s/%s", dir, de->d_name))
			vfail(EX_TEMP, "out of memory");
		if (lstat(p.s, &st) < 0)
			continue;
		m = st.st_mode & 07777;
		if (S_ISLNK(st.st_mode)) {
			problem(k, 0, "%s is a symbolic link; mail directories "
				"must hold none (remove or replace it by hand)",
				p.s);
		} else if (S_ISDIR(st.st_mode)) {
			if (!maildir_mode_ok(de->d_name, st.st_mode))
				problem(k, k->repair && chmod(p.s, 0700) == 0,
					"directory %s has mode %04o, want 0700",
					p.s, (unsigned)m);
			check_mode_tree(k, p.s, depth + 1);
		} else if (S_ISREG(st.st_mode) &&
			   !maildir_mode_ok(de->d_name, st.st_mode)) {
			problem(k, k->repair && chmod(p.s, 0600) == 0,
				"file %s has mode %04o, want 0600 (no x bit, "
				"nothing for group or others)",
				p.s, (unsigned)m);
		}
	}
	closedir(d);
	str_free(&p);
}

/* check_private_dirs - the directories that only the mail user may enter */
static void check_private_dirs(struct chk *k)
{
	static const char *const dirs[] = {"db", "domains", "queue",
		"open-smtp", "log", "control/domains", "control/passwd",
		"control/tls"};
	struct str p = STR_INIT;
	unsigned i;

	for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		struct stat st;

		p.len = 0;
		if (str_catf(&p, "%s/%s", k->c->root, dirs[i]))
			vfail(EX_TEMP, "out of memory");
		if (lstat(p.s, &st) < 0 || !S_ISDIR(st.st_mode)) {
			problem(k, k->repair && fsx_mkdir(p.s, 0700) == 0,
				"%s is missing or not a directory", p.s);
			continue;
		}
		if ((st.st_mode & 07777) != 0700)
			problem(k, k->repair && chmod(p.s, 0700) == 0,
				"directory %s has mode %04o, want 0700", p.s,
				(unsigned)(st.st_mode & 07777));
	}
	str_free(&p);
}

/* records: one table's records as "KLEN:VLEN:" prefixed entries to sort */
struct recs {
	char **v;
	size_t n, cap;
};

static int recs_add(struct recs *r, const char *key, size_t klen,
		    const char *val, size_t vlen)
{
	struct str e = STR_INIT;

	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 256;
		char **nv = realloc(r->v, nc * sizeof *nv);

		if (!nv)
			return -ENOMEM;
		r->v = nv;
		r->cap = nc;
	}
	/* lengths first, so that binary keys and values compare exactly */
	if (str_catf(&e, "%zu:%zu:", klen, vlen) || str_catb(&e, key, klen) ||
	    str_catb(&e, val, vlen))
		return -ENOMEM;
	r->v[r->n++] = e.s;
	return 0;
}

static void recs_free(struct recs *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = r->cap = 0;
}

/* entry_len - the bytes of an entry, its "KLEN:VLEN:" included (written
 * by recs_add, so always there) */
static size_t entry_len(const char *e)
{
	uint64_t k = 0, v = 0;
	size_t a = 0, b = 0;

	(void)num_scan(e, strlen(e), SIZE_MAX, &k, &a);
	(void)num_scan(e + a + 1, strlen(e + a + 1), SIZE_MAX, &v, &b);
	return a + 1 + b + 1 + (size_t)k + (size_t)v;
}

static int cmp_entry(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t xl = entry_len(x), yl = entry_len(y);
	int d = memcmp(x, y, xl < yl ? xl : yl);

	return d ? d : (xl > yl) - (xl < yl);
}

static int emit_recs(void *arg, int which, const char *key, size_t klen,
		     const char *val, size_t vlen)
{
	struct recs *r = arg;

	return recs_add(&r[which], key, klen, val, vlen);
}

/* same_as_file - whether a CDB file holds exactly these records */
static int same_as_file(const char *path, struct recs *want)
{
	struct recs got = {NULL, 0, 0};
	struct cdbr r;
	unsigned pos;
	size_t i;
	int same = 1, e;

	e = cdbr_open(&r, path);
	if (e < 0)
		return 0;
	cdb_seqinit(&pos, &r.cdb);
	while ((e = cdb_seqnext(&pos, &r.cdb)) > 0) {
		const char *k = cdb_getkey(&r.cdb), *v = cdb_getdata(&r.cdb);

		if (!k || !v || recs_add(&got, k, cdb_keylen(&r.cdb), v,
					 cdb_datalen(&r.cdb)) < 0) {
			same = 0;
			break;
		}
	}
	if (e < 0)
		same = 0;
	cdbr_close(&r);
	if (same && got.n != want->n)
		same = 0;
	if (same && got.n) {
		qsort(got.v, got.n, sizeof *got.v, cmp_entry);
		qsort(want->v, want->n, sizeof *want->v, cmp_entry);
		for (i = 0; same && i < got.n; i++)
			same = cmp_entry(&got.v[i], &want->v[i]) == 0;
	}
	recs_free(&got);
	return same;
}

/* check_tables - each CDB against the database */
static void check_tables(struct chk *k)
{
	struct vctx *c = k->c;
	struct recs want[4];
	struct str path = STR_INIT;
	struct store_stmt *st;
	int which, r;

	memset(want, 0, sizeof want);
	r = gen_global_records(c, emit_recs, want);
	if (r < 0)
		vfail(EX_TEMP, "cannot read the database: %s", msg_err(r));
	for (which = GEN_ASSIGN; which <= GEN_RCPTHOSTS; which++) {
		gen_path(&path, c->root, which, NULL, 1, 0);
		if (!same_as_file(path.s, &want[which]))
			problem(k, k->repair && gen_global(c) == 0,
				"%s does not match the database", path.s);
	}
	recs_free(&want[GEN_ASSIGN]);
	recs_free(&want[GEN_RCPTHOSTS]);

	if (store_prepare(c->db, "SELECT id, name, catchall, shards FROM "
			       "domains WHERE alias_of IS NULL ORDER BY name", &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	while (store_step(st) == STORE_ROW) {
		const char *name = (const char *)store_column_text(st, 1);
		unsigned shards = (unsigned)store_column_int(st, 3), i;
		unsigned lo, hi;
		int bad = 0;

		for (i = 0; i < shards; i++) {
			gen_bucket_range(shards, i, &lo, &hi);
			r = gen_domain_records(c, store_column_int(st, 0),
					       (const char *)
					       store_column_text(st, 2), lo,
					       hi, emit_recs, want);
			if (r < 0)
				vfail(EX_TEMP, "cannot read the database: %s",
				      msg_err(r));
			for (which = GEN_DELIVERY; which <= GEN_PASSWD;
			     which++) {
				gen_path(&path, c->root, which, name, shards, i);
				if (!same_as_file(path.s, &want[which]))
					bad = 1;
				recs_free(&want[which]);
			}
		}
		if (bad)
			problem(k, k->repair && gen_domain(c, name) == 0,
				"the CDBs of %s do not match the database",
				name);
	}
	store_finalize(st);
	str_free(&path);
}

/* shards_of - the shard count of the real domain whose file key is key,
 * 0 when there is none (keys are short names or hashed long ones) */
static unsigned shards_of(struct vctx *c, const char *key)
{
	struct str k = STR_INIT;
	struct store_stmt *st;
	unsigned n = 0;

	if (store_prepare(c->db, "SELECT name, shards FROM domains WHERE "
			       "alias_of IS NULL AND (name = ?1 OR (length(name) "
			       "> 200 AND substr(name, 1, 180) = substr(?1, 1, "
			       "180)))", &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	store_bind_text(st, 1, key);
	while (!n && store_step(st) == STORE_ROW) {
		if (acct_file_key(&k, (const char *)store_column_text(st, 0)))
			vfail(EX_TEMP, "out of memory");
		if (str_eqs(&k, key))
			n = (unsigned)store_column_int(st, 1);
	}
	store_finalize(st);
	str_free(&k);
	return n;
}

/* check_stale_files - CDBs of unknown domains, temporary leftovers */
static void check_stale_files(struct chk *k)
{
	static const char *const dirs[] = {"control", "control/domains",
					   "control/passwd"};
	struct str dir = STR_INIT, p = STR_INIT, dom = STR_INIT;
	unsigned i;

	for (i = 0; i < 3; i++) {
		DIR *d;
		struct dirent *de;

		dir.len = 0;
		if (str_catf(&dir, "%s/%s", k->c->root, dirs[i]))
			vfail(EX_TEMP, "out of memory");
		d = opendir(dir.s);
		if (!d)
			continue;
		while ((de = readdir(d)) != NULL) {
			const char *n = de->d_name;
			size_t len = strlen(n);

			p.len = 0;
			if (str_catf(&p, "%s/%s", dir.s, n))
				vfail(EX_TEMP, "out of memory");
			if (strstr(n, ".tmp.")) {
				problem(k, k->repair && unlink(p.s) == 0,
					"%s is a leftover temporary file", p.s);
			} else if (i > 0 && len > 4 &&
				   !strcmp(n + len - 4, ".cdb")) {
				unsigned sh, idx;

				if (gen_parse_name(n, &dom, &sh, &idx) < 0 ||
				    shards_of(k->c, dom.s) != sh)
					problem(k, k->repair && unlink(p.s) == 0,
						"%s belongs to no domain or to "
						"an old split of one", p.s);
			}
		}
		closedir(d);
	}
	str_free(&dir);
	str_free(&p);
	str_free(&dom);
}

/* first_line_is - whether a file's first line equals want */
static int first_line_is(const char *path, const char *want)
{
	struct str data = STR_INIT;
	size_t n = strlen(want);
	int ok = fsx_read_file(path, &data, 1 << 20) == 0 && data.len > n &&
		 !memcmp(data.s, want, n) && data.s[n] == '\n';

	str_free(&data);
	return ok;
}

/* check_maildirs - each user's Maildir and maildirsize */
static void check_maildirs(struct chk *k)
{
	static const char *const sub[] = {"", "/cur", "/new", "/tmp"};
	struct vctx *c = k->c;
	struct str p = STR_INIT, qs = STR_INIT;
	struct store_stmt *st;
	unsigned i;

	if (store_prepare(c->db, "SELECT maildir, quota_bytes, quota_msgs "
			       "FROM users ORDER BY maildir", &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	while (store_step(st) == STORE_ROW) {
		const char *md = (const char *)store_column_text(st, 0);
		struct quota q = {(uint64_t)store_column_int(st, 1),
				  (uint64_t)store_column_int(st, 2)};
		int missing = 0;

		for (i = 0; i < 4; i++) {
			p.len = 0;
			if (str_catf(&p, "%s/%s%s", c->root, md, sub[i]))
				vfail(EX_TEMP, "out of memory");
			if (!fsx_is_dir(p.s))
				missing = 1;
		}
		if (missing)
			problem(k, k->repair &&
				m_make_maildir(c, md, &q, 1) == 0,
				"%s/%s is not a complete Maildir (cur, new, tmp)",
				c->root, md);
		if (!q.bytes && !q.msgs)
			continue;
		p.len = 0;
		if (str_catf(&p, "%s/%s/maildirsize", c->root, md) ||
		    quota_format(&q, &qs))
			vfail(EX_TEMP, "out of memory");
		if (!first_line_is(p.s, qs.s))
			problem(k, k->repair &&
				m_write_maildirsize(c, md, &q) == 0,
				"%s is missing or does not hold the quota %s",
				p.s, qs.s);
	}
	store_finalize(st);
	str_free(&p);
	str_free(&qs);
}

/* check_orphans - directories under domains/ that the database lacks */
static void check_orphans(struct chk *k)
{
	struct str p = STR_INIT;
	DIR *d, *u;
	struct dirent *de, *ue;

	if (str_catf(&p, "%s/domains", k->c->root))
		vfail(EX_TEMP, "out of memory");
	d = opendir(p.s);
	if (!d)
		goto out;
	while ((de = readdir(d)) != NULL) {
		int64_t did, alias_of = 0;
		size_t base;

		if (de->d_name[0] == '.')
			continue;
		did = m_domain_id(k->c, de->d_name, &alias_of);
		p.len = 0;
		if (str_catf(&p, "%s/domains/%s", k->c->root, de->d_name))
			vfail(EX_TEMP, "out of memory");
		if (!did || alias_of) {
			printf("warn: %s belongs to no domain; move it away or "
			       "remove it by hand (it may hold mail)\n", p.s);
			continue;
		}
		u = opendir(p.s);
		if (!u)
			continue;
		base = p.len;
		while ((ue = readdir(u)) != NULL) {
			if (ue->d_name[0] == '.' || m_user_id(k->c, did,
							       ue->d_name))
				continue;
			str_trunc(&p, base);
			if (str_catf(&p, "/%s", ue->d_name))
				vfail(EX_TEMP, "out of memory");
			printf("warn: %s belongs to no user; move it away or "
			       "remove it by hand (it may hold mail)\n", p.s);
		}
		closedir(u);
	}
	closedir(d);
out:
	str_free(&p);
}

/* dkim_problem - a problem of the DKIM keys (vdkim.c) */
static void dkim_problem(void *arg, int fixed, const char *what)
{
	problem(arg, fixed, "%s", what);
}

/* cmd_check - run every check; the number of problems left */
int cmd_check(struct vctx *c, int repair)
{
	struct chk k = {c, repair, 0};
	struct str p = STR_INIT;

	check_private_dirs(&k);
	if (str_catf(&p, "%s/domains", c->root))
		vfail(EX_TEMP, "out of memory");
	check_mode_tree(&k, p.s, 0);
	check_maildirs(&k);
	check_stale_files(&k);
	check_tables(&k);
	vdkim_check_files(c, repair, dkim_problem, &k);
	check_orphans(&k);
	/* a repair that re-split a domain owes assign.cdb and a sweep */
	if (repair)
		gen_run_pending(c);
	if (k.left)
		printf("%d problem%s left%s\n", k.left, k.left == 1 ? "" : "s",
		       repair ? "" : "; 'vadmin check --repair' fixes what it "
		       "safely can");
	else
		printf("ok: the files match the database\n");
	str_free(&p);
	return k.left;
}
