/*
 * rules - client-IP rules (see rules.h).
 *
 * Keys in relayrules.cdb: "4" and the IPv4 text as written ("410.1.",
 * "4127.0.0.1"); "6" and the leading hex nibbles of an IPv6 prefix ("6"
 * plus 32 nibbles for one address; a prefix that is not a whole nibble is
 * spread over the up to 8 nibble prefixes it covers, so a /126 and a /128
 * share keys of 32 nibbles: the compiler adds longer prefixes first, and
 * the CDB's first record of a key wins); "" for the rule that matches every
 * client. Values: "allow" or "deny", then "\0NAME=value" for each setting.
 * A lookup tries the most specific key first.
 */
#include "rules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cdbx.h"
#include "ctl.h"
#include "num.h"
#include "peer.h"

static const char hexd[] = "0123456789abcdef";

/* ipv4_octet - one octet, 0..255, of at most three digits; no leading
 * zero: keys are the text as written and clients are looked up by their
 * canonical text, so "010." could never match (and inet_aton would read
 * it as octal 8) */
static int ipv4_octet(const char *s, size_t n, unsigned *v)
{
	uint64_t x;

	if (n > 3 || (n > 1 && s[0] == '0') || num_parseb(s, n, 255, &x))
		return -EINVAL;
	*v = (unsigned)x;
	return 0;
}

/* add_key - append one NUL-terminated key to the list */
static int add_key(struct str *keys, const char *k, size_t n)
{
	return str_catb(keys, k, n) || str_catc(keys, 0) ? -ENOMEM : 0;
}

/* keys_ipv4 - exact address, prefix ending in '.', or A.B.C.X-Y */
static int keys_ipv4(const char *a, size_t n, struct str *keys)
{
	unsigned octets = 0, v, lo, hi;
	size_t i = 0, start;
	struct str k = STR_INIT;
	int r = 0;

	while (i < n) {
		start = i;
		while (i < n && a[i] != '.' && a[i] != '-')
			i++;
		if (ipv4_octet(a + start, i - start, &v) < 0)
			return -EINVAL;
		octets++;
		if (i < n && a[i] == '-') {
			/* a range is allowed in the last octet only */
			if (octets != 4 || ipv4_octet(a + i + 1, n - i - 1,
						      &hi) < 0)
				return -EINVAL;
			lo = v;
			if (hi < lo)
				return -EINVAL;
			for (v = lo; r == 0 && v <= hi; v++) {
				k.len = 0;
				r = str_catc(&k, '4') ||
				    str_catb(&k, a, start) ||
				    str_catf(&k, "%u", v) ? -ENOMEM :
				    add_key(keys, k.s, k.len);
			}
			str_free(&k);
			return r;
		}
		if (i < n)
			i++; /* the dot */
		if (octets > 4 || (octets == 4 && i != n) ||
		    (i == n && a[n - 1] != '.' && octets != 4))
			return -EINVAL;
	}
	r = str_catc(&k, '4') || str_catb(&k, a, n) ? -ENOMEM :
	    add_key(keys, k.s, k.len);
	str_free(&k);
	return r;
}

/* nibbles - the first count hex nibbles of 16 address bytes */
static void nibbles(const unsigned char b[16], unsigned count, char *out)
{
	unsigned i;

	for (i = 0; i < count; i++)
		out[i] = hexd[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	out[count] = 0;
}

/* keys_ipv6_bits - the nibble prefixes that cover a /bits prefix */
static int keys_ipv6_bits(const unsigned char b[16], unsigned bits,
			  struct str *keys)
{
	char k[34];
	unsigned whole = bits / 4, rem = bits % 4, last, v;
	int r = 0;

	k[0] = '6';
	if (rem == 0) {
		nibbles(b, whole, k + 1);
		return add_key(keys, k, whole + 1);
	}
	nibbles(b, whole + 1, k + 1);
	last = (unsigned)(strchr(hexd, k[whole + 1]) - hexd);
	last &= ~((1u << (4 - rem)) - 1) & 15;
	for (v = 0; r == 0 && v < (1u << (4 - rem)); v++) {
		k[whole + 1] = hexd[last | v];
		r = add_key(keys, k, whole + 2);
	}
	return r;
}

/* keys_ipv6 - exact address, whole-group prefix "a:b:", or ADDR/BITS;
 * *bits_r is the prefix length */
static int keys_ipv6(const char *a, size_t n, struct str *keys,
		     unsigned *bits_r)
{
	unsigned char b[16];
	char buf[64];
	const char *slash = memchr(a, '/', n);
	uint64_t bits = 128;
	size_t groups = 0, i;

	if (n >= sizeof buf - 2)
		return -EINVAL;
	if (slash) {
		if (num_parseb(slash + 1, n - (size_t)(slash - a) - 1, 128,
			       &bits))
			return -EINVAL;
		n = (size_t)(slash - a);
	}
	memcpy(buf, a, n);
	buf[n] = 0;
	if (!slash && n > 1 && buf[n - 1] == ':' && buf[n - 2] != ':') {
		/* "2001:db8:" - whole groups; no "::" allowed inside */
		if (strstr(buf, "::"))
			return -EINVAL;
		for (i = 0; i < n; i++)
			groups += buf[i] == ':';
		if (groups > 7)
			return -EINVAL;
		memcpy(buf + n, ":", 2); /* "2001:db8::" parses */
		bits = groups * 16;
	}
	if (inet_pton(AF_INET6, buf, b) != 1)
		return -EINVAL;
	*bits_r = (unsigned)bits;
	return keys_ipv6_bits(b, (unsigned)bits, keys);
}

/* parse_line - one rule: its keys and its value; *bits_r is an IPv6
 * rule's prefix length, 0 for the others (their keys never share one) */
static int parse_line(const char *line, struct str *keys, struct str *val,
		      unsigned *bits_r, const char **why)
{
	size_t n = strlen(line), i, alen = 0;
	const char *act = NULL, *p;
	int r;

	for (i = 0; i < n; i++) {
		if (line[i] != ':')
			continue;
		p = line + i + 1;
		if ((!strncmp(p, "allow", 5) && (p[5] == 0 || p[5] == ',')) ||
		    (!strncmp(p, "deny", 4) && (p[4] == 0 || p[4] == ','))) {
			act = p;
			alen = i;
			break;
		}
	}
	if (!act) {
		*why = "want ADDRESS:allow or ADDRESS:deny";
		return -EINVAL;
	}
	keys->len = 0;
	*bits_r = 0;
	if (alen == 0)
		r = add_key(keys, "", 0);
	else if (memchr(line, ':', alen))
		r = keys_ipv6(line, alen, keys, bits_r);
	else
		r = keys_ipv4(line, alen, keys);
	if (r < 0) {
		*why = "not an IPv4 or IPv6 address, prefix or range";
		return r;
	}
	val->len = 0;
	if (str_catb(val, act, act[0] == 'a' ? 5 : 4))
		return -ENOMEM;
	p = act + (act[0] == 'a' ? 5 : 4);
	while (*p == ',') {
		const char *s = ++p, *eq;
		size_t len;

		while (*p && *p != ',')
			p++;
		/* a quoted value may hold a comma */
		eq = memchr(s, '=', (size_t)(p - s));
		if (eq && eq[1] == '"') {
			const char *q = strchr(eq + 2, '"');

			if (!q) {
				*why = "a quoted value has no closing quote";
				return -EINVAL;
			}
			p = q + 1;
			if (*p && *p != ',') {
				*why = "text after a quoted value";
				return -EINVAL;
			}
		}
		len = (size_t)(p - s);
		if (!eq || eq == s) {
			*why = "a setting must be NAME=value";
			return -EINVAL;
		}
		if (str_catc(val, 0) || str_catb(val, s, (size_t)(eq - s) + 1))
			return -ENOMEM;
		if (eq[1] == '"') {
			if (str_catb(val, eq + 2, len - (size_t)(eq - s) - 3))
				return -ENOMEM;
		} else if (str_catb(val, eq + 1, len - (size_t)(eq - s) - 1)) {
			return -ENOMEM;
		}
	}
	if (*p) {
		*why = "want ,NAME=value after the action";
		return -EINVAL;
	}
	return 0;
}

/* nth - the K-th (1-based) of the NUL-ended LINES */
static const char *nth(const struct str *lines, size_t k)
{
	const char *s = lines->s;

	while (k-- > 1)
		s += strlen(s) + 1;
	return s;
}

/* check_lines - parse every rule of LINES; on -EINVAL *k_r is the
 * failing rule (1-based) and *why the reason */
static int check_lines(const struct str *lines, size_t *k_r, const char **why)
{
	struct str keys = STR_INIT, val = STR_INIT;
	unsigned bits;
	size_t i;
	int r = 0;

	for (i = 0, *k_r = 1; r == 0 && i < lines->len;
	     i += strlen(lines->s + i) + 1, ++*k_r)
		r = parse_line(lines->s + i, &keys, &val, &bits, why);
	if (r < 0)
		--*k_r;
	str_free(&keys);
	str_free(&val);
	return r;
}

/* rules_check - parse control/relayrules without compiling it: 0, or
 * -EINVAL with the rule's number (among the lines ctl_get_lines keeps),
 * the rule and the reason in *err */
int rules_check(const char *root, struct str *err, size_t *rule_r)
{
	struct str lines = STR_INIT;
	const char *why = "";
	size_t k = 0, n;
	int r = ctl_get_lines(root, "relayrules", &lines, &n);

	if (r == 0)
		r = check_lines(&lines, &k, &why);
	*rule_r = k;
	if (r == -EINVAL && str_catf(err, "%s: \"%s\"", why, nth(&lines, k)))
		r = -ENOMEM;
	str_free(&lines);
	return r;
}

/* a rule's place in the CDB: longer IPv6 prefixes first, else in order */
struct place {
	size_t off;		/* of its line */
	unsigned bits;
};

/* place_cmp - more bits first, then the file's order */
static int place_cmp(const void *a, const void *b)
{
	const struct place *x = a, *y = b;

	if (x->bits != y->bits)
		return x->bits > y->bits ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* add_rules - every rule of LINES (COUNT, all parsed) into W, a key's
 * most specific rule first: the first of a key is the one looked up */
static int add_rules(struct cdbw *w, const struct str *lines, size_t count,
		     unsigned long *nrules)
{
	struct str keys = STR_INIT, val = STR_INIT;
	struct place *pl = calloc(count ? count : 1, sizeof *pl);
	const char *why = "";
	size_t i, j, k;
	int r = pl ? 0 : -ENOMEM;

	for (i = k = 0; r == 0 && i < lines->len && k < count;
	     i += strlen(lines->s + i) + 1, k++) {
		pl[k].off = i;
		r = parse_line(lines->s + i, &keys, &val, &pl[k].bits, &why);
	}
	if (r == 0)
		qsort(pl, k, sizeof *pl, place_cmp);
	for (i = 0; r == 0 && i < k; i++) {
		r = parse_line(lines->s + pl[i].off, &keys, &val, &pl[i].bits,
			       &why);
		for (j = 0; r == 0 && j < keys.len; j += strlen(keys.s + j) + 1)
			r = cdbw_add(w, keys.s + j, strlen(keys.s + j), val.s,
				     val.len);
		(*nrules)++;
	}
	free(pl);
	str_free(&keys);
	str_free(&val);
	return r;
}

/* rules_compile - control/relayrules into control/relayrules.cdb */
int rules_compile(const char *root, struct str *err, unsigned long *nrules)
{
	struct str lines = STR_INIT, path = STR_INIT;
	struct cdbw w;
	size_t k, count;
	const char *why = "";
	int r;

	*nrules = 0;
	r = ctl_get_lines(root, "relayrules", &lines, &count);
	if (r == 0)
		r = str_catf(&path, "%s/control/relayrules.cdb", root);
	if (r < 0)
		goto out;
	/* check every line before writing anything */
	r = check_lines(&lines, &k, &why);
	if (r == -EINVAL) {
		err->len = 0;
		str_catf(err, "rule %zu '%s': %s", k, nth(&lines, k), why);
		goto out;
	}
	if (r < 0)
		goto out;
	r = cdbw_start(&w, path.s, 0644);
	if (r < 0)
		goto out;
	r = add_rules(&w, &lines, count, nrules);
	if (r < 0)
		cdbw_abort(&w);
	else
		r = cdbw_finish(&w);
out:
	str_free(&lines);
	str_free(&path);
	return r;
}

/* set - fill a result from a CDB value */
static int set(struct rule *out, const char *v, size_t n)
{
	const char *z = memchr(v, 0, n);

	out->matched = 1;
	out->allow = n >= 5 && !memcmp(v, "allow", 5);
	out->env.len = 0;
	if (z && str_catb(&out->env, z + 1, n - (size_t)(z - v) - 1))
		return -ENOMEM;
	return str_catb(&out->env, "", 0) || str_catc(&out->env, 0) ?
	       -ENOMEM : 0;
}

/* rules_lookup - the rule for a client address */
int rules_lookup(const char *root, const char *ip, struct rule *out)
{
	struct str path = STR_INIT, k = STR_INIT;
	unsigned char b[16];
	struct cdbr db;
	const char *v, *mapped = NULL;
	size_t vlen, n;
	int r, i;

	out->matched = 0;
	out->allow = 1;
	out->env.len = 0;
	if (str_catb(&out->env, "", 0))
		return -ENOMEM;
	if (!strncmp(ip, "::ffff:", 7) && strchr(ip + 7, '.'))
		mapped = ip + 7; /* an IPv4 client on an IPv6 socket */
	if (mapped)
		ip = mapped;
	r = str_catf(&path, "%s/control/relayrules.cdb", root);
	if (r < 0)
		return r;
	r = cdbr_open(&db, path.s);
	str_free(&path);
	if (r == -ENOENT) {
		/* SPEC.md's defaults when nothing was compiled */
		if (peer_loopback(ip))
			return set(out, "allow\0RELAYCLIENT=", 18);
		return 0;
	}
	if (r < 0)
		return r;
	r = -ENOENT;
	if (strchr(ip, ':')) {
		if (inet_pton(AF_INET6, ip, b) == 1) {
			char nb[34];

			nb[0] = '6';
			/* down to no nibble at all: "6", the key of ::/0 */
			for (i = 32; r == -ENOENT && i >= 0; i--) {
				nibbles(b, (unsigned)i, nb + 1);
				r = cdbr_find(&db, nb, (size_t)i + 1, &v, &vlen);
			}
		}
	} else {
		/* "4a.b.c.d", then "4a.b.c.", "4a.b.", "4a." */
		if (str_catc(&k, '4') || str_cats(&k, ip))
			r = -ENOMEM;
		else
			r = cdbr_find(&db, k.s, k.len, &v, &vlen);
		for (n = k.len - 1; r == -ENOENT && n > 1; n--)
			if (k.s[n - 1] == '.')
				r = cdbr_find(&db, k.s, n, &v, &vlen);
	}
	if (r == -ENOENT)
		r = cdbr_find(&db, "", 0, &v, &vlen);
	if (r == 0)
		r = set(out, v, vlen);
	else if (r == -ENOENT)
		r = 0;
	cdbr_close(&db);
	str_free(&k);
	return r;
}

/* rules_env - the value of a setting of the matched rule, or NULL */
const char *rules_env(const struct rule *r, const char *name)
{
	size_t n = strlen(name), i;

	for (i = 0; i < r->env.len; i += strlen(r->env.s + i) + 1)
		if (!strncmp(r->env.s + i, name, n) && r->env.s[i + n] == '=')
			return r->env.s + i + n + 1;
	return NULL;
}

/* rules_free - release a result */
void rules_free(struct rule *r)
{
	str_free(&r->env);
}
