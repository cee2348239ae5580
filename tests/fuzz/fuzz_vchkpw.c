/*
 * fuzz_vchkpw - libFuzzer target for vchkpw's input parser, cpw_parse():
 * whatever it accepts is within CPW_MAX bytes, its user and password lie
 * inside the input, the user has no NUL and ends at one, and the
 * password ends at a NUL that is also inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vchkpw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly SIZE bytes, so that ASan sees any overread */
	char *buf = malloc(size ? size : 1);
	struct cpw_in in;
	size_t plen;

	if (!buf)
		abort();
	memcpy(buf, data, size);
	if (cpw_parse(buf, size, &in) == 0) {
		if (size > CPW_MAX || in.user != buf || in.ulen >= size ||
		    memchr(in.user, 0, in.ulen) || buf[in.ulen] != 0 ||
		    in.pass != buf + in.ulen + 1)
			abort();
		plen = strnlen(in.pass, size - in.ulen - 1);
		if (plen == size - in.ulen - 1)
			abort();
	}
	free(buf);
	return 0;
}
