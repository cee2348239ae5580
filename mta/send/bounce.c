/*
 * bounce - one RFC 3464 delivery report per message, for all its failed
 * recipients, queued like any other message.
 *
 * The report goes to the envelope sender with the sender <>. A message
 * from <> that fails (a bounce, or a remote server's own report) is
 * reported once more, to control/doublebounceto, marked as a double
 * bounce ('B' in its envelope); a double bounce that fails is dropped
 * with a log line. So <> mail is never bounced twice and two servers
 * cannot bounce at each other forever. The report of a forward whose
 * sender is an SRS0 address of control/me goes straight to the original
 * sender (lib/srs.h): that address leads back to this host, where only
 * mta-smtpd's RCPT would unwrap it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "date.h"
#include "msg.h"
#include "qsign.h"
#include "send.h"
#include "srs.h"

#define ORIG_BODY_MAX 50000	/* bytes of the original body returned */
#define ORIG_HEAD_MAX (256 * 1024)

/* status_code - the first d.d.d in TEXT with a 4 or 5 class, as 5.x.y;
 * 5.0.0 when the text has none */
static void status_code(char *out, size_t cap, const char *t)
{
	size_t i;

	for (i = 0; t[i]; i++) {
		const char *p = t + i;
		size_t a, b;

		if ((p[0] != '4' && p[0] != '5') || p[1] != '.' ||
		    (i && t[i - 1] >= '0' && t[i - 1] <= '9'))
			continue;
		a = strspn(p + 2, "0123456789");
		if (a < 1 || a > 3 || p[2 + a] != '.')
			continue;
		b = strspn(p + 3 + a, "0123456789");
		if (b < 1 || b > 3)
			continue;
		snprintf(out, cap, "5.%.*s.%.*s", (int)a, p + 2, (int)b,
			 p + 3 + a);
		return;
	}
	snprintf(out, cap, "5.0.0");
}

/* original - the returned part: the header and at most ORIG_BODY_MAX
 * bytes of the body, cut at a line end */
static int original(struct mstate *st, struct str *out)
{
	struct str buf = STR_INIT;
	size_t want = ORIG_HEAD_MAX + ORIG_BODY_MAX, i, end;
	ssize_t got;
	int fd, r = 0;

	if (want > st->body_len)
		want = (size_t)st->body_len;
	fd = open(st->path.s, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = str_ready(&buf, want);
	if (r == 0) {
		got = pread(fd, buf.s, want, st->body_off);
		if (got < 0)
			r = -errno;
		else
			buf.len = (size_t)got;
	}
	close(fd);
	if (r < 0) {
		str_free(&buf);
		return r;
	}
	/* the end of the header: the first empty line */
	for (i = 0, end = buf.len; i < buf.len; i++)
		if (buf.s[i] == '\n' && (i == 0 || buf.s[i - 1] == '\n')) {
			end = i + 1;
			break;
		}
	if (end > ORIG_HEAD_MAX)
		end = ORIG_HEAD_MAX;
	if (buf.len - end > ORIG_BODY_MAX) {
		size_t cut = end + ORIG_BODY_MAX;

		while (cut > end && buf.s[cut - 1] != '\n')
			cut--;
		end = cut;
	} else {
		end = buf.len;
	}
	r = str_catb(out, buf.s, end);
	if (r == 0 && end && buf.s[end - 1] != '\n')
		r = str_catc(out, '\n');
	str_free(&buf);
	return r;
}

static int report(struct send *s, struct msg *m, const char *to,
		  struct str *b)
{
	struct mstate *st = m->st;
	const char *me = str_cstr(&s->me);
	char code[32];
	size_t i;
	int r = 0;

	r |= str_catf(b, "From: MAILER-DAEMON@%s\nTo: %s\n"
		      "Subject: failure notice\nDate: ", me, to);
	r |= date_cat(b, (time_t)(now_us() / 1000000));
	r |= str_catf(b, "\nMessage-ID: <%s.bounce@%s>\n"
		      "Auto-Submitted: auto-replied\nMIME-Version: 1.0\n"
		      "Content-Type: multipart/report; "
		      "report-type=delivery-status;\n"
		      "\tboundary=\"%s/%s\"\n\n"
		      "This is a MIME-encapsulated message.\n\n"
		      "--%s/%s\nContent-Description: Notification\n"
		      "Content-Type: text/plain; charset=us-ascii\n\n"
		      "Hi. This is the mail system at %s.\n\n"
		      "I could not deliver your message to the following "
		      "addresses.\nThis is a permanent error; I have given "
		      "up.\n\n", m->id, me, m->id, me, m->id, me, me);
	for (i = 0; i < st->n; i++)
		if (st->r[i].state == QS_FAILED)
			r |= str_catf(b, "<%s>:\n%s\n\n", st->addr[i],
				      str_cstr(&st->r[i].text));
	r |= str_catf(b, "--%s/%s\nContent-Description: Delivery report\n"
		      "Content-Type: message/delivery-status\n\n"
		      "Reporting-MTA: dns; %s\nArrival-Date: ", m->id, me, me);
	r |= date_cat(b, (time_t)(m->arrival_us / 1000000));
	r |= str_cats(b, "\n");
	for (i = 0; i < st->n; i++) {
		const char *t = str_cstr(&st->r[i].text);

		if (st->r[i].state != QS_FAILED)
			continue;
		status_code(code, sizeof code, t);
		r |= str_catf(b, "\nFinal-Recipient: rfc822; %s\n"
			      "Action: failed\nStatus: %s\n"
			      "Diagnostic-Code: %s; %s\nLast-Attempt-Date: ",
			      st->addr[i], code,
			      strstr(t, " 5") || strstr(t, ": 5") ? "smtp" :
			      "x-local", t);
		r |= date_cat(b, (time_t)(st->r[i].last_us / 1000000));
		r |= str_cats(b, "\n");
	}
	r |= str_catf(b, "\n--%s/%s\nContent-Description: Undelivered "
		      "Message\nContent-Type: message/rfc822\n\n", m->id, me);
	if (r)
		return -ENOMEM;
	r = original(st, b);
	if (r == 0)
		r = str_catf(b, "\n--%s/%s--\n", m->id, me);
	return r;
}

/* unwrap_srs - TO, an SRS0 address of ME, made the original sender; left
 * as it is (with a log line) when it does not check out */
static int unwrap_srs(struct send *s, struct msg *m, struct str *to)
{
	struct str keys = STR_INIT, orig = STR_INIT, me = STR_INIT;
	size_t n;
	int r;

	/* ctl_me, not s->me: the name vdeliver signed and mta-smtpd checks,
	 * whatever the scheduler's own default for a missing control/me */
	if ((r = ctl_me(s->root, &me)) < 0 || !srs_is(me.s, to->s)) {
		str_free(&me);
		return r;
	}
	r = srs_secrets(s->root, &keys, &n);
	if (r == 0)
		r = srs_reverse(&keys, me.s, to->s, time(NULL), &orig);
	if (r == 0)
		r = str_copyb(to, orig.s, orig.len);
	else if (r != -ENOMEM) {
		slog("msg %s: cannot unwrap the SRS sender <%s>: %s", m->id,
		     to->s, msg_err(r));
		r = 0;
	}
	str_wipe(&keys);
	str_free(&orig);
	str_free(&me);
	return r;
}

/* bounce_make - queue the report of M's failed recipients; ID_R gets its
 * id, or stays empty when nothing is to be sent (a double bounce) */
int bounce_make(struct send *s, struct msg *m, struct str *id_r)
{
	struct mstate *st = m->st;
	struct str to = STR_INIT, body = STR_INIT;
	struct qenv e;
	struct qwriter w;
	struct qsign qs;
	int r;

	id_r->len = 0;
	if (st->env.sender.len == 0 && st->env.dbl) {
		slog("msg %s: a double bounce failed; dropped", m->id);
		return 0;
	}
	qenv_init(&e);
	if (st->env.sender.len) {
		r = str_copyb(&to, st->env.sender.s, st->env.sender.len);
		if (r == 0)
			r = unwrap_srs(s, m, &to);
	} else {
		e.dbl = 1;
		r = str_copyb(&to, s->dbto.s, s->dbto.len);
		if (r == 0 && !memchr(to.s, '@', to.len))
			r = str_catf(&to, "@%s", str_cstr(&s->me));
	}
	if (r == 0)
		r = str_copys(&e.sender, "");
	if (r == 0)
		r = qenv_add_rcpt(&e, to.s);
	if (r == -EINVAL) {
		slog("msg %s: cannot bounce to <%s>: not a valid address; "
		     "dropped", m->id, str_cstr(&to));
		r = 0;
		goto out;
	}
	if (r == 0)
		r = report(s, m, to.s, &body);
	if (r == 0)
		r = qw_open(&w, s->root, &e);
	if (r == 0) {
		/* our own report: signed when control/me's domain has keys */
		(void)qsign_start(&qs, &w, s->root, 1);
		r = qsign_put(&qs, body.s, body.len);
		if (r == 0)
			r = qsign_end(&qs);
		qsign_free(&qs);
		if (r == 0)
			r = qw_commit(&w, id_r);
		else
			qw_abort(&w);
	}
out:
	qenv_free(&e);
	str_free(&to);
	str_free(&body);
	return r;
}
