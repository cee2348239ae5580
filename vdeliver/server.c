/*
 * server - `vdeliver --server`: the fork server of mta-send.
 *
 * mta-send starts one of these and hands it each local delivery over the
 * AF_UNIX SOCK_SEQPACKET socket on standard input, instead of running
 * vdeliver once a recipient. What every run does the same way (signals,
 * the mail user, the log, the root, the host name: vdeliver.c) is done
 * here once; each delivery is then made by a worker, a fork of this
 * process that runs vd_run(), the whole of an ordinary run, with no exec
 * and no dynamic linking, and then the next request (worker(), below).
 * A failed delivery still ends its process as a run does: its exit code
 * (0, 100, 111) and its one stderr line are an ordinary run's.
 *
 * The protocol (mta/send/vds.c is the other end):
 *
 *   request  one datagram "TAG\0SENDER\0RECIPIENT\0", at most VDS_REQ_MAX
 *            bytes, TAG 1 to 20 decimal digits chosen by mta-send, with
 *            exactly two descriptors (SCM_RIGHTS): the message, positioned
 *            at its start (the child's standard input), and where the
 *            child's standard output and error go (a pipe).
 *   reply    one datagram "TAG STATUS\n" once that delivery has ended:
 *            a wait status as waitpid(2) gives it, or -1 when it did not
 *            run (fork failed, a bad request, stopping).
 *
 * A request that does not parse is logged (one line on stderr), its
 * descriptors are closed, and it is answered "TAG -1" when its tag could
 * be read (so that mta-send retries it), else not at all; the server goes
 * on. Parsing is all that is trusted here: the child checks the sender
 * and the recipient as the command line's are checked.
 *
 * End of file on the socket (mta-send gone, or closing it as it stops):
 * no more requests; the running deliveries finish and the server exits
 * 0. SIGTERM or SIGINT (mta-send's stop deadline): the running deliveries
 * get SIGTERM and new requests are answered -1; the server still exits
 * at end of file only, once every child is reaped and answered.
 *
 * SECURITY
 *	Runs as the mail user, like any run (become_mailuser() before this).
 *	Its only peer is the mta-send that started it (the socket is a
 *	socketpair, not a name in the file system). Children get neither the
 *	socket nor the signalfd, and the signal mask it was started with.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "num.h"
#include "vdeliver.h"

#define VDS_REQ_MAX 8192	/* bytes of a request (an address is < 1 KiB) */
#define VDS_FDS_MAX 8		/* room to receive (and close) too many */
#define VDS_TAG_MAX 20		/* digits of a tag (an unsigned 64-bit) */
#define VDS_CHILDREN_MAX 4096	/* at once; mta-send runs at most 1000 */
#define VDS_TURN_MAX 64		/* requests read before reaping again */
#define VDS_WORKER_USES 1000	/* deliveries a worker makes, then leaves */

/* a delivery process: a one-shot child (sock -1), or a worker that makes
 * deliveries one after another, handed to it over its own socket */
struct child {
	pid_t pid;
	unsigned long long tag;
	int sock;		/* a worker's socket; -1: a one-shot child */
	int busy;		/* a delivery is running: tag is its */
	int leaving;		/* a worker that said it made its last */
};

/* a worker's answer on its socket */
struct wreply {
	unsigned long long tag;
	int status;		/* a wait status */
	int last;		/* it exits now: give it nothing more */
};

/* the server's state; static so that the children's leak checker sees
 * it reachable */
static struct {
	struct child *c;
	size_t n, cap;
	int sigfd;
	int eof;		/* no more requests: the socket ended */
	int term;		/* SIGTERM: run nothing more */
	sigset_t oldmask;	/* what the children get back */
	struct str logpath;	/* ROOT/log/current */
	char req[VDS_REQ_MAX + 1];
} srv;

/* slog - one line on stderr (mta-send's, so its log), stamped; a failed
 * write is not worth failing for */
#define slog(...) ((void)log_write(2, "vdeliver", __VA_ARGS__))

/* reply - "TAG STATUS\n"; a peer that went away only ends the requests */
static void reply(unsigned long long tag, int status)
{
	char b[64];
	int n = snprintf(b, sizeof b, "%llu %d\n", tag, status);

	while (send(0, b, (size_t)n, MSG_NOSIGNAL) < 0) {
		if (errno == EINTR)
			continue;
		if (!srv.eof && errno != EPIPE && errno != ECONNRESET)
			slog("cannot answer mta-send: %s", strerror(errno));
		srv.eof = 1;
		break;
	}
}

/* peer_closed - is a 0-byte read the end of the socket (not an empty
 * datagram) */
static int peer_closed(void)
{
	struct pollfd p = {0, POLLIN | POLLRDHUP, 0};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLRDHUP));
}

/* parse_tag - the decimal tag that starts a request, or -1 */
static int parse_tag(const char *s, size_t len, unsigned long long *tag_r)
{
	uint64_t t;
	size_t i;

	/* digits, then the NUL that ends the field */
	if (num_scan(s, len, UINT64_MAX, &t, &i) || i == len || s[i] ||
	    i > VDS_TAG_MAX)
		return -1;
	*tag_r = t;
	return (int)i + 1;
}

/* field - the NUL-terminated field at *pos, or NULL */
static const char *field(const char *s, size_t len, size_t *pos)
{
	const char *f = s + *pos;
	const char *nul = *pos < len ? memchr(f, 0, len - *pos) : NULL;

	if (!nul)
		return NULL;
	*pos = (size_t)(nul - s) + 1;
	return f;
}

/* child - in the forked child: the delivery's descriptors in place of
 * the server's, then an ordinary run */
static void drop_server_fds(void)
{
	size_t i;

	close(srv.sigfd);
	for (i = 0; i < srv.n; i++)
		if (srv.c[i].sock >= 0)
			close(srv.c[i].sock);
}

static _Noreturn void child(struct vd *v, const int fd[2], const char *from,
			    const char *rcpt)
{
	drop_server_fds();
	free(srv.c);
	srv.c = NULL;
	srv.n = srv.cap = 0;
	/* dup2 onto 0 closes the socket; fd[] are >= 3 (vd_serve) */
	if (dup2(fd[0], 0) < 0 || dup2(fd[1], 1) < 0 || dup2(fd[1], 2) < 0)
		_exit(EX_TEMP);
	close(fd[0]);
	close(fd[1]);
	if (sigprocmask(SIG_SETMASK, &srv.oldmask, NULL) < 0)
		vd_fail_errno(v, -errno, "cannot set up signals");
	exit(vd_run(v, rcpt, from));
}

/* log_fresh - log/current opened again once facteur run has rotated it
 * (renamed, a new one made): a run opens it each time, and the server's
 * children must not go on writing into the rotated file */
static void log_fresh(struct vd *v)
{
	struct stat a, b;
	int fd;

	if (v->logfd >= 0 && fstat(v->logfd, &a) == 0 &&
	    stat(srv.logpath.s, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		return;
	fd = log_open(v->root);
	if (fd < 0)
		return;		/* best effort, as any log line */
	if (v->logfd >= 0)
		close(v->logfd);
	v->logfd = fd;
}

/* slot - room for one more process in srv.c, or NULL */
static struct child *slot(unsigned long long tag)
{
	if (srv.n == srv.cap) {
		size_t cap = srv.cap ? srv.cap * 2 : 64;
		struct child *c = cap <= VDS_CHILDREN_MAX ?
				  realloc(srv.c, cap * sizeof *c) : NULL;

		if (!c) {
			slog("request %llu not run: %zu deliveries already "
			     "running, or out of memory", tag, srv.n);
			return NULL;
		}
		srv.c = c;
		srv.cap = cap;
	}
	return &srv.c[srv.n];
}

/* send_req - a request, with its two descriptors, on socket SOCK */
static int send_req(int sock, const char *req, size_t len, const int fd[2])
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 2)];
	} cbuf;
	struct iovec iov = {(void *)req, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf.b,
			    .msg_controllen = sizeof cbuf.b};
	struct cmsghdr *cm;

	memset(&cbuf, 0, sizeof cbuf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * 2);
	memcpy(CMSG_DATA(cm), fd, sizeof(int) * 2);
	while (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/*
 * worker - a delivery process that makes up to VDS_WORKER_USES
 * deliveries one after another: a fork, its page faults and its exit
 * were most of a delivery's CPU. Each delivery is an ordinary run
 * (vd_run) with the request's descriptors as 0, 1 and 2; vd_reset()
 * gives back what it took. A delivery that fails exits, as a run does,
 * and the server answers its request with that exit status and starts a
 * new worker for the next one; a success is answered by the worker. All
 * deliveries run as the mail user, which owns every Maildir anyway, so a
 * worker holds nothing that a later delivery could not reach.
 */
static _Noreturn void worker(struct vd *v, int sock)
{
	unsigned uses;
	int null;

	drop_server_fds();
	free(srv.c);
	srv.c = NULL;
	srv.n = srv.cap = 0;
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	/* dup2 onto 0 closes the socket to mta-send */
	if (null < 0 || dup2(null, 0) < 0)
		_exit(EX_TEMP);
	if (sigprocmask(SIG_SETMASK, &srv.oldmask, NULL) < 0)
		_exit(EX_TEMP);
	for (uses = 1; uses <= VDS_WORKER_USES; uses++) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int) * 2)];
		} cbuf;
		struct iovec iov = {srv.req, sizeof srv.req - 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf.b,
				    .msg_controllen = sizeof cbuf.b};
		struct cmsghdr *cm = NULL;
		struct wreply wr;
		unsigned long long tag = 0;
		const char *from = NULL, *rcpt = NULL;
		size_t pos = 0;
		ssize_t n;
		int fd[2] = {-1, -1}, t;

		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR) {
			uses--;
			continue;
		}
		if (n <= 0)
			break;		/* the server closed: leave */
		cm = CMSG_FIRSTHDR(&mh);
		if (cm && cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int) * 2))
			memcpy(fd, CMSG_DATA(cm), sizeof fd);
		/* the server sends only what take() checked */
		t = parse_tag(srv.req, (size_t)n, &tag);
		if (t > 0) {
			pos = (size_t)t;
			from = field(srv.req, (size_t)n, &pos);
			rcpt = from ? field(srv.req, (size_t)n, &pos) : NULL;
		}
		if (fd[0] < 0 || fd[1] < 0 || !rcpt ||
		    dup2(fd[0], 0) < 0 || dup2(fd[1], 1) < 0 ||
		    dup2(fd[1], 2) < 0)
			_exit(EX_TEMP);
		close(fd[0]);
		close(fd[1]);
		log_fresh(v);
		wr.status = vd_run(v, rcpt, from) << 8;	/* as exit() */
		vd_reset(v);
		(void)fflush(NULL);
		/* the pipe closed before the answer, as a child's at exit */
		if (dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
		    dup2(null, 2) < 0)
			_exit(EX_TEMP);
		wr.tag = tag;
		wr.last = uses == VDS_WORKER_USES;
		while (send(sock, &wr, sizeof wr, MSG_NOSIGNAL) < 0)
			if (errno != EINTR)
				_exit(0);
	}
	close(null);
	close(sock);
	exit(0);
}

/* new_worker - a worker in a new slot, or NULL */
static struct child *new_worker(struct vd *v, unsigned long long tag,
				const int fd[2])
{
	struct child *c = slot(tag);
	int sv[2];
	pid_t pid;

	if (!c)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	if (pid == 0) {
		/* the request's descriptors come to it on its socket; the
		 * copies forked with it would keep the pipe open */
		close(fd[0]);
		close(fd[1]);
		close(sv[0]);
		worker(v, sv[1]);
	}
	close(sv[1]);
	c->pid = pid;
	c->sock = sv[0];
	c->busy = 0;
	c->leaving = 0;
	c->tag = 0;
	srv.n++;
	return c;
}

/* start - the delivery of one good request: to a waiting worker, else a
 * new one, else a one-shot child; -1 when it cannot run */
static int start(struct vd *v, unsigned long long tag, const int fd[2],
		 const char *req, size_t len, const char *from,
		 const char *rcpt)
{
	struct child *c = NULL;
	size_t i;
	pid_t pid;

	for (i = 0; i < srv.n && !c; i++)
		if (srv.c[i].sock >= 0 && !srv.c[i].busy &&
		    !srv.c[i].leaving)
			c = &srv.c[i];
	if (!c)
		c = new_worker(v, tag, fd);
	if (c && send_req(c->sock, req, len, fd) == 0) {
		c->busy = 1;
		c->tag = tag;
		return 0;
	}
	if (c) {
		/* a worker that cannot take it: it goes, the request is
		 * run the old way */
		c->leaving = 1;
		(void)kill(c->pid, SIGTERM);
	}
	if (!slot(tag))
		return -1;
	pid = fork();
	if (pid < 0) {
		slog("request %llu not run: cannot fork: %s", tag,
		     strerror(errno));
		return -1;
	}
	if (pid == 0)
		child(v, fd, from, rcpt);
	srv.c[srv.n].pid = pid;
	srv.c[srv.n].sock = -1;
	srv.c[srv.n].busy = 1;
	srv.c[srv.n].leaving = 0;
	srv.c[srv.n++].tag = tag;
	return 0;
}

/* answers - what worker C said: each finished delivery answered */
static void answers(struct child *c)
{
	struct wreply wr;
	ssize_t n;

	while ((n = recv(c->sock, &wr, sizeof wr, MSG_DONTWAIT)) > 0) {
		if (n != sizeof wr || !c->busy || wr.tag != c->tag)
			continue;	/* cannot happen: our own child */
		c->busy = 0;
		reply(wr.tag, wr.status);
		if (wr.last)
			c->leaving = 1;
	}
}

/* take - read one request and act on it; 0 when there is none left */
static int take(struct vd *v)
{
	static const char stopping[] = "stopping";
	/* killed with requests still queued: a delivery made now would be
	 * made again by the next mta-send, which knows nothing of it */
	static const char gone[] = "gone";
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * VDS_FDS_MAX)];
	} cbuf;
	struct iovec iov = {srv.req, sizeof srv.req};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf.b,
			    .msg_controllen = sizeof cbuf.b};
	struct cmsghdr *cm;
	unsigned long long tag = 0;
	const char *from = NULL, *rcpt = NULL, *why = NULL;
	int fd[VDS_FDS_MAX], nfd = 0, k, t = -1;
	size_t len, pos = 0;
	ssize_t n;

	n = recvmsg(0, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && errno == EINTR)
		return 1;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0) {
		if (errno != ECONNRESET && errno != EPIPE &&
		    errno != ENOTCONN)
			slog("cannot read requests: %s; finishing the running "
			     "deliveries", strerror(errno));
		srv.eof = 1;
		return 0;
	}
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t i, m;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		m = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < m; i++) {
			int x;

			memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof x);
			if (nfd < VDS_FDS_MAX)
				fd[nfd++] = x;
			else
				close(x);
		}
	}
	if (n == 0 && nfd == 0 && !(mh.msg_flags & MSG_TRUNC) &&
	    peer_closed()) {
		srv.eof = 1;
		return 0;
	}
	/* too long: the tag may still be read, to answer it */
	len = (size_t)n > VDS_REQ_MAX ? VDS_REQ_MAX : (size_t)n;
	t = parse_tag(srv.req, len, &tag);
	if (t > 0) {
		pos = (size_t)t;
		from = field(srv.req, len, &pos);
		rcpt = from ? field(srv.req, len, &pos) : NULL;
	}
	if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > VDS_REQ_MAX)
		why = "longer than 8192 bytes";
	else if (mh.msg_flags & MSG_CTRUNC)
		why = "more descriptors than it can take";
	else if (t < 0)
		why = "no decimal tag and NUL";
	else if (!from || !rcpt)
		why = "not TAG, SENDER and RECIPIENT, each ended by a NUL";
	else if (pos != len)
		why = "bytes after the recipient's NUL";
	else if (nfd != 2)
		why = "not exactly 2 descriptors";
	else if (srv.term)
		why = stopping;
	else if (peer_closed())
		why = gone;
	if (why == stopping)
		slog("request %llu not run: stopping", tag);
	else if (why == gone)
		slog("request %llu not run: mta-send is gone, and tries it "
		     "again when it starts", tag);
	else if (why && t > 0)
		slog("bad request %llu (%zd bytes, %d descriptors): %s; "
		     "answered -1", tag, n, nfd, why);
	else if (why)
		slog("bad request (%zd bytes, %d descriptors): %s; ignored", n,
		     nfd, why);
	if (!why)
		log_fresh(v);
	if (!why && start(v, tag, fd, srv.req, len, from, rcpt) < 0)
		why = "not run";
	/* closed before the answer: mta-send may count on it */
	for (k = 0; k < nfd; k++)
		close(fd[k]);
	if (why && t > 0)
		reply(tag, -1);
	return 1;
}

/* reap - every child that ended, answered; SIGTERM passed on */
static void reap(void)
{
	struct signalfd_siginfo si;
	int st;
	pid_t pid;
	size_t i;

	while (read(srv.sigfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo != SIGTERM && si.ssi_signo != SIGINT)
			continue;
		if (!srv.term)
			slog("stopping %zu deliver%s (SIGTERM)", srv.n,
			     srv.n == 1 ? "y" : "ies");
		srv.term = 1;
		for (i = 0; i < srv.n; i++)
			(void)kill(srv.c[i].pid, SIGTERM);
	}
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct child *c;

		for (i = 0; i < srv.n && srv.c[i].pid != pid; i++)
			;
		if (i == srv.n)
			continue;	/* not ours: cannot happen */
		c = &srv.c[i];
		if (c->sock >= 0) {
			answers(c);	/* what it said before it ended */
			close(c->sock);
		}
		/* a failed delivery ends its process, as a run does */
		if (c->busy)
			reply(c->tag, st);
		srv.c[i] = srv.c[--srv.n];
	}
}

/* idle_close - workers with nothing to do and no more requests to come,
 * or that said they leave: their socket closed, they exit */
static void idle_close(void)
{
	size_t i;

	for (i = 0; i < srv.n; i++) {
		struct child *c = &srv.c[i];

		if (c->sock >= 0 && !c->busy && (srv.eof || srv.term ||
						 c->leaving)) {
			close(c->sock);
			c->sock = -1;
			c->leaving = 1;
		}
	}
}

/* std_open - descriptors 1 and 2 open (on /dev/null if need be), so that
 * received descriptors are >= 3 and a child's dup2s cannot clash */
static void std_open(void)
{
	int fd;

	for (fd = 1; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 &&
		    open("/dev/null", O_RDWR) != fd)
			msg_die(EX_TEMP, "4.3.0 cannot open /dev/null: %s",
				strerror(errno));
}

/* vd_serve - the fork server's loop, until end of file and no child */
int vd_serve(struct vd *v)
{
	sigset_t mask;
	int type = 0, i;
	socklen_t tl = sizeof type;

	if (getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_SEQPACKET)
		msg_die(2, "--server needs a SOCK_SEQPACKET socket on "
			"standard input: it is started by mta-send");
	std_open();
	vd_open_root(v);
	if (str_catf(&srv.logpath, "%s/log/current", v->root) < 0)
		msg_die(EX_TEMP, "4.3.0 out of memory");
	if (fcntl(0, F_SETFD, FD_CLOEXEC) < 0)
		msg_die(EX_TEMP, "4.3.0 cannot set up the socket: %s",
			strerror(errno));
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, &srv.oldmask) < 0 ||
	    (srv.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		msg_die(EX_TEMP, "4.3.0 cannot set up signals: %s",
			strerror(errno));
	while (!srv.eof || srv.n) {
		struct pollfd *pf;
		size_t k, np = 2;

		idle_close();
		pf = calloc(srv.n + 2, sizeof *pf);
		if (!pf)
			msg_die(EX_TEMP, "4.3.0 out of memory");
		pf[0] = (struct pollfd){srv.eof ? -1 : 0, POLLIN, 0};
		pf[1] = (struct pollfd){srv.sigfd, POLLIN, 0};
		for (k = 0; k < srv.n; k++)
			if (srv.c[k].sock >= 0 && srv.c[k].busy)
				pf[np++] = (struct pollfd){srv.c[k].sock,
							   POLLIN, 0};
		if (poll(pf, np, -1) < 0) {
			free(pf);
			if (errno == EINTR)
				continue;
			msg_die(EX_TEMP, "4.3.0 poll: %s", strerror(errno));
		}
		/* answers first: a worker that answered, then ended, is
		 * answered with what it said */
		for (k = 2; k < np; k++) {
			size_t c;

			if (!pf[k].revents)
				continue;
			for (c = 0; c < srv.n && srv.c[c].sock != pf[k].fd;
			     c++)
				;
			if (c < srv.n)
				answers(&srv.c[c]);
		}
		if (pf[1].revents)
			reap();
		/* a bounded number a turn: ending children are answered
		 * while requests pour in */
		for (i = 0; pf[0].revents && !srv.eof && i < VDS_TURN_MAX; i++)
			if (!take(v))
				break;
		free(pf);
	}
	close(srv.sigfd);
	free(srv.c);
	srv.c = NULL;
	str_free(&srv.logpath);
	return 0;
}
