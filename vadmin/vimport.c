/*
 * vimport - `vadmin import FILE`: many users in one transaction.
 *
 * Each line is `USER@DOMAIN PASSWORD_OR_HASH [QUOTA]`; blank lines and
 * lines starting with '#' are skipped; without QUOTA a user gets its
 * domain's default. A value starting with '$' must be a "$y$" or "$6$"
 * hash and is stored as it is; anything else is hashed as a clear
 * password (which costs a yescrypt computation per user: import hashes
 * when speed matters). Any bad line refuses the whole file, naming the
 * line, and nothing changes. Mailboxes are created after every line has
 * been checked, by one worker process per CPU (mkdir is most of the cost
 * of an import), without an fsync each, and made durable by one syncfs()
 * before COMMIT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "name.h"
#include "num.h"
#include "pw.h"
#include "vadmin.h"

/* field - next white-space separated field of a line, NUL-terminated */
static char *field(char **p)
{
	char *s = *p, *e;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return NULL;
	e = s;
	while (*e && *e != ' ' && *e != '\t')
		e++;
	if (*e)
		*e++ = 0;
	*p = e;
	return s;
}

struct imp {
	struct str local, domain, maildir, hash, cram, last_domain;
	struct str dirs; /* MAILDIR \0 QUOTA_BYTES \0 QUOTA_MSGS \0 ... */
	int64_t last_did;
	struct quota last_q; /* last_did's default quota, asked once */
	struct store_stmt *ins;
};

/* import_line - validate and insert one user */
static int import_line(struct vctx *c, struct imp *im, char *line,
			unsigned long lineno)
{
	char *p = line, *addr, *secret, *qs;
	struct quota q = {0, 0};
	const char *why = "";
	int64_t did;
	int r;

	addr = field(&p);
	if (!addr || *addr == '#')
		return 0;
	secret = field(&p);
	qs = field(&p);
	if (!secret || field(&p))
		vfail(EX_REFUSED, "line %lu: want 'USER@DOMAIN PASSWORD_OR_HASH "
		      "[QUOTA]'; nothing was imported", lineno);
	if (name_addr(addr, &im->local, &im->domain, &why) < 0)
		vfail(EX_REFUSED, "line %lu: invalid address '%s': it %s; "
		      "nothing was imported", lineno, addr, why);
	if (qs && quota_parse(qs, &q) < 0)
		vfail(EX_REFUSED, "line %lu: invalid quota '%s'; nothing was "
		      "imported", lineno, qs);
	/* without a QUOTA field the user gets the domain's, as with adduser */
	if (im->last_did && str_eqs(&im->last_domain, im->domain.s)) {
		did = im->last_did;
	} else {
		int64_t alias_of = 0;

		did = m_domain_id(c, im->domain.s, &alias_of);
		if (!did || alias_of)
			vfail(EX_REFUSED, "line %lu: domain %s %s; nothing was "
			      "imported", lineno, im->domain.s, did ?
			      "is an alias domain" : "does not exist");
		if (str_copys(&im->last_domain, im->domain.s))
			vfail(EX_TEMP, "out of memory");
		im->last_did = did;
		/* once a domain: a round trip a line counts against a
		 * PostgreSQL store (docs/scale-out.md) */
		m_domain_quota(c, did, &im->last_q);
		m_pending(c, "cdb", im->domain.s);
	}
	if (m_user_id(c, did, im->local.s))
		vfail(EX_REFUSED, "line %lu: user %s@%s already exists; nothing "
		      "was imported", lineno, im->local.s, im->domain.s);
	if (m_is_alias(c, did, im->local.s))
		vfail(EX_REFUSED, "line %lu: %s@%s is an alias; nothing was "
		      "imported", lineno, im->local.s, im->domain.s);
	if (!qs)
		q = im->last_q;
	if (secret[0] == '$' && pw_hash_ok(secret) < 0)
		vfail(EX_REFUSED, "line %lu: '%.3s...' is not a $y$ (yescrypt) "
		      "or $6$ (SHA-512) hash; nothing was imported", lineno,
		      secret);
	if (secret[0] != '$' && vpassword_problem(secret))
		vfail(EX_REFUSED, "line %lu: %s; nothing was imported", lineno,
		      vpassword_problem(secret));
	if (secret[0] == '$')
		m_make_secret(c, NULL, secret, &im->hash, &im->cram);
	else
		m_make_secret(c, secret, NULL, &im->hash, &im->cram);
	im->maildir.len = 0;
	if (str_catf(&im->maildir, "domains/%s/%s/Maildir", im->domain.s,
		     im->local.s))
		vfail(EX_TEMP, "out of memory");
	if (str_catb(&im->dirs, im->maildir.s, im->maildir.len + 1) ||
	    str_catf(&im->dirs, "%llu", (unsigned long long)q.bytes) ||
	    str_catc(&im->dirs, 0) ||
	    str_catf(&im->dirs, "%llu", (unsigned long long)q.msgs) ||
	    str_catc(&im->dirs, 0))
		vfail(EX_TEMP, "out of memory");
	store_reset(im->ins);
	store_bind_int(im->ins, 1, did);
	store_bind_text(im->ins, 2, im->local.s);
	store_bind_text(im->ins, 3, im->hash.s);
	if (im->cram.len)
		store_bind_text(im->ins, 4, im->cram.s);
	else
		store_bind_null(im->ins, 4);
	store_bind_int(im->ins, 5, (int64_t)q.bytes);
	store_bind_int(im->ins, 6, (int64_t)q.msgs);
	store_bind_text(im->ins, 7, im->maildir.s);
	store_bind_int(im->ins, 8, acct_bucket(im->local.s, im->local.len));
	store_bind_int(im->ins, 9, (int64_t)time(NULL));
	r = store_step(im->ins);
	if (r == -EEXIST)
		vfail(EX_REFUSED, "line %lu: user %s@%s appears twice; nothing "
		      "was imported", lineno, im->local.s, im->domain.s);
	if (r != STORE_DONE)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	return 1;
}

/* make_maildirs - worker w of n creates every n-th Maildir of the list */
static int make_maildirs(struct vctx *c, const struct str *dirs, unsigned w,
			 unsigned n)
{
	size_t i = 0;
	unsigned k = 0;

	while (i < dirs->len) {
		const char *md = dirs->s + i;
		const char *qb = md + strlen(md) + 1;
		const char *qm = qb + strlen(qb) + 1;
		struct quota q = {0, 0};
		int r;

		/* written by import_line() from a checked quota: always digits */
		(void)num_parse(qb, UINT64_MAX, &q.bytes);
		(void)num_parse(qm, UINT64_MAX, &q.msgs);
		i = (size_t)(qm - dirs->s) + strlen(qm) + 1;
		if (k++ % n != w)
			continue;
		r = m_make_maildir(c, md, &q, 0);
		if (r < 0) {
			msg_warn("cannot create %s/%s: %s; nothing was imported",
				 c->root, md, msg_err(r));
			return r;
		}
	}
	return 0;
}

/* make_all_maildirs - run the workers and wait for every one of them */
static void make_all_maildirs(struct vctx *c, const struct str *dirs)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (unsigned)ncpu, w;
	int failed = 0, status;

	fflush(NULL);
	for (w = 0; w < n; w++) {
		pid_t pid = fork();

		if (pid < 0)
			vfail(EX_TEMP, "cannot fork: %s", strerror(errno));
		/* _exit: the child owns nothing the parent must flush */
		if (pid == 0)
			_exit(make_maildirs(c, dirs, w, n) < 0 ? EX_TEMP : 0);
	}
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	if (failed)
		vfail(EX_TEMP, "creating the mailboxes failed; nothing was "
		      "imported");
}

/* m_import - every line of FILE ("-": standard input), or none of them */
unsigned long m_import(struct vctx *c, const char *file)
{
	struct imp im = {STR_INIT, STR_INIT, STR_INIT, STR_INIT, STR_INIT,
			 STR_INIT, STR_INIT, 0, {0, 0}, NULL};
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0, users = 0;
	int dfd;

	if (!f)
		vfail(EX_REFUSED, "cannot open %s: %s", file, strerror(errno));
	if (store_prepare(c->db, "INSERT INTO users(domain_id, local, "
			       "hash, cram, name, quota_bytes, quota_msgs, "
			       "flags, maildir, created, bucket) VALUES (?1, "
			       "?2, ?3, ?4, '', ?5, ?6, 0, ?7, ?9, ?8)", &im.ins) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	m_bulk(c->db, 1);
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (memchr(line, 0, (size_t)n))
			vfail(EX_REFUSED, "line %lu: contains a NUL byte; "
			      "nothing was imported", lineno);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		users += (unsigned long)import_line(c, &im, line, lineno);
	}
	if (ferror(f))
		vfail(EX_TEMP, "cannot read %s: %s", file, strerror(errno));
	store_finalize(im.ins);
	m_bulk(c->db, 0);
	free(line);
	if (f != stdin)
		fclose(f);
	make_all_maildirs(c, &im.dirs);
	/* one flush of every new directory instead of an fsync each */
	dfd = open(c->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || syncfs(dfd) < 0)
		vfail(EX_TEMP, "cannot sync %s: %s", c->root, strerror(errno));
	close(dfd);
	str_free(&im.local);
	str_free(&im.domain);
	str_free(&im.maildir);
	str_free(&im.hash);
	str_free(&im.cram);
	str_free(&im.last_domain);
	str_free(&im.dirs);
	return users;
}
