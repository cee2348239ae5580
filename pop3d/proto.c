/*
 * proto - the parts of POP3 that are pure functions of their input.
 *
 * Everything a client or a Maildir name can put in front of the server is
 * parsed here, with explicit lengths and no I/O, so that tests/unit and
 * tests/fuzz can drive it without a socket:
 *
 *   proto_parse()      a command line into keyword and argument
 *   proto_split()      an argument into at most N space-separated tokens
 *   proto_num()        a decimal number, overflow checked
 *   proto_uidl()       the UIDL of a Maildir file name
 *   proto_plain_ok()   whether USER/PASS and AUTH PLAIN may be used
 *   xfer_*()           a message as RETR and TOP send it: CRLF line
 *                      ends, dot-stuffing, the header and N body lines
 *
 * @UNSAFE: byte-level scanning with explicit lengths.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "name.h"
#include "num.h"
#include "pop3d.h"

/* proto_parse - split a command line (CRLF removed) into a keyword and its
 * argument. Keywords are 1 to 4 letters (RFC 1939 has 3 and 4), folded to
 * upper case. A control byte anywhere is refused: NUL would cut a password
 * short in crypt(3), and a CR or LF here could only be an attack. */
int proto_parse(const char *line, size_t len, struct pop3_line *out)
{
	size_t i, k;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			return -EILSEQ;
	}
	for (k = 0; k < len && line[k] != ' '; k++) {
		char c = line[k];

		if (k == 4)
			return -EINVAL;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c < 'A' || c > 'Z')
			return -EINVAL;
		out->name[k] = c;
	}
	if (k == 0)
		return -EINVAL;
	out->name[k] = 0;
	if (k < len) {
		out->arg = line + k + 1;
		out->arglen = len - k - 1;
	} else {
		out->arg = line + len;
		out->arglen = 0;
	}
	return 0;
}

/* proto_split - space-separated tokens; runs of spaces count as one, so a
 * client that pads is not refused. -E2BIG when there are more than max. */
int proto_split(const char *s, size_t len, struct proto_tok *tok, size_t max,
		size_t *n_r)
{
	size_t i = 0, n = 0;

	while (i < len) {
		size_t a;

		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		a = i;
		while (i < len && s[i] != ' ')
			i++;
		if (n == max)
			return -E2BIG;
		tok[n].s = s + a;
		tok[n].len = i - a;
		n++;
	}
	*n_r = n;
	return 0;
}

/* proto_num - lib/num's rule (digits only), for pop3d's unsigned longs */
int proto_num(const char *s, size_t len, unsigned long *out)
{
	uint64_t v;
	int r = num_parseb(s, len, ULONG_MAX, &v);

	if (r == 0)
		*out = (unsigned long)v;
	return r;
}

/* hex64 - 16 hex digits */
static void hex64(uint64_t v, char *out)
{
	static const char hx[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--, v >>= 4)
		out[i] = hx[v & 15];
}

/* proto_uidl - the unique part of a Maildir name (before ':') stays the
 * same from new/ to cur/ and across sessions, so it is the UIDL when it is
 * what RFC 1939 allows (1 to 70 bytes of 0x21-0x7E). Any other name gets
 * '~' and two 64-bit FNV-1a hashes of it; a name that starts with '~' is
 * hashed too, so the two kinds can never meet. */
int proto_uidl(const char *name, size_t len, struct str *out)
{
	const char *colon = memchr(name, ':', len);
	uint64_t h1 = 14695981039346656037ull, h2 = 0x84222325cbf29ce4ull;
	char buf[33];
	size_t i;
	int safe;

	if (colon)
		len = (size_t)(colon - name);
	safe = len > 0 && len <= 70 && name[0] != '~';
	for (i = 0; safe && i < len; i++)
		if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
			safe = 0;
	if (safe)
		return str_copyb(out, name, len);
	for (i = 0; i < len; i++) {
		h1 = (h1 ^ (unsigned char)name[i]) * 1099511628211ull;
		h2 = (h2 ^ (unsigned char)name[len - 1 - i]) * 1099511628211ull;
	}
	buf[0] = '~';
	hex64(h1, buf + 1);
	hex64(h2 ^ len, buf + 17);
	return str_copyb(out, buf, sizeof buf);
}

/* proto_plain_ok - a password may cross this connection: under TLS, from
 * loopback, or everywhere when control/pop3plaintext says 1 (SPEC.md) */
int proto_plain_ok(int tls, int loopback, int plaintext)
{
	return tls || loopback || plaintext;
}

/* proto_natcmp - order of Maildir names: runs of digits compare as numbers,
 * so time-stamped names sort by arrival (1700000009 before 1700000010,
 * M9 before M10) */
int proto_natcmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i = 0, j = 0;

	while (i < alen && j < blen) {
		if (a[i] >= '0' && a[i] <= '9' && b[j] >= '0' && b[j] <= '9') {
			size_t ia = i, jb = j, na, nb;

			while (ia < alen && a[ia] == '0')
				ia++;
			while (jb < blen && b[jb] == '0')
				jb++;
			for (na = 0; ia + na < alen && a[ia + na] >= '0' &&
			     a[ia + na] <= '9'; na++)
				;
			for (nb = 0; jb + nb < blen && b[jb + nb] >= '0' &&
			     b[jb + nb] <= '9'; nb++)
				;
			if (na != nb)
				return na < nb ? -1 : 1;
			if (na && memcmp(a + ia, b + jb, na))
				return memcmp(a + ia, b + jb, na) < 0 ? -1 : 1;
			i = ia + na;
			j = jb + nb;
			continue;
		}
		if (a[i] != b[j])
			return (unsigned char)a[i] < (unsigned char)b[j] ? -1 : 1;
		i++;
		j++;
	}
	if (alen - i != blen - j)
		return alen - i < blen - j ? -1 : 1;
	/* equal as numbers ("01" and "1"): fall back on the bytes */
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return memcmp(a, b, alen) < 0 ? -1 : memcmp(a, b, alen) > 0;
}

/* proto_bare_lf - LF bytes not preceded by CR; *cr carries the last byte
 * across calls, so a file can be counted chunk by chunk */
uint64_t proto_bare_lf(const char *in, size_t n, int *cr)
{
	const char *p = in, *end = in + n, *nl;
	uint64_t k = 0;

	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (nl == in ? !*cr : nl[-1] != '\r')
			k++;
		p = nl + 1;
	}
	if (n)
		*cr = in[n - 1] == '\r';
	return k;
}

/* xfer_init - ready to send a message whole (top 0) or its header and
 * `lines` lines of body (top 1) */
void xfer_init(struct xfer *x, int top, unsigned long lines)
{
	memset(x, 0, sizeof *x);
	x->bol = 1;
	x->top = top;
	x->lines = lines;
}

/* xfer_body - xfer_run() for the body of a whole message, where lines
 * need not be counted: whole runs between LFs are copied at once. This
 * is where RETR spends its time. Returns n. */
static size_t xfer_body(struct xfer *x, const char *in, size_t i, size_t n,
			struct str *out)
{
	while (i < n) {
		const char *nl = memchr(in + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - in) : n, seg = end - i;

		if (x->bol && in[i] == '.')
			out->s[out->len++] = '.';
		memcpy(out->s + out->len, in + i, seg);
		out->len += seg;
		x->octets += seg;
		if (seg) {
			x->cr = in[end - 1] == '\r';
			x->bol = 0;
		}
		if (!nl)
			break;
		if (!x->cr) {
			out->s[out->len++] = '\r';
			x->octets++;
		}
		out->s[out->len++] = '\n';
		x->octets++;
		x->bol = 1;
		x->cr = 0;
		i = end + 1;
	}
	return n;
}

/* xfer_run - convert n bytes: a bare LF becomes CRLF, a line that starts
 * with '.' gets another (RFC 1939 byte-stuffing). Returns how many input
 * bytes were used: fewer than n when TOP has sent enough (x->done), or,
 * with x->done unset, when out could not grow (out of memory). */
size_t xfer_run(struct xfer *x, const char *in, size_t n, struct str *out)
{
	size_t i;

	if (x->done)
		return 0;
	/* worst case every byte doubles ("\n" -> "\r\n", "." -> "..") */
	if (n > (SIZE_MAX - 16) / 2 || str_ready(out, 2 * n + 16) < 0)
		return 0;
	for (i = 0; i < n && !x->done; i++) {
		char c = in[i];

		if (x->body && !x->top) {
			i = xfer_body(x, in, i, n, out);
			break;
		}

		if (x->bol && c == '.')
			out->s[out->len++] = '.';
		if (c != '\n') {
			out->s[out->len++] = c;
			x->octets++;
			x->cr = c == '\r';
			if (!x->cr)
				x->linelen++;
			x->bol = 0;
			continue;
		}
		if (!x->cr) {
			out->s[out->len++] = '\r';
			x->octets++;
		}
		out->s[out->len++] = '\n';
		x->octets++;
		if (x->top && x->body) {
			/* a body line ended; in the body lines is never 0 */
			if (--x->lines == 0)
				x->done = 1;
		} else if (!x->body && x->linelen == 0) {
			/* the empty line that ends the header */
			x->body = 1;
			if (x->top && x->lines == 0)
				x->done = 1;
		}
		x->linelen = 0;
		x->bol = 1;
		x->cr = 0;
	}
	out->s[out->len] = 0;
	return i;
}

/* xfer_end - finish the last line if the file did not, and the "." */
int xfer_end(struct xfer *x, struct str *out)
{
	if (!x->bol)
		return str_cats(out, x->cr ? "\n.\r\n" : "\r\n.\r\n");
	return str_cats(out, ".\r\n");
}
