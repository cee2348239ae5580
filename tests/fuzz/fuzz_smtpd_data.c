/*
 * fuzz_smtpd_data - libFuzzer target for the DATA state machine of
 * mta-smtpd (data_receive in mta/smtpd/data.c), checked against a model.
 *
 * The input is what a client sends after "354". The model: the data ends
 * at the first ".\r\n" that starts the input or follows "\r\n"; with no
 * such end the client went away and nothing may be queued and nothing
 * said after 354. Before the end, a NUL, a CR not followed by LF or an LF
 * not preceded by CR must give 554 (whatever smuggling variant it is);
 * else a line over 1000 bytes with its CR LF gives 554; else a stored
 * size over databytes gives 552; else exactly one queue file whose
 * message, after the three lines of the Received header, is the data with
 * CR LF turned into LF, one leading dot of each line removed and, in its
 * header, each Authentication-Results field that claims our authserv-id
 * (RFC 8601 5) left out, and the reply is "250 2.0.0 ok ID" naming that
 * file. Nothing is ever left in queue/tmp. Which field claims it is
 * lib/authres's authres_claims() on the whole field (its own unit test
 * checks that rule): here the streaming filter, which sees the message in
 * pieces, must agree with it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authres.h"
#include "queue.h"
#include "scratch.h"
#include "smtpd.h"

#define DATABYTES 3000	/* below AUTHRES_FIELD_MAX: no field is too long */
#define ME "mx.fuzz.example"

/* skip_field - past the field NAME at P (with its continuation lines)
 * if P starts with it; else P */
static const char *skip_field(const char *p, const char *end,
			      const char *name)
{
	size_t n = strlen(name);

	if ((size_t)(end - p) < n || memcmp(p, name, n))
		return p;
	do {
		p = memchr(p, '\n', (size_t)(end - p));
		if (!p)
			abort();
		p++;
	} while (p < end && (*p == '\t' || *p == ' '));
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ready;

/* setup - a root with a queue and control/resolvers, made once */
static void setup(void)
{
	if (ready)
		return;
	scratch_smtpd("smtpd_data");
	ready = 1;
}

/* unforged - MSG (LF line ends) without the header fields that claim ME:
 * a field is a line not starting with SP or TAB and the lines after it
 * that do; the header ends at the first empty line */
static void unforged(struct str *msg)
{
	struct str out = STR_INIT;
	size_t i = 0, start, end;

	if (!msg->len)
		return;
	while (i < msg->len && msg->s[i] != '\n') {
		start = i;
		do {
			const char *nl = memchr(msg->s + i, '\n', msg->len - i);

			i = nl ? (size_t)(nl - msg->s) + 1 : msg->len;
		} while (i < msg->len && (msg->s[i] == ' ' ||
					  msg->s[i] == '\t'));
		end = i;
		if (!authres_claims(msg->s + start, end - start, ME) &&
		    str_catb(&out, msg->s + start, end - start) < 0)
			abort();
	}
	if (str_catb(&out, msg->s + i, msg->len - i) < 0)
		abort();
	str_free(msg);
	*msg = out;
}

/* model - the expected reply code and stored message (in *want) */
static int model(const uint8_t *d, size_t n, struct str *want)
{
	size_t i, end = n, start, size = 0;
	int bad = 0, toolong = 0;

	for (i = 0; i + 3 <= n; i++)
		if (!memcmp(d + i, ".\r\n", 3) &&
		    (i == 0 || (i >= 2 && !memcmp(d + i - 2, "\r\n", 2)))) {
			end = i;
			break;
		}
	if (end == n)
		return 0;	/* no end: the client went away */
	for (i = 0; i < end; i++)
		if (d[i] == 0 || (d[i] == '\r' && (i + 1 >= end ||
						   d[i + 1] != '\n')) ||
		    (d[i] == '\n' && (i == 0 || d[i - 1] != '\r')))
			bad = 1;
	if (bad)
		return 554;
	for (start = 0; start < end; start = i + 2) {
		const uint8_t *p = d + start;
		size_t len;

		i = start;
		while (d[i] != '\r')
			i++;
		len = i - start;
		if (len + 2 > SMTPD_TEXT_MAX)
			toolong = 1;
		if (len && p[0] == '.') {
			p++;
			len--;
		}
		if (str_catb(want, p, len) < 0 || str_catc(want, '\n') < 0)
			abort();
		size += len + 1;
	}
	if (toolong)
		return 554;
	if (size > DATABYTES)
		return 552;
	unforged(want);
	return 250;
}

/* queued - the one file in queue/new (removed), its message in *msg */
static int queued(struct str *msg, struct str *name)
{
	char p[512], buf[4096];
	struct dirent *de;
	DIR *d;
	int count = 0;

	snprintf(p, sizeof p, "%s/queue/tmp", scratch_root);
	d = opendir(p);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			abort();	/* something half-written */
	if (d)
		closedir(d);
	snprintf(p, sizeof p, "%s/queue/new", scratch_root);
	d = opendir(p);
	while (d && (de = readdir(d))) {
		struct qenv e;
		off_t off;
		uint64_t len;
		ssize_t k;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		count++;
		if (str_copys(name, de->d_name) < 0)
			abort();
		snprintf(p, sizeof p, "%s/queue/new/%s", scratch_root, de->d_name);
		fd = open(p, O_RDONLY);
		qenv_init(&e);
		if (fd < 0 || queue_read_env(fd, &e, &off, &len) < 0)
			abort();
		while ((k = pread(fd, buf, sizeof buf, off)) > 0) {
			if (str_catb(msg, buf, (size_t)k) < 0)
				abort();
			off += k;
		}
		close(fd);
		qenv_free(&e);
		unlink(p);
	}
	if (d)
		closedir(d);
	return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session s;
	struct str want = STR_INIT, msg = STR_INIT, name = STR_INIT;
	char out[4096], expect[64];
	const char *body, *r2;
	ssize_t k;
	int in, ofd, code, i;

	if (size > 100000)
		return 0;
	setup();
	in = memfd_create("in", 0);
	ofd = memfd_create("out", 0);
	if (in < 0 || ofd < 0 ||
	    (size && write(in, data, size) != (ssize_t)size) ||
	    lseek(in, 0, SEEK_SET) != 0)
		abort();
	memset(&s, 0, sizeof s);
	s.root = scratch_root;
	s.kind = PORT_SMTP;
	s.databytes = DATABYTES;
	s.esmtp = 1;
	s.mail = 1;
	qenv_init(&s.env);
	/* a whole hour for each wait: the input is all there, but a fuzzer at
	 * nice 19 on a busy machine can be left without CPU past a short
	 * deadline, which would look like a finding */
	conn_init(&s.c, in, ofd, 3600);
	if (str_copys(&s.me, ME) < 0 ||
	    str_copys(&s.ip, "192.0.2.1") < 0 ||
	    str_copys(&s.helo, "client.example") < 0 ||
	    str_copys(&s.env.sender, "a@b.example") < 0 ||
	    qenv_add_rcpt(&s.env, "bob@example.test") < 0)
		abort();
	code = model(data, size, &want);
	data_receive(&s);
	(void)conn_flush(&s.c);
	k = pread(ofd, out, sizeof out - 1, 0);
	if (k < 0)
		abort();
	out[k] = 0;
	if (strncmp(out, "354 ", 4) || !(r2 = strstr(out, "\r\n")))
		abort();
	r2 += 2;
	if (code == 0) {
		if (*r2 || queued(&msg, &name) != 0)
			abort();
	} else if (code != 250) {
		snprintf(expect, sizeof expect, "%d ", code);
		if (strncmp(r2, expect, 4) || queued(&msg, &name) != 0)
			abort();
	} else {
		if (queued(&msg, &name) != 1)
			abort();
		snprintf(expect, sizeof expect, "250 2.0.0 ok ");
		if (strncmp(r2, expect, 13) || strncmp(r2 + 13, name.s,
						       name.len) ||
		    strcmp(r2 + 13 + name.len, "\r\n"))
			abort();
		/* the MX path's Authentication-Results field first (its
		 * results on continuation lines), then our Received: */
		body = skip_field(msg.s, msg.s + msg.len,
				  "Authentication-Results: ");
		for (i = 0; i < 3; i++) {
			body = memchr(body, '\n', msg.len - (size_t)(body - msg.s));
			if (!body)
				abort();
			body++;
		}
		if (msg.len - (size_t)(body - msg.s) != want.len ||
		    (want.len && memcmp(body, want.s, want.len)))
			abort();
	}
	session_free(&s);
	str_free(&want);
	str_free(&msg);
	str_free(&name);
	close(in);
	close(ofd);
	return 0;
}
