/*
 * owner - fairness between local users in the scheduler.
 *
 * A message injected by a local user (mta-inject, or sendmail through
 * drop/) carries its uid in the U record. At most owner_cap() messages
 * of one uid are busy (loaded, cut into jobs) at a time; the next ones
 * are parked, unloaded, in arrival order, and taken up as the user's busy
 * ones go back to wait or end. So one user with a thousand messages of a
 * thousand recipients holds a bounded share of the job queues and of the
 * busy messages that the scheduler's limits count, and the pickup of
 * everybody else's mail goes on (docs/queue.md, "Fairness").
 *
 * Mail without a U record (SMTP, bounces), and mail the mail user itself
 * injected (vdeliver's forwards of SMTP mail), is not capped here: SMTP
 * clients are limited by mta-smtpd. Owners are kept in a list, one entry
 * a uid that has busy or parked mail: local users are few.
 *
 * The jobs waiting for a slot are queued by owner, mail without U being
 * one more owner (s->anon), and a free slot goes to the owners in turn:
 * another user's job waits for one job of each owner at most, not for
 * the hundreds one user may have queued (jobs to a tarpit each hold a
 * remote slot for timeoutremote). And a slot, once taken, is held until
 * its program ends: so one local user's jobs hold at most three quarters
 * of the slots of a kind (run_cap()), and the rest stay free for others
 * even while that user's jobs wait on dead hosts for timeoutremote.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "send.h"

/* owner_cap - enough busy messages of one user to fill every delivery
 * slot with one-recipient messages, as a bulk injection by root needs */
unsigned owner_cap(const struct send *s)
{
	return (unsigned)(s->conc_local + s->conc_remote);
}

static struct owner *find(struct send *s, const char *uid, size_t len)
{
	struct owner *o;

	for (o = s->owners; o; o = o->next)
		if (strlen(o->uid) == len && !memcmp(o->uid, uid, len))
			return o;
	o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->uid = malloc(len + 1);
	if (!o->uid) {
		free(o);
		return NULL;
	}
	memcpy(o->uid, uid, len);
	o->uid[len] = 0;
	o->next = s->owners;
	s->owners = o;
	return o;
}

/* drop - an owner with nothing busy and nothing parked is forgotten */
static void drop(struct send *s, struct owner *o)
{
	struct owner **pp;

	if (o->busy || o->park_head)
		return;
	for (pp = &s->owners; *pp && *pp != o; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = o->next;
	free(o->uid);
	free(o);
}

/* ours - the uid is the mail user's, ours: vdeliver's forwards and
 * aliases (mta-inject run by the mail user) carry it, whoever sent the
 * mail, so they are capped no more than the SMTP mail they come from */
static int ours(const struct send *s, const struct str *u)
{
	return str_eqs(u, s->uid);
}

/* owner_take - may the loaded message M be worked on now? 1: yes, it is
 * counted busy; 0: its owner is at the cap, or has older messages parked
 * (they go first, in arrival order), so M is parked and the caller
 * unloads it. Without memory for an owner it goes uncapped rather than
 * waiting: the cap is fairness, not safety */
int owner_take(struct send *s, struct msg *m)
{
	const struct str *u = &m->st->env.uid;
	struct owner *o = u->len && !ours(s, u) ? find(s, u->s, u->len) : NULL;
	int first = m->unparked;

	m->unparked = 0;
	if (o && (o->busy >= owner_cap(s) || (o->park_head && !first))) {
		m->park_next = NULL;
		if (o->park_tail)
			o->park_tail->park_next = m;
		else
			o->park_head = m;
		o->park_tail = m;
		o->nparked++;
		return 0;
	}
	if (o)
		o->busy++;
	m->own = o;
	m->counted = 1;
	s->nbusy++;
	return 1;
}

/* owner_release - M is no longer busy; its owner's next parked message
 * may be taken up (by sched_due, which owner_next() feeds) */
void owner_release(struct send *s, struct msg *m)
{
	struct owner *o = m->own;

	if (!m->counted)
		return;
	m->counted = 0;
	m->own = NULL;
	s->nbusy--;
	if (!o)
		return;
	o->busy--;
	if (o->park_head)
		s->unpark = 1;
	else
		drop(s, o);
}

/* owner_next - a parked message whose owner is under the cap again, taken
 * off its list; NULL (and unpark cleared) when there is none */
struct msg *owner_next(struct send *s)
{
	struct owner *o;

	for (o = s->owners; o; o = o->next) {
		struct msg *m = o->park_head;

		if (!m || o->busy >= owner_cap(s))
			continue;
		o->park_head = m->park_next;
		if (!o->park_head)
			o->park_tail = NULL;
		o->nparked--;
		m->park_next = NULL;
		m->unparked = 1;
		drop(s, o);
		return m;
	}
	s->unpark = 0;
	return NULL;
}

/* owner_free - at exit: the parked messages (on disk) and the owners */
void owner_free(struct send *s)
{
	while (s->owners) {
		struct owner *o = s->owners;

		while (o->park_head) {
			struct msg *m = o->park_head;

			o->park_head = m->park_next;
			free(m);
		}
		s->owners = o->next;
		free(o->uid);
		free(o);
	}
}

/* job_add, job_take - a FIFO of jobs: the owners' queues and the
 * scheduler's turn */
void job_add(struct fifo *q, struct job *j)
{
	j->next = NULL;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->n++;
}

struct job *job_take(struct fifo *q)
{
	struct job *j = q->head;

	if (j) {
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
	}
	return j;
}

/* run_cap - the slots of a kind that one local user's jobs may hold at
 * once; mail without a uid (SMTP, bounces: s->anon) is not capped, since
 * it is most of the mail and its senders are limited by mta-smtpd */
static unsigned run_cap(const struct send *s, int k)
{
	unsigned long c = k ? s->conc_remote : s->conc_local;

	c -= c / 4;
	return c ? (unsigned)c : 1;
}

static int may_run(const struct send *s, const struct owner *o, int k)
{
	return o == &s->anon || o->running[k] < run_cap(s, k);
}

/* fair_ran - J took (delta 1) or gave back (-1) its slot */
void fair_ran(struct send *s, const struct job *j, int delta)
{
	struct owner *o = j->m->own ? j->m->own : &s->anon;
	int k = j->remote ? 1 : 0;

	o->running[k] = (unsigned)((int)o->running[k] + delta);
}

/* fair_add - J waits for a slot, in its owner's queue; an owner that had
 * none joins the ring at the end of the round */
void fair_add(struct send *s, struct job *j)
{
	int k = j->remote ? 1 : 0;
	struct fairq *fq = k ? &s->rq : &s->lq;
	struct owner *o = j->m->own ? j->m->own : &s->anon;

	if (!o->q[k].n) {
		if (fq->last) {
			o->rnext[k] = fq->last->rnext[k];
			fq->last->rnext[k] = o;
		} else {
			o->rnext[k] = o;
		}
		fq->last = o;
	}
	job_add(&o->q[k], j);
	fq->n++;
}

/* take - the next owner's first job for a local (0) or remote (1) slot,
 * owners at their run_cap() passed over unless ALL (NULL when all are);
 * an owner with none left leaves the ring */
static struct job *take(struct send *s, int k, int all)
{
	struct fairq *fq = k ? &s->rq : &s->lq;
	struct owner *prev = fq->last, *o;
	struct job *j;

	if (!prev)
		return NULL;
	while (o = prev->rnext[k], !all && !may_run(s, o, k)) {
		prev = o;
		if (prev == fq->last)
			return NULL;
	}
	j = job_take(&o->q[k]);
	fq->n--;
	if (o->q[k].n)
		fq->last = o;
	else if (o == prev)
		fq->last = NULL;	/* it was the only one */
	else {
		prev->rnext[k] = o->rnext[k];
		fq->last = prev;
	}
	return j;
}

struct job *fair_take(struct send *s, int remote)
{
	return take(s, remote ? 1 : 0, 0);
}

/* fair_drain - every waiting job, caps or not (at exit) */
struct job *fair_drain(struct send *s, int remote)
{
	return take(s, remote ? 1 : 0, 1);
}
