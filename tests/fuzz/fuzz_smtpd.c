/*
 * fuzz_smtpd - libFuzzer target for a whole mta-smtpd session.
 *
 * The input (after a first byte that picks the port kind and whether the
 * client relays) is what a client sends; session_run() reads it from a
 * memfd, so the command parser, the address parser, AUTH's base64 and the
 * DATA reader all see it, pipelined. Beyond the sanitizers it checks that
 * every reply line starts with a code and a space or dash, that nothing
 * is left half-written in queue/tmp, and that every queued file reads
 * back whole with no CR or NUL in the message (bare CR and NUL are
 * refused; CR LF is stored as LF).
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

#include "pw.h"
#include "queue.h"
#include "scratch.h"
#include "smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct str dummy = STR_INIT;

/* setup - a root with a queue and control/resolvers, made once */
static void setup(void)
{
	if (dummy.len)
		return;
	scratch_smtpd("smtpd");
	if (pw_hash("x", "sha512crypt", &dummy) < 0)
		abort();
}

/* check_queue - every queued file whole; none left in tmp; then empty it */
static void check_queue(void)
{
	char p[512];
	struct dirent *de;
	DIR *d;

	snprintf(p, sizeof p, "%s/queue/tmp", scratch_root);
	d = opendir(p);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			abort();
	if (d)
		closedir(d);
	snprintf(p, sizeof p, "%s/queue/new", scratch_root);
	d = opendir(p);
	while (d && (de = readdir(d))) {
		struct qenv e;
		off_t off;
		uint64_t len;
		char buf[4096];
		ssize_t n;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/queue/new/%s", scratch_root, de->d_name);
		fd = open(p, O_RDONLY);
		qenv_init(&e);
		if (fd < 0 || queue_read_env(fd, &e, &off, &len) < 0)
			abort();
		while ((n = pread(fd, buf, sizeof buf, off)) > 0) {
			if (memchr(buf, '\r', (size_t)n) ||
			    memchr(buf, 0, (size_t)n))
				abort();
			off += n;
		}
		close(fd);
		qenv_free(&e);
		unlink(p);
	}
	if (d)
		closedir(d);
}

/* check_replies - "DDD " or "DDD-" at the start of every reply line */
static void check_replies(int fd)
{
	char buf[65536];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	char *l, *e;

	if (n <= 0)
		return;
	buf[n] = 0;
	for (l = buf; (e = strstr(l, "\r\n")); l = e + 2)
		if (e - l < 4 || l[0] < '2' || l[0] > '5' ||
		    (l[3] != ' ' && l[3] != '-'))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session s;
	int in, out;

	if (size < 1 || size > 200000)
		return 0;
	setup();
	in = memfd_create("in", 0);
	out = memfd_create("out", 0);
	if (in < 0 || out < 0 ||
	    write(in, data + 1, size - 1) != (ssize_t)(size - 1) ||
	    lseek(in, 0, SEEK_SET) != 0)
		abort();
	memset(&s, 0, sizeof s);
	s.root = scratch_root;
	s.kind = data[0] & 1 ? PORT_SUBMISSION : PORT_SMTP;
	s.dummy_hash = dummy.s;
	s.databytes = 4096;
	qenv_init(&s.env);
	/* a whole hour for each wait: the input is all there, but a fuzzer at
	 * nice 19 on a busy machine can be left without CPU past a short
	 * deadline, which would look like a finding */
	conn_init(&s.c, in, out, 3600);
	if (str_copys(&s.me, "mx.fuzz.example") < 0 ||
	    str_copys(&s.ip, data[0] & 2 ? "127.0.0.1" : "192.0.2.1") < 0)
		abort();
	session_run(&s);
	check_replies(out);
	check_queue();
	session_free(&s);
	close(in);
	close(out);
	return 0;
}
