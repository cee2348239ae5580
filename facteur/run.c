/*
 * run - `facteur run`: the supervisor (see facteur.c).
 *
 * One loop waits in poll(2) on a signalfd (SIGCHLD, SIGTERM, SIGINT) and
 * on one pipe per child, which carries the child's stdout and stderr;
 * its timeout is the nearest due restart, grant expiry or kill deadline,
 * so it never spins and never sleeps. Children get their own process
 * group, so a ^C on the terminal reaches facteur alone and the children
 * are stopped in order, and SIGTERM as parent-death signal, so a killed
 * supervisor leaves no service behind.
 *
 * Privileges: the supervisor binds each service's listen.* sockets
 * itself (lib/listen.h), before the service first starts, and keeps them
 * for the rest of its life, so a restarted service gets the same sockets
 * and never needs root. Started as root, it stays root only to bind,
 * fork and signal; each child becomes the mail user (priv_drop: groups,
 * gid, uid, each checked) before execve, and learns its descriptors
 * from FACTEUR_LISTEN_FDS. Started as another user, the same happens
 * with no change of user.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "clock.h"
#include "ctl.h"
#include "facteur.h"
#include "grant.h"
#include "listen.h"
#include "msg.h"
#include "priv.h"
#include "store.h"

/* the services, and after them vadmin watch and vadmin share (started
 * only when the accounts are in PostgreSQL: docs/scale-out.md) */
#define NSERVICES 3
#define NSVC 5
#define LINE_MAX_LEN 65536
#define READ_CHUNK 4096
#define BACKOFF_MAX 60
#define STABLE_MS 60000LL
#define EXPIRE_MS 60000LL
#define STOP_MS 10000LL

extern char **environ;

static const char *const smtpd_kinds[] = {"smtp", "submission", "smtps"};
static const char *const pop3d_kinds[] = {"pop3", "pop3s"};

/* the services, the listen.KIND sockets each is given, and the command
 * word of one that is a vadmin command */
static const struct {
	const char *name;
	const char *const *kinds;
	size_t nkinds;
	const char *command;
} svc_table[NSVC] = {
	{"mta-smtpd", smtpd_kinds, 3, NULL},
	{"mta-send", NULL, 0, NULL},
	{"pop3d", pop3d_kinds, 2, NULL},
	{"vadmin", NULL, 0, "watch"},
	{"vadmin", NULL, 0, "share"},
};

struct svc {
	const char *name;
	const char *command;	/* vadmin's command word, or NULL */
	const char *const *kinds;
	size_t nkinds;
	struct listen_set ls;	/* bound once, kept across restarts */
	int bound;
	struct str path;
	pid_t pid;		/* running child, 0 when none */
	pid_t fd_pid;		/* the child that writes fd */
	int fd;			/* read end of its output pipe, -1 when none */
	struct str buf;		/* an unfinished line */
	long long started;	/* ms, monotonic */
	long long restart_at;	/* ms, 0 when no restart is due */
	unsigned backoff;	/* s, the next delay */
};

struct run {
	const char *root;
	struct runlog log;
	struct svc svc[NSVC];
	size_t n;
	int sigfd;
	sigset_t oldmask;
	int drop;		/* root: children become uid/gid */
	uid_t uid;
	gid_t gid;
	int stopping;
	long long deadline, next_expire;
};

/* run_trusted - as root, run only what root owns and nobody else may
 * change (doctor applies the same rule) */
int run_trusted(const struct stat *st)
{
	return geteuid() != 0 || (st->st_uid == 0 && !(st->st_mode & 022));
}

/* run_service - the name of service I (0, 1, ...), NULL past the last */
const char *run_service(size_t i)
{
	return i < NSERVICES ? svc_table[i].name : NULL;
}

/* shared_store - whether control/accountdb names PostgreSQL, whose
 * changes vadmin watch brings into this host's CDBs (an unreadable file
 * is said in the log, and taken as SQLite: the services need neither) */
static int shared_store(struct run *ru)
{
	char *conninfo = NULL;
	int r = store_accountdb(ru->root, &conninfo);

	if (r < 0)
		runlog_say(&ru->log, "cannot read control/accountdb: %s; not "
			   "watching the account database", msg_err(r));
	free(conninfo);
	return r == 0 && conninfo != NULL;
}

/* find_services - the services built beside this program */
static int find_services(struct run *ru)
{
	struct str self = STR_INIT;
	struct stat st;
	size_t i;
	int r;

	/* this binary's directory: "DIR/" of an empty sibling, less its '/' */
	r = args_sibling(&self, "");
	if (r == 0)
		str_trunc(&self, self.len - 1);
	if (r == 0 && (stat(self.s, &st) < 0 || !run_trusted(&st))) {
		runlog_say(&ru->log, "not running services from %s: it is "
			   "not root's alone", self.s);
		goto out;
	}
	for (i = 0; r == 0 && i < NSVC; i++) {
		struct svc *s = &ru->svc[ru->n];

		if (svc_table[i].command && !shared_store(ru))
			continue;
		s->path = (struct str)STR_INIT;
		r = str_catf(&s->path, "%s/%s", self.s, svc_table[i].name);
		if (r < 0 || stat(s->path.s, &st) < 0 || !S_ISREG(st.st_mode) ||
		    access(s->path.s, X_OK) < 0) {
			str_free(&s->path);
			continue;
		}
		if (!run_trusted(&st)) {
			runlog_say(&ru->log, "not running %s: others may "
				   "change it", s->path.s);
			str_free(&s->path);
			continue;
		}
		s->name = svc_table[i].name;
		s->command = svc_table[i].command;
		s->kinds = svc_table[i].kinds;
		s->nkinds = svc_table[i].nkinds;
		s->ls = (struct listen_set)LISTEN_SET_INIT;
		s->fd = -1;
		s->backoff = 1;
		s->buf = (struct str)STR_INIT;
		ru->n++;
	}
out:
	str_free(&self);
	return r;
}

/* child - in the forked child: plumbing, the mail user, then exec the
 * service with its sockets (and only those) left open across execve */
static _Noreturn void child(struct run *ru, struct svc *s, int out,
			    pid_t parent, char **envp)
{
	char *argv[] = {(char *)s->name, "--root", (char *)ru->root,
			(char *)s->command, NULL};
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	size_t i;

	if (signal(SIGPIPE, SIG_DFL) == SIG_ERR ||
	    sigprocmask(SIG_SETMASK, &ru->oldmask, NULL) < 0 ||
	    setpgid(0, 0) < 0 ||
	    nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(out, 2) < 0)
		_exit(127);
	for (i = 0; i < s->ls.n; i++)
		if (fcntl(s->ls.s[i].fd, F_SETFD, 0) < 0)
			_exit(127);
	if (ru->drop && priv_drop(ru->uid, ru->gid) < 0) {
		(void)!write(2, "cannot become the mail user\n", 28);
		_exit(127);
	}
	/* after the drop: a change of credentials clears it */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(127);
	execve(s->path.s, argv, envp);
	/* on the pipe, so in the log: a service that cannot start says
	 * which program, as whom and why (a directory the mail user cannot
	 * reach, a missing x bit), not only "exited status 127" */
	{
		int e = errno;
		struct passwd *pw = getpwuid(geteuid());

		if (pw)
			dprintf(2, "cannot execute %s as %s: %s\n", s->path.s,
				pw->pw_name, strerror(e));
		else
			dprintf(2, "cannot execute %s as uid %ld: %s\n",
				s->path.s, (long)geteuid(), strerror(e));
	}
	_exit(127);
}

/* child_env - our environment without FACTEUR_LISTEN_FDS, plus the
 * service's own when it has sockets; *envp_r is NULL-terminated and
 * points into environ and into *fds */
static int child_env(struct svc *s, struct str *fds, char ***envp_r)
{
	size_t n, k = 0, kl = strlen(LISTEN_ENV "=");
	char **e;
	int r;

	for (n = 0; environ[n]; n++)
		;
	e = calloc(n + 2, sizeof *e);
	if (!e)
		return -ENOMEM;
	for (n = 0; environ[n]; n++)
		if (strncmp(environ[n], LISTEN_ENV "=", kl))
			e[k++] = environ[n];
	if (s->nkinds) {
		r = listen_env(&s->ls, s->kinds, s->nkinds, fds);
		if (r < 0) {
			free(e);
			return r;
		}
		e[k++] = fds->s;
	}
	e[k] = NULL;
	*envp_r = e;
	return 0;
}

/* bind_all - the service's sockets, once; 0 when it may start */
static int bind_all(struct run *ru, struct svc *s)
{
	struct str err = STR_INIT;
	size_t k;
	int r = 0;

	if (s->bound)
		return 0;
	for (k = 0; r == 0 && k < s->nkinds; k++)
		r = listen_bind(&s->ls, ru->root, s->kinds[k], &err);
	if (r < 0) {
		runlog_say(&ru->log, "cannot start %s: %s", s->name, err.s);
		listen_free(&s->ls);
	} else {
		s->bound = 1;
	}
	str_free(&err);
	return r;
}

/* flush - log what is left of a closed pipe's unfinished line */
static void flush(struct run *ru, struct svc *s)
{
	if (s->buf.len)
		runlog_child(&ru->log, s->name, s->fd_pid, s->buf.s,
			     s->buf.len);
	s->buf.len = 0;
}

/* close_pipe - done with a child's output */
static void close_pipe(struct run *ru, struct svc *s)
{
	flush(ru, s);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* schedule - a restart after the backoff, which doubles up to the cap
 * and starts over once a child has stayed up STABLE_MS */
static void schedule(struct run *ru, struct svc *s, long long now)
{
	if (now - s->started >= STABLE_MS)
		s->backoff = 1;
	runlog_say(&ru->log, "restarting %s in %u s", s->name, s->backoff);
	s->restart_at = now + (long long)s->backoff * 1000;
	s->backoff *= 2;
	if (s->backoff > BACKOFF_MAX)
		s->backoff = BACKOFF_MAX;
}

/* start - fork and exec one service with its output on a new pipe */
static void start(struct run *ru, struct svc *s)
{
	struct str fds = STR_INIT;
	pid_t parent = getpid(), pid;
	char **envp = NULL;
	int p[2], r;

	s->restart_at = 0;
	s->started = now_ms();
	if (bind_all(ru, s) < 0) {
		schedule(ru, s, s->started);
		return;
	}
	if ((r = child_env(s, &fds, &envp)) < 0) {
		runlog_say(&ru->log, "cannot start %s: %s", s->name,
			   msg_err(r));
		schedule(ru, s, s->started);
		return;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		runlog_say(&ru->log, "cannot start %s: pipe: %s", s->name,
			   strerror(errno));
		free(envp);
		str_free(&fds);
		schedule(ru, s, s->started);
		return;
	}
	pid = fork();
	if (pid == 0)
		child(ru, s, p[1], parent, envp);
	free(envp);
	str_free(&fds);
	close(p[1]);
	if (pid < 0) {
		runlog_say(&ru->log, "cannot start %s: fork: %s", s->name,
			   strerror(errno));
		close(p[0]);
		schedule(ru, s, s->started);
		return;
	}
	/* a grandchild may still hold the old pipe: stop reading it */
	close_pipe(ru, s);
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
		runlog_say(&ru->log, "%s: cannot make its pipe non-blocking: "
			   "%s", s->name, strerror(errno));
	s->fd = p[0];
	s->pid = s->fd_pid = pid;
	runlog_say(&ru->log, "started %s pid %ld", s->name, (long)pid);
}

/* exited - log how a child ended and plan its restart */
static void exited(struct run *ru, pid_t pid, int st)
{
	size_t i;

	for (i = 0; i < ru->n && ru->svc[i].pid != pid; i++)
		;
	if (i == ru->n)
		return;
	ru->svc[i].pid = 0;
	if (WIFSIGNALED(st))
		runlog_say(&ru->log, "%s exited on signal %d", ru->svc[i].name,
			   WTERMSIG(st));
	else
		runlog_say(&ru->log, "%s exited status %d", ru->svc[i].name,
			   WEXITSTATUS(st));
	if (!ru->stopping)
		schedule(ru, &ru->svc[i], now_ms());
}

/* reap - collect every child that ended */
static void reap(struct run *ru)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		exited(ru, pid, st);
}

/* stop - SIGTERM to every child; SIGKILL follows at the deadline */
static void stop(struct run *ru)
{
	size_t i;

	if (ru->stopping)
		return;
	ru->stopping = 1;
	ru->deadline = now_ms() + STOP_MS;
	runlog_say(&ru->log, "stopping");
	for (i = 0; i < ru->n; i++) {
		ru->svc[i].restart_at = 0;
		if (ru->svc[i].pid > 0 && kill(ru->svc[i].pid, SIGTERM) < 0)
			runlog_say(&ru->log, "cannot stop %s: %s",
				   ru->svc[i].name, strerror(errno));
	}
}

/* kill_rest - past the deadline: SIGKILL and wait for each */
static void kill_rest(struct run *ru)
{
	size_t i;
	int st;

	for (i = 0; i < ru->n; i++) {
		pid_t pid = ru->svc[i].pid;

		if (pid <= 0)
			continue;
		runlog_say(&ru->log, "%s did not stop; killing it",
			   ru->svc[i].name);
		/* its process group too: nothing it started may outlive us */
		if (kill(-pid, SIGKILL) < 0 && kill(pid, SIGKILL) < 0 &&
		    errno != ESRCH)
			continue;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		exited(ru, pid, st);
	}
}

/* on_signal - everything the signalfd holds */
static void on_signal(struct run *ru)
{
	struct signalfd_siginfo si;

	while (read(ru->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			reap(ru);
		else
			stop(ru);
	}
}

/* on_output - read what a child printed and log whole lines; a line
 * longer than LINE_MAX_LEN is logged in pieces */
static void on_output(struct run *ru, struct svc *s)
{
	ssize_t n;
	size_t a;
	char *nl;

	for (;;) {
		if (str_ready(&s->buf, READ_CHUNK) < 0) {
			close_pipe(ru, s);
			return;
		}
		n = read(s->fd, s->buf.s + s->buf.len, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close_pipe(ru, s);
			return;
		}
		s->buf.len += (size_t)n;
		a = 0;
		while ((nl = memchr(s->buf.s + a, '\n', s->buf.len - a))) {
			runlog_child(&ru->log, s->name, s->fd_pid, s->buf.s + a,
				     (size_t)(nl - (s->buf.s + a)));
			a = (size_t)(nl - s->buf.s) + 1;
		}
		if (s->buf.len - a >= LINE_MAX_LEN) {
			runlog_child(&ru->log, s->name, s->fd_pid, s->buf.s + a,
				     s->buf.len - a);
			a = s->buf.len;
		}
		memmove(s->buf.s, s->buf.s + a, s->buf.len - a);
		s->buf.len -= a;
	}
}

/* the log of run_warn: facteur run's own, not its stderr */
static struct runlog *warn_log;

/* run_warn - ctl_num_warn's words into facteur run's log */
static __attribute__((format(printf, 1, 2))) void run_warn(const char *fmt,
							   ...)
{
	struct str text = STR_INIT;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = str_vcatf(&text, fmt, ap);
	va_end(ap);
	if (r == 0 && warn_log)
		runlog_say(warn_log, "%s", text.s);
	str_free(&text);
}

/* expire_grants - remove POP-before-SMTP grants past popbeforesmtp; the
 * entries are never followed, and dot files (temporaries) are left */
static void expire_grants(struct run *ru)
{
	struct str dir = STR_INIT;
	unsigned long life;
	time_t now = time(NULL);
	struct dirent *de;
	unsigned gone = 0;
	DIR *d = NULL;
	int fd = -1, r;

	warn_log = &ru->log;
	life = ctl_num_warn(ru->root, CTL_POPBEFORESMTP, run_warn);
	r = str_catf(&dir, "%s/open-smtp", ru->root);
	if (r == 0 && (fd = open(dir.s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				 O_CLOEXEC)) < 0)
		r = -errno;
	if (r == 0 && !(d = fdopendir(fd))) {
		r = -errno;
		close(fd);
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		struct stat st;

		if (de->d_name[0] == '.' ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode) || grant_live(st.st_mtime, life, now))
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			gone++;
		else if (errno != ENOENT)
			runlog_say(&ru->log, "cannot remove %s/%s: %s", dir.s,
				   de->d_name, strerror(errno));
	}
	if (r < 0)
		runlog_say(&ru->log, "cannot expire grants in %s: %s",
			   dir.len ? dir.s : ru->root, msg_err(r));
	else if (gone)
		runlog_say(&ru->log, "expired %u POP-before-SMTP grant%s", gone,
			   gone == 1 ? "" : "s");
	if (d)
		closedir(d);
	str_free(&dir);
}

/* tick - timed work; returns the poll timeout in ms */
static int tick(struct run *ru)
{
	long long now = now_ms(), next;
	size_t i;

	if (ru->stopping)
		next = ru->deadline;
	else {
		if (now >= ru->next_expire) {
			expire_grants(ru);
			ru->next_expire = now + EXPIRE_MS;
		}
		for (i = 0; i < ru->n; i++) {
			long long at = ru->svc[i].restart_at;

			if (at && now >= at)
				start(ru, &ru->svc[i]);
		}
		next = ru->next_expire;
		for (i = 0; i < ru->n; i++) {
			long long at = ru->svc[i].restart_at;

			if (at && at < next)
				next = at;
		}
	}
	now = now_ms();
	return next <= now ? 0 : next - now > INT_MAX ? INT_MAX :
	       (int)(next - now);
}

/* running - how many children are alive */
static size_t running(const struct run *ru)
{
	size_t i, k = 0;

	for (i = 0; i < ru->n; i++)
		k += ru->svc[i].pid > 0;
	return k;
}

/* loop - supervise until stopped and every child is gone */
static void loop(struct run *ru)
{
	struct pollfd pf[NSVC + 1];
	size_t i, k;
	int timeout;

	while (!ru->stopping || running(ru)) {
		timeout = tick(ru);
		if (ru->stopping && now_ms() >= ru->deadline) {
			kill_rest(ru);
			break;
		}
		pf[0] = (struct pollfd){ru->sigfd, POLLIN, 0};
		for (i = 0, k = 1; i < ru->n; i++)
			if (ru->svc[i].fd >= 0)
				pf[k++] = (struct pollfd){ru->svc[i].fd,
							  POLLIN, 0};
		if (poll(pf, k, timeout) < 0) {
			if (errno != EINTR)
				msg_die(EX_TEMP, "poll: %s", strerror(errno));
			continue;
		}
		if (pf[0].revents)
			on_signal(ru);
		for (i = 0, k = 1; i < ru->n; i++)
			if (ru->svc[i].fd >= 0 && pf[k++].revents)
				on_output(ru, &ru->svc[i]);
	}
	/* what the children printed before they ended */
	for (i = 0; i < ru->n; i++)
		if (ru->svc[i].fd >= 0) {
			on_output(ru, &ru->svc[i]);
			close_pipe(ru, &ru->svc[i]);
		}
}

/* open_log - as root, find the mail user first: the log file we create
 * must be its own, never root's */
static void open_log(struct run *ru)
{
	uid_t uid = 0;
	gid_t gid = 0;
	int r, give = 0;

	if (geteuid() == 0) {
		r = priv_mailuser(ru->root, &uid, &gid);
		/* the mail user can write control/: naming root (or any
		 * other account) there must not make the services run as
		 * that account (priv_mailuser refuses it) */
		if (r < 0)
			msg_die(EX_TEMP, "cannot find the mail user of %s: %s",
				ru->root, priv_error(r));
		give = 1;
		ru->drop = 1;
		ru->uid = uid;
		ru->gid = gid;
	}
	r = runlog_open(&ru->log, ru->root, give, uid, gid);
	if (r == -EPERM)
		msg_die(EX_TEMP, "%s/log/current is not a plain file of the "
			"mail user's with one link; move it aside", ru->root);
	if (r < 0)
		msg_die(EX_TEMP, "cannot open %s/log/current: %s; is this a "
			"root made by facteur init?", ru->root, msg_err(r));
}

/* std_fds - 0, 1 and 2 open, so that no socket lands on them and is
 * then replaced by a child's /dev/null or pipe; every other descriptor
 * we inherited closed, so that no service (all of them network-facing)
 * gets one that its caller left open by mistake */
static void std_fds(void)
{
	int fd;

	if (close_range(3, ~0U, 0) < 0) {
		struct rlimit rl;
		rlim_t i;

		/* kernels before 5.9 have no close_range: one at a time */
		if (errno != ENOSYS || getrlimit(RLIMIT_NOFILE, &rl) < 0)
			msg_die(EX_TEMP, "cannot close inherited descriptors: "
				"%s", strerror(errno));
		for (i = 3; i < rl.rlim_cur && i < 1048576; i++)
			(void)close((int)i);
	}

	do
		fd = open("/dev/null", O_RDWR);
	while (fd >= 0 && fd <= 2);
	if (fd < 0)
		msg_die(EX_TEMP, "cannot open /dev/null: %s", strerror(errno));
	close(fd);
}

/* cmd_run - facteur run */
int cmd_run(const char *root, int argc, char **argv)
{
	struct run ru;
	sigset_t set;
	size_t i;
	int r;

	if (argc > 1)
		usage_die("%s %s", argv[1][0] == '-' ? "unknown option" :
			  "unexpected argument", argv[1]);
	memset(&ru, 0, sizeof ru);
	ru.root = root;
	std_fds();
	open_log(&ru);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* a reader of our stdout that goes away must not kill us */
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR ||
	    sigprocmask(SIG_BLOCK, &set, &ru.oldmask) < 0 ||
	    (ru.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		msg_die(EX_TEMP, "cannot set up signals: %s", strerror(errno));
	runlog_say(&ru.log, "starting in %s", root);
	r = find_services(&ru);
	if (r < 0)
		runlog_say(&ru.log, "cannot find the services: %s", msg_err(r));
	if (ru.n == 0)
		runlog_say(&ru.log, "no services built yet");
	for (i = 0; i < ru.n; i++)
		start(&ru, &ru.svc[i]);
	loop(&ru);
	runlog_say(&ru.log, "stopped");
	for (i = 0; i < ru.n; i++) {
		str_free(&ru.svc[i].path);
		str_free(&ru.svc[i].buf);
		listen_free(&ru.svc[i].ls);
	}
	close(ru.sigfd);
	runlog_close(&ru.log);
	return EX_DONE;
}
