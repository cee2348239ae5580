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
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "ctl.h"
#include "fsx.h"
#include "log.h"
#include "msg.h"
#include "priv.h"
#include "send.h"

#define STOP_GRACE_MS 10000
#define BACKLOG_MAX 20000	/* busy messages */
#define LOADED_MAX 1000000	/* their recipients (about 100 B each) */

static const char usage_text[] =
	"usage: mta-send [--root DIR] [--check [--repair]]\n";

uint64_t now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* the log lines of one turn of the loop, written with one write(2): a
 * message costs some eight lines, and facteur run reads them all at once */
static struct str logbuf, logline;

void slog_flush(void)
{
	if (logbuf.len)
		(void)fsx_write_all(2, logbuf.s, logbuf.len);
	logbuf.len = 0;
}

/* send_signals - the signals read from the signalfd, blocked */
void send_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGALRM);
}

void slog(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_format(&logline, "mta-send", getpid(), fmt, ap);
	va_end(ap);
	if (r == 0 && str_catb(&logbuf, logline.s, logline.len) < 0)
		slog_flush(); /* out of memory: write what we have */
	if (logbuf.len > 65536)
		slog_flush();
}

static void config(struct send *s)
{
	static const struct {
		const char *name;
		unsigned long def, min, max;
		size_t off;
	} nums[] = {
		{"concurrencylocal", 10, 1, 1000,
		 offsetof(struct send, conc_local)},
		{"concurrencyremote", 20, 1, 1000,
		 offsetof(struct send, conc_remote)},
		{"retrybase", 20, 1, 86400, offsetof(struct send, retrybase)},
		{"queuelifetime", 604800, 0, 100000000,
		 offsetof(struct send, lifetime)},
	};
	size_t i;

	for (i = 0; i < sizeof nums / sizeof *nums; i++) {
		unsigned long v;
		int r = ctl_get_ulong(s->root, nums[i].name, nums[i].def, &v);

		if (r < 0) {
			slog("warning: control/%s: %s; using %lu", nums[i].name,
			     msg_err(r), nums[i].def);
			v = nums[i].def;
		}
		if (v < nums[i].min)
			v = nums[i].min;
		if (v > nums[i].max)
			v = nums[i].max;
		*(unsigned long *)((char *)s + nums[i].off) = v;
	}
	if (ctl_get(s->root, "me", "localhost", &s->me) < 0 ||
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
	int fd;

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
	if (write(fd, v.s, v.len) != (ssize_t)v.len || close(fd) < 0 ||
	    rename(t.s, p.s) < 0)
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
	str_free(&logbuf);
	str_free(&logline);
	sched_free(s);
	return (problems && !repair) || unfixed ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct send s;
	struct pollfd *pf = NULL;
	size_t pf_cap = 0, problems = 0, unfixed = 0;
	sigset_t mask;
	int i, check = 0, repair = 0, sfd, keep, lk, r;
	long long stop_ms = 0, term_ms = 0;
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
	r = priv_become_mailuser(s.root);
	if (r < 0)
		msg_die(111, "cannot become the mail user: %s", priv_error(r));
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
	signal(SIGPIPE, SIG_IGN);
	send_signals(&mask);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		msg_die(111, "cannot set up signals: %s", strerror(errno));
	lk = lock_queue(s.root, 0);
	s.trigger_fd = open_trigger(&s, &keep);
	(void)drop_open(&s);
	r = scan_queue(&s, SCAN_REPAIR | SCAN_LOAD, &problems, &unfixed);
	if (r < 0)
		msg_die(111, "cannot read the queue: %s", msg_err(r));
	s.scan_problems = problems;
	s.scan_unfixed = unfixed;
	slog("started; reading the queue");
	sched_status(&s);
	s.rescan = 1;
	write_stat(&s, 1);
	for (;;) {
		long long now, timeout;
		struct msg *top;
		int busy;
		size_t n = 0, k;

		/* drop/: a new pass after a trigger, or the next slice */
		if (s.drop_retry_ms && now_ms() >= s.drop_retry_ms) {
			s.drop_retry_ms = 0;
			s.drop_rescan = 1;
		}
		if ((s.drop_rescan || s.drop_dir) && !s.stopping)
			(void)drop_pickup(&s);
		/* new mail waits in new/ (durable, not in memory) while
		 * the deliveries are far behind. Counted in messages, of
		 * which one local user holds at most owner_cap() and each
		 * queues at most a few jobs: one sender cannot stop this;
		 * and in their recipients, so that 20,000 messages of
		 * 1,000 recipients are not all held in memory */
		busy = s.nbusy >= BACKLOG_MAX || s.nloaded >= LOADED_MAX;
		if (s.rescan && !s.stopping && !busy)
			(void)sched_pickup(&s);
		/* the start-up check, a directory a turn: in between, new
		 * mail is taken and deliveries run */
		if (!s.stopping && s.scan_next < 256)
			(void)scan_step(&s);
		if (!s.stopping)
			sched_due(&s);
		sched_start(&s);
		write_stat(&s, 0);
		if (s.stopping && s.nrun == 0)
			break;
		now = now_ms();
		if (s.stopping && stop_ms && now - stop_ms > STOP_GRACE_MS) {
			for (k = 0; k < s.nrun; k++)
				if (s.run[k]->pid > 0)
					kill(s.run[k]->pid, SIGTERM);
			/* it passes SIGTERM on to its deliveries */
			vds_term(&s);
			stop_ms = 0;
			term_ms = now;
		}
		if (s.stopping && term_ms &&
		    now - term_ms > STOP_GRACE_MS / 2) {
			vds_gone(&s, "its deliveries did not stop");
			term_ms = 0;
		}
		timeout = 60000;
		top = heap_top(&s);
		if (top && !s.stopping)
			timeout = top->due_ms > now ? top->due_ms - now : 0;
		if ((s.rescan && !busy) || (s.scan_next < 256 && !s.stopping))
			timeout = 0;
		/* drop/ read only in part, or parked mail that may go on */
		if (!s.stopping && (s.drop_rescan || s.drop_dir ||
		    s.unpark))
			timeout = 0;
		if (s.drop_retry_ms && !s.stopping &&
		    s.drop_retry_ms - now < (long long)timeout)
			timeout = s.drop_retry_ms > now ?
				  s.drop_retry_ms - now : 0;
		if (s.nmsgs != s.stat_n || s.stopping)
			timeout = timeout > 100 ? 100 : timeout;
		if (timeout > 60000)
			timeout = 60000;
		if (pf_cap < s.nrun + 4) {
			struct pollfd *np = realloc(pf, (s.nrun + 4) *
						    sizeof *np);

			if (!np)
				msg_die(111, "out of memory");
			pf = np;
			pf_cap = s.nrun + 4;
		}
		pf[n].fd = sfd;
		pf[n++].events = POLLIN;
		pf[n].fd = s.trigger_fd;
		pf[n++].events = POLLIN;
		for (k = 0; k < s.nrun; k++) {
			pf[n].fd = s.run[k]->out;
			pf[n++].events = POLLIN;
		}
		/* last, so that the jobs' places stay k - 2; -1 is ignored */
		pf[n].fd = s.drop_fd;
		pf[n++].events = POLLIN;
		pf[n].fd = s.vds_fd;
		pf[n++].events = POLLIN;
		slog_flush();
		if (poll(pf, n, (int)timeout) < 0 && errno != EINTR)
			msg_die(111, "poll: %s", strerror(errno));
		for (k = 2; k < n - 2; k++)
			if (pf[k].revents && k - 2 < s.nrun &&
			    s.run[k - 2]->out == pf[k].fd)
				job_drain(s.run[k - 2]);
		if (pf[1].revents) {
			char buf[512];

			while (read(s.trigger_fd, buf, sizeof buf) > 0)
				;
			s.rescan = 1;
		}
		if (pf[n - 2].revents) {
			char buf[512];

			while (read(s.drop_fd, buf, sizeof buf) > 0)
				;
			s.drop_rescan = 1;
		}
		/* before the signals: replies sent by a server that died
		 * since are taken as they are, not retried */
		if (pf[n - 1].revents)
			vds_read(&s);
		if (pf[0].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGHUP) {
					config(&s);
					slog("control files read again");
				} else if (si.ssi_signo == SIGALRM) {
					sched_now(&s);
					slog("every waiting message is due now");
				} else if (si.ssi_signo != SIGCHLD &&
					   !s.stopping) {
					s.stopping = 1;
					stop_ms = now_ms();
					slog("stopping: waiting for %zu "
					     "deliver%s", s.nrun,
					     s.nrun == 1 ? "y" : "ies");
				}
			}
			reap(&s);
		}
	}
	vds_stop(&s);
	slog("stopped");
	slog_flush();
	str_free(&logbuf);
	str_free(&logline);
	{
		struct str p = STR_INIT;

		if (str_catf(&p, "%s/queue/stat", s.root) == 0)
			(void)unlink(p.s);
		str_free(&p);
	}
	close(keep);
	drop_close(&s);
	dropseen_free(&s.drop_seen);
	if (s.drop_fd >= 0)
		close(s.drop_fd);
	if (s.drop_keep >= 0)
		close(s.drop_keep);
	close(lk);
	close(sfd);
	close(s.trigger_fd);
	free(pf);
	sched_free(&s);
	return 0;
}
