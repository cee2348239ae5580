/*
 * server - the listening parent and its session processes (see server.h).
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "msg.h"
#include "log.h"
#include "peer.h"

struct pool {
	struct server *srv;
	struct limit_sess *sess;	/* SERVER_SLOTS processes, shared */
	int wake[2];		/* session processes -> parent: fork more */
	int life[2];		/* the parent holds life[1] until it dies */
	int sigfd;		/* SIGCHLD, and the stop signals if asked */
	sigset_t oldmask;	/* what the session processes get back */
	struct pollfd *pf;	/* the parent's: listeners, wake, sigfd */
	size_t nproc;
};

/* limits - maxsessions and (PERIP not NULL) maxperip, fixed or read now */
static void limits(const struct server *srv, unsigned long *max,
		   unsigned long *perip)
{
	*max = srv->maxsessions;
	if (!*max)
		*max = ctl_num_warn(srv->root, CTL_MAXSESSIONS, msg_warn);
	if (!perip)
		return;
	*perip = srv->maxperip;
	if (!*perip)
		*perip = ctl_num_warn(srv->root, CTL_MAXPERIP, msg_warn);
}

/* over_limit - 0 when this client may be served, else 1 and why; counted
 * after this process published its own session */
static int over_limit(const struct pool *p, const char *ip,
		      enum server_why *why)
{
	unsigned long max, perip;
	size_t busy, same;
	int tries;

	limits(p->srv, &max, &perip);
	limit_sess_count(p->sess, ip, &busy, &same);
	/* a client that got its last reply may reconnect before the
	 * process that sent it has marked itself idle: a few milliseconds
	 * before a no */
	for (tries = 0; tries < 3 && (busy > max || same > perip); tries++) {
		struct timespec ts = {0, 2000000};

		nanosleep(&ts, NULL);
		limit_sess_count(p->sess, ip, &busy, &same);
	}
	/* a lowered maxsessions: more processes than allowed may exist */
	if (busy > max)
		*why = SERVER_BUSY;
	else if (same > perip)
		*why = SERVER_PERIP;
	else
		return 0;
	return 1;
}

/* take - one connection on listener K, in process slot SLOT */
static void take(struct pool *p, size_t slot, size_t k)
{
	struct server *srv = p->srv;
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[PEER_TEXT_MAX];
	struct server_client c = {.kind = srv->ls.s[k].kind, .ip = ip,
				  .sess = p->sess, .slot = slot};
	enum server_why why;

	c.fd = accept4(srv->ls.s[k].fd, (struct sockaddr *)&ss, &len,
		       SOCK_CLOEXEC);
	if (c.fd < 0)
		return;		/* another process took it, or EMFILE */
	(void)peer_text((struct sockaddr *)&ss, len, ip, sizeof ip);
	limit_sess_enter(p->sess, slot, ip);
	if (limit_sess_count(p->sess, NULL, NULL, NULL) < SERVER_SPARE)
		(void)!write(p->wake[1], "b", 1);
	if (over_limit(p, ip, &why))
		srv->refuse(srv->arg, c.fd, c.kind, ip, why);
	else
		srv->serve(srv->arg, &c);
	/* idle again before the close, so that a client who got its last
	 * reply and reconnects at once is not counted twice */
	limit_sess_leave(p->sess, slot);
	close(c.fd);
}

/* worker_epoll - the epoll set of a session process: every listener
 * (one process woken per connection) and the parent's life pipe last */
static int worker_epoll(const struct pool *p)
{
	size_t i, nl = p->srv->ls.n;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	for (i = 0; ep >= 0 && i <= nl; i++) {
		struct epoll_event e = {.events = EPOLLIN};

		e.data.u64 = i;
		if (i < nl)
			e.events |= EPOLLEXCLUSIVE;
		if (epoll_ctl(ep, EPOLL_CTL_ADD,
			      i < nl ? p->srv->ls.s[i].fd : p->life[0],
			      &e) < 0) {
			close(ep);
			ep = -1;
		}
	}
	return ep;
}

/* worker - a session process: wait, accept, serve, up to SERVER_USES */
static _Noreturn void worker(struct pool *p, size_t slot)
{
	size_t i, nl = p->srv->ls.n;
	struct epoll_event *ev = calloc(nl + 1, sizeof *ev);
	unsigned uses = 0;
	int ep, n, gone = 0;

	close(p->wake[0]);
	close(p->life[1]);
	close(p->sigfd);
	free(p->pf);
	if (sigprocmask(SIG_SETMASK, &p->oldmask, NULL) < 0)
		_exit(111);
	ep = ev ? worker_epoll(p) : -1;
	if (ep < 0) {
		/* the parent forks another; say why this one could not wait
		 * (usually the descriptor limit: raise it or maxsessions) */
		(void)log_write(2, p->srv->prog, "warning: a session process "
				"cannot wait for connections: epoll: %s",
				strerror(errno));
		sleep(1);	/* not a fork loop at full speed */
		_exit(111);
	}
	while (!gone && uses < SERVER_USES) {
		n = epoll_wait(ep, ev, (int)(nl + 1), SERVER_IDLE * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (!n && limit_sess_count(p->sess, NULL, NULL, NULL) >
			  SERVER_SPARE)
			break;
		for (i = 0; i < (size_t)n; i++)
			gone |= ev[i].data.u64 == nl;
		for (i = 0; !gone && i < (size_t)n; i++) {
			take(p, slot, (size_t)ev[i].data.u64);
			uses++;
		}
	}
	close(ep);
	free(ev);
	if (p->srv->done)
		p->srv->done(p->srv->arg);
	listen_free(&p->srv->ls);
	exit(0);
}

/* spawn - one more session process, in a free slot (which counts as
 * waiting before the child runs) */
static int spawn(struct pool *p)
{
	long i = limit_sess_slot(p->sess);
	pid_t pid;

	if (i < 0)
		return (int)i;
	pid = fork();
	if (pid < 0) {
		limit_sess_pid(p->sess, (size_t)i, 0);
		return -errno;
	}
	if (pid == 0)
		worker(p, (size_t)i);
	limit_sess_pid(p->sess, (size_t)i, pid);
	p->nproc++;
	return 0;
}

/* reap - free the slots of the processes that ended (one killed in a
 * session is out of it too) */
static void reap(struct pool *p)
{
	pid_t pid;
	long i;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if ((i = limit_sess_reap(p->sess, pid)) < 0)
			continue;
		if (WIFSIGNALED(st) && WTERMSIG(st) != SIGTERM)
			(void)log_write(2, p->srv->prog, "session %ld for %s "
					"ended on signal %d", (long)pid,
					limit_sess_ip(p->sess, (size_t)i),
					WTERMSIG(st));
		p->nproc--;
	}
}

/* drain - what the wake-up pipe and the signalfd hold; the first stop
 * signal, else 0 */
static int drain(struct pool *p)
{
	struct signalfd_siginfo si;
	char junk[256];
	int sig = 0;

	while (read(p->wake[0], junk, sizeof junk) > 0)
		;
	while (read(p->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
		if (si.ssi_signo != SIGCHLD && !sig)
			sig = (int)si.ssi_signo;
	reap(p);
	return sig;
}

/* stop - end every session process and wait a while for them */
static void stop(struct pool *p, int sig)
{
	int64_t end = now_ms() + SERVER_STOP_MS, left;
	size_t i, open;

	(void)limit_sess_count(p->sess, NULL, &open, NULL);
	(void)log_write(2, p->srv->prog, "stopping on signal %d, %zu "
			"session%s open", sig, open, open == 1 ? "" : "s");
	/* no client waits in a backlog nobody will accept from */
	for (i = 0; i < p->srv->ls.n; i++) {
		close(p->srv->ls.s[i].fd);
		p->srv->ls.s[i].fd = -1;
	}
	limit_sess_signal(p->sess, SIGTERM);
	while (p->nproc && (left = end - now_ms()) > 0) {
		struct pollfd pf = {p->sigfd, POLLIN, 0};

		(void)poll(&pf, 1, (int)left);
		(void)drain(p);
	}
	limit_sess_signal(p->sess, SIGKILL);
}

/* refuse_all - every process is busy: the parent refuses who is waiting */
static void refuse_all(struct pool *p, const struct pollfd *pf)
{
	struct server *srv = p->srv;
	size_t i;

	for (i = 0; i < srv->ls.n; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		char ip[PEER_TEXT_MAX];
		int fd;

		if (!(pf[i].revents & POLLIN))
			continue;
		fd = accept4(srv->ls.s[i].fd, (struct sockaddr *)&ss, &len,
			     SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		(void)peer_text((struct sockaddr *)&ss, len, ip, sizeof ip);
		srv->refuse(srv->arg, fd, srv->ls.s[i].kind, ip, SERVER_BUSY);
		close(fd);
	}
}

/* setup - the session table, the pipes, non-blocking listeners, the
 * signals the parent reads from its signalfd */
static int setup(struct pool *p, const char **what)
{
	sigset_t set;
	size_t i;
	int r;

	if ((r = limit_sess_new(SERVER_SLOTS, &p->sess)) < 0) {
		*what = "cannot map the session table";
		return r;
	}
	*what = "pipe";
	if (pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(p->life, O_CLOEXEC) < 0)
		return -errno;
	/* processes that lost the race for a connection must not block */
	*what = "fcntl";
	for (i = 0; i < p->srv->ls.n; i++) {
		int fd = p->srv->ls.s[i].fd;

		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
			return -errno;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	if (p->srv->stop) {
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
	}
	*what = "cannot set up signals";
	if (sigprocmask(SIG_BLOCK, &set, &p->oldmask) < 0 ||
	    (p->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -errno;
	return 0;
}

/* server_listen - the listeners of every kind in KINDS (NULL ends it) */
int server_listen(struct server *srv, const char *const *kinds,
		  struct str *err)
{
	int r = 0;

	for (; *kinds && r == 0; kinds++)
		r = listen_get(&srv->ls, srv->root, *kinds, err);
	return r;
}

/* server_run - see server.h */
int server_run(struct server *srv, const char **what)
{
	struct pool p = {.srv = srv, .wake = {-1, -1}, .life = {-1, -1},
			 .sigfd = -1};
	size_t i, idle, nl = srv->ls.n;
	struct pollfd *pf = calloc(nl + 2, sizeof *pf);
	unsigned long max;
	int full, r, sig = 0;

	*what = "out of memory";
	p.pf = pf;
	r = pf ? setup(&p, what) : -ENOMEM;
	while (r == 0 && !sig) {
		reap(&p);
		limits(srv, &max, NULL);
		idle = limit_sess_count(p.sess, NULL, NULL, NULL);
		while (nl && idle < SERVER_SPARE && p.nproc < max &&
		       spawn(&p) == 0)
			idle++;
		full = nl && idle == 0 && p.nproc >= max;
		pf[nl] = (struct pollfd){p.wake[0], POLLIN, 0};
		pf[nl + 1] = (struct pollfd){p.sigfd, POLLIN, 0};
		for (i = 0; i < nl; i++)
			pf[i] = (struct pollfd){full ? srv->ls.s[i].fd : -1,
						POLLIN, 0};
		/* a second's timeout: a changed maxsessions is seen, a lost
		 * wake-up costs at most that */
		if (poll(pf, nl + 2, 1000) < 0 && errno != EINTR) {
			*what = "poll";
			r = -errno;
			break;
		}
		sig = drain(&p);
		if (!sig && full) {
			/* a process that is just ending its session would
			 * take the client: give it a moment, then count again */
			(void)poll(pf + nl, 1, 100);
			reap(&p);
			if (limit_sess_count(p.sess, NULL, NULL, NULL) == 0)
				refuse_all(&p, pf);
		}
	}
	if (sig)
		stop(&p, sig);
	free(pf);
	if (p.sigfd >= 0)
		close(p.sigfd);
	for (i = 0; i < 2; i++) {
		if (p.wake[i] >= 0)
			close(p.wake[i]);
		if (p.life[i] >= 0)
			close(p.life[i]);
	}
	limit_sess_free(&p.sess);
	return r;
}
