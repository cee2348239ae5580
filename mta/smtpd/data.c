/*
 * data - the DATA phase: from 354 to the final reply.
 *
 * The end of data is CR LF . CR LF and nothing else: a bare LF, a bare CR
 * or a NUL anywhere in the message makes it refused (554 5.6.0) after the
 * real end, so none of the SMTP smuggling variants ("\n.\n", "\r.\r",
 * "\r\n.\n", ...) can end a message early or start a second one that a
 * later hop would see. Lines are stored with LF ends and one leading dot
 * removed (RFC 5321 4.5.2). The message goes straight into a queue file;
 * anything refused, cut off or failed is qw_abort()ed, so nothing half is
 * ever queued, and 250 is sent only after qw_commit() returned 0.
 *
 * The stored header is counted on the way (lib/hdrscan.h): a message that
 * arrives with more than 100 Received: lines has looped (RFC 5321 6.3)
 * and is refused with 554 5.4.6 after the data, nothing of it queued. Our
 * own Received line is not counted: it is written apart, before the data.
 *
 * The message goes to the file through lib/qsign: from an authenticated
 * session, a relay client (a RELAYCLIENT rule) or a POP-before-SMTP
 * client, mail whose From: is a hosted domain with DKIM keys is signed as
 * it is queued (docs/authentication.md); from anyone else, never: that
 * mail is checked instead (inbound.c), and gets an Authentication-Results
 * header at its top, after the data, before the commit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "date.h"
#include "hdrscan.h"
#include "log.h"
#include "qsign.h"
#include "smtpd.h"

#define FLUSH_AT 65536

struct dstate {
	struct qwriter w;
	struct qsign qs;	/* the message's way into w */
	struct inbound ib;	/* before qs: the checks of mail from others */
	int dmarc;		/* refused for its DMARC policy */
	struct hdrscan hs;	/* the hop count of the stored header */
	struct str line;	/* the current line, bounded */
	struct str buf;		/* stored bytes not yet written */
	unsigned long long size;
	int cr;			/* the previous byte was a CR */
	int start_ok;		/* the current line began after CR LF */
	int bad, toolong, over, werr;
};

/* protocol - the WITH word of the Received line (RFC 3848) */
static const char *protocol(const struct session *s)
{
	if (!s->esmtp)
		return "SMTP";
	if (s->tls)
		return s->auth_user.len ? "ESMTPSA" : "ESMTPS";
	return s->auth_user.len ? "ESMTPA" : "ESMTP";
}

/* store - keep BYTES for the queue file unless the message is lost */
static void store(struct session *s, struct dstate *d, const char *b,
		  size_t n)
{
	d->size += n;
	if (d->size > s->databytes)
		d->over = 1;
	if (d->bad || d->toolong || d->over || d->werr)
		return;
	if (hdrscan_feed(&d->hs, b, n) < 0)
		d->werr = -ENOMEM;
	else if (str_catb(&d->buf, b, n) < 0)
		d->werr = -ENOMEM;
	else if (d->buf.len >= FLUSH_AT) {
		d->werr = inbound_put(&d->ib, &d->qs, d->buf.s, d->buf.len);
		str_trunc(&d->buf, 0);
	}
}

/* end_line - a line ended (crlf: by CR LF); 1 when it ended the data */
static int end_line(struct session *s, struct dstate *d, int crlf)
{
	const char *p = d->line.s ? d->line.s : "";
	size_t n = d->line.len;

	if (crlf && d->start_ok && n == 1 && p[0] == '.')
		return 1;
	if (n && p[0] == '.') {
		p++;
		n--;
	}
	store(s, d, p, n);
	store(s, d, "\n", 1);
	str_trunc(&d->line, 0);
	d->start_ok = crlf;
	return 0;
}

/* byte - one byte of DATA through the state machine; 1 at the end */
static int byte(struct session *s, struct dstate *d, int ch)
{
	if (d->cr) {
		d->cr = 0;
		if (ch == '\n')
			return end_line(s, d, 1);
		d->bad = 1;		/* a bare CR */
		if (str_catc(&d->line, '\r') < 0)
			d->werr = -ENOMEM;
	}
	if (ch == '\r') {
		d->cr = 1;
		return 0;
	}
	if (ch == '\n') {
		d->bad = 1;		/* a bare LF */
		return end_line(s, d, 0);
	}
	if (ch == 0)
		d->bad = 1;
	/* the line limit counts CR LF; past it we only look for the end */
	if (d->line.len + 2 >= SMTPD_TEXT_MAX) {
		d->toolong = 1;
		return 0;
	}
	if (str_catc(&d->line, (char)ch) < 0)
		d->werr = -ENOMEM;
	return 0;
}

/* received - the trace header, with the id the queue will give the file */
static int received(struct session *s, struct dstate *d, struct str *id)
{
	struct stat st;
	struct str h = STR_INIT;
	int r;

	if (fstat(d->w.fd, &st) < 0)
		return -errno;
	/* qw_commit names the file ARRIVAL.INODE (lib/queue.c), both known
	 * now: the Received line can carry the id without a second pass */
	r = str_catf(id, "%llx.%llx", (unsigned long long)d->w.arrival_us,
		     (unsigned long long)st.st_ino);
	if (r == 0)
		r = str_catf(&h, "Received: from %s (%s)\n\tby %s with %s "
			     "id %s;\n\t", s->helo.s, s->ip.s, s->me.s,
			     protocol(s), id->s);
	if (r == 0)
		r = date_cat(&h, time(NULL));
	if (r == 0)
		r = str_catc(&h, '\n');
	if (r == 0)	/* under the A-R room on the MX path */
		r = inbound_received(&d->ib, h.s, h.len);
	str_free(&h);
	return r;
}

/* add_id - remember a queued id for the session's log line */
static void add_id(struct session *s, const struct str *id)
{
	s->msgs++;
	if (s->ids.len > 400)	/* the log line stays a line */
		return;
	if (s->ids.len && str_catc(&s->ids, ',') < 0)
		return;
	(void)str_catb(&s->ids, id->s, id->len);
}

/* data_receive - 354, the message, and the one final reply */
void data_receive(struct session *s)
{
	struct dstate d;
	struct str id = STR_INIT, got = STR_INIT;
	/* mail from others: checked, never signed (docs/authentication.md) */
	int r, ch, mx = inbound_mx(s);

	memset(&d, 0, sizeof d);
	d.start_ok = 1;
	hdrscan_init(&d.hs, NULL, 0);
	if (str_copys(&s->env.client, s->ip.s) < 0 ||
	    str_copys(&s->env.helo, s->helo.s) < 0 ||
	    str_copyb(&s->env.auth, s->auth_user.s ? s->auth_user.s : "",
		      s->auth_user.len) < 0 ||
	    str_copys(&s->env.proto, protocol(s)) < 0) {
		(void)conn_reply(&s->c, "451 4.3.0 out of memory");
		session_note(s, "451 4.3.0 out of memory");
		return;
	}
	r = qw_open(&d.w, s->root, &s->env);
	/* on the MX path the Received line waits in inbound.c for the A-R
	 * room, which goes above everything once the header is read */
	if (r == 0 && ((r = inbound_start(&d.ib, &d.w, s->me.s, mx)) < 0 ||
		       (r = received(s, &d, &id)) < 0))
		qw_abort(&d.w);
	if (r == 0)
		r = qsign_start(&d.qs, &d.w, s->root, !mx);
	if (r < 0) {
		(void)conn_reply(&s->c, "451 4.3.0 cannot queue the message: "
				 "%s", strerror(-r));
		session_note(s, "451 4.3.0 cannot create a queue file");
		goto out;
	}
	(void)conn_reply(&s->c, "354 go ahead, end with <CR><LF>.<CR><LF>");
	conn_window(&s->c);
	for (;;) {
		r = conn_getbyte(&s->c, &ch);
		if (r < 0)
			break;
		if (byte(s, &d, ch))
			break;
	}
	if (r < 0) {
		/* the client went away or stalled: nothing of it is queued */
		qw_abort(&d.w);
		if (r == -ETIMEDOUT)
			(void)conn_reply(&s->c, "421 4.4.2 %s timeout, closing "
					 "connection", s->me.s);
		session_note(s, r == -ETIMEDOUT ? "timeout in DATA" :
			     "connection lost in DATA");
		str_trunc(&s->end, 0);
		(void)str_cats(&s->end, r == -ETIMEDOUT ? "timeout" : "eof");
		s->quit = 1;
		goto out;
	}
	if (!d.bad && !d.toolong && !d.over && !d.werr && d.buf.len)
		d.werr = inbound_put(&d.ib, &d.qs, d.buf.s, d.buf.len);
	if (!d.bad && !d.toolong && !d.over && !d.werr)
		d.werr = inbound_flush(&d.ib, &d.qs);
	if (!d.bad && !d.toolong && !d.over && !d.werr)
		d.werr = qsign_end(&d.qs);
	if (hdrscan_end(&d.hs) < 0 && !d.werr)
		d.werr = -ENOMEM;
	/* the key lookups only for a message that will be kept */
	if (!d.bad && !d.toolong && !d.over && !d.werr &&
	    !hdrscan_looped(&d.hs, 0))
		d.werr = inbound_end(&d.ib, s, &d.w, &d.dmarc);
	if (d.bad || d.toolong || d.over || d.werr || d.dmarc ||
	    hdrscan_looped(&d.hs, 0)) {
		const char *why = d.bad ? "554 5.6.0 message refused: bare CR, "
				  "bare LF or NUL byte in the data" :
				  d.toolong ? "554 5.6.0 message refused: line "
				  "too long (over 1000 bytes)" :
				  d.over ? "552 5.3.4 message size exceeds "
				  "fixed maximum message size" :
				  d.werr ? "451 4.3.0 cannot write the queue "
				  "file" : d.dmarc ? INBOUND_REFUSE_DMARC :
				  "554 5.4.6 " HDRSCAN_LOOP_TEXT;

		qw_abort(&d.w);
		(void)conn_reply(&s->c, "%s", why);
		session_note(s, why);
		goto out;
	}
	r = qw_commit(&d.w, &got);
	if (r < 0) {
		(void)conn_reply(&s->c, "451 4.3.0 cannot queue the message: "
				 "%s", strerror(-r));
		session_note(s, "451 4.3.0 queue commit failed");
		goto out;
	}
	if (!str_eqs(&got, id.s)) /* lib/queue.c changed its naming */
		(void)log_write(2, "mta-smtpd", "warning: Received id %s but "
				"queued as %s", id.s, got.s);
	(void)conn_reply(&s->c, "250 2.0.0 ok %s", got.s);
	add_id(s, &got);
out:
	str_free(&id);
	str_free(&got);
	str_free(&d.line);
	str_free(&d.buf);
	hdrscan_free(&d.hs);
	qsign_free(&d.qs);
	inbound_free(&d.ib);
}
