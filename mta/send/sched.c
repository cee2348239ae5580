/*
 * sched - taking messages in, cutting them into deliveries, recording
 * what became of each recipient, retrying and finishing.
 *
 * A message is either waiting (in the heap, its recipients on disk only),
 * parked (waiting behind its owner's busy messages, owner.c) or busy
 * (loaded, with a plan of due recipients sorted by domain and jobs cut
 * from it a few at a time, queued or running). When its last job ends
 * it is looked at again: finished if every recipient is settled, else
 * filed back into the heap for its earliest retry.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acct.h"
#include "args.h"
#include "cdbx.h"
#include "fsx.h"
#include "hdrscan.h"
#include "send.h"

extern char **environ;

#define JOB_RCPTS_MAX 100	/* recipients in one SMTP transaction */
#define OUT_MAX (256 * 1024)	/* bytes of a child's output kept */
#define PICKUP_MAX 1000		/* messages taken from new/ a turn */
#define PICKUP_BUSY 64		/* the same while deliveries run */
#define DUE_MAX 1000		/* waiting messages loaded a turn */
#define MSG_QUEUED_MAX 16	/* jobs of one message waiting for a slot */

void mstate_free(struct mstate *st)
{
	if (!st)
		return;
	if (st->sfd >= 0)
		close(st->sfd);
	if (st->r)
		qrcpt_free(st->r, st->n);
	free(st->r);
	free(st->addr);
	free(st->busy);
	free(st->plan);
	qenv_free(&st->env);
	str_free(&st->path);
	free(st);
}

/* hops - the hop count of a queued message (lib/hdrscan.h): a file that
 * got in without passing an entry's check (an old queue, a hand-written
 * drop file) is stopped here. Its entry's own Received line is on top */
static int hops(int fd, struct mstate *st)
{
	struct hdrscan h;
	int r;

	hdrscan_init(&h, NULL, 0);
	r = hdrscan_fd(&h, fd, st->body_off, st->body_len);
	st->looped = hdrscan_looped(&h, 1);
	hdrscan_free(&h);
	return r == -ENOMEM ? r : 0;	/* unreadable: the delivery says */
}

/* mstate_load - open and check the message file, read its outcomes.
 * -ENOMEM and -EMFILE are ours; any other error is the file's fault */
int mstate_load(struct send *s, struct msg *m)
{
	struct mstate *st = calloc(1, sizeof *st);
	struct str sp = STR_INIT;
	struct stat sb;
	size_t i, off;
	int fd, r;

	if (!st)
		return -ENOMEM;
	st->sfd = -1;
	qenv_init(&st->env);
	r = queue_msg_path(&st->path, s->root, m->id, NULL);
	fd = r < 0 ? -1 : open(st->path.s, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (r == 0 && fd < 0)
		r = -errno;
	if (r == 0 && fstat(fd, &sb) < 0)
		r = -errno;
	if (r == 0 && !S_ISREG(sb.st_mode))
		r = -EISDIR;
	if (r == 0 && sb.st_uid != geteuid())
		r = -EPERM;	/* not written by us: not trusted */
	if (r == 0)
		r = queue_read_env(fd, &st->env, &st->body_off,
				   &st->body_len);
	if (r == 0)
		r = hops(fd, st);
	if (fd >= 0)
		close(fd);
	if (r == 0) {
		st->n = st->env.nrcpts;
		st->addr = calloc(st->n, sizeof *st->addr);
		st->r = calloc(st->n, sizeof *st->r);
		st->busy = calloc(st->n, 1);
		if (!st->addr || !st->r || !st->busy)
			r = -ENOMEM;
	}
	for (i = 0, off = 0; r == 0 && i < st->n; i++) {
		st->addr[i] = st->env.rcpts.s + off;
		off += strlen(st->addr[i]) + 1;
	}
	if (r == 0 && str_catf(&sp, "%s.s", st->path.s) < 0)
		r = -ENOMEM;
	if (r == 0)
		r = qstatus_read(sp.s, st->r, st->n);
	str_free(&sp);
	if (r < 0) {
		mstate_free(st);
		return r;
	}
	m->st = st;
	s->nloaded += st->n;
	return 0;
}

/* unload - the message leaves memory; if it was busy, its owner may take
 * up a parked one */
static void unload(struct send *s, struct msg *m)
{
	owner_release(s, m);
	if (m->st)
		s->nloaded -= m->st->n;
	mstate_free(m->st);
	m->st = NULL;
}

/* due_at - the monotonic time for a wall-clock time: the loop's timers
 * run on the monotonic clock, so a clock set back after this point
 * delays nothing */
static long long due_at(uint64_t wall_us)
{
	uint64_t now = now_us();
	long long ms = now_ms();

	if (wall_us <= now)
		return ms;
	if (wall_us - now > (uint64_t)400 * 86400 * 1000000)
		wall_us = now + (uint64_t)400 * 86400 * 1000000;
	return ms + (long long)((wall_us - now) / 1000);
}

/* rcpt_due - when recipient Q is due by the wall clock. record() never
 * plans a try more than one step of the schedule ahead, (2n+1) x base^2
 * after try n; a time further ahead was planned on a clock that has been
 * set back since, and is due now rather than that much later */
uint64_t rcpt_due(const struct send *s, const struct qrcpt *q, uint64_t now)
{
	uint64_t b = s->retrybase ? s->retrybase : 1;
	uint64_t step = ((uint64_t)q->tries * 2 + 1) * b * b * 1000000u +
			1000000u;

	return q->next_us > now && q->next_us - now > step ? now : q->next_us;
}

static void forget(struct send *s, struct msg *m)
{
	unload(s, m);
	free(m);
	if (s->nmsgs)
		s->nmsgs--;
}

/* wait_until - M back to wait, due at DUE_MS. Without memory for the heap
 * it is only forgotten here: the file stays, and the next start files it */
static int wait_until(struct send *s, struct msg *m, long long due_ms)
{
	unload(s, m);
	m->due_ms = due_ms;
	if (heap_push(s, m) == 0)
		return 0;
	slog("warning: out of memory: msg %s stays in the queue untried "
	     "until mta-send starts again", m->id);
	forget(s, m);
	return -ENOMEM;
}

/* quarantine_msg - a file we cannot use, moved aside with its status */
static void quarantine_msg(struct send *s, struct msg *m, int err)
{
	struct str p = STR_INIT;
	char why[128];

	if (err == -EILSEQ)
		snprintf(why, sizeof why, "damaged (cut short, or an unknown "
			 "or broken record)");
	else if (err == -EPERM)
		snprintf(why, sizeof why, "owned by another user");
	else if (err == -ELOOP)
		snprintf(why, sizeof why, "a symbolic link, not a message "
			 "file");
	else if (err == -EISDIR)
		snprintf(why, sizeof why, "not a regular file");
	else
		snprintf(why, sizeof why, "cannot use it: %s", strerror(-err));
	if (queue_msg_path(&p, s->root, m->id, NULL) == 0) {
		(void)quarantine(s->root, p.s, why);
		if (str_cats(&p, ".s") == 0 && access(p.s, F_OK) == 0)
			(void)quarantine(s->root, p.s, "status of a "
					 "quarantined message");
	}
	str_free(&p);
	forget(s, m);
}

/* load - bring a message in; on failure it is dealt with here and the
 * caller must forget the pointer (returns -1) */
static int load(struct send *s, struct msg *m)
{
	int r;

	if (m->st)
		return 0;
	r = mstate_load(s, m);
	if (r == 0)
		return 0;
	if (r == -ENOENT) {
		slog("msg %s vanished from the queue", m->id);
		forget(s, m);
	} else if (r == -ENOMEM || r == -EMFILE || r == -ENFILE) {
		slog("warning: cannot load msg %s: %s; trying again in 60 s",
		     m->id, strerror(-r));
		/* from the heap it is one of its owner's new ones again */
		m->unparked = 0;
		(void)wait_until(s, m, now_ms() + 60000);
	} else {
		quarantine_msg(s, m, r);
	}
	return -1;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	if (j->out >= 0)
		close(j->out);
	free(j->idx);
	free(j->dno);
	str_free(&j->buf);
	free(j);
}

static struct job *job_new(struct msg *m, int remote, size_t cap)
{
	struct job *j = calloc(1, sizeof *j);

	if (!j)
		return NULL;
	j->m = m;
	j->remote = remote;
	j->out = -1;
	j->idx = calloc(cap, sizeof *j->idx);
	j->dno = calloc(cap, sizeof *j->dno);
	if (!j->idx || !j->dno) {
		job_free(j);
		return NULL;
	}
	return j;
}

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

static void finish(struct send *s, struct msg *m);
static void record(struct send *s, struct msg *m, size_t i, char kind,
		   const char *text, size_t tlen, int remote);
static void loop_fail(struct send *s, struct msg *m, size_t i);

/* one due recipient not yet in a job; dom points into the envelope */
struct pitem {
	const char *dom;
	size_t i;
	int loc;
};

static int by_domain(const void *a, const void *b)
{
	const struct pitem *x = a, *y = b;
	int c = strcasecmp(x->dom, y->dom);

	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

static void plan_drop(struct mstate *st)
{
	free(st->plan);
	st->plan = NULL;
	st->nplan = st->plan_pos = 0;
}

/* plan_make - every due recipient, sorted by domain so that one domain's
 * recipients are neighbours: O(n log n), where pairing them by comparing
 * each with every other cost minutes of CPU for 45,000 recipients; one
 * assign.cdb lookup a domain. Without memory the message waits (settle) */
static void plan_make(struct send *s, struct msg *m)
{
	struct mstate *st = m->st;
	uint64_t now = now_us();
	struct pitem *p;
	size_t i, n = 0, k, run;

	p = calloc(st->n ? st->n : 1, sizeof *p);
	if (!p)
		return;
	for (i = 0; i < st->n; i++) {
		if (st->r[i].state != QS_PENDING || st->busy[i])
			continue;
		if (st->looped) {
			/* waiting would not help: every one fails now */
			loop_fail(s, m, i);
			continue;
		}
		if (m->force || rcpt_due(s, &st->r[i], now) <= now) {
			p[n].dom = domain_of(st->addr[i]);
			p[n++].i = i;
		}
	}
	qsort(p, n, sizeof *p, by_domain);
	/* assign.cdb stays open between messages, stat'ed once a message */
	cdbx_batch_begin();
	for (i = 0, k = 0; i < n; i = run) {
		int loc = acct_local(s->root, st->addr[p[i].i]);

		for (run = i; run < n && !strcasecmp(p[run].dom, p[i].dom);
		     run++) {
			static const char t[] = "cannot read control/assign.cdb";

			if (loc < 0) {
				record(s, m, p[run].i, 'T', t, sizeof t - 1, 0);
				continue;
			}
			p[k] = p[run];
			p[k++].loc = loc;
		}
	}
	cdbx_batch_end();
	if (!k) {
		free(p);
		return;
	}
	st->plan = p;
	st->nplan = k;
	st->plan_pos = 0;
}

/* cut - the next job of the plan: one local recipient, or the next (at
 * most JOB_RCPTS_MAX) recipients of one remote domain */
static int cut(struct send *s, struct msg *m)
{
	struct mstate *st = m->st;
	struct pitem *p = st->plan + st->plan_pos;
	size_t k = 1, x;
	struct job *j;

	if (!p->loc)
		while (st->plan_pos + k < st->nplan && k < JOB_RCPTS_MAX &&
		       !strcasecmp(p[k].dom, p->dom))
			k++;
	j = job_new(m, !p->loc, k);
	if (!j)
		return -ENOMEM;
	for (x = 0; x < k; x++) {
		j->idx[j->n++] = p[x].i;
		st->busy[p[x].i] = 1;
	}
	st->plan_pos += k;
	if (st->plan_pos == st->nplan)
		plan_drop(st);
	st->jobs++;
	st->queued++;
	fair_add(s, j);
	return 0;
}

/* refill - jobs cut from the plan until MSG_QUEUED_MAX of the message's
 * wait for a slot: its other recipients wait in the plan, and get their
 * jobs as these start, behind whatever was queued meanwhile */
static void refill(struct send *s, struct msg *m)
{
	while (m->st->plan && m->st->queued < MSG_QUEUED_MAX)
		if (cut(s, m) < 0)
			break;
}

/* settle - no job left: finished if every recipient is, else back to
 * wait for its earliest retry */
static void settle(struct send *s, struct msg *m)
{
	struct mstate *st = m->st;
	uint64_t next = UINT64_MAX;
	size_t i, pending = 0;

	for (i = 0; i < st->n; i++)
		if (st->r[i].state == QS_PENDING) {
			pending++;
			if (st->r[i].next_us < next)
				next = st->r[i].next_us;
		}
	if (!pending) {
		finish(s, m);
		return;
	}
	if (next == UINT64_MAX)
		next = now_us() + 60000000; /* cannot happen; never spin */
	(void)wait_until(s, m, due_at(next));
}

/* dispatch - a busy message looked at again: with no job, its due
 * recipients planned; jobs cut up to the cap; with no job still, settled.
 * A recipient left unplanned for want of memory is due, so it is
 * retried at once */
static void dispatch(struct send *s, struct msg *m)
{
	struct mstate *st = m->st;

	if (!st->plan && !st->jobs)
		plan_make(s, m);
	refill(s, m);
	m->force = 0;
	if (st->jobs)
		return;
	plan_drop(st);
	settle(s, m);
}

/* admit - a loaded message worked on now, or parked behind its owner's
 * other busy messages (owner.c) */
static void admit(struct send *s, struct msg *m)
{
	if (owner_take(s, m))
		dispatch(s, m);
	else
		unload(s, m);
}

/* msg_new - a message known by its id, counted in the queue; NULL for
 * no memory or a name that is not an id */
static struct msg *msg_new(struct send *s, const char *id, uint64_t *ino)
{
	struct msg *m = calloc(1, sizeof *m);

	if (!m)
		return NULL;
	if (strlen(id) >= sizeof m->id ||
	    queue_id_parse(id, &m->arrival_us, ino) < 0) {
		free(m);
		return NULL;
	}
	strcpy(m->id, id);
	m->hidx = NOHEAP;
	s->nmsgs++;
	return m;
}

/* sched_add - a message in queue/msg/ that was just taken from new/:
 * log it as qmail did and start on it at once */
int sched_add(struct send *s, const char *id, int fresh)
{
	uint64_t ino;
	struct msg *m = msg_new(s, id, &ino);
	struct mstate *st;

	if (!m)
		return -ENOMEM;
	m->ours = 1;
	if (load(s, m) < 0)
		return 0;
	st = m->st;
	if (fresh) {
		/* a uid always, as qmail logs the receiving process's (its
		 * log readers want a number): a local injector's from U,
		 * else mta-smtpd's, which is ours (the file is: mstate_load) */
		slog("new msg %s", m->id);
		slog("info msg %s: bytes %llu from <%s> qp %llu uid %s",
		     m->id, (unsigned long long)st->body_len,
		     str_cstr(&st->env.sender), (unsigned long long)ino,
		     st->env.uid.len ? st->env.uid.s : s->uid);
	}
	admit(s, m);
	return 0;
}

/* sched_restore - a message found at start-up, due at DUE_US */
int sched_restore(struct send *s, const char *id, uint64_t due_us)
{
	uint64_t ino;
	struct msg *m = msg_new(s, id, &ino);

	if (!m) {
		slog("warning: out of memory: msg %s stays in the queue "
		     "untried until mta-send starts again", id);
		return -ENOMEM;
	}
	return wait_until(s, m, due_at(due_us));
}

/* take - new/ID into msg/HH/ID; never over an existing file */
static int take(struct send *s, const char *id, struct str *src,
		struct str *dst)
{
	int r;

	src->len = 0;
	if (str_catf(src, "%s/queue/new/%s", s->root, id) < 0 ||
	    queue_msg_path(dst, s->root, id, NULL) < 0)
		return -ENOMEM;
	r = renameat2(AT_FDCWD, src->s, AT_FDCWD, dst->s, RENAME_NOREPLACE);
	if (r < 0 && errno == ENOENT && access(src->s, F_OK) == 0) {
		char *slash = strrchr(dst->s, '/');

		*slash = 0;
		if (mkdir(dst->s, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			*slash = '/';
			return r;
		}
		*slash = '/';
		r = renameat2(AT_FDCWD, src->s, AT_FDCWD, dst->s,
			      RENAME_NOREPLACE);
	}
	return r < 0 ? -errno : 0;
}

/* sched_pickup - everything in queue/new/, taken in and started. The
 * rename into msg/ needs no fsync: lost in a power cut, it leaves the
 * file in new/, to be taken again */
int sched_pickup(struct send *s)
{
	struct str dir = STR_INIT, src = STR_INIT, dst = STR_INIT;
	struct dirent *de;
	DIR *d;
	/* while deliveries run, a small slice a turn: their ends are seen
	 * and their slots filled again between slices, not after the whole
	 * flood has been read in (issue 17) */
	size_t n = 0, max = s->nrun ? PICKUP_BUSY : PICKUP_MAX;
	int r = 0;

	s->rescan = 0;
	if (str_catf(&dir, "%s/queue/new", s->root) < 0)
		return -ENOMEM;
	d = opendir(dir.s);
	if (!d) {
		r = -errno;
		slog("warning: cannot read %s: %s", dir.s, strerror(errno));
		str_free(&dir);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		uint64_t a, ino;

		if (de->d_name[0] == '.')
			continue;
		if (n >= max) {
			s->rescan = 1; /* the rest next turn */
			break;
		}
		if (queue_id_parse(de->d_name, &a, &ino) < 0 ||
		    strlen(de->d_name) >= sizeof ((struct msg *)0)->id ||
		    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)) {
			src.len = 0;
			if (str_catf(&src, "%s/%s", dir.s, de->d_name) == 0)
				(void)quarantine(s->root, src.s, "not a "
						 "message file in queue/new");
			continue;
		}
		r = take(s, de->d_name, &src, &dst);
		if (r == -EEXIST) {
			(void)quarantine(s->root, src.s, "a message with this "
					 "id is already queued");
			continue;
		}
		if (r < 0) {
			slog("warning: cannot move %s into queue/msg: %s",
			     src.s, strerror(-r));
			continue;
		}
		n++;
		if (seen_add(s, de->d_name) < 0) {
			/* the check would file it a second time */
			slog("warning: out of memory; msg %s waits for the "
			     "queue check", de->d_name);
			continue;
		}
		if (sched_add(s, de->d_name, 1) < 0)
			slog("warning: out of memory for msg %s; it is "
			     "taken up again at restart", de->d_name);
	}
	closedir(d);
	/* the "new msg" lines of what was just moved out of new/: a kill
	 * before the turn's flush would leave them unlogged for good */
	slog_flush();
	str_free(&dir);
	str_free(&src);
	str_free(&dst);
	return 0;
}

/* sched_limit - busy messages beyond which no waiting one is loaded: a
 * backlog stays on disk, not in memory */
size_t sched_limit(const struct send *s)
{
	return 2 * (s->conc_local + s->conc_remote) + 64;
}

/* sched_due - start on the parked messages whose owner has room, then on
 * the waiting messages whose time has come while fewer than
 * sched_limit() are busy; at most DUE_MAX loads a turn, so that new mail
 * and outcomes are not held up by a long run of loads */
void sched_due(struct send *s)
{
	long long now = now_ms();
	size_t n = 0;
	struct msg *m;

	/* parked mail is bounded by owner already (owner_cap): mail without
	 * a uid keeping nbusy past the limit must not freeze it */
	while (s->unpark && n++ < DUE_MAX && (m = owner_next(s)) != NULL)
		if (load(s, m) == 0)
			admit(s, m);
	while ((m = heap_top(s)) != NULL && m->due_ms <= now &&
	       s->nbusy < sched_limit(s) && n++ < DUE_MAX) {
		heap_pop(s);
		if (load(s, m) == 0)
			admit(s, m);
	}
}

void sched_status(struct send *s)
{
	slog("status: local %zu/%lu remote %zu/%lu", s->nlocal,
	     s->conc_local, s->nremote, s->conc_remote);
}

static int run_add(struct send *s, struct job *j)
{
	if (s->nrun == s->run_cap) {
		size_t cap = s->run_cap ? s->run_cap * 2 : 64;
		struct job **a = realloc(s->run, cap * sizeof *a);

		if (!a)
			return -ENOMEM;
		s->run = a;
		s->run_cap = cap;
	}
	s->run[s->nrun++] = j;
	return 0;
}

/* send_signals - the signals the loop reads from its signalfd, blocked;
 * here beside spawn_attr_clean, which gives them back to every child */
void send_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGALRM);
}

/* spawn_attr_clean - a child starts without the signals we block for the
 * signalfd, and with their default actions: the SIGTERM of the stop
 * deadline must reach it, and SIGPIPE must not be ignored there */
int spawn_attr_clean(posix_spawnattr_t *sa)
{
	sigset_t none, dfl;
	int r;

	sigemptyset(&none);
	send_signals(&dfl);
	sigaddset(&dfl, SIGPIPE);
	r = posix_spawnattr_setsigmask(sa, &none);
	if (r == 0)
		r = posix_spawnattr_setsigdefault(sa, &dfl);
	if (r == 0)
		r = posix_spawnattr_setflags(sa, POSIX_SPAWN_SETSIGMASK |
					     POSIX_SPAWN_SETSIGDEF);
	return r;
}

/* spawn - the delivery program with the message on stdin at its body: a
 * local one by the vdeliver server when it can (vds.c), else by exec */
static int spawn(struct send *s, struct job *j)
{
	struct mstate *st = j->m->st;
	posix_spawn_file_actions_t fa;
	struct str fopt = STR_INIT;
	const char **argv;
	int fd, p[2], r;
	size_t a = 0, i;

	fd = open(st->path.s, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (lseek(fd, st->body_off, SEEK_SET) < 0 ||
	    pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!j->remote && vds_submit(s, j, fd, p[1]) == 0) {
		close(fd);
		close(p[1]);
		j->out = p[0];
		(void)fcntl(j->out, F_SETFL, O_NONBLOCK);
		return 0;
	}
	argv = calloc(j->n + 8, sizeof *argv);
	if (!argv || args_sender_opt(&fopt, queue_sender_arg(&st->env)) < 0) {
		free(argv);
		str_free(&fopt);
		close(fd);
		close(p[0]);
		close(p[1]);
		return -ENOMEM;
	}
	if (j->remote) {
		argv[a++] = "mta-remote";
		argv[a++] = "--root";
		argv[a++] = s->root;
		argv[a++] = "--";	/* envelope values: never options */
		argv[a++] = domain_of(st->addr[j->idx[0]]);
		argv[a++] = str_cstr(&st->env.sender);
	} else {
		argv[a++] = "vdeliver";
		argv[a++] = "--root";
		argv[a++] = s->root;
		argv[a++] = fopt.s;	/* -fSENDER: one word, not --root */
		argv[a++] = "--";
	}
	for (i = 0; i < j->n; i++)
		argv[a++] = st->addr[j->idx[i]];
	r = posix_spawn_file_actions_init(&fa);
	if (r == 0) {
		posix_spawnattr_t sa;
		int sa_ok = posix_spawnattr_init(&sa) == 0;

		r = sa_ok ? spawn_attr_clean(&sa) : ENOMEM;
		if (r == 0)
			r = posix_spawn_file_actions_adddup2(&fa, fd, 0);
		if (r == 0)
			r = posix_spawn_file_actions_adddup2(&fa, p[1], 1);
		/* vdeliver's reason is on stderr; mta-remote's stderr is
		 * its diagnostics, for the log */
		if (r == 0 && !j->remote)
			r = posix_spawn_file_actions_adddup2(&fa, p[1], 2);
		if (r == 0)
			r = posix_spawn(&j->pid, j->remote ? s->remote.s :
					s->vdeliver.s, &fa, &sa,
					(char *const *)argv, environ);
		if (sa_ok)
			posix_spawnattr_destroy(&sa);
		posix_spawn_file_actions_destroy(&fa);
	}
	close(fd);
	close(p[1]);
	free(argv);
	str_free(&fopt);
	if (r != 0) {
		close(p[0]);
		return -r;
	}
	j->out = p[0];
	(void)fcntl(j->out, F_SETFL, O_NONBLOCK);
	return 0;
}

/* cannot_start - a job whose program could not be started ends here,
 * deferred with the reason, through sched_end() once it holds a slot */
static void cannot_start(struct send *s, struct job *j, int r)
{
	size_t i;

	str_trunc(&j->buf, 0);
	(void)str_catf(&j->buf, "cannot start %s: %s",
		       j->remote ? "mta-remote" : "vdeliver", strerror(-r));
	/* not necessarily last: a server that went away meanwhile took its
	 * jobs out */
	for (i = 0; i < s->nrun && s->run[i] != j; i++)
		;
	if (i < s->nrun) {
		sched_end(s, i, -1, NULL);
		return;
	}
	j->exited = 1;
	j->status = -1;
	sched_done(s, j);
}

/* announce - log a job's deliveries and give it a slot; its program is
 * started by sched_start() once the turn's lines are written */
static void announce(struct send *s, struct job *j, struct fifo *turn)
{
	struct mstate *st = j->m->st;
	size_t i;
	int r;

	for (i = 0; i < j->n; i++) {
		j->dno[i] = ++s->dno;
		slog("starting delivery %lu: msg %s to %s %s", j->dno[i],
		     j->m->id, j->remote ? "remote" : "local",
		     st->addr[j->idx[i]]);
	}
	r = run_add(s, j);
	if (r < 0) {
		cannot_start(s, j, r);
		return;
	}
	if (j->remote)
		s->nremote++;
	else
		s->nlocal++;
	fair_ran(s, j, 1);
	sched_status(s);
	job_add(turn, j);
}

/* take_slot - J leaves its queue for a slot; its message's next job is
 * cut now, before announce() can end J and with it the message */
static void take_slot(struct send *s, struct job *j, struct fifo *turn)
{
	j->m->st->queued--;
	refill(s, j->m);
	announce(s, j, turn);
}

/* sched_start - fill the free delivery slots. Every "starting delivery"
 * line is written before its program runs: a kill -9 of mta-send loses
 * the lines still buffered, and a delivery the log never announced could
 * not be told from one that never happened. Until then a job holds its
 * slot with neither pid nor tag, which nothing that ends jobs matches */
void sched_start(struct send *s)
{
	struct fifo turn = {0};
	struct job *j;
	int r;

	if (s->stopping)
		return;
	while (s->nlocal < s->conc_local && (j = fair_take(s, 0)) != NULL)
		take_slot(s, j, &turn);
	while (s->nremote < s->conc_remote && (j = fair_take(s, 1)) != NULL)
		take_slot(s, j, &turn);
	if (!turn.n)
		return;
	slog_flush();
	while ((j = job_take(&turn)) != NULL) {
		j->started_ms = now_ms();
		r = spawn(s, j);
		if (r < 0)
			cannot_start(s, j, r);
	}
}

/* job_drain - what the job's program wrote so far (bounded) */
void job_drain(struct job *j)
{
	char buf[4096];
	ssize_t n;

	while (j->out >= 0) {
		n = read(j->out, buf, sizeof buf);
		if (n > 0) {
			if (j->buf.len < OUT_MAX)
				(void)str_catb(&j->buf, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		close(j->out); /* end of file, or an error */
		j->out = -1;
	}
}

/* sched_end - the running job s->run[I] ended with wait status STATUS
 * (-1: it did not run), whether its own child or the vdeliver server said
 * so; WHY, if not NULL, is the reason instead of what it printed */
void sched_end(struct send *s, size_t i, int status, const char *why)
{
	struct job *j = s->run[i];

	s->run[i] = s->run[--s->nrun];
	j->exited = 1;
	j->status = status;
	/* all it wrote is in the pipe now; a grandchild that kept the pipe
	 * open does not hold the outcome up */
	job_drain(j);
	if (j->out >= 0) {
		close(j->out);
		j->out = -1;
	}
	if (why) {
		str_trunc(&j->buf, 0);
		(void)str_cats(&j->buf, why);
	}
	if (j->remote)
		s->nremote--;
	else
		s->nlocal--;
	fair_ran(s, j, -1);
	sched_done(s, j);
	sched_status(s);
}

/* log_text - TEXT as qmail wrote it: one field, spaces as '_' */
static void log_delivery(unsigned long dno, const char *word,
			 const char *text, size_t len)
{
	struct str t = STR_INIT;
	size_t i;

	qstatus_clean(&t, text, len);
	for (i = 0; i < t.len; i++)
		if (t.s[i] == ' ')
			t.s[i] = '_';
	slog("delivery %lu: %s: %s", dno, word, str_cstr(&t));
	str_free(&t);
}

/* loop_fail - a recipient of a looping message fails without a delivery
 * program: logged as a delivery that failed at once, then bounced as any
 * failure is (a bounce from <> goes to doublebounceto, once) */
static void loop_fail(struct send *s, struct msg *m, size_t i)
{
	static const char t[] = "5.4.6 " HDRSCAN_LOOP_TEXT;
	unsigned long dno = ++s->dno;
	int remote = acct_local(s->root, m->st->addr[i]) == 0; /* the log's */

	slog("starting delivery %lu: msg %s to %s %s", dno, m->id,
	     remote ? "remote" : "local", m->st->addr[i]);
	record(s, m, i, 'F', t, sizeof t - 1, remote);
	log_delivery(dno, "failure", t, sizeof t - 1);
}

/* record - the outcome of one recipient, in memory; written to ID.s by
 * persist() unless the message is finished first */
static void record(struct send *s, struct msg *m, size_t i, char kind,
		   const char *text, size_t tlen, int remote)
{
	struct qrcpt *q = &m->st->r[i];
	uint64_t now = now_us(), base, next, end;
	struct str t = STR_INIT;

	if (kind == 'T') {
		q->tries++;
		base = remote ? s->retrybase : s->retrybase / 2;
		if (!base)
			base = 1;
		/* qmail's schedule: try n+1 at arrival + (n * base)^2 */
		next = m->arrival_us + q->tries * base * q->tries * base *
		       1000000u;
		end = m->arrival_us + (uint64_t)s->lifetime * 1000000u;
		if (now >= end) {
			kind = 'F';
			(void)str_cats(&t, "message has been in the queue "
				       "too long; last error: ");
		} else {
			if (next > end)
				next = end; /* a last try as it expires */
			/* the clock was set back: wait one step, not the
			 * hours it went back as well */
			if (next > now && next - now > (2 * q->tries - 1) *
			    base * base * 1000000u)
				next = now + (2 * q->tries - 1) * base * base *
				       1000000u;
			if (next < now + 1000000)
				next = now + 1000000;
			q->next_us = next;
		}
	}
	qstatus_clean(&t, text, tlen);
	q->last_us = now;
	q->text.len = 0;
	(void)str_catb(&q->text, t.s ? t.s : "", t.len);
	if (kind == 'D')
		q->state = QS_DONE;
	else if (kind == 'F')
		q->state = QS_FAILED;
	str_free(&t);
}

/* persist - append the job's outcomes to ID.s and make them durable: one
 * write and one fdatasync a job, whatever its number of recipients */
static int persist(struct send *s, struct msg *m, struct job *j)
{
	struct mstate *st = m->st;
	struct str all = STR_INIT, line = STR_INIT, p = STR_INIT;
	size_t i;
	int r = 0;

	(void)s;
	for (i = 0; r == 0 && i < j->n; i++) {
		struct qrcpt *q = &st->r[j->idx[i]];
		char kind = q->state == QS_DONE ? 'D' :
			    q->state == QS_FAILED ? 'F' : 'T';

		r = qstatus_line(&line, kind, j->idx[i], q->last_us,
				 q->next_us, str_cstr(&q->text), q->text.len);
		if (r == 0)
			r = str_catb(&all, line.s, line.len);
	}
	if (r == 0 && st->sfd < 0) {
		r = str_catf(&p, "%s.s", st->path.s);
		if (r == 0) {
			st->sfd = open(p.s, O_WRONLY | O_APPEND | O_CREAT |
				       O_NOFOLLOW | O_CLOEXEC, 0600);
			if (st->sfd < 0)
				r = -errno;
		}
	}
	if (r == 0)
		r = fsx_write_all(st->sfd, all.s, all.len);
	if (r == 0 && fdatasync(st->sfd) < 0)
		r = -errno;
	if (r < 0)
		slog("warning: cannot record outcomes of msg %s: %s; they "
		     "may be tried again", m->id, strerror(-r));
	str_free(&all);
	str_free(&line);
	str_free(&p);
	return r;
}

/* ended - how PROG ended, for a reason it did not give itself */
static void ended(char *out, size_t cap, const char *prog, int status,
		  const char *tail)
{
	if (status >= 0 && WIFSIGNALED(status))
		snprintf(out, cap, "%s was killed by signal %d %s", prog,
			 WTERMSIG(status), tail);
	else if (status >= 0 && WIFEXITED(status))
		snprintf(out, cap, "%s exited %d %s", prog,
			 WEXITSTATUS(status), tail);
	else
		snprintf(out, cap, "%s did not run %s", prog, tail);
}

/* results - what the job's program said, one outcome a recipient */
static void results(struct send *s, struct job *j)
{
	char why[160];

	struct msg *m = j->m;
	const char *b = str_cstr(&j->buf), *end = b + j->buf.len;
	size_t i;

	if (!j->remote) {
		/* vdeliver: exit 0/100/111, the reason its last line */
		const char *t = end, *e = end;
		int code = j->exited && j->status >= 0 &&
			   WIFEXITED(j->status) ? WEXITSTATUS(j->status) : -1;
		char kind = code == 0 ? 'D' : code == 100 ? 'F' : 'T';

		while (e > b && (e[-1] == '\n' || e[-1] == ' '))
			e--;
		t = e;
		while (t > b && t[-1] != '\n')
			t--;
		if (t == e && code == 0) {
			t = "delivered";
			e = t + 9;
		} else if (t == e) {
			ended(why, sizeof why, "vdeliver", j->status,
			      "without a reason");
			t = why;
			e = why + strlen(why);
		}
		record(s, m, j->idx[0], kind, t, (size_t)(e - t), 0);
		return;
	}
	if (j->status == -1 && j->buf.len) {
		/* it never ran: start() put the reason in the buffer */
		for (i = 0; i < j->n; i++)
			record(s, m, j->idx[i], 'T', b, j->buf.len, 1);
		return;
	}
	/* mta-remote: one "K TEXT" line a recipient, in order */
	for (i = 0; i < j->n; i++) {
		const char *nl = b < end ? memchr(b, '\n', (size_t)(end - b))
					 : NULL;

		if (nl && nl - b >= 2 && b[1] == ' ' &&
		    (b[0] == 'D' || b[0] == 'F' || b[0] == 'T')) {
			record(s, m, j->idx[i], b[0], b + 2,
			       (size_t)(nl - b - 2), 1);
			b = nl + 1;
			continue;
		}
		b = end;
		ended(why, sizeof why, "mta-remote", j->status, "without a "
		      "result for this recipient (its own lines are in the "
		      "log)");
		record(s, m, j->idx[i], 'T', why, strlen(why), 1);
	}
}

/* sched_done - a job ended: record, log, and look at the message again */
void sched_done(struct send *s, struct job *j)
{
	struct msg *m = j->m;
	struct mstate *st = m->st;
	size_t i, pending = 0;

	results(s, j);
	for (i = 0; i < j->n; i++) {
		struct qrcpt *q = &st->r[j->idx[i]];

		st->busy[j->idx[i]] = 0;
		log_delivery(j->dno[i], q->state == QS_DONE ? "success" :
			     q->state == QS_FAILED ? "failure" : "deferral",
			     str_cstr(&q->text), q->text.len);
	}
	st->jobs--;
	for (i = 0; i < st->n; i++)
		if (st->r[i].state == QS_PENDING)
			pending++;
	/* a message that ends now needs no status line: it is removed */
	if (pending || st->jobs)
		(void)persist(s, m, j);
	job_free(j);
	if (st->jobs == 0 || st->plan)
		dispatch(s, m);
}


/* spent - the file of a finished message removed: kept in queue/pool/
 * for the next writer to write over when it may be (lib/queue.h says
 * why), else unlinked; both unsynced, a step a crash may undo. Kept only
 * when this process ran and saw end every delivery of it (a delivery
 * program of an mta-send killed earlier may still be reading the file,
 * and must go on reading this message), and without a status file STAT
 * (were a crash to undo the removal, this message's outcomes must never
 * be read against another's) */
static void spent(struct send *s, struct msg *m, const char *stat)
{
	struct mstate *st = m->st;

	if (m->ours && stat && st->sfd < 0 && access(stat, F_OK) < 0 &&
	    errno == ENOENT &&
	    queue_pool_put(s->root, st->path.s, (uint64_t)st->body_off +
			   st->body_len) == 0)
		return;
	if (unlink(st->path.s) < 0 && errno != ENOENT)
		slog("warning: cannot remove %s: %s", st->path.s,
		     strerror(errno));
}

/* finish - every recipient settled: bounce the failures, then remove */
static void finish(struct send *s, struct msg *m)
{
	struct mstate *st = m->st;
	struct str id2 = STR_INIT, sp = STR_INIT;
	size_t i, failed = 0;

	for (i = 0; i < st->n; i++)
		if (st->r[i].state == QS_FAILED)
			failed++;
	if (failed) {
		int r = bounce_make(s, m, &id2);

		if (r < 0) {
			/* keep the message and its outcomes; try later */
			slog("warning: cannot queue the bounce of msg %s: %s;"
			     " trying again in 60 s", m->id, strerror(-r));
			struct job one = {.m = m};

			one.idx = calloc(st->n, sizeof *one.idx);
			for (i = 0; one.idx && i < st->n; i++)
				if (st->r[i].state != QS_PENDING)
					one.idx[one.n++] = i;
			if (one.idx)
				(void)persist(s, m, &one);
			free(one.idx);
			(void)wait_until(s, m, now_ms() + 60000);
			return;
		}
		if (id2.len)
			slog("bounce msg %s qp %s", m->id, id2.s);
	}
	/* the message first: a crash between the two removals leaves an
	 * orphan status file (quarantined at start-up), never a message
	 * without its outcomes */
	if (str_catf(&sp, "%s.s", st->path.s) < 0)
		sp.len = 0;
	spent(s, m, sp.len ? sp.s : NULL);
	if (sp.len)
		(void)unlink(sp.s);
	slog("end msg %s", m->id);
	str_free(&sp);
	str_free(&id2);
	forget(s, m);
	s->rescan = s->rescan || failed; /* the bounce is in new/ */
}

/* sched_free - everything still in memory, at exit (the queue is on disk) */
void sched_free(struct send *s)
{
	struct job *j;
	size_t i;

	for (i = 0; i < 2; i++)
		while ((j = fair_drain(s, (int)i)) != NULL) {
			struct msg *m = j->m;

			job_free(j);
			if (--m->st->jobs == 0) {
				unload(s, m);
				free(m);
			}
		}
	for (i = 0; i < s->heap_n; i++) {
		unload(s, s->heap[i]);
		free(s->heap[i]);
	}
	free(s->heap);
	owner_free(s);
	free(s->run);
	seen_free(s);
	str_free(&s->me);
	str_free(&s->dbto);
	str_free(&s->vdeliver);
	str_free(&s->remote);
}
