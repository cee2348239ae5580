/*
 * spf - SPF check_host() (RFC 7208), see spf.h.
 *
 * The record is parsed whole before any term is evaluated, because a
 * syntax error anywhere is a permerror even after a matching term
 * (RFC 7208 4.6). DNS goes through lib/dns, which is blocking with a
 * per-query timeout: a check costs one round trip per DNS-querying term
 * at worst, at most 10 of them (plus the MX and PTR names) in sequence,
 * and the deadline is checked before each query.
 */
#include "spf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "name.h"

/* the state of one check, shared by every include and redirect */
struct ctx {
	struct dns *d;
	struct spf_env env;
	int64_t deadline;
	unsigned lookups, voids, depth;
	struct str *why, *mech;
	struct str pname;	/* %{p}, found once */
	int pdone;
};

/* recursion is bounded by the lookup count already; this is a backstop */
#define SPF_DEPTH_MAX (SPF_LOOKUPS_MAX + 2)

/* spf_res_name - the result as RFC 7208 and RFC 8601 spell it */
const char *spf_res_name(enum spf_res res)
{
	static const char *const names[] = {
		"none", "neutral", "pass", "fail", "softfail", "temperror",
		"permerror"
	};

	return (unsigned)res < sizeof names / sizeof *names ? names[res]
							    : "permerror";
}

/* spf_is_record - "v=spf1" alone or followed by a space (RFC 7208 4.5) */
int spf_is_record(const char *txt, size_t len)
{
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 &&
	       (len == 6 || txt[6] == ' ');
}

/* is_toplabel - RFC 7208 toplabel: letters, digits, inner hyphens, not
 * all digits */
static int is_toplabel(const char *s, size_t n)
{
	size_t i;
	int alpha = 0;

	if (n == 0 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		if (isalpha((unsigned char)s[i]) || s[i] == '-')
			alpha = 1;
		else if (!isdigit((unsigned char)s[i]))
			return 0;
	}
	return alpha;
}

/* macro_check - is s[0..n) a macro-string (RFC 7208 7.1); exp allows
 * the c, r and t letters */
static int macro_check(const char *s, size_t n, int exp)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x21 || c > 0x7e)
			return 0;
		if (c != '%') {
			i++;
			continue;
		}
		if (i + 1 >= n)
			return 0;
		c = (unsigned char)s[i + 1];
		if (c == '%' || c == '_' || c == '-') {
			i += 2;
			continue;
		}
		if (c != '{' || i + 2 >= n)
			return 0;
		c = (unsigned char)tolower((unsigned char)s[i + 2]);
		if (!strchr(exp ? "slodiphvcrt" : "slodiphv", c))
			return 0;
		for (i += 3; i < n && isdigit((unsigned char)s[i]); i++)
			;
		if (i < n && (s[i] == 'r' || s[i] == 'R'))
			i++;
		while (i < n && strchr(".-+,/_=", s[i]))
			i++;
		if (i >= n || s[i] != '}')
			return 0;
		i++;
	}
	return 1;
}

/* domain_spec_ok - macro-string that ends in a macro or "." toplabel */
static int domain_spec_ok(const char *s, size_t n)
{
	size_t end = n, dot;

	if (n == 0 || !macro_check(s, n, 0))
		return 0;
	if (s[n - 1] == '}')
		return 1;
	if (s[n - 1] == '.')
		end--;
	for (dot = end; dot > 0 && s[dot - 1] != '.'; dot--)
		;
	if (dot == 0)
		return 0;
	return is_toplabel(s + dot, end - dot);
}

/* cidr - "/N" with no leading zero and N <= max */
static int cidr(const char *s, size_t n, int max, int *out)
{
	size_t i;
	int v = 0;

	if (n < 2 || s[0] != '/' || (s[1] == '0' && n > 2))
		return -EINVAL;
	for (i = 1; i < n; i++) {
		if (!isdigit((unsigned char)s[i]) || v > max)
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* tail_digits - where the digits at the end of a[0..n) start */
static size_t tail_digits(const char *a, size_t n)
{
	while (n > 0 && isdigit((unsigned char)a[n - 1]))
		n--;
	return n;
}

/* dual_cidr - strip a trailing "/N" (IPv4) and/or "//N" (IPv6) prefix
 * length from t->arg (RFC 7208 5.6) */
static int dual_cidr(struct spf_term *t)
{
	const char *a = t->arg;
	size_t n = t->arglen, s = tail_digits(a, n);

	if (s >= 2 && s < n && a[s - 1] == '/' && a[s - 2] == '/') {
		if (cidr(a + s - 1, n - s + 1, 128, &t->cidr6) < 0)
			return -EINVAL;
		n = s - 2;
		s = tail_digits(a, n);
	}
	if (s >= 1 && s < n && a[s - 1] == '/') {
		if (cidr(a + s - 1, n - s + 1, 32, &t->cidr4) < 0)
			return -EINVAL;
		n = s - 1;
	}
	t->arglen = n;
	return 0;
}

/* ip_net - ip4:/ip6: argument: the network and its optional prefix */
static int ip_net(struct spf_term *t)
{
	char buf[64];
	const char *slash = memchr(t->arg, '/', t->arglen);
	size_t n = slash ? (size_t)(slash - t->arg) : t->arglen;
	int v6 = t->kind == SPF_IP6;

	if (n == 0 || n >= sizeof buf)
		return -EINVAL;
	memcpy(buf, t->arg, n);
	buf[n] = 0;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, t->net) != 1)
		return -EINVAL;
	if (slash && cidr(slash, t->arglen - n, v6 ? 128 : 32,
			  v6 ? &t->cidr6 : &t->cidr4) < 0)
		return -EINVAL;
	return 0;
}

static const struct {
	const char *name;
	enum spf_kind kind;
	int arg;		/* 0 none, 1 optional domain, 2 required */
} mechs[] = {
	{"all", SPF_ALL, 0}, {"include", SPF_INCLUDE, 2},
	{"a", SPF_A, 1}, {"mx", SPF_MX, 1}, {"ptr", SPF_PTR, 1},
	{"ip4", SPF_IP4, 2}, {"ip6", SPF_IP6, 2}, {"exists", SPF_EXISTS, 2},
};

/* parse_mech - one directive: [qualifier] name [":" arg] [cidr] */
static int parse_mech(struct spf_term *t, const char *s, size_t n)
{
	size_t i, k;

	t->qual = '+';
	if (n && strchr("+-~?", s[0])) {
		t->qual = s[0];
		s++;
		n--;
	}
	for (k = 0; k < n && s[k] != ':' && s[k] != '/'; k++)
		;
	for (i = 0; i < sizeof mechs / sizeof *mechs; i++)
		if (strlen(mechs[i].name) == k &&
		    strncasecmp(s, mechs[i].name, k) == 0)
			break;
	if (i == sizeof mechs / sizeof *mechs)
		return -EINVAL;
	t->kind = mechs[i].kind;
	if (k < n && s[k] == ':') {
		t->arg = s + k + 1;
		t->arglen = n - k - 1;
	} else if (k < n) {	/* a/32, mx//64 */
		if (mechs[i].arg != 1)
			return -EINVAL;
		t->arg = s + k;
		t->arglen = n - k;
	}
	if (mechs[i].arg == 0 && t->arg)
		return -EINVAL;
	if (mechs[i].arg == 2 && !t->arg)
		return -EINVAL;
	if (t->kind == SPF_IP4 || t->kind == SPF_IP6)
		return ip_net(t);
	if ((t->kind == SPF_A || t->kind == SPF_MX) && dual_cidr(t) < 0)
		return -EINVAL;
	if (t->arg && t->arglen == 0 && k < n && s[k] == '/')
		t->arg = NULL;	/* only a prefix: the current domain */
	if (t->arg && !domain_spec_ok(t->arg, t->arglen))
		return -EINVAL;
	return 0;
}

/* parse_term - a modifier (name "=" ...) or a directive */
static int parse_term(struct spf_term *t,
		      const char *s, size_t n, const char **why_r)
{
	size_t k = 0;

	memset(t, 0, sizeof *t);
	t->text = s;
	t->textlen = n;
	t->cidr4 = 32;
	t->cidr6 = 128;
	if (isalpha((unsigned char)s[0]))
		while (k < n && (isalnum((unsigned char)s[k]) ||
				 strchr("-_.", s[k])))
			k++;
	if (k == 0 || k >= n || s[k] != '=') {
		*why_r = "bad mechanism";
		return parse_mech(t, s, n);
	}
	t->arg = s + k + 1;
	t->arglen = n - k - 1;
	t->kind = SPF_MODIFIER;
	if (k == 8 && strncasecmp(s, "redirect", 8) == 0)
		t->kind = SPF_REDIRECT;
	else if (k == 3 && strncasecmp(s, "exp", 3) == 0)
		t->kind = SPF_EXP;
	*why_r = "bad modifier";
	if (t->kind == SPF_MODIFIER)
		return macro_check(t->arg, t->arglen, 0) ? 0 : -EINVAL;
	*why_r = "bad domain in modifier";
	return domain_spec_ok(t->arg, t->arglen) ? 0 : -EINVAL;
}

/* spf_record_free - what spf_parse made */
void spf_record_free(struct spf_record *rec)
{
	free(rec->t);
	memset(rec, 0, sizeof *rec);
}

/* spf_parse - a whole record (starting "v=spf1") into terms; -EINVAL
 * with *why_r for a syntax error anywhere, -ENOMEM */
int spf_parse(const char *rec, size_t len, struct spf_record *out,
	      const char **why_r)
{
	size_t i = 6, j;
	int r;

	memset(out, 0, sizeof *out);
	*why_r = "not an SPF record";
	if (!spf_is_record(rec, len))
		return -EINVAL;
	while (i < len) {
		struct spf_term *t;

		if (rec[i] == ' ') {
			i++;
			continue;
		}
		for (j = i; j < len && rec[j] != ' '; j++)
			;
		if (out->n == out->cap) {
			size_t cap = out->cap ? out->cap * 2 : 8;
			void *p = reallocarray(out->t, cap, sizeof *out->t);

			if (!p) {
				spf_record_free(out);
				return -ENOMEM;
			}
			out->t = p;
			out->cap = cap;
		}
		t = &out->t[out->n];
		r = parse_term(t, rec + i, j - i, why_r);
		if (r < 0) {
			spf_record_free(out);
			return r;
		}
		out->n++;
		i = j;
	}
	for (i = 0; i < out->n; i++) {	/* pointers once t stops moving */
		const struct spf_term **m =
			out->t[i].kind == SPF_REDIRECT ? &out->redirect :
			out->t[i].kind == SPF_EXP ? &out->exp : NULL;

		if (m && *m) {
			*why_r = "repeated modifier";
			spf_record_free(out);
			return -EINVAL;
		}
		if (m)
			*m = &out->t[i];
	}
	return 0;
}

/* spf_env_ip - the client address; IPv4-mapped IPv6 becomes IPv4 */
int spf_env_ip(struct spf_env *env, const char *ip)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};

	memset(env->ip, 0, sizeof env->ip);
	env->v6 = 0;
	if (inet_pton(AF_INET, ip, env->ip) == 1)
		return 0;
	if (inet_pton(AF_INET6, ip, env->ip) != 1)
		return -EINVAL;
	if (memcmp(env->ip, mapped, 12) == 0)
		memmove(env->ip, env->ip + 12, 4);
	else
		env->v6 = 1;
	return 0;
}

/* ip_text - the ip for %{i} (dotted, or dot-separated nibbles: RFC 7208
 * 7.3) or for %{c} (the usual text) */
static int ip_text(const struct spf_env *env, int readable, struct str *out)
{
	static const char hex[] = "0123456789abcdef";
	char buf[INET6_ADDRSTRLEN];
	int i, r = 0;

	if (!env->v6)
		return str_catf(out, "%u.%u.%u.%u", env->ip[0], env->ip[1],
				env->ip[2], env->ip[3]);
	if (readable)
		return inet_ntop(AF_INET6, env->ip, buf, sizeof buf) ?
		       str_cats(out, buf) : -EINVAL;
	for (i = 0; i < 16 && r == 0; i++)
		r = str_catf(out, "%s%c.%c", i ? "." : "", hex[env->ip[i] >> 4],
			     hex[env->ip[i] & 15]);
	return r;
}

/* macro_value - the raw value of one macro letter */
static int macro_value(const struct spf_env *env, const char *domain,
		       char letter, struct str *v)
{
	const char *at = strrchr(env->sender, '@');

	switch (letter) {
	case 's':
		return str_cats(v, env->sender);
	case 'l':
		return at ? str_catb(v, env->sender,
				     (size_t)(at - env->sender)) :
			    str_cats(v, "postmaster");
	case 'o':
		return str_cats(v, at ? at + 1 : env->sender);
	case 'd':
		return str_cats(v, domain);
	case 'i':
		return ip_text(env, 0, v);
	case 'c':
		return ip_text(env, 1, v);
	case 'p':
		return str_cats(v, env->p ? env->p : "unknown");
	case 'v':
		return str_cats(v, env->v6 ? "ip6" : "in-addr");
	case 'h':
		return str_cats(v, env->helo);
	case 'r':
		return str_cats(v, "unknown");
	case 't':
		return str_catu(v, (unsigned long long)(now_us() / 1000000));
	}
	return -EINVAL;
}

/* transform - split v on delims, reverse if rev, then keep the rightmost
 * keep parts (0: all), joined by dots (RFC 7208 7.3) */
static int transform(const struct str *v, const char *delims, size_t ndel,
		     unsigned long keep, int rev, struct str *out)
{
	size_t *start, nparts = 1, i, k, from;
	int r = 0;

	for (i = 0; i < v->len; i++)
		if (memchr(delims, v->s[i], ndel))
			nparts++;
	start = calloc(nparts + 1, sizeof *start);
	if (!start)
		return -ENOMEM;
	for (i = 0, k = 1; i < v->len; i++)
		if (memchr(delims, v->s[i], ndel))
			start[k++] = i + 1;
	start[nparts] = v->len + 1;	/* one past each part's delimiter */
	from = keep && keep < nparts ? nparts - keep : 0;
	for (i = from; i < nparts && r == 0; i++) {
		size_t p = rev ? nparts - 1 - i : i;

		if (i > from)
			r = str_catc(out, '.');
		if (r == 0)
			r = str_catb(out, v->s + start[p],
				     start[p + 1] - 1 - start[p]);
	}
	free(start);
	return r;
}

/* url_escape - RFC 3986 percent-encoding of all but unreserved bytes,
 * for upper-case macro letters */
static int url_escape(const struct str *v, struct str *out)
{
	size_t i;
	int r = 0;

	for (i = 0; i < v->len && r == 0; i++) {
		unsigned char c = (unsigned char)v->s[i];

		r = isalnum(c) || strchr("-._~", c) ? str_catc(out, (char)c) :
		    str_catf(out, "%%%02X", c);
	}
	return r;
}

/* one_macro - "%{...}" at spec[*i] (checked by macro_check) */
static int one_macro(const struct spf_env *env, const char *domain,
		     const char *spec, size_t len, size_t *i, struct str *out)
{
	struct str v = STR_INIT, t = STR_INIT;
	char letter = spec[*i + 2];
	unsigned long keep = 0;
	size_t j = *i + 3, d;
	int rev = 0, r, digits = 0;

	for (; j < len && isdigit((unsigned char)spec[j]); j++, digits = 1)
		if (keep < 1000)	/* more parts than a value has: all */
			keep = keep * 10 + (unsigned long)(spec[j] - '0');
	if (digits && keep == 0)
		return -EINVAL;	/* RFC 7208 7.3: nonzero */
	if (j < len && (spec[j] == 'r' || spec[j] == 'R')) {
		rev = 1;
		j++;
	}
	for (d = j; j < len && spec[j] != '}'; j++)
		;
	r = macro_value(env, domain, (char)tolower((unsigned char)letter), &v);
	if (r == 0)
		r = transform(&v, j > d ? spec + d : ".", j > d ? j - d : 1,
			      keep, rev, &t);
	if (r == 0)
		r = isupper((unsigned char)letter) ? url_escape(&t, out) :
		    str_catb(out, t.s, t.len);
	*i = j + 1;
	str_free(&v);
	str_free(&t);
	return r;
}

/* spf_expand - a macro-string (RFC 7208 7) into out; exp: the c, r, t
 * letters are allowed. -EINVAL for bad syntax, -EMSGSIZE past
 * SPF_EXPAND_MAX bytes, -ENOMEM. */
int spf_expand(const struct spf_env *env, const char *domain,
	       const char *spec, size_t len, int exp, struct str *out)
{
	size_t i = 0;
	int r = 0;

	str_trunc(out, 0);
	if (str_cats(out, "") < 0)
		return -ENOMEM;
	if (!macro_check(spec, len, exp))
		return -EINVAL;
	while (i < len && r == 0) {
		if (spec[i] != '%') {
			r = str_catc(out, spec[i++]);
		} else if (spec[i + 1] == '{') {
			r = one_macro(env, domain, spec, len, &i, out);
		} else {
			char c = spec[i + 1];

			r = str_cats(out, c == '%' ? "%" : c == '_' ? " " : "%20");
			i += 2;
		}
		if (r == 0 && out->len > SPF_EXPAND_MAX)
			r = -EMSGSIZE;
	}
	return r;
}

/* in_net - the client's address in net/prefix of its family */
static int in_net(const struct spf_env *env, const unsigned char *net,
		  int prefix)
{
	int full = prefix / 8, rest = prefix % 8;

	if (memcmp(env->ip, net, (size_t)full) != 0)
		return 0;
	return !rest || ((env->ip[full] ^ net[full]) &
			 (0xff00 >> rest)) == 0;
}

/* addr_in - is the client among addrs, within prefix */
static int addr_in(const struct spf_env *env, const struct dns_addr *a,
		   size_t n, int cidr4, int cidr6)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (env->v6 ? in_net(env, a[i].a.v6.s6_addr, cidr6) :
		    in_net(env, (const unsigned char *)&a[i].a.v4, cidr4))
			return 1;
	return 0;
}

/* fail_with - set the error result's reason; returns 2 (see match) */
static int fail_with(struct ctx *c, enum spf_res *res, enum spf_res what,
		     const char *why)
{
	*res = what;
	str_trunc(c->why, 0);
	return str_cats(c->why, why) < 0 ? -ENOMEM : 2;
}

/* dns_temp - a lookup that may work later: a failure worth a retry
 * (-EAGAIN) or no answer by the deadline (-ETIMEDOUT, dns_deadline) */
static int dns_temp(int r)
{
	return r == -EAGAIN || r == -ETIMEDOUT;
}

/* dns_ok - map a lookup's result: 0 found, 1 void (counted), or 2 with
 * *res set; invalid names are void too (RFC 7208 4.3, 5) */
static int dns_ok(struct ctx *c, int r, enum spf_res *res)
{
	if (r == -ENOMEM)
		return r;
	if (dns_temp(r))
		return fail_with(c, res, SPF_TEMPERROR, "DNS timeout or error");
	if (r == -EINVAL)
		return 1;
	if (r < 0 && ++c->voids > SPF_VOIDS_MAX)
		return fail_with(c, res, SPF_PERMERROR,
				 "more than 2 void lookups");
	return r < 0;
}

/* late - the deadline has passed: temperror */
static int late(struct ctx *c, enum spf_res *res)
{
	return now_ms() > c->deadline ?
	       fail_with(c, res, SPF_TEMPERROR, "SPF check took too long") : 0;
}

/* has_addr - 1 if host has the client's address within the prefixes,
 * 0 if not (or void), 2 on error (*res); counts voids only if count */
static int has_addr(struct ctx *c, const char *host, int cidr4, int cidr6,
		    int count, enum spf_res *res)
{
	struct dns_addr *a;
	size_t n;
	int r = late(c, res);

	if (r)
		return r;
	r = dns_addrs_af(c->d, host, c->env.v6 ? AF_INET6 : AF_INET, &a, &n);
	if (r < 0 && !count && !dns_temp(r) && r != -ENOMEM)
		return 0;
	r = dns_ok(c, r, res);
	if (r == 0)
		r = addr_in(&c->env, a, n, cidr4, cidr6);
	else if (r == 1)
		r = 0;
	free(a);
	return r;
}

/* name_under - name is domain or a subdomain of it (no final dots) */
static int name_under(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);

	if (n && name[n - 1] == '.')
		n--;
	if (d && domain[d - 1] == '.')
		d--;
	if (n < d || strncasecmp(name + n - d, domain, d) != 0)
		return 0;
	return n == d || name[n - d - 1] == '.';
}

/* validated - the client's validated names (RFC 7208 5.5): of the first
 * SPF_NAMES_MAX PTR names, those whose addresses include the client. The
 * first under domain goes to best (returns 1), else the first at all (3);
 * 0: none. DNS errors only skip a name (5.5). -ENOMEM. */
static int validated(struct ctx *c, const char *domain, struct str *best)
{
	struct dns_addr ip;
	enum spf_res ignored;
	char **names;
	size_t n, i;
	int r, found = 0;

	if (late(c, &ignored))
		return 0;
	memset(&ip, 0, sizeof ip);
	ip.family = c->env.v6 ? AF_INET6 : AF_INET;
	memcpy(c->env.v6 ? (void *)&ip.a.v6 : (void *)&ip.a.v4, c->env.ip,
	       c->env.v6 ? 16 : 4);
	r = dns_ptr(c->d, &ip, &names, &n);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	for (i = 0; i < n && i < SPF_NAMES_MAX && found != 1; i++) {
		int under = name_under(names[i], domain);

		r = has_addr(c, names[i], 32, 128, 0, &ignored);
		if (r < 0) {
			found = r;
			break;
		}
		if (r != 1 || (found == 3 && !under))
			continue;
		found = under ? 1 : 3;
		str_trunc(best, 0);
		if (str_cats(best, names[i]) < 0) {
			found = -ENOMEM;
			break;
		}
	}
	dns_names_free(names, n);
	return found;
}

/* target - the domain a term names: its expanded domain-spec, else the
 * current domain; over 253 bytes, left labels are dropped (RFC 7208
 * 7.3). 0, 2 (permerror in *res) or -ENOMEM. */
static int target(struct ctx *c, const struct spf_term *t,
		  const char *domain, struct str *out, enum spf_res *res)
{
	size_t cut = 0;
	int r;

	if (!t->arg) {
		str_trunc(out, 0);
		return str_cats(out, domain);
	}
	if (!c->pdone && (memmem(t->arg, t->arglen, "{p", 2) ||
			  memmem(t->arg, t->arglen, "{P", 2))) {
		c->pdone = 1;
		r = validated(c, domain, &c->pname);
		if (r < 0)
			return r;
		c->env.p = r ? c->pname.s : NULL;
	}
	r = spf_expand(&c->env, domain, t->arg, t->arglen, 0, out);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return fail_with(c, res, SPF_PERMERROR, "bad macro");
	if (out->len && out->s[out->len - 1] == '.')
		str_trunc(out, out->len - 1);
	while (out->len - cut > NAME_DOMAIN_MAX) {
		const char *dot = memchr(out->s + cut, '.', out->len - cut);

		cut = dot ? (size_t)(dot - out->s) + 1 : out->len;
	}
	if (cut)
		memmove(out->s, out->s + cut, out->len - cut + 1);
	out->len -= cut;
	return 0;
}

static int check_host(struct ctx *c, const char *domain, enum spf_res *res);

/* mx_match - the "mx" mechanism: at most SPF_NAMES_MAX MX hosts */
static int mx_match(struct ctx *c, const struct spf_term *t,
		    const char *host, enum spf_res *res)
{
	struct dns_mx *mx;
	size_t n, i;
	int r = late(c, res);

	if (r)
		return r;
	r = dns_ok(c, dns_mx(c->d, host, &mx, &n), res);
	if (r)
		return r == 1 ? 0 : r;
	if (n > SPF_NAMES_MAX)
		r = fail_with(c, res, SPF_PERMERROR, "more than 10 MX names");
	for (i = 0; i < n && r == 0; i++)
		if (mx[i].host[0])
			r = has_addr(c, mx[i].host, t->cidr4, t->cidr6, 0, res);
	dns_mx_free(mx, n);
	return r;
}

/* include_match - "include": pass matches, fail, softfail and neutral do
 * not, errors and none are errors (RFC 7208 5.2) */
static int include_match(struct ctx *c, const char *host, enum spf_res *res)
{
	int r = check_host(c, host, res);

	if (r < 0)
		return r;
	switch (*res) {
	case SPF_PASS:
		return 1;
	case SPF_FAIL: case SPF_SOFTFAIL: case SPF_NEUTRAL:
		return 0;
	case SPF_NONE:
		return fail_with(c, res, SPF_PERMERROR,
				 "include of a domain without SPF record");
	default:
		return 2;
	}
}

/* match - does mechanism t match: 1, 0, 2 (an error result in *res), or
 * -ENOMEM */
static int match(struct ctx *c, const struct spf_term *t,
		 const char *domain, enum spf_res *res)
{
	struct str host = STR_INIT;
	int r = 0;

	if (t->kind == SPF_ALL)
		return 1;
	if (t->kind == SPF_IP4 || t->kind == SPF_IP6)
		return (t->kind == SPF_IP6) == c->env.v6 &&
		       in_net(&c->env, t->net, c->env.v6 ? t->cidr6 : t->cidr4);
	if (++c->lookups > SPF_LOOKUPS_MAX)
		return fail_with(c, res, SPF_PERMERROR,
				 "more than 10 DNS lookups");
	r = target(c, t, domain, &host, res);
	if (r == 0 && t->kind == SPF_INCLUDE)
		r = include_match(c, host.s, res);
	else if (r == 0 && t->kind == SPF_A)
		r = has_addr(c, host.s, t->cidr4, t->cidr6, 1, res);
	else if (r == 0 && t->kind == SPF_MX)
		r = mx_match(c, t, host.s, res);
	else if (r == 0 && t->kind == SPF_EXISTS) {
		struct spf_env v4 = c->env;

		c->env.v6 = 0;	/* exists asks A whatever the client */
		memset(c->env.ip, 0, sizeof c->env.ip);
		r = has_addr(c, host.s, 0, 0, 1, res);
		c->env = v4;
	} else if (r == 0 && t->kind == SPF_PTR) {
		struct str name = STR_INIT;

		r = validated(c, host.s, &name);
		r = r == 1 ? 1 : r == 3 ? 0 : r;
		str_free(&name);
	}
	str_free(&host);
	return r;
}

/* domain_ok - a domain check_host() can ask: host-name syntax (with '_'
 * and hyphens anywhere), at least two labels (RFC 7208 4.3) */
static int domain_ok(const char *d)
{
	size_t n = strlen(d);

	if (n && d[n - 1] == '.')
		n--;
	return n && !name_ldh(d, n, NAME_LDH_UNDERSCORE | NAME_LDH_ANY_HYPHEN)
	       && memchr(d, '.', n);
}

/* fetch_record - the one SPF record of domain: 0 and *rec, 1 for none,
 * 2 with *res set, -ENOMEM */
static int fetch_record(struct ctx *c, const char *domain, struct str *rec,
			enum spf_res *res)
{
	struct str *txt;
	size_t n, i, found = 0;
	int r = late(c, res);

	if (r)
		return r;
	r = dns_txt(c->d, domain, &txt, &n);
	if (r == -ENOMEM)
		return r;
	if (dns_temp(r))
		return fail_with(c, res, SPF_TEMPERROR, "DNS timeout or error");
	if (r < 0)
		return 1;
	for (i = 0; i < n && r == 0; i++) {
		if (!spf_is_record(txt[i].s, txt[i].len))
			continue;
		if (found++)
			r = fail_with(c, res, SPF_PERMERROR,
				      "more than one SPF record");
		else
			r = str_copyb(rec, txt[i].s, txt[i].len);
	}
	dns_txt_free(txt, n);
	return r ? r : !found;
}

/* evaluate - the terms of a parsed record, then its redirect */
static int evaluate(struct ctx *c, const struct spf_record *rec,
		    const char *domain, enum spf_res *res)
{
	struct str host = STR_INIT;
	size_t i;
	int r;

	for (i = 0; i < rec->n; i++) {
		const struct spf_term *t = &rec->t[i];

		if (t->kind >= SPF_REDIRECT)
			continue;
		r = match(c, t, domain, res);
		if (r == 0)
			continue;
		if (r != 1)
			return r < 0 ? r : 0;
		*res = t->qual == '-' ? SPF_FAIL : t->qual == '~' ?
		       SPF_SOFTFAIL : t->qual == '?' ? SPF_NEUTRAL : SPF_PASS;
		str_trunc(c->mech, 0);
		return str_catb(c->mech, t->text, t->textlen) < 0 ? -ENOMEM : 0;
	}
	*res = SPF_NEUTRAL;
	str_trunc(c->mech, 0);
	if (!rec->redirect)
		return str_cats(c->mech, "default") < 0 ? -ENOMEM : 0;
	if (++c->lookups > SPF_LOOKUPS_MAX)
		return fail_with(c, res, SPF_PERMERROR,
				 "more than 10 DNS lookups") == 2 ? 0 : -ENOMEM;
	r = target(c, rec->redirect, domain, &host, res);
	if (r == 0)
		r = check_host(c, host.s, res);
	str_free(&host);
	if (r == 0 && *res == SPF_NONE)	/* RFC 7208 6.1 */
		r = fail_with(c, res, SPF_PERMERROR,
			      "redirect to a domain without SPF record");
	return r < 0 ? r : 0;
}

/* check_host - RFC 7208 4: the result for domain in *res; 0 or -ENOMEM */
static int check_host(struct ctx *c, const char *domain, enum spf_res *res)
{
	struct str txt = STR_INIT;
	struct spf_record rec;
	const char *why;
	int r;

	*res = SPF_NONE;
	if (!domain_ok(domain))
		return 0;
	if (++c->depth > SPF_DEPTH_MAX) {
		r = fail_with(c, res, SPF_PERMERROR, "too deep");
		c->depth--;
		return r < 0 ? r : 0;
	}
	r = fetch_record(c, domain, &txt, res);
	if (r == 0) {
		r = spf_parse(txt.s, txt.len, &rec, &why);
		if (r == -EINVAL)
			r = fail_with(c, res, SPF_PERMERROR, why);
		else if (r == 0) {
			r = evaluate(c, &rec, domain, res);
			spf_record_free(&rec);
		}
	}
	str_free(&txt);
	c->depth--;
	return r < 0 ? r : 0;
}

/* spf_result_free - the strings of a result */
void spf_result_free(struct spf_result *r)
{
	str_free(&r->domain);
	str_free(&r->mech);
	str_free(&r->why);
}

/* spf_check - the MAIL FROM identity, or HELO for "" (see spf.h) */
int spf_check(struct dns *d, const char *ip, const char *sender,
	      const char *helo, int timeout_ms, struct spf_result *out)
{
	struct str who = STR_INIT;
	struct ctx c;
	const char *at;
	int r;

	memset(out, 0, sizeof *out);
	memset(&c, 0, sizeof c);
	c.d = d;
	c.why = &out->why;
	c.mech = &out->mech;
	c.deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 20000);
	c.env.helo = helo ? helo : "";
	if (spf_env_ip(&c.env, ip) < 0)
		return -EINVAL;
	if (!sender)
		sender = "";
	out->helo = !*sender;
	if (strlen(sender) > SPF_INPUT_MAX || strlen(c.env.helo) > SPF_INPUT_MAX)
		return 0;	/* none: no real identity is that long */
	at = strrchr(sender, '@');
	r = str_copys(&out->domain, *sender ? (at ? at + 1 : sender) :
			c.env.helo);
	if (r == 0 && out->domain.len &&
	    out->domain.s[out->domain.len - 1] == '.')
		str_trunc(&out->domain, out->domain.len - 1);
	if (r == 0)	/* RFC 7208 4.3: no local part is postmaster */
		r = at && at != sender ?
		    str_catb(&who, sender, (size_t)(at - sender) + 1) :
		    str_cats(&who, "postmaster@");
	if (r == 0)
		r = str_cats(&who, out->domain.s);
	c.env.sender = who.s;
	dns_deadline(d, c.deadline);
	dns_names_visible(d, 1);
	if (r == 0)
		r = check_host(&c, out->domain.s, &out->res);
	dns_deadline(d, 0);
	dns_names_visible(d, 0);
	out->lookups = c.lookups;
	out->voids = c.voids;
	str_free(&who);
	str_free(&c.pname);
	if (r < 0)
		spf_result_free(out);
	return r < 0 ? -ENOMEM : 0;
}
