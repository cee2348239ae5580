/*
 * fuzz_remote - libFuzzer target for mta-remote's parsers (mta/remote/):
 * the SMTP reply parser, the DATA writer, smtproutes and the result-line
 * cleaner, all fed what a hostile server or a bad control file could hold.
 *
 * Checked beyond "no crash": a reply's code is 200-599 and its kept text
 * stays within REPLY_MAX_TEXT plus one separator; the DATA writer gives
 * the same bytes whole and byte by byte, has no bare LF and no bare CR,
 * ends in CR LF . CR LF, and un-stuffed gives the input with its CRs as
 * spaces (bare in a queue file: never sent) and CR LF line ends; a
 * cleaned result is at most 500 printable bytes; a route found has a host
 * or says "use MX", and a port within 0-65535.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* check_reply - the input's lines as one server reply after another */
static void check_reply(const char *s, size_t n)
{
	struct reply rp = {0};
	size_t a = 0;
	int r = 0;

	reply_reset(&rp, 1);
	while (a < n) {
		const char *nl = memchr(s + a, '\n', n - a);
		size_t len = nl ? (size_t)(nl - (s + a)) : n - a;

		r = reply_feed(&rp, s + a, len);
		if (r < 0)
			reply_reset(&rp, 1);
		else if (rp.code < 200 || rp.code > 599)
			abort();
		if (rp.text.len > REPLY_MAX_TEXT + 3)
			abort();
		if (r == 1)
			reply_reset(&rp, 1);
		a += len + 1;
	}
	reply_free(&rp);
}

/* check_dot - the DATA writer, whole and byte by byte */
static void check_dot(const char *s, size_t n)
{
	struct str whole = STR_INIT, bytes = STR_INIT, back = STR_INIT;
	struct str plain = STR_INIT;
	struct dotstuff ds;
	size_t i;

	dot_start(&ds);
	if (dot_encode(&ds, s, n, &whole) || dot_finish(&ds, &whole))
		goto out;
	dot_start(&ds);
	for (i = 0; i < n; i++)
		if (dot_encode(&ds, s + i, 1, &bytes))
			goto out;
	if (dot_finish(&ds, &bytes))
		goto out;
	if (whole.len != bytes.len || memcmp(whole.s, bytes.s, whole.len))
		abort();
	if (whole.len < 3 || memcmp(whole.s + whole.len - 3, ".\r\n", 3) ||
	    (whole.len > 3 && memcmp(whole.s + whole.len - 5, "\r\n", 2)))
		abort();
	for (i = 0; i < whole.len; i++)
		if ((whole.s[i] == '\n' && (i == 0 || whole.s[i - 1] != '\r')) ||
		    (whole.s[i] == '\r' && (i + 1 == whole.len ||
					    whole.s[i + 1] != '\n')))
			abort();
	/* un-stuff: drop the end, undouble leading dots, CR LF to LF */
	for (i = 0; i + 3 < whole.len;) {
		size_t e = i;

		while (whole.s[e] != '\n')
			e++;
		if (whole.s[i] == '.')
			i++;
		(void)str_catb(&back, whole.s + i, e - 1 - i);
		(void)str_catc(&back, '\n');
		i = e + 1;
	}
	/* what comes back is the input with its CRs as spaces (all bare:
	 * the queue holds LF line ends) */
	for (i = 0; i < n; i++)
		(void)str_catc(&plain, s[i] == '\r' ? ' ' : s[i]);
	if (plain.len && plain.s[plain.len - 1] != '\n')
		(void)str_catc(&plain, '\n');
	if (back.len != plain.len ||
	    (back.len && memcmp(back.s, plain.s, back.len)))
		abort();
out:
	str_free(&whole);
	str_free(&bytes);
	str_free(&back);
	str_free(&plain);
}

/* check_route - the input as smtproutes lines, looked up for a domain */
static void check_route(const char *s, size_t n)
{
	struct route rt = {0, 0, {STR_INIT, 0, 0}, 0};
	char *copy = malloc(n + 1);
	size_t i, lines = 0;

	if (!copy)
		return;
	memcpy(copy, s, n);
	copy[n] = 0;
	for (i = 0; i < n; i++)
		if (copy[i] == '\n') {
			copy[i] = 0;
			lines++;
		}
	if (route_lookup(copy, lines, "a.example.test", &rt, NULL) == 0 &&
	    rt.found) {
		if (rt.use_mx != (rt.hp.host.len == 0) || rt.hp.port > 65535)
			abort();
	}
	route_free(&rt);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str out = STR_INIT;
	const char *s = (const char *)data;
	size_t i;

	check_reply(s, size);
	check_dot(s, size);
	check_route(s, size);
	result_clean(s, size, &out);
	if (out.len > 500)
		abort();
	for (i = 0; i < out.len; i++)
		if (out.s[i] < 32 || out.s[i] > 126)
			abort();
	str_free(&out);
	return 0;
}
