/*
 * queue_fill - put N messages straight into a root's queue as mta-send
 * leaves a message it has tried once and deferred: queue/msg/HH/ID and
 * an ID.s whose one T line says "next try in DELAY seconds".
 *
 *	queue_fill ROOT N RCPT [BYTES [DELAY]]
 *
 * For the queue-scale bench (bench/queue_scale.py): a million messages
 * through SMTP would take most of an hour, and the figure measured is
 * what mta-send and mta-qstat do with a full queue, not how it filled.
 * Files are written with lib/queue's writer but not fsynced (a bench
 * set-up, not mail): run it as the mail user, or chown afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "qstatus.h"
#include "queue.h"

static void die(const char *what, int r)
{
	fprintf(stderr, "queue_fill: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(111);
}

int main(int argc, char **argv)
{
	struct qenv e;
	struct qwriter w;
	struct str body = STR_INIT, dst = STR_INIT, line = STR_INIT;
	struct stat st;
	struct timeval tv;
	unsigned long n, i, bytes = 1024, delay = 3600;
	unsigned h;
	int r, fd;

	if (argc < 4) {
		fprintf(stderr, "usage: queue_fill ROOT N RCPT [BYTES [DELAY]]\n");
		return 2;
	}
	n = strtoul(argv[2], NULL, 10);
	if (argc > 4)
		bytes = strtoul(argv[4], NULL, 10);
	if (argc > 5)
		delay = strtoul(argv[5], NULL, 10);
	for (h = 0; h < 256; h++) {
		dst.len = 0;
		if (str_catf(&dst, "%s/queue/msg/%02x", argv[1], h) < 0)
			die("memory", ENOMEM);
		if (mkdir(dst.s, 0700) < 0 && errno != EEXIST)
			die(dst.s, errno);
	}
	if (str_cats(&body, "Subject: queue scale\n\n") < 0)
		die("memory", ENOMEM);
	while (body.len < bytes)
		if (str_cats(&body, "0123456789abcdef0123456789abcdef0123456789"
			     "abcdef0123456789abcdef0123456789abcdef012\n") < 0)
			die("memory", ENOMEM);
	qenv_init(&e);
	if (str_copys(&e.sender, "bench@example.org") < 0 ||
	    qenv_add_rcpt(&e, argv[3]) < 0)
		die("envelope", EINVAL);
	for (i = 0; i < n; i++) {
		struct str id = STR_INIT;
		uint64_t now_us;
		unsigned char t[8];
		int k;

		r = qw_open(&w, argv[1], &e);
		if (r == 0)
			r = qw_body(&w, body.s, body.len);
		if (r < 0)
			die("write", r);
		for (k = 0; k < 8; k++)
			t[k] = (unsigned char)(w.body_len >> (8 * k));
		if (pwrite(w.fd, t, 8, w.len_pos) != 8 || fstat(w.fd, &st) < 0)
			die("write", errno);
		if (str_catf(&id, "%llx.%llx",
			     (unsigned long long)w.arrival_us,
			     (unsigned long long)st.st_ino) < 0 ||
		    queue_msg_path(&dst, argv[1], id.s, NULL) < 0)
			die("memory", ENOMEM);
		if (rename(w.tmp.s, dst.s) < 0)
			die(dst.s, errno);
		close(w.fd);
		w.fd = -1;
		qw_abort(&w);
		gettimeofday(&tv, NULL);
		now_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
		if (qstatus_line(&line, 'T', 0, now_us,
				 now_us + (uint64_t)delay * 1000000u,
				 "connection refused", 18) < 0 ||
		    str_cats(&dst, ".s") < 0)
			die("memory", ENOMEM);
		fd = open(dst.s, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || write(fd, line.s, line.len) != (ssize_t)line.len ||
		    close(fd) < 0)
			die(dst.s, errno);
		str_free(&id);
		if ((i + 1) % 100000 == 0)
			fprintf(stderr, "queue_fill: %lu\n", i + 1);
	}
	qenv_free(&e);
	str_free(&body);
	str_free(&dst);
	str_free(&line);
	return 0;
}
