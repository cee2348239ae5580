/*
 * spfcheck - the SPF test driver of tests/integration/test_spf.py; not
 * installed, not a production program.
 *
 * SYNOPSIS
 *	spfcheck ROOT [TIMEOUT_MS [QUERY_TIMEOUT_MS]] < cases
 *
 * DESCRIPTION
 *	Asks DNS through the servers of ROOT/control/resolvers (lib/dns)
 *	and runs spf_check() for each line of stdin: IP, SENDER and HELO
 *	separated by tabs (SENDER empty for "<>"). Prints one line a case:
 *	the result, a tab, the deciding term or the error's reason, a tab,
 *	the milliseconds the check took. TIMEOUT_MS is the deadline of one
 *	check (default 20000), QUERY_TIMEOUT_MS that of one DNS try (1000).
 *
 * EXIT STATUS
 *	0, or 1 on a usage or system error (then a line on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dns.h"
#include "spf.h"

/* one_case - "IP\tSENDER\tHELO" (modified in place) */
static int one_case(struct dns *d, char *line, int timeout)
{
	struct spf_result res;
	char *sender = strchr(line, '\t'), *helo;
	int64_t t0 = now_ms();
	int r;

	if (!sender || !(helo = strchr(sender + 1, '\t')))
		return -EINVAL;
	*sender++ = 0;
	*helo++ = 0;
	r = spf_check(d, line, sender, helo, timeout, &res);
	if (r < 0)
		return r;
	printf("%s\t%s\t%lld\n", spf_res_name(res.res),
	       res.why.len ? res.why.s : res.mech.len ? res.mech.s : "-",
	       (long long)(now_ms() - t0));
	fflush(stdout);
	spf_result_free(&res);
	return 0;
}

int main(int argc, char **argv)
{
	struct dns *d;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r;

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: spfcheck ROOT [TIMEOUT_MS [QUERY_MS]]\n");
		return 1;
	}
	r = dns_open(&d, argv[1], argc > 3 ? atoi(argv[3]) : 1000);
	if (r < 0) {
		fprintf(stderr, "spfcheck: dns_open: %s\n", strerror(-r));
		return 1;
	}
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = 0;
		r = one_case(d, line, argc > 2 ? atoi(argv[2]) : 20000);
		if (r < 0) {
			fprintf(stderr, "spfcheck: %s: %s\n", line,
				strerror(-r));
			break;
		}
	}
	free(line);
	dns_close(d);
	return r < 0;
}
