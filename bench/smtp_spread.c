/*
 * NAME
 *	smtp_spread - an SMTP load generator that spreads mail over many users
 *
 * SYNOPSIS
 *	smtp_spread [-s SESSIONS] [-m COUNT] [-l SIZE] [-u USERS] [-r RCPTS]
 *		[-f SENDER] [-d DOMAIN] HOST:PORT
 *
 * DESCRIPTION
 *	Sends COUNT messages of SIZE bytes (default 5000 of 4096) over
 *	SESSIONS parallel connections (default 20), one connection a message
 *	as smtp-source makes them: EHLO, MAIL, RCPTS recipients (default 1),
 *	DATA, QUIT. Message k goes to userJ@DOMAIN for J = (k x RCPTS + i)
 *	mod USERS + 1, i = 0..RCPTS-1, so the load covers user1..userUSERS
 *	evenly and each message's recipients are distinct.
 *
 *	Why not smtp-source: it sends every message to one address (or to
 *	numbered variants of one with -r), so bench/smtp_compare.py could
 *	spread mail over at most one user a session; over 1,000 users, one
 *	smtp-source a user cost the machine more CPU than the servers did.
 *
 *	Prints one line: `smtp_spread sent=N failed=F secs=S`.
 *
 * SECURITY
 *	A benchmark client for loopback servers; no privilege needed.
 *
 * EXIT STATUS
 *	0 every message accepted, 1 a reply that was not the one expected
 *	(the first is printed on stderr), 2 usage, 111 a system error.
 *
 * DIAGNOSTICS
 *	`smtp_spread: after COMMAND: REPLY` for the first unexpected reply
 *	(each failed message is counted in failed=).
 *
 * BUGS
 *	No TLS, no AUTH, no PIPELINING: it measures what smtp-source does.
 *
 * SEE ALSO
 *	bench/smtp_compare.py, ../shared/bench/smtp_e2e.py
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "conn.h"

#define REPLY_MAX 4096		/* one reply line, as RFC 5321 allows 512 */
#define TIMEOUT_S 60

struct opts {
	unsigned long sessions, count, size, users, rcpts;
	const char *sender, *domain;
	struct addrinfo *ai;
	struct str body;	/* the message, dot-stuffed, with its end */
};

static struct opts o = {20, 5000, 4096, 1000, 1, "bench@example.test",
			"example.test", NULL, STR_INIT};
static atomic_ulong next, failed;
static atomic_int told;

static _Noreturn void usage(void)
{
	fputs("usage: smtp_spread [-s SESSIONS] [-m COUNT] [-l SIZE] "
	      "[-u USERS] [-r RCPTS] [-f SENDER] [-d DOMAIN] HOST:PORT\n",
	      stderr);
	exit(2);
}

/* body - headers, then lines of 'x' to SIZE bytes, then the final dot */
static int body(struct str *b, unsigned long size)
{
	int r = str_catf(b, "From: <%s>\r\nSubject: spread\r\n\r\n", o.sender);

	while (r == 0 && b->len + 80 <= size)
		r = str_cats(b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n");
	if (r == 0)
		r = str_cats(b, ".\r\n");
	return r;
}

/* expect - read one (possibly multi-line) reply; 0 if it has code want */
static int expect(struct conn *c, struct str *line, const char *want,
		  const char *after)
{
	int r;

	do {
		r = conn_getline(c, line, REPLY_MAX);
		if (r < 0)
			return r;
	} while (line->len > 3 && line->s[3] == '-');
	if (line->len >= 3 && memcmp(line->s, want, 3) == 0)
		return 0;
	if (atomic_fetch_add(&told, 1) == 0)
		fprintf(stderr, "smtp_spread: after %s: %.*s\n", after,
			(int)(line->len > 200 ? 200 : line->len), line->s);
	return -EPROTO;
}

/* command - send the line PRE ARG POST and check its reply */
static int command(struct conn *c, struct str *line, const char *want,
		   const char *pre, const char *arg, const char *post)
{
	int r = conn_reply(c, "%s%s%s", pre, arg, post);

	if (r == 0)
		r = conn_flush(c);
	return r < 0 ? r : expect(c, line, want, pre);
}

/* rcpts - the RCPT commands of message k */
static int rcpts(struct conn *c, struct str *line, unsigned long k)
{
	char addr[64];
	int r = 0;

	for (unsigned long i = 0; r == 0 && i < o.rcpts; i++) {
		snprintf(addr, sizeof addr, "user%lu",
			 (k * o.rcpts + i) % o.users + 1);
		r = conn_reply(c, "RCPT TO:<%s@%s>", addr, o.domain);
		if (r == 0)
			r = conn_flush(c);
		if (r == 0)
			r = expect(c, line, "250", "RCPT");
	}
	return r;
}

/* one - one connection, one message */
static int one(unsigned long k, struct str *line)
{
	struct conn c;
	int fd = bench_connect(o.ai), r;

	if (fd < 0)
		return fd;
	conn_init(&c, fd, fd, TIMEOUT_S);
	r = expect(&c, line, "220", "connect");
	if (r == 0)
		r = command(&c, line, "250", "EHLO ", "spread.test", "");
	if (r == 0)
		r = command(&c, line, "250", "MAIL FROM:<", o.sender, ">");
	if (r == 0)
		r = rcpts(&c, line, k);
	if (r == 0)
		r = command(&c, line, "354", "DATA", "", "");
	if (r == 0)
		r = conn_put(&c, o.body.s, o.body.len);
	if (r == 0)
		r = conn_flush(&c);
	if (r == 0)
		r = expect(&c, line, "250", "the message");
	if (r == 0)
		r = command(&c, line, "221", "QUIT", "", "");
	conn_free(&c);
	close(fd);
	return r;
}

/* session - messages one after another until COUNT are taken */
static void *session(void *arg)
{
	struct str line = STR_INIT;
	unsigned long k;

	(void)arg;
	while ((k = atomic_fetch_add(&next, 1)) < o.count)
		if (one(k, &line) < 0)
			atomic_fetch_add(&failed, 1);
	str_free(&line);
	return NULL;
}

int main(int argc, char **argv)
{
	double secs;
	int c;

	while ((c = getopt(argc, argv, "s:m:l:u:r:f:d:")) != -1) {
		switch (c) {
		case 's': o.sessions = bench_opt(optarg, usage); break;
		case 'm': o.count = bench_opt(optarg, usage); break;
		case 'l': o.size = bench_opt(optarg, usage); break;
		case 'u': o.users = bench_opt(optarg, usage); break;
		case 'r': o.rcpts = bench_opt(optarg, usage); break;
		case 'f': o.sender = optarg; break;
		case 'd': o.domain = optarg; break;
		default: usage();
		}
	}
	if (optind + 1 != argc || o.sessions > 1000 || o.rcpts > o.users)
		usage();
	bench_aim("smtp_spread", argv[optind], usage, &o.ai);
	if (body(&o.body, o.size) < 0)
		exit(111);
	secs = bench_threads(o.sessions, session);
	printf("smtp_spread sent=%lu failed=%lu secs=%.3f\n",
	       o.count - atomic_load(&failed), atomic_load(&failed), secs);
	str_free(&o.body);
	freeaddrinfo(o.ai);
	return atomic_load(&failed) ? 1 : 0;
}
