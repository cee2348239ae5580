/*
 * relay_decide - how long mta-smtpd takes to decide whether a client may
 * relay, with 10,000 POP-before-SMTP grants in open-smtp/.
 *
 * SYNOPSIS
 *	relay_decide [GRANTS]
 *
 * Makes a scratch root with the default relay rules compiled and GRANTS
 * (default 10,000) grant files for distinct IPv4 addresses, then times,
 * for each of those addresses and as many without a grant, what a session
 * does before its first RCPT: rules_lookup() (relayrules.cdb) and
 * check_pbs() (the grant file's age), the functions mta-smtpd calls.
 * Prints `relay_decide grants=.. us_per_decision=.. granted=..`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsx.h"
#include "rules.h"
#include "smtpd.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000, i;
	char tmpl[] = "/tmp/relay-bench-XXXXXX", ip[32];
	char *root = mkdtemp(tmpl);
	struct str p = STR_INIT, err = STR_INIT;
	struct rule ru = {0, 0, STR_INIT};
	unsigned long granted = 0, rules;
	double t0, t;

	if (!root)
		return 111;
	str_catf(&p, "%s/open-smtp", root);
	fsx_mkdir_p(p.s, 0700);
	p.len = 0;
	str_catf(&p, "%s/control", root);
	fsx_mkdir_p(p.s, 0755);
	p.len = 0;
	str_catf(&p, "%s/control/relayrules", root);
	if (fsx_write_atomic(p.s, "127.:allow,RELAYCLIENT=\"\"\n", 26, 0644) ||
	    rules_compile(root, &err, &rules) < 0)
		return 111;
	for (i = 0; i < n; i++) {
		p.len = 0;
		str_catf(&p, "%s/open-smtp/10.%lu.%lu.%lu", root, i >> 16 & 255,
			 i >> 8 & 255, i & 255);
		if (fsx_write_atomic(p.s, "", 0, 0600) < 0)
			return 111;
	}
	t0 = now();
	for (i = 0; i < 2 * n; i++) {
		/* every other client has no grant (11.x.y.z) */
		snprintf(ip, sizeof ip, "%d.%lu.%lu.%lu", i % 2 ? 11 : 10,
			 (i / 2) >> 16 & 255, (i / 2) >> 8 & 255, (i / 2) & 255);
		if (rules_lookup(root, ip, &ru) < 0)
			return 111;
		if (!rules_env(&ru, "RELAYCLIENT") && check_pbs(root, ip) == 1)
			granted++;
	}
	t = now() - t0;
	printf("relay_decide grants=%lu decisions=%lu us_per_decision=%.1f "
	       "granted=%lu\n", n, 2 * n, t * 1e6 / (double)(2 * n), granted);
	fsx_rmtree(root);
	rules_free(&ru);
	str_free(&p);
	str_free(&err);
	return granted == n ? 0 : 1;
}
