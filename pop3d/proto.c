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
 *   proto_name_size()  the ,S= or ,W= size in a Maildir file name
 *   proto_ipstr()      a client address as text, IPv4-mapped made IPv4
 *   proto_plain_ok()   whether USER/PASS and AUTH PLAIN may be used
 *   xfer_*()           a message as RETR and TOP send it: CRLF line
 *                      ends, dot-stuffing, the header and N body lines
 *
 * @UNSAFE: byte-level scanning with explicit lengths.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

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

/* proto_num - decimal digits only (no sign, no space), overflow checked */
int proto_num(const char *s, size_t len, unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (v > (ULONG_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
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

/* proto_name_size - the number after ",S=" (size on disk) or ",W=" (size
 * with CRLF line ends) among the comma fields of a Maildir name, before
 * the ':' of the flags; -ENOENT when absent or not a clean number */
int proto_name_size(const char *name, size_t len, char field, uint64_t *out)
{
	const char *colon = memchr(name, ':', len);
	size_t i, end = colon ? (size_t)(colon - name) : len;

	for (i = 0; i + 3 <= end; i++) {
		uint64_t v = 0;
		size_t k;

		if (name[i] != ',' || name[i + 1] != field || name[i + 2] != '=')
			continue;
		for (k = i + 3; k < end && name[k] >= '0' && name[k] <= '9';
		     k++) {
			if (v > (UINT64_MAX - 9) / 10)
				return -ENOENT;
			v = v * 10 + (uint64_t)(name[k] - '0');
		}
		if (k == i + 3 || (k < end && name[k] != ','))
			continue;
		*out = v;
		return 0;
	}
	return -ENOENT;
}

/* proto_ipstr - a peer address as text; an IPv4-mapped IPv6 address
 * (::ffff:1.2.3.4, what a dual-stack socket reports) becomes 1.2.3.4, so
 * one client has one name in grants, limits and logs */
int proto_ipstr(const struct sockaddr *sa, socklen_t len, char *out,
		size_t outlen)
{
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const void *)sa;

		return inet_ntop(AF_INET, &s4->sin_addr, out,
				 (socklen_t)outlen) ? 0 : -ENOSPC;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			return inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12],
					 out, (socklen_t)outlen) ? 0 : -ENOSPC;
		return inet_ntop(AF_INET6, &s6->sin6_addr, out,
				 (socklen_t)outlen) ? 0 : -ENOSPC;
	}
	return -EAFNOSUPPORT;
}

/* proto_loopback - 127.0.0.0/8 or ::1 (text as proto_ipstr makes it) */
int proto_loopback(const char *ip)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, ip, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, ip, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

/* proto_failkey_ip - the key failed logins are counted under: the address
 * itself for IPv4, its /64 for IPv6, since one host usually has a whole
 * /64 to hop around in */
int proto_failkey_ip(const char *ip, struct str *out)
{
	struct in6_addr a6;
	char buf[INET6_ADDRSTRLEN];

	out->len = 0;
	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return str_catf(out, "ip %s", ip);
	memset(&a6.s6_addr[8], 0, 8);
	if (!inet_ntop(AF_INET6, &a6, buf, sizeof buf))
		return -EINVAL;
	return str_catf(out, "ip %s/64", buf);
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
