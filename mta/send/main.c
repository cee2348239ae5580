/*
 * NAME
 *	mta-send - the queue scheduler: local and remote deliveries,
 *	retries, bounces
 *
 * SYNOPSIS
 *	mta-send [--root DIR]
 *	mta-send [--root DIR] --check [--repair]
 *
 * DESCRIPTION
 *	Runs in the foreground (facteur run starts and supervises it). At
 *	start it checks the queue and repairs what a crash can leave
 *	(docs/queue.md, "Recovery"), files every queued message by when it
 *	is next due, then waits on queue/trigger, which every writer pokes
 *	after a message lands in queue/new/: new mail is taken at once. It
 *	also waits on drop/trigger and copies what local users' sendmail
 *	left in ROOT/drop/ into the queue (mta/send/drop.c).
 *
 *	Each recipient whose domain is in control/assign.cdb is delivered
 *	by vdeliver, one recipient at a time in each of up to
 *	control/concurrencylocal processes: workers of one long-lived
 *	vdeliver --server that
 *	mta-send starts with the first local delivery and starts again if it
 *	goes away (vds.c), or, when that server cannot be used, vdeliver run
 *	by exec; the others by mta-remote, one process a destination
 *	domain and message (all its recipients in one SMTP transaction), up
 *	to control/concurrencyremote. A temporary failure is retried at
 *	arrival + (n x retrybase)^2 seconds (half the base for local
 *	recipients), and fails once the message is older than
 *	control/queuelifetime. Failed recipients are reported in one RFC
 *	3464 bounce a message, once every recipient is settled.
 *
 *	Fairness: a message's jobs are cut a few at a time (at most 16 wait
 *	for a slot), and a local user (the U record) has at most
 *	concurrencylocal + concurrencyremote messages worked on at a time,
 *	the others parked in arrival order; drop/ is read a slice a turn,
 *	a uid's share of files and log lines bounded (docs/queue.md).
 *
 *	With --check it checks the queue and prints one line per problem
 *	instead; --repair fixes them as the start-up check does (files that
 *	cannot be used go to queue/quarantine/, nothing is deleted). Do not
 *	run --repair while mta-send runs: the scheduler holds queue/lock and
 *	--check --repair waits for it.
 *
 *	Log lines (stderr, collected by facteur run into log/current) are
 *	qmail-send's: new msg, info msg, starting delivery, delivery N:
 *	success|deferral|failure, status, bounce msg, end msg. qp in "info
 *	msg" is the message file's inode number. Also "vdeliver server
 *	started pid N" and "vdeliver server pid N went away (WHY): K
 *	deliveries to try again" (docs/queue.md, "The vdeliver server").
 *
 * SIGNALS
 *	SIGTERM, SIGINT: start nothing more, wait up to 10 s for running
 *	deliveries (then stop them: they are retried), close the vdeliver
 *	server's socket (it exits), exit 0.
 *	SIGHUP: read the control files again.
 *	SIGALRM: try every waiting message now, whatever its schedule
 *	(qmail-send's meaning; for a destination that is back).
 *
 * ENVIRONMENT
 *	FACTEUR_VDELIVER_EXEC=1: no vdeliver server; every local delivery
 *	is one exec of vdeliver (the way before the server; to compare, or
 *	as a way out).
 *
 * EXIT STATUS
 *	0 stopped, or the check found nothing (or repaired everything);
 *	1 the check found problems (without --repair, or that could not
 *	be repaired); 2 usage;
 *	111 cannot run (another mta-send holds the queue, no queue, ...).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "ctl.h"
#include "msg.h"
#include "priv.h"
#include "send.h"

#define STOP_GRACE_MS 10000
#define BACKLOG_MAX 20000	/* busy messages */
#define LOADED_MAX 1000000	/* their recipients (about 100 B each) */

static const char usage_text[] =
	"usage: mta-send [--root DIR] [--check [--repair]]\n";

/* config - the numbers of the control files, each held within its
 * range (lib/ctl); one that cannot be read is logged and its default used */
static void config(struct send *s)
{
	static const struct {
		enum ctl_numid id;
		size_t off;
	} nums[] = {
		{CTL_CONCURRENCYLOCAL, offsetof(struct send, conc_local)},
		{CTL_CONCURRENCYREMOTE, offsetof(struct send, conc_remote)},
		{CTL_RETRYBASE, offsetof(struct send, retrybase)},
		{CTL_QUEUELIFETIME, offsetof(struct send, lifetime)},
	};
	size_t i;

	for (i = 0; i < sizeof nums / sizeof *nums; i++)
		*(unsigned long *)((char *)s + nums[i].off) =
			ctl_num_warn(s->root, nums[i].id, slog);
	if (ctl_me(s->root, &s->me) < 0 ||
	    ctl_get(s->root, "doublebounceto", "postmaster", &s->dbto) < 0)
		msg_die(111, "cannot read control/me or "
			"control/doublebounceto");
}

/* write_stat - queue/stat for mta-qstat: "PID MESSAGES", so that it need
 * not count a million directory entries; advisory, so not fsynced */
static void write_stat(struct send *s, int force)
{
	struct str p = STR_INIT, t = STR_INIT, v = STR_INIT;
	long long now = now_ms();
	int fd, ok;

	if (s->scan_next < 256) {
		/* the count is not whole before the check has read every
		 * directory: mta-qstat counts them itself meanwhile */
		if (force && str_catf(&p, "%s/queue/stat", s->root) == 0)
			(void)unlink(p.s);
		str_free(&p);
		return;
	}
	if (!force && (s->nmsgs == s->stat_n || now - s->stat_ms < 100))
		return;
	s->stat_ms = now;
	s->stat_n = s->nmsgs;
	if (str_catf(&p, "%s/queue/stat", s->root) < 0 ||
	    str_catf(&t, "%s.tmp", p.s) < 0 ||
	    str_catf(&v, "%ld %zu\n", (long)getpid(), s->nmsgs) < 0)
		goto out;
	fd = open(t.s, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0644);
	if (fd < 0)
		goto out;
	/* the descriptor is closed whatever the write did: a full disk
	 * made every refresh leak one (the soak of issue 15 found it) */
	ok = write(fd, v.s, v.len) == (ssize_t)v.len;
	if (close(fd) < 0)
		ok = 0;
	if (!ok || rename(t.s, p.s) < 0)
		(void)unlink(t.s);
out:
	str_free(&p);
	str_free(&t);
	str_free(&v);
}

/* open_trigger - queue/trigger, made if missing. We also hold it open for
 * writing, so that the read end never sees end-of-file between writers */
static int open_trigger(struct send *s, int *keep)
{
	struct str p = STR_INIT;
	struct stat sb;
	int fd = -1;

	if (str_catf(&p, "%s/queue/trigger", s->root) < 0)
		msg_die(111, "out of memory");
	if (mkfifo(p.s, 0600) < 0 && errno != EEXIST)
		msg_die(111, "cannot make %s: %s", p.s, strerror(errno));
	if (lstat(p.s, &sb) < 0 || !S_ISFIFO(sb.st_mode))
		msg_die(111, "%s is not a FIFO: remove it and start again",
			p.s);
	fd = open(p.s, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		msg_die(111, "cannot open %s: %s", p.s, strerror(errno));
	*keep = open(p.s, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (*keep < 0)
		msg_die(111, "cannot open %s: %s", p.s, strerror(errno));
	str_free(&p);
	return fd;
}

/* lock_queue - one scheduler a queue */
static int lock_queue(const char *root, int wait)
{
	struct str p = STR_INIT;
	int fd, tries;

	if (str_catf(&p, "%s/queue/lock", root) < 0)
		msg_die(111, "out of memory");
	fd = open(p.s, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		msg_die(111, "cannot open %s: %s", p.s, strerror(errno));
	/* a delivery child killed with us may hold it for an instant,
	 * between its clone and its exec: try for two seconds */
	for (tries = 0; flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0;
	     tries++) {
		if (errno != EWOULDBLOCK || tries >= 40)
			msg_die(111, "%s is held: another mta-send runs on "
				"this queue", p.s);
		usleep(50000);
	}
	str_free(&p);
	return fd;
}

/* reap - every child that ended: a job's, or the vdeliver server */
static void reap(struct send *s)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		size_t i;

		for (i = 0; i < s->nrun; i++)
			if (s->run[i]->pid == pid)
				break;
		if (i < s->nrun)
			sched_end(s, i, st, NULL);
		else
			(void)vds_reaped(s, pid, st);
	}
}

/* check_only - --check [--repair]: the queue check, a report, exit 0/1 */
static int check_only(struct send *s, int repair)
{
	size_t problems = 0, unfixed = 0;
	int lk = lock_queue(s->root, 1);
	int r = scan_queue(s, repair ? SCAN_REPAIR : 0, &problems, &unfixed);

	close(lk);
	if (r < 0)
		msg_die(111, "cannot check the queue: %s", msg_err(r));
	if (unfixed)
		printf("%zu problem%s found, %zu could not be repaired (see "
		       "the warnings)\n", problems, problems == 1 ? "" : "s",
		       unfixed);
	else
		printf("%zu problem%s found%s\n", problems,
		       problems == 1 ? "" : "s",
		       problems && repair ? " and repaired" : "");
	if (fflush(stdout) != 0)
		msg_die(111, "cannot write the report: %s", strerror(errno));
	slog_flush();
	slog_free();
	sched_free(s);
	return (problems && !repair) || unfixed ? 1 : 0;
}

/*
 * The event loop. Each turn does the work that is due (work()), sees to
 * the stop deadlines, sleeps in poll() until the next due time (timeout())
 * and hands what woke it to its handler (dispatch()): the deliveries'
 * output first, then the slots below, in this order.
 */
enum { SLOT_TRIGGER, SLOT_DROP, SLOT_VDS, SLOT_SIGNALS, NSLOTS };

struct loop {
	struct send *s;
	int sfd, keep, lock;	/* signalfd, queue/trigger kept, queue/lock */
	long long stop_ms;	/* SIGTERM came: deliveries have until +grace */
	long long term_ms;	/* they were sent SIGTERM then */
	struct pollfd *pf;	/* NSLOTS, then one a running job */
	size_t pf_cap;
};

/* drain - read a trigger FIFO empty (its bytes only say "look"); 1 */
static int drain(int fd)
{
	char buf[512];

	while (read(fd, buf, sizeof buf) > 0)
		;
	return 1;
}

/* on_signals - SIGHUP, SIGALRM, a stop (SIGTERM, SIGINT), then the
 * children that ended */
static void on_signals(struct loop *l)
{
	struct send *s = l->s;
	struct signalfd_siginfo si;

	while (read(l->sfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			config(s);
			slog("control files read again");
		} else if (si.ssi_signo == SIGALRM) {
			sched_now(s);
			slog("every waiting message is due now");
		} else if (si.ssi_signo != SIGCHLD && !s->stopping) {
			s->stopping = 1;
			l->stop_ms = now_ms();
			slog("stopping: waiting for %zu deliver%s", s->nrun,
			     s->nrun == 1 ? "y" : "ies");
		}
	}
	reap(s);
}

/* work - one turn's work; returns whether the deliveries are so far
 * behind that new mail must wait in new/ */
static int work(struct send *s)
{
	int busy;

	/* drop/: a new pass after a trigger, or the next slice */
	if (s->drop_retry_ms && now_ms() >= s->drop_retry_ms) {
		s->drop_retry_ms = 0;
		s->drop_rescan = 1;
	}
	if ((s->drop_rescan || s->drop_dir) && !s->stopping)
		(void)drop_pickup(s);
	/* new mail waits in new/ (durable, not in memory) while the
	 * deliveries are far behind. Counted in messages, of which one local
	 * user holds at most owner_cap() and each queues at most a few jobs:
	 * one sender cannot stop this; and in their recipients, so that
	 * 20,000 messages of 1,000 recipients are not all held in memory */
	busy = s->nbusy >= BACKLOG_MAX || s->nloaded >= LOADED_MAX;
	/* the slots that the deliveries just ended freed are filled first:
	 * under a flood the pickup takes milliseconds, and a slot left
	 * empty meanwhile is a delivery lost for good (issue 17) */
	sched_start(s);
	if (s->rescan && !s->stopping && !busy)
		(void)sched_pickup(s);
	/* the start-up check, a directory a turn: in between, new mail is
	 * taken and deliveries run */
	if (!s->stopping && s->scan_next < 256)
		(void)scan_step(s);
	if (!s->stopping)
		sched_due(s);
	sched_start(s);
	write_stat(s, 0);
	return busy;
}

/* stop_deadlines - when stopping: SIGTERM to deliveries still running
 * after the grace time, and the vdeliver server given up half that later */
static void stop_deadlines(struct loop *l, long long now)
{
	struct send *s = l->s;
	size_t k;

	if (!s->stopping)
		return;
	if (l->stop_ms && now - l->stop_ms > STOP_GRACE_MS) {
		for (k = 0; k < s->nrun; k++)
			if (s->run[k]->pid > 0)
				kill(s->run[k]->pid, SIGTERM);
		/* it passes SIGTERM on to its deliveries */
		vds_term(s);
		l->stop_ms = 0;
		l->term_ms = now;
	}
	if (l->term_ms && now - l->term_ms > STOP_GRACE_MS / 2) {
		vds_gone(s, "its deliveries did not stop");
		l->term_ms = 0;
	}
}

/* timeout - how long poll() may sleep: until the next message is due, not
 * at all while there is work left over, never past a minute */
static int timeout(struct send *s, int busy, long long now)
{
	long long t = 60000;
	struct msg *top = heap_top(s);

	if (top && !s->stopping)
		t = top->due_ms > now ? top->due_ms - now : 0;
	if ((s->rescan && !busy) || (s->scan_next < 256 && !s->stopping))
		t = 0;
	/* drop/ read only in part, or parked mail that may go on */
	if (!s->stopping && (s->drop_rescan || s->drop_dir || s->unpark))
		t = 0;
	if (s->drop_retry_ms && !s->stopping && s->drop_retry_ms - now < t)
		t = s->drop_retry_ms > now ? s->drop_retry_ms - now : 0;
	/* queue/stat soon, and the stop deadlines on time */
	if (s->nmsgs != s->stat_n || s->stopping)
		t = t > 100 ? 100 : t;
	return t > 60000 ? 60000 : (int)t;
}

/* wait_events - poll the slots and every running job's output; the
 * number of entries in l->pf */
static size_t wait_events(struct loop *l, int ms)
{
	struct send *s = l->s;
	size_t n = NSLOTS + s->nrun, k;

	if (l->pf_cap < n) {
		struct pollfd *np = realloc(l->pf, n * sizeof *np);

		if (!np)
			msg_die(111, "out of memory");
		l->pf = np;
		l->pf_cap = n;
	}
	l->pf[SLOT_TRIGGER].fd = s->trigger_fd;
	l->pf[SLOT_DROP].fd = s->drop_fd;	/* -1 is ignored */
	l->pf[SLOT_VDS].fd = s->vds_fd;
	l->pf[SLOT_SIGNALS].fd = l->sfd;
	for (k = 0; k < n; k++) {
		if (k >= NSLOTS)
			l->pf[k].fd = s->run[k - NSLOTS]->out;
		l->pf[k].events = POLLIN;
		l->pf[k].revents = 0;
	}
	slog_flush();
	if (poll(l->pf, n, ms) < 0 && errno != EINTR)
		msg_die(111, "poll: %s", strerror(errno));
	return n;
}

/* dispatch - what woke poll, each to its handler */
static void dispatch(struct loop *l, size_t n)
{
	struct send *s = l->s;
	size_t k;

	for (k = NSLOTS; k < n; k++)
		if (l->pf[k].revents && k - NSLOTS < s->nrun &&
		    s->run[k - NSLOTS]->out == l->pf[k].fd)
			job_drain(s->run[k - NSLOTS]);
	if (l->pf[SLOT_TRIGGER].revents)
		s->rescan = drain(s->trigger_fd);
	if (l->pf[SLOT_DROP].revents)
		s->drop_rescan = drain(s->drop_fd);
	/* before the signals: replies sent by a server that died since are
	 * taken as they are, not retried */
	if (l->pf[SLOT_VDS].revents)
		vds_read(s);
	if (l->pf[SLOT_SIGNALS].revents)
		on_signals(l);
}

/* setup - signals, the lock, the triggers, and the queue read once */
static void setup(struct loop *l)
{
	struct send *s = l->s;
	size_t problems = 0, unfixed = 0;
	sigset_t mask;
	int r;

	signal(SIGPIPE, SIG_IGN);
	send_signals(&mask);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (l->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		msg_die(111, "cannot set up signals: %s", strerror(errno));
	l->lock = lock_queue(s->root, 0);
	s->trigger_fd = open_trigger(s, &l->keep);
	(void)drop_open(s);
	r = scan_queue(s, SCAN_REPAIR | SCAN_LOAD, &problems, &unfixed);
	if (r < 0)
		msg_die(111, "cannot read the queue: %s", msg_err(r));
	s->scan_problems = problems;
	s->scan_unfixed = unfixed;
	slog("started; reading the queue");
	sched_status(s);
	s->rescan = 1;
	write_stat(s, 1);
}

/* teardown - after the last delivery: log, remove queue/stat, close */
static void teardown(struct loop *l)
{
	struct send *s = l->s;
	struct str p = STR_INIT;

	vds_stop(s);
	slog("stopped");
	slog_flush();
	slog_free();
	if (str_catf(&p, "%s/queue/stat", s->root) == 0)
		(void)unlink(p.s);
	str_free(&p);
	close(l->keep);
	drop_close(s);
	dropseen_free(&s->drop_seen);
	if (s->drop_fd >= 0)
		close(s->drop_fd);
	if (s->drop_keep >= 0)
		close(s->drop_keep);
	close(l->lock);
	close(l->sfd);
	close(s->trigger_fd);
	free(l->pf);
	sched_free(s);
}

int main(int argc, char **argv)
{
	struct send s;
	struct loop l = {.s = &s, .sfd = -1, .keep = -1, .lock = -1};
	int i, check = 0, repair = 0;
	const char *ex;

	msg_init(argv[0]);
	atexit(slog_flush); /* msg_die() must not lose the last lines */
	memset(&s, 0, sizeof s);
	s.vds_fd = -1;
	s.root = args_start(&argc, argv, usage_text);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--check"))
			check = 1;
		else if (!strcmp(argv[i], "--repair"))
			repair = 1;
		else
			msg_usage(usage_text, "unknown argument %s", argv[i]);
	}
	if (repair && !check)
		msg_usage(usage_text, "--repair goes with --check");
	priv_start(s.root);
	snprintf(s.uid, sizeof s.uid, "%ld", (long)getuid());
	umask(077);
	config(&s);
	if (check)
		return check_only(&s, repair);
	if (args_sibling(&s.vdeliver, "vdeliver") < 0 ||
	    args_sibling(&s.remote, "mta-remote") < 0)
		msg_die(111, "cannot find vdeliver and mta-remote beside "
			"mta-send");
	/* the old way, one exec a delivery: for comparisons, and a way out
	 * should the server misbehave */
	ex = getenv("FACTEUR_VDELIVER_EXEC");
	s.vds_exec = ex && !strcmp(ex, "1");
	setup(&l);
	for (;;) {
		int busy = work(&s);
		long long now;

		if (s.stopping && s.nrun == 0)
			break;
		now = now_ms();
		stop_deadlines(&l, now);
		dispatch(&l, wait_events(&l, timeout(&s, busy, now)));
	}
	teardown(&l);
	return 0;
}
