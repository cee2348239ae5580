/*
 * fuzz_srs - libFuzzer target for lib/srs: srs_reverse(), which reads the
 * SRS0 recipients that any client may send to mta-smtpd's RCPT.
 *
 * The first two bytes pick the day (so that the age check is reached with
 * every stamp), the rest is the address. Checked: an address accepted is
 * one srs_is() names; what it gives back is LOCAL@DOMAIN with no byte at
 * or below space and no angle bracket (lib/queue's rule for what enters the
 * queue); and that address, forwarded again on the same day, comes back
 * unchanged (the round trip).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue.h"
#include "srs.h"

#define ME "mx.here.test"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char key[] = "k1\0k2";
	struct str k = {(char *)key, sizeof key, sizeof key};
	struct str a = STR_INIT, out = STR_INIT, fwd = STR_INIT;
	struct str back = STR_INIT;
	time_t now;
	int r;

	if (size < 2)
		return 0;
	now = (time_t)(data[0] << 8 | data[1]) * 86400;
	if (str_copyb(&a, data + 2, size - 2) < 0)
		abort();
	if (strlen(a.s) != a.len)
		goto out;	/* the SMTP reader never passes a NUL */
	r = srs_reverse(&k, ME, a.s, now, &out);
	if (r != 0 && r != -EINVAL && r != -ETIMEDOUT)
		abort();
	if (r != 0)
		goto out;
	if (!srs_is(ME, a.s) || queue_addr_plain(out.s, out.len) < 0)
		abort();
	r = srs_forward(&k, ME, out.s, now, &fwd);
	if (r == 0 && (srs_reverse(&k, ME, fwd.s, now, &back) != 0 ||
		       strcasecmp(back.s, out.s)))
		abort();
out:
	str_free(&a);
	str_free(&out);
	str_free(&fwd);
	str_free(&back);
	return 0;
}
