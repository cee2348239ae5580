/*
 * fuzz_hdrscan - libFuzzer target for the Delivered-To: and Received:
 * header scan (lib/hdrscan.c).
 *
 * The first byte chooses a piece size (1 to 256); the rest is the
 * message, scanned for two addresses, once whole and once in pieces.
 * Checked: both give the same verdict (counts, hop limit, match, CR LF,
 * bytes), a Received: count only when "received" occurs, the
 * field buffer stays bounded, and a match is only reported when the
 * matched address really occurs in the input (case-insensitively).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hdrscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char addrs[] = "bob@example.test\0a@b";

/* occurs - does a (case-insensitively) occur in the n bytes of p */
static int occurs(const uint8_t *p, size_t n, const char *a)
{
	size_t i, k = strlen(a);

	for (i = 0; i + k <= n; i++)
		if (strncasecmp((const char *)p + i, a, k) == 0)
			return 1;
	return 0;
}

/* LLVMFuzzerTestOneInput - one input, the checks of the header */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hdrscan whole, parts;
	size_t step, i;

	if (size < 1)
		return 0;
	step = (size_t)data[0] + 1;
	data++;
	size--;
	hdrscan_init(&whole, addrs, sizeof addrs);
	if (hdrscan_feed(&whole, data, size) < 0 || hdrscan_end(&whole) < 0)
		abort();
	hdrscan_init(&parts, addrs, sizeof addrs);
	for (i = 0; i < size; i += step)
		if (hdrscan_feed(&parts, data + i, size - i < step ?
				 size - i : step) < 0)
			abort();
	hdrscan_end(&parts);
	/* the hop count too: pieces give what the whole gives */
	if (whole.received != parts.received ||
	    hdrscan_looped(&whole, 0) != hdrscan_looped(&parts, 0))
		abort();
	if (whole.received && !occurs(data, size, "eceived"))
		abort();
	if (whole.delivered != parts.delivered || whole.match != parts.match ||
	    whole.crlf != parts.crlf || whole.bytes != size ||
	    parts.bytes != size)
		abort();
	if (whole.field.cap > 2 * HDRSCAN_FIELD_MAX + 64)
		abort();
	if (whole.match == 0 && !occurs(data, size, "bob@example.test"))
		abort();
	if (whole.match == 1 && !occurs(data, size, "a@b"))
		abort();
	if (whole.match >= 0 && whole.delivered == 0)
		abort();
	/* compared: the same in pieces, never past the bound or the count */
	if (whole.compared != parts.compared ||
	    whole.compared > HDRSCAN_DELIVERED_MAX ||
	    whole.compared > whole.delivered)
		abort();
	hdrscan_free(&whole);
	hdrscan_free(&parts);
	return 0;
}
