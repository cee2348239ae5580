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
#include "db.h"
#include "fsx.h"
#include "log.h"
#include "msg.h"
#include "priv.h"
#include "pw.h"
#include "vadmin.h"
#include "vpop.h"

static const char usage_text[] =
"usage: vadmin [--root DIR] COMMAND [ARGS]\n"
"  adddomain DOMAIN [PASSWORD] [--quota Q]   no PASSWORD: from stdin\n"
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
	r = db_open(c->root, 0, &c->db);
	if (r == -EPROTO)
		vfail(EX_TEMP, "the database is newer than this vadmin; "
		      "install the matching version");
	if (r < 0)
		vfail(EX_TEMP, "cannot open the database in %s/db: %s", c->root,
		      msg_err(r));
	gen_sql_functions(c);
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
		sqlite3_close(c->db);
	if (c->lockfd >= 0)
		close(c->lockfd);
	if (c->logfd >= 0)
		close(c->logfd);
	c->db = NULL;
	c->lockfd = c->logfd = -1;
}

/* vpassword_problem - why a password is unusable, or NULL */
const char *vpassword_problem(const char *pw)
{
	const unsigned char *p;

	if (!*pw)
		return "empty password; give one on the command line or on "
		       "standard input";
	if (strlen(pw) > 1024)
		return "password longer than 1024 bytes";
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
	const char *quota, *name, *hash;
	int keep, remove, repair, disable, enable;
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

/* change - run one change: transaction, commit, files, log */
#define CHANGE(c, logfmt, ...) do { \
		m_commit(c); \
		gen_run_pending(c); \
		vlog(c, logfmt, __VA_ARGS__); \
	} while (0)

/* vadmin_run - dispatch vadmin COMMAND (argv[1]); also used by vpop.c */
int vadmin_run(struct vctx *c, int argc, char **argv)
{
	const char *cmd = argv[1];
	struct str h = STR_INIT, cram = STR_INIT;
	struct secret sec;
	struct opts o;
	struct quota q = {0, 0};

	memset(&sec, 0, sizeof sec);

	if (!strcmp(cmd, "adddomain")) {
		parse_opts(argc, argv, 2, &o, "--quota");
		want_args(&o, 1, 2, cmd);
		if (o.quota)
			m_parse_quota(o.quota, &q);
		m_parse_domain(o.pos[0], &h); /* refuse bad names before reading */
		secret_start(c, &sec, o.npos == 2 ? o.pos[1] : NULL, NULL,
			     "postmaster");
		vopen(c, 1);
		m_begin(c);
		m_add_domain(c, o.pos[0], &q, &sec);
		CHANGE(c, "adddomain %s", o.pos[0]);
	} else if (!strcmp(cmd, "deldomain")) {
		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 1, 1, cmd);
		vopen(c, 1);
		m_begin(c);
		m_del_domain(c, o.pos[0]);
		CHANGE(c, "deldomain %s", o.pos[0]);
	} else if (!strcmp(cmd, "adduser")) {
		parse_opts(argc, argv, 2, &o, "--quota --name --hash");
		want_args(&o, 1, 2, cmd);
		if (o.hash && o.npos == 2)
			usage("adduser: give a PASSWORD or --hash, not both");
		if (o.quota)
			m_parse_quota(o.quota, &q);
		m_parse_addr(o.pos[0], &h, &cram);
		secret_start(c, &sec, o.npos == 2 ? o.pos[1] : NULL, o.hash,
			     o.pos[0]);
		vopen(c, 1);
		m_begin(c);
		m_add_user(c, o.pos[0], &sec, &q, o.quota != NULL, o.name);
		CHANGE(c, "adduser %s", o.pos[0]);
	} else if (!strcmp(cmd, "import")) {
		unsigned long n;

		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 1, 1, cmd);
		vopen(c, 1);
		m_begin(c);
		n = m_import(c, o.pos[0]);
		CHANGE(c, "import %s: %lu users", o.pos[0], n);
		printf("imported %lu users\n", n);
	} else if (!strcmp(cmd, "deluser")) {
		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 1, 1, cmd);
		vopen(c, 1);
		m_begin(c);
		m_del_user(c, o.pos[0]);
		CHANGE(c, "deluser %s", o.pos[0]);
	} else if (!strcmp(cmd, "passwd")) {
		parse_opts(argc, argv, 2, &o, "--hash");
		want_args(&o, 1, 2, cmd);
		if (o.hash && o.npos == 2)
			usage("passwd: give a PASSWORD or --hash, not both");
		m_parse_addr(o.pos[0], &h, &cram);
		secret_start(c, &sec, o.npos == 2 ? o.pos[1] : NULL, o.hash,
			     o.pos[0]);
		vopen(c, 1);
		m_begin(c);
		m_passwd(c, o.pos[0], &sec);
		CHANGE(c, "passwd %s", o.pos[0]);
	} else if (!strcmp(cmd, "setquota")) {
		struct str l = STR_INIT, d = STR_INIT, md = STR_INIT;
		int r;

		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 2, 2, cmd);
		m_parse_quota(o.pos[1], &q);
		vopen(c, 1);
		m_begin(c);
		m_setquota(c, o.pos[0], &q);
		CHANGE(c, "setquota %s %s", o.pos[0], o.pos[1]);
		m_parse_addr(o.pos[0], &l, &d);
		if (str_catf(&md, "domains/%s/%s/Maildir", d.s, l.s))
			vfail(EX_TEMP, "out of memory");
		r = m_write_maildirsize(c, md.s, &q);
		if (r < 0)
			msg_warn("quota saved, but %s/maildirsize could not be "
				 "rewritten (%s); delivery will recalculate it",
				 md.s, msg_err(r));
		str_free(&l);
		str_free(&d);
		str_free(&md);
	} else if (!strcmp(cmd, "alias")) {
		parse_opts(argc, argv, 2, &o, "");
		if (o.npos >= 1 && !strcmp(o.pos[0], "add")) {
			want_args(&o, 3, 64, "alias add");
			vopen(c, 1);
			m_begin(c);
			m_alias_add(c, o.pos[1], (char **)o.pos + 2, o.npos - 2);
			CHANGE(c, "alias add %s", o.pos[1]);
		} else if (o.npos >= 1 && !strcmp(o.pos[0], "del")) {
			want_args(&o, 2, 3, "alias del");
			vopen(c, 1);
			m_begin(c);
			m_alias_del(c, o.pos[1], o.npos == 3 ? o.pos[2] : NULL);
			CHANGE(c, "alias del %s", o.pos[1]);
		} else {
			usage("alias: use 'alias add' or 'alias del'");
		}
	} else if (!strcmp(cmd, "forward")) {
		parse_opts(argc, argv, 2, &o, "--keep --remove");
		want_args(&o, o.remove ? 1 : 2, o.remove ? 1 : 2, cmd);
		vopen(c, 1);
		m_begin(c);
		m_forward(c, o.pos[0], o.remove ? NULL : o.pos[1], o.keep);
		CHANGE(c, "forward %s %s", o.pos[0],
		       o.remove ? "removed" : o.pos[1]);
	} else if (!strcmp(cmd, "catchall")) {
		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 2, 2, cmd);
		vopen(c, 1);
		m_begin(c);
		m_catchall(c, o.pos[0], o.pos[1]);
		CHANGE(c, "catchall %s %s", o.pos[0], o.pos[1]);
	} else if (!strcmp(cmd, "aliasdomain")) {
		parse_opts(argc, argv, 2, &o, "");
		if (o.npos >= 1 && !strcmp(o.pos[0], "add")) {
			want_args(&o, 3, 3, "aliasdomain add");
			vopen(c, 1);
			m_begin(c);
			m_aliasdomain_add(c, o.pos[1], o.pos[2]);
			CHANGE(c, "aliasdomain add %s %s", o.pos[1], o.pos[2]);
		} else if (o.npos >= 1 && !strcmp(o.pos[0], "del")) {
			want_args(&o, 2, 2, "aliasdomain del");
			vopen(c, 1);
			m_begin(c);
			m_aliasdomain_del(c, o.pos[1]);
			CHANGE(c, "aliasdomain del %s", o.pos[1]);
		} else {
			usage("aliasdomain: use 'aliasdomain add' or "
			      "'aliasdomain del'");
		}
	} else if (!strcmp(cmd, "moduser")) {
		int mask;

		parse_opts(argc, argv, 2, &o, "--disable --enable");
		want_args(&o, 1, 2, cmd);
		if (o.disable && o.enable)
			usage("moduser: give --disable or --enable, not both");
		if (!o.disable && !o.enable) {
			/* no change asked for: say what is on and off */
			if (o.npos == 2)
				usage("moduser: give --disable or --enable");
			vopen(c, 0);
			show_flags(c, o.pos[0]);
			vclose(c);
			return EX_DONE;
		}
		mask = service_mask(o.npos == 2 ? o.pos[1] : NULL);
		vopen(c, 1);
		m_begin(c);
		m_moduser(c, o.pos[0], o.disable, mask);
		CHANGE(c, "moduser %s %s %s", o.pos[0],
		       o.disable ? "disable" : "enable",
		       o.npos == 2 ? o.pos[1] : "all");
	} else if (!strcmp(cmd, "userinfo")) {
		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 1, 1, cmd);
		vopen(c, 0);
		show_user(c, o.pos[0]);
	} else if (!strcmp(cmd, "dominfo")) {
		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 0, 1, cmd);
		vopen(c, 0);
		show_domain(c, o.npos ? o.pos[0] : NULL);
	} else if (!strcmp(cmd, "listusers")) {
		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 1, 1, cmd);
		vopen(c, 0);
		show_users(c, o.pos[0]);
	} else if (!strcmp(cmd, "listdomains")) {
		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 0, 0, cmd);
		vopen(c, 0);
		show_domains(c);
	} else if (!strcmp(cmd, "rebuild")) {
		parse_opts(argc, argv, 2, &o, "");
		want_args(&o, 0, 0, cmd);
		vopen(c, 1);
		gen_rebuild_all(c);
		vlog(c, "rebuild");
	} else if (!strcmp(cmd, "check")) {
		int left;

		parse_opts(argc, argv, 2, &o, "--repair");
		want_args(&o, 0, 0, cmd);
		vopen(c, 1);
		left = cmd_check(c, o.repair);
		str_free(&h);
		str_free(&cram);
		vclose(c);
		return left ? EX_REFUSED : EX_DONE;
	} else {
		usage("unknown command '%s'", cmd);
	}
	secret_free(&sec);
	str_free(&h);
	str_free(&cram);
	vclose(c);
	return EX_DONE;
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
	struct vctx c = {NULL, NULL, 0, -1, -1};

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
