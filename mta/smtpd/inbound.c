/*
 * inbound - the checks on mail from others: SPF at MAIL, DKIM and DMARC
 * after DATA, and the one Authentication-Results header that reports
 * them.
 *
 * Only mail from clients that are neither authenticated nor relay
 * clients (the MX path, inbound_mx()) is checked; for the others these
 * functions pass the bytes straight to lib/qsign. On the MX path:
 *
 *   inbound_spf()    at MAIL: lib/spf on the MAIL FROM domain (the HELO
 *                    name for <>), 1.5 s a try and 10 s in all while
 *                    the client waits for the reply; kept in the session
 *                    until the transaction ends; control/spfreject
 *                    refuses a fail (550 5.7.23), never anything else
 *   inbound_start()  the state; the Received line (inbound_received())
 *                    and the message are held in memory until the
 *                    header has been read, then written after a room at
 *                    the top of the queue file for our header
 *                    (qw_top_room: its length is known only at the end,
 *                    the body must not be copied twice), a room sized by
 *                    the number of DKIM signatures: one line a result,
 *                    about 2 KiB for a signed message instead of 5 for
 *                    the most (INBOUND_HOLD_MAX bytes held at most)
 *   inbound_put()    the message to the DKIM verifier as it came, and,
 *                    without any Authentication-Results field that claims
 *                    our name (RFC 8601 5), to the queue file
 *   inbound_end()    the key lookups (lib/dns, control/resolvers, 1.5 s
 *                    a try, all of them over after 5 s whatever the
 *                    number of servers), the verdicts, then DMARC
 *                    (lib/dmarc: _dmarc.FROM and _dmarc.ORG, 5 s more at
 *                    most), the header written into its room
 *                    (qw_top_fill), and whether control/dmarcreject
 *                    (default 1) wants a p=reject failure refused
 *
 * inbound_results() is the one place where results become the header,
 * in RFC 8601's customary order spf, dkim, dmarc. Every lookup goes
 * through the process's one resolver (dns_reuse), which keeps answers
 * for their TTL: a session process checks message after message from
 * the same few senders (docs/authentication.md).
 */
#include <errno.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "dns.h"
#include "msg.h"
#include "smtpd.h"

#define DKIM_TRY_MS 1500	/* as rbl.c: a slow resolver delays one reply */
/* all key lookups of a message end by then: c-ares gives one server
 * 1.5 s and then 3 s, more servers would take longer */
#define DKIM_DEADLINE_MS 5000
/* the whole SPF check: up to 10 DNS-querying terms one after the other
 * (lib/dns is blocking) while the client waits for MAIL's reply; RFC
 * 7208 4.6.4 allows 20 s, but RFC 5321 4.5.3.2.2 gives a client only
 * 5 minutes for the reply and some give up much sooner */
#define DMARC_DEADLINE_MS 5000	/* two TXT lookups, one after the other */
#define SPF_TRY_MS 1500
#define SPF_DEADLINE_MS 10000

/* inbound_mx - is S's client one of the others (checked, never signed)? */
int inbound_mx(const struct session *s)
{
	return !(s->auth_user.len || s->relay || s->pbs);
}

/* spf_note - "spf=RESULT DOMAIN" of the last check, for the log line */
static void spf_note(struct session *s)
{
	str_trunc(&s->spf_log, 0);
	if (str_cats(&s->spf_log, spf_res_name(s->spf.res)) < 0 ||
	    str_cats(&s->spf_log, " ") < 0 ||
	    str_cats(&s->spf_log, s->spf.domain.len ? s->spf.domain.s : "-")
	    < 0)
		str_trunc(&s->spf_log, 0);	/* only the log line loses */
}

/* inbound_spf - the SPF check at MAIL on the MX path: NULL to go on, or
 * the refusal when control/spfreject asks for it */
const char *inbound_spf(struct session *s)
{
	struct dns *d = NULL;
	unsigned long reject;
	int r;

	spf_result_free(&s->spf);
	s->spf_done = 0;
	if (!inbound_mx(s))
		return NULL;
	r = dns_reuse(&d, s->root, SPF_TRY_MS);
	if (r == 0)
		r = spf_check(d, s->ip.s, s->env.sender.s, s->helo.s,
			      SPF_DEADLINE_MS, &s->spf);
	if (r == -ENOMEM)
		return "451 4.3.0 out of memory";
	if (r < 0) {	/* no resolver, or a client address lib/spf rejects */
		spf_result_free(&s->spf);
		memset(&s->spf, 0, sizeof s->spf);
		s->spf.res = r == -EINVAL ? SPF_NONE : SPF_TEMPERROR;
		s->spf.helo = !s->env.sender.len;
	}
	s->spf_done = 1;
	spf_note(s);
	if (s->spf.res != SPF_FAIL)
		return NULL;
	/* a file we cannot read: off, as by default; a fail is never
	 * worth a 4xx */
	reject = ctl_num_warn(s->root, CTL_SPFREJECT, msg_warn);
	if (!reject)
		return NULL;
	return "550 5.7.23 SPF check failed: the sender's domain does not "
	       "allow this host to send its mail";
}

/* spf_entry - the spf= entry: smtp.mailfrom or smtp.helo (RFC 8601 2.7.2) */
static int spf_entry(const struct spf_result *f, struct authres *a)
{
	const char *why = f->why.len ? f->why.s : NULL;

	return authres_add(a, "spf", spf_res_name(f->res), why,
			   f->helo ? "smtp.helo" : "smtp.mailfrom",
			   f->domain.len ? f->domain.s : NULL, NULL, NULL);
}

/* inbound_start - the MX path's state; W the queue file, ME our name */
int inbound_start(struct inbound *ib, struct qwriter *w, const char *me,
		  int on)
{
	memset(ib, 0, sizeof *ib);
	ib->on = on;
	ib->w = w;
	ib->me = me;
	if (on) {
		authres_filter_init(&ib->flt, me);
		dkimv_start(&ib->dkim);
	}
	return 0;
}

/* inbound_received - the Received line: into the queue file, or held
 * until the room above it is made */
int inbound_received(struct inbound *ib, const char *b, size_t n)
{
	return ib->on ? str_catb(&ib->held_rcvd, b, n) : qw_body(ib->w, b, n);
}

/* make_room - the room for our header, sized by the signatures found
 * (all of them while the header is still being read), then what was
 * held written after it */
static int make_room(struct inbound *ib, struct qsign *qs)
{
	size_t n = INBOUND_RESULTS_MAX;
	int r;

	if (!dkimv_in_header(&ib->dkim))	/* dkim= lines, spf=, dmarc= */
		n = (ib->dkim.nsig ? ib->dkim.nsig : 1) + 2;
	ib->room = 1;
	r = qw_top_room(ib->w, authres_room(ib->me, n));
	if (r == 0 && ib->held_rcvd.len)
		r = qw_body(ib->w, ib->held_rcvd.s, ib->held_rcvd.len);
	if (r == 0 && ib->held.len)
		r = qsign_put(qs, ib->held.s, ib->held.len);
	str_free(&ib->held_rcvd);
	str_free(&ib->held);
	return r;
}

/* pass - OUT to the queue file, or held while the room is not made */
static int pass(struct inbound *ib, struct qsign *qs, int end)
{
	int r = 0;

	if (ib->room)
		return ib->out.len ? qsign_put(qs, ib->out.s, ib->out.len) : 0;
	if (ib->out.len)
		r = str_catb(&ib->held, ib->out.s, ib->out.len);
	if (r == 0 && (end || !dkimv_in_header(&ib->dkim) ||
		       ib->held.len > INBOUND_HOLD_MAX))
		r = make_room(ib, qs);
	return r;
}

/* inbound_put - N message bytes to the verifier and, filtered, to QS */
int inbound_put(struct inbound *ib, struct qsign *qs, const char *b,
		size_t n)
{
	int r;

	if (!ib->on)
		return qsign_put(qs, b, n);
	r = dkimv_put(&ib->dkim, b, n);
	str_trunc(&ib->out, 0);
	if (r == 0)
		r = authres_filter_put(&ib->flt, b, n, &ib->out);
	return r ? r : pass(ib, qs, 0);
}

/* inbound_flush - what the filter still holds (a last header field),
 * and the room if the message ended inside its header */
int inbound_flush(struct inbound *ib, struct qsign *qs)
{
	int r;

	if (!ib->on)
		return 0;
	str_trunc(&ib->out, 0);
	r = authres_filter_end(&ib->flt, &ib->out);
	return r ? r : pass(ib, qs, 1);
}

/* inbound_results - the results as RFC 8601 entries, in their order */
int inbound_results(const struct checks *c, struct authres *a)
{
	const struct dkimv *v = c->dkim;
	size_t i;
	int r = 0;

	if (c->spf)
		r = spf_entry(c->spf, a);
	if (r < 0)
		return r;
	if (v->toobig)
		r = authres_add(a, "dkim", "permerror", "header too large",
				NULL, NULL, NULL, NULL);
	else if (v->nsig == 0)
		r = authres_add(a, "dkim", "none", NULL, NULL, NULL, NULL,
				NULL);
	for (i = 0; r == 0 && i < v->nsig; i++) {
		const struct dkimv_one *o = &v->sig[i];

		r = authres_add(a, "dkim", dkimv_res_name(o->res), o->why,
				"header.d", o->sig.d.s, "header.s",
				o->sig.s.s);
	}
	if (r == 0 && c->dmarc)
		r = authres_add(a, "dmarc", dmarc_res_name(c->dmarc->res),
				c->dmarc->why, "header.from", c->from,
				c->dmarc->res == DMARC_FAIL ? "policy.dmarc" :
				NULL, dmarc_policy_name(c->dmarc->applied));
	return r;
}

/* dmarc - the DMARC verdict of the message: the From: domain, SPF's
 * MAIL FROM domain if it passed, the d= of every passing signature */
static int dmarc(const struct inbound *ib, const struct session *s,
		 struct dns *d, struct dmarc_result *out)
{
	const char *dk[DKIMV_SIGS_MAX], *tmp[DKIMV_SIGS_MAX + 1];
	struct dmarc_in in = {ib->dkim.from.s, NULL, dk, 0, tmp, 0};
	const struct psl *p;
	size_t i;

	memset(out, 0, sizeof *out);
	if (ib->dkim.from_r < 0) {
		/* RFC 7489 6.6.1 leaves it to us: no From:, two, or a list
		 * of authors is no domain to judge (docs/authentication.md) */
		out->res = DMARC_PERMERROR;
		out->why = "not one From: address";
		return ib->dkim.from_r == -ENOMEM ? -ENOMEM : 0;
	}
	if (psl_default(&p) < 0) {
		out->res = DMARC_TEMPERROR;
		out->why = "no public suffix list";
		return 0;
	}
	if (s->spf_done && !s->spf.helo && s->spf.res == SPF_PASS)
		in.spf_domain = s->spf.domain.s;	/* never HELO (3.1.2) */
	if (s->spf_done && !s->spf.helo && s->spf.res == SPF_TEMPERROR &&
	    s->spf.domain.len)
		tmp[in.ntemp++] = s->spf.domain.s;
	for (i = 0; i < ib->dkim.nsig; i++)
		if (ib->dkim.sig[i].res == DKIMV_PASS)
			dk[in.ndkim++] = ib->dkim.sig[i].sig.d.s;
		else if (ib->dkim.sig[i].res == DKIMV_TEMPERROR &&
			 ib->dkim.sig[i].sig.d.len)
			tmp[in.ntemp++] = ib->dkim.sig[i].sig.d.s;
	return dmarc_check(d, p, &in, now_ms() + DMARC_DEADLINE_MS, out);
}

/* refused - does control/dmarcreject refuse a message with verdict V? */
static int refused(const struct session *s, const struct dmarc_result *v)
{
	if (v->res != DMARC_FAIL || v->applied != DMARC_P_REJECT)
		return 0;	/* temperror above all: never */
	/* unreadable: the default, 1 */
	return ctl_num_warn(s->root, CTL_DMARCREJECT, msg_warn) != 0;
}

/* inbound_end - verdicts, and the header into its room; *REFUSE set when
 * the message must be refused for its DMARC policy */
int inbound_end(struct inbound *ib, const struct session *s,
		struct qwriter *w, int *refuse)
{
	struct dmarc_result dm;
	struct checks c = {s->spf_done ? &s->spf : NULL, &ib->dkim, &dm,
			   ib->dkim.from.s};
	struct authres a;
	struct dns *d = NULL;
	struct str h = STR_INIT;
	int r;

	*refuse = 0;
	if (!ib->on)
		return 0;
	memset(&a, 0, sizeof a);
	if (dns_reuse(&d, s->root, DKIM_TRY_MS) < 0)
		d = NULL;	/* every lookup: temperror */
	r = dkimv_finish(&ib->dkim, d, now_ms() + DKIM_DEADLINE_MS);
	if (r == 0)
		r = dmarc(ib, s, d, &dm);
	if (r == 0)
		*refuse = refused(s, &dm);
	if (r == 0)
		r = inbound_results(&c, &a);
	if (r == 0)
		r = authres_build(&a, s->me.s, &h);
	if (r == 0)
		r = qw_top_fill(w, h.s, h.len);
	str_free(&h);
	return r;
}

/* inbound_free - release what IB holds */
void inbound_free(struct inbound *ib)
{
	if (!ib->on)
		return;
	authres_filter_free(&ib->flt);
	dkimv_free(&ib->dkim);
	str_free(&ib->out);
	str_free(&ib->held_rcvd);
	str_free(&ib->held);
}
