/*
 * init - `facteur init`: make a new root (see facteur.c).
 *
 * The steps run in a fixed order and stop at the first failure, which is
 * reported with what is left: control/ is made first, so a half-made
 * root is refused by a second init and must be removed by hand. Only
 * settings without a usable built-in default are written; a missing
 * control file means the default everywhere else.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cdbx.h"
#include "ctl.h"
#include "facteur.h"
#include "fsx.h"
#include "msg.h"
#include "name.h"
#include "priv.h"
#include "rules.h"
#include "srs.h"
#include "store.h"

#define USERADD "/usr/sbin/useradd"
#define USERADD_ERR_MAX 4096

static const struct {
	const char *name;
	unsigned port, devport;
} listens[] = {
	{"smtp", 25, 2525},
	{"submission", 587, 2587},
	{"smtps", 465, 2465},
	{"pop3", 110, 2110},
	{"pop3s", 995, 2995},
};

struct init {
	const char *root;
	const char *host_arg;
	const char *mailuser;	/* control/mailuser */
	int dev;
	struct str host;
	struct str path;	/* scratch */
};

/* user_name_ok - a name useradd takes and cannot read as an option */
static int user_name_ok(const char *n)
{
	size_t i;

	if (!((*n >= 'a' && *n <= 'z') || *n == '_') || strlen(n) > 32)
		return 0;
	for (i = 1; n[i]; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') ||
		      (n[i] >= '0' && n[i] <= '9') || n[i] == '_' ||
		      n[i] == '-'))
			return 0;
	return 1;
}

/* valued - whether argv[*i] is NAME, as "NAME VALUE" or "NAME=VALUE";
 * the value in *out and *i past it; WHAT names the value in the error */
static int valued(int argc, char **argv, int *i, const char *name,
		  const char *what, const char **out)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n))
		return 0;
	if (argv[*i][n] == '=') {
		*out = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n])
		return 0;
	if (*i + 1 >= argc)
		usage_die("%s needs %s", name, what);
	*out = argv[++*i];
	return 1;
}

/* parse - the flags of init; anything else is a usage error */
static void parse(struct init *in, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dev"))
			in->dev = 1;
		else if (valued(argc, argv, &i, "--hostname", "a name",
				&in->host_arg) ||
			 valued(argc, argv, &i, "--mailuser", "a user name",
				&in->mailuser))
			continue;
		else if (argv[i][0] == '-')
			usage_die("unknown option %s", argv[i]);
		else
			usage_die("unexpected argument %s", argv[i]);
	}
	/* checked before anything is made: a root is never half made for a
	 * name useradd would refuse or read as an option */
	if (!user_name_ok(in->mailuser))
		usage_die("--mailuser: %s is not a user name useradd accepts "
			  "(a-z or _, then a-z, 0-9, _ or -, at most 32)",
			  in->mailuser);
}

/* refuse_root_user - exit 1 before anything is made when the mail user
 * is an existing user with uid or gid 0: facteur run would refuse to run
 * the services as it */
static void refuse_root_user(const char *name)
{
	/* a lookup that fails is give_to_mailuser()'s to report */
	struct passwd *pw = getpwnam(name);

	if (pw && (pw->pw_uid == 0 || pw->pw_gid == 0))
		msg_die(EX_REFUSED, "--mailuser: %s has uid or gid 0; the "
			"services never run as root: name another user", name);
}

/* pick_host - --hostname, else the system host name, checked and folded */
static int pick_host(struct init *in)
{
	struct str sys = STR_INIT;
	const char *h = in->host_arg, *why = NULL;
	int r = 0;

	if (!h) {
		/* the kernel bounds the name by HOST_NAME_MAX */
		r = str_ready(&sys, HOST_NAME_MAX + 1);
		if (r == 0 && gethostname(sys.s, HOST_NAME_MAX + 1) < 0)
			r = -errno;
		if (r < 0) {
			msg_warn("cannot get the host name: %s; give one with "
				 "--hostname", msg_err(r));
			str_free(&sys);
			return EX_TEMP;
		}
		sys.s[HOST_NAME_MAX] = 0;
		h = sys.s;
	}
	r = name_domain(h, strlen(h), &in->host, &why);
	if (r == -EINVAL)
		msg_warn("host name %s is not valid (%s); give another with "
			 "--hostname", h, why ? why : "bad syntax");
	else if (r < 0)
		msg_warn("cannot check the host name: %s", msg_err(r));
	str_free(&sys);
	return r == 0 ? 0 : r == -EINVAL ? EX_REFUSED : EX_TEMP;
}

/* set_mode - give a directory we made (never a link) its exact mode,
 * since umask(077) took the group and other bits off at mkdir; one that
 * someone else owns (made in a parent they can write) is refused, not
 * adopted */
static int set_mode(const char *path, mode_t mode)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	int r = 0;

	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (st.st_uid != geteuid())
		r = -EPERM;
	else if (fchmod(fd, mode) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* make_root - ROOT and missing parents 0755; an existing ROOT keeps its
 * mode (it may be a directory such as /srv that is not ours to change) */
static int make_root(struct init *in)
{
	struct str *p = &in->path;
	size_t i;
	int r;

	r = str_copys(p, in->root);
	for (i = 1; r == 0 && i <= p->len; i++) {
		int last = i == p->len;

		if (!last && p->s[i] != '/')
			continue;
		p->s[i] = 0;
		if (mkdir(p->s, 0755) == 0)
			r = set_mode(p->s, 0755);
		else if (errno != EEXIST)
			r = -errno;
		else if (last && !fsx_is_dir(p->s))
			r = -ENOTDIR;
		if (!last)
			p->s[i] = '/';
	}
	return r;
}

/* DROP_MODE - drop/'s final mode, set by open_drop() as the very last
 * step: until then drop/ is 0700, so that no local user can put a file
 * or a hard link in it while init still hands files to the mail user */
#define DROP_MODE 01733

/* make_dirs - the layout below ROOT, each with its mode (drop/ closed) */
static int make_dirs(struct init *in, const char **what)
{
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < layout_count; i++) {
		mode_t mode = layout_dirs[i].mode;

		if (!strcmp(layout_dirs[i].path, "drop"))
			mode = 0700;
		in->path.len = 0;
		r = str_catf(&in->path, "%s/%s", in->root, layout_dirs[i].path);
		*what = in->path.s;
		if (r == 0)
			r = fsx_mkdir(in->path.s, mode);
		if (r == 0)
			r = set_mode(in->path.s, mode);
	}
	/* sendmail run by any user pokes mta-send through it */
	in->path.len = 0;
	if (r == 0)
		r = str_catf(&in->path, "%s/drop/trigger", in->root);
	*what = in->path.s;
	if (r == 0 && mkfifo(in->path.s, 0622) < 0)
		r = -errno;
	if (r == 0 && fchmodat(AT_FDCWD, in->path.s, 0622, 0) < 0)
		r = -errno;
	return r;
}

/* open_drop - the last step: drop/ (the mail user's by now, in ROOT
 * that only root can change) gets the mode that lets every local user
 * leave mail in it */
static int open_drop(struct init *in, const char **what)
{
	int fd, r;

	in->path.len = 0;
	r = str_catf(&in->path, "%s/drop", in->root);
	*what = in->path.s;
	if (r < 0)
		return r;
	fd = open(in->path.s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fchmod(fd, DROP_MODE) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* put_ctl - write one control file, mode 0644, atomically */
static int put_ctl(struct init *in, const char *name, const struct str *v)
{
	int r = ctl_path(&in->path, in->root, name);

	return r < 0 ? r : fsx_write_atomic(in->path.s, v->s, v->len, 0644);
}

/* put_srssecret - the key of SRS addresses (lib/srs.h): secret, 0600 */
static int put_srssecret(struct init *in)
{
	struct str v = STR_INIT;
	int r = srs_secret_new(&v);

	if (r == 0)
		r = ctl_path(&in->path, in->root, "srssecret");
	if (r == 0)
		r = fsx_write_atomic(in->path.s, v.s, v.len, 0600);
	str_wipe(&v);
	return r;
}

/* write_ctls - me, the listen files, relayrules, mailuser, srssecret */
static int write_ctls(struct init *in, const char **what)
{
	struct str v = STR_INIT, name = STR_INIT;
	size_t i;
	int r;

	*what = "control/me";
	r = str_copyb(&v, in->host.s, in->host.len);
	if (r == 0)
		r = str_catc(&v, '\n');
	if (r == 0)
		r = put_ctl(in, "me", &v);
	for (i = 0; r == 0 && i < sizeof listens / sizeof listens[0]; i++) {
		v.len = name.len = 0;
		r = str_catf(&name, "listen.%s", listens[i].name);
		*what = name.s;
		if (r == 0 && in->dev)
			r = str_catf(&v, "127.0.0.1:%u\n", listens[i].devport);
		else if (r == 0)
			r = str_catf(&v, "0.0.0.0:%u\n[::]:%u\n",
				     listens[i].port, listens[i].port);
		if (r == 0)
			r = put_ctl(in, name.s, &v);
	}
	if (r == 0) {
		*what = "control/relayrules";
		r = str_copys(&v, "127.:allow,RELAYCLIENT=\"\"\n"
			      "::1:allow,RELAYCLIENT=\"\"\n");
	}
	if (r == 0)
		r = put_ctl(in, "relayrules", &v);
	if (r == 0) {
		*what = "control/mailuser";
		r = str_copys(&v, in->mailuser);
		if (r == 0)
			r = str_catc(&v, '\n');
	}
	if (r == 0)
		r = put_ctl(in, "mailuser", &v);
	if (r == 0) {
		*what = "control/srssecret";
		r = put_srssecret(in);
	}
	str_free(&v);
	str_free(&name);
	return r;
}

/* make_db - create the database with the current schema */
static int make_db(struct init *in)
{
	struct store *db = NULL;
	int r = store_open(in->root, 1, &db);

	if (r == 0 && store_close(db) != 0)
		r = -EBUSY;
	return r;
}

/* make_cdbs - empty assign.cdb and rcpthosts.cdb, so that readers find
 * a table (with no domain in it) rather than no file */
static int make_cdbs(struct init *in, const char **what)
{
	static const char *const names[] = {"assign.cdb", "rcpthosts.cdb"};
	struct cdbw w;
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < 2; i++) {
		*what = names[i];
		r = ctl_path(&in->path, in->root, names[i]);
		if (r == 0)
			r = cdbw_start(&w, in->path.s, 0644);
		if (r == 0)
			r = cdbw_finish(&w);
	}
	if (r == 0) {
		struct str err = STR_INIT;
		unsigned long n;

		/* mta-smtpd reads the compiled rules, never the text */
		*what = "relayrules.cdb";
		r = rules_compile(in->root, &err, &n);
		str_free(&err);
	}
	return r;
}

/* read_err - what useradd said, bounded, first line only */
static void read_err(int fd, struct str *err)
{
	char buf[512];
	ssize_t n;

	while ((n = read(fd, buf, sizeof buf)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (err->len < USERADD_ERR_MAX &&
		    str_catb(err, buf, (size_t)n) < 0)
			break;
	}
	if (err->s)
		err->s[strcspn(err->s, "\n")] = 0;
}

/* useradd - run useradd with an argv array and a clean environment */
static int useradd(const char *home, const char *name, struct str *err)
{
	char *const argv[] = {
		"useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", (char *)home, "--shell", "/usr/sbin/nologin",
		(char *)name, NULL
	};
	char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
	int p[2], st;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		if (nul < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 ||
		    dup2(p[1], 2) < 0)
			_exit(127);
		execve(USERADD, argv, envp);
		_exit(127);
	}
	close(p[1]);
	read_err(p[0], err);
	close(p[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (err->len == 0)
		(void)str_catf(err, "%s exited with status %d", USERADD,
			       WIFEXITED(st) ? WEXITSTATUS(st) : 128 +
			       WTERMSIG(st));
	return -EIO;
}

/* chown_one - give the mail user one entry of dirfd that init made:
 * through a descriptor of our own (O_PATH, never following a link), and
 * only when it is ours (root's: no other user can make a root-owned file)
 * and, unless a directory, has one link (a hard link to /etc/shadow
 * planted below the root has two). Returns the entry's descriptor when it
 * is a directory to descend into, 0 when done, -errno on error. */
static int chown_one(int dirfd, const char *name, uid_t uid, gid_t gid)
{
	struct stat st;
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC), sub;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		sub = -errno;
		close(fd);
		return sub;
	}
	if (st.st_uid != geteuid() || S_ISLNK(st.st_mode) ||
	    (!S_ISDIR(st.st_mode) && st.st_nlink != 1)) {
		close(fd);
		return 0;
	}
	if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) < 0) {
		sub = -errno;
		close(fd);
		return sub;
	}
	if (!S_ISDIR(st.st_mode)) {
		close(fd);
		return 0;
	}
	/* the same inode, now readable: "." through the O_PATH descriptor */
	sub = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(fd);
	return sub < 0 ? -errno : sub;
}

/* chown_below - chown_one() for everything below dirfd, which it closes */
static int chown_below(int dirfd, uid_t uid, gid_t gid)
{
	DIR *d = fdopendir(dirfd);
	struct dirent *de;
	int r = 0;

	if (!d) {
		close(dirfd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		int sub;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		sub = chown_one(dirfd, de->d_name, uid, gid);
		if (sub < 0 && r == 0)
			r = sub;
		else if (sub > 0 && chown_below(sub, uid, gid) < 0 && r == 0)
			r = -EIO;
	}
	closedir(d);
	return r;
}

/* Two useradd runs at once can both succeed and lose one of the two
 * entries (seen: two inits started together on a machine without the
 * user, each chowned its root to its own uid, /etc/passwd kept one), so
 * inits take turns here; /run is root's alone, so no user can hold it */
#define INIT_LOCK "/run/facteur-init.lock"

/* user_lock - the turn of this init: a descriptor to close, or -1 where
 * /run cannot hold the lock (the init goes on, warned: one init alone,
 * the usual case, needs no lock) */
static int user_lock(void)
{
	int fd = open(INIT_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		      0600), e = errno;

	while (fd >= 0 && flock(fd, LOCK_EX) < 0)
		if ((e = errno) != EINTR) {
			close(fd);
			fd = -1;
		}
	if (fd < 0)
		msg_warn("cannot lock %s: %s; going on without it (inits "
			 "started at once could make the mail user twice)",
			 INIT_LOCK, strerror(e));
	return fd;
}

/* give_to_mailuser - as root: make the mail user, give it the root's
 * content (ROOT itself stays root's) */
static int give_to_mailuser(struct init *in, struct str *user, int *made,
			    struct str *err)
{
	struct passwd *pw;
	char *home;
	int fd, r, lock;

	r = ctl_get(in->root, "mailuser", MAILUSER_DEFAULT, user);
	if (r < 0)
		return r;
	if (!user_name_ok(user->s)) {
		(void)str_catf(err, "control/mailuser: %s is not a user name "
			       "useradd accepts", user->s);
		return -EINVAL;
	}
	lock = user_lock();
	errno = 0;
	if (!(pw = getpwnam(user->s))) {
		if (errno) {
			r = -errno;
			goto unlock;
		}
		/* useradd wants an absolute home directory */
		if (!(home = realpath(in->root, NULL))) {
			r = -errno;
			goto unlock;
		}
		r = useradd(home, user->s, err);
		free(home);
		*made = r == 0;
		/* an init without the lock may have made the user first */
		errno = 0;
		if (!(pw = getpwnam(user->s))) {
			r = r < 0 ? r : errno ? -errno : -ENOENT;
			goto unlock;
		}
		err->len = 0;
	}
	r = 0;
	if (pw->pw_uid != 0) {
		fd = open(in->root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			  O_CLOEXEC);
		r = fd < 0 ? -errno : chown_below(fd, pw->pw_uid, pw->pw_gid);
	}
unlock:
	if (lock >= 0)
		close(lock);
	return r;
}

/* summary - what was made and what to do next */
static int summary(struct init *in, const struct str *user, int made)
{
	size_t i;

	printf("made a Facteur root in %s\n", in->root);
	printf("  host name   %s\n", in->host.s);
	if (user->len)
		printf("  mail user   %s%s\n", user->s,
		       made ? " (created)" : "");
	for (i = 0; i < sizeof listens / sizeof listens[0]; i++) {
		if (in->dev)
			printf("  %-11s 127.0.0.1:%u\n", listens[i].name,
			       listens[i].devport);
		else
			printf("  %-11s 0.0.0.0:%u [::]:%u\n", listens[i].name,
			       listens[i].port, listens[i].port);
	}
	printf("next step: vadmin adddomain example.test --root %s\n"
	       "then:      facteur run --root %s\n", in->root, in->root);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		msg_warn("cannot write the summary: %s", strerror(errno));
		return EX_TEMP;
	}
	return EX_DONE;
}

/* half_made - report a failure after the root was started */
static int half_made(struct init *in, const char *what, int r,
		     const struct str *err)
{
	msg_warn("cannot make %s: %s; %s is only partly made: remove it "
		 "and run facteur init again", what,
		 err && err->len ? err->s : msg_err(r), in->root);
	return EX_TEMP;
}

/* cmd_init - facteur init */
int cmd_init(const char *root, int argc, char **argv)
{
	struct init in = {.root = root, .mailuser = MAILUSER_DEFAULT,
			   .host = STR_INIT, .path = STR_INIT};
	struct str user = STR_INIT, err = STR_INIT, tls = STR_INIT;
	const char *what = "";
	struct stat st;
	int r, made = 0, ex;

	parse(&in, argc, argv);
	refuse_root_user(in.mailuser);
	if (str_catf(&in.path, "%s/control", root) < 0)
		msg_die(EX_TEMP, "out of memory");
	if (lstat(in.path.s, &st) == 0)
		msg_die(EX_REFUSED, "%s already holds a Facteur root; nothing "
			"changed", root);
	if (errno != ENOENT && errno != ENOTDIR)
		msg_die(EX_TEMP, "cannot look at %s: %s", in.path.s,
			strerror(errno));
	ex = pick_host(&in);
	if (ex)
		goto out;
	r = make_root(&in);
	if (r < 0) {
		msg_warn("cannot make %s: %s; nothing changed", root,
			 msg_err(r));
		ex = EX_TEMP;
		goto out;
	}
	ex = EX_TEMP;
	if ((r = make_dirs(&in, &what)) < 0 ||
	    (r = write_ctls(&in, &what)) < 0 ||
	    (what = "the database", (r = make_db(&in)) < 0) ||
	    (r = make_cdbs(&in, &what)) < 0) {
		ex = half_made(&in, what, r, NULL);
		goto out;
	}
	what = "the TLS certificate";
	r = str_catf(&tls, "%s/control/tls", root);
	if (r == 0)
		r = cert_make(tls.s, in.host.s, in.dev);
	if (r == -EIO)
		(void)str_catf(&err, "OpenSSL: %s", cert_error());
	if (r == 0 && geteuid() == 0) {
		what = "the mail user and its files";
		r = give_to_mailuser(&in, &user, &made, &err);
	}
	if (r == 0)
		r = open_drop(&in, &what);
	if (r < 0)
		ex = half_made(&in, what, r, &err);
	else
		ex = summary(&in, &user, made);
out:
	str_free(&in.host);
	str_free(&in.path);
	str_free(&user);
	str_free(&err);
	str_free(&tls);
	return ex;
}
