/*
 * vds - the vdeliver fork server, seen from mta-send.
 *
 * A local delivery used to be one posix_spawn of vdeliver: its exec,
 * dynamic linking and start-up (mail user, log, root, host name) were
 * most of its CPU. Now one `vdeliver --server` (vdeliver/server.c, which
 * has the protocol) is started with the first local job and kept: each
 * local job is one request on its socket, carrying the queue file
 * (positioned at the message) and the write end of the job's output pipe;
 * the server forks a child that runs the ordinary delivery, and answers
 * "TAG STATUS" when it ends. The job is otherwise what it was: the same
 * pipe, drained by the loop, the same exit codes and reason line, the
 * same log lines, and sched_end() whether its status came from waitpid
 * or from the server.
 *
 * When the server cannot be used, a job runs the old way (exec): the
 * socket buffer is full, a request would be too long, the server cannot
 * be started, or it went away three times in 10 s (then for a minute).
 * When it goes away (end of its socket, an error, its death), every job
 * it had ends with status -1, a deferral: the delivery may have been made
 * by a child that outlived it, so a retry may deliver it twice, which the
 * queue allows. A new server is started with the next local job.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "num.h"
#include "send.h"

extern char **environ;

#define VDS_REQ_MAX 8192	/* as vdeliver/server.c takes */
#define VDS_DEATH_WINDOW_MS 10000	/* 3 deaths within: use exec */
#define VDS_OFF_MS 60000	/* for this long */
#define VDS_STOP_WAIT_MS 2000	/* for its exit once its socket is closed */

static const char went_away[] = "the vdeliver server went away before this "
				"delivery ended (it may have been made); "
				"tried again";

/* how - a wait status in words */
static void how(char *out, size_t cap, int st)
{
	if (WIFSIGNALED(st))
		snprintf(out, cap, "killed by signal %d", WTERMSIG(st));
	else if (WIFEXITED(st))
		snprintf(out, cap, "exited %d", WEXITSTATUS(st));
	else
		snprintf(out, cap, "wait status %d", st);
}

/* died - count one death; past three in the window, exec for a while */
static void died(struct send *s)
{
	long long now = now_ms();
	size_t k = sizeof s->vds_deaths / sizeof *s->vds_deaths;

	memmove(s->vds_deaths, s->vds_deaths + 1,
		(k - 1) * sizeof *s->vds_deaths);
	s->vds_deaths[k - 1] = now;
	if (s->vds_deaths[0] && now - s->vds_deaths[0] <= VDS_DEATH_WINDOW_MS) {
		s->vds_off_ms = now + VDS_OFF_MS;
		memset(s->vds_deaths, 0, sizeof s->vds_deaths);
		slog("warning: the vdeliver server went away %zu times in %d s;"
		     " running one vdeliver a delivery (exec) for %d s", k,
		     VDS_DEATH_WINDOW_MS / 1000, VDS_OFF_MS / 1000);
	}
}

/* start - a new server, its socket on its standard input */
static int start(struct send *s)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t sa;
	char *argv[] = {"vdeliver", "--root", (char *)s->root, "--server",
			NULL};
	int sv[2], r;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto fail;
	}
	r = posix_spawn_file_actions_init(&fa);
	if (r) {
		r = -r;
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	r = posix_spawnattr_init(&sa);
	if (r == 0) {
		r = posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
		/* our blocked signals (signalfd) are not its */
		if (r == 0)
			r = spawn_attr_clean(&sa);
		if (r == 0)
			r = posix_spawn(&pid, s->vdeliver.s, &fa, &sa, argv,
					environ);
		posix_spawnattr_destroy(&sa);
	}
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (r == 0 && fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
		r = errno;
		kill(pid, SIGKILL);	/* reaped as an unknown child */
	}
	if (r) {
		close(sv[0]);
		r = -r;
		goto fail;
	}
	s->vds_fd = sv[0];
	s->vds_pid = pid;
	slog("vdeliver server started pid %ld", (long)pid);
	return 0;
fail:
	slog("warning: cannot start the vdeliver server %s: %s; this "
	     "delivery runs vdeliver by exec", s->vdeliver.s, strerror(-r));
	died(s);
	return r;
}

/* vds_submit - hand job J (local) to the server: 0, or a negative errno
 * code and the caller runs vdeliver itself. MSGFD and OUTFD stay the
 * caller's to close either way */
int vds_submit(struct send *s, struct job *j, int msgfd, int outfd)
{
	struct mstate *st = j->m->st;
	struct str req = STR_INIT;
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 2)];
	} cbuf;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;
	int fds[2] = {msgfd, outfd}, r;
	unsigned long long tag;

	if (s->vds_exec || j->remote || j->n != 1)
		return -ENOTSUP;
	if (s->vds_off_ms && now_ms() < s->vds_off_ms)
		return -EAGAIN;
	s->vds_off_ms = 0;
	if (s->vds_fd < 0 && (r = start(s)) < 0)
		return r;
	tag = ++s->vds_tag;
	if (str_catf(&req, "%llu", tag) < 0 || str_catc(&req, 0) < 0 ||
	    str_cats(&req, queue_sender_arg(&st->env)) < 0 ||
	    str_catc(&req, 0) < 0 || str_cats(&req, st->addr[j->idx[0]]) < 0 ||
	    str_catc(&req, 0) < 0) {
		str_free(&req);
		return -ENOMEM;
	}
	if (req.len > VDS_REQ_MAX) {
		str_free(&req);
		return -E2BIG;
	}
	iov.iov_base = req.s;
	iov.iov_len = req.len;
	memset(&mh, 0, sizeof mh);
	memset(&cbuf, 0, sizeof cbuf);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.b;
	mh.msg_controllen = sizeof cbuf.b;
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof fds);
	memcpy(CMSG_DATA(cm), fds, sizeof fds);
	do
		r = sendmsg(s->vds_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ?
		    -errno : 0;
	while (r == -EINTR);
	str_free(&req);
	if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
		char why[160];

		snprintf(why, sizeof why, "cannot send it a request: %s",
			 strerror(-r));
		vds_gone(s, why);
	}
	/* EAGAIN (its buffer is full), ENOBUFS, ETOOMANYREFS ...: this one
	 * by exec, the server stays */
	if (r < 0)
		return r;
	j->tag = tag;
	j->pid = 0;
	return 0;
}

/* reply_parse - "TAG STATUS\n", both decimal, STATUS an int or -1; tag 0
 * is never sent: jobs run by exec have it */
static int reply_parse(const char *b, size_t n, uint64_t *tag_r, int *st_r)
{
	uint64_t tag, v;
	size_t i, k;
	int neg;

	if (num_scan(b, n, UINT64_MAX, &tag, &i) || tag == 0 || i + 1 >= n ||
	    b[i++] != ' ')
		return -1;
	neg = b[i] == '-';
	i += (size_t)neg;
	if (num_scan(b + i, n - i, neg ? 1 : INT_MAX, &v, &k) ||
	    (neg && v != 1) || i + k + 1 != n || b[i + k] != '\n')
		return -1;
	*tag_r = tag;
	*st_r = neg ? -1 : (int)v;
	return 0;
}

/* replies - every "TAG STATUS" waiting on the socket: 0 when all are
 * read, 1 at end of file, -errno on an error */
static int replies(struct send *s)
{
	char b[64];
	ssize_t n;

	while (s->vds_fd >= 0) {
		uint64_t tag;
		size_t i;
		int st;

		n = recv(s->vds_fd, b, sizeof b, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 :
			       -errno;
		if (n == 0)
			return 1;
		if (reply_parse(b, (size_t)n, &tag, &st) < 0) {
			slog("warning: the vdeliver server said something "
			     "other than TAG STATUS (%zd bytes); ignored", n);
			continue;
		}
		for (i = 0; i < s->nrun; i++)
			if (s->run[i]->tag == tag)
				break;
		if (i == s->nrun) {
			slog("warning: the vdeliver server answered request "
			     "%llu, which it does not have; ignored",
			     (unsigned long long)tag);
			continue;
		}
		sched_end(s, i, st, st < 0 ? "the vdeliver server"
			  " did not run it (its log line says why); tried "
			  "again" : NULL);
	}
	return 0;
}

/* vds_read - the socket is readable: replies, or the server's end */
void vds_read(struct send *s)
{
	struct timespec ts = {0, 1000 * 1000};
	char why[160];
	int st, k, r = replies(s);
	pid_t pid = s->vds_pid;

	if (r == 0)
		return;
	/* the end of its socket (ECONNRESET when it left requests unread)
	 * is the server exiting: its status, for the log, is a moment away */
	for (k = 0; pid > 0 && (r == 1 || r == -ECONNRESET) && k < 100; k++) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			how(why, sizeof why, st);
			vds_gone(s, why);
			return;
		}
		nanosleep(&ts, NULL);
	}
	if (r < 0)
		snprintf(why, sizeof why, "its socket failed: %s",
			 strerror(-r));
	else
		snprintf(why, sizeof why, "it closed its socket");
	vds_gone(s, why);
}

/* vds_reaped - a child that is no job's ended: 1 if it was the server */
int vds_reaped(struct send *s, pid_t pid, int status)
{
	char why[160];

	if (pid <= 0 || pid != s->vds_pid)
		return 0;
	/* what it answered before it died counts */
	(void)replies(s);
	how(why, sizeof why, status);
	vds_gone(s, why);
	return 1;
}

/* vds_gone - the server is no more use: close our end, and end each of
 * its jobs with status -1, to be tried again */
void vds_gone(struct send *s, const char *why)
{
	size_t i = 0, n = 0;
	long pid = (long)s->vds_pid;

	if (s->vds_fd < 0)
		return;
	/* what it answered before it went counts: a delivery it made is not
	 * to be made again */
	(void)replies(s);
	if (s->vds_fd < 0)
		return;
	close(s->vds_fd);
	s->vds_fd = -1;
	s->vds_pid = 0;
	for (i = 0; i < s->nrun; i++)
		n += s->run[i]->tag != 0;
	slog("vdeliver server pid %ld went away (%s): %zu deliver%s to try "
	     "again", pid, why, n, n == 1 ? "y" : "ies");
	i = 0;
	while (i < s->nrun)	/* sched_end() moves the last job to i */
		if (s->run[i]->tag)
			sched_end(s, i, -1, went_away);
		else
			i++;
	if (!s->stopping)
		died(s);
}

/* vds_term - mta-send's stop deadline: the server stops its deliveries */
void vds_term(struct send *s)
{
	if (s->vds_fd >= 0 && s->vds_pid > 0)
		(void)kill(s->vds_pid, SIGTERM);
}

/* vds_stop - at exit, with no job left: the server sees the end of its
 * socket and exits; wait for it a little, so that it is not left behind */
void vds_stop(struct send *s)
{
	struct timespec ts = {0, 10 * 1000 * 1000};
	pid_t pid = s->vds_pid;
	long long end = now_ms() + VDS_STOP_WAIT_MS;
	int st;

	if (s->vds_fd < 0)
		return;
	close(s->vds_fd);
	s->vds_fd = -1;
	s->vds_pid = 0;
	while (pid > 0 && waitpid(pid, &st, WNOHANG) == 0) {
		if (now_ms() > end) {
			slog("warning: vdeliver server pid %ld has not exited; "
			     "it ends with its deliveries", (long)pid);
			return;
		}
		nanosleep(&ts, NULL);
	}
}
