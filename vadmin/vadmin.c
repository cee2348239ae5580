/*
 * NAME
 *	vadmin - the Facteur account manager
 *
 * SYNOPSIS
 *	vadmin [--root DIR] COMMAND [ARGS] [--json]
 *	vadddomain, vdeldomain, vadduser, vdeluser, vpasswd, vsetuserquota,
 *	valias, vuserinfo, vdominfo, vaddaliasdomain, vmoduser (links)
 *
 * DESCRIPTION
 *	Keeps domains, users, aliases, forwards, catch-alls and quotas in
 *	ROOT/db/accounts.sqlite and, after every change, regenerates the CDBs
 *	that delivery and login read (see vgen.c). Commands and arguments are
 *	those of SPEC.md "Administration"; the vpopmail-named links take
 *	vpopmail's arguments (vpop.c). Passwords come from the command line
 *	(as vpopmail did) or, safer, from standard input, which keeps them out
 *	of process listings. docs/vadmin.md is the user's manual.
 *
 * SECURITY
 *	Run by root it becomes the mail user (control/mailuser) before it
 *	opens anything, so every file it writes belongs to the services that
 *	read it. It is not set-uid and talks to no network. Names are checked
 *	before they reach SQL or a path; SQL is bound, never pasted.
 *
 * EXIT STATUS
 *	0 done, 1 refused (exists, does not exist, invalid), 2 usage,
 *	111 temporary or system error (the database busy, a disk error).
 *
 * DIAGNOSTICS
 *	One line on stderr starting with the program's name, saying what to
 *	do. Each change is also logged to ROOT/log/current.
 *
 * SEE ALSO
 *	docs/vadmin.md, vdeliver(8), facteur(8)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "ctl.h"
#include "fsx.h"
#include "log.h"
#include "msg.h"
#include "priv.h"
#include "pw.h"
#include "store.h"
#include "vadmin.h"
#include "vpop.h"
#include "vpopimport.h"

static const char usage_text[] =
"usage: vadmin [--root DIR] COMMAND [ARGS]\n"
"  adddomain DOMAIN [PASSWORD] [--quota Q] [--dkim]   no PASSWORD: from stdin\n"
"  deldomain DOMAIN\n"
"  adduser USER@DOMAIN [PASSWORD] [--quota Q] [--name NAME] [--hash CRYPT]\n"
"  import FILE                           USER@DOMAIN PASSWORD_OR_HASH [QUOTA]\n"
"  deluser USER@DOMAIN\n"
"  passwd USER@DOMAIN [PASSWORD] [--hash CRYPT]\n"
"  setquota USER@DOMAIN Q                50M, 2G, 1000000, 1000000S,500C, NOQUOTA\n"
"  alias add ALIAS@DOMAIN DEST...\n"
"  alias del ALIAS@DOMAIN [DEST]\n"
"  forward USER@DOMAIN DEST [--keep] | forward USER@DOMAIN --remove\n"
"  catchall DOMAIN bounce|delete|ADDRESS\n"
"  aliasdomain add ALIAS_DOMAIN REAL_DOMAIN | aliasdomain del ALIAS_DOMAIN\n"
"  moduser USER@DOMAIN [--disable|--enable] [pop|smtp|delivery]\n"
"                                        (no flag: show what is on)\n"
"  userinfo USER@DOMAIN | dominfo [DOMAIN] | listusers DOMAIN | listdomains\n"
"                                        (add --json for scripts)\n"
"  rebuild                               regenerate every CDB\n"
"  check [--repair]                      files and CDBs against the database\n"
"  backup FILE                           a consistent copy of the database\n"
"  migrate-store CONNSTRING              the accounts into empty PostgreSQL\n"
"  watch                                 keep this host's CDBs current from\n"
"                                        PostgreSQL (run by facteur run)\n"
"  share                                 grants and failed logins shared\n"
"                                        with other hosts (run by facteur run)\n"
"  import-vpopmail DIR [--assign FILE] [--valias FILE]   a vpopmail tree\n"
"  dkim add DOMAIN [--selector SEL] [--type rsa|ed25519] [--bits 2048..4096]\n"
"  dkim list [DOMAIN] | show DOMAIN | rotate DOMAIN | del DOMAIN SELECTOR\n"
"A password not on the command line is read from standard input.\n"
"Exit: 0 done, 1 refused, 2 usage, 111 temporary error.\n";

static struct vctx *cur; /* for vlog from vfail paths */

/* usage - an error line, the usage on stderr, exit 2 */
#define usage(...) msg_usage(usage_text, __VA_ARGS__)

/* vlog - one line in ROOT/log/current; the log is not worth failing for */
void vlog(struct vctx *c, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;

	if (c->logfd < 0)
		return;
	va_start(ap, fmt);
	if (log_format(&line, "vadmin", getpid(), fmt, ap) == 0)
		(void)fsx_write_all(c->logfd, line.s, line.len);
	va_end(ap);
	str_free(&line);
}

/* take_lock - ROOT/db/vadmin.lock, waited for up to 30 s */
static int take_lock(const char *root)
{
	struct str p = STR_INIT;
	struct timespec ts = {0, 20 * 1000 * 1000};
	int fd, i;

	if (str_catf(&p, "%s/db/vadmin.lock", root))
		vfail(EX_TEMP, "out of memory");
	fd = open(p.s, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		vfail(EX_TEMP, "cannot open %s: %s", p.s, strerror(errno));
	for (i = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; i++) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			vfail(EX_TEMP, "cannot lock %s: %s", p.s,
			      strerror(errno));
		if (i == 1500)
			vfail(EX_TEMP, "another vadmin has held %s for 30 s; "
			      "retry when it has finished", p.s);
		nanosleep(&ts, NULL);
	}
	str_free(&p);
	return fd;
}

/* vlock, vunlock - the writers' lock, for a command that holds it only
 * while it writes (vadmin watch) */
void vlock(struct vctx *c)
{
	if (c->lockfd < 0)
		c->lockfd = take_lock(c->root);
}

void vunlock(struct vctx *c)
{
	if (c->lockfd >= 0)
		close(c->lockfd);
	c->lockfd = -1;
}

/* vopen - become the mail user, then open (and for writers, lock) the root */
void vopen(struct vctx *c, int writer)
{
	struct str p = STR_INIT;
	int r = priv_become_mailuser(c->root);

	if (r < 0)
		vfail(EX_TEMP, "cannot become the mail user: %s",
		      priv_error(r));
	if (str_catf(&p, "%s/db", c->root))
		vfail(EX_TEMP, "out of memory");
	if (access(p.s, X_OK) < 0 && errno == EACCES)
		vfail(EX_TEMP, "cannot reach %s as the mail user (a directory on "
		      "the way is closed to it); open the path to it", p.s);
	if (!fsx_is_dir(p.s))
		vfail(EX_TEMP, "%s is not a Facteur root (no db/); create it "
		      "with 'facteur init --root %s'", c->root, c->root);
	str_free(&p);
	c->lockfd = writer ? take_lock(c->root) : -1;
	r = store_open(c->root, 0, &c->db);
	if (r == -ECONNREFUSED)
		vfail(EX_TEMP, "cannot reach the account database named by "
		      "control/accountdb (%s); nothing was changed, retry when "
		      "it is back", store_open_error());
	if (r == -EPROTO)
		vfail(EX_TEMP, "the database is newer than this vadmin; "
		      "install the matching version");
	if (r < 0 && *store_open_error())
		vfail(EX_TEMP, "cannot open the account database named by "
		      "control/accountdb: %s", store_open_error());
	if (r < 0)
		vfail(EX_TEMP, "cannot open the database in %s/db: %s", c->root,
		      msg_err(r));
	c->logfd = writer ? log_open(c->root) : -1;
	cur = c;
	/* finish whatever a killed vadmin committed but did not write out */
	if (writer)
		gen_recover(c);
}

/* vclose - release everything (keeps the leak checker meaningful) */
void vclose(struct vctx *c)
{
	if (c->db)
		store_close(c->db);
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->logfd >= 0)
		close(c->logfd);
	c->db = NULL;
	c->lockfd = c->logfd = -1;
}

#define TEXT_(n) #n
#define TEXT(n) TEXT_(n)

/* vpassword_problem - why a password is unusable, or NULL */
const char *vpassword_problem(const char *pw)
{
	const unsigned char *p;

	if (!*pw)
		return "empty password; give one on the command line or on "
		       "standard input";
	if (strlen(pw) > PW_MAX)
		return "password longer than " TEXT(PW_MAX) " bytes";
	for (p = (const unsigned char *)pw; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "the password contains a control byte";
	return NULL;
}

/* vcheck_password - refuse what cannot be a usable password */
void vcheck_password(const char *pw)
{
	const char *why = vpassword_problem(pw);

	if (why)
		vfail(EX_REFUSED, "%s", why);
}

/* vread_password - one line of stdin; prompted without echo on a terminal */
int vread_password(const char *what, struct str *out)
{
	struct termios old, quiet;
	int tty = isatty(0) && tcgetattr(0, &old) == 0;
	char ch;
	ssize_t n;

	out->len = 0;
	if (tty) {
		fprintf(stderr, "password for %s: ", what);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	/* byte by byte: what follows the line is not ours to consume */
	while ((n = read(0, &ch, 1)) == 1 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		if (ch == '\n')
			break;
		if (out->len >= 4096 || str_catc(out, ch))
			break;
	}
	if (tty) {
		tcsetattr(0, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (out->len && out->s[out->len - 1] == '\r')
		str_trunc(out, out->len - 1);
	if (memchr(out->s ? out->s : "", 0, out->len))
		vfail(EX_REFUSED, "the password contains a NUL byte");
	return str_catb(out, "", 0);
}

/* opts - a subcommand's flags; positional arguments are left in pos[] */
struct opts {
	const char *pos[64];
	int npos;
	const char *quota, *name, *hash, *assign, *valias;
	const char *selector, *type, *bits;	/* dkim add */
	int keep, remove, repair, disable, enable, dkim;
};

static const char *take_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		usage("%s needs a value", argv[*i]);
	return argv[++*i];
}

/* parse_opts - flags anywhere after the command; "--" ends them */
static void parse_opts(int argc, char **argv, int first, struct opts *o,
		       const char *allowed)
{
	int i, dashdash = 0;

	memset(o, 0, sizeof *o);
	for (i = first; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && a[0] == '-' && a[1]) {
			if (!strcmp(a, "--")) {
				dashdash = 1;
				continue;
			}
			if (!strstr(allowed, a))
				usage("unknown option %s", a);
			if (!strcmp(a, "--quota"))
				o->quota = take_value(argc, argv, &i);
			else if (!strcmp(a, "--name"))
				o->name = take_value(argc, argv, &i);
			else if (!strcmp(a, "--hash"))
				o->hash = take_value(argc, argv, &i);
			else if (!strcmp(a, "--assign"))
				o->assign = take_value(argc, argv, &i);
			else if (!strcmp(a, "--valias"))
				o->valias = take_value(argc, argv, &i);
			else if (!strcmp(a, "--selector"))
				o->selector = take_value(argc, argv, &i);
			else if (!strcmp(a, "--type"))
				o->type = take_value(argc, argv, &i);
			else if (!strcmp(a, "--bits"))
				o->bits = take_value(argc, argv, &i);
			else if (!strcmp(a, "--dkim"))
				o->dkim = 1;
			else if (!strcmp(a, "--keep"))
				o->keep = 1;
			else if (!strcmp(a, "--remove"))
				o->remove = 1;
			else if (!strcmp(a, "--repair"))
				o->repair = 1;
			else if (!strcmp(a, "--disable"))
				o->disable = 1;
			else if (!strcmp(a, "--enable"))
				o->enable = 1;
			else
				usage("unknown option %s", a);
			continue;
		}
		if (o->npos == (int)(sizeof o->pos / sizeof o->pos[0]))
			usage("too many arguments");
		o->pos[o->npos++] = a;
	}
}

static void want_args(const struct opts *o, int min, int max, const char *cmd)
{
	if (o->npos < min)
		usage("%s: missing argument", cmd);
	if (o->npos > max)
		usage("%s: too many arguments", cmd);
}

/* hash_thread - the expensive part of secret_start */
static void *hash_thread(void *arg)
{
	struct secret *s = arg;

	s->err = pw_hash(s->pw.s, s->scheme.s, &s->hash);
	if (s->err == 0)
		s->err = pw_cram_context(s->pw.s, s->pw.len, &s->cram);
	return NULL;
}

/* secret_start - take a ready hash, or begin hashing a password given or
 * read from stdin; problems with the password are reported at once */
void secret_start(struct vctx *c, struct secret *s, const char *pw,
		  const char *hash, const char *who)
{
	int r;

	memset(s, 0, sizeof *s);
	if (hash) {
		m_make_secret(c, NULL, hash, &s->hash, &s->cram);
		return;
	}
	if (pw ? str_copys(&s->pw, pw) : vread_password(who, &s->pw))
		vfail(EX_TEMP, "out of memory");
	vcheck_password(s->pw.s);
	r = ctl_get(c->root, "passwordscheme", "yescrypt", &s->scheme);
	if (r < 0)
		vfail(EX_TEMP, "cannot read control/passwordscheme: %s",
		      msg_err(r));
	if (strcmp(s->scheme.s, "yescrypt") && strcmp(s->scheme.s,
						       "sha512crypt"))
		vfail(EX_TEMP, "control/passwordscheme says '%s'; use yescrypt "
		      "or sha512crypt", s->scheme.s);
	r = pthread_create(&s->th, NULL, hash_thread, s);
	if (r != 0) {
		hash_thread(s); /* no thread: hash here, just not overlapped */
		return;
	}
	s->running = 1;
}

/* secret_finish - wait for the hash; exit 111 if it could not be made */
void secret_finish(struct secret *s)
{
	if (s->running && pthread_join(s->th, NULL) != 0)
		vfail(EX_TEMP, "cannot wait for the password hash");
	s->running = 0;
	if (s->err < 0)
		vfail(EX_TEMP, "cannot hash the password: %s", msg_err(s->err));
	if (s->pw.s)
		explicit_bzero(s->pw.s, s->pw.len);
}

/* secret_free - release a finished secret */
void secret_free(struct secret *s)
{
	secret_finish(s);
	str_free(&s->hash);
	str_free(&s->cram);
	str_free(&s->pw);
	str_free(&s->scheme);
}

/* service_mask - pop, smtp, delivery, or all three */
static int service_mask(const char *s)
{
	if (!s)
		return ACCT_NOPOP | ACCT_NOSMTP | ACCT_NODELIVERY;
	if (!strcmp(s, "pop") || !strcmp(s, "pop3"))
		return ACCT_NOPOP;
	if (!strcmp(s, "smtp"))
		return ACCT_NOSMTP;
	if (!strcmp(s, "delivery"))
		return ACCT_NODELIVERY;
	usage("moduser: unknown service '%s' (pop, smtp or delivery)", s);
}

/* change - the end of one change: commit, the files it owes, the log */
static void change(struct vctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void change(struct vctx *c, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;
	int r;

	m_commit(c);
	gen_run_pending(c);
	va_start(ap, fmt);
	r = str_vcatf(&line, fmt, ap);
	va_end(ap);
	if (r < 0)
		vfail(EX_TEMP, "out of memory");
	vlog(c, "%s", line.s);
	str_free(&line);
}

/* what one command is given: its operands and flags, and what its check
 * made ready before the root is opened (a password hashing meanwhile) */
struct run {
	struct opts o;
	struct secret sec;
	struct quota q;
	struct str h, cram;	/* scratch for the name checks */
	int writes;		/* the root is opened for writing */
};

/* the password: the operand after the address, else --hash, else stdin */
static void start_secret(struct vctx *c, struct run *r, const char *who)
{
	secret_start(c, &r->sec, r->o.npos == 2 ? r->o.pos[1] : NULL,
		     r->o.hash, who);
}

/* the checks made before the root is opened: a refusal costs nothing */
static void check_adddomain(struct vctx *c, struct run *r)
{
	if (r->o.quota)
		m_parse_quota(r->o.quota, &r->q);
	m_parse_domain(r->o.pos[0], &r->h); /* refuse bad names before reading */
	start_secret(c, r, "postmaster");
}

static void check_adduser(struct vctx *c, struct run *r)
{
	if (r->o.hash && r->o.npos == 2)
		usage("adduser: give a PASSWORD or --hash, not both");
	if (r->o.quota)
		m_parse_quota(r->o.quota, &r->q);
	m_parse_addr(r->o.pos[0], &r->h, &r->cram);
	start_secret(c, r, r->o.pos[0]);
}

static void check_passwd(struct vctx *c, struct run *r)
{
	if (r->o.hash && r->o.npos == 2)
		usage("passwd: give a PASSWORD or --hash, not both");
	m_parse_addr(r->o.pos[0], &r->h, &r->cram);
	start_secret(c, r, r->o.pos[0]);
}

static void check_setquota(struct vctx *c, struct run *r)
{
	(void)c;
	m_parse_quota(r->o.pos[1], &r->q);
}

/* sub - "add" or "del", the word after alias and aliasdomain */
static int sub(const struct run *r, const char *word)
{
	return r->o.npos >= 1 && !strcmp(r->o.pos[0], word);
}

static void check_alias(struct vctx *c, struct run *r)
{
	(void)c;
	if (sub(r, "add"))
		want_args(&r->o, 3, 64, "alias add");
	else if (sub(r, "del"))
		want_args(&r->o, 2, 3, "alias del");
	else
		usage("alias: use 'alias add' or 'alias del'");
}

static void check_aliasdomain(struct vctx *c, struct run *r)
{
	(void)c;
	if (sub(r, "add"))
		want_args(&r->o, 3, 3, "aliasdomain add");
	else if (sub(r, "del"))
		want_args(&r->o, 2, 2, "aliasdomain del");
	else
		usage("aliasdomain: use 'aliasdomain add' or "
		      "'aliasdomain del'");
}

static void check_forward(struct vctx *c, struct run *r)
{
	int n = r->o.remove ? 1 : 2;

	(void)c;
	want_args(&r->o, n, n, "forward");
}

/* moduser without --disable or --enable only shows: it reads */
static void check_moduser(struct vctx *c, struct run *r)
{
	(void)c;
	if (r->o.disable && r->o.enable)
		usage("moduser: give --disable or --enable, not both");
	if (!r->o.disable && !r->o.enable) {
		if (r->o.npos == 2)
			usage("moduser: give --disable or --enable");
		r->writes = 0;
		return;
	}
	(void)service_mask(r->o.npos == 2 ? r->o.pos[1] : NULL);
}

/* the commands, run on the opened root; each returns the exit code */
static int run_adddomain(struct vctx *c, struct run *r)
{
	m_begin(c);
	m_add_domain(c, r->o.pos[0], &r->q, &r->sec);
	change(c, "adddomain %s", r->o.pos[0]);
	if (r->o.dkim)
		vdkim_adddomain(c, r->h.s);
	return EX_DONE;
}

static int run_deldomain(struct vctx *c, struct run *r)
{
	m_begin(c);
	m_del_domain(c, r->o.pos[0]);
	change(c, "deldomain %s", r->o.pos[0]);
	return EX_DONE;
}

static int run_adduser(struct vctx *c, struct run *r)
{
	m_begin(c);
	m_add_user(c, r->o.pos[0], &r->sec, &r->q, r->o.quota != NULL,
		   r->o.name);
	change(c, "adduser %s", r->o.pos[0]);
	return EX_DONE;
}

static int run_import(struct vctx *c, struct run *r)
{
	unsigned long n;

	m_begin(c);
	n = m_import(c, r->o.pos[0]);
	change(c, "import %s: %lu users", r->o.pos[0], n);
	printf("imported %lu users\n", n);
	return EX_DONE;
}

static int run_deluser(struct vctx *c, struct run *r)
{
	m_begin(c);
	m_del_user(c, r->o.pos[0]);
	change(c, "deluser %s", r->o.pos[0]);
	return EX_DONE;
}

static int run_passwd(struct vctx *c, struct run *r)
{
	m_begin(c);
	m_passwd(c, r->o.pos[0], &r->sec);
	change(c, "passwd %s", r->o.pos[0]);
	return EX_DONE;
}

/* setquota also rewrites maildirsize, after the change is committed: the
 * quota is saved whatever becomes of the file */
static int run_setquota(struct vctx *c, struct run *r)
{
	struct str l = STR_INIT, d = STR_INIT, md = STR_INIT;
	int e;

	m_begin(c);
	m_setquota(c, r->o.pos[0], &r->q);
	change(c, "setquota %s %s", r->o.pos[0], r->o.pos[1]);
	m_parse_addr(r->o.pos[0], &l, &d);
	if (str_catf(&md, "domains/%s/%s/Maildir", d.s, l.s))
		vfail(EX_TEMP, "out of memory");
	e = m_write_maildirsize(c, md.s, &r->q);
	if (e < 0)
		msg_warn("quota saved, but %s/maildirsize could not be "
			 "rewritten (%s); delivery will recalculate it",
			 md.s, msg_err(e));
	str_free(&l);
	str_free(&d);
	str_free(&md);
	return EX_DONE;
}

static int run_alias(struct vctx *c, struct run *r)
{
	const struct opts *o = &r->o;

	m_begin(c);
	if (sub(r, "add"))
		m_alias_add(c, o->pos[1], (char **)o->pos + 2, o->npos - 2);
	else
		m_alias_del(c, o->pos[1], o->npos == 3 ? o->pos[2] : NULL);
	change(c, "alias %s %s", o->pos[0], o->pos[1]);
	return EX_DONE;
}

static int run_forward(struct vctx *c, struct run *r)
{
	const struct opts *o = &r->o;

	m_begin(c);
	m_forward(c, o->pos[0], o->remove ? NULL : o->pos[1], o->keep);
	change(c, "forward %s %s", o->pos[0], o->remove ? "removed" :
	       o->pos[1]);
	return EX_DONE;
}

static int run_catchall(struct vctx *c, struct run *r)
{
	m_begin(c);
	m_catchall(c, r->o.pos[0], r->o.pos[1]);
	change(c, "catchall %s %s", r->o.pos[0], r->o.pos[1]);
	return EX_DONE;
}

static int run_aliasdomain(struct vctx *c, struct run *r)
{
	const struct opts *o = &r->o;

	m_begin(c);
	if (sub(r, "add")) {
		m_aliasdomain_add(c, o->pos[1], o->pos[2]);
		change(c, "aliasdomain add %s %s", o->pos[1], o->pos[2]);
	} else {
		m_aliasdomain_del(c, o->pos[1]);
		change(c, "aliasdomain del %s", o->pos[1]);
	}
	return EX_DONE;
}

static int run_moduser(struct vctx *c, struct run *r)
{
	const struct opts *o = &r->o;

	if (!r->writes) {
		/* no change asked for: say what is on and off */
		show_flags(c, o->pos[0]);
		return EX_DONE;
	}
	m_begin(c);
	m_moduser(c, o->pos[0], o->disable,
		  service_mask(o->npos == 2 ? o->pos[1] : NULL));
	change(c, "moduser %s %s %s", o->pos[0],
	       o->disable ? "disable" : "enable",
	       o->npos == 2 ? o->pos[1] : "all");
	return EX_DONE;
}

static int run_userinfo(struct vctx *c, struct run *r)
{
	show_user(c, r->o.pos[0]);
	return EX_DONE;
}

static int run_dominfo(struct vctx *c, struct run *r)
{
	show_domain(c, r->o.npos ? r->o.pos[0] : NULL);
	return EX_DONE;
}

static int run_listusers(struct vctx *c, struct run *r)
{
	show_users(c, r->o.pos[0]);
	return EX_DONE;
}

static int run_listdomains(struct vctx *c, struct run *r)
{
	(void)r;
	show_domains(c);
	return EX_DONE;
}

static int run_backup(struct vctx *c, struct run *r)
{
	return cmd_backup(c, r->o.pos[0]);
}

static int run_migrate_store(struct vctx *c, struct run *r)
{
	return cmd_migrate_store(c, r->o.pos[0]);
}

static int run_watch(struct vctx *c, struct run *r)
{
	(void)r;
	return cmd_watch(c);
}

static int run_share(struct vctx *c, struct run *r)
{
	(void)r;
	return cmd_share(c);
}

static int run_rebuild(struct vctx *c, struct run *r)
{
	(void)r;
	gen_rebuild_all(c);
	vlog(c, "rebuild");
	return EX_DONE;
}

static int run_import_vpopmail(struct vctx *c, struct run *r)
{
	return vpi_run(c, r->o.pos[0], r->o.assign, r->o.valias);
}

/* dkim: vdkim.c, given the operands and its flags */
static void dkim_args(const struct run *r, struct dkim_args *a)
{
	a->pos = r->o.pos;
	a->npos = r->o.npos;
	a->selector = r->o.selector;
	a->type = r->o.type;
	a->bits = r->o.bits;
}

static void check_dkim(struct vctx *c, struct run *r)
{
	struct dkim_args a;

	(void)c;
	dkim_args(r, &a);
	r->writes = vdkim_check(&a);
}

static int run_dkim(struct vctx *c, struct run *r)
{
	struct dkim_args a;

	dkim_args(r, &a);
	return vdkim_run(c, &a);
}

/* check: 1 while problems are left */
static int run_check(struct vctx *c, struct run *r)
{
	return cmd_check(c, r->o.repair) ? EX_REFUSED : EX_DONE;
}

/* the commands: FLAGS those parse_opts allows; MIN and MAX the number of
 * operands (MAX -1: the check counts them, they depend on a word or a
 * flag); WRITES whether the root is opened to change it (locked, the log
 * open, a killed vadmin's work finished first); CHECK what is refused
 * before the root is opened, RUN the command on the opened root */
static const struct command {
	const char *name;
	const char *flags;
	int min, max;
	int writes;
	void (*check)(struct vctx *c, struct run *r);
	int (*run)(struct vctx *c, struct run *r);
} commands[] = {
	{"adddomain", "--quota --dkim", 1, 2, 1, check_adddomain,
	 run_adddomain},
	{"deldomain", "", 1, 1, 1, NULL, run_deldomain},
	{"adduser", "--quota --name --hash", 1, 2, 1, check_adduser,
	 run_adduser},
	{"import", "", 1, 1, 1, NULL, run_import},
	{"deluser", "", 1, 1, 1, NULL, run_deluser},
	{"passwd", "--hash", 1, 2, 1, check_passwd, run_passwd},
	{"setquota", "", 2, 2, 1, check_setquota, run_setquota},
	{"alias", "", 0, -1, 1, check_alias, run_alias},
	{"forward", "--keep --remove", 0, -1, 1, check_forward, run_forward},
	{"catchall", "", 2, 2, 1, NULL, run_catchall},
	{"aliasdomain", "", 0, -1, 1, check_aliasdomain, run_aliasdomain},
	{"moduser", "--disable --enable", 1, 2, 1, check_moduser,
	 run_moduser},
	{"userinfo", "", 1, 1, 0, NULL, run_userinfo},
	{"dominfo", "", 0, 1, 0, NULL, run_dominfo},
	{"listusers", "", 1, 1, 0, NULL, run_listusers},
	{"listdomains", "", 0, 0, 0, NULL, run_listdomains},
	{"backup", "", 1, 1, 0, NULL, run_backup},
	{"rebuild", "", 0, 0, 1, NULL, run_rebuild},
	{"migrate-store", "", 1, 1, 1, NULL, run_migrate_store},
	/* not a writer: it takes the lock only while it writes */
	{"watch", "", 0, 0, 0, NULL, run_watch},
	{"share", "", 0, 0, 0, NULL, run_share},
	{"check", "--repair", 0, 0, 1, NULL, run_check},
	{"import-vpopmail", "--assign --valias", 1, 1, 1, NULL,
	 run_import_vpopmail},
	{"dkim", "--selector --type --bits", 0, -1, 1, check_dkim, run_dkim},
};

/* vadmin_run - run vadmin COMMAND (argv[1]); also used by vpop.c */
int vadmin_run(struct vctx *c, int argc, char **argv)
{
	const struct command *cmd = NULL;
	struct run r;
	size_t i;
	int rc;

	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			cmd = &commands[i];
	if (!cmd)
		usage("unknown command '%s'", argv[1]);
	memset(&r, 0, sizeof r);
	parse_opts(argc, argv, 2, &r.o, cmd->flags);
	if (cmd->max >= 0)
		want_args(&r.o, cmd->min, cmd->max, cmd->name);
	r.writes = cmd->writes;
	if (cmd->check)
		cmd->check(c, &r);
	vopen(c, r.writes);
	rc = cmd->run(c, &r);
	secret_free(&r.sec);
	str_free(&r.h);
	str_free(&r.cram);
	vclose(c);
	return rc;
}

/* strip_json - take --json out of argv, wherever it is */
static int strip_json(int *argc, char **argv)
{
	int i, j, found = 0;

	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--json"))
			continue;
		for (j = i; j < *argc; j++)
			argv[j] = argv[j + 1];
		(*argc)--;
		i--;
		found = 1;
	}
	return found;
}

int main(int argc, char **argv)
{
	struct vctx c = {NULL, NULL, 0, -1, -1, NULL};

	msg_init(argv[0]);
	umask(077);
	c.root = args_root(&argc, argv);
	if (!c.root)
		usage("--root needs a directory");
	if (vpop_is(msg_prog()))
		return vpop_main(&c, msg_prog(), argc, argv);
	if (args_has_help(argc, argv)) {
		fputs(usage_text, stdout);
		return EX_DONE;
	}
	c.json = strip_json(&argc, argv);
	if (argc < 2)
		usage("no command given");
	return vadmin_run(&c, argc, argv);
}
