/*
 * fuzz_rules - libFuzzer target for lib/rules: control/relayrules compiled
 * (rules_check, rules_compile) and looked up (rules_lookup), the rules
 * that decide which client may relay.
 *
 * The input is written as ROOT/control/relayrules in one scratch root made
 * once per process (on tmpfs when /dev/shm exists). Checked: rules_check
 * and rules_compile accept the same files and name the same bad rule; a
 * compiled file has one rule a kept line; and every rule's own address
 * (and a fixed few) is looked up against a model that knows nothing of
 * the CDB's keys: among the rules that cover the client, the most
 * specific wins (for IPv4 the longest text, as tcprules; for IPv6 the
 * most bits), the first of equals, else the empty rule, else "allow" with
 * no settings; its action and settings come back exactly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "rules.h"
#include "scratch.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* a rule as the model reads it */
struct mrule {
	const char *line;
	size_t alen;		/* the address: line[0, alen) */
	int allow;
	int v6;			/* 1: an IPv6 rule of bits bits */
	unsigned bits;
	unsigned char b[16];
	struct str env;		/* NAME=value\0... as rules_lookup gives */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	scratch_make("rules", "relayrules");
	return 0;
}

/* model_env - the settings after the action: ,NAME=value or
 * ,NAME="value" (quotes dropped), each "NAME=value\0" */
static void model_env(const char *p, struct str *env)
{
	while (*p == ',') {
		const char *s = ++p, *eq = NULL, *v, *ve;

		while (*p && *p != ',' && !eq) {
			if (*p == '=')
				eq = p;
			p++;
		}
		if (!eq)
			abort();	/* compiled, so NAME=value */
		v = eq + 1;
		if (*v == '"') {
			ve = strchr(++v, '"');
			p = ve + 1;
		} else {
			ve = v + strcspn(v, ",");
			p = ve;
		}
		if (str_catb(env, s, (size_t)(v - s) - (v[-1] == '"')) ||
		    str_catb(env, v, (size_t)(ve - v)) || str_catc(env, 0))
			abort();
	}
}

/* model_v6 - an IPv6 address part: /BITS, whole groups "a:b:", or exact */
static void model_v6(struct mrule *m)
{
	char buf[80];
	const char *slash = memchr(m->line, '/', m->alen);
	size_t n = slash ? (size_t)(slash - m->line) : m->alen, i;

	memcpy(buf, m->line, n);
	buf[n] = 0;
	m->bits = 128;
	if (slash) {
		m->bits = (unsigned)strtoul(slash + 1, NULL, 10);
	} else if (n > 1 && buf[n - 1] == ':' && buf[n - 2] != ':') {
		m->bits = 0;
		for (i = 0; i < n; i++)
			m->bits += buf[i] == ':' ? 16 : 0;
		buf[n] = ':';
		buf[n + 1] = 0;
	}
	if (inet_pton(AF_INET6, buf, m->b) != 1)
		abort();	/* compiled, so an address */
}

/* model_rule - read one compiled line */
static void model_rule(const char *line, struct mrule *m)
{
	const char *p = line, *act;

	for (;;) {
		p = strchr(p, ':');
		if (!p)
			abort();
		if ((!strncmp(p + 1, "allow", 5) && strchr(",", p[6])) ||
		    (!strncmp(p + 1, "deny", 4) && strchr(",", p[5])))
			break;
		p++;
	}
	m->line = line;
	m->alen = (size_t)(p - line);
	act = p + 1;
	m->allow = act[0] == 'a';
	m->v6 = memchr(line, ':', m->alen) != NULL;
	m->env = (struct str)STR_INIT;
	if (str_catb(&m->env, "", 0))
		abort();
	model_env(act + (m->allow ? 5 : 4), &m->env);
	if (m->v6)
		model_v6(m);
}

/* covers - how specific M is for client IP (v4 text or v6 bytes), or -1 */
static int covers(const struct mrule *m, const char *ip, int v6,
		  const unsigned char *b)
{
	const char *dash;
	size_t n = strlen(ip);
	unsigned i;

	if (m->alen == 0)
		return 0;
	if (v6 != m->v6)
		return -1;
	if (v6) {
		for (i = 0; i < m->bits; i++)
			if (((b[i / 8] ^ m->b[i / 8]) >> (7 - i % 8)) & 1)
				return -1;
		return 1 + (int)m->bits;
	}
	dash = memchr(m->line, '-', m->alen);
	if (dash) {
		/* A.B.C.X-Y: the client is the prefix and a number in range */
		const char *dot = dash;
		unsigned long lo, hi, v;
		char *e;

		while (*dot != '.')
			dot--;
		if (n <= (size_t)(dot + 1 - m->line) ||
		    memcmp(ip, m->line, (size_t)(dot + 1 - m->line)))
			return -1;
		ip += dot + 1 - m->line;
		if (!strchr("0123456789", *ip) || (ip[0] == '0' && ip[1]))
			return -1;
		v = strtoul(ip, &e, 10);
		lo = strtoul(dot + 1, NULL, 10);
		hi = strtoul(dash + 1, NULL, 10);
		return *e || v < lo || v > hi ? -1 : 1 + (int)n;
	}
	if (m->line[m->alen - 1] == '.')
		return n > m->alen && !memcmp(ip, m->line, m->alen) ?
		       1 + (int)m->alen : -1;
	return n == m->alen && !memcmp(ip, m->line, n) ? 1 + (int)n : -1;
}

/* check_lookup - rules_lookup(IP) against the model's choice */
static void check_lookup(const struct mrule *m, size_t n, const char *ip)
{
	struct rule got = {0, 0, STR_INIT};
	unsigned char b[16] = {0};
	const struct mrule *w = NULL;
	const char *want = "";
	size_t i, want_len = 0;
	int v6 = 0, best = -1, c;

	if (rules_lookup(scratch_root, ip, &got) < 0)
		abort();
	if (!strncmp(ip, "::ffff:", 7) && strchr(ip + 7, '.'))
		ip += 7;	/* an IPv4 client on an IPv6 socket */
	else if (strchr(ip, ':') && inet_pton(AF_INET6, ip, b) != 1)
		abort();	/* probes are addresses */
	else if (strchr(ip, ':'))
		v6 = 1;
	for (i = 0; i < n; i++) {
		c = covers(&m[i], ip, v6, b);
		if (c > best) {
			best = c;
			w = &m[i];
		}
	}
	if (w) {
		/* a rule without settings gives one empty setting */
		want = w->env.len ? w->env.s : "";
		want_len = w->env.len ? w->env.len : 1;
	}
	if (got.matched != (w != NULL) || got.allow != (w ? w->allow : 1) ||
	    got.env.len != want_len || memcmp(got.env.s, want, want_len))
		abort();
	rules_free(&got);
}

/* probe - a client address that a rule's address part names */
static void probe(const struct mrule *m, struct str *ip)
{
	char t[INET6_ADDRSTRLEN];
	const char *dash = memchr(m->line, '-', m->alen);

	ip->len = 0;
	if (m->v6) {
		if (!inet_ntop(AF_INET6, m->b, t, sizeof t) || str_cats(ip, t))
			abort();
	} else if (dash) {
		if (str_catb(ip, m->line, (size_t)(dash - m->line)))
			abort();
	} else if (str_catb(ip, m->line, m->alen) ||
		   (m->alen && m->line[m->alen - 1] == '.' &&
		    str_cats(ip, "7"))) {
		abort();
	}
}

/* check_compiled - the lookups of a file that compiled */
static void check_compiled(const struct str *lines, size_t count)
{
	static const char *const fixed[] = {
		"192.0.2.1", "127.0.0.1", "::1", "2001:db8::1",
		"::ffff:10.1.2.3", "fe80::1",
	};
	struct mrule *m = calloc(count + 1, sizeof *m);
	struct str ip = STR_INIT;
	size_t i, k, a;

	if (!m)
		abort();
	for (i = k = 0, a = 0; i < lines->len; i++)
		if (!lines->s[i]) {
			model_rule(lines->s + a, &m[k++]);
			a = i + 1;
		}
	if (k != count)
		abort();
	for (i = 0; i < count; i++) {
		probe(&m[i], &ip);
		check_lookup(m, count, ip.s);
	}
	for (i = 0; i < sizeof fixed / sizeof *fixed; i++)
		check_lookup(m, count, fixed[i]);
	for (i = 0; i < count; i++)
		str_free(&m[i].env);
	free(m);
	str_free(&ip);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str err = STR_INIT, err2 = STR_INIT, lines = STR_INIT;
	char want[32];
	unsigned long nrules = 0;
	size_t bad = 0, count = 0;
	int fd, r, r2;

	fd = open(scratch_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fsx_write_all(fd, data, size) < 0 || close(fd) < 0)
		abort();
	r = rules_check(scratch_root, &err, &bad);
	r2 = rules_compile(scratch_root, &err2, &nrules);
	if (r != r2 || (r != 0 && r != -EINVAL))
		abort();
	if (ctl_get_lines(scratch_root, "relayrules", &lines, &count) < 0)
		abort();
	if (r == -EINVAL) {
		/* both name the same rule, one of the file's */
		snprintf(want, sizeof want, "rule %zu '", bad);
		if (bad < 1 || bad > count || !err.len ||
		    strncmp(err2.s, want, strlen(want)))
			abort();
	} else {
		if (nrules != count)
			abort();
		check_compiled(&lines, count);
	}
	str_free(&err);
	str_free(&err2);
	str_free(&lines);
	return 0;
}
