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
 *
 * The server also answers a TXT question for "ttlN..." with one record
 * of TTL N and counts every question it gets (in memory shared with the
 * test), so that dns_reuse() can be seen to keep answers for their TTL
 * (lib/dnscache): asked once while valid, asked again with TTL 0 or after
 * control/resolvers changed. dns_answer_ttl() is tried on messages built
 * by hand: cut short, looping pointers, no answer, TTLs with the top bit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "dns.h"
#include "dnscache.h"
#include "tinytest.h"

#define NX 250
#define SILENT 20
#define DEADLINE_MS 1500

static volatile unsigned *asked;	/* questions the server got (shared) */

/* ttl_answer - B (a question of N bytes) made the answer to "ttlN...":
 * one TXT record "v=x" with TTL N; its length */
static size_t ttl_answer(unsigned char *b, size_t n)
{
	static const unsigned char rr[] = {0xc0, 12, 0, 16, 0, 1};
	unsigned long ttl = strtoul((const char *)b + 16, NULL, 10);

	b[2] |= 0x80;
	b[3] = 0x80;			/* RA, NOERROR */
	b[7] = 1;			/* ANCOUNT */
	memcpy(b + n, rr, sizeof rr);
	n += sizeof rr;
	b[n++] = (unsigned char)(ttl >> 24);
	b[n++] = (unsigned char)(ttl >> 16);
	b[n++] = (unsigned char)(ttl >> 8);
	b[n++] = (unsigned char)ttl;
	b[n++] = 0;
	b[n++] = 4;			/* RDLENGTH */
	memcpy(b + n, "\3v=x", 4);
	return n + 4;
}

/* serve - the child: NXDOMAIN to "nx..." names, a TXT to "ttl...",
 * silence to the rest */
static _Noreturn void serve(int fd)
{
	unsigned char b[600];

	for (;;) {
		struct sockaddr_in from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(fd, b, 512, 0,
				     (struct sockaddr *)&from, &fl);

		if (n > 0)
			(*asked)++;
		if (n >= 20 && b[12] >= 4 && memcmp(b + 13, "ttl", 3) == 0) {
			size_t len = ttl_answer(b, (size_t)n);

			(void)sendto(fd, b, len, 0, (struct sockaddr *)&from,
				     fl);
			continue;
		}
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

	asked = mmap(NULL, sizeof *asked, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (asked == MAP_FAILED)
		return -1;
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

/* txt_asked - dns_txt(NAME) through the reused resolver: the number of
 * questions the server got for it (0: answered from the cache) */
static int txt_asked(const char *dir, const char *name, int *r_out)
{
	struct dns *d;
	struct str *txt = NULL;
	size_t n = 0;
	unsigned before = *asked;
	int r = dns_reuse(&d, dir, 2000);

	if (r == 0)
		r = dns_txt(d, name, &txt, &n);
	*r_out = r == 0 && (n != 1 || strcmp(txt[0].s, "v=x")) ? -EPROTO : r;
	dns_txt_free(txt, n);
	return (int)(*asked - before);
}

/* test_reuse - answers kept for their TTL, and forgotten on a change */
static void test_reuse(const char *dir, unsigned port)
{
	char path[256];
	int r;
	FILE *f;

	CHECK_INT("reuse_first_asks", txt_asked(dir, "ttl300.test", &r), 1);
	CHECK_INT("reuse_first_r", r, 0);
	CHECK_INT("reuse_kept", txt_asked(dir, "ttl300.test", &r), 0);
	CHECK_INT("reuse_kept_r", r, 0);
	CHECK_INT("reuse_kept_any_case", txt_asked(dir, "TTL300.test", &r),
		  0);
	CHECK_INT("reuse_ttl0_asks", txt_asked(dir, "ttl0.test", &r), 1);
	CHECK_INT("reuse_ttl0_asks_again", txt_asked(dir, "ttl0.test", &r),
		  1);
	CHECK_INT("reuse_ttl0_r", r, 0);
	/* a changed control/resolvers (here its size): forgotten, asked
	 * again (after the second the files are looked at again) */
	(void)snprintf(path, sizeof path, "%s/control/resolvers", dir);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "127.0.0.1:%u\n\n", port);
		(void)fclose(f);
	}
	(void)usleep(1100 * 1000);
	CHECK_INT("reuse_change_asks", txt_asked(dir, "ttl300.test", &r), 1);
	CHECK_INT("reuse_change_r", r, 0);
}

/* put16 - a big-endian 16-bit field */
static void put16(unsigned char *b, unsigned v)
{
	b[0] = (unsigned char)(v >> 8);
	b[1] = (unsigned char)v;
}

/* test_answer_ttl - dns_answer_ttl() on messages built by hand */
static void test_answer_ttl(void)
{
	/* header, question "a.b" TXT IN, two answers (pointer to the
	 * question's name) of TTL 300 and 0x80000005 (2181: 0) */
	unsigned char m[80] = {0};
	size_t n = 12;
	uint32_t ttl = 7;
	static const unsigned char q[] = {1, 'a', 1, 'b', 0, 0, 16, 0, 1};
	static const unsigned char a1[] = {0xc0, 12, 0, 16, 0, 1, 0, 0, 1, 44,
					   0, 2, 1, 'x'};
	static const unsigned char a2[] = {0xc0, 12, 0, 16, 0, 1, 0x80, 0, 0,
					   5, 0, 2, 1, 'y'};

	put16(m + 4, 1);
	memcpy(m + n, q, sizeof q);
	n += sizeof q;
	CHECK_INT("ttl_no_answer", dns_answer_ttl(m, n, &ttl), -ENODATA);
	put16(m + 6, 1);
	memcpy(m + n, a1, sizeof a1);
	CHECK_INT("ttl_one", dns_answer_ttl(m, n + sizeof a1, &ttl), 0);
	CHECK_INT("ttl_one_value", ttl, 300);
	CHECK_INT("ttl_cut", dns_answer_ttl(m, n + sizeof a1 - 1, &ttl),
		  -EINVAL);
	put16(m + 6, 2);
	memcpy(m + n + sizeof a1, a2, sizeof a2);
	CHECK_INT("ttl_least", dns_answer_ttl(m, n + sizeof a1 + sizeof a2,
					      &ttl), 0);
	CHECK_INT("ttl_top_bit_is_0", ttl, 0);
	CHECK_INT("ttl_short_header", dns_answer_ttl(m, 11, &ttl), -EINVAL);
	m[12] = 0x40;	/* a label type that does not exist */
	CHECK_INT("ttl_bad_label", dns_answer_ttl(m, n + sizeof a1, &ttl),
		  -EINVAL);
	m[12] = 63;	/* a label running past the end */
	CHECK_INT("ttl_label_past_end", dns_answer_ttl(m, n, &ttl), -EINVAL);
}

/* test_cache - put, get, expiry and clear of lib/dnscache itself */
static void test_cache(void)
{
	unsigned char m[40] = {0};
	static const unsigned char q[] = {1, 'c', 0, 0, 16, 0, 1};
	static const unsigned char a[] = {0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 10,
					  0, 2, 1, 'z'};
	const unsigned char *got;
	size_t n = 12, gn = 0;

	put16(m + 4, 1);
	put16(m + 6, 1);
	memcpy(m + n, q, sizeof q);
	n += sizeof q;
	memcpy(m + n, a, sizeof a);
	n += sizeof a;
	dnscache_put("c.test", 16, 1000, m, n);
	CHECK_INT("cache_hit", dnscache_get("C.TEST", 16, 1000, &got, &gn), 1);
	tt_check(gn == n && memcmp(got, m, n) == 0, "cache_same_bytes",
		 "%zu bytes", gn);
	CHECK_INT("cache_other_type", dnscache_get("c.test", 1, 1000, &got,
						   &gn), 0);
	CHECK_INT("cache_valid_to_ttl", dnscache_get("c.test", 16, 10999,
						     &got, &gn), 1);
	CHECK_INT("cache_expired", dnscache_get("c.test", 16, 11000, &got,
						&gn), 0);
	dnscache_clear();
	CHECK_INT("cache_cleared", dnscache_get("c.test", 16, 1000, &got,
						&gn), 0);
	dnscache_put("c.test", 16, 1000, m, n - 1);	/* cut: not kept */
	CHECK_INT("cache_bad_not_kept", dnscache_get("c.test", 16, 1000,
						     &got, &gn), 0);
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
	test_answer_ttl();
	test_cache();
	test_reuse(dir, port);
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
