/*
 * NAME
 *	pop3_load - a POP3 load client in C that is not the bottleneck
 *
 * SYNOPSIS
 *	pop3_load [-m retr|login] [-s SESSIONS] [-u USERS] [-n LOGINS]
 *		[-d DOMAIN] [-P PASSWORD] HOST:PORT
 *
 * DESCRIPTION
 *	Runs SESSIONS (default 20) POP3 sessions at once against HOST:PORT,
 *	as user1..userUSERS@DOMAIN (default 100 users of example.test) with
 *	PASSWORD (default bench-pass).
 *
 *	-m retr (default): each session takes the next user not yet taken,
 *	logs in (USER, PASS), asks STAT, then RETR and DELE of every
 *	message in turn, then QUIT (which commits the deletions), until
 *	every user has been taken once. Rate: messages retrieved and
 *	deleted a second of wall time.
 *
 *	-m login: LOGINS (default 2000) sessions of USER, PASS, QUIT; login
 *	k is user (k mod USERS) + 1. Rate: logins a second.
 *
 *	Each command waits for its reply, as poplib does (no pipelining),
 *	so the server sees what the shared Python client makes it see.
 *
 *	Why: the shared client (../shared/bench/pop3_bench.py) is one Python
 *	process whose threads share one interpreter lock and whose poplib
 *	reads a message line by line; at 7,000 messages a second it, not
 *	pop3d, set the pace. This client's sessions are threads of one
 *	process, each a blocking loop over lib/conn (every wait a poll(2)
 *	with a deadline), and it prints its own CPU time so that one can
 *	see how much of the machine it took.
 *
 *	Prints one line:
 *	`pop3_load mode=M sessions=S units=N msgs_per_s=R (or logins_per_s=R)
 *	bytes=B wall_s=W errors=E client_cpu_s=C client_cpu_ms_per_unit=X
 *	client_cores=Y` where Y is C / W, the share of a core it used.
 *
 * SECURITY
 *	A benchmark client for loopback servers; no privilege needed. It
 *	sends the password in the clear (no STLS).
 *
 * EXIT STATUS
 *	0 every session went as expected, 1 a reply that was not the one
 *	expected (the first is printed on stderr, each failed session
 *	counted in errors=), 2 usage, 111 a system error.
 *
 * DIAGNOSTICS
 *	`pop3_load: after COMMAND: REPLY` for the first unexpected reply,
 *	`pop3_load: after COMMAND: ERROR` for the first failed read or write.
 *
 * BUGS
 *	No TLS, no APOP, no AUTH: it measures USER/PASS in the clear.
 *
 * SEE ALSO
 *	bench/pop3d_bench.py (--client c), bench/smtp_spread.c
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "conn.h"
#include "num.h"

#define STATUS_MAX 4096		/* a status line; RFC 1939 allows 512 */
#define MSGLINE_MAX 1048576	/* a message line: bounded, but generous */
#define TIMEOUT_S 60

struct opts {
	unsigned long sessions, users, logins;
	int login_mode;
	const char *domain, *password;
	struct addrinfo *ai;
};

static struct opts o = {20, 100, 2000, 0, "example.test", "bench-pass",
			NULL};
static atomic_ulong next, failed, msgs, bytes;
static atomic_int told;

static _Noreturn void usage(void)
{
	fputs("usage: pop3_load [-m retr|login] [-s SESSIONS] [-u USERS] "
	      "[-n LOGINS] [-d DOMAIN] [-P PASSWORD] HOST:PORT\n", stderr);
	exit(2);
}

/* tell - the first failure of the run on stderr, the others counted */
static void tell(const char *after, const struct str *line, int r)
{
	if (atomic_fetch_add(&told, 1) != 0)
		return;
	if (line)
		fprintf(stderr, "pop3_load: after %s: %.*s\n", after,
			(int)(line->len > 200 ? 200 : line->len), line->s);
	else
		fprintf(stderr, "pop3_load: after %s: %s\n", after,
			strerror(-r));
}

/* status - read one status line; 0 if it is +OK */
static int status(struct conn *c, struct str *line, const char *after)
{
	int r = conn_getline(c, line, STATUS_MAX);

	if (r < 0) {
		tell(after, NULL, r);
		return r;
	}
	if (line->len >= 3 && memcmp(line->s, "+OK", 3) == 0)
		return 0;
	tell(after, line, 0);
	return -EPROTO;
}

/* exchange - send what the caller buffered with conn_reply(), read the
 * status line that answers it; 0 if +OK */
static int exchange(struct conn *c, int r, struct str *line, const char *after)
{
	if (r == 0)
		r = conn_flush(c);
	if (r < 0) {
		tell(after, NULL, r);
		return r;
	}
	return status(c, line, after);
}

/* body - read a multi-line answer to its final dot; the octets it
 * carried (dot-stuffed, CR LF counted as two) are added to *n_r */
static int body(struct conn *c, struct str *line, unsigned long *n_r)
{
	int r;

	for (;;) {
		r = conn_getline(c, line, MSGLINE_MAX);
		if (r < 0) {
			tell("RETR's text", NULL, r);
			return r;
		}
		if (line->len == 1 && line->s[0] == '.')
			return 0;
		*n_r += line->len + 2;
	}
}

/* stat_count - the message count of a +OK STAT answer ("+OK N SIZE") */
static int stat_count(const struct str *line, unsigned long *n_r)
{
	size_t j;
	uint64_t v;

	if (line->len < 5 || line->s[3] != ' ')
		return -EPROTO;
	for (j = 4; j < line->len && line->s[j] != ' '; j++)
		;
	if (num_parseb(line->s + 4, j - 4, 100000000, &v) < 0)
		return -EPROTO;
	*n_r = (unsigned long)v;
	return 0;
}

/* login - the greeting, then USER and PASS as user number k */
static int login(struct conn *c, struct str *line, unsigned long k)
{
	int r = status(c, line, "connect");

	if (r == 0)
		r = exchange(c, conn_reply(c, "USER user%lu@%s", k, o.domain),
			     line, "USER");
	if (r == 0)
		r = exchange(c, conn_reply(c, "PASS %s", o.password), line,
			     "PASS");
	return r;
}

/* drain - STAT, then RETR and DELE of every message */
static int drain(struct conn *c, struct str *line)
{
	unsigned long n, got = 0;
	int r = exchange(c, conn_reply(c, "STAT"), line, "STAT");

	if (r == 0 && stat_count(line, &n) < 0) {
		tell("STAT", line, 0);
		r = -EPROTO;
	}
	for (unsigned long i = 1; r == 0 && i <= n; i++) {
		r = exchange(c, conn_reply(c, "RETR %lu", i), line, "RETR");
		if (r == 0)
			r = body(c, line, &got);
		if (r == 0)
			r = exchange(c, conn_reply(c, "DELE %lu", i), line,
				     "DELE");
	}
	if (r == 0) {
		atomic_fetch_add(&msgs, n);
		atomic_fetch_add(&bytes, got);
	}
	return r;
}

/* one - one connection: a login, the mailbox's messages if retr, QUIT */
static int one(unsigned long k, struct str *line)
{
	struct conn c;
	int fd = bench_connect(o.ai), r;

	if (fd < 0) {
		tell("connect", NULL, fd);
		return fd;
	}
	conn_init(&c, fd, fd, TIMEOUT_S);
	r = login(&c, line, k);
	if (r == 0 && !o.login_mode)
		r = drain(&c, line);
	if (r == 0)
		r = exchange(&c, conn_reply(&c, "QUIT"), line, "QUIT");
	conn_free(&c);
	close(fd);
	return r;
}

/* session - sessions one after another until the work is taken */
static void *session(void *arg)
{
	struct str line = STR_INIT;
	unsigned long k, end = o.login_mode ? o.logins : o.users;

	(void)arg;
	while ((k = atomic_fetch_add(&next, 1)) < end)
		if (one(k % o.users + 1, &line) < 0)
			atomic_fetch_add(&failed, 1);
	str_free(&line);
	return NULL;
}

/* cpu_s - user plus system time of this process (all its threads) */
static double cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		exit(111);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* options - getopt into o; the target's index in argv */
static int options(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "m:s:u:n:d:P:")) != -1) {
		switch (c) {
		case 'm':
			if (strcmp(optarg, "retr") && strcmp(optarg, "login"))
				usage();
			o.login_mode = strcmp(optarg, "login") == 0;
			break;
		case 's': o.sessions = bench_opt(optarg, usage); break;
		case 'u': o.users = bench_opt(optarg, usage); break;
		case 'n': o.logins = bench_opt(optarg, usage); break;
		case 'd': o.domain = optarg; break;
		case 'P': o.password = optarg; break;
		default: usage();
		}
	}
	if (optind + 1 != argc || o.sessions > 1000)
		usage();
	return optind;
}

/* report - the one result line */
static void report(double wall, double cpu)
{
	unsigned long units = o.login_mode ? o.logins - atomic_load(&failed)
					   : atomic_load(&msgs);

	printf("pop3_load mode=%s sessions=%lu users=%lu units=%lu "
	       "%s=%.1f bytes=%lu wall_s=%.3f errors=%lu client_cpu_s=%.3f "
	       "client_cpu_ms_per_unit=%.4f client_cores=%.2f\n",
	       o.login_mode ? "login" : "retr", o.sessions, o.users, units,
	       o.login_mode ? "logins_per_s" : "msgs_per_s",
	       wall > 0 ? (double)units / wall : 0.0, atomic_load(&bytes),
	       wall, atomic_load(&failed), cpu,
	       units ? cpu * 1e3 / (double)units : 0.0,
	       wall > 0 ? cpu / wall : 0.0);
}

int main(int argc, char **argv)
{
	double c0, wall;

	bench_aim("pop3_load", argv[options(argc, argv)], usage, &o.ai);
	c0 = cpu_s();
	wall = bench_threads(o.sessions, session);
	report(wall, cpu_s() - c0);
	freeaddrinfo(o.ai);
	return atomic_load(&failed) ? 1 : 0;
}
