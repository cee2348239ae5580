/*
 * send.h - mta-send's state. One process, one event loop, no threads:
 * every structure below is touched only by the loop (see docs/queue.md,
 * "The scheduler").
 */
#ifndef FACTEUR_SEND_H
#define FACTEUR_SEND_H

#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "qstatus.h"
#include "queue.h"
#include "str.h"

#define NOHEAP UINT32_MAX

struct pitem;		/* sched.c */

/* the recipients of a message while it is being worked on; freed when
 * the message goes back to wait, so that a million waiting messages
 * cost only their struct msg */
struct mstate {
	struct qenv env;
	off_t body_off;
	uint64_t body_len;
	size_t n;		/* recipients */
	const char **addr;	/* into env.rcpts */
	struct qrcpt *r;	/* outcomes so far */
	unsigned char *busy;	/* in a job queued or running */
	unsigned jobs;		/* jobs queued or running */
	unsigned queued;	/* of which waiting for a slot */
	/* its due recipients not yet cut into jobs, sorted by domain: jobs
	 * are cut a few at a time (sched.c, refill), so that one big message
	 * never fills the job queues */
	struct pitem *plan;
	size_t nplan, plan_pos;
	int sfd;		/* ID.s, opened for appending on first use */
	int looped;		/* over the hop limit: fails everywhere */
	struct str path;	/* queue/msg/HH/ID */
};

struct msg {
	char id[36];		/* ARRIVAL.INODE: 16 + 1 + 16 hex digits */
	uint64_t arrival_us;
	long long due_ms;	/* monotonic clock */
	uint32_t hidx;		/* place in the heap, or NOHEAP */
	int force;		/* try every pending recipient (SIGALRM) */
	struct mstate *st;	/* NULL while waiting */
	int counted;		/* busy, counted in nbusy (owner.c) */
	int unparked;		/* just taken off its owner's park list */
	struct owner *own;	/* counted busy for this local user */
	struct msg *park_next;	/* parked behind its owner's busy ones */
	int ours;		/* taken from new/ by this process: no job of
				 * an earlier one can still be reading it */
};

struct fifo {
	struct job *head, *tail;
	size_t n;
};

/* a local user (the U record) with messages busy or parked: one user's
 * messages are busy at most owner_cap() at a time, the rest parked in
 * arrival order, so that one user cannot fill the scheduler (owner.c) */
struct owner {
	char *uid;
	unsigned busy;
	struct msg *park_head, *park_tail;
	size_t nparked;
	/* its jobs waiting for a local [0] and a remote [1] slot, and its
	 * place in the ring of owners that have some: slots are given to
	 * the owners in turn, one job each */
	struct fifo q[2];
	struct owner *rnext[2];
	unsigned running[2];	/* slots of each kind its jobs hold */
	struct owner *next;
};

/* jobs waiting for a slot of one kind: the ring of their owners, LAST the
 * one served last (the next is last->rnext) */
struct fairq {
	struct owner *last;
	size_t n;
};

struct job {
	struct msg *m;
	int remote;
	size_t n;		/* recipients in this job */
	size_t *idx;		/* their places in the envelope */
	unsigned long *dno;	/* their delivery numbers (log) */
	pid_t pid;		/* 0: run by the vdeliver server (tag) */
	unsigned long long tag;	/* its request to the server, 0 if none */
	int out;		/* the child's output (pipe), -1 once closed */
	struct str buf;		/* what it printed (bounded) */
	int status, exited;
	long long started_ms;
	struct job *next;	/* in a FIFO of jobs waiting for a slot */
};

struct send {
	const char *root;
	/* control files, read at start and on SIGHUP */
	unsigned long conc_local, conc_remote, retrybase, lifetime;
	struct str me, dbto, vdeliver, remote;
	/* waiting messages, by due time */
	struct msg **heap;
	size_t heap_n, heap_cap;
	size_t nmsgs;		/* in queue/msg/, all states */
	/* work */
	struct fairq lq, rq;	/* jobs waiting for a local / remote slot */
	struct owner anon;	/* the owner of mail without U (SMTP) */
	struct job **run;	/* running jobs */
	size_t nrun, run_cap, nlocal, nremote;
	unsigned long dno;	/* delivery counter, as qmail's */
	int rescan;		/* queue/new may hold something */
	size_t nbusy;		/* messages loaded and being worked on */
	size_t nloaded;		/* the recipients of every loaded message */
	char uid[24];		/* ours (the mail user's), as U would write it */
	struct owner *owners;	/* local users with busy or parked mail */
	int unpark;		/* an owner with parked mail may have room */
	int stopping;
	int trigger_fd;
	int drop_fd, drop_keep;	/* drop/trigger: read end, kept write end */
	int drop_rescan;	/* drop/ may hold something */
	/* drop/ is read a slice a turn, from where the last turn stopped;
	 * its entries that are not message files are remembered, so that
	 * each is logged once (drop.c, dropseen.c) */
	void *drop_dir;		/* DIR *, NULL between passes */
	int drop_deferred;	/* this pass left files over a uid's share */
	int drop_later;		/* this pass left files it could not queue */
	long long drop_retry_ms; /* then: a new pass at this time */
	struct dropseen {
		uint64_t *key;	/* open addressing; 0 is an empty slot */
		uint32_t *pass;	/* the pass that last saw it */
		size_t cap, n;
		uint32_t cur;	/* this pass */
		int full;	/* said that no more can be remembered */
	} drop_seen;
	/* the start-up check of msg/HH/, one directory a turn of the loop,
	 * so that new mail flows while a big queue is being read; ids
	 * taken from new/ meanwhile are remembered, not filed twice */
	unsigned scan_next;	/* next HH, 256 once done */
	int scan_flags;
	size_t scan_problems, scan_unfixed;
	char **seen;
	size_t seen_n, seen_cap;
	long long stat_ms;	/* last write of queue/stat */
	size_t stat_n;
	/* the vdeliver fork server (vds.c): one vdeliver --server runs the
	 * local deliveries, a fork each, instead of an exec each */
	int vds_fd;		/* our end of its socket, -1 when none */
	pid_t vds_pid;		/* its pid while vds_fd is open */
	unsigned long long vds_tag;	/* the last request's tag */
	long long vds_deaths[3];	/* when the last ones went away */
	long long vds_off_ms;	/* exec path only until then */
	int vds_exec;		/* FACTEUR_VDELIVER_EXEC=1: exec only */
};

/* slog.c: log lines, written once a turn of the loop */
void slog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void slog_flush(void);
void slog_free(void);

/* heap.c */
int heap_push(struct send *s, struct msg *m);
struct msg *heap_top(struct send *s);
void heap_pop(struct send *s);
void sched_now(struct send *s);

/* sched.c */
int sched_pickup(struct send *s);
int sched_add(struct send *s, const char *id, int fresh);
int sched_restore(struct send *s, const char *id, uint64_t due_us);
uint64_t rcpt_due(const struct send *s, const struct qrcpt *q, uint64_t now);
void sched_due(struct send *s);
void sched_start(struct send *s);
void sched_done(struct send *s, struct job *j);
void sched_status(struct send *s);
void sched_end(struct send *s, size_t i, int status, const char *why);
int spawn_attr_clean(posix_spawnattr_t *sa);
void send_signals(sigset_t *set);
void job_drain(struct job *j);
void sched_free(struct send *s);
size_t sched_limit(const struct send *s);
int mstate_load(struct send *s, struct msg *m);
void mstate_free(struct mstate *st);

/* vds.c */
int vds_submit(struct send *s, struct job *j, int msgfd, int outfd);
void vds_read(struct send *s);
int vds_reaped(struct send *s, pid_t pid, int status);
void vds_gone(struct send *s, const char *why);
void vds_term(struct send *s);
void vds_stop(struct send *s);

/* owner.c */
unsigned owner_cap(const struct send *s);
int owner_take(struct send *s, struct msg *m);
void owner_release(struct send *s, struct msg *m);
struct msg *owner_next(struct send *s);
void owner_free(struct send *s);
void fair_add(struct send *s, struct job *j);
struct job *fair_take(struct send *s, int remote);
struct job *fair_drain(struct send *s, int remote);
void fair_ran(struct send *s, const struct job *j, int delta);

/* sched.c, for owner.c */
void job_add(struct fifo *q, struct job *j);
struct job *job_take(struct fifo *q);

/* bounce.c */
int bounce_make(struct send *s, struct msg *m, struct str *id_r);

/* drop.c */
int drop_open(struct send *s);
int drop_pickup(struct send *s);
void drop_close(struct send *s);

/* dropseen.c */
uint64_t dropseen_key(uint64_t ino, const char *name);
int dropseen_has(struct dropseen *d, uint64_t key);
int dropseen_add(struct dropseen *d, uint64_t key);
void dropseen_pass_end(struct dropseen *d);
void dropseen_free(struct dropseen *d);

/* scan.c */
#define SCAN_REPAIR 1
#define SCAN_LOAD 2
int scan_queue(struct send *s, int flags, size_t *problems,
	       size_t *unfixed);
int quarantine(const char *root, const char *path, const char *why);
int quarantine_file(const char *root, const char *path, const char *why);
int scan_step(struct send *s);
int seen_add(struct send *s, const char *id);
int seen_has(const struct send *s, const char *id);
void seen_free(struct send *s);

#endif
