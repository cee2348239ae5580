/*
 * vdkimgen - control/dkim.cdb and the key files of control/dkim/ as a
 * whole: generated from dkim_keys (gen_dkim, the pending kind 'dkim'),
 * key files of no key swept, and `vadmin check` of both. The table's
 * format and the keys' life are in vdkim.c and docs/authentication.md.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acct.h"
#include "cdbx.h"
#include "fsx.h"
#include "vadmin.h"

/* the records of control/dkim.cdb go to one of these: the writer, or
 * vadmin check's comparison with the file */
typedef int (*dkim_emit_fn)(void *arg, const char *key, size_t klen,
			    const char *val, size_t vlen);

/* emit_table - the records of control/dkim.cdb, one a domain; EXPECT
 * gets each key file's name below control/dkim/ (KEY/SEL.pem \0 ...) */
static int emit_table(struct vctx *c, dkim_emit_fn emit, void *arg,
		      struct str *expect)
{
	struct store_stmt *st = m_prep(c, "SELECT d.name, k.selector, k.type FROM "
				  "dkim_keys k JOIN domains d ON d.id = "
				  "k.domain_id ORDER BY d.name, k.id");
	struct str dom = STR_INIT, v = STR_INIT, key = STR_INIT;
	int r = 0, rc;

	while (r == 0 && (rc = store_step(st)) == STORE_ROW) {
		if (dom.len && !str_eqs(&dom, m_col(st, 0))) {
			r = emit(arg, dom.s, dom.len, v.s, v.len);
			str_trunc(&v, 0);
		}
		if (r == 0 && (str_copys(&dom, m_col(st, 0)) ||
			       (v.len && str_catc(&v, 0)) ||
			       str_cats(&v, m_col(st, 1)) || str_catc(&v, 0) ||
			       str_cats(&v, m_col(st, 2)) ||
			       acct_file_key(&key, dom.s) ||
			       str_catf(expect, "%s/%s.pem", key.s,
					m_col(st, 1)) || str_catc(expect, 0)))
			r = -ENOMEM;
		str_trunc(&key, 0);
	}
	if (r == 0 && rc != STORE_DONE)
		r = -EIO;
	if (r == 0 && dom.len)
		r = emit(arg, dom.s, dom.len, v.s, v.len);
	store_finalize(st);
	str_free(&dom);
	str_free(&v);
	str_free(&key);
	return r;
}

/* emit_write - a record into the new table */
static int emit_write(void *arg, const char *key, size_t klen,
		      const char *val, size_t vlen)
{
	return cdbw_add(arg, key, klen, val, vlen);
}

/* listed - is NAME one of the NUL-separated names of LIST */
static int listed(const struct str *list, const char *name)
{
	size_t i = 0;

	while (i < list->len) {
		if (!strcmp(list->s + i, name))
			return 1;
		i += strlen(list->s + i) + 1;
	}
	return 0;
}

/* sweep_dir - remove DIR's key files that no row names, then DIR if
 * empty; the keys' directory is the mail user's alone: nothing else is
 * expected there. With FOUND, only list them there (KEY/NAME \0 ...) */
static int sweep_dir(const char *top, const char *sub,
		     const struct str *expect, struct str *found)
{
	struct str p = STR_INIT, rel = STR_INIT;
	struct dirent *de;
	DIR *d;
	int r = 0, left = 0;

	if (str_catf(&p, "%s/%s", top, sub) < 0)
		return -ENOMEM;
	d = opendir(p.s);
	if (!d) {
		str_free(&p);
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		str_trunc(&rel, 0);
		if (str_catf(&rel, "%s/%s", sub, de->d_name) < 0)
			r = -ENOMEM;
		else if (found)
			r = str_catb(found, rel.s, rel.len + 1);
		else if (listed(expect, rel.s))
			left++;
		else if (unlinkat(dirfd(d), de->d_name, 0) < 0)
			r = -errno;
	}
	closedir(d);
	if (r == 0 && !found && !left && rmdir(p.s) < 0 && errno != ENOENT)
		r = -errno;
	/* the removals made durable: in the directory, or of it */
	if (r == 0 && !found)
		r = fsx_fsync_dir(left ? p.s : top);
	str_free(&p);
	str_free(&rel);
	return r;
}

/* sweep_keys - key files of keys deleted (or never recorded) removed;
 * with FOUND, every key file listed instead */
static int sweep_keys(struct vctx *c, const struct str *expect,
		      struct str *found)
{
	struct str top = STR_INIT;
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (str_catf(&top, "%s/control/dkim", c->root) < 0)
		return -ENOMEM;
	d = opendir(top.s);
	while (r == 0 && d && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			r = sweep_dir(top.s, de->d_name, expect, found);
	if (d)
		closedir(d);
	str_free(&top);
	return r;
}

/* any_keys - 1 when some domain has a key */
static int any_keys(struct vctx *c)
{
	struct store_stmt *st = m_prep(c, "SELECT 1 FROM dkim_keys LIMIT 1");
	int rc = store_step(st);

	store_finalize(st);
	if (rc != STORE_ROW && rc != STORE_DONE)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	return rc == STORE_ROW;
}

/* gen_dkim - control/dkim.cdb from the database (published first, so a
 * signer never looks for a file already removed), then the sweep. No key
 * at all: no table (a root that never made one has none to check) */
int gen_dkim(struct vctx *c)
{
	struct str path = STR_INIT, expect = STR_INIT;
	struct cdbw w;
	int r = str_catf(&path, "%s/control/dkim.cdb", c->root);

	if (r == 0 && !any_keys(c)) {
		if (unlink(path.s) < 0 && errno != ENOENT)
			r = -errno;
		if (r == 0)
			r = fsx_fsync_parent(path.s);
		if (r == 0)
			r = sweep_keys(c, &expect, NULL);
		str_free(&path);
		return r;
	}
	if (r == 0)
		r = cdbw_start(&w, path.s, 0644);
	if (r == 0) {
		r = emit_table(c, emit_write, &w, &expect);
		if (r == 0)
			r = cdbw_finish(&w);
		else
			cdbw_abort(&w);
	}
	if (r == 0)
		r = sweep_keys(c, &expect, NULL);
	str_free(&path);
	str_free(&expect);
	return r;
}

/* what vadmin check compares: the records wanted, found in the file */
struct dkim_cmp {
	struct cdbr r;
	int nofile;
	unsigned long n;
	int differ;
};

/* emit_compare - is this record in the file, the same */
static int emit_compare(void *arg, const char *key, size_t klen,
			const char *val, size_t vlen)
{
	struct dkim_cmp *m = arg;
	const char *got;
	size_t glen;

	m->n++;
	if (m->nofile || cdbr_find(&m->r, key, klen, &got, &glen) < 0 ||
	    glen != vlen || memcmp(got, val, vlen))
		m->differ = 1;
	return 0;
}

/* table_differs - 1 when control/dkim.cdb is not what the database
 * makes (no file while no domain has a key); EXPECT gets the key files */
static int table_differs(struct vctx *c, const char *path,
			 struct str *expect)
{
	struct dkim_cmp m;
	unsigned long n = 0;
	unsigned pos;
	int r;

	memset(&m, 0, sizeof m);
	m.nofile = cdbr_open(&m.r, path) < 0;
	r = emit_table(c, emit_compare, &m, expect);
	if (m.nofile)
		return r < 0 || m.n > 0;
	cdb_seqinit(&pos, &m.r.cdb);
	while (cdb_seqnext(&pos, &m.r.cdb) > 0)
		n++;
	cdbr_close(&m.r);
	/* an empty table is one gen_dkim would have removed */
	return r < 0 || m.differ || n != m.n || n == 0;
}

/* check_key_files - each key file there and 0600 (REPORT says what is
 * wrong; FIX is 1 when repaired) */
static void check_key_files(struct vctx *c, int repair,
			    const struct str *expect, vdkim_report_fn report,
			    void *arg)
{
	struct str p = STR_INIT, what = STR_INIT;
	struct stat st;
	size_t i;

	for (i = 0; i < expect->len; i += strlen(expect->s + i) + 1) {
		str_trunc(&p, 0);
		str_trunc(&what, 0);
		if (str_catf(&p, "%s/control/dkim/%s", c->root, expect->s + i))
			vfail(EX_TEMP, "out of memory");
		if (lstat(p.s, &st) < 0 || !S_ISREG(st.st_mode)) {
			if (str_catf(&what, "the DKIM key %s is missing; "
				     "restore it, or delete the key with "
				     "'vadmin dkim del'", p.s) == 0)
				report(arg, 0, what.s);
		} else if ((st.st_mode & 07777) != 0600 &&
			   str_catf(&what, "the DKIM key %s has mode %04o, "
				    "want 0600", p.s,
				    (unsigned)(st.st_mode & 07777)) == 0) {
			report(arg, repair && chmod(p.s, 0600) == 0, what.s);
		}
	}
	str_free(&p);
	str_free(&what);
}

/* vdkim_check_files - vadmin check: control/dkim.cdb against the
 * database, the key files it names, no key file of no key */
void vdkim_check_files(struct vctx *c, int repair, vdkim_report_fn report,
		       void *arg)
{
	struct str path = STR_INIT, expect = STR_INIT, found = STR_INIT;
	struct str what = STR_INIT;
	size_t i;

	if (str_catf(&path, "%s/control/dkim.cdb", c->root))
		vfail(EX_TEMP, "out of memory");
	if (table_differs(c, path.s, &expect))
		report(arg, repair && gen_dkim(c) == 0, "control/dkim.cdb does "
		       "not match the database");
	check_key_files(c, repair, &expect, report, arg);
	if (sweep_keys(c, &expect, &found) < 0)
		vfail(EX_TEMP, "cannot read %s/control/dkim", c->root);
	for (i = 0; i < found.len; i += strlen(found.s + i) + 1) {
		if (listed(&expect, found.s + i))
			continue;
		str_trunc(&what, 0);
		if (str_catf(&what, "control/dkim/%s is the file of no DKIM "
			     "key", found.s + i))
			vfail(EX_TEMP, "out of memory");
		/* gen_dkim's sweep removes it (and any other) */
		report(arg, repair && gen_dkim(c) == 0, what.s);
	}
	str_free(&path);
	str_free(&expect);
	str_free(&found);
	str_free(&what);
}
