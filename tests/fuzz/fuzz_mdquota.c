/*
 * fuzz_mdquota - libFuzzer target for the maildirsize parser
 * (lib/mdquota.c mdq_parse) and the quota rules built on it.
 *
 * Checked: a parsed file never has a negative usage or sums past the
 * bound that keeps them from overflowing; the first line of a parsed file
 * formats back (quota_format) to limits that parse to the same numbers;
 * a usage line made by mdq_line() and appended parses to the old sum
 * plus the line; mdq_over(), mdq_reached() and mdq_stale() run on
 * anything parsed without undefined behaviour.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mdquota.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* LLVMFuzzerTestOneInput - one input, the checks of the header */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str buf = STR_INIT, line = STR_INIT, lim = STR_INIT;
	struct mdq q, q2;

	if (mdq_parse((const char *)data, size, &q) < 0)
		return 0;
	if (q.bytes < 0 || q.msgs < 0 || q.bytes > INT64_MAX / 4 ||
	    q.msgs > INT64_MAX / 4)
		abort();
	(void)mdq_over(&q.limit, (uint64_t)q.bytes, (uint64_t)q.msgs, size,
		       1);
	(void)mdq_reached(&q.limit, (uint64_t)q.bytes, (uint64_t)q.msgs, 90);
	(void)mdq_stale(&q, size, 1000, &q.limit, size, 1);
	/* the limits, written as vdeliver writes them, read back the same */
	if (quota_format(&q.limit, &lim) < 0 || str_catc(&lim, '\n') < 0 ||
	    mdq_parse(lim.s, lim.len, &q2) < 0 ||
	    q2.limit.bytes != q.limit.bytes || q2.limit.msgs != q.limit.msgs)
		abort();
	/* an appended line adds up, unless the file ended in a cut line */
	if (size && data[size - 1] == '\n' && q.bytes < INT64_MAX / 4 - 4096 &&
	    q.msgs < INT64_MAX / 4 - 1) {
		if (str_catb(&buf, data, size) < 0 ||
		    mdq_line(&line, 4096, 1) < 0 ||
		    str_catb(&buf, line.s, line.len) < 0 ||
		    mdq_parse(buf.s, buf.len, &q2) < 0 ||
		    q2.bytes != q.bytes + 4096 || q2.msgs != q.msgs + 1 ||
		    q2.lines != q.lines + 1)
			abort();
	}
	str_free(&buf);
	str_free(&line);
	str_free(&lim);
	return 0;
}
