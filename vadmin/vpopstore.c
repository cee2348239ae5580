/*
 * vpopstore - store an import plan (vpopimport.h): rows, then Maildirs,
 * then COMMIT.
 *
 * The rows go into the one transaction vadmin opened. The Maildirs are
 * made under ROOT/domains/D/USER/Maildir before COMMIT, so that no table
 * can name a missing mailbox (as `vadmin import` does): each message file
 * is hard-linked from the tree when the mail user owns it and both are on
 * one file system (the source keeps its name, nothing is moved: a crash,
 * or a change of mind, leaves the vpopmail tree as it was), else copied
 * (a file of another owner could not be read by the services, a link
 * cannot cross file systems). Nothing is fsynced one by one: one syncfs()
 * makes everything durable before COMMIT.
 *
 * ROOT/domains/D holds the marker VI_MARK from its birth (it is made
 * beside, as VI_MARK.K, and renamed) until after
 * COMMIT: a directory with the marker and no domain row is what a killed
 * import left, and the next import removes it (it holds only links and
 * copies); a directory without it is somebody's mail, and is never
 * touched (vi_root_dir).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "fsx.h"
#include "json.h"
#include "mdquota.h"
#include "name.h"
#include "rcpt.h"
#include "vpopimport.h"

/* vi_root_dir - ROOT/domains/DOMAIN: 0 absent, 1 a killed import's
 * leftover (the marker), -1 a directory that is not ours to replace */
int vi_root_dir(struct vi *v, const char *domain)
{
	struct str p = STR_INIT;
	struct stat st;
	int r = 0;

	if (str_catf(&p, "%s/domains/%s", v->c->root, domain) < 0)
		vfail(EX_TEMP, "out of memory");
	if (lstat(p.s, &st) == 0) {
		r = -1;
		if (S_ISDIR(st.st_mode) && str_cats(&p, "/" VI_MARK) == 0 &&
		    lstat(p.s, &st) == 0)
			r = 1;
	}
	str_free(&p);
	return r;
}

static struct store_stmt *prep(struct vi *v, const char *sql)
{
	struct store_stmt *st = NULL;

	if (store_prepare(v->c->db, sql, &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(v->c->db));
	return st;
}

/* step - run ST once (it was reset and bound), or exit 111 */
static void step(struct vi *v, struct store_stmt *st)
{
	int r = store_step(st);

	if (r != STORE_DONE && r != STORE_ROW)
		vfail(EX_TEMP, "database error: %s", store_errmsg(v->c->db));
	store_reset(st);
}

/* store_users - a domain's row and its users' rows */
static void store_users(struct vi *v, struct vi_domain *d)
{
	struct store_stmt *dom = prep(v, "INSERT INTO domains(name, created) "
				    "VALUES (?, ?)");
	struct store_stmt *ins = prep(v, "INSERT INTO users(domain_id, local, "
				    "hash, cram, name, quota_bytes, "
				    "quota_msgs, flags, maildir, created, "
				    "bucket) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
				    "?, ?, ?)");
	struct str md = STR_INIT;
	size_t i;

	store_bind_text(dom, 1, d->name);
	store_bind_int(dom, 2, (int64_t)time(NULL));
	step(v, dom);
	store_finalize(dom);
	d->id = store_last_id(v->c->db);
	for (i = 0; i < d->nu; i++) {
		struct vi_user *u = &d->u[i];

		md.len = 0;
		if (str_catf(&md, "domains/%s/%s/Maildir", d->name, u->local))
			vfail(EX_TEMP, "out of memory");
		store_bind_int(ins, 1, d->id);
		store_bind_text(ins, 2, u->local);
		store_bind_text(ins, 3, u->hash);
		if (u->cram)
			store_bind_text(ins, 4, u->cram);
		else
			store_bind_null(ins, 4);
		store_bind_text(ins, 5, u->name);
		store_bind_int(ins, 6, (int64_t)u->q.bytes);
		store_bind_int(ins, 7, (int64_t)u->q.msgs);
		store_bind_int(ins, 8, u->flags);
		store_bind_text(ins, 9, md.s);
		store_bind_int(ins, 10, (int64_t)time(NULL));
		store_bind_int(ins, 11, acct_bucket(u->local,
						    strlen(u->local)));
		step(v, ins);
		u->id = store_last_id(v->c->db);
	}
	store_finalize(ins);
	str_free(&md);
	v->domains++;
	v->users += d->nu;
	m_pending(v->c, "cdb", d->name);
}

/* dest - a destination as vadmin stores it: folded, except the local part
 * of an address in a domain not hosted here, which keeps its case (as
 * vmodel.c parse_dest); -EINVAL with *why_r */
static int dest(struct vi *v, const char *in, struct str *out,
		const char **why_r)
{
	struct str l = STR_INIT, d = STR_INIT, real = STR_INIT;
	int r = name_addr(in, &l, &d, why_r), hosted = 0;

	if (r == 0 && !(hosted = m_real_domain(v->c, d.s, &real) != 0))
		r = str_copyb(&l, in, (size_t)(strrchr(in, '@') - in));
	/* vadmin's rule for a stored destination */
	if (r == 0 && (*why_r = m_dest_why(l.s, hosted)) != NULL)
		r = -EINVAL;
	out->len = 0;
	if (r == 0)
		r = str_catf(out, "%s@%s", l.s, d.s);
	if (r == -ENOMEM)
		vfail(EX_TEMP, "out of memory");
	str_free(&l);
	str_free(&d);
	str_free(&real);
	return r;
}

/* good_dest - dest(), or a report line: WHAT (read at PLACE) is not
 * carried */
static int good_dest(struct vi *v, const char *in, struct str *to,
		     const char *place, const char *what)
{
	const char *why = "";

	if (dest(v, in, to, &why) == 0)
		return 1;
	vi_say(v, "%s: %s '%s' is not valid here (it %s); not carried", place,
	       what, in, why);
	return 0;
}

/* store_aliases - the alias rows of a domain */
static void store_aliases(struct vi *v, struct vi_domain *d)
{
	struct store_stmt *st = prep(v, "INSERT INTO aliases(domain_id, "
				     "local, dest) VALUES (?, ?, ?) "
				     "ON CONFLICT DO NOTHING");
	struct str to = STR_INIT;
	size_t i;

	for (i = 0; i < d->na; i++) {
		if (!good_dest(v, d->a[i].dest, &to, d->a[i].place,
			       "destination"))
			continue;
		store_bind_int(st, 1, d->id);
		store_bind_text(st, 2, d->a[i].local);
		store_bind_text(st, 3, to.s);
		step(v, st);
		v->aliases += (unsigned long)store_changes(v->c->db);
	}
	store_finalize(st);
	str_free(&to);
}

/* no_wide_aliases - an alias with more destinations than vdeliver
 * delivers to (RCPT_TARGETS_MAX) is not carried: every message to it
 * would bounce, and vadmin alias add refuses one too */
static void no_wide_aliases(struct vi *v, struct vi_domain *d)
{
	struct store_stmt *st = prep(v, "SELECT local, count(*) FROM aliases "
				     "WHERE domain_id = ? GROUP BY local "
				     "HAVING count(*) > ?");
	struct store_stmt *del;
	struct str wide = STR_INIT;	/* the names, each NUL-ended */
	size_t i;
	int64_t n;

	store_bind_int(st, 1, d->id);
	store_bind_int(st, 2, RCPT_TARGETS_MAX);
	while (store_step(st) == STORE_ROW) {
		const char *local = (const char *)store_column_text(st, 0);

		n = store_column_int(st, 1);
		vi_say(v, "%s/.qmail-%s: alias %s@%s has %lld destinations; "
		       "vdeliver delivers to at most %d; not carried", d->rel,
		       local, local, d->name, (long long)n, RCPT_TARGETS_MAX);
		if (str_cats(&wide, local) || str_catc(&wide, 0))
			vfail(EX_TEMP, "out of memory");
		v->aliases -= (unsigned long)n;
	}
	store_finalize(st);
	/* deleted once the query is done with the table */
	del = prep(v, "DELETE FROM aliases WHERE domain_id = ? AND local = ?");
	for (i = 0; i < wide.len; i += strlen(wide.s + i) + 1) {
		store_reset(del);
		store_bind_int(del, 1, d->id);
		store_bind_text(del, 2, wide.s + i);
		step(v, del);
	}
	store_finalize(del);
	str_free(&wide);
}

/* store_forwards - the users' own .qmail forwards */
static void store_forwards(struct vi *v, struct vi_domain *d)
{
	struct store_stmt *st = prep(v, "INSERT INTO forwards(user_id, dest, keep) "
				   "VALUES (?, ?, ?)");
	struct str to = STR_INIT, who = STR_INIT;
	size_t i;

	for (i = 0; i < d->nu; i++) {
		struct vi_user *u = &d->u[i];

		if (!u->fwd)
			continue;
		who.len = 0;
		if (str_catf(&who, "%s@%s", u->local, d->name) < 0)
			vfail(EX_TEMP, "out of memory");
		if (!good_dest(v, u->fwd, &to, who.s, "forward"))
			continue;
		store_bind_int(st, 1, u->id);
		store_bind_text(st, 2, to.s);
		store_bind_int(st, 3, u->keep);
		step(v, st);
		v->forwards++;
	}
	store_finalize(st);
	str_free(&to);
	str_free(&who);
}

/* store_catchall - .qmail-default's vdelivermail argument; one in the
 * same domain must be a mailbox or an alias (vadmin's catchall rule) */
static void store_catchall(struct vi *v, struct vi_domain *d)
{
	struct str to = STR_INIT;
	const char *why = "";
	struct store_stmt *st;

	if (!d->catchall)
		return;
	if (!strcmp(d->catchall, "delete")) {
		if (str_copys(&to, "delete") < 0)
			vfail(EX_TEMP, "out of memory");
	} else if (dest(v, d->catchall, &to, &why) < 0) {
		vi_say(v, "%s/.qmail-default: catch-all '%s' is not valid here "
		       "(it %s); not carried", d->rel, d->catchall, why);
		goto out;
	} else if (m_catchall_self(v->c, d->id, to.s)) {
		vi_say(v, "%s/.qmail-default: catch-all %s is neither a mailbox "
		       "nor an alias; not carried", d->rel, to.s);
		goto out;
	}
	st = prep(v, "UPDATE domains SET catchall = ? WHERE id = ?");
	store_bind_text(st, 1, to.s);
	store_bind_int(st, 2, d->id);
	step(v, st);
	store_finalize(st);
	v->catchalls++;
out:
	str_free(&to);
}

/* store_alias_domains - users/assign's alias domains of imported ones */
static void store_alias_domains(struct vi *v)
{
	struct store_stmt *st = prep(v, "INSERT INTO domains(name, alias_of, "
				   "created) VALUES (?, ?, ?)");
	size_t i;

	for (i = 0; i < v->nad; i++) {
		if (m_domain_id(v->c, v->ad[i].name, NULL)) {
			vi_say(v, "alias domain %s: hosted here already; not "
			       "carried", v->ad[i].name);
			continue;
		}
		store_bind_text(st, 1, v->ad[i].name);
		store_bind_int(st, 2, m_domain_id(v->c, v->ad[i].real,
						      NULL));
		store_bind_int(st, 3, (int64_t)time(NULL));
		step(v, st);
		v->adoms++;
	}
	store_finalize(st);
}

/* vi_store - every row of the plan, in the open transaction */
void vi_store(struct vi *v)
{
	size_t i;

	m_bulk(v->c->db, 1);
	for (i = 0; i < v->nd; i++)
		if (!v->d[i].skip)
			store_users(v, &v->d[i]);
	m_bulk(v->c->db, 0);
	/* every domain, alias domain and user is in: destinations can be
	 * checked (one in an alias domain is one of ours) */
	store_alias_domains(v);
	for (i = 0; i < v->nd; i++) {
		if (v->d[i].skip)
			continue;
		store_aliases(v, &v->d[i]);
		no_wide_aliases(v, &v->d[i]);
		store_forwards(v, &v->d[i]);
		store_catchall(v, &v->d[i]);
	}
	m_pending(v->c, "global", "");
}

/* copy_file - NAME from SFD to DFD, with its times; 1 copied, 0 not
 * readable (said), or a negative errno code */
static int copy_file(struct vi *v, int sfd, int dfd, const char *name,
		     const struct stat *st, const char *place)
{
	char buf[65536];	/* a copy buffer: nothing is parsed */
	struct timespec ts[2] = {st->st_atim, st->st_mtim};
	int in = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
			O_CLOEXEC), out, r = 0;
	ssize_t n;

	if (in < 0 && errno == EACCES) {
		vi_say(v, "%s/%s: cannot be read by the mail user; not carried",
		       place, name);
		return 0;
	}
	if (in < 0)
		return -errno;
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		     O_CLOEXEC, 0600);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while (r == 0 && (n = read(in, buf, sizeof buf)) != 0) {
		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0)
			r = fsx_write_all(out, buf, (size_t)n);
	}
	if (r == 0 && futimens(out, ts) < 0)
		r = -errno;
	if (close(out) < 0 && r == 0)
		r = -errno;
	close(in);
	return r < 0 ? r : 1;
}

/* carry_file - one file of a Maildir: a hard link when ours, else a copy */
static int carry_file(struct vi *v, int sfd, int dfd, const char *name,
		      const struct stat *st, const char *place)
{
	int r;

	if (st->st_uid == geteuid()) {
		if (linkat(sfd, name, dfd, name, 0) == 0) {
			v->linked++;
			/* one inode: the mode of the source changes too, to
			 * the mode its owner's files should have anyway */
			if ((st->st_mode & 07777) != 0600 &&
			    fchmodat(dfd, name, 0600, 0) < 0)
				return -errno;
			return 1;
		}
		if (errno != EXDEV && errno != EPERM && errno != EMLINK)
			return -errno;
	}
	r = copy_file(v, sfd, dfd, name, st, place);
	if (r > 0)
		v->copied++;
	return r;
}

static int carry_tree(struct vi *v, int sfd, int dfd, struct str *place,
		      int depth, int msgdir);

/* carry_dir - a directory of a Maildir: made; tmp/ stays empty (what is
 * there is a delivery that never finished) */
static int carry_dir(struct vi *v, int sfd, int dfd, const char *name,
		     struct str *place, int depth)
{
	size_t mark = place->len;
	int s, d, r;

	if (depth >= 2) {
		vi_say(v, "%s/%s: deeper than a Maildir++ folder; not carried",
		       place->s, name);
		return 0;
	}
	if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (!strcmp(name, "tmp"))
		return 0;
	s = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0 && errno == EACCES) {
		vi_say(v, "%s/%s: cannot be read by the mail user; not carried",
		       place->s, name);
		return 0;
	}
	d = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0 || d < 0) {
		r = -errno;
		if (s >= 0)
			close(s);
		return r;
	}
	r = str_catf(place, "/%s", name);
	if (r == 0)
		r = carry_tree(v, s, d, place, depth + 1,
			       !strcmp(name, "cur") || !strcmp(name, "new"));
	str_trunc(place, mark);
	close(s);
	close(d);
	return r;
}

/* carry_tree - the entries of one Maildir directory (depth 0: the
 * Maildir, 1: cur/new/tmp and the .Folders, 2: a folder's cur/new/tmp) */
static int carry_tree(struct vi *v, int sfd, int dfd, struct str *place,
		      int depth, int msgdir)
{
	int fd = dup(sfd), r = 0;
	struct dirent *e;
	struct stat st;
	DIR *dp;

	if (fd < 0)
		return -errno;
	if (!(dp = fdopendir(fd))) {
		r = -errno;
		close(fd);
		return r;
	}
	while (r >= 0 && (errno = 0, e = readdir(dp))) {
		const char *n = e->d_name;

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if (fstatat(sfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
		} else if (S_ISDIR(st.st_mode)) {
			r = carry_dir(v, sfd, dfd, n, place, depth);
		} else if (S_ISREG(st.st_mode)) {
			if (depth == 0 && !strcmp(n, "maildirsize"))
				continue;	/* see carry_quota */
			r = carry_file(v, sfd, dfd, n, &st, place->s);
			if (r > 0 && msgdir)
				v->msgs++;
		} else {
			vi_say(v, "%s/%s: %s; not followed", place->s, n,
			       S_ISLNK(st.st_mode) ? "a symbolic link" :
			       "not a regular file");
		}
	}
	if (r >= 0 && errno)
		r = -errno;
	closedir(dp);
	return r < 0 ? r : 0;
}

/* carry_quota - maildirsize: kept when its limits are the user's and it
 * parses, else counted afresh; none without a quota (vpopmail removes it
 * for NOQUOTA too) */
static int carry_quota(struct vi *v, int sfd, int mfd, const char *maildir,
		       const struct quota *q)
{
	struct str buf = STR_INIT;
	struct mdq m;
	int r = -ENOENT, fd;

	if (!q->bytes && !q->msgs)
		return 0;
	if (sfd >= 0 && fsx_read_at(sfd, "maildirsize", &buf, 1u << 20) == 0 &&
	    mdq_parse(buf.s, buf.len, &m) == 0 && m.limit.bytes == q->bytes &&
	    m.limit.msgs == q->msgs) {
		fd = openat(mfd, "maildirsize", O_WRONLY | O_CREAT | O_EXCL |
			    O_NOFOLLOW | O_CLOEXEC, 0600);
		r = fd < 0 ? -errno : fsx_write_all(fd, buf.s, buf.len);
		if (fd >= 0 && close(fd) < 0 && r == 0)
			r = -errno;
	}
	str_free(&buf);
	if (r == -ENOENT || r == 0)
		r = r == 0 ? 0 : m_write_maildirsize(v->c, maildir, q);
	return r;
}

/* source_maildir - the user's Maildir in the tree, or -1 and a report
 * line (the user gets an empty Maildir) */
static int source_maildir(struct vi *v, struct vi_domain *d,
			  struct vi_user *u)
{
	int ufd, fd;

	if (!u->rel)
		return -1;	/* vpopmail makes the directory at first mail */
	ufd = vi_open_below(d->fd, u->rel);
	fd = ufd < 0 ? ufd : openat(ufd, "Maildir", O_RDONLY | O_DIRECTORY |
				    O_NOFOLLOW | O_CLOEXEC);
	if (ufd >= 0 && fd < 0)
		fd = -errno;
	if (ufd >= 0)
		close(ufd);
	if (fd == -ELOOP || fd == -ENOTDIR)
		vi_say(v, "%s/%s: %s@%s: the directory or its Maildir is a "
		       "symbolic link, not followed: its mail is not carried "
		       "(an empty Maildir was made)", d->rel, u->rel, u->local,
		       d->name);
	else if (fd == -ENOENT)
		vi_say(v, "%s/%s: %s@%s: no Maildir there; an empty one was "
		       "made", d->rel, u->rel, u->local, d->name);
	else if (fd < 0)
		vi_say(v, "%s/%s: %s@%s: cannot be read (%s); its mail is not "
		       "carried (an empty Maildir was made)", d->rel, u->rel,
		       u->local, d->name, msg_err(fd));
	return fd;
}

/* carry_user - USER/Maildir below DDFD from the tree */
static void carry_user(struct vi *v, struct vi_domain *d, int ddfd,
		       struct vi_user *u)
{
	static const char *const sub[] = {"cur", "new", "tmp"};
	struct str place = STR_INIT, md = STR_INIT;
	int ufd, mfd = -1, sfd, r = 0;
	unsigned i;

	if (mkdirat(ddfd, u->local, 0700) < 0 ||
	    (ufd = openat(ddfd, u->local, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			  O_CLOEXEC)) < 0 ||
	    mkdirat(ufd, "Maildir", 0700) < 0 ||
	    (mfd = openat(ufd, "Maildir", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			  O_CLOEXEC)) < 0)
		vfail(EX_TEMP, "cannot create %s/domains/%s/%s/Maildir: %s; "
		      "nothing was imported", v->c->root, d->name, u->local,
		      strerror(errno));
	close(ufd);
	sfd = source_maildir(v, d, u);
	if (str_catf(&place, "%s/%s/Maildir", d->rel, u->rel ? u->rel : "") ||
	    str_catf(&md, "domains/%s/%s/Maildir", d->name, u->local))
		vfail(EX_TEMP, "out of memory");
	if (sfd >= 0)
		r = carry_tree(v, sfd, mfd, &place, 0, 0);
	for (i = 0; r == 0 && i < 3; i++)
		if (mkdirat(mfd, sub[i], 0700) < 0 && errno != EEXIST)
			r = -errno;
	if (r == 0)
		r = carry_quota(v, sfd, mfd, md.s, &u->q);
	if (r < 0)
		vfail(EX_TEMP, "cannot carry %s/%s into %s/%s: %s; nothing was "
		      "imported", v->dir, place.s, v->c->root, md.s,
		      msg_err(r));
	if (sfd >= 0)
		close(sfd);
	close(mfd);
	str_free(&place);
	str_free(&md);
}

/* gone - remove PATH, left by a killed import, or exit 111 */
static void gone(const char *path)
{
	int r = fsx_rmtree(path);

	if (r < 0 && r != -ENOENT)
		vfail(EX_TEMP, "cannot remove %s, left by a killed import: %s",
		      path, msg_err(r));
}

/* unborn - remove ROOT/domains/VI_MARK.N, directories a killed import
 * was making (no domain begins with a dot, so none is anybody else's) */
static void unborn(struct vi *v)
{
	struct str p = STR_INIT;
	struct dirent *de;
	DIR *dir;

	if (str_catf(&p, "%s/domains", v->c->root) < 0)
		vfail(EX_TEMP, "out of memory");
	dir = opendir(p.s);
	while (dir && (de = readdir(dir)) != NULL) {
		if (strncmp(de->d_name, VI_MARK ".", sizeof VI_MARK))
			continue;
		p.len = 0;
		if (str_catf(&p, "%s/domains/%s", v->c->root, de->d_name) < 0)
			vfail(EX_TEMP, "out of memory");
		gone(p.s);
	}
	if (dir)
		closedir(dir);
	str_free(&p);
}

/* domain_dir - ROOT/domains/D with its marker, durable before any
 * content; a killed import's leftover is moved aside and removed first
 * (and unborn() removed the others). It is made as ROOT/domains/VI_MARK.K (K its place
 * in the plan: a fixed length, where D may take 253 of NAME_MAX's 255
 * bytes) and renamed into place with its marker inside: made in place, a
 * kill between the mkdir and the marker left a directory no import would
 * touch */
static int domain_dir(struct vi *v, struct vi_domain *d, size_t k)
{
	struct str p = STR_INIT, tmp = STR_INIT;
	int fd, mk;

	if (str_catf(&p, "%s/domains/%s", v->c->root, d->name) < 0 ||
	    str_catf(&tmp, "%s/domains/" VI_MARK ".%zu", v->c->root, k) < 0)
		vfail(EX_TEMP, "out of memory");
	/* a leftover goes out of the way in one rename, then is removed:
	 * removed in place, a kill part way left it without its marker */
	if (vi_root_dir(v, d->name) == 1) {
		if (rename(p.s, tmp.s) < 0)
			vfail(EX_TEMP, "cannot move %s, left by a killed "
			      "import: %s", p.s, strerror(errno));
		gone(tmp.s);
	}
	if (mkdir(tmp.s, 0700) < 0 ||
	    (fd = open(tmp.s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		       O_CLOEXEC)) < 0)
		vfail(EX_TEMP, "cannot create %s: %s; nothing was imported",
		      tmp.s, strerror(errno));
	mk = openat(fd, VI_MARK, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
	if (mk < 0 || close(mk) < 0 || fsync(fd) < 0 ||
	    rename(tmp.s, p.s) < 0 || fsx_fsync_parent(p.s) < 0)
		vfail(EX_TEMP, "cannot create %s/" VI_MARK ": %s; nothing was "
		      "imported", p.s, strerror(errno));
	str_free(&p);
	str_free(&tmp);
	return fd;
}

/* vi_files - every imported user's Maildir, then one syncfs */
void vi_files(struct vi *v)
{
	size_t i, j;
	int fd;

	unborn(v);
	for (i = 0; i < v->nd; i++) {
		if (v->d[i].skip)
			continue;
		fd = domain_dir(v, &v->d[i], i);
		for (j = 0; j < v->d[i].nu; j++)
			carry_user(v, &v->d[i], fd, &v->d[i].u[j]);
		close(fd);
	}
	m_syncfs(v->c, "; nothing was imported");
}

/* vi_done - after COMMIT: the markers go, the summary is printed */
void vi_done(struct vi *v)
{
	struct str p = STR_INIT;
	size_t i;

	for (i = 0; i < v->nd; i++) {
		if (v->d[i].skip)
			continue;
		p.len = 0;
		if (str_catf(&p, "%s/domains/%s/" VI_MARK, v->c->root,
			     v->d[i].name) < 0)
			vfail(EX_TEMP, "out of memory");
		(void)unlink(p.s);	/* harmless if it stays */
	}
	str_free(&p);
	if (!v->c->json) {
		printf("imported %lu domains, %lu alias domains, %lu users, "
		       "%lu aliases, %lu forwards, %lu catch-alls, %lu "
		       "messages (%lu files linked, %lu copied); %lu not "
		       "carried\n", v->domains, v->adoms, v->users, v->aliases,
		       v->forwards, v->catchalls, v->msgs, v->linked,
		       v->copied, v->said);
		return;
	}
	printf("{\"domains\":%lu,\"alias_domains\":%lu,\"users\":%lu,"
	       "\"aliases\":%lu,\"forwards\":%lu,\"catchalls\":%lu,"
	       "\"messages\":%lu,\"linked\":%lu,\"copied\":%lu,"
	       "\"not_carried\":[", v->domains, v->adoms, v->users,
	       v->aliases, v->forwards, v->catchalls, v->msgs, v->linked,
	       v->copied);
	for (i = 0; i < v->json.len; i += strlen(v->json.s + i) + 1) {
		printf("%s", i ? "," : "");
		json_put_str(v->json.s + i, strlen(v->json.s + i));
	}
	printf("]}\n");
}

/* vpi_run - `vadmin import-vpopmail DIR [--assign FILE] [--valias FILE]`
 * on the opened root: read, store, carry, commit, regenerate */
int vpi_run(struct vctx *c, const char *dir, const char *assign,
	    const char *valias)
{
	struct vi v;

	memset(&v, 0, sizeof v);
	v.c = c;
	v.dir = dir;
	v.dirfd = v.domfd = -1;
	m_begin(c);
	vi_read(&v, assign, valias);
	vi_store(&v);
	vi_files(&v);
	m_commit(c);
	gen_run_pending(c);
	vlog(c, "import-vpopmail %s: %lu domains, %lu users", dir, v.domains,
	     v.users);
	vi_done(&v);
	vi_free(&v);
	return EX_DONE;
}
