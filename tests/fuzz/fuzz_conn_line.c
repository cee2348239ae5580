/*
 * fuzz_conn_line - libFuzzer target for the line reader of lib/conn
 * (conn_getline), the first parser every network byte of mta-smtpd,
 * pop3d and mta-remote goes through (it was fuzz_smtpd_line while the
 * reader was mta-smtpd's own).
 *
 * The first input byte picks the limit (512, SMTP's command line, or a
 * small one so the edge is easy to reach); the rest is what the peer
 * sends, read from a memfd in 16 KiB reads. An oracle walks the same
 * bytes: every line returned with 0 must be the input up to the next LF,
 * with the LF and one CR before it removed, and at most limit bytes
 * counting the line end; every -EMSGSIZE must be a line longer than the
 * limit, read to its end; a last line with no LF gives -EPIPE. So no byte is lost,
 * invented or taken into the wrong line, and a long line never
 * resynchronises in the middle (which would let its tail act as a
 * command).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conn.h"

#define CMD_MAX 512	/* RFC 5321 4.5.3.1.4, CR LF included */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conn c;
	struct str line = STR_INIT;
	const uint8_t *in;
	size_t n, pos = 0, max;
	int fd, r;

	if (size < 1 || size > 100000)
		return 0;
	max = data[0] & 1 ? CMD_MAX : 1 + (size_t)(data[0] >> 1) % 40;
	in = data + 1;
	n = size - 1;
	fd = memfd_create("in", 0);
	if (fd < 0 || write(fd, in, n) != (ssize_t)n || lseek(fd, 0, SEEK_SET))
		abort();
	/* a whole hour for each wait: the input is all there, but a fuzzer at
	 * nice 19 on a busy machine can be left without CPU past a short
	 * deadline, which would look like a finding */
	conn_init(&c, fd, fd, 3600);
	for (;;) {
		const uint8_t *lf = pos < n ? memchr(in + pos, '\n', n - pos)
					    : NULL;
		size_t raw = lf ? (size_t)(lf - (in + pos)) + 1 : 0;

		r = conn_getline(&c, &line, max);
		if (!lf) {
			if (r != -EPIPE)
				abort();
			break;
		}
		if (raw > max) {
			if (r != -EMSGSIZE)
				abort();
		} else {
			size_t want = raw - 1;

			if (want && in[pos + want - 1] == '\r')
				want--;
			if (r != 0 || line.len != want ||
			    (want && memcmp(line.s, in + pos, want)) ||
			    memchr(line.s ? line.s : "", '\n', line.len))
				abort();
		}
		pos += raw;
	}
	conn_free(&c);
	str_free(&line);
	close(fd);
	return 0;
}
