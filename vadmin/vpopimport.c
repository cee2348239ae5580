/*
 * vpopimport - read a vpopmail tree into an import plan (vpopimport.h).
 *
 * DIR is vpopmail's home (~vpopmail): DIR/domains/D, or DIR/domains/H/D
 * when vpopmail hashed its domains, holds `vpasswd`, the users'
 * directories (hashed too in big domains: the vpasswd DIR field says
 * where) and the `.qmail-*` files. Nothing in DIR is ever written: every
 * file is opened read-only, and every directory is opened one component
 * at a time with O_NOFOLLOW, so a symbolic link planted in the tree leads
 * nowhere outside it. Paths written in the tree's files (a user's DIR
 * field, a Maildir in a .qmail line, a catch-all's path) are absolute
 * paths of the old server; they are used only through the part below the
 * domain's directory (vpp_rel), which must hold no `..`.
 *
 * What cannot be carried is said on stdout, one `not carried:` line each
 * (vi_say), and the import goes on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fsx.h"
#include "name.h"
#include "pw.h"
#include "vpopimport.h"
#include "vpopparse.h"

#define FILE_MAX (256u << 20)	/* vpasswd of a million users is ~150 MB */
#define QMAIL_MAX (1u << 20)

/* vi_say - one thing not carried: a `not carried:` line on stdout, or a
 * string of the JSON report */
void vi_say(struct vi *v, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;
	size_t i;
	int r;

	va_start(ap, fmt);
	r = str_vcatf(&line, fmt, ap);
	va_end(ap);
	if (r < 0)
		vfail(EX_TEMP, "out of memory");
	/* the tree's bytes reach a terminal: no control byte passes */
	for (i = 0; i < line.len; i++)
		if ((unsigned char)line.s[i] < 0x20 || line.s[i] == 0x7f)
			line.s[i] = '?';
	v->said++;
	if (v->c->json) {
		/* NUL-separated; vi_done prints them as JSON strings */
		if (str_catb(&v->json, line.s, line.len + 1) < 0)
			vfail(EX_TEMP, "out of memory");
	} else {
		printf("not carried: %s\n", line.s);
	}
	str_free(&line);
}

/* vi_strdup - a copy, or exit 111 */
char *vi_strdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		vfail(EX_TEMP, "out of memory");
	return p;
}

/* vi_grow - room for element N of an array of CAP elements of SIZE */
void *vi_grow(void *p, size_t *cap, size_t n, size_t size)
{
	size_t nc;

	if (n < *cap)
		return p;
	nc = *cap ? *cap * 2 : 16;
	if (nc < *cap || nc > SIZE_MAX / size)
		vfail(EX_TEMP, "out of memory");
	p = realloc(p, nc * size);
	if (!p)
		vfail(EX_TEMP, "out of memory");
	*cap = nc;
	return p;
}

/* next_line - the next line of BUF from *POS, NUL-terminated in place;
 * NULL at the end; *nul_r set when the line held a NUL byte */
static char *next_line(struct str *buf, size_t *pos, int *nul_r)
{
	char *s, *nl;
	size_t n;

	if (*pos >= buf->len)
		return NULL;
	s = buf->s + *pos;
	nl = memchr(s, '\n', buf->len - *pos);
	n = nl ? (size_t)(nl - s) : buf->len - *pos;
	s[n] = 0;	/* buf->s[len] is the str's own NUL */
	*pos += n + 1;
	*nul_r = strlen(s) != n;
	return s;
}

/* vi_open_below - a directory REL ("0/bob") below DIRFD, one component
 * at a time and never through a symbolic link (-ELOOP, -ENOTDIR) */
int vi_open_below(int dirfd, const char *rel)
{
	struct str comp = STR_INIT;
	const char *p = rel;
	int fd = dup(dirfd), nfd;

	while (fd >= 0 && *p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if (str_copyb(&comp, p, n) < 0) {
			close(fd);
			fd = -1;
			errno = ENOMEM;
			break;
		}
		nfd = openat(fd, comp.s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		close(fd);
		fd = nfd;
		p += n + (e ? 1 : 0);
	}
	str_free(&comp);
	return fd < 0 ? -errno : fd;
}

/* add_domain - a directory with a vpasswd: a domain of the plan */
static void add_domain(struct vi *v, const char *name, const char *rel)
{
	struct str dom = STR_INIT;
	struct vi_domain *d;
	const char *why = "";
	size_t i;
	int fd;

	if (name_domain(name, strlen(name), &dom, &why) < 0) {
		vi_say(v, "%s: '%s' is not a domain name here (it %s)", rel,
		       name, why);
		return;
	}
	for (i = 0; i < v->nd; i++)
		if (!strcmp(v->d[i].name, dom.s)) {
			vi_say(v, "%s: domain %s twice in the tree; the one in "
			       "%s is imported", rel, dom.s, v->d[i].rel);
			str_free(&dom);
			return;
		}
	fd = vi_open_below(v->domfd, rel + strlen("domains/"));
	if (fd < 0) {
		vi_say(v, "%s: cannot be opened by the mail user (%s); domain "
		       "not imported", rel, msg_err(fd));
		str_free(&dom);
		return;
	}
	v->d = vi_grow(v->d, &v->capd, v->nd, sizeof *v->d);
	d = &v->d[v->nd++];
	memset(d, 0, sizeof *d);
	d->name = vi_strdup(dom.s);
	d->rel = vi_strdup(rel);
	d->fd = fd;
	str_free(&dom);
}

/* has_vpasswd - whether NAME below FD is a directory holding vpasswd:
 * 1, 0, or -EACCES when the mail user may not look */
static int has_vpasswd(int fd, const char *name)
{
	struct stat st;
	struct str p = STR_INIT;
	int r;

	if (str_catf(&p, "%s/vpasswd", name) < 0)
		vfail(EX_TEMP, "out of memory");
	r = fstatat(fd, p.s, &st, AT_SYMLINK_NOFOLLOW) == 0 ?
	    S_ISREG(st.st_mode) : errno == EACCES ? -EACCES : 0;
	str_free(&p);
	return r;
}

/* scan_dir - the domains in DIR/domains/SUB (SUB "" or a hash bucket) */
static void scan_dir(struct vi *v, const char *sub)
{
	struct str rel = STR_INIT;
	int fd = *sub ? vi_open_below(v->domfd, sub) : dup(v->domfd), k;
	struct dirent *e;
	struct stat st;
	DIR *dp;

	if (fd == -1 && !*sub)
		fd = -errno;	/* dup's failure, as vi_open_below's */
	if (fd < 0 || !(dp = fdopendir(fd))) {
		int err = fd < 0 ? -fd : errno;

		if (!*sub)
			vfail(EX_TEMP, "cannot read %s/domains: %s", v->dir,
			      strerror(err));
		vi_say(v, "domains/%s: cannot be read by the mail user (%s); "
		       "its domains are not imported", sub, strerror(err));
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((errno = 0, e = readdir(dp))) {
		if (e->d_name[0] == '.')
			continue;	/* ., .., .dir-control */
		rel.len = 0;
		if (str_catf(&rel, "domains/%s%s%s", sub, *sub ? "/" : "",
			     e->d_name) < 0)
			vfail(EX_TEMP, "out of memory");
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			vfail(EX_TEMP, "cannot stat %s/%s: %s", v->dir, rel.s,
			      strerror(errno));
		if (S_ISLNK(st.st_mode))
			vi_say(v, "%s: a symbolic link; not followed", rel.s);
		else if (!S_ISDIR(st.st_mode))
			continue;
		else if ((k = has_vpasswd(fd, e->d_name)) < 0)
			vi_say(v, "%s: cannot be read by the mail user; not "
			       "imported", rel.s);
		else if (k)
			add_domain(v, e->d_name, rel.s);
		else if (!*sub && strlen(e->d_name) == 1)
			scan_dir(v, e->d_name);	/* vpopmail's domain hash */
		else
			vi_say(v, "%s: no vpasswd in it; not a domain", rel.s);
	}
	if (errno)
		vfail(EX_TEMP, "cannot read %s/domains/%s: %s", v->dir, sub,
		      strerror(errno));
	closedir(dp);
	str_free(&rel);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct vi_domain *)a)->name,
		      ((const struct vi_domain *)b)->name);
}

/* find_domain - the planned domain of that (folded) name, or NULL */
static struct vi_domain *find_domain(struct vi *v, const char *name)
{
	size_t i;

	for (i = 0; i < v->nd; i++)
		if (!strcmp(v->d[i].name, name))
			return &v->d[i];
	return NULL;
}

/* by_local - users by name, then by their line in vpasswd */
static int by_local(const void *a, const void *b)
{
	const struct vi_user *x = a, *y = b;
	int r = strcmp(x->local, y->local);

	return r ? r : (x->line > y->line) - (x->line < y->line);
}

/* find_user - a user of a planned domain (sorted by dedup_users), or NULL */
static const struct vi_user *find_user(const struct vi_domain *d,
				      const char *local)
{
	for (size_t lo = 0, hi = d->nu; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(d->u[mid].local, local);

		if (r == 0)
			return &d->u[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* free_user - the strings of one planned user */
static void free_user(struct vi_user *u)
{
	free(u->local);
	free(u->rel);
	free(u->hash);
	free(u->cram);
	free(u->name);
	free(u->fwd);
}

/* dedup_users - sort a domain's users (find_user searches them) and keep
 * the first line of a name that vpasswd has twice */
static void dedup_users(struct vi *v, struct vi_domain *d)
{
	size_t i, k = 0;

	if (d->nu)
		qsort(d->u, d->nu, sizeof *d->u, by_local);
	for (i = 0; i < d->nu; i++) {
		if (k && !strcmp(d->u[k - 1].local, d->u[i].local)) {
			vi_say(v, "%s/vpasswd:%lu: user %s@%s appears twice; the "
			       "first (line %lu) is imported", d->rel,
			       d->u[i].line, d->u[i].local, d->name,
			       d->u[k - 1].line);
			free_user(&d->u[i]);
			continue;
		}
		d->u[k++] = d->u[i];
	}
	d->nu = k;
}

/* user_secret - the password of a vpasswd line: the hash kept when it is
 * $1$, $6$ or $y$ (the clear field then gives only the CRAM-MD5 context,
 * as vpopmail's CRAM-MD5 used it); else the clear field hashed with
 * control/passwordscheme; else no login ("!") and a report line */
static void user_secret(struct vi *v, struct vi_user *u,
			const struct vpp_user *p, const char *who)
{
	const char *scheme;
	int kind = vpp_hash(p->pass, &scheme);
	int clear = p->clear && *p->clear && !vpassword_problem(p->clear);
	struct str h = STR_INIT, cram = STR_INIT;
	int r = 0;

	if (p->clear && *p->clear && !clear)
		vi_say(v, "%s: the clear-text password is not carried: %s", who,
		       vpassword_problem(p->clear));
	if (kind == VPP_PW_KEEP) {
		r = str_copys(&h, p->pass);
	} else if (clear) {
		r = pw_hash(p->clear, v->scheme.s, &h);
		if (r == -EINVAL)
			vfail(EX_TEMP, "control/passwordscheme says '%s'; use "
			      "yescrypt or sha512crypt", v->scheme.s);
	} else {
		r = str_copys(&h, "!");
		vi_say(v, "%s: password: a%s %s hash%s cannot be kept and "
		       "there is no usable clear-text field; imported with login "
		       "off: give a password with 'vadmin passwd %s'", who,
		       strchr("aeiouAEIOU", *scheme) ? "n" : "", scheme,
		       kind == VPP_PW_EMPTY ? " (none)" : "", who);
	}
	if (r == 0 && clear)
		r = pw_cram_context(p->clear, strlen(p->clear), &cram);
	if (r < 0)
		vfail(EX_TEMP, "cannot hash the password of %s: %s", who,
		      msg_err(r));
	u->hash = vi_strdup(h.s);
	u->cram = cram.len ? vi_strdup(cram.s) : NULL;
	str_wipe(&h);
	str_wipe(&cram);
}

/* user_fields - quota, flags and name of a vpasswd line */
static void user_fields(struct vi *v, struct vi_user *u,
			const struct vpp_user *p, const char *who)
{
	unsigned long dropped, bit;
	const unsigned char *g;

	if (vpp_quota(p->quota, &u->q) < 0)
		vi_say(v, "%s: quota '%s' not understood; imported without a "
		       "quota", who, p->quota);
	if (vpp_flags(p->gid, &u->flags, &dropped) < 0) {
		vi_say(v, "%s: flags field '%s' is not a number; no flag "
		       "carried", who, p->gid);
		u->flags = 0;
		dropped = 0;
	}
	for (bit = 1; dropped; bit <<= 1) {
		if (!(dropped & bit))
			continue;
		dropped &= ~bit;
		if (vpp_flag_name(bit))
			vi_say(v, "%s: flag %s has no meaning here", who,
			       vpp_flag_name(bit));
		else
			vi_say(v, "%s: unknown flag bit 0x%lx", who, bit);
	}
	for (g = (const unsigned char *)p->gecos; *g; g++)
		if (*g < 0x20 || *g == 0x7f)
			break;
	if (*g || strlen(p->gecos) > 256)
		vi_say(v, "%s: the name (gecos) field is not one short line; "
		       "not carried", who);
	u->name = vi_strdup(*g || strlen(p->gecos) > 256 ? "" : p->gecos);
}

/* user_line - one vpasswd line into the plan, or a report line */
static void user_line(struct vi *v, struct vi_domain *d, char *line,
		      const char *place, unsigned long lineno)
{
	struct str local = STR_INIT, rel = STR_INIT, who = STR_INIT;
	struct vpp_user p;
	struct vi_user *u;
	const char *why = "";
	int r;

	if (vpp_passwd(line, &p, &why) < 0) {
		vi_say(v, "%s: the line %s; user not imported", place, why);
		return;
	}
	if (name_local(p.name, strlen(p.name), &local, &why) < 0 ||
	    (why = name_receivable(local.s, local.len)) != NULL) {
		vi_say(v, "%s: user name '%s' is not valid here (it %s); not "
		       "imported", place, p.name, why);
		goto out;
	}
	if (str_catf(&who, "%s@%s", local.s, d->name) < 0)
		vfail(EX_TEMP, "out of memory");
	r = *p.dir ? vpp_rel(p.dir, d->rel, &rel) : 0;
	if (r < 0) {
		vi_say(v, "%s: %s: directory '%s' %s; user not imported",
		       place, who.s, p.dir, r == -ENOENT ? "is outside the "
		       "domain's directory" : "has an empty, '.' or '..' "
		       "component (a path traversal)");
		goto out;
	}
	d->u = vi_grow(d->u, &d->capu, d->nu, sizeof *d->u);
	u = &d->u[d->nu++];
	memset(u, 0, sizeof *u);
	u->local = vi_strdup(local.s);
	u->line = lineno;
	u->rel = *p.dir ? vi_strdup(rel.s) : NULL;
	user_fields(v, u, &p, who.s);
	user_secret(v, u, &p, who.s);
out:
	str_free(&local);
	str_free(&rel);
	str_free(&who);
}

/* read_vpasswd - every user of a domain */
static void read_vpasswd(struct vi *v, struct vi_domain *d)
{
	struct str buf = STR_INIT, place = STR_INIT;
	unsigned long n = 0;
	size_t pos = 0;
	char *line;
	int nul, r = fsx_read_at(d->fd, "vpasswd", &buf, FILE_MAX);

	if (r < 0) {
		vi_say(v, "%s/vpasswd: cannot be read (%s); domain not "
		       "imported", d->rel, msg_err(r));
		d->skip = 1;
		return;
	}
	while ((line = next_line(&buf, &pos, &nul))) {
		place.len = 0;
		if (str_catf(&place, "%s/vpasswd:%lu", d->rel, ++n) < 0)
			vfail(EX_TEMP, "out of memory");
		if (nul)
			vi_say(v, "%s: holds a NUL byte; user not imported",
			       place.s);
		else if (*line && *line != '\r')
			user_line(v, d, line, place.s, n);
	}
	dedup_users(v, d);
	str_wipe(&buf);	/* clear-text passwords */
	str_free(&place);
}

/* path_user - the address of the user whose Maildir (or directory) an
 * old absolute PATH names, in any planned domain */
static int path_user(struct vi *v, const char *path, struct str *addr)
{
	struct str rel = STR_INIT;
	const struct vi_user *u = NULL;
	const char *base;
	size_t i, j;

	for (i = 0; i < v->nd && !u; i++) {
		const struct vi_domain *d = &v->d[i];

		if (vpp_rel(path, d->rel, &rel) < 0)
			continue;
		if (rel.len > 8 && !strcmp(rel.s + rel.len - 8, "/Maildir"))
			str_trunc(&rel, rel.len - 8);
		/* vpopmail names a user's directory after the user: look
		 * that name up first, scan only when it was moved */
		base = strrchr(rel.s, '/');
		u = find_user(d, base ? base + 1 : rel.s);
		if (u && (!u->rel || !str_eqs(&rel, u->rel)))
			u = NULL;
		for (j = 0; j < d->nu && !u; j++)
			if (d->u[j].rel && str_eqs(&rel, d->u[j].rel))
				u = &d->u[j];
		if (u && str_catf(addr, "%s@%s", u->local, d->name) < 0)
			vfail(EX_TEMP, "out of memory");
	}
	str_free(&rel);
	return u != NULL;
}

/* line_dest - the destination of one .qmail line, or 0 and a report
 * line; OWN: the address of the user whose own .qmail it is, whose
 * Maildir there means "keep a copy" (2) */
static int line_dest(struct vi *v, char *line, const char *place,
		     const char *own, struct str *dest)
{
	char *arg;
	int k = vpp_qmail_line(line, &arg);

	str_trunc(dest, 0);
	switch (k) {
	case VPP_L_SKIP:
		return 0;
	case VPP_L_PROGRAM:
		vi_say(v, "%s: program '%s': Facteur runs no programs from "
		       "delivery", place, arg);
		return 0;
	case VPP_L_MBOX:
		vi_say(v, "%s: mbox file '%s': Facteur delivers to Maildirs "
		       "only", place, arg);
		return 0;
	case VPP_L_ADDRESS:
		if (!strchr(arg, '@')) {
			vi_say(v, "%s: address '%s' has no domain (qmail "
			       "added its own); not carried", place, arg);
			return 0;
		}
		return str_copys(dest, arg) < 0 ? -1 : 1;
	case VPP_L_MAILDIR:
		if (own && !strcmp(arg, "./Maildir/"))
			return 2;
		if (*arg == '/' && path_user(v, arg, dest) == 1)
			return own && str_eqs(dest, own) ? 2 : 1;
		vi_say(v, "%s: Maildir '%s' is no user's Maildir of the tree; "
		       "not carried", place, arg);
		return 0;
	default:
		vi_say(v, "%s: a line qmail would not understand; not carried",
		       place);
		return 0;
	}
}

/* add_alias - one destination of LOCAL@d */
static void add_alias(struct vi_domain *d, const char *local,
		      const char *dest, const char *place)
{
	struct vi_alias *a;

	d->a = vi_grow(d->a, &d->capa, d->na, sizeof *d->a);
	a = &d->a[d->na++];
	a->local = vi_strdup(local);
	a->dest = vi_strdup(dest);
	a->place = vi_strdup(place);
}

/* for_lines - read NAME below FD and call FN on each line with its place */
static int for_lines(struct vi *v, int fd, const char *name,
		     const char *where, size_t max,
		     void (*fn)(struct vi *, char *, const char *, void *),
		     void *arg)
{
	struct str buf = STR_INIT, place = STR_INIT;
	unsigned long n = 0;
	size_t pos = 0;
	char *line;
	int nul, r = fsx_read_at(fd, name, &buf, max);

	if (r < 0) {
		vi_say(v, "%s: cannot be read (%s)", where, msg_err(r));
		str_free(&buf);
		return r;
	}
	while ((line = next_line(&buf, &pos, &nul))) {
		place.len = 0;
		if (str_catf(&place, "%s:%lu", where, ++n) < 0)
			vfail(EX_TEMP, "out of memory");
		if (nul)
			vi_say(v, "%s: holds a NUL byte; not carried", place.s);
		else
			fn(v, line, place.s, arg);
	}
	str_free(&buf);
	str_free(&place);
	return 0;
}

struct alias_ctx {
	struct vi_domain *d;
	const char *local;
	unsigned long n;
};

static void alias_line(struct vi *v, char *line, const char *place,
		       void *arg)
{
	struct alias_ctx *a = arg;
	struct str dest = STR_INIT;

	if (line_dest(v, line, place, NULL, &dest) == 1) {
		add_alias(a->d, a->local, dest.s, place);
		a->n++;
	}
	str_free(&dest);
}

struct catchall_ctx {
	struct vi_domain *d;
	int lines;
};

/* catchall_line - vpopmail's .qmail-default: `| vdelivermail '' ARG` */
static void catchall_line(struct vi *v, char *line, const char *place,
			  void *arg)
{
	struct catchall_ctx *cc = arg;
	struct str what = STR_INIT, addr = STR_INIT;
	char *prog;

	if (vpp_qmail_line(line, &prog) == VPP_L_SKIP)
		return;
	if (cc->lines++ || vpp_qmail_line(line, &prog) != VPP_L_PROGRAM ||
	    vpp_vdelivermail(prog, &what) < 0) {
		vi_say(v, "%s: '%s' is not vdelivermail's catch-all line; not "
		       "carried (unknown users are refused)", place, line);
		goto out;
	}
	if (!strcmp(what.s, "bounce-no-mailbox"))
		goto out;
	if (!strcmp(what.s, "delete") || strchr(what.s, '@'))
		cc->d->catchall = vi_strdup(what.s);
	else if (what.s[0] == '/' && path_user(v, what.s, &addr) == 1)
		cc->d->catchall = vi_strdup(addr.s);
	else
		vi_say(v, "%s: catch-all '%s' is no user's directory of the "
		       "tree; not carried (unknown users are refused)", place,
		       what.s);
out:
	str_free(&what);
	str_free(&addr);
}

/* domain_qmail - one .qmail-X of a domain's directory */
static void domain_qmail(struct vi *v, struct vi_domain *d, const char *fn,
			 const char *where)
{
	struct str local = STR_INIT, folded = STR_INIT;
	struct catchall_ctx cc = {d, 0};
	struct alias_ctx ac = {d, NULL, 0};
	const char *why = "";
	int k = vpp_qmail_name(fn, &local);

	if (k == VPP_Q_DEFAULT) {
		(void)for_lines(v, d->fd, fn, where, QMAIL_MAX, catchall_line,
				&cc);
	} else if (k == VPP_Q_EXTDEFAULT) {
		vi_say(v, "%s: extension default (%s-ANYTHING): Facteur has "
		       "none; not carried", where, local.s);
	} else if (k < 0 || name_local(local.s, local.len, &folded, &why) ||
		   name_receivable(folded.s, folded.len)) {
		vi_say(v, "%s: '%s' is not a valid alias name here; not "
		       "carried", where, local.s);
	} else if (find_user(d, folded.s)) {
		vi_say(v, "%s: a mailbox %s@%s exists too (vpopmail delivered "
		       "by the .qmail file); the alias is not carried, the "
		       "mailbox is", where, folded.s, d->name);
	} else {
		ac.local = folded.s;
		if (for_lines(v, d->fd, fn, where, QMAIL_MAX, alias_line,
			      &ac) == 0 && !ac.n)
			vi_say(v, "%s: no destination carried; alias %s@%s not "
			       "made", where, folded.s, d->name);
	}
	str_free(&local);
	str_free(&folded);
}

/* known_file - what vpopmail keeps in a domain's directory that needs no
 * carrying: its own tables and locks */
static int known_file(const char *n)
{
	return !strcmp(n, "vpasswd") || !strcmp(n, "vpasswd.cdb") ||
	       !strcmp(n, "vpasswd.lock") || !strcmp(n, ".dir-control") ||
	       !strncmp(n, "vpasswd.cdb.", 12);
}

/* read_domain_files - the .qmail files of a domain, and what else is
 * there that vpopmail made and Facteur does not carry */
static void read_domain_files(struct vi *v, struct vi_domain *d)
{
	struct str where = STR_INIT;
	int fd = dup(d->fd);
	struct dirent *e;
	struct stat st;
	DIR *dp;

	if (fd < 0 || !(dp = fdopendir(fd)))
		vfail(EX_TEMP, "cannot read %s/%s: %s", v->dir, d->rel,
		      strerror(errno));
	rewinddir(dp);
	while ((errno = 0, e = readdir(dp))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    known_file(e->d_name))
			continue;
		where.len = 0;
		if (str_catf(&where, "%s/%s", d->rel, e->d_name) < 0)
			vfail(EX_TEMP, "out of memory");
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode))
			continue;	/* users' and hash directories */
		if (!S_ISREG(st.st_mode))
			vi_say(v, "%s: not a regular file; not followed",
			       where.s);
		else if (!strncmp(e->d_name, ".qmail-", 7))
			domain_qmail(v, d, e->d_name, where.s);
		else
			vi_say(v, "%s: vpopmail's file is not carried "
			       "(Facteur has no per-domain messages or limits)",
			       where.s);
	}
	if (errno)
		vfail(EX_TEMP, "cannot read %s/%s: %s", v->dir, d->rel,
		      strerror(errno));
	closedir(dp);
	str_free(&where);
}

struct fwd_ctx {
	struct vi_user *u;
	const char *addr;
	int lines;
};

static void forward_line(struct vi *v, char *line, const char *place,
			 void *arg)
{
	struct fwd_ctx *f = arg;
	struct str dest = STR_INIT;
	char *a;
	int k;

	if (vpp_qmail_line(line, &a) != VPP_L_SKIP)
		f->lines++;
	k = line_dest(v, line, place, f->addr, &dest);
	if (k == 2) {
		f->u->keep = 1;
	} else if (k == 1 && f->u->fwd) {
		vi_say(v, "%s: a second forward address '%s': Facteur keeps "
		       "one forward a user; not carried", place, dest.s);
	} else if (k == 1) {
		f->u->fwd = vi_strdup(dest.s);
	}
	str_free(&dest);
}

/* read_user_dir - a user's own .qmail (forwards, `./Maildir/` a copy
 * kept), and anything else in the user's directory but the Maildir */
static void read_user_dir(struct vi *v, struct vi_domain *d, struct vi_user *u)
{
	struct str where = STR_INIT, addr = STR_INIT;
	struct fwd_ctx f = {u, NULL, 0};
	int fd = vi_open_below(d->fd, u->rel);
	struct dirent *e;
	DIR *dp;

	if (fd < 0 || !(dp = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;	/* said when its Maildir is carried (vpopstore.c) */
	}
	if (str_catf(&addr, "%s@%s", u->local, d->name) < 0)
		vfail(EX_TEMP, "out of memory");
	f.addr = addr.s;
	while ((errno = 0, e = readdir(dp))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, "Maildir"))
			continue;
		where.len = 0;
		if (str_catf(&where, "%s/%s/%s", d->rel, u->rel, e->d_name) < 0)
			vfail(EX_TEMP, "out of memory");
		if (strcmp(e->d_name, ".qmail")) {
			vi_say(v, "%s: not carried (only the Maildir and .qmail "
			       "of a user are)", where.s);
			continue;
		}
		if (for_lines(v, fd, ".qmail", where.s, QMAIL_MAX, forward_line,
			      &f) == 0 && !f.lines)
			vi_say(v, "%s: only comments: vpopmail discarded this "
			       "user's mail; Facteur delivers it to the "
			       "mailbox", where.s);
	}
	closedir(dp);
	if (u->fwd == NULL)
		u->keep = 0;	/* only the Maildir: a plain mailbox */
	str_free(&where);
	str_free(&addr);
}

/* valias_line - `ALIAS@DOMAIN -> LINE` of a valias export */
static void valias_line(struct vi *v, char *line, const char *place,
			void *arg)
{
	struct str local = STR_INIT, dom = STR_INIT, dest = STR_INIT;
	struct vi_domain *d;
	const char *why = "";
	char *alias, *rhs;
	int k = vpp_valias(line, &alias, &rhs);

	(void)arg;
	if (k == 0)
		goto out;
	if (k < 0 || name_addr(alias, &local, &dom, &why) < 0) {
		vi_say(v, "%s: not 'ALIAS@DOMAIN -> LINE' (valias -s); not "
		       "carried", place);
		goto out;
	}
	if ((why = name_receivable(local.s, local.len)) != NULL) {
		vi_say(v, "%s: alias %s@%s: its local part %s; not carried",
		       place, local.s, dom.s, why);
		goto out;
	}
	d = find_domain(v, dom.s);
	if (!d || d->skip) {
		vi_say(v, "%s: domain %s is not imported; alias not carried",
		       place, dom.s);
	} else if (find_user(d, local.s)) {
		vi_say(v, "%s: a mailbox %s@%s exists too; the alias is not "
		       "carried", place, local.s, d->name);
	} else if (line_dest(v, rhs, place, NULL, &dest) == 1) {
		add_alias(d, local.s, dest.s, place);
	}
out:
	str_free(&local);
	str_free(&dom);
	str_free(&dest);
}

/* alias_target - the planned real domain an assign line's alias names:
 * its REAL field, or (older vpopmail wrote the alias's own name there)
 * the domain whose directory its DIR is */
static struct vi_domain *alias_target(struct vi *v, const struct vpp_assign *a,
				      const char *name)
{
	struct str real = STR_INIT;
	const char *why = "";
	struct vi_domain *d = NULL;
	size_t i, n = strlen(a->dir);

	if (name_domain(a->real, strlen(a->real), &real, &why) == 0 &&
	    strcmp(real.s, name))
		d = find_domain(v, real.s);
	for (i = 0; !d && i < v->nd; i++) {
		size_t k = strlen(v->d[i].rel);

		if (n > k && a->dir[n - k - 1] == '/' &&
		    !strcmp(a->dir + n - k, v->d[i].rel))
			d = &v->d[i];
	}
	str_free(&real);
	return d;
}

/* assign_line - a `+NAME-:REAL:...` line: an alias domain to carry? */
static void assign_line(struct vi *v, char *line, const char *place,
			void *arg)
{
	struct str name = STR_INIT;
	struct vpp_assign a;
	struct vi_domain *d;
	struct vi_adom *ad;
	const char *why = "";
	int k = vpp_assign(line, &a);

	(void)arg;
	if (k == 0)
		return;
	if (k < 0 || name_domain(a.name, strlen(a.name), &name, &why) < 0) {
		vi_say(v, "%s: not a '+DOMAIN-:REAL:UID:GID:DIR:-::' line; not "
		       "carried", place);
		goto out;
	}
	if (find_domain(v, name.s))
		goto out;	/* a real domain of the tree */
	for (size_t i = 0; i < v->nad; i++)
		if (!strcmp(v->ad[i].name, name.s)) {
			vi_say(v, "%s: %s twice; the first line is kept",
			       place, name.s);
			goto out;
		}
	d = alias_target(v, &a, name.s);
	if (!d) {
		vi_say(v, "%s: %s has no domain directory in the tree; not "
		       "carried", place, name.s);
	} else if (d->skip) {
		vi_say(v, "%s: %s is an alias of %s, which is not imported; "
		       "not carried", place, name.s, d->name);
	} else {
		v->ad = vi_grow(v->ad, &v->capad, v->nad, sizeof *v->ad);
		ad = &v->ad[v->nad++];
		ad->name = vi_strdup(name.s);
		ad->real = vi_strdup(d->name);
	}
out:
	str_free(&name);
}

/* open_tree - DIR and DIR/domains, as the mail user */
static void open_tree(struct vi *v)
{
	v->dirfd = open(v->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (v->dirfd < 0)
		vfail(errno == EACCES ? EX_TEMP : EX_REFUSED, "cannot open %s: "
		      "%s%s", v->dir, strerror(errno), errno == EACCES ?
		      "; give the mail user read access to the tree" : "");
	v->domfd = openat(v->dirfd, "domains", O_RDONLY | O_DIRECTORY |
			  O_NOFOLLOW | O_CLOEXEC);
	if (v->domfd < 0 && errno == EACCES)
		vfail(EX_TEMP, "cannot read %s/domains as the mail user; give "
		      "it read access to the tree (see docs/vadmin.md)",
		      v->dir);
	if (v->domfd < 0)
		vfail(EX_REFUSED, "%s is not a vpopmail tree: no domains/ "
		      "directory (%s)", v->dir, strerror(errno));
}

/* vi_read - the whole plan: domains, users, .qmail files, valias export,
 * alias domains from users/assign */
void vi_read(struct vi *v, const char *assign, const char *valias)
{
	size_t i, j;
	int r;

	r = ctl_get(v->c->root, "passwordscheme", "yescrypt", &v->scheme);
	if (r < 0)
		vfail(EX_TEMP, "cannot read control/passwordscheme: %s",
		      msg_err(r));
	open_tree(v);
	scan_dir(v, "");
	if (v->nd)
		qsort(v->d, v->nd, sizeof *v->d, by_name);
	for (i = 0; i < v->nd; i++) {
		if (m_domain_id(v->c, v->d[i].name, NULL)) {
			vi_say(v, "%s: domain %s is hosted here already; "
			       "skipped", v->d[i].rel, v->d[i].name);
			v->d[i].skip = 1;
			continue;
		}
		if (vi_root_dir(v, v->d[i].name) < 0) {
			vi_say(v, "%s: %s/domains/%s exists but %s is not "
			       "hosted here; move that directory away to "
			       "import %s", v->d[i].rel, v->c->root,
			       v->d[i].name, v->d[i].name, v->d[i].name);
			v->d[i].skip = 1;
			continue;
		}
		read_vpasswd(v, &v->d[i]);
	}
	/* every user known: .qmail lines may name any user's Maildir */
	for (i = 0; i < v->nd; i++) {
		if (v->d[i].skip)
			continue;
		read_domain_files(v, &v->d[i]);
		for (j = 0; j < v->d[i].nu; j++)
			if (v->d[i].u[j].rel)
				read_user_dir(v, &v->d[i], &v->d[i].u[j]);
	}
	if (valias)
		(void)for_lines(v, AT_FDCWD, valias, valias, FILE_MAX,
				valias_line, NULL);
	if (!assign && access("/var/qmail/users/assign", R_OK) == 0)
		assign = "/var/qmail/users/assign";
	if (assign)
		(void)for_lines(v, AT_FDCWD, assign, assign, FILE_MAX,
				assign_line, NULL);
	else
		vi_say(v, "no users/assign read (give --assign FILE): alias "
		       "domains not looked for");
}

/* vi_free - the plan's memory and descriptors */
void vi_free(struct vi *v)
{
	size_t i, j;

	for (i = 0; i < v->nd; i++) {
		struct vi_domain *d = &v->d[i];

		for (j = 0; j < d->nu; j++)
			free_user(&d->u[j]);
		for (j = 0; j < d->na; j++) {
			free(d->a[j].local);
			free(d->a[j].dest);
			free(d->a[j].place);
		}
		free(d->u);
		free(d->a);
		free(d->name);
		free(d->rel);
		free(d->catchall);
		if (d->fd >= 0)
			close(d->fd);
	}
	for (i = 0; i < v->nad; i++) {
		free(v->ad[i].name);
		free(v->ad[i].real);
	}
	free(v->d);
	free(v->ad);
	str_free(&v->scheme);
	str_free(&v->json);
	if (v->domfd >= 0)
		close(v->domfd);
	if (v->dirfd >= 0)
		close(v->dirfd);
}
