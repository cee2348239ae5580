/*
 * fuzz_pop3 - libFuzzer target for pop3d's parsers (pop3d/proto.c): the
 * command line and its arguments, USER's name (lib/login), the UIDL and
 * sizes of a Maildir name, and the RETR/TOP converter. Base64 and the
 * SASL messages are lib/'s, shared with mta-smtpd: tests/fuzz/fuzz_sasl.c.
 *
 * Checked beyond "no crash": a keyword is 1-4 upper-case letters and its
 * argument lies inside the line; a number parses only from digits; a
 * UIDL is 1-70 bytes of 0x21-0x7E; the converter's output has no bare LF,
 * ends in CRLF . CRLF, and un-stuffed gives the input with CRLF line ends.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildir.h"
#include "login.h"
#include "pop3d.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_line - a command line as the session sees it */
static void check_line(const char *s, size_t n)
{
	struct proto_tok tok[PROTO_TOKS];
	struct pop3_line pl;
	unsigned long v;
	size_t i, k, nt;

	if (proto_parse(s, n, &pl) < 0)
		return;
	k = strlen(pl.name);
	if (k < 1 || k > 4)
		abort();
	for (i = 0; i < k; i++)
		if (pl.name[i] < 'A' || pl.name[i] > 'Z')
			abort();
	if (pl.arg < s || pl.arg + pl.arglen != s + n)
		abort();
	if (proto_split(pl.arg, pl.arglen, tok, PROTO_TOKS, &nt) < 0)
		return;
	for (i = 0; i < nt; i++) {
		if (!tok[i].len || memchr(tok[i].s, ' ', tok[i].len))
			abort();
		if (proto_num(tok[i].s, tok[i].len, &v) < 0)
			continue;
		for (k = 0; k < tok[i].len; k++)
			if (tok[i].s[k] < '0' || tok[i].s[k] > '9')
				abort();
	}
}

/* check_names - USER's name and a Maildir file name */
static void check_names(const char *s, size_t n)
{
	struct str l = STR_INIT, d = STR_INIT, id = STR_INIT;
	uint64_t v;
	size_t i;

	if (login_user(s, n, &l, &d) == 0 && (!l.len || !d.len))
		abort();
	if (proto_uidl(s, n, &id) < 0 || id.len < 1 || id.len > 70)
		abort();
	for (i = 0; i < id.len; i++)
		if ((unsigned char)id.s[i] < 0x21 ||
		    (unsigned char)id.s[i] > 0x7e)
			abort();
	(void)maildir_name_size(s, n, 'S', &v);
	(void)maildir_name_size(s, n, 'W', &v);
	str_free(&l);
	str_free(&d);
	str_free(&id);
}

/* check_xfer - RETR of the input as a message, in two pieces */
static void check_xfer(const char *s, size_t n)
{
	struct str out = STR_INIT, want = STR_INIT, got = STR_INIT;
	struct xfer x;
	size_t i, half = n / 2;
	int cr = 0;
	uint64_t bare;

	xfer_init(&x, 0, 0);
	if (xfer_run(&x, s, half, &out) != half ||
	    xfer_run(&x, s + half, n - half, &out) != n - half ||
	    xfer_end(&x, &out) < 0)
		abort();
	bare = proto_bare_lf(s, n, &cr);
	if (x.octets != n + bare)
		abort();
	for (i = 0; i < out.len; i++)
		if (out.s[i] == '\n' && (i == 0 || out.s[i - 1] != '\r'))
			abort();
	if (out.len < 3 || memcmp(out.s + out.len - 3, ".\r\n", 3) ||
	    (out.len > 3 && out.s[out.len - 4] != '\n'))
		abort();
	/* the input with CRLF line ends and a final line end */
	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			str_catc(&want, '\r');
		str_catc(&want, s[i]);
	}
	if (n && s[n - 1] != '\n')
		str_cats(&want, n && s[n - 1] == '\r' ? "\n" : "\r\n");
	/* un-stuff the output, without the final ".\r\n" */
	for (i = 0; i + 3 < out.len; i++) {
		if ((i == 0 || out.s[i - 1] == '\n') && out.s[i] == '.') {
			if (i + 1 >= out.len - 3 || out.s[i + 1] != '.')
				abort();
			i++;
		}
		str_catc(&got, out.s[i]);
	}
	if (got.len != want.len || (got.len && memcmp(got.s, want.s, got.len)))
		abort();
	str_free(&out);
	str_free(&want);
	str_free(&got);
}

/* LLVMFuzzerTestOneInput - one input through every parser */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t n = size;

	/* a command line is at most 255 bytes; the rest get converted */
	if (n <= POP3_SASL_MAX) {
		check_line(s, n);
		check_names(s, n);
	}
	check_xfer(s, n);
	return 0;
}
