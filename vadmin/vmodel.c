/*
 * vmodel - every change vadmin makes to the account database.
 *
 * Each command is one transaction (BEGIN IMMEDIATE, so two vadmins queue
 * on SQLite's lock as well as ours), and records in the `pending` table the
 * file work it owes: the CDBs of the domains it touched and the directories
 * it must remove. vgen.c does that work after COMMIT, and any later vadmin
 * finishes it if this one is killed first (on a PostgreSQL store, any later
 * vadmin of this host: `pending` is the view of this host's rows,
 * schema/pg/005_hosts.sql). Names are validated here, once,
 * before they reach SQL or the file system. Refusals exit 1 through vfail
 * without COMMIT, so SQLite discards the half-made transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "ctl.h"
#include "fsx.h"
#include "maildir.h"
#include "mdquota.h"
#include "name.h"
#include "pw.h"
#include "queue.h"
#include "rcpt.h"
#include "vadmin.h"

/* prep - prepare a statement or fail as a system error */
static struct store_stmt *prep(struct vctx *c, const char *sql)
{
	struct store_stmt *st = NULL;

	if (store_prepare(c->db, sql, &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	return st;
}

/* m_prep - prep, for vadmin's other files (vdkim.c) */
struct store_stmt *m_prep(struct vctx *c, const char *sql)
{
	return prep(c, sql);
}

/* done - step a statement that returns no rows, then finalize it */
static void done(struct vctx *c, struct store_stmt *st)
{
	int rc = store_step(st);

	store_finalize(st);
	if (rc != STORE_DONE && rc != STORE_ROW)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
}

static void bind_text(struct store_stmt *st, int i, const char *s)
{
	if (s)
		store_bind_text(st, i, s);
	else
		store_bind_null(st, i);
}

/* m_begin - start the one write transaction of a command */
void m_begin(struct vctx *c)
{
	int rc = store_begin(c->db);

	if (rc != 0)
		vfail(EX_TEMP, "cannot start a transaction (%s); retry",
		      store_errmsg(c->db));
}

/* m_commit - make the change durable (synchronous=FULL fsyncs the WAL) */
void m_commit(struct vctx *c)
{
	if (store_commit(c->db) != 0)
		vfail(EX_TEMP, "cannot commit (%s); nothing was changed",
		      store_errmsg(c->db));
}

/* m_syncfs - flush the file systems of ROOT and of ROOT/domains, the one
 * barrier of the imports before COMMIT; domains/ may be a link to
 * another disk (docs/vdeliver.md), whose Maildirs ROOT's syncfs would
 * leave unwritten. WHAT ends the failure's message. */
void m_syncfs(struct vctx *c, const char *what)
{
	struct str p = STR_INIT;
	int i, fd;

	for (i = 0; i < 2; i++) {
		p.len = 0;
		if (str_catf(&p, i ? "%s/domains" : "%s", c->root) < 0)
			vfail(EX_TEMP, "out of memory");
		fd = open(p.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 && i == 1 && errno == ENOENT)
			continue;	/* no domains/ yet: nothing written there */
		if (fd < 0 || syncfs(fd) < 0)
			vfail(EX_TEMP, "cannot sync %s: %s%s", p.s,
			      strerror(errno), what);
		close(fd);
	}
	str_free(&p);
}

/* m_bulk - around many inserts of users in one transaction: on
 * PostgreSQL the users' count trigger stands aside (a setting local to
 * the transaction; schema/pg/001_init.sql says why) and the counts are
 * made once at the end. SQLite keeps its trigger: no such cost there.
 * S is the store written (vadmin's own, or migrate-store's target). */
void m_bulk(struct store *s, int on)
{
	int r;

	if (store_kind(s) != STORE_PG)
		return;
	r = store_exec(s, on ? "SELECT set_config('facteur.bulk', 'on', "
		       "true)" : "SELECT set_config('facteur.bulk', 'off', "
		       "true)");
	if (r == 0 && !on)
		r = store_exec(s, "UPDATE domains d SET nusers = n.n FROM "
			       "(SELECT domain_id, count(*) AS n FROM users "
			       "GROUP BY domain_id) n WHERE n.domain_id = d.id "
			       "AND d.nusers <> n.n");
	if (r < 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(s));
}

/* m_pending - owe file work: 'cdb' DOMAIN, 'user' LOCAL@DOMAIN, 'global' '',
 * 'sweep' DOMAIN, 'rmdir' PATH (see vgen.c gen_run_pending) */
void m_pending(struct vctx *c, const char *kind, const char *arg)
{
	struct store_stmt *st;

	if (c->owed) {
		if (str_catb(c->owed, kind, strlen(kind) + 1) ||
		    str_catb(c->owed, arg, strlen(arg) + 1))
			vfail(EX_TEMP, "out of memory");
		return;
	}
	st = prep(c, "INSERT INTO pending(kind, arg) VALUES (?, ?) "
		  "ON CONFLICT DO NOTHING");
	bind_text(st, 1, kind);
	bind_text(st, 2, arg);
	done(c, st);
}

/* m_touch - owe the regeneration of the shard holding LOCAL@DOMAIN, or of
 * the whole domain when its user count calls for another number of shards */
void m_touch(struct vctx *c, int64_t did, const char *local,
	     const char *domain)
{
	struct store_stmt *st = prep(c, "SELECT shards, nusers FROM domains "
				   "WHERE id = ?");
	struct str arg = STR_INIT;
	unsigned shards = 1;
	int64_t nusers = 0;

	store_bind_int(st, 1, did);
	if (store_step(st) == STORE_ROW) {
		shards = (unsigned)store_column_int(st, 0);
		nusers = store_column_int(st, 1);
	}
	store_finalize(st);
	if (gen_want_shards((uint64_t)nusers, shards) != shards) {
		m_pending(c, "cdb", domain);
		return;
	}
	if (str_catf(&arg, "%s@%s", local, domain))
		vfail(EX_TEMP, "out of memory");
	m_pending(c, "user", arg.s);
	str_free(&arg);
}

/* m_parse_domain - validate and fold a domain typed by the admin */
void m_parse_domain(const char *in, struct str *domain)
{
	const char *why = "";
	int r = name_domain(in, strlen(in), domain, &why);

	if (r == -EINVAL)
		vfail(EX_REFUSED, "invalid domain '%s': it %s", in, why);
	if (r < 0)
		vfail(EX_TEMP, "out of memory");
}

/* m_receivable - refuse to create LOCAL@DOMAIN as a user, an alias or a
 * local destination when no mail from outside could reach it */
void m_receivable(const char *local, const char *domain)
{
	const char *why = name_receivable(local, strlen(local));

	if (why)
		vfail(EX_REFUSED, "%s@%s could never receive mail: its local "
		      "part %s", local, domain, why);
}

/* m_parse_addr - validate and fold USER@DOMAIN */
void m_parse_addr(const char *in, struct str *local, struct str *domain)
{
	const char *why = "";
	int r = name_addr(in, local, domain, &why);

	if (r == -EINVAL)
		vfail(EX_REFUSED, "invalid address '%s': it %s", in, why);
	if (r < 0)
		vfail(EX_TEMP, "out of memory");
}

/* m_parse_quota - a quota string, or exit 1 saying what is accepted */
void m_parse_quota(const char *in, struct quota *q)
{
	if (quota_parse(in, q) < 0)
		vfail(EX_REFUSED, "invalid quota '%s': use e.g. 50M, 2G, "
		      "1000000, 1000000S,500C or NOQUOTA", in);
}

/* m_domain_id - id of a domain (real or alias), 0 when absent */
int64_t m_domain_id(struct vctx *c, const char *domain, int64_t *alias_of_r)
{
	struct store_stmt *st = prep(c, "SELECT id, alias_of FROM domains "
				   "WHERE name = ?");
	int64_t id = 0;

	bind_text(st, 1, domain);
	if (store_step(st) == STORE_ROW) {
		id = store_column_int(st, 0);
		if (alias_of_r)
			*alias_of_r = store_column_int(st, 1);
	}
	store_finalize(st);
	return id;
}

/* m_real_domain - id and name of the real domain behind a domain, or 0 */
int64_t m_real_domain(struct vctx *c, const char *domain, struct str *real)
{
	struct store_stmt *st = prep(c, "SELECT r.id, r.name FROM domains d "
				   "JOIN domains r ON r.id = "
				   "coalesce(d.alias_of, d.id) WHERE d.name = ?");
	int64_t id = 0;

	bind_text(st, 1, domain);
	if (store_step(st) == STORE_ROW) {
		id = store_column_int(st, 0);
		if (str_copys(real, (const char *)store_column_text(st, 1)))
			vfail(EX_TEMP, "out of memory");
	}
	store_finalize(st);
	return id;
}

/* need_real_domain - the id of a hosted real domain, or exit 1 */
static int64_t need_real_domain(struct vctx *c, const char *domain)
{
	int64_t alias_of = 0, id = m_domain_id(c, domain, &alias_of);
	struct str real = STR_INIT;

	if (!id)
		vfail(EX_REFUSED, "domain %s does not exist; add it with "
		      "'vadmin adddomain %s'", domain, domain);
	if (alias_of) {
		m_real_domain(c, domain, &real);
		vfail(EX_REFUSED, "%s is an alias of %s; make the change in %s",
		      domain, real.s, real.s);
	}
	return id;
}

/* local_int - the first column of SQL's first row for (domain id,
 * local part), or 0 when there is none */
static int64_t local_int(struct vctx *c, const char *sql, int64_t did,
			 const char *local)
{
	struct store_stmt *st = prep(c, sql);
	int64_t v = 0;

	store_bind_int(st, 1, did);
	bind_text(st, 2, local);
	if (store_step(st) == STORE_ROW)
		v = store_column_int(st, 0);
	store_finalize(st);
	return v;
}

/* m_user_id - id of USER in a domain, 0 when absent */
int64_t m_user_id(struct vctx *c, int64_t did, const char *local)
{
	return local_int(c, "SELECT id FROM users WHERE domain_id = ? AND "
			 "local = ?", did, local);
}

/* m_is_alias - whether LOCAL@domain has alias rows */
int m_is_alias(struct vctx *c, int64_t did, const char *local)
{
	struct store_stmt *st = prep(c, "SELECT 1 FROM aliases WHERE domain_id = ? "
				   "AND local = ? LIMIT 1");
	int found;

	store_bind_int(st, 1, did);
	bind_text(st, 2, local);
	found = store_step(st) == STORE_ROW;
	store_finalize(st);
	return found;
}

/* need_user - domain id and user id of an existing USER@DOMAIN */
static int64_t need_user(struct vctx *c, const char *addr, struct str *local,
			 struct str *domain, int64_t *did_r)
{
	int64_t uid;

	m_parse_addr(addr, local, domain);
	*did_r = need_real_domain(c, domain->s);
	uid = m_user_id(c, *did_r, local->s);
	if (!uid)
		vfail(EX_REFUSED, "user %s@%s does not exist", local->s,
		      domain->s);
	return uid;
}

/* m_make_secret - hash a clear password (and its CRAM context) or take a hash */
void m_make_secret(struct vctx *c, const char *pw, const char *hash,
		   struct str *hash_out, struct str *cram_out)
{
	struct str scheme = STR_INIT;
	int r;

	str_trunc(cram_out, 0);
	if (hash) {
		if (pw_hash_ok(hash) < 0)
			vfail(EX_REFUSED, "--hash must be a crypt(3) hash "
			      "starting with $y$ (yescrypt) or $6$ (SHA-512)");
		if (str_copys(hash_out, hash))
			vfail(EX_TEMP, "out of memory");
		return;
	}
	vcheck_password(pw);
	r = ctl_get(c->root, "passwordscheme", "yescrypt", &scheme);
	if (r < 0)
		vfail(EX_TEMP, "cannot read control/passwordscheme: %s",
		      msg_err(r));
	r = pw_hash(pw, scheme.s, hash_out);
	if (r == -EINVAL)
		vfail(EX_TEMP, "control/passwordscheme says '%s'; use yescrypt "
		      "or sha512crypt", scheme.s);
	if (r < 0)
		vfail(EX_TEMP, "cannot hash the password: %s", msg_err(r));
	r = pw_cram_context(pw, strlen(pw), cram_out);
	if (r < 0)
		vfail(EX_TEMP, "out of memory");
	str_free(&scheme);
}

/* maildir_rel - domains/DOMAIN/USER/Maildir, relative to the root */
static void maildir_rel(struct str *out, const char *local, const char *domain)
{
	out->len = 0;
	if (str_catf(out, "domains/%s/%s/Maildir", domain, local))
		vfail(EX_TEMP, "out of memory");
}

/* m_write_maildirsize - Maildir++ maildirsize: the quota, then the usage */
int m_write_maildirsize(struct vctx *c, const char *maildir,
			const struct quota *q)
{
	struct str path = STR_INIT, body = STR_INIT;
	uint64_t bytes = 0, msgs = 0;
	int r, dfd, lk = -1;

	if (str_catf(&path, "%s/%s", c->root, maildir))
		return -ENOMEM;
	/* a recalculation: the exclusive quota lock of lib/mdquota, so that
	 * no delivery's or POP3 session's line falls between the scan and
	 * the rename (no Maildir yet: nobody to race) */
	dfd = open(path.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0 && (lk = r = mdq_lock(dfd, 1)) < 0) {
		close(dfd);
		str_free(&path);
		return r;
	}
	if (str_cats(&path, "/maildirsize")) {
		r = -ENOMEM;
		goto out;
	}
	if (!q->bytes && !q->msgs) {
		r = unlink(path.s) < 0 && errno != ENOENT ? -errno : 0;
		goto out;
	}
	r = dfd >= 0 ? maildir_usage(dfd, &bytes, &msgs) : -ENOENT;
	if (r < 0)
		goto out;
	r = quota_format(q, &body);
	if (r == 0)
		r = str_catf(&body, "\n%llu %llu\n", (unsigned long long)bytes,
			     (unsigned long long)msgs);
	if (r == 0)
		r = fsx_write_atomic(path.s, body.s, body.len, 0600);
out:
	mdq_unlock(lk);
	if (dfd >= 0)
		close(dfd);
	str_free(&path);
	str_free(&body);
	return r;
}

/* m_make_maildir - USER/Maildir/{cur,new,tmp}, 0700, and maildirsize */
int m_make_maildir(struct vctx *c, const char *maildir, const struct quota *q,
		   int sync)
{
	static const char *const sub[] = {"", "/cur", "/new", "/tmp"};
	struct str p = STR_INIT;
	size_t base;
	int r = 0;
	unsigned i;

	if (str_catf(&p, "%s/%s", c->root, maildir))
		return -ENOMEM;
	base = p.len;
	/* the user directory first: it is what deluser removes */
	str_trunc(&p, base - strlen("/Maildir"));
	r = fsx_mkdir(p.s, 0700);
	for (i = 0; r == 0 && i < sizeof sub / sizeof sub[0]; i++) {
		p.len = base - strlen("/Maildir");
		r = str_cats(&p, "/Maildir");
		if (r == 0)
			r = str_cats(&p, sub[i]);
		if (r == 0)
			r = fsx_mkdir(p.s, 0700);
	}
	if (r == 0 && (q->bytes || q->msgs))
		r = m_write_maildirsize(c, maildir, q);
	if (r == 0 && sync) {
		p.len = base;
		p.s[p.len] = 0;
		r = fsx_fsync_dir(p.s);
		if (r == 0)
			r = fsx_fsync_parent(p.s);
		str_trunc(&p, base - strlen("/Maildir"));
		if (r == 0)
			r = fsx_fsync_parent(p.s);
	}
	str_free(&p);
	return r;
}

/* insert_user - the users row; the caller has checked that it is new */
static void insert_user(struct vctx *c, int64_t did, const char *local,
			const char *hash, const char *cram,
			const struct quota *q, const char *name,
			const char *maildir)
{
	struct store_stmt *st = prep(c, "INSERT INTO users(domain_id, local, hash, "
				   "cram, name, quota_bytes, quota_msgs, flags, "
				   "maildir, created, bucket) "
				   "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)");

	store_bind_int(st, 1, did);
	bind_text(st, 2, local);
	bind_text(st, 3, hash);
	bind_text(st, 4, cram && *cram ? cram : NULL);
	bind_text(st, 5, name ? name : "");
	store_bind_int(st, 6, (int64_t)q->bytes);
	store_bind_int(st, 7, (int64_t)q->msgs);
	bind_text(st, 8, maildir);
	store_bind_int(st, 9, (int64_t)time(NULL));
	store_bind_int(st, 10, acct_bucket(local, strlen(local)));
	done(c, st);
}

/* m_domain_quota - the default quota of a domain */
void m_domain_quota(struct vctx *c, int64_t did, struct quota *q)
{
	struct store_stmt *st = prep(c, "SELECT quota_bytes, quota_msgs FROM domains "
				   "WHERE id = ?");

	q->bytes = q->msgs = 0;
	store_bind_int(st, 1, did);
	if (store_step(st) == STORE_ROW) {
		q->bytes = (uint64_t)store_column_int(st, 0);
		q->msgs = (uint64_t)store_column_int(st, 1);
	}
	store_finalize(st);
}

/* add_user_in - create a mailbox in a known domain, inside the transaction */
static void add_user_in(struct vctx *c, int64_t did, const char *local,
			const char *domain, struct secret *sec,
			const struct quota *q, const char *name)
{
	struct str maildir = STR_INIT;
	int r;

	if (m_user_id(c, did, local))
		vfail(EX_REFUSED, "user %s@%s already exists", local, domain);
	if (m_is_alias(c, did, local))
		vfail(EX_REFUSED, "%s@%s is an alias; delete it first with "
		      "'vadmin alias del %s@%s'", local, domain, local, domain);
	maildir_rel(&maildir, local, domain);
	/* the mailbox exists before any CDB can point at it */
	r = m_make_maildir(c, maildir.s, q, 1);
	if (r < 0)
		vfail(EX_TEMP, "cannot create %s/%s: %s", c->root, maildir.s,
		      msg_err(r));
	secret_finish(sec);
	insert_user(c, did, local, sec->hash.s, sec->cram.len ? sec->cram.s :
		    NULL, q, name, maildir.s);
	m_touch(c, did, local, domain);
	str_free(&maildir);
}

/* m_add_domain - a real domain and its postmaster */
void m_add_domain(struct vctx *c, const char *in, const struct quota *q,
		  struct secret *pm)
{
	struct str domain = STR_INIT, dir = STR_INIT;
	struct store_stmt *st;
	int64_t did;
	int r;

	m_parse_domain(in, &domain);
	if (m_domain_id(c, domain.s, NULL))
		vfail(EX_REFUSED, "domain %s already exists", domain.s);
	if (str_catf(&dir, "%s/domains/%s", c->root, domain.s))
		vfail(EX_TEMP, "out of memory");
	r = fsx_mkdir(dir.s, 0700);
	if (r == 0)
		r = fsx_fsync_parent(dir.s);
	if (r < 0)
		vfail(EX_TEMP, "cannot create %s: %s", dir.s, msg_err(r));
	st = prep(c, "INSERT INTO domains(name, quota_bytes, quota_msgs, "
		     "created) VALUES (?, ?, ?, ?)");
	bind_text(st, 1, domain.s);
	store_bind_int(st, 2, (int64_t)q->bytes);
	store_bind_int(st, 3, (int64_t)q->msgs);
	store_bind_int(st, 4, (int64_t)time(NULL));
	done(c, st);
	did = store_last_id(c->db);
	add_user_in(c, did, "postmaster", domain.s, pm, q, "Postmaster");
	m_pending(c, "cdb", domain.s);
	m_pending(c, "global", "");
	str_free(&domain);
	str_free(&dir);
}

/* m_del_domain - a domain with everything in it, or an alias domain */
void m_del_domain(struct vctx *c, const char *in)
{
	struct str domain = STR_INIT, path = STR_INIT;
	int64_t alias_of = 0, did;
	struct store_stmt *st;

	m_parse_domain(in, &domain);
	did = m_domain_id(c, domain.s, &alias_of);
	if (!did)
		vfail(EX_REFUSED, "domain %s does not exist", domain.s);
	st = prep(c, "DELETE FROM domains WHERE id = ?");
	store_bind_int(st, 1, did);
	done(c, st);
	m_pending(c, "global", "");
	if (!alias_of) {
		/* its alias domains went with it (ON DELETE CASCADE) */
		m_pending(c, "cdb", domain.s);
		if (str_catf(&path, "domains/%s", domain.s))
			vfail(EX_TEMP, "out of memory");
		m_pending(c, "rmdir", path.s);
	}
	str_free(&domain);
	str_free(&path);
}

/* m_add_user - a mailbox; quota defaults to the domain's */
void m_add_user(struct vctx *c, const char *addr, struct secret *sec,
		const struct quota *q, int have_quota, const char *name)
{
	struct str local = STR_INIT, domain = STR_INIT;
	const unsigned char *p;
	struct quota dq;
	int64_t did;

	/* the name is printed in listings: one line, no terminal controls */
	for (p = (const unsigned char *)(name ? name : ""); *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			vfail(EX_REFUSED, "the name contains a control byte");
	if (name && strlen(name) > 256)
		vfail(EX_REFUSED, "the name is longer than 256 bytes");

	m_parse_addr(addr, &local, &domain);
	m_receivable(local.s, domain.s);
	did = need_real_domain(c, domain.s);
	if (!have_quota)
		m_domain_quota(c, did, &dq);
	add_user_in(c, did, local.s, domain.s, sec, have_quota ? q : &dq, name);
	str_free(&local);
	str_free(&domain);
}

/* not_catchall_target - refuse to remove the address a catch-all delivers
 * to: the catch-all would then catch its own mail */
static void not_catchall_target(struct vctx *c, const char *local,
				const char *domain)
{
	struct str addr = STR_INIT;
	struct store_stmt *st = prep(c, "SELECT name FROM domains WHERE catchall = ? "
				   "LIMIT 1");

	if (str_catf(&addr, "%s@%s", local, domain))
		vfail(EX_TEMP, "out of memory");
	bind_text(st, 1, addr.s);
	if (store_step(st) == STORE_ROW)
		vfail(EX_REFUSED, "%s is the catch-all of %s; change that first "
		      "with 'vadmin catchall %s bounce'", addr.s,
		      (const char *)store_column_text(st, 0),
		      (const char *)store_column_text(st, 0));
	store_finalize(st);
	str_free(&addr);
}

/* m_del_user - the row now, the mailbox right after COMMIT */
void m_del_user(struct vctx *c, const char *addr)
{
	struct str local = STR_INIT, domain = STR_INIT, path = STR_INIT;
	int64_t did, uid = need_user(c, addr, &local, &domain, &did);
	struct store_stmt *st;

	not_catchall_target(c, local.s, domain.s);
	st = prep(c, "DELETE FROM users WHERE id = ?");
	store_bind_int(st, 1, uid);
	done(c, st);
	m_touch(c, did, local.s, domain.s);
	if (str_catf(&path, "domains/%s/%s", domain.s, local.s))
		vfail(EX_TEMP, "out of memory");
	m_pending(c, "rmdir", path.s);
	str_free(&local);
	str_free(&domain);
	str_free(&path);
}

/* m_passwd - a new hash (and CRAM context) for a user */
void m_passwd(struct vctx *c, const char *addr, struct secret *sec)
{
	struct str local = STR_INIT, domain = STR_INIT;
	int64_t did, uid = need_user(c, addr, &local, &domain, &did);
	struct store_stmt *st = prep(c, "UPDATE users SET hash = ?, cram = ? "
				   "WHERE id = ?");

	secret_finish(sec);
	bind_text(st, 1, sec->hash.s);
	bind_text(st, 2, sec->cram.len ? sec->cram.s : NULL);
	store_bind_int(st, 3, uid);
	done(c, st);
	m_touch(c, did, local.s, domain.s);
	str_free(&local);
	str_free(&domain);
}

/* m_setquota - the limit in the database; maildirsize follows in vadmin.c */
void m_setquota(struct vctx *c, const char *addr, const struct quota *q)
{
	struct str local = STR_INIT, domain = STR_INIT;
	int64_t did, uid = need_user(c, addr, &local, &domain, &did);
	struct store_stmt *st = prep(c, "UPDATE users SET quota_bytes = ?, "
				   "quota_msgs = ? WHERE id = ?");

	store_bind_int(st, 1, (int64_t)q->bytes);
	store_bind_int(st, 2, (int64_t)q->msgs);
	store_bind_int(st, 3, uid);
	done(c, st);
	m_touch(c, did, local.s, domain.s);
	str_free(&local);
	str_free(&domain);
}

/* parse_dest - a destination: LOCAL (in the alias's domain) or an address;
 * the local part of a remote address keeps its case, which only its own
 * host may interpret */
static void parse_dest(struct vctx *c, const char *in, const char *domain,
		       struct str *out)
{
	struct str l = STR_INIT, d = STR_INIT, real = STR_INIT;
	const char *why = "";

	if (strchr(in, '@')) {
		m_parse_addr(in, &l, &d);
		if (!m_real_domain(c, d.s, &real) &&
		    str_copyb(&l, in, (size_t)(strrchr(in, '@') - in)))
			vfail(EX_TEMP, "out of memory");
		str_free(&real);
	} else {
		if (name_local(in, strlen(in), &l, &why) < 0)
			vfail(EX_REFUSED, "invalid destination '%s': it %s",
			      in, why);
		if (str_copys(&d, domain))
			vfail(EX_TEMP, "out of memory");
	}
	out->len = 0;
	if (str_catf(out, "%s@%s", l.s, d.s))
		vfail(EX_TEMP, "out of memory");
	str_free(&l);
	str_free(&d);
}

/* m_dest_why - why a destination's LOCAL part (HOSTED: in a domain of
 * ours) is one mail could never be sent on to, or NULL: mta-inject
 * refuses a local part that begins with '-', and a hosted one must be
 * receivable (lib/name.h) */
const char *m_dest_why(const char *local, int hosted)
{
	size_t n = strlen(local);

	if (hosted)
		return name_receivable(local, n);
	return queue_addr_entry(local, n) < 0 ? "begins with '-', which "
	       "every entry refuses" : NULL;
}

/* new_dest - parse_dest for a destination about to be stored: none that
 * m_dest_why refuses */
static void new_dest(struct vctx *c, const char *in, const char *domain,
		     struct str *out)
{
	struct str real = STR_INIT;
	char *at;
	const char *why;

	parse_dest(c, in, domain, out);
	at = strrchr(out->s, '@');
	*at = 0;
	why = m_dest_why(out->s, m_real_domain(c, at + 1, &real) != 0);
	*at = '@';
	if (why)
		vfail(EX_REFUSED, "invalid destination '%s': its local part %s",
		      out->s, why);
	str_free(&real);
}

/* next_hops - where mail for a hosted address goes on to (aliases, forward) */
static void next_hops(struct vctx *c, const char *addr, struct str *hops)
{
	struct str local = STR_INIT, dom = STR_INIT, real = STR_INIT;
	const char *why = "";
	struct store_stmt *st;
	int64_t did;

	hops->len = 0;
	if (name_addr(addr, &local, &dom, &why) < 0)
		goto out;
	did = m_real_domain(c, dom.s, &real);
	if (!did)
		goto out; /* remote: the chain leaves this host */
	st = prep(c, "SELECT dest FROM aliases WHERE domain_id = ?1 AND "
		     "local = ?2 UNION ALL SELECT f.dest FROM forwards f "
		     "JOIN users u ON u.id = f.user_id WHERE u.domain_id = ?1 "
		     "AND u.local = ?2");
	store_bind_int(st, 1, did);
	bind_text(st, 2, local.s);
	while (store_step(st) == STORE_ROW)
		if (str_cats(hops, (const char *)store_column_text(st, 0)) ||
		    str_catc(hops, 0))
			vfail(EX_TEMP, "out of memory");
	store_finalize(st);
out:
	str_free(&local);
	str_free(&dom);
	str_free(&real);
}

/* canon - LOCAL@REALDOMAIN, so alias domains do not hide a loop */
static void canon(struct vctx *c, const char *addr, struct str *out)
{
	struct str local = STR_INIT, dom = STR_INIT, real = STR_INIT;
	const char *why = "";

	out->len = 0;
	if (name_addr(addr, &local, &dom, &why) == 0 &&
	    m_real_domain(c, dom.s, &real)) {
		if (str_catf(out, "%s@%s", local.s, real.s))
			vfail(EX_TEMP, "out of memory");
	} else if (str_cats(out, addr)) {
		vfail(EX_TEMP, "out of memory");
	}
	str_free(&local);
	str_free(&dom);
	str_free(&real);
}

/* the addresses a loop search has reached: each once, with the index
 * of the one it was reached from (WALK_START: a hop of the start) */
#define WALK_START ((size_t)-1)

struct walk {
	char **addr;		/* canonical, in the order reached */
	size_t *from;
	size_t n, cap;
	void *seen;		/* tsearch tree of addr[] */
};

static int walk_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void walk_keep(void *p)
{
	(void)p;	/* the strings are addr[]'s, freed there */
}

/* walk_push - ADDR reached from FROM, unless it was reached before */
static void walk_push(struct walk *w, const char *addr, size_t from)
{
	char *copy;
	void *at;

	if (tfind(addr, &w->seen, walk_cmp))
		return;
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64, *f;
		char **a = reallocarray(w->addr, cap, sizeof *a);

		if (!a)
			vfail(EX_TEMP, "out of memory");
		w->addr = a;
		if (!(f = reallocarray(w->from, cap, sizeof *f)))
			vfail(EX_TEMP, "out of memory");
		w->from = f;
		w->cap = cap;
	}
	if (!(copy = strdup(addr)) ||
	    !(at = tsearch(copy, &w->seen, walk_cmp))) {
		free(copy);
		vfail(EX_TEMP, "out of memory");
	}
	w->addr[w->n] = copy;
	w->from[w->n++] = from;
}

/* walk_push_hops - where mail for ADDR goes on to, reached from FROM */
static void walk_push_hops(struct vctx *c, struct walk *w, const char *addr,
			   size_t from)
{
	struct str hops = STR_INIT, cn = STR_INIT;
	size_t i;

	next_hops(c, addr, &hops);
	for (i = 0; i < hops.len; i += strlen(hops.s + i) + 1) {
		canon(c, hops.s + i, &cn);
		walk_push(w, cn.s, from);
	}
	str_free(&hops);
	str_free(&cn);
}

/* walk_path - " -> A -> B ... -> addr[k]", the way addr[k] was reached:
 * the way back, then written from its far end */
static void walk_path(const struct walk *w, size_t k, struct str *path)
{
	size_t n = 0, i, *back = malloc(w->n * sizeof *back);

	if (!back)
		vfail(EX_TEMP, "out of memory");
	for (i = k; i != WALK_START; i = w->from[i])
		back[n++] = i;
	while (n-- > 0)
		if (str_catf(path, " -> %s", w->addr[back[n]]))
			vfail(EX_TEMP, "out of memory");
	free(back);
}

/* no_loop - refuse a change after which mail for start comes back to it.
 * A breadth-first walk that reaches each address once: its cost is the
 * number of aliases and forwards reached, never the number of ways
 * through them (a depth-first search of every way took 2^N lookups on N
 * layers of two aliases each that both lead to the next: 13 s at 16
 * layers, days at 32), and it finds the shortest loop */
static void no_loop(struct vctx *c, const char *start)
{
	struct walk w = {0};
	struct str target = STR_INIT, path = STR_INIT;
	size_t k;

	canon(c, start, &target);
	walk_push_hops(c, &w, target.s, WALK_START);
	for (k = 0; k < w.n; k++) {
		if (!strcmp(w.addr[k], target.s)) {
			walk_path(&w, k, &path);
			vfail(EX_REFUSED, "refused: this would make a loop: "
			      "%s%s", target.s, path.s);
		}
		walk_push_hops(c, &w, w.addr[k], k);
	}
	tdestroy(w.seen, walk_keep);
	for (k = 0; k < w.n; k++)
		free(w.addr[k]);
	free(w.addr);
	free(w.from);
	str_free(&target);
	str_free(&path);
}

/* alias_not_too_wide - refuse an alias with more destinations than
 * vdeliver delivers to (it would bounce every message, 5.5.3) */
static void alias_not_too_wide(struct vctx *c, int64_t did, const char *local,
			       const char *domain)
{
	int64_t n = local_int(c, "SELECT count(*) FROM aliases WHERE "
			      "domain_id = ? AND local = ?", did, local);

	if (n > RCPT_TARGETS_MAX)
		vfail(EX_REFUSED, "%s@%s would have %lld destinations; vdeliver "
		      "delivers to at most %d", local, domain, (long long)n,
		      RCPT_TARGETS_MAX);
}

/* m_alias_add - ALIAS@DOMAIN delivers to each DEST */
void m_alias_add(struct vctx *c, const char *alias, char **dests, int n)
{
	struct str local = STR_INIT, domain = STR_INIT, dest = STR_INIT;
	struct str full = STR_INIT;
	struct store_stmt *st;
	int64_t did;
	int i;

	m_parse_addr(alias, &local, &domain);
	m_receivable(local.s, domain.s);
	did = need_real_domain(c, domain.s);
	if (m_user_id(c, did, local.s))
		vfail(EX_REFUSED, "%s@%s is a mailbox; use 'vadmin forward' to "
		      "send its mail elsewhere", local.s, domain.s);
	for (i = 0; i < n; i++) {
		new_dest(c, dests[i], domain.s, &dest);
		st = prep(c, "INSERT INTO aliases(domain_id, local, dest) "
			     "VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
		store_bind_int(st, 1, did);
		bind_text(st, 2, local.s);
		bind_text(st, 3, dest.s);
		done(c, st);
		if (store_changes(c->db) == 0)
			vfail(EX_REFUSED, "%s@%s already delivers to %s",
			      local.s, domain.s, dest.s);
	}
	alias_not_too_wide(c, did, local.s, domain.s);
	if (str_catf(&full, "%s@%s", local.s, domain.s))
		vfail(EX_TEMP, "out of memory");
	no_loop(c, full.s);
	m_touch(c, did, local.s, domain.s);
	str_free(&local);
	str_free(&domain);
	str_free(&dest);
	str_free(&full);
}

/* m_alias_del - one destination of an alias, or the whole alias */
void m_alias_del(struct vctx *c, const char *alias, const char *dest_in)
{
	struct str local = STR_INIT, domain = STR_INIT, dest = STR_INIT;
	struct store_stmt *st;
	int64_t did;

	m_parse_addr(alias, &local, &domain);
	did = need_real_domain(c, domain.s);
	if (dest_in) {
		parse_dest(c, dest_in, domain.s, &dest);
		st = prep(c, "DELETE FROM aliases WHERE domain_id = ? AND "
			     "local = ? AND dest = ?");
		bind_text(st, 3, dest.s);
	} else {
		st = prep(c, "DELETE FROM aliases WHERE domain_id = ? AND "
			     "local = ?");
	}
	store_bind_int(st, 1, did);
	bind_text(st, 2, local.s);
	done(c, st);
	if (store_changes(c->db) == 0)
		vfail(EX_REFUSED, dest_in ? "alias %s@%s has no destination %s"
		      : "alias %s@%s does not exist%s", local.s, domain.s,
		      dest_in ? dest.s : "");
	if (!m_is_alias(c, did, local.s))
		not_catchall_target(c, local.s, domain.s);
	m_touch(c, did, local.s, domain.s);
	str_free(&local);
	str_free(&domain);
	str_free(&dest);
}

/* m_forward - send a user's mail to DEST (keep: and to the mailbox); NULL removes */
void m_forward(struct vctx *c, const char *addr, const char *dest_in, int keep)
{
	struct str local = STR_INIT, domain = STR_INIT, dest = STR_INIT;
	int64_t did, uid = need_user(c, addr, &local, &domain, &did);
	struct store_stmt *st;

	if (dest_in) {
		new_dest(c, dest_in, domain.s, &dest);
		st = prep(c, "INSERT INTO forwards(user_id, dest, keep) "
			     "VALUES (?, ?, ?) ON CONFLICT (user_id) DO "
			     "UPDATE SET dest = excluded.dest, "
			     "keep = excluded.keep");
		bind_text(st, 2, dest.s);
		store_bind_int(st, 3, keep);
	} else {
		st = prep(c, "DELETE FROM forwards WHERE user_id = ?");
	}
	store_bind_int(st, 1, uid);
	done(c, st);
	if (!dest_in && store_changes(c->db) == 0)
		vfail(EX_REFUSED, "%s@%s has no forward", local.s, domain.s);
	if (dest_in) {
		str_trunc(&dest, 0);
		if (str_catf(&dest, "%s@%s", local.s, domain.s))
			vfail(EX_TEMP, "out of memory");
		no_loop(c, dest.s);
	}
	m_touch(c, did, local.s, domain.s);
	str_free(&local);
	str_free(&domain);
	str_free(&dest);
}

/* m_catchall_self - 1 when DEST, the catch-all of the real domain DID,
 * is a name in that domain (spelled with it or with one of its alias
 * domains, as vdeliver resolves both) that is neither a mailbox nor an
 * alias: the catch-all would catch its own mail, and vdeliver bounce it */
int m_catchall_self(struct vctx *c, int64_t did, const char *dest)
{
	struct str l = STR_INIT, d = STR_INIT, real = STR_INIT;
	const char *why = "";
	int self = 0;

	if (name_addr(dest, &l, &d, &why) == 0 &&
	    m_real_domain(c, d.s, &real) == did)
		self = !m_user_id(c, did, l.s) && !m_is_alias(c, did, l.s);
	str_free(&l);
	str_free(&d);
	str_free(&real);
	return self;
}

/* m_catchall - what happens to mail for unknown users of a domain */
void m_catchall(struct vctx *c, const char *in, const char *what)
{
	struct str domain = STR_INIT, dest = STR_INIT;
	struct store_stmt *st;
	int64_t did;

	m_parse_domain(in, &domain);
	did = need_real_domain(c, domain.s);
	if (!strcmp(what, "bounce") || !strcmp(what, "delete")) {
		if (str_copys(&dest, what))
			vfail(EX_TEMP, "out of memory");
	} else {
		new_dest(c, what, domain.s, &dest);
		if (m_catchall_self(c, did, dest.s))
			vfail(EX_REFUSED, "%s does not exist; a catch-all must "
			      "go to an existing mailbox or alias", dest.s);
	}
	st = prep(c, "UPDATE domains SET catchall = ? WHERE id = ?");
	bind_text(st, 1, dest.s);
	store_bind_int(st, 2, did);
	done(c, st);
	m_pending(c, "cdb", domain.s);
	str_free(&domain);
	str_free(&dest);
}

/* m_aliasdomain_add - ALIAS receives the mail of REAL's users */
void m_aliasdomain_add(struct vctx *c, const char *alias_in,
		       const char *real_in)
{
	struct str alias = STR_INIT, real = STR_INIT;
	struct store_stmt *st;
	int64_t rid;

	m_parse_domain(alias_in, &alias);
	m_parse_domain(real_in, &real);
	if (!strcmp(alias.s, real.s))
		vfail(EX_REFUSED, "a domain cannot be an alias of itself");
	rid = need_real_domain(c, real.s);
	if (m_domain_id(c, alias.s, NULL))
		vfail(EX_REFUSED, "domain %s already exists", alias.s);
	st = prep(c, "INSERT INTO domains(name, alias_of, created) "
		     "VALUES (?, ?, ?)");
	bind_text(st, 1, alias.s);
	store_bind_int(st, 2, rid);
	store_bind_int(st, 3, (int64_t)time(NULL));
	done(c, st);
	m_pending(c, "global", "");
	str_free(&alias);
	str_free(&real);
}

/* m_aliasdomain_del - remove an alias domain (never a real one) */
void m_aliasdomain_del(struct vctx *c, const char *alias_in)
{
	struct str alias = STR_INIT;
	int64_t alias_of = 0, id;
	struct store_stmt *st;

	m_parse_domain(alias_in, &alias);
	id = m_domain_id(c, alias.s, &alias_of);
	if (!id)
		vfail(EX_REFUSED, "domain %s does not exist", alias.s);
	if (!alias_of)
		vfail(EX_REFUSED, "%s is a real domain, not an alias; use "
		      "'vadmin deldomain %s'", alias.s, alias.s);
	st = prep(c, "DELETE FROM domains WHERE id = ?");
	store_bind_int(st, 1, id);
	done(c, st);
	m_pending(c, "global", "");
	str_free(&alias);
}

/* m_moduser - switch pop, smtp and delivery on or off */
void m_moduser(struct vctx *c, const char *addr, int disable, int mask)
{
	struct str local = STR_INIT, domain = STR_INIT;
	int64_t did, uid = need_user(c, addr, &local, &domain, &did);
	struct store_stmt *st = prep(c, disable ?
				"UPDATE users SET flags = flags | ? WHERE id = ?" :
				"UPDATE users SET flags = flags & ~? WHERE id = ?");

	store_bind_int(st, 1, mask);
	store_bind_int(st, 2, uid);
	done(c, st);
	m_touch(c, did, local.s, domain.s);
	str_free(&local);
	str_free(&domain);
}
