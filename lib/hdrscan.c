/*
 * hdrscan - Delivered-To: and Received: fields of a message header (see
 * hdrscan.h).
 */
#include "hdrscan.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define FD_CHUNK 8192	/* a header is read in pieces this big */

/* hdrscan_init - start scanning for the addresses of a NUL-separated list */
void hdrscan_init(struct hdrscan *h, const char *addrs, size_t addrs_len)
{
	memset(h, 0, sizeof *h);
	h->addrs = addrs;
	h->addrs_len = addrs_len;
	h->first_line = 1;
	h->match = -1;
}

/* is_wsp - RFC 5322 white space: a continuation line starts with it */
static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* compare - a Delivered-To: value against the list */
static void compare(struct hdrscan *h, const char *v, size_t n)
{
	size_t i;
	long k = 0;

	while (n && is_wsp(*v)) {
		v++;
		n--;
	}
	while (n && is_wsp(v[n - 1]))
		n--;
	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		v++;
		n -= 2;
	}
	for (i = 0; i < h->addrs_len; k++) {
		const char *a = h->addrs + i;
		size_t alen = strnlen(a, h->addrs_len - i);

		if (alen == n && n && strncasecmp(a, v, n) == 0) {
			if (h->match < 0)
				h->match = k;
			return;
		}
		i += alen + 1;
	}
}

/* field_end - a complete field: count and compare it, or end the header
 * when it is not a field at all (the first line of a body) */
static void field_end(struct hdrscan *h)
{
	const char *f = h->field.s, *colon;
	size_t n = h->field.len, name, i;

	if (n == 0)
		return;
	colon = memchr(f, ':', n);
	if (!colon) {
		h->done = 1;
		return;
	}
	name = (size_t)(colon - f);
	while (name && is_wsp(f[name - 1]))
		name--;	/* RFC 5322 obs-optional: "Name :" */
	if (name == 0) {
		h->done = 1;
		return;
	}
	for (i = 0; i < name; i++) {
		unsigned char c = (unsigned char)f[i];

		if (c <= ' ' || c >= 0x7f) {
			h->done = 1;
			return;
		}
	}
	/* counted whatever its length: a long trace line is still a hop */
	if (name == 8 && strncasecmp(f, "received", 8) == 0)
		h->received++;
	if (name == 12 && strncasecmp(f, "delivered-to", 12) == 0) {
		h->delivered++;
		if (!h->too_long && h->match < 0 &&
		    h->delivered <= HDRSCAN_DELIVERED_MAX) {
			h->compared++;
			compare(h, colon + 1, n - (size_t)(colon + 1 - f));
		}
	}
}

/* field_add - one byte of the current field, up to the bound */
static int field_add(struct hdrscan *h, char c)
{
	if (h->field.len >= HDRSCAN_FIELD_MAX) {
		h->too_long = 1;
		return 0;
	}
	return str_catc(&h->field, c);
}

/* hdrscan_feed - the next piece of the message */
int hdrscan_feed(struct hdrscan *h, const void *buf, size_t n)
{
	const char *p = buf;
	size_t i;

	h->bytes += n;
	for (i = 0; i < n && !h->done; i++) {
		char c = p[i];

		if (c == '\n') {
			if (h->first_line) {
				h->first_line = 0;
				h->crlf = h->last_cr;
			}
			/* an empty line, "" or "\r": the header is over */
			if (h->line_len == 0 ||
			    (h->line_len == 1 && h->last_cr)) {
				field_end(h);
				h->done = 1;
				break;
			}
			h->line_len = 0;
			h->last_cr = 0;
			continue;
		}
		if (h->line_len++ == 0 && !is_wsp(c)) {
			/* a new field begins, so the previous one is whole */
			field_end(h);
			if (h->done)
				break;
			h->field.len = 0;
			h->too_long = 0;
		} else if (h->line_len == 1 && h->field.len == 0) {
			/* a continuation line with nothing to continue */
			h->done = 1;
			break;
		}
		/* unfolding drops CR LF; a CR before anything else is a byte
		 * of the field like any other */
		if (h->last_cr && field_add(h, '\r') < 0)
			return -ENOMEM;
		h->last_cr = c == '\r';
		if (!h->last_cr && field_add(h, c) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* hdrscan_end - the message has ended: judge the last field */
int hdrscan_end(struct hdrscan *h)
{
	if (!h->done) {
		if (h->last_cr && field_add(h, '\r') < 0)
			return -ENOMEM;
		field_end(h);
		h->done = 1;
	}
	return 0;
}

/* hdrscan_free - release the field buffer */
void hdrscan_free(struct hdrscan *h)
{
	str_free(&h->field);
}

/* hdrscan_looped - more Received: fields than HDRSCAN_HOPS_MAX hops allow,
 * OWN of them being this host's own trace lines */
int hdrscan_looped(const struct hdrscan *h, unsigned own)
{
	return h->received > (unsigned long)HDRSCAN_HOPS_MAX + own;
}

/* hdrscan_fd - the header of a message stored at OFF in FD, LEN bytes;
 * the scan ends where the header does, not at the end of the message */
int hdrscan_fd(struct hdrscan *h, int fd, off_t off, uint64_t len)
{
	char buf[FD_CHUNK];
	ssize_t got;
	int r;

	while (len && !h->done) {
		got = pread(fd, buf, len < sizeof buf ? (size_t)len : sizeof buf,
			    off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			break;	/* shorter than said: judge what is there */
		if ((r = hdrscan_feed(h, buf, (size_t)got)) < 0)
			return r;
		off += got;
		len -= (uint64_t)got;
	}
	return hdrscan_end(h);
}
