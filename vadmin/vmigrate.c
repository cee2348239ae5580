/*
 * vmigrate - `vadmin migrate-store CONNSTRING`: the root's accounts from
 * its SQLite database into an empty PostgreSQL one (docs/scale-out.md).
 *
 * Every table is copied in one PostgreSQL transaction, ids kept (the
 * rows refer to each other by them), the counts compared, and only after
 * COMMIT is control/accountdb written (atomically), so that a failure at
 * any point leaves the root on SQLite as it was and the target empty.
 * The users' count of each domain is made again on the target (once,
 * m_bulk) rather than copied. A target with any account in it is refused: two
 * roots' ids would collide, and merging is not what this is for.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "fsx.h"
#include "vadmin.h"

/* the tables in the order their references need, with their columns */
static const struct mtable {
	const char *name;
	const char *cols;
	int ncols;
	const char *order;
} mtables[] = {
	{"domains", "id, name, alias_of, catchall, quota_bytes, quota_msgs, "
	 "shards, created", 8, "alias_of IS NOT NULL, id"},
	{"users", "id, domain_id, local, hash, cram, name, quota_bytes, "
	 "quota_msgs, flags, maildir, bucket, created", 12, "id"},
	{"aliases", "domain_id, local, dest", 3, "domain_id, local, dest"},
	{"forwards", "user_id, dest, keep", 3, "user_id"},
	{"dkim_keys", "id, domain_id, selector, type, bits, public_key, "
	 "created", 7, "id"},
};
#define NTABLES (sizeof mtables / sizeof mtables[0])

/* count - the rows of a table, or -1 */
static int64_t count(struct store *s, const char *table)
{
	struct str sql = STR_INIT;
	struct store_stmt *st = NULL;
	int64_t n = -1;

	if (str_catf(&sql, "SELECT count(*) FROM %s", table) == 0 &&
	    store_prepare(s, sql.s, &st) == 0 && store_step(st) == STORE_ROW)
		n = store_column_int(st, 0);
	store_finalize(st);
	str_free(&sql);
	return n;
}

/* fail - the target's words, the transaction dropped; exit 111 */
static void fail(struct store *dst, const char *what)
{
	const char *why = store_errmsg(dst);

	vfail(EX_TEMP, "cannot %s in the PostgreSQL database: %s; nothing "
	      "was moved, the root stays on SQLite", what, why);
}

/* copy_rows - SELECT from the source, INSERT into the target, each
 * value as text (both databases turn it into the column's type) */
static void copy_rows(struct vctx *c, struct store *dst,
		      const struct mtable *t)
{
	struct str sql = STR_INIT;
	struct store_stmt *get = NULL, *put = NULL;
	int i, rc;

	if (str_catf(&sql, "SELECT %s FROM %s ORDER BY %s", t->cols, t->name,
		     t->order))
		vfail(EX_TEMP, "out of memory");
	if (store_prepare(c->db, sql.s, &get) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	sql.len = 0;
	if (str_catf(&sql, "INSERT INTO %s(%s) VALUES (", t->name, t->cols))
		vfail(EX_TEMP, "out of memory");
	for (i = 0; i < t->ncols; i++)
		if (str_cats(&sql, i ? ", ?" : "?"))
			vfail(EX_TEMP, "out of memory");
	if (str_cats(&sql, ")"))
		vfail(EX_TEMP, "out of memory");
	if (store_prepare(dst, sql.s, &put) != 0)
		fail(dst, "prepare the copy");
	while ((rc = store_step(get)) == STORE_ROW) {
		store_reset(put);
		for (i = 0; i < t->ncols; i++)
			if (store_bind_text(put, i + 1,
					    store_column_text(get, i)) < 0)
				vfail(EX_TEMP, "out of memory");
		if (store_step(put) != STORE_DONE)
			fail(dst, "copy a row");
	}
	if (rc != STORE_DONE)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	store_finalize(get);
	store_finalize(put);
	str_free(&sql);
}

/* empty_target - refuse a database with any account or key in it */
static void empty_target(struct store *dst)
{
	size_t i;

	for (i = 0; i < NTABLES; i++) {
		int64_t n = count(dst, mtables[i].name);

		if (n < 0)
			fail(dst, "count the rows");
		if (n > 0)
			vfail(EX_REFUSED, "the PostgreSQL database is not empty "
			      "(%lld rows in %s); give an empty one", (long long)n,
			      mtables[i].name);
	}
}

/* renumber - the identity columns go on after the ids copied in */
static void renumber(struct store *dst)
{
	static const char *const tables[] = {"domains", "users", "dkim_keys"};
	struct str sql = STR_INIT;
	size_t i;

	for (i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		sql.len = 0;
		if (str_catf(&sql, "SELECT setval(pg_get_serial_sequence('%s', "
			     "'id'), coalesce(max(id), 0) + 1, false) FROM %s",
			     tables[i], tables[i]))
			vfail(EX_TEMP, "out of memory");
		if (store_exec(dst, sql.s) < 0)
			fail(dst, "renumber the rows");
	}
	str_free(&sql);
}

/* same_counts - every table has as many rows on both sides, and each
 * domain the same user count */
static void same_counts(struct vctx *c, struct store *dst)
{
	size_t i;

	for (i = 0; i < NTABLES; i++) {
		int64_t a = count(c->db, mtables[i].name);
		int64_t b = count(dst, mtables[i].name);

		if (a < 0 || b < 0 || a != b)
			vfail(EX_TEMP, "the copy of %s has %lld rows, not %lld; "
			      "nothing was moved, the root stays on SQLite",
			      mtables[i].name, (long long)b, (long long)a);
	}
	if (count(dst, "domains d WHERE nusers <> (SELECT count(*) FROM "
		  "users u WHERE u.domain_id = d.id)") != 0)
		vfail(EX_TEMP, "the user counts of the copied domains do not "
		      "match; nothing was moved, the root stays on SQLite");
}

/* write_accountdb - control/accountdb names the database, atomically */
static void write_accountdb(struct vctx *c, const char *conninfo)
{
	struct str path = STR_INIT, text = STR_INIT;
	int r;

	if (ctl_path(&path, c->root, "accountdb") ||
	    str_catf(&text, "%s\n", conninfo))
		vfail(EX_TEMP, "out of memory");
	/* 0600: the string may carry a password */
	r = fsx_write_atomic(path.s, text.s, text.len, 0600);
	if (r < 0)
		vfail(EX_TEMP, "the accounts are in PostgreSQL but %s could not "
		      "be written (%s); write the connection string there "
		      "yourself", path.s, msg_err(r));
	str_free(&path);
	str_free(&text);
}

/* cmd_migrate_store - the command */
int cmd_migrate_store(struct vctx *c, const char *conninfo)
{
	struct store *dst = NULL;
	size_t i;
	int r;

	if (store_kind(c->db) != STORE_SQLITE)
		vfail(EX_REFUSED, "the accounts are in PostgreSQL already "
		      "(control/accountdb)");
	if (!*conninfo || strchr(conninfo, '\n'))
		vfail(EX_REFUSED, "give a libpq connection string on one line, "
		      "e.g. 'host=db.example dbname=facteur user=facteur'");
	r = store_open_conn(conninfo, 1, &dst);
	if (r < 0)
		vfail(r == -EPROTO ? EX_REFUSED : EX_TEMP, "cannot open the "
		      "PostgreSQL database: %s", r == -EPROTO ? "its schema is "
		      "newer than this vadmin" : store_open_error());
	if (store_begin(dst) < 0)
		fail(dst, "start a transaction");
	empty_target(dst);
	m_bulk(dst, 1);
	for (i = 0; i < NTABLES; i++)
		copy_rows(c, dst, &mtables[i]);
	m_bulk(dst, 0);
	/* the keys' trigger owes control/dkim.cdb, which is current here */
	if (store_exec(dst, "DELETE FROM pending") < 0)
		fail(dst, "clear the pending work");
	renumber(dst);
	same_counts(c, dst);
	if (store_commit(dst) < 0)
		fail(dst, "commit");
	store_close(dst);
	write_accountdb(c, conninfo);
	printf("moved %lld domains and %lld users to PostgreSQL; "
	       "control/accountdb names it\n", (long long)count(c->db,
	       "domains"), (long long)count(c->db, "users"));
	vlog(c, "migrate-store");
	return EX_DONE;
}
