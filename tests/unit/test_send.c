/*
 * test_send - mta-send's fairness parts without the rest of it: the
 * owners' cap, parking and ring of job queues (mta/send/owner.c) and the
 * set of drop/ entries already logged (mta/send/dropseen.c), its
 * batched log lines (mta/send/slog.c), and quarantine_file (scan.c),
 * which never leaves a directory in queue/quarantine/.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "send.h"
#include "tinytest.h"

static void load(struct msg *m, const char *uid)
{
	m->st = calloc(1, sizeof *m->st);
	qenv_init(&m->st->env);
	if (uid)
		str_cats(&m->st->env.uid, uid);
}

static void unload(struct msg *m)
{
	if (m->st) {
		qenv_free(&m->st->env);
		free(m->st);
	}
	m->st = NULL;
}

static struct msg *msg_of(const char *uid)
{
	struct msg *m = calloc(1, sizeof *m);

	load(m, uid);
	return m;
}

static void msg_free(struct msg *m)
{
	unload(m);
	free(m);
}

/* take - as sched.c's admit(): a parked message is unloaded */
static int take(struct send *s, struct msg *m)
{
	int r = owner_take(s, m);

	if (!r)
		unload(m);
	return r;
}

/* a local user's uid: not ours (the mail user's), which is not capped */
static char user[32];

static void test_cap_and_parking(void)
{
	struct send s;
	struct msg *m[5], *smtp = msg_of(NULL), *other = msg_of("7");
	unsigned i;
	int ok = 1;

	memset(&s, 0, sizeof s);
	s.conc_local = 1;
	s.conc_remote = 2;	/* a cap of 3 busy messages a uid */
	tt_check(owner_cap(&s) == 3, "owner_cap", "%u", owner_cap(&s));
	for (i = 0; i < 5; i++) {
		m[i] = msg_of(user);
		ok &= take(&s, m[i]) == (i < 3);
	}
	tt_check(ok && s.nbusy == 3, "owner_parks_over_cap", "nbusy %zu",
		 s.nbusy);
	tt_check(take(&s, smtp) == 1 && take(&s, other) == 1 &&
		 s.nbusy == 5 && !smtp->own, "owner_others_not_capped",
		 "nbusy %zu", s.nbusy);
	tt_check(owner_next(&s) == NULL && !s.unpark, "owner_next_none",
		 "unpark %d", s.unpark);
	/* one ends: the first parked is taken up, and only it */
	owner_release(&s, m[1]);
	/* a new one is not let in ahead of those parked before it */
	unload(m[1]);
	load(m[1], user);
	tt_check(take(&s, m[1]) == 0, "owner_parked_go_first", "let in");
	tt_check(s.unpark && owner_next(&s) == m[3], "owner_next_first",
		 "unpark %d", s.unpark);
	load(m[3], user);
	tt_check(take(&s, m[3]) == 1 && owner_next(&s) == NULL && !s.unpark,
		 "owner_full_again", "unpark %d", s.unpark);
	owner_release(&s, m[0]);
	tt_check(owner_next(&s) == m[4], "owner_next_in_order", "order");
	load(m[4], user);
	tt_check(take(&s, m[4]) == 1, "owner_taken_up", "parked");
	owner_release(&s, m[0]);	/* twice: the second is nothing */
	tt_check(s.nbusy == 5, "owner_release_once", "nbusy %zu", s.nbusy);
	owner_release(&s, m[2]);
	tt_check(owner_next(&s) == m[1], "owner_next_last", "order");
	load(m[1], user);
	tt_check(take(&s, m[1]) == 1, "owner_last_taken_up", "parked");
	for (i = 1; i < 5; i++)
		if (i != 2)
			owner_release(&s, m[i]);
	owner_release(&s, smtp);
	owner_release(&s, other);
	tt_check(!s.owners && !s.nbusy, "owner_dropped_when_idle",
		 "nbusy %zu", s.nbusy);
	owner_free(&s);
	for (i = 0; i < 5; i++)
		msg_free(m[i]);
	msg_free(smtp);
	msg_free(other);
}

static void test_ring(void)
{
	struct send s;
	struct msg *a = msg_of("1"), *b = msg_of("2"), *c = msg_of(NULL);
	struct job jobs[9];
	char got[16] = "";
	size_t i, n = 0;
	struct job *j;

	memset(&s, 0, sizeof s);
	memset(jobs, 0, sizeof jobs);
	s.conc_local = s.conc_remote = 10;
	take(&s, a);
	take(&s, b);
	take(&s, c);
	/* a queues 5 first, then b 2, then SMTP 2 */
	for (i = 0; i < 9; i++) {
		jobs[i].m = i < 5 ? a : i < 7 ? b : c;
		jobs[i].remote = 1;
		fair_add(&s, &jobs[i]);
	}
	while ((j = fair_take(&s, 1)) != NULL && n < sizeof got - 1)
		got[n++] = j->m == a ? 'a' : j->m == b ? 'b' : 'c';
	tt_check(!strcmp(got, "abcabcaaa") && s.rq.n == 0 && !s.rq.last,
		 "fair_round_robin", "%s", got);
	tt_check(fair_take(&s, 0) == NULL, "fair_other_kind_empty", "local");
	owner_release(&s, a);
	owner_release(&s, b);
	owner_release(&s, c);
	tt_check(s.owners == NULL && s.nbusy == 0, "owner_ring_left_idle",
		 "owners left");
	msg_free(a);
	msg_free(b);
	msg_free(c);
}

/* child_key - dropseen_key(5, "a") in a new process: this program run
 * again with --key-to=FD (a fork alone would keep the secret) */
static uint64_t child_key(void)
{
	uint64_t k = 0;
	int p[2];
	pid_t pid;

	if (pipe(p) < 0 || (pid = fork()) < 0)
		return 0;
	if (pid == 0) {
		char arg[32];

		close(p[0]);
		snprintf(arg, sizeof arg, "--key-to=%d", p[1]);
		execl("/proc/self/exe", "test_send", arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], &k, sizeof k) != sizeof k)
		k = 0;
	close(p[0]);
	waitpid(pid, NULL, 0);
	return k;
}

/* test_slog_writes - slog_flush writes whole lines, at most PIPE_BUF
 * bytes a write (a longer line alone): stderr is a SOCK_SEQPACKET
 * socket here, so that each write arrives as one record */
static void test_slog_writes(void)
{
	static char rec[70000];
	int sp[2], saved = dup(2), ok = 1, big_alone = 0;
	size_t lines = 0, i;
	ssize_t n, k;

	if (saved < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) < 0 ||
	    dup2(sp[1], 2) < 0) {
		tt_check(0, "slog_writes_setup", "socketpair");
		return;
	}
	for (i = 0; i < 300; i++)
		slog("line %zu %s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	slog("long %05000d", 7);	/* one line over PIPE_BUF */
	slog("after");
	slog_flush();
	dup2(saved, 2);
	close(saved);
	close(sp[1]);
	while ((n = recv(sp[0], rec, sizeof rec, MSG_DONTWAIT)) > 0) {
		size_t nl = 0;

		for (k = 0; k < n; k++)
			nl += rec[k] == '\n';
		lines += nl;
		/* whole lines; over PIPE_BUF only the long line, alone */
		ok &= rec[n - 1] == '\n' && (n <= PIPE_BUF || nl == 1);
		big_alone |= n > PIPE_BUF && nl == 1;
	}
	close(sp[0]);
	tt_check(ok && big_alone && lines == 302, "slog_writes",
		 "ok %d big_alone %d lines %zu", ok, big_alone, lines);
}

static void test_dropseen(void)
{
	struct dropseen d;
	uint64_t k1 = dropseen_key(5, "a"), k2 = dropseen_key(5, "b");
	size_t i;
	int r = 0;

	memset(&d, 0, sizeof d);
	tt_check(k1 && k2 && k1 != k2 && dropseen_key(6, "a") != k1,
		 "dropseen_key", "collision");
	tt_check(dropseen_key(5, "a") == k1, "dropseen_key_stable", "moved");
	k2 = child_key();
	tt_check(k2 && k2 != k1, "dropseen_key_secret",
		 "another process drew the same key (or none): no secret");
	k2 = dropseen_key(5, "b");
	tt_check(!dropseen_has(&d, k1), "dropseen_empty", "has");
	dropseen_add(&d, k1);
	dropseen_add(&d, k2);
	tt_check(dropseen_has(&d, k1) && dropseen_has(&d, k2) && d.n == 2,
		 "dropseen_add", "n %zu", d.n);
	dropseen_pass_end(&d);
	/* the next pass sees only k1; growing meanwhile keeps k2 */
	tt_check(dropseen_has(&d, k1), "dropseen_seen_again", "k1");
	for (i = 0; i < 5000; i++)
		dropseen_add(&d, dropseen_key(1000 + i, "x"));
	tt_check(d.n == 5002, "dropseen_growth_keeps_all", "n %zu", d.n);
	dropseen_pass_end(&d);
	tt_check(dropseen_has(&d, k1) && !dropseen_has(&d, k2) &&
		 d.n == 5001, "dropseen_forgets_unseen", "n %zu", d.n);
	for (i = 0; r == 0 && i < 100000; i++)
		r = dropseen_add(&d, dropseen_key(10000000 + i, "y"));
	tt_check(r == -ENOSPC && d.n == 65536, "dropseen_bounded",
		 "r %d n %zu", r, d.n);
	dropseen_free(&d);
}

/* test_ours_not_capped - mail the mail user injected (forwards) */
static void test_ours_not_capped(void)
{
	struct send s;
	struct msg *m[4];
	char me[sizeof ((struct send *)0)->uid];
	unsigned i;
	int ok = 1;

	memset(&s, 0, sizeof s);
	s.conc_local = 1;
	s.conc_remote = 0;	/* a cap of 1 busy message a uid */
	snprintf(me, sizeof me, "%ld", (long)getuid());
	memcpy(s.uid, me, sizeof s.uid);
	for (i = 0; i < 4; i++) {
		m[i] = msg_of(me);
		ok &= take(&s, m[i]) == 1 && !m[i]->own;
	}
	tt_check(ok && s.nbusy == 4, "owner_ours_not_capped", "nbusy %zu",
		 s.nbusy);
	for (i = 0; i < 4; i++) {
		owner_release(&s, m[i]);
		msg_free(m[i]);
	}
	owner_free(&s);
}

/* test_slog - lines wait in the buffer until slog_flush(), then leave
 * together, each in the log format with control bytes as '?' */
static void test_slog(void)
{
	char got[4096], want_a[64], want_b[64];
	int p[2], saved = dup(2);
	ssize_t n;

	if (saved < 0 || pipe2(p, O_NONBLOCK) < 0 || dup2(p[1], 2) < 0) {
		tt_check(0, "slog_setup", "cannot redirect stderr");
		return;
	}
	slog("new msg %d\tx", 7);
	slog("end msg %s", "y");
	n = read(p[0], got, sizeof got);
	tt_check(n < 0 && errno == EAGAIN, "slog_buffered",
		 "read %zd bytes before the flush", n);
	slog_flush();
	n = read(p[0], got, sizeof got - 1);
	got[n > 0 ? n : 0] = 0;
	(void)dup2(saved, 2);
	close(saved);
	close(p[0]);
	close(p[1]);
	snprintf(want_a, sizeof want_a, " mta-send[%ld]: new msg 7?x\n",
		 (long)getpid());
	snprintf(want_b, sizeof want_b, " mta-send[%ld]: end msg y\n",
		 (long)getpid());
	tt_check(n > 0 && strstr(got, want_a) && strstr(got, want_b) &&
		 strstr(got, want_a) < strstr(got, want_b), "slog_flushed",
		 "got '%s'", got);
	tt_check(n > 0 && got[n - 1] == '\n' && strchr(got, '\n') <
		 strstr(got, want_b), "slog_two_lines", "got '%s'", got);
	slog_flush();	/* nothing left: writes nothing */
	slog_free();
}

/* test_quarantine_file - a drop/ entry that is a directory by the time
 * it is moved (its owner swapped it in) goes back: -EISDIR, still in
 * drop/, quarantine/ empty; a file is moved as quarantine() moves it */
static void test_quarantine_file(void)
{
	static const char *const dirs[] = {"queue", "queue/quarantine",
					   "drop"};
	char root[] = "/tmp/test_send.XXXXXX", p[256], q[256];
	size_t k;
	int r, fd;

	if (!mkdtemp(root)) {
		tt_check(0, "quarantine_setup", "mkdtemp");
		return;
	}
	for (k = 0; k < sizeof dirs / sizeof *dirs; k++) {
		snprintf(p, sizeof p, "%s/%s", root, dirs[k]);
		mkdir(p, 0700);
	}
	snprintf(p, sizeof p, "%s/drop/x", root);
	mkdir(p, 0777);
	r = quarantine_file(root, p, "test");
	tt_check(r == -EISDIR && access(p, F_OK) == 0, "quarantine_dir",
		 "r=%d", r);
	snprintf(q, sizeof q, "%s/queue/quarantine/x", root);
	tt_check(access(q, F_OK) < 0, "quarantine_dir_gone", "still there");
	rmdir(p);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	if (fd >= 0)
		close(fd);
	r = quarantine_file(root, p, "test");
	tt_check(r == 0 && access(q, F_OK) == 0 && access(p, F_OK) < 0,
		 "quarantine_file", "r=%d", r);
	slog_flush();
	unlink(q);
	for (k = sizeof dirs / sizeof *dirs; k-- > 0;) {
		snprintf(p, sizeof p, "%s/%s", root, dirs[k]);
		rmdir(p);
	}
	rmdir(root);
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strncmp(argv[1], "--key-to=", 9)) {
		uint64_t k = dropseen_key(5, "a");

		return write(atoi(argv[1] + 9), &k, sizeof k) == sizeof k ? 0 : 1;
	}
	snprintf(user, sizeof user, "%ld", (long)getuid() + 1);
	test_cap_and_parking();
	test_ours_not_capped();
	test_ring();
	test_dropseen();
	test_slog_writes();
	test_slog();
	test_quarantine_file();
	return tt_exit();
}
