/*
 * test_limit - lib/peer.h and lib/limit.h: client addresses as text,
 * loopback, the /64 grouping, the failed-login counters (shared across
 * fork, seeded, bounded, with their eviction rule and delay schedule)
 * and the session table that counts maxperip; lib/grant.h: the
 * POP-before-SMTP grant file of a login.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "grant.h"
#include "limit.h"
#include "peer.h"
#include "tinytest.h"

/* check_u - one unsigned result against what it should be */
static void check_u(const char *name, unsigned long got, unsigned long want)
{
	tt_check(got == want, name, "got %lu, want %lu", got, want);
}

/* test_text - peer_text on each family, mapped, too small, unknown */
static void test_text(void)
{
	struct sockaddr_in s4;
	struct sockaddr_in6 s6;
	struct sockaddr sa;
	char ip[PEER_TEXT_MAX], small[8];
	int r;

	memset(&s4, 0, sizeof s4);
	s4.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
	r = peer_text((struct sockaddr *)&s4, sizeof s4, ip, sizeof ip);
	tt_check(r == 0 && !strcmp(ip, "192.0.2.7"), "text_v4", "%d %s", r, ip);
	memset(&s6, 0, sizeof s6);
	s6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &s6.sin6_addr);
	r = peer_text((struct sockaddr *)&s6, sizeof s6, ip, sizeof ip);
	tt_check(r == 0 && !strcmp(ip, "192.0.2.7"), "text_mapped", "%d %s",
		 r, ip);
	inet_pton(AF_INET6, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
		  &s6.sin6_addr);
	r = peer_text((struct sockaddr *)&s6, sizeof s6, ip, sizeof ip);
	tt_check(r == 0 && !strcmp(ip, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
		 "text_v6", "%d %s", r, ip);
	check_u("text_small", (unsigned long)-peer_text((struct sockaddr *)&s6,
		sizeof s6, small, sizeof small), ENOSPC);
	check_u("text_short_len", (unsigned long)-peer_text(
		(struct sockaddr *)&s6, sizeof s4, ip, sizeof ip), EAFNOSUPPORT);
	memset(&sa, 0, sizeof sa);
	sa.sa_family = AF_UNIX;
	check_u("text_unix", (unsigned long)-peer_text(&sa, sizeof sa, ip,
		sizeof ip), EAFNOSUPPORT);
}

/* test_inetd - the peer of a TCP socket, else $TCPREMOTEIP if it is an
 * address, else none */
static void test_inetd(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	char ip[PEER_TEXT_MAX] = "x";
	int p[2], l, c = -1, r;

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l >= 0 && bind(l, (struct sockaddr *)&a, sizeof a) == 0 &&
	    listen(l, 1) == 0 &&
	    getsockname(l, (struct sockaddr *)&a, &len) == 0 &&
	    (c = socket(AF_INET, SOCK_STREAM, 0)) >= 0 &&
	    connect(c, (struct sockaddr *)&a, sizeof a) == 0) {
		setenv("TCPREMOTEIP", "192.0.2.9", 1);
		r = peer_inetd(c, ip, sizeof ip);
		tt_check(r == 0 && !strcmp(ip, "127.0.0.1"), "inetd_socket",
			 "%d %s", r, ip);
	} else {
		tt_check(0, "inetd_socket", "no loopback socket");
	}
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
	if (pipe(p) < 0)
		return;
	setenv("TCPREMOTEIP", "2001:db8::7", 1);
	r = peer_inetd(p[0], ip, sizeof ip);
	tt_check(r == 0 && !strcmp(ip, "2001:db8::7"), "inetd_env", "%d %s",
		 r, ip);
	setenv("TCPREMOTEIP", "../../etc/passwd", 1);
	r = peer_inetd(p[0], ip, sizeof ip);
	tt_check(r == -ENOENT && !*ip, "inetd_env_not_address", "%d %s", r, ip);
	unsetenv("TCPREMOTEIP");
	r = peer_inetd(p[0], ip, sizeof ip);
	tt_check(r == -ENOENT && !*ip, "inetd_none", "%d %s", r, ip);
	close(p[0]);
	close(p[1]);
}

/* test_parse - peer_parse: addresses in their one spelling, nothing
 * else (the text becomes a file name in open-smtp/) */
static void test_parse(void)
{
	static const struct { const char *in, *want; } c[] = {
		{"192.0.2.7", "192.0.2.7"}, {"::1", "::1"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:DB8:0:0::7", "2001:db8::7"},
		{"../x", NULL}, {"", NULL}, {"192.0.2.7/24", NULL},
		{"1.2.3.4 ", NULL}, {"local", NULL}, {"0x7f.1", NULL},
	};
	char ip[PEER_TEXT_MAX], small[4];
	size_t i;
	int r;

	for (i = 0; i < sizeof c / sizeof c[0]; i++) {
		r = peer_parse(c[i].in, ip, sizeof ip);
		tt_check(c[i].want ? r == 0 && !strcmp(ip, c[i].want) :
			 r == -EINVAL && !*ip,
			 tt_name("parse_%s", *c[i].in ? c[i].in : "empty"),
			 "%d %s", r, ip);
	}
	r = peer_parse("192.0.2.7", small, sizeof small);
	tt_check(r == -ENOSPC && !*small, "parse_small", "%d", r);
}

/* test_grant - open-smtp/IP made, its mtime refreshed; never a name that
 * is not an address in its one spelling, never through a link */
static void test_grant(void)
{
	char root[] = "/tmp/test_grant.XXXXXX", p[256], q[256];
	struct stat st;
	struct timespec old[2] = {{1000, 0}, {1000, 0}};

	if (!tt_check(mkdtemp(root) != NULL, "grant_tmp", "mkdtemp"))
		return;
	snprintf(p, sizeof p, "%s/open-smtp", root);
	mkdir(p, 0700);
	check_u("grant_new", (unsigned long)-grant_touch(root, "192.0.2.7"), 0);
	snprintf(p, sizeof p, "%s/open-smtp/192.0.2.7", root);
	tt_check(stat(p, &st) == 0 && st.st_size == 0 &&
		 (st.st_mode & 0777) == 0600, "grant_file", "%s", p);
	utimensat(AT_FDCWD, p, old, 0);
	check_u("grant_again", (unsigned long)-grant_touch(root, "192.0.2.7"),
		0);
	tt_check(stat(p, &st) == 0 && st.st_mtime > 1000, "grant_mtime",
		 "%ld", (long)st.st_mtime);
	check_u("grant_local", (unsigned long)-grant_touch(root, ""), 0);
	check_u("grant_dotdot", (unsigned long)-grant_touch(root, "../x"),
		EINVAL);
	check_u("grant_mapped", (unsigned long)-grant_touch(root,
		"::ffff:192.0.2.7"), EINVAL);
	snprintf(q, sizeof q, "%s/open-smtp/192.0.2.8", root);
	tt_check(symlink("/nonexistent-grant-target", q) == 0,
		 "grant_symlink_made", "%s", q);
	/* the link's own time may change; its target is never made */
	(void)grant_touch(root, "192.0.2.8");
	tt_check(access("/nonexistent-grant-target", F_OK) < 0,
		 "grant_symlink", "followed");
	unlink(q);
	unlink(p);
	snprintf(p, sizeof p, "%s/open-smtp", root);
	rmdir(p);
	rmdir(root);
}

/* test_loopback - 127/8 and ::1, nothing else */
static void test_loopback(void)
{
	static const struct { const char *ip; int want; } c[] = {
		{"127.0.0.1", 1}, {"127.200.3.4", 1}, {"::1", 1},
		{"::ffff:127.0.0.1", 1}, {"10.0.0.1", 0}, {"128.0.0.1", 0},
		{"126.255.255.255", 0}, {"::2", 0}, {"::", 0},
		{"127.0.0.1x", 0}, {"", 0}, {"local", 0},
	};
	size_t i;

	for (i = 0; i < sizeof c / sizeof c[0]; i++)
		check_u(tt_name("loopback_%s", *c[i].ip ? c[i].ip : "empty"),
			(unsigned long)peer_loopback(c[i].ip),
			(unsigned long)c[i].want);
}

/* same_group - whether two texts count as one client */
static int same_group(const char *a, const char *b)
{
	struct peer_group ga, gb;

	peer_group(a, &ga);
	peer_group(b, &gb);
	return ga.fam == gb.fam && ga.bits == gb.bits;
}

/* test_group - IPv4 by address, IPv6 by /64, mapped as IPv4 */
static void test_group(void)
{
	static const struct { const char *a, *b; int want; } c[] = {
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", 1},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", 0},
		{"2001:db8:1:2::1", "2001:db9:1:2::1", 0},
		{"192.0.2.1", "192.0.2.1", 1},
		{"192.0.2.1", "192.0.2.2", 0},
		{"192.0.2.1", "::ffff:192.0.2.1", 1},
		{"0.0.0.0", "::", 0},
		{"0.0.0.0", "", 0},
		{"", "local", 1},
	};
	struct peer_group g;
	size_t i;

	for (i = 0; i < sizeof c / sizeof c[0]; i++)
		check_u(tt_name("group_%zu", i),
			(unsigned long)same_group(c[i].a, c[i].b),
			(unsigned long)c[i].want);
	peer_group("192.0.2.1", &g);
	tt_check(g.fam == 4 && g.bits == 0xc0000201u, "group_v4_bits",
		 "fam %u bits %llx", g.fam, (unsigned long long)g.bits);
	peer_group("2001:db8:1:2:3:4:5:6", &g);
	tt_check(g.fam == 6 && g.bits == 0x20010db800010002ull,
		 "group_v6_bits", "fam %u bits %llx", g.fam,
		 (unsigned long long)g.bits);
}

/* test_delay - the one schedule: 250 ms doubling, at most 5 s */
static void test_delay(void)
{
	static const unsigned c[][2] = {
		{0, 0}, {1, 250}, {2, 500}, {3, 1000}, {4, 2000}, {5, 4000},
		{6, 5000}, {1000, 5000}, {UINT32_MAX, 5000},
	};
	size_t i;

	for (i = 0; i < sizeof c / sizeof c[0]; i++)
		check_u(tt_name("delay_%u", c[i][0]), limit_delay_ms(c[i][0]),
			c[i][1]);
}

/* test_wait - limit_wait sleeps the schedule's time */
static void test_wait(void)
{
	struct timespec t0, t1;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	limit_wait(0);
	limit_wait(1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	tt_check(ms >= 250 && ms < 2000, "wait_1", "%ld ms, want 250", ms);
}

/* test_counts - counting by group, key spaces apart, a NULL table */
static void test_counts(struct limit *l)
{
	unsigned i;

	check_u("count_none", limit_get_ip(l, "192.0.2.1"), 0);
	check_u("count_add_1", limit_add_ip(l, "192.0.2.1"), 1);
	check_u("count_add_2", limit_add_ip(l, "192.0.2.1"), 2);
	check_u("count_get_2", limit_get_ip(l, "192.0.2.1"), 2);
	check_u("count_mapped", limit_get_ip(l, "::ffff:192.0.2.1"), 2);
	check_u("count_v4_other", limit_get_ip(l, "192.0.2.2"), 0);
	for (i = 0; i < 5; i++) {
		char ip[64];

		snprintf(ip, sizeof ip, "2001:db8:1:2:%x::%x", i, i + 1);
		limit_add_ip(l, ip);
	}
	check_u("count_v6_same_64", limit_get_ip(l, "2001:db8:1:2:ffff::9"), 5);
	check_u("count_v6_other_64", limit_get_ip(l, "2001:db8:1:3::1"), 0);
	check_u("count_key", limit_add(l, "user a@b", 8), 1);
	check_u("count_key_again", limit_add(l, "user a@b", 8), 2);
	check_u("count_key_not_ip", limit_get_ip(l, "user a@b"), 0);
	check_u("count_local", limit_add_ip(l, ""), 1);
	check_u("count_local_same", limit_get_ip(l, "local"), 1);
	check_u("count_null_add", limit_add_ip(NULL, "192.0.2.1"), 1);
	check_u("count_null_get", limit_get_ip(NULL, "192.0.2.1"), 0);
	check_u("count_null_key", limit_add(NULL, "x", 1), 1);
}

/* test_evict - a flood of other clients never frees a slowed one, and
 * among clients that failed alike the most recent are kept */
static void test_evict(struct limit *l)
{
	char ip[64] = "";
	unsigned i;
	int kept = 1;

	for (i = 0; i < 10; i++)
		limit_add_ip(l, "198.51.100.1");
	/* 20000 addresses failing once: every slot of the table is hit */
	for (i = 0; i < 20000 && kept; i++) {
		snprintf(ip, sizeof ip, "10.%u.%u.%u", i >> 16, (i >> 8) & 255,
			 i & 255);
		limit_add_ip(l, ip);
		kept = limit_get_ip(l, "198.51.100.1") == 10;
	}
	tt_check(kept, "evict_not_the_slowed",
		 "198.51.100.1 forgotten after %u failures of others (last %s)",
		 i, ip);
	check_u("evict_recent_kept", limit_get_ip(l, "10.0.78.31"), 1);
	check_u("evict_old_gone", limit_get_ip(l, "10.0.0.1"), 0);
}

/* test_seed - two tables place one client apart: the seed is theirs */
static void test_seed(struct limit *a)
{
	struct limit *b = NULL;
	char ip[64];
	unsigned i, same = 0;

	if (!tt_check(limit_new(LIMIT_WINDOW, &b) == 0, "seed_new", "no table"))
		return;
	for (i = 0; i < 64; i++) {
		snprintf(ip, sizeof ip, "203.0.113.%u", i);
		same += limit_slot_ip(a, ip) == limit_slot_ip(b, ip);
	}
	/* by chance, 64 of 64 in the same place has odds of 4096^-64 */
	tt_check(same < 8, "seed_differs", "%u of 64 in the same slot", same);
	limit_free(&b);
	tt_check(b == NULL, "seed_free", "pointer kept");
}

/* test_fork - a child's failures are the parent's: one shared table */
static void test_fork(struct limit *l)
{
	pid_t pid = fork();
	int st = 0;

	if (pid == 0) {
		limit_add_ip(l, "2001:db8:9::1");
		limit_add_ip(l, "2001:db8:9::2");
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, &st, 0);
	check_u("fork_shared", limit_get_ip(l, "2001:db8:9::3"), 2);
}

/* test_window - a count is forgotten after the window */
static void test_window(void)
{
	struct limit *l = NULL;

	if (!tt_check(limit_new(0, &l) == 0, "window_new", "no table"))
		return;
	limit_add_ip(l, "192.0.2.9");
	check_u("window_counted", limit_get_ip(l, "192.0.2.9"), 1);
	usleep(1100000);	/* past the next monotonic second */
	check_u("window_forgotten", limit_get_ip(l, "192.0.2.9"), 0);
	check_u("window_restarts", limit_add_ip(l, "192.0.2.9"), 1);
	limit_free(&l);
}

/* sess_check - what limit_sess_count says for ip */
static void sess_check(const char *name, const struct limit_sess *t,
		       const char *ip, size_t idle, size_t all, size_t same)
{
	size_t gi, ga, gs;

	gi = limit_sess_count(t, ip, &ga, &gs);
	tt_check(gi == idle && ga == all && gs == same, name,
		 "idle %zu all %zu same %zu, want %zu %zu %zu", gi, ga, gs,
		 idle, all, same);
}

/* test_sess - the process slots: reserve, record, reap, signal */
static void test_sess_slots(void)
{
	struct limit_sess *t = NULL;
	long i;
	int st = 0;
	pid_t pid;

	if (!tt_check(limit_sess_new(2, &t) == 0, "slots_new", "no table"))
		return;
	check_u("slots_first", (unsigned long)limit_sess_slot(t), 0);
	check_u("slots_second", (unsigned long)limit_sess_slot(t), 1);
	check_u("slots_full", (unsigned long)-limit_sess_slot(t), EAGAIN);
	sess_check("slots_reserved_wait", t, NULL, 2, 0, 0);
	limit_sess_pid(t, 0, 0);
	check_u("slots_freed_again", (unsigned long)limit_sess_slot(t), 0);
	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	limit_sess_pid(t, 1, pid);
	limit_sess_enter(t, 1, "192.0.2.1");
	sess_check("slots_in_session", t, "192.0.2.1", 1, 1, 1);
	tt_check(!strcmp(limit_sess_ip(t, 1), "192.0.2.1"), "slots_ip", "%s",
		 limit_sess_ip(t, 1));
	tt_check(!strcmp(limit_sess_ip(t, 7), ""), "slots_ip_outside", "%s",
		 limit_sess_ip(t, 7));
	limit_sess_signal(t, SIGTERM);
	waitpid(pid, &st, 0);
	tt_check(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "slots_signal",
		 "status %d", st);
	i = limit_sess_reap(t, pid);
	check_u("slots_reap", (unsigned long)i, 1);
	sess_check("slots_reaped_out_of_session", t, "192.0.2.1", 1, 0, 0);
	check_u("slots_reap_unknown", (unsigned long)-limit_sess_reap(t, pid),
		ESRCH);
	limit_sess_free(&t);
}

/* test_sess - maxperip counting: groups, leaving, and a slot set in a
 * child seen by the parent */
static void test_sess(void)
{
	static const char *const ips[] = {"2001:db8:1:2::1", "2001:db8:1:2::2",
					  "2001:db8:1:3::1", "192.0.2.1"};
	struct limit_sess *t = NULL;
	size_t i;
	pid_t pid;

	if (!tt_check(limit_sess_new(8, &t) == 0, "sess_new", "no table"))
		return;
	for (i = 0; i < 6; i++)
		limit_sess_slot(t);
	for (i = 0; i < 4; i++)
		limit_sess_enter(t, i, ips[i]);
	limit_sess_enter(t, 9, "192.0.2.1");	/* out of the table: ignored */
	sess_check("sess_same_64", t, "2001:db8:1:2::99", 2, 4, 2);
	sess_check("sess_other_64", t, "2001:db8:1:3::5", 2, 4, 1);
	sess_check("sess_v4", t, "192.0.2.1", 2, 4, 1);
	sess_check("sess_v4_mapped", t, "::ffff:192.0.2.1", 2, 4, 1);
	sess_check("sess_v4_other", t, "192.0.2.2", 2, 4, 0);
	limit_sess_leave(t, 1);
	sess_check("sess_leave", t, "2001:db8:1:2::1", 3, 3, 1);
	pid = fork();
	if (pid == 0) {
		limit_sess_leave(t, 0);
		limit_sess_enter(t, 5, "192.0.2.1");
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	sess_check("sess_fork", t, "192.0.2.1", 3, 3, 2);
	limit_sess_leave(NULL, 0);	/* no table: nothing to do */
	limit_sess_free(&t);
	tt_check(t == NULL, "sess_free", "pointer kept");
}

int main(void)
{
	struct limit *l = NULL;

	test_text();
	test_inetd();
	test_parse();
	test_grant();
	test_loopback();
	test_group();
	test_delay();
	test_wait();
	if (tt_check(limit_new(LIMIT_WINDOW, &l) == 0, "limit_new",
		     "cannot map the table")) {
		test_counts(l);
		test_evict(l);
		test_seed(l);
		test_fork(l);
		limit_free(&l);
	}
	test_window();
	test_sess_slots();
	test_sess();
	return tt_exit();
}
