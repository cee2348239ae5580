/*
 * inject - remote destinations handed to the queue through mta-inject.
 *
 * mta-inject is the queue's door (docs/queue.md): `mta-inject --root ROOT
 * --no-dkim --size N -fSENDER -- RCPT...` (the sender joined to its flag, the recipients
 * after "--": never read as options, lib/args.h) reads the message on
 * standard input and exits 0 once it is queued and synced, 100 when it
 * refuses an address, 111 otherwise. vdeliver runs the one that lies
 * in its own directory (so a test or a second installation uses its
 * own), with execve, an argument vector and a fixed environment, never
 * a shell. The envelope sender is rewritten to an SRS0 address of
 * control/me (lib/srs.h), so that the next hop's SPF check judges this
 * host, not the original sender's domain; a bounce to it comes back to
 * mta-smtpd, which sends it on to the original sender. The null sender
 * stays null. Without control/srssecret, or for a sender SRS cannot
 * carry, the original sender is kept, as qmail's forwards do, and the log
 * says why: a forward that may fail SPF beats one that does not leave.
 * The copy carries the Delivered-To: lines of its path, so that it
 * is recognised as a loop if it ever comes back. Destinations whose
 * paths are the same go in one call. mta-inject's output is read while
 * the message is written, so that neither side can block the other, and
 * its first line is kept for our diagnostic.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "ctl.h"
#include "srs.h"
#include "vdeliver.h"

#define OUT_MAX 1000	/* bytes of mta-inject's output kept */

/* the argument vector of the current call; static, so that a failure
 * exiting in the middle leaves nothing for the leak checker */
static char **argv;
static struct str fopt;	/* -fSENDER */
static struct str sizeopt;	/* the bytes of the message, for --size */

/* inject_path - DIR/mta-inject, DIR being where this program lies */
int inject_path(struct str *out)
{
	return args_sibling(out, "mta-inject");
}

/* first_remote - the first remote address, for messages */
static const char *first_remote(const struct vd *v)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (v->t[i].remote)
			return v->t[i].addr.s;
	return "";
}

/* inject_check - is mta-inject there before any copy is written */
void inject_check(struct vd *v, const struct str *path)
{
	if (faccessat(AT_FDCWD, path->s, X_OK, AT_EACCESS) == 0)
		return;
	if (errno == ENOENT)
		vd_fail(v, EX_TEMP, "4.3.0", "cannot hand %s to the queue: "
			"mta-inject not installed (looked for %s)",
			first_remote(v), path->s);
	vd_fail_errno(v, -errno, "cannot hand %s to the queue: cannot run %s",
		      first_remote(v), path->s);
}

/* feed - the state of one mta-inject's standard input */
struct feed {
	const struct str *pre;	/* Delivered-To: lines, then the message */
	size_t pre_off;
	int src;
	off_t off;
	uint64_t left;
	char *buf;		/* the current piece of the message */
	size_t blen, boff;
};

/* feed_more - the next bytes to write; 0 when everything was written */
static int feed_more(struct feed *f, const char **p, size_t *n,
		     char *iob, size_t iosize)
{
	if (f->pre_off < f->pre->len) {
		*p = f->pre->s + f->pre_off;
		*n = f->pre->len - f->pre_off;
		return 1;
	}
	if (f->boff == f->blen && f->left > 0) {
		size_t want = f->left < iosize ? (size_t)f->left : iosize;
		ssize_t got;

		do
			got = pread(f->src, iob, want, f->off);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EIO;
		f->buf = iob;
		f->blen = (size_t)got;
		f->boff = 0;
		f->off += got;
		f->left -= (uint64_t)got;
	}
	if (f->boff < f->blen) {
		*p = f->buf + f->boff;
		*n = f->blen - f->boff;
		return 1;
	}
	return 0;
}

/* feed_done - n bytes of what feed_more() offered were written */
static void feed_done(struct feed *f, size_t n)
{
	if (f->pre_off < f->pre->len)
		f->pre_off += n;
	else
		f->boff += n;
}

/* srs_why - why a forward keeps its sender, for the log */
static const char *srs_why(int r)
{
	switch (r) {
	case -ENOENT:
		return "no control/srssecret (facteur init makes one)";
	case -E2BIG:
		return "its SRS address would pass 64 bytes";
	default:
		return "SRS cannot carry it";
	}
}

/* forward_sender - the envelope sender of the forwarded copy: SRS0 of
 * control/me, or the original one (lib/srs.h) */
static void forward_sender(struct vd *v, struct str *out)
{
	struct str me = STR_INIT, keys = STR_INIT;
	size_t n;
	int r = 0;

	if (!*v->sender) {
		str_trunc(out, 0);	/* <> is never rewritten */
		return;
	}
	/* ctl_me: the name mta-smtpd checks SRS recipients against */
	if (ctl_me(v->root, &me) < 0 ||
	    ((r = srs_secrets(v->root, &keys, &n)) < 0 && r != -ENOENT))
		vd_fail_errno(v, r < 0 ? r : -EIO, "cannot read control/me "
			      "or control/srssecret");
	if (r == 0)
		r = srs_forward(&keys, me.s, v->sender, time(NULL), out);
	if (r == -ENOMEM)
		vd_fail_errno(v, r, "cannot run mta-inject");
	if (r < 0) {
		vd_log(v, "forward of msg for %s keeps the sender %s: %s",
		       v->rcpt.s, v->sender, srs_why(r));
		if (str_copys(out, v->sender) < 0)
			vd_fail_errno(v, -ENOMEM, "cannot run mta-inject");
	}
	str_wipe(&keys);
	str_free(&me);
}

/* build_argv - mta-inject's arguments: the remote targets whose chain is
 * t's, each marked sent; WHO gets their addresses, for messages. SIZE
 * bytes will be written: --size, so that mta-inject queues nothing if
 * this process dies half-way (end of input alone would look whole) */
static void build_argv(struct vd *v, const struct str *path,
		       struct target *t, struct str *who, uint64_t size)
{
	struct str sender = STR_INIT;
	size_t i, k = 0;
	int r;

	free(argv);
	argv = calloc(v->n + 10, sizeof *argv);
	forward_sender(v, &sender);
	r = args_sender_opt(&fopt, str_cstr(&sender));
	str_free(&sender);
	sizeopt.len = 0;
	if (r == 0)
		r = str_catf(&sizeopt, "%llu", (unsigned long long)size);
	if (!argv || r < 0)
		vd_fail_errno(v, -ENOMEM, "cannot run mta-inject");
	argv[k++] = path->s;
	argv[k++] = "--root";
	argv[k++] = (char *)v->root;
	/* a forward carries someone else's message: never signed as ours
	 * (docs/authentication.md), whatever its From: says */
	argv[k++] = "--no-dkim";
	argv[k++] = "--size";
	argv[k++] = sizeopt.s;
	argv[k++] = fopt.s;	/* -fSENDER, one word: never an option */
	argv[k++] = "--";
	for (i = 0; i < v->n; i++) {
		struct target *u = &v->t[i];

		if (!u->remote || u->sent || u->chain.len != t->chain.len ||
		    memcmp(u->chain.s, t->chain.s, t->chain.len))
			continue;
		u->sent = 1;
		argv[k++] = u->addr.s;
		if ((who->len && str_catc(who, ' ')) ||
		    str_cats(who, u->addr.s))
			vd_fail_errno(v, -ENOMEM, "cannot run mta-inject");
	}
	argv[k] = NULL;
}

/* spawn_inject - mta-inject started, its stdin in[1], its stdout and
 * stderr err[0] (the other ends closed here); its pid */
static pid_t spawn_inject(struct vd *v, const struct str *path,
			  const struct str *who, int in[2], int err[2])
{
	static char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	sigset_t dfl;
	pid_t pid;
	int r;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		vd_fail_errno(v, -errno, "cannot hand %s to the queue", who->s);
	/* SIGPIPE is ignored here; mta-inject starts with the default */
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGXFSZ);
	if (posix_spawn_file_actions_init(&fa) ||
	    posix_spawn_file_actions_adddup2(&fa, in[0], 0) ||
	    posix_spawn_file_actions_adddup2(&fa, err[1], 1) ||
	    posix_spawn_file_actions_adddup2(&fa, err[1], 2) ||
	    posix_spawnattr_init(&sa) ||
	    posix_spawnattr_setsigdefault(&sa, &dfl) ||
	    posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGDEF))
		vd_fail_errno(v, -ENOMEM, "cannot run mta-inject");
	r = posix_spawn(&pid, path->s, &fa, &sa, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&sa);
	close(in[0]);
	close(err[1]);
	if (r != 0)
		vd_fail_errno(v, -r, "cannot hand %s to the queue: cannot run "
			      "%s", who->s, path->s);
	return pid;
}

/* keep_output - what mta-inject printed, up to OUT_MAX bytes; the fd
 * closed (and -1) at its end */
static void keep_output(int *fd, struct str *out)
{
	char b[512];
	ssize_t n = read(*fd, b, sizeof b);

	if (n > 0 && out->len < OUT_MAX)
		(void)str_catb(out, b, (size_t)n);
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		close(*fd);
		*fd = -1;
	}
}

/* write_some - the next piece of the message to mta-inject; 0 while
 * writing goes on, 1 once the whole message was written, 2 when it
 * stopped reading (its status says why), else a negative errno from
 * reading the message */
static int write_some(struct feed *f, int fd)
{
	static char iob[65536];
	const char *p = NULL;
	size_t n = 0;
	ssize_t w;
	int more = feed_more(f, &p, &n, iob, sizeof iob);

	if (more < 0)
		return more;
	if (more == 0)
		return 1;
	w = write(fd, p, n);
	if (w > 0)
		feed_done(f, (size_t)w);
	else if (w < 0 && errno != EAGAIN && errno != EINTR)
		return 2;	/* EPIPE and the like */
	return 0;
}

/* pump - write the message while reading what mta-inject says, so that
 * neither side blocks the other; 0 or a negative errno, *complete when
 * the whole message went in */
static int pump(struct feed *f, int in, int errfd, struct str *out,
		int *complete)
{
	int r = 0, writing = 1;

	*complete = 0;
	if (fcntl(in, F_SETFL, O_NONBLOCK) < 0)
		r = -errno;
	while (r == 0 && (writing || errfd >= 0)) {
		struct pollfd pf[2] = {{errfd, POLLIN, 0},
				       {writing ? in : -1, POLLOUT, 0}};
		int w;

		if (poll(pf, 2, -1) < 0) {
			if (errno != EINTR)
				r = -errno;
			continue;
		}
		if (pf[0].revents)
			keep_output(&errfd, out);
		if (!writing || !pf[1].revents)
			continue;
		w = write_some(f, in);
		if (w == 0)
			continue;
		*complete = w == 1;
		if (w < 0)
			r = w;
		writing = 0;
		close(in);
	}
	if (writing)
		close(in);
	if (errfd >= 0)
		close(errfd);
	return r;
}

/* verdict - mta-inject's exit: 100 is permanent, any other failure
 * temporary, each with its first line of output */
static void verdict(struct vd *v, const struct str *who, int status, int r,
		    int complete, struct str *out)
{
	int perm = WIFEXITED(status) && WEXITSTATUS(status) == 100;
	size_t i;

	if (r < 0)
		vd_fail_errno(v, r, "cannot hand %s to the queue: reading the "
			      "message", who->s);
	if (r == 0 && !complete && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)
		vd_fail(v, EX_TEMP, "4.3.0", "cannot hand %s to the queue: "
			"mta-inject exited 0 without reading the whole message",
			who->s);
	for (i = 0; i < out->len; i++)
		if (out->s[i] == '\n') {
			str_trunc(out, i);
			break;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		vd_fail(v, perm ? EX_PERM : EX_TEMP, perm ? "5.3.0" : "4.3.0",
			"cannot hand %s to the queue: mta-inject %s %d%s%s",
			who->s, WIFEXITED(status) ? "exited" : "died of signal",
			WIFEXITED(status) ? WEXITSTATUS(status) :
			WTERMSIG(status), out->len ? ": " : "", str_cstr(out));
}

/* run - one mta-inject for the remote targets whose chain is t's */
static void run(struct vd *v, const struct str *path, struct target *t,
		int crlf, int src, off_t off, uint64_t len)
{
	struct str pre = STR_INIT, out = STR_INIT, who = STR_INIT;
	struct feed f;
	int in[2], err[2], status, r, complete;
	pid_t pid;

	if (prefix(&pre, v->sender, t, crlf) < 0)
		vd_fail_errno(v, -ENOMEM, "cannot run mta-inject");
	build_argv(v, path, t, &who, pre.len + len);
	pid = spawn_inject(v, path, &who, in, err);
	memset(&f, 0, sizeof f);
	f.pre = &pre;
	f.src = src;
	f.off = off;
	f.left = len;
	r = pump(&f, in[1], err[0], &out, &complete);
	if (r < 0)
		kill(pid, SIGKILL);	/* half a message must not be queued */
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			vd_fail_errno(v, -errno, "cannot hand %s to the queue",
				      who.s);
	verdict(v, &who, status, r, complete, &out);
	vd_log(v, "handed msg for %s to the queue: %s", v->rcpt.s, who.s);
	free(argv);
	argv = NULL;
	str_free(&fopt);
	str_free(&sizeopt);
	str_free(&pre);
	str_free(&out);
	str_free(&who);
}

/* inject - every remote target, one mta-inject per distinct chain */
void inject(struct vd *v, const struct str *path, int crlf, int srcfd,
	    off_t off, uint64_t len)
{
	size_t i;

	for (i = 0; i < v->n; i++)
		if (v->t[i].remote && !v->t[i].sent)
			run(v, path, &v->t[i], crlf, srcfd, off, len);
}
