/*
 * test_dns - lib/dns.h dns_batch(): many questions in flight, one
 * deadline, against a small DNS server of the test's own (a child on a
 * loopback UDP port) that answers NXDOMAIN to every name whose first
 * label begins with "nx" and never answers the others.
 *
 * What it proves: more questions than DNS_BATCH_WINDOW are all asked
 * and answered (-ENOENT), the silent ones end as -ETIMEDOUT by the
 * deadline and no later, an invalid name is -EINVAL without being
 * asked, and an empty batch is a no-op.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "dns.h"
#include "tinytest.h"

#define NX 250
#define SILENT 20
#define DEADLINE_MS 1500

/* serve - the child: NXDOMAIN to "nx..." names, silence to the rest */
static _Noreturn void serve(int fd)
{
	unsigned char b[512];

	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(fd, b, sizeof b, 0,
				     (struct sockaddr *)&from, &fl);

		if (n < 17 || b[12] < 2 || memcmp(b + 13, "nx", 2) != 0)
			continue;
		b[2] |= 0x80;			/* QR: a response */
		b[3] = (unsigned char)((b[3] & 0xf0) | 3);	/* NXDOMAIN */
		(void)sendto(fd, b, (size_t)n, 0, (struct sockaddr *)&from,
			     fl);
	}
}

/* server - fork the child on a free loopback port; its pid, *port_r */
static pid_t server(unsigned *port_r)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	pid_t pid;

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port_r = ntohs(a.sin_port);
	pid = fork();
	if (pid == 0)
		serve(fd);
	(void)close(fd);
	return pid;
}

/* root_with - a temporary root whose control/resolvers names PORT */
static int root_with(char *dir, unsigned port)
{
	char path[256];
	FILE *f;

	if (!mkdtemp(dir))
		return -1;
	(void)snprintf(path, sizeof path, "%s/control", dir);
	if (mkdir(path, 0700) < 0)
		return -1;
	(void)snprintf(path, sizeof path, "%s/control/resolvers", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "127.0.0.1:%u\n", port);
	return fclose(f) == 0 ? 0 : -1;
}

/* test_batch - NX answered, SILENT timed out, one bad name */
static void test_batch(struct dns *d)
{
	enum { N = NX + SILENT + 1 };
	static char names[N][32];
	struct dns_q q[N];
	size_t i, nx = 0, late = 0;
	int64_t t0, took;
	int r;

	memset(q, 0, sizeof q);
	for (i = 0; i < N; i++) {
		if (i < NX)
			(void)snprintf(names[i], sizeof names[i], "nx%zu.test",
				       i);
		else if (i < NX + SILENT)
			(void)snprintf(names[i], sizeof names[i],
				       "silent%zu.test", i);
		else
			(void)snprintf(names[i], sizeof names[i], "a b.test");
		q[i].name = names[i];
		q[i].type = i % 2 ? DNS_Q_ADDRS : DNS_Q_MX;
	}
	t0 = now_ms();
	r = dns_batch(d, q, N, t0 + DEADLINE_MS);
	took = now_ms() - t0;
	CHECK_INT("batch_r", r, 0);
	for (i = 0; i < NX; i++)
		nx += q[i].r == -ENOENT;
	for (; i < NX + SILENT; i++)
		late += q[i].r == -ETIMEDOUT;
	CHECK_INT("batch_nx_all_answered", nx, NX);
	CHECK_INT("batch_silent_timed_out", late, SILENT);
	CHECK_INT("batch_bad_name", q[N - 1].r, -EINVAL);
	tt_check(took >= DEADLINE_MS - 5 && took < DEADLINE_MS + 500,
		 "batch_ends_at_deadline", "took %lld ms", (long long)took);
	dns_batch_free(q, N);
	CHECK_INT("batch_empty", dns_batch(d, q, 0, now_ms()), 0);
}

int main(void)
{
	char dir[] = "/tmp/test_dns.XXXXXX";
	struct dns *d = NULL;
	unsigned port = 0;
	pid_t pid = server(&port);
	int r;

	if (pid < 0 || root_with(dir, port) < 0) {
		tt_check(0, "setup", "%s", strerror(errno));
		return tt_exit();
	}
	/* tries of 2 s: only the deadline ends the silent questions */
	r = dns_open(&d, dir, 2000);
	CHECK_INT("open", r, 0);
	if (r == 0)
		test_batch(d);
	dns_close(d);
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
	{
		char path[256];

		(void)snprintf(path, sizeof path, "%s/control/resolvers", dir);
		(void)unlink(path);
		(void)snprintf(path, sizeof path, "%s/control", dir);
		(void)rmdir(path);
		(void)rmdir(dir);
	}
	return tt_exit();
}
