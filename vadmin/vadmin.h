/*
 * vadmin.h - the account manager's internal interfaces.
 *
 * vadmin.c   command line, dispatch, the vpopmail-named entry points
 * vmodel.c   changes to the database, each one transaction
 * vgen.c     the CDBs generated from the database, and the pending journal
 * vcheck.c   `vadmin check [--repair]`
 * vshow.c    userinfo, dominfo, listusers, listdomains (text and --json)
 * vbackup.c  `vadmin backup FILE`
 * vmigrate.c `vadmin migrate-store CONNSTRING`: SQLite to PostgreSQL
 * vwatch.c   `vadmin watch`: this host's CDBs kept up with PostgreSQL
 * vpopimport.c, vpopstore.c, vpopparse.c   `vadmin import-vpopmail`
 * vdkim.c    `vadmin dkim ...`: DKIM keys
 * vdkimgen.c their table control/dkim.cdb and key files: generation, check
 */
#ifndef FACTEUR_VADMIN_H
#define FACTEUR_VADMIN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "acct.h"
#include "msg.h"
#include "quota.h"
#include "store.h"
#include "str.h"

/* exit codes of SPEC.md "Administration" */
#define EX_DONE 0
#define EX_REFUSED 1
#define EX_USAGE 2
#define EX_TEMP 111

struct vctx {
	const char *root;
	struct store *db;
	int json;
	int lockfd;
	int logfd;
	/* vadmin watch: file work owed while applying another host's change,
	 * done here at once (KIND NUL ARG NUL ...), never put in the shared
	 * pending table, where it would be logged as a change of its own */
	struct str *owed;
};

/* a password being hashed in a second thread while the first one locks,
 * opens the database and makes the Maildir: yescrypt costs more than all
 * the rest of an adduser, so it is worth overlapping */
struct secret {
	struct str hash, cram, pw, scheme;
	pthread_t th;
	int running;
	int err;
};

/* vadmin.c */
void secret_start(struct vctx *c, struct secret *s, const char *pw,
		  const char *hash, const char *who);
void secret_finish(struct secret *s);
void secret_free(struct secret *s);
/* vfail - one line on stderr and the exit code of SPEC.md */
#define vfail msg_die
void vlog(struct vctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void vopen(struct vctx *c, int writer);
void vlock(struct vctx *c);
void vunlock(struct vctx *c);
void vclose(struct vctx *c);
int vread_password(const char *what, struct str *out);
void vcheck_password(const char *pw);
const char *vpassword_problem(const char *pw);

/* vmodel.c: each returns only on success; refusals exit through vfail */
struct store_stmt *m_prep(struct vctx *c, const char *sql);

/* m_col - a text column, "" for NULL */
static inline const char *m_col(struct store_stmt *st, int i)
{
	const char *s = store_column_text(st, i);

	return s ? s : "";
}

void m_begin(struct vctx *c);
void m_bulk(struct store *s, int on);
void m_syncfs(struct vctx *c, const char *what);
void m_commit(struct vctx *c);
void m_pending(struct vctx *c, const char *kind, const char *arg);
void m_touch(struct vctx *c, int64_t did, const char *local,
	     const char *domain);
int64_t m_domain_id(struct vctx *c, const char *domain, int64_t *alias_of_r);
int64_t m_real_domain(struct vctx *c, const char *domain, struct str *real);
int64_t m_user_id(struct vctx *c, int64_t did, const char *local);
void m_parse_addr(const char *in, struct str *local, struct str *domain);
void m_receivable(const char *local, const char *domain);
const char *m_dest_why(const char *local, int hosted);
int m_catchall_self(struct vctx *c, int64_t did, const char *dest);
void m_parse_domain(const char *in, struct str *domain);
void m_parse_quota(const char *in, struct quota *q);
void m_make_secret(struct vctx *c, const char *pw, const char *hash,
		   struct str *hash_out, struct str *cram_out);
void m_add_domain(struct vctx *c, const char *domain, const struct quota *q,
		  struct secret *pm);
void m_del_domain(struct vctx *c, const char *domain);
void m_add_user(struct vctx *c, const char *addr, struct secret *sec,
		const struct quota *q, int have_quota, const char *name);
void m_del_user(struct vctx *c, const char *addr);
void m_passwd(struct vctx *c, const char *addr, struct secret *sec);
void m_setquota(struct vctx *c, const char *addr, const struct quota *q);
void m_alias_add(struct vctx *c, const char *alias, char **dests, int n);
void m_alias_del(struct vctx *c, const char *alias, const char *dest);
void m_forward(struct vctx *c, const char *addr, const char *dest, int keep);
void m_catchall(struct vctx *c, const char *domain, const char *what);
void m_aliasdomain_add(struct vctx *c, const char *alias, const char *real);
void m_aliasdomain_del(struct vctx *c, const char *alias);
void m_moduser(struct vctx *c, const char *addr, int disable, int mask);
unsigned long m_import(struct vctx *c, const char *file);
int m_is_alias(struct vctx *c, int64_t did, const char *local);
void m_domain_quota(struct vctx *c, int64_t did, struct quota *q);
int m_make_maildir(struct vctx *c, const char *maildir, const struct quota *q,
		   int sync);
int m_write_maildirsize(struct vctx *c, const char *maildir,
			const struct quota *q);

/* vgen.c */
typedef int (*gen_emit_fn)(void *arg, int which, const char *key,
			   size_t klen, const char *val, size_t vlen);
#define GEN_DELIVERY 0
#define GEN_PASSWD 1
#define GEN_ASSIGN 2
#define GEN_RCPTHOSTS 3
int gen_domain_records(struct vctx *c, int64_t did, const char *catchall,
		       unsigned lo, unsigned hi, gen_emit_fn emit, void *arg);
unsigned gen_want_shards(uint64_t nusers, unsigned cur);
void gen_bucket_range(unsigned shards, unsigned index, unsigned *lo,
		      unsigned *hi);
int gen_user(struct vctx *c, const char *addr);
int gen_sweep(struct vctx *c, const char *domain);
int gen_parse_name(const char *name, struct str *domain, unsigned *shards,
		   unsigned *index);
int gen_path(struct str *out, const char *root, int which, const char *domain,
	     unsigned shards, unsigned index);
int gen_global_records(struct vctx *c, gen_emit_fn emit, void *arg);
int gen_domain(struct vctx *c, const char *domain);
int gen_global(struct vctx *c);
void gen_run_pending(struct vctx *c);
int gen_do(struct vctx *c, const char *kind, const char *arg, int rmdirs);
void gen_recover(struct vctx *c);
void gen_rebuild_all(struct vctx *c);

/* vcheck.c */
int cmd_check(struct vctx *c, int repair);

/* vbackup.c */
int cmd_backup(struct vctx *c, const char *file);
/* vmigrate.c */
int cmd_migrate_store(struct vctx *c, const char *conninfo);
/* vwatch.c */
int cmd_watch(struct vctx *c);
/* vshare.c */
int cmd_share(struct vctx *c);
/* vdkim.c: the operands and flags of `vadmin dkim` */
struct dkim_args {
	const char *const *pos;
	int npos;
	const char *selector, *type, *bits;
};
int vdkim_check(const struct dkim_args *a);
int vdkim_run(struct vctx *c, const struct dkim_args *a);
void vdkim_adddomain(struct vctx *c, const char *domain);
/* vdkimgen.c */
int gen_dkim(struct vctx *c);
/* what vadmin check is told: a problem, FIXED when repaired */
typedef void (*vdkim_report_fn)(void *arg, int fixed, const char *what);
void vdkim_check_files(struct vctx *c, int repair, vdkim_report_fn report,
		       void *arg);

/* vshow.c */
void show_user(struct vctx *c, const char *addr);
void show_domain(struct vctx *c, const char *domain);
void show_users(struct vctx *c, const char *domain);
void show_domains(struct vctx *c);
void show_aliases(struct vctx *c, const char *what);
void show_flags(struct vctx *c, const char *addr);

#endif
