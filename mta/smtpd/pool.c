/*
 * pool - the session processes of the listening mta-smtpd
 *
 * A connection used to cost a fork, the new process's page faults and its
 * exit, all between the client's connect and the greeting. Now a small
 * parent keeps processes ready: each waits on the listening sockets
 * itself (EPOLLEXCLUSIVE, so one wakes per connection), accepts, serves
 * the session, and waits again, up to POOL_USES sessions one after the
 * other (Postfix's max_use; see docs/smtpd.md "Session processes" for
 * what that means for isolation). One process still serves one session
 * at a time, so control/maxsessions is the number of processes.
 *
 * The parent forks a process whenever fewer than POOL_SPARE wait, up to
 * maxsessions; a process told that it made the idle count fall writes a
 * byte to the parent's wake-up pipe, so the fork happens beside the
 * session, not in its way. The processes, and the client each serves,
 * are lib/limit's session table (shared by all, made before the first
 * fork; an IPv6 client counts by its /64, as in pop3d): a process
 * publishes its client, then counts it against maxperip. Two clients of one address that
 * arrive together both count each other, so the limit errs toward
 * refusing, never toward letting more in. With every process busy, the
 * parent accepts and answers 421 itself, as before.
 *
 * A process waiting with nothing to do for POOL_IDLE seconds leaves when
 * more than POOL_SPARE wait; every process leaves when the parent is
 * gone (the read end of a pipe only the parent can write hangs up).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "limit.h"
#include "log.h"
#include "msg.h"
#include "peer.h"
#include "smtpd.h"

#define POOL_SLOTS 16384	/* processes at most, whatever maxsessions */
#define POOL_SPARE 4		/* processes kept waiting */
#define POOL_USES 100		/* sessions a process serves, then leaves */
#define POOL_IDLE 60		/* seconds an extra waiting process stays */

struct pool {
	const char *root;
	const struct listener *l;
	size_t nl;
	pool_serve_fn *serve;
	pool_done_fn *done;
	void *arg;
	struct limit_sess *sess;	/* POOL_SLOTS processes, shared */
	int wake[2];		/* processes and SIGCHLD -> parent */
	int life[2];		/* the parent holds life[1] until it dies */
	size_t nproc;
};

static int wake_w = -1;

static void on_chld(int sig)
{
	int e = errno;

	(void)sig;
	(void)!write(wake_w, "c", 1);
	errno = e;
}

/* over_limit - the reply for a client over maxsessions or maxperip,
 * counted after this process published its own session */
static const char *over_limit(const struct pool *p, const char *ip)
{
	unsigned long max, perip;
	size_t busy, same;
	int tries;

	if (ctl_get_ulong(p->root, "maxsessions", 1000, &max) < 0)
		max = 1000;
	if (ctl_get_ulong(p->root, "maxperip", 20, &perip) < 0)
		perip = 20;
	limit_sess_count(p->sess, ip, &busy, &same);
	/* a client that got its 221 may reconnect before the process that
	 * sent it has marked itself idle: a few milliseconds before a no */
	for (tries = 0; tries < 3 && (busy > max || same > perip); tries++) {
		struct timespec ts = {0, 2000000};

		nanosleep(&ts, NULL);
		limit_sess_count(p->sess, ip, &busy, &same);
	}
	/* a lowered maxsessions: more processes than allowed may exist */
	if (busy > max)
		return "421 4.7.0 too many sessions, try again later\r\n";
	if (same > perip)
		return "421 4.7.0 too many sessions from your address, try "
		       "again later\r\n";
	return NULL;
}

static void refuse(int fd, const char *ip, const char *reply)
{
	/* best effort: a client that does not read is not waited for */
	(void)!write(fd, reply, strlen(reply));
	(void)log_write(2, "mta-smtpd", "session %s refused: %.*s", ip,
			(int)strlen(reply) - 2, reply);
}

/* take - one connection on listener K, in process slot SLOT */
static void take(struct pool *p, size_t slot, size_t k)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	char ip[PEER_TEXT_MAX];
	const char *full;
	int fd;

	fd = accept4(p->l[k].fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0)
		return;		/* another process took it, or EMFILE */
	(void)peer_text((struct sockaddr *)&ss, len, ip, sizeof ip);
	limit_sess_enter(p->sess, slot, ip);
	if (limit_sess_count(p->sess, NULL, NULL, NULL) < POOL_SPARE)
		(void)!write(p->wake[1], "b", 1);
	if ((full = over_limit(p, ip)))
		refuse(fd, ip, full);
	else
		p->serve(p->arg, fd, p->l[k].kind, ip);
	/* idle again before the close, so that a client who got 221 and
	 * reconnects at once is not counted twice */
	limit_sess_leave(p->sess, slot);
	close(fd);
}

/* worker - a session process: wait, accept, serve, up to POOL_USES */
static _Noreturn void worker(struct pool *p, size_t slot)
{
	struct epoll_event ev[LISTEN_MAX + 1];
	unsigned uses = 0;
	size_t i;
	int ep, n, gone = 0;

	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	close(p->wake[0]);
	close(p->life[1]);
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (i = 0; ep >= 0 && i <= p->nl; i++) {
		struct epoll_event e = {.events = EPOLLIN};

		e.data.u64 = i;
		if (i < p->nl)
			e.events |= EPOLLEXCLUSIVE;
		if (epoll_ctl(ep, EPOLL_CTL_ADD,
			      i < p->nl ? p->l[i].fd : p->life[0], &e) < 0) {
			close(ep);
			ep = -1;
		}
	}
	if (ep < 0) {
		/* the parent forks another; say why this one could not wait
		 * (usually the descriptor limit: raise it or maxsessions) */
		(void)log_write(2, "mta-smtpd", "warning: a session process "
				"cannot wait for connections: epoll: %s",
				strerror(errno));
		sleep(1);	/* not a fork loop at full speed */
		_exit(111);
	}
	while (!gone && uses < POOL_USES) {
		n = epoll_wait(ep, ev, (int)(p->nl + 1), POOL_IDLE * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		if (!n && limit_sess_count(p->sess, NULL, NULL, NULL) > POOL_SPARE)
			break;
		for (i = 0; i < (size_t)n; i++)
			gone |= ev[i].data.u64 == p->nl;
		for (i = 0; !gone && i < (size_t)n; i++) {
			take(p, slot, (size_t)ev[i].data.u64);
			uses++;
		}
	}
	close(ep);
	if (p->done)
		p->done(p->arg);
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

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		if (limit_sess_reap(p->sess, pid) >= 0)
			p->nproc--;
}

/* pool_run - the parent: keep session processes ready; never returns */
_Noreturn void pool_run(const char *root, const struct listener *l,
			size_t nl, pool_serve_fn *serve, pool_done_fn *done,
			void *arg)
{
	struct pool p = {.root = root, .l = l, .nl = nl, .serve = serve,
			 .done = done, .arg = arg};
	struct pollfd pf[LISTEN_MAX + 1];
	struct sigaction sa;
	unsigned long max;
	size_t i, idle;
	char junk[256];
	int full = 0, r;

	if (nl > LISTEN_MAX)
		msg_die(111, "more than %d listen addresses", LISTEN_MAX);
	if ((r = limit_sess_new(POOL_SLOTS, &p.sess)) < 0)
		msg_die(111, "cannot map the session table: %s", msg_err(r));
	if (pipe2(p.wake, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(p.life, O_CLOEXEC) < 0)
		msg_die(111, "pipe: %s", strerror(errno));
	/* processes that lost the race for a connection must not block */
	for (i = 0; i < nl; i++)
		if (fcntl(l[i].fd, F_SETFL,
			  fcntl(l[i].fd, F_GETFL) | O_NONBLOCK) < 0)
			msg_die(111, "fcntl: %s", strerror(errno));
	wake_w = p.wake[1];
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		msg_die(111, "sigaction: %s", strerror(errno));
	for (;;) {
		reap(&p);
		if (ctl_get_ulong(root, "maxsessions", 1000, &max) < 0)
			max = 1000;
		idle = limit_sess_count(p.sess, NULL, NULL, NULL);
		while (idle < POOL_SPARE && p.nproc < max && spawn(&p) == 0)
			idle++;
		full = idle == 0 && p.nproc >= max;
		pf[0].fd = p.wake[0];
		pf[0].events = POLLIN;
		for (i = 0; i < nl; i++) {
			pf[i + 1].fd = full ? l[i].fd : -1;
			pf[i + 1].events = POLLIN;
			pf[i + 1].revents = 0;
		}
		/* a second's timeout: a changed maxsessions is seen, a
		 * lost wake-up costs at most that */
		r = poll(pf, nl + 1, 1000);
		if (r < 0 && errno != EINTR)
			msg_die(111, "poll: %s", strerror(errno));
		if (r > 0 && (pf[0].revents & POLLIN))
			while (read(p.wake[0], junk, sizeof junk) > 0)
				;
		if (r > 0 && full) {
			/* a process that is just ending its session would
			 * take the client: give it a moment, then count again */
			(void)poll(pf, 1, 100);
			reap(&p);
			full = limit_sess_count(p.sess, NULL, NULL, NULL) == 0;
		}
		for (i = 0; r > 0 && full && i < nl; i++) {
			struct sockaddr_storage ss;
			socklen_t len = sizeof ss;
			char ip[PEER_TEXT_MAX];
			int fd;

			if (!(pf[i + 1].revents & POLLIN))
				continue;
			fd = accept4(l[i].fd, (struct sockaddr *)&ss, &len,
				     SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			(void)peer_text((struct sockaddr *)&ss, len, ip, sizeof ip);
			refuse(fd, ip, "421 4.7.0 too many sessions, try "
				       "again later\r\n");
			close(fd);
		}
	}
}
