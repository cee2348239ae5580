/*
 * test_share - what several hosts share (docs/scale-out.md), the library
 * side: lib/grant's grant_set/grant_age and control/popbeforesmtp (a
 * grant of another host applied here, never moved back, never through a link), and
 * lib/limit's table of the other hosts' failures (limit_key_text, the
 * file vadmin share writes and the servers read, its eviction rule) and
 * limit_share (counts add the file's, failures are told to
 * db/share.sock, nothing changes while there is no file).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "grant.h"
#include "limit.h"
#include "str.h"
#include "tinytest.h"

static char root[] = "/tmp/test_share.XXXXXX";

/* check_i - one int result against what it should be */
static void check_i(const char *name, long got, long want)
{
	tt_check(got == want, name, "got %ld, want %ld", got, want);
}

/* path - ROOT/REL in a static buffer */
static const char *path(const char *rel)
{
	static char p[512];

	snprintf(p, sizeof p, "%s/%s", root, rel);
	return p;
}

/* test_grant_set - made at a time, moved forward only, links refused */
static void test_grant_set(void)
{
	time_t at = 0;
	unsigned long life = 0;
	FILE *f;

	check_i("set_new", grant_set(root, "192.0.2.7", 5000), 1);
	check_i("age_new", grant_age(root, "192.0.2.7", &at), 0);
	check_i("age_value", (long)at, 5000);
	check_i("set_older", grant_set(root, "192.0.2.7", 4000), 0);
	check_i("set_same", grant_set(root, "192.0.2.7", 5000), 0);
	(void)grant_age(root, "192.0.2.7", &at);
	check_i("set_not_back", (long)at, 5000);
	check_i("set_newer", grant_set(root, "192.0.2.7", 6000), 1);
	(void)grant_age(root, "192.0.2.7", &at);
	check_i("set_forward", (long)at, 6000);
	check_i("touch_after_set", grant_touch(root, "192.0.2.7"), 0);
	(void)grant_age(root, "192.0.2.7", &at);
	tt_check(at > 6000, "touch_now", "%ld", (long)at);
	check_i("age_none", grant_age(root, "192.0.2.9", &at), -ENOENT);
	check_i("set_bad", grant_set(root, "../x", 1), -EINVAL);
	check_i("set_local", grant_set(root, "", 1), 0);
	tt_check(symlink("/nonexistent-share-target",
			 path("open-smtp/192.0.2.8")) == 0, "link_made", "symlink");
	check_i("set_link", grant_set(root, "192.0.2.8", 7000), -EINVAL);
	tt_check(access("/nonexistent-share-target", F_OK) < 0, "link_kept",
		 "followed");
	check_i("life_default", ctl_num(root, CTL_POPBEFORESMTP, &life), 0);
	check_i("life_default_value", (long)life, 10800);
	if ((f = fopen(path("control/popbeforesmtp"), "w"))) {
		fputs("60\n", f);
		fclose(f);
	}
	(void)ctl_num(root, CTL_POPBEFORESMTP, &life);
	check_i("life_file", (long)life, 60);
	/* the one rule of live and stale: younger than the life */
	check_i("live_young", grant_live(1000, 60, 1059), 1);
	check_i("live_at_life", grant_live(1000, 60, 1060), 0);
	check_i("live_future", grant_live(2000, 60, 1000), 1);
	check_i("live_life_0", grant_live(1000, 0, 1000), 0);
}

/* test_key_text - the names a key has on every host */
static void test_key_text(void)
{
	struct str s = STR_INIT;
	char big[LIMIT_KEY_MAX + 1];

	check_i("text_v4", limit_key_text('i', "192.0.2.7", 9, &s), 0);
	tt_check(!strcmp(s.s, "ip 192.0.2.7"), "text_v4_value", "%s", s.s);
	(void)limit_key_text('i', "2001:db8:1:2:3:4:5:6", 20, &s);
	tt_check(!strcmp(s.s, "ip 2001:db8:1:2::/64"), "text_v6", "%s", s.s);
	(void)limit_key_text('i', "::ffff:192.0.2.7", 16, &s);
	tt_check(!strcmp(s.s, "ip 192.0.2.7"), "text_mapped", "%s", s.s);
	check_i("text_local", limit_key_text('i', "", 0, &s), -EINVAL);
	check_i("text_user", limit_key_text('k', "user a b%\n\xff", 11, &s),
		0);
	tt_check(!strcmp(s.s, "user a b%25%0A%FF"), "text_escaped", "%s",
		 s.s);
	check_i("text_empty", limit_key_text('k', "", 0, &s), -EINVAL);
	memset(big, 'x', sizeof big);
	check_i("text_big", limit_key_text('k', big, sizeof big, &s), -E2BIG);
	str_free(&s);
}

/* test_told - the datagram vadmin share reads */
static void test_told(void)
{
	struct str sv = STR_INIT, k = STR_INIT;

	check_i("told_ok", limit_told("pop3 ip 192.0.2.7", 17, &sv, &k), 0);
	tt_check(!strcmp(sv.s, "pop3") && !strcmp(k.s, "ip 192.0.2.7"),
		 "told_split", "%s|%s", sv.s, k.s);
	check_i("told_no_space", limit_told("pop3", 4, &sv, &k), -EINVAL);
	check_i("told_no_key", limit_told("pop3 ", 5, &sv, &k), -EINVAL);
	check_i("told_long_service", limit_told("pop3pop3 x", 10, &sv, &k),
		-EINVAL);
	check_i("told_upper", limit_told("POP3 x", 6, &sv, &k), -EINVAL);
	check_i("told_ctl", limit_told("pop3 a\nb", 8, &sv, &k), -EINVAL);
	check_i("valid_high", limit_key_valid("\xff", 1), 0);
	str_free(&sv);
	str_free(&k);
}

/* test_remote - the file: made by the writer, read by a reader, slots
 * taken by the local table's rule */
static void test_remote(void)
{
	struct limit_remote *w = NULL, *r = NULL;
	const char *p = path("db/fails.test");
	time_t now = time(NULL);
	char k[32];
	int i, fd;

	check_i("reader_none", limit_remote_open(p, 0, &r), -ENOENT);
	check_i("writer_makes", limit_remote_open(p, 1, &w), 0);
	check_i("reader_maps", limit_remote_open(p, 0, &r), 0);
	if (!w || !r)
		return;
	limit_remote_set(w, "ip 192.0.2.7", 3, now);
	check_i("get", limit_remote_get(r, "ip 192.0.2.7", now), 3);
	check_i("get_other", limit_remote_get(r, "ip 192.0.2.8", now), 0);
	check_i("get_expired", limit_remote_get(r, "ip 192.0.2.7",
						now + LIMIT_WINDOW + 1), 0);
	limit_remote_set(w, "ip 192.0.2.7", 5, now);
	check_i("get_updated", limit_remote_get(r, "ip 192.0.2.7", now), 5);
	/* a flood of keys with one failure each never takes a slowed key's
	 * slot: fewer failures are taken first */
	for (i = 0; i < 4 * LIMIT_SLOTS; i++) {
		snprintf(k, sizeof k, "ip 10.%d.%d.%d", i >> 16 & 255,
			 i >> 8 & 255, i & 255);
		limit_remote_set(w, k, 1, now);
	}
	check_i("flood_kept", limit_remote_get(r, "ip 192.0.2.7", now), 5);
	limit_remote_set(w, "ip 192.0.2.7", 0, now);
	check_i("forgotten", limit_remote_get(r, "ip 192.0.2.7", now), 0);
	limit_remote_close(&r);
	limit_remote_close(&w);
	check_i("closed", r == NULL && w == NULL, 1);
	/* a file of another layout: no reader, the writer makes it anew */
	fd = open(p, O_WRONLY | O_TRUNC);
	if (fd >= 0) {
		(void)!write(fd, "junk", 4);
		close(fd);
	}
	check_i("reader_bad", limit_remote_open(p, 0, &r), -EPROTO);
	check_i("writer_remakes", limit_remote_open(p, 1, &w), 0);
	limit_remote_close(&w);
	unlink(p);
}

/* test_limit_share - a server's counts: unchanged with no file; with
 * one, its counts added and each failure told to db/share.sock */
static void test_limit_share(void)
{
	struct limit *l = NULL;
	struct limit_remote *w = NULL;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char m[256];
	ssize_t n;
	int s;

	if (!tt_check(limit_new(LIMIT_WINDOW, &l) == 0, "share_new", "mmap"))
		return;
	check_i("share_on", limit_share(l, root, "pop3"), 0);
	check_i("alone_add", limit_add_ip(l, "192.0.2.7"), 1);
	check_i("alone_get", limit_get_ip(l, "192.0.2.7"), 1);
	/* the bridge starts: its socket and its file */
	snprintf(a.sun_path, sizeof a.sun_path, "%s", path("db/share.sock"));
	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	tt_check(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0,
		 "sock_bound", "%s", a.sun_path);
	check_i("file_made", limit_remote_open(path("db/fails.pop3"), 1, &w),
		0);
	if (!w)
		goto out;
	limit_remote_set(w, "ip 192.0.2.7", 4, time(NULL));
	limit_remote_set(w, "user u@x", 2, time(NULL));
	/* the file is looked for again after LIMIT_RETRY s */
	sleep(LIMIT_RETRY + 1);
	check_i("shared_get", limit_get_ip(l, "192.0.2.7"), 5);
	check_i("shared_add", limit_add_ip(l, "192.0.2.7"), 6);
	n = recv(s, m, sizeof m - 1, MSG_DONTWAIT);
	m[n > 0 ? n : 0] = 0;
	tt_check(!strcmp(m, "pop3 ip 192.0.2.7"), "told_ip", "%s", m);
	check_i("shared_user", limit_add(l, "user u@x", 8), 3);
	n = recv(s, m, sizeof m - 1, MSG_DONTWAIT);
	m[n > 0 ? n : 0] = 0;
	tt_check(!strcmp(m, "pop3 user u@x"), "told_user", "%s", m);
	check_i("other_ip", limit_get_ip(l, "192.0.2.99"), 0);
	limit_remote_close(&w);
out:
	if (s >= 0)
		close(s);
	unlink(path("db/share.sock"));
	unlink(path("db/fails.pop3"));
	limit_free(&l);
}

int main(void)
{
	if (!tt_check(mkdtemp(root) != NULL, "tmp", "mkdtemp"))
		return tt_exit();
	mkdir(path("open-smtp"), 0700);
	mkdir(path("db"), 0700);
	mkdir(path("control"), 0700);
	test_grant_set();
	test_key_text();
	test_told();
	test_remote();
	test_limit_share();
	unlink(path("open-smtp/192.0.2.7"));
	unlink(path("open-smtp/192.0.2.8"));
	unlink(path("control/popbeforesmtp"));
	rmdir(path("open-smtp"));
	rmdir(path("db"));
	rmdir(path("control"));
	rmdir(root);
	return tt_exit();
}
