/*
 * vwatch - `vadmin watch`: this host's CDBs kept current from a
 * PostgreSQL account store that several hosts share (docs/scale-out.md).
 *
 * vadmin on any host records, in the transaction of each change, the
 * file work the change owes (`pending`); PostgreSQL copies each such row
 * into the numbered log `changes` and NOTIFYs channel facteur_changes at
 * COMMIT (schema/pg/003_changes.sql). This command, which `facteur run`
 * keeps running on every host whose accounts are in PostgreSQL, LISTENs
 * on that channel and, on each notification, does the logged work of
 * every row it has not applied yet (the same functions as vadmin's own,
 * vgen.c gen_do) and writes the last number applied to db/changes.seen.
 * LISTEN comes before the first look at the log, so nothing committed in
 * between is missed; a host that was down catches up when this starts
 * (and one with no db/changes.seen regenerates everything once). The log
 * is also read every IDLE_MS without a notification, so a lost one costs
 * at most that. Directories are not removed here: the host that made the
 * change did, in the `domains/` tree the hosts share.
 *
 * After the file, the mark is copied into table `hosts` (this host's id,
 * lib/store's db/host.id), and the log's rows that every host seen within
 * STALE_S has applied are deleted (schema/pg/005_hosts.sql); a host whose
 * file mark is below what was deleted regenerates every table at start.
 *
 * It holds vadmin's lock only while it writes. When the database goes
 * away it exits 111 and facteur run starts it again after its back-off;
 * delivery, SMTP and POP3 go on meanwhile from the CDBs as they are.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acct.h"
#include "fsx.h"
#include "vadmin.h"

#define CHANNEL "facteur_changes"
#define IDLE_MS 30000
/* a host whose mark is older than this holds the log back no longer */
#define STALE_S (7 * 24 * 3600)
/* how often a watcher with nothing to apply says it is alive */
#define ALIVE_S 3600

/* mark_path - ROOT/db/changes.seen */
static void mark_path(struct vctx *c, struct str *p)
{
	p->len = 0;
	if (str_catf(p, "%s/db/changes.seen", c->root))
		vfail(EX_TEMP, "out of memory");
}

/* read_mark - the last change applied here, -1 when none ever was */
static int64_t read_mark(struct vctx *c)
{
	int64_t mark;
	int r = store_seen(c->root, &mark);

	if (r == -ENOENT)
		return -1;
	if (r < 0)
		vfail(EX_TEMP, "cannot read %s/db/changes.seen (%s); remove it "
		      "to regenerate every table once", c->root, msg_err(r));
	return mark;
}

/* write_mark - the last change applied here, atomically */
static void write_mark(struct vctx *c, int64_t mark)
{
	struct str p = STR_INIT, v = STR_INIT;
	int r;

	mark_path(c, &p);
	if (str_catf(&v, "%" PRId64 "\n", mark))
		vfail(EX_TEMP, "out of memory");
	r = fsx_write_atomic(p.s, v.s, v.len, 0600);
	if (r < 0)
		vfail(EX_TEMP, "cannot write %s: %s", p.s, msg_err(r));
	str_free(&p);
	str_free(&v);
}

/* db_failed - exit 111 saying whether the database went away */
static _Noreturn void db_failed(struct vctx *c)
{
	if (store_unreachable(c->db))
		vfail(EX_TEMP, "lost the account database (%s); the tables "
		      "stay as they are until it is back", store_errmsg(c->db));
	vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
}

/* step_int - SQL with HOST (unless NULL) as its first parameter and
 * the N numbers of V as the next, stepped once: the number it returns, 0
 * for none */
static int64_t step_int(struct vctx *c, const char *sql, const char *host,
			int n, const int64_t *v)
{
	struct store_stmt *st = m_prep(c, sql);
	int64_t got = 0;
	int rc, i = 0, k;

	if (host)
		store_bind_text(st, ++i, host);
	for (k = 0; k < n; k++)
		store_bind_int(st, ++i, v[k]);
	rc = store_step(st);
	if (rc == STORE_ROW)
		got = store_column_int(st, 0);
	store_finalize(st);
	if (rc < 0)
		db_failed(c);
	return got;
}

/* query_int - the one number a query returns */
static int64_t query_int(struct vctx *c, const char *sql)
{
	return step_int(c, sql, NULL, 0, NULL);
}

/* regenerate_all - every table of this host, from the database */
static void regenerate_all(struct vctx *c)
{
	struct store_stmt *st = m_prep(c, "SELECT name FROM domains WHERE "
				       "alias_of IS NULL ORDER BY id");
	int rc, r = 0;

	while (r == 0 && (rc = store_step(st)) == STORE_ROW)
		r = gen_do(c, "cdb", m_col(st, 0), 0);
	store_finalize(st);
	if (r == 0)
		r = gen_global(c);
	if (r == 0)
		r = gen_dkim(c);
	if (r < 0)
		vfail(EX_TEMP, "cannot regenerate the tables: %s", msg_err(r));
}

/* table_key - the tables a change's work writes, as "DOMAIN" for a
 * whole domain and "DOMAIN\nSHARD" for the shard of one user's address:
 * two changes with one key owe one regeneration. A user whose domain's
 * shards are being renumbered (or is gone) costs the whole domain, as
 * gen_user does it then */
static void table_key(struct vctx *c, const char *addr, struct str *key)
{
	const char *at = strrchr(addr, '@');
	struct store_stmt *st;
	int rc;

	key->len = 0;
	if (str_cats(key, at ? at + 1 : addr))
		vfail(EX_TEMP, "out of memory");
	if (!at)
		return;
	st = m_prep(c, "SELECT shards, nusers FROM domains WHERE name = ? "
		    "AND alias_of IS NULL");
	store_bind_text(st, 1, at + 1);
	rc = store_step(st);
	if (rc == STORE_ROW) {
		unsigned shards = (unsigned)store_column_int(st, 0);

		if (shards && gen_want_shards((uint64_t)store_column_int(st, 1),
					      shards) == shards &&
		    str_catf(key, "\n%u", acct_shard(acct_bucket(addr,
			     (size_t)(at - addr)), shards)))
			vfail(EX_TEMP, "out of memory");
	}
	store_finalize(st);
	if (rc < 0)
		db_failed(c);
}

/* has_line - is line one of the NUL-terminated strings of set */
static int has_line(const struct str *set, const struct str *line)
{
	size_t i = 0;

	while (i < set->len) {
		size_t n = strlen(set->s + i);

		if (n == line->len && !memcmp(set->s + i, line->s, n))
			return 1;
		i += n + 1;
	}
	return 0;
}

/* apply_one - the work of one logged (kind, arg), unless a table it
 * writes was already written in this batch: `done` holds their keys.
 * A burst of changes to many users of one shard (1,000 a second)
 * is then one regeneration of that shard, not one per user */
static void apply_one(struct vctx *c, const char *kind, const char *arg,
		      struct str *done)
{
	struct str key = STR_INIT, dom = STR_INIT;
	int r, user = !strcmp(kind, "user"), whole = !strcmp(kind, "cdb");

	if (user || whole) {
		if (whole) {
			if (str_copys(&key, arg))
				vfail(EX_TEMP, "out of memory");
		} else {
			table_key(c, arg, &key);
		}
		/* the domain's key covers each of its shards */
		if (str_copyb(&dom, str_cstr(&key),
			      strcspn(str_cstr(&key), "\n")))
			vfail(EX_TEMP, "out of memory");
		if (has_line(done, &key) || has_line(done, &dom))
			goto out;
	}
	r = gen_do(c, kind, arg, 0);
	if (r < 0)
		vfail(EX_TEMP, "cannot apply a change (%s %s): %s", kind, arg,
		      msg_err(r));
	if ((user || whole) && str_catb(done, str_cstr(&key), key.len + 1))
		vfail(EX_TEMP, "out of memory");
out:
	str_free(&key);
	str_free(&dom);
}

/* apply_since - the work of every change after mark, each (kind, arg)
 * once however often it was logged, and each table once however many
 * of its rows changed (apply_one); the newest number applied. The rows
 * are read first: the work runs queries of its own */
static int64_t apply_since(struct vctx *c, int64_t mark, unsigned *n)
{
	struct store_stmt *st = m_prep(c, "SELECT kind, arg, max(id) AS last "
				       "FROM changes WHERE id > ? GROUP BY "
				       "kind, arg ORDER BY last");
	struct str rows = STR_INIT, done = STR_INIT;
	size_t i = 0;
	int rc;

	store_bind_int(st, 1, mark);
	while ((rc = store_step(st)) == STORE_ROW) {
		if (str_catb(&rows, m_col(st, 0), strlen(m_col(st, 0)) + 1) ||
		    str_catb(&rows, m_col(st, 1), strlen(m_col(st, 1)) + 1))
			vfail(EX_TEMP, "out of memory");
		mark = store_column_int(st, 2) > mark ?
		       store_column_int(st, 2) : mark;
		(*n)++;
	}
	store_finalize(st);
	if (rc < 0)
		db_failed(c);
	while (i < rows.len) {
		const char *kind = rows.s + i;
		const char *arg = kind + strlen(kind) + 1;

		i = (size_t)(arg - rows.s) + strlen(arg) + 1;
		apply_one(c, kind, arg, &done);
	}
	str_free(&rows);
	str_free(&done);
	return mark;
}

/* do_owed - the work applying the changes owed in turn (a domain
 * split anew owes its old files' removal and assign.cdb), until none */
static void do_owed(struct vctx *c, struct str *owed)
{
	size_t i = 0;

	while (i < owed->len) {
		const char *kind = owed->s + i;
		size_t kl = strlen(kind) + 1;
		const char *arg = owed->s + i + kl;
		struct str k = STR_INIT, a = STR_INIT;
		int r;

		/* copies: the work may append to owed, moving its bytes */
		if (str_copys(&k, kind) || str_copys(&a, arg))
			vfail(EX_TEMP, "out of memory");
		i += kl + strlen(arg) + 1;
		r = gen_do(c, k.s, a.s, 0);
		if (r < 0)
			vfail(EX_TEMP, "cannot apply a change (%s %s): %s", k.s,
			      a.s, msg_err(r));
		str_free(&k);
		str_free(&a);
	}
	owed->len = 0;
}

/* in_tx - run WORK in a transaction under the writers' lock: a host
 * registering and a host pruning never overlap, so no host prunes a row
 * the other is about to need */
static void in_tx(struct vctx *c, void (*work)(struct vctx *, int64_t *),
		  int64_t *v)
{
	if (store_begin(c->db) < 0)
		db_failed(c);
	work(c, v);
	if (store_commit(c->db) < 0)
		db_failed(c);
}

/* set_mark - this host's row in hosts: seen = *v, at = now */
static void set_mark(struct vctx *c, int64_t *v)
{
	int64_t args[2] = {*v, (int64_t)time(NULL)};

	step_int(c, "INSERT INTO hosts(name, seen, at) VALUES (?1, ?2, ?3) ON "
		 "CONFLICT (name) DO UPDATE SET seen = excluded.seen, at = "
		 "excluded.at", store_host(c->db), 2, args);
}

/* join_at_end - a host with no mark: its row at the log's end, *v */
static void join_at_end(struct vctx *c, int64_t *v)
{
	int64_t now = (int64_t)time(NULL);

	*v = step_int(c, "INSERT INTO hosts(name, seen, at) SELECT ?1, "
		      "coalesce(max(id), 0), ?2 FROM changes ON CONFLICT (name) "
		      "DO UPDATE SET seen = excluded.seen, at = excluded.at "
		      "RETURNING seen", store_host(c->db), 1, &now);
}

/* mark_and_prune - set_mark, then delete the rows that every host seen
 * within STALE_S has applied; changes_pruned remembers how far */
static void mark_and_prune(struct vctx *c, int64_t *v)
{
	int64_t since = (int64_t)time(NULL) - STALE_S, upto;

	set_mark(c, v);
	upto = step_int(c, "SELECT min(seen) FROM hosts WHERE at >= ?", NULL,
			1, &since);
	if (upto <= query_int(c, "SELECT upto FROM changes_pruned"))
		return;
	step_int(c, "UPDATE changes_pruned SET upto = ?", NULL, 1, &upto);
	step_int(c, "DELETE FROM changes WHERE id <= ?", NULL, 1, &upto);
}

/* pruned_past - whether rows this host had not applied were deleted
 * while it was away (its mark set first, so that no more are) */
static int pruned_past(struct vctx *c, int64_t mark)
{
	in_tx(c, set_mark, &mark);
	return query_int(c, "SELECT upto FROM changes_pruned") > mark;
}

/* catch_up - bring this host's tables up to the log; the mark is
 * written once all the work is done, so a watcher killed midway does it
 * again. *said is when the mark was last put in the database (0: never,
 * this first run) */
static void catch_up(struct vctx *c, time_t *said)
{
	struct str owed = STR_INIT;
	int64_t mark = read_mark(c), last = 0;
	unsigned n = 0;

	vlock(c);
	c->owed = &owed;
	if (!*said && mark >= 0 && pruned_past(c, mark))
		mark = -1;
	if (mark < 0) {
		/* a new host, one told to start over, or one away while the
		 * log was pruned: the log's end, then every table; what comes
		 * after is applied next time */
		in_tx(c, join_at_end, &last);
		regenerate_all(c);
	} else {
		last = apply_since(c, mark, &n);
	}
	do_owed(c, &owed);
	c->owed = NULL;
	str_free(&owed);
	if (last != mark)
		write_mark(c, last);
	/* the file first: it is this host's truth, the row a copy for the
	 * others, who prune by it */
	if (last != mark || time(NULL) - *said >= ALIVE_S) {
		in_tx(c, mark_and_prune, &last);
		*said = time(NULL);
	}
	if (mark < 0)
		fprintf(stderr, "vadmin: watch: every table regenerated, "
			"change %" PRId64 "\n", last);
	else if (last != mark)
		fprintf(stderr, "vadmin: watch: %u change%s applied, up to "
			"%" PRId64 "\n", n, n == 1 ? "" : "s", last);
	vunlock(c);
}

/* cmd_watch - the command: it returns only by failing */
int cmd_watch(struct vctx *c)
{
	time_t said = 0;

	if (store_kind(c->db) != STORE_PG)
		vfail(EX_REFUSED, "nothing to watch: this root's accounts are in "
		      "SQLite (control/accountdb)");
	if (store_listen(c->db, CHANNEL) < 0)
		vfail(EX_TEMP, "cannot listen for changes: %s",
		      store_errmsg(c->db));
	catch_up(c, &said);
	for (;;) {
		int r = store_wait(c->db, IDLE_MS);

		if (r < 0)
			db_failed(c);
		catch_up(c, &said);
	}
}
