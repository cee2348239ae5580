/*
 * inbound - the checks on mail from others: DKIM now, SPF and DMARC to
 * come, and the one Authentication-Results header that reports them.
 *
 * Only mail from clients that are neither authenticated nor relay
 * clients (the MX path) is checked; for the others these functions pass
 * the bytes straight to lib/qsign. On the MX path:
 *
 *   inbound_start()  leaves room at the top of the queue file for the
 *                    header (qw_top_room: its length is known only at
 *                    the end, the body must not be copied twice)
 *   inbound_put()    the message to the DKIM verifier as it came, and,
 *                    without any Authentication-Results field that claims
 *                    our name (RFC 8601 5), to the queue file
 *   inbound_end()    the key lookups (lib/dns, control/resolvers, 1.5 s
 *                    a try, all of them over after 5 s whatever the
 *                    number of servers), the verdicts, the header
 *                    written into its room (qw_top_fill)
 *
 * inbound_results() is the one place where results become the header:
 * SPF (MAIL FROM) and DMARC will add their entries to struct checks and
 * to that function, in RFC 8601's customary order spf, dkim, dmarc.
 */
#include <errno.h>
#include <string.h>

#include "clock.h"
#include "dns.h"
#include "smtpd.h"

#define DKIM_TRY_MS 1500	/* as rbl.c: a slow resolver delays one reply */
/* all key lookups of a message end by then: c-ares gives one server
 * 1.5 s and then 3 s, more servers would take longer */
#define DKIM_DEADLINE_MS 5000

/* inbound_start - the MX path's state, the room for the header */
int inbound_start(struct inbound *ib, struct qwriter *w, const char *me,
		  int on)
{
	memset(ib, 0, sizeof *ib);
	ib->on = on;
	if (!on)
		return 0;
	authres_filter_init(&ib->flt, me);
	dkimv_start(&ib->dkim);
	return qw_top_room(w, authres_room(me, INBOUND_RESULTS_MAX));
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
	if (r == 0 && ib->out.len)
		r = qsign_put(qs, ib->out.s, ib->out.len);
	return r;
}

/* inbound_flush - what the filter still holds (a last header field) */
int inbound_flush(struct inbound *ib, struct qsign *qs)
{
	int r;

	if (!ib->on)
		return 0;
	str_trunc(&ib->out, 0);
	r = authres_filter_end(&ib->flt, &ib->out);
	if (r == 0 && ib->out.len)
		r = qsign_put(qs, ib->out.s, ib->out.len);
	return r;
}

/* inbound_results - the results as RFC 8601 entries, in their order */
int inbound_results(const struct checks *c, struct authres *a)
{
	const struct dkimv *v = c->dkim;
	size_t i;
	int r = 0;

	/* spf= goes here (lib/spf), before dkim= */
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
	/* dmarc= goes here, after dkim= */
	return r;
}

/* inbound_end - verdicts, and the header into its room */
int inbound_end(struct inbound *ib, const char *root, const char *me,
		struct qwriter *w)
{
	struct checks c = {&ib->dkim};
	struct authres a;
	struct dns *d = NULL;
	struct str h = STR_INIT;
	int r;

	if (!ib->on)
		return 0;
	memset(&a, 0, sizeof a);
	if (ib->dkim.nsig && dns_open(&d, root, DKIM_TRY_MS) < 0)
		d = NULL;	/* every key lookup: temperror */
	r = dkimv_finish(&ib->dkim, d, now_ms() + DKIM_DEADLINE_MS);
	dns_close(d);
	if (r == 0)
		r = inbound_results(&c, &a);
	if (r == 0)
		r = authres_build(&a, me, &h);
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
}
