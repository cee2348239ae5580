/*
 * proto - the parts of SMTP that need no socket (docs/remote.md): the
 * reply parser, the DATA writer, and the result texts. Kept apart from
 * smtp.c so tests/unit/test_remote.c can feed them whole and byte by byte.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "remote.h"

/* ---- the reply parser */

/* reply_reset - ready for the next reply */
void reply_reset(struct reply *rp, int want_ext)
{
	rp->code = 0;
	rp->lines = 0;
	rp->want_ext = want_ext;
	if (want_ext)
		rp->ext = 0;
	str_trunc(&rp->text, 0);
}

/* reply_free - its text */
void reply_free(struct reply *rp)
{
	str_free(&rp->text);
}

/* keyword - the EHLO line text s (len bytes) starts with word */
static int keyword(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);

	return len >= n && strncasecmp(s, word, n) == 0 &&
	       (len == n || s[n] == ' ' || s[n] == '=');
}

/* reply_feed - one line (without CR LF); 1 when it ended the reply,
 * 0 when more lines follow, -EPROTO when it is not a reply line */
int reply_feed(struct reply *rp, const char *line, size_t len)
{
	int code, last;

	if (len > REPLY_MAX_LINE || ++rp->lines > REPLY_MAX_LINES)
		return -EPROTO;
	if (len < 3 || line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9')
		return -EPROTO;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -EPROTO;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	last = len == 3 || line[3] == ' ';
	if (rp->lines > 1 && code != rp->code)
		return -EPROTO;
	rp->code = code;
	if (rp->want_ext && rp->lines > 1 && len > 4) {
		const char *k = line + 4;
		size_t kl = len - 4;

		if (keyword(k, kl, "PIPELINING"))
			rp->ext |= EXT_PIPELINING;
		else if (keyword(k, kl, "SIZE"))
			rp->ext |= EXT_SIZE;
		else if (keyword(k, kl, "STARTTLS"))
			rp->ext |= EXT_STARTTLS;
		else if (keyword(k, kl, "8BITMIME"))
			rp->ext |= EXT_8BITMIME;
		else if (keyword(k, kl, "SMTPUTF8"))
			rp->ext |= EXT_SMTPUTF8;
	}
	if (rp->text.len < REPLY_MAX_TEXT) {
		size_t room = REPLY_MAX_TEXT - rp->text.len;

		if (rp->text.len && str_cats(&rp->text, " / "))
			return -ENOMEM;
		if (str_catb(&rp->text, line, len < room ? len : room))
			return -ENOMEM;
	}
	return last;
}

/* ---- the DATA writer */

/* dot_start - a message begins at the start of a line */
void dot_start(struct dotstuff *ds)
{
	ds->bol = 1;
}

/* encode_lf - N bytes without a CR as SMTP DATA: LF becomes CR LF, a
 * dot that starts a line is doubled (RFC 5321 4.5.2) */
static int encode_lf(struct dotstuff *ds, const char *buf, size_t n,
		     struct str *out)
{
	size_t i = 0;

	while (i < n) {
		const char *lf;
		size_t run;

		if (ds->bol && buf[i] == '.' && str_catc(out, '.'))
			return -ENOMEM;
		lf = memchr(buf + i, '\n', n - i);
		run = lf ? (size_t)(lf - (buf + i)) : n - i;
		if (str_catb(out, buf + i, run))
			return -ENOMEM;
		i += run;
		if (lf) {
			if (str_catb(out, "\r\n", 2))
				return -ENOMEM;
			i++;
			ds->bol = 1;
		} else {
			ds->bol = run == 0 ? ds->bol : 0;
		}
	}
	return 0;
}

/* dot_encode - n message bytes as SMTP DATA (encode_lf). The queue holds
 * LF line ends, so a CR in it is a bare one, which no entry lets in now
 * (lib/queue.h queue_lf) but an older queue file may hold: it goes as a
 * space, as the entries write it, since RFC 5321 2.3.8 forbids it on the
 * wire and "\r.\r" ends DATA early at a lax next hop (SMTP smuggling).
 * One memchr() keeps the common case as fast */
int dot_encode(struct dotstuff *ds, const char *buf, size_t n,
	       struct str *out)
{
	size_t i, j;
	int r;

	if (!n || !memchr(buf, '\r', n))
		return encode_lf(ds, buf, n, out);
	for (i = 0; i < n; i = j + 1) {
		const char *cr = memchr(buf + i, '\r', n - i);

		j = cr ? (size_t)(cr - buf) : n;
		if (j > i && (r = encode_lf(ds, buf + i, j - i, out)) < 0)
			return r;
		if (cr && (r = encode_lf(ds, " ", 1, out)) < 0)
			return r;
	}
	return 0;
}

/* dot_finish - CR LF if the message did not end a line, then the dot */
int dot_finish(struct dotstuff *ds, struct str *out)
{
	if (!ds->bol && str_catb(out, "\r\n", 2))
		return -ENOMEM;
	ds->bol = 1;
	return str_catb(out, ".\r\n", 3) ? -ENOMEM : 0;
}

/* ---- results */

/* result_set - kind and the formatted text of one recipient */
int result_set(struct result *r, int kind, const char *fmt, ...)
{
	va_list ap;
	int e;

	r->kind = kind;
	str_trunc(&r->text, 0);
	va_start(ap, fmt);
	e = str_vcatf(&r->text, fmt, ap);
	va_end(ap);
	return e;
}

/* result_clean - text fit for a result line: no control or 8-bit bytes
 * (they become '?'), at most 500 bytes */
void result_clean(const char *in, size_t len, struct str *out)
{
	size_t i;

	str_trunc(out, 0);
	if (len > 500)
		len = 500;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (str_catc(out, c < 32 || c > 126 ? '?' : (char)c))
			return;
	}
}

/* job_fail_open - kind and text for every recipient still without one */
void job_fail_open(struct job *j, int kind, const char *fmt, ...)
{
	struct str t = STR_INIT;
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	(void)str_vcatf(&t, fmt, ap);
	va_end(ap);
	for (i = 0; i < j->nrcpt; i++)
		if (j->res[i].kind == RES_NONE)
			(void)result_set(&j->res[i], kind, "%s", str_cstr(&t));
	str_free(&t);
}
