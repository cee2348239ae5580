/*
 * NAME
 *	test_lib - unit tests of the shared library lib/
 *
 * SYNOPSIS
 *	test_lib
 *
 * DESCRIPTION
 *	Prints one line per check, "ok NAME" or "FAIL NAME: why", and exits 0
 *	when every check passed, else 1 (the protocol of tests/run.py).
 *	Scratch files live in one mkdtemp(3) directory under /tmp that is
 *	removed at the end. Nothing depends on the host beyond /tmp, the
 *	libraries Facteur links with and the environment variable
 *	FACTEUR_ROOT, which the args checks set and restore.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <dirent.h>
#include <unistd.h>

#include "addrlist.h"
#include "args.h"
#include "cdbx.h"
#include "ctl.h"
#include "date.h"
#include "db.h"
#include "fsx.h"
#include "hdrscan.h"
#include "json.h"
#include "log.h"
#include "name.h"
#include "msg.h"
#include "num.h"
#include "priv.h"
#include "pw.h"
#include "quota.h"
#include "schema.h"
#include "str.h"
#include "tinytest.h"

static char scratch[] = "/tmp/facteur-test-XXXXXX";

/* sp - SCRATCH/REL in one of 8 rotating static buffers: copy to keep it */
static const char *sp(const char *rel)
{
	static char buf[8][PATH_MAX];
	static int k;
	char *b = buf[k = (k + 1) % 8];

	snprintf(b, sizeof buf[0], "%s/%s", scratch, rel);
	return b;
}

/* put_file - create or truncate path with n bytes, without lib/ */
static int put_file(const char *path, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t w;

	if (fd < 0)
		return -errno;
	w = n ? write(fd, buf, n) : 0;
	close(fd);
	return w == (ssize_t)n ? 0 : -EIO;
}

/* get_file - read a whole file with stdio, without lib/ */
static int get_file(const char *path, struct str *out)
{
	char buf[4096];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return -errno;
	out->len = 0;
	str_catb(out, "", 0);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		str_catb(out, buf, n);
	fclose(f);
	return 0;
}

/* exists - 1 when path exists (links not followed) */
static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* mode_of - permission bits of path, or -1 */
static int mode_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* entries - number of directory entries besides . and ..; *tmp_r counts
 * the names holding ".tmp." */
static int entries(const char *dir, int *tmp_r)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0, t = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (strstr(de->d_name, ".tmp."))
			t++;
	}
	closedir(d);
	if (tmp_r)
		*tmp_r = t;
	return n;
}

/* ---- str ---------------------------------------------------------- */

static const struct {
	unsigned long long u;
	const char *want;
} catu_cases[] = {
	{0, "0"},
	{7, "7"},
	{10, "10"},
	{4294967296ull, "4294967296"},
	{18446744073709551615ull, "18446744073709551615"},
};

/* test_str - appends, formats, copies, truncation and the size checks */
static void test_str(void)
{
	struct str s = STR_INIT, e = STR_INIT;
	size_t i;
	int bad;

	CHECK_STR("str.cstr_unallocated", str_cstr(&s), "");
	CHECK("str.eqs_unallocated_empty", str_eqs(&s, ""));
	CHECK_INT("str.catb_binary_r", str_catb(&s, "ab\0c", 4), 0);
	CHECK_MEM("str.catb_binary", s.s, s.len, "ab\0c", 4);
	CHECK_INT("str.catb_nul_after", s.s[s.len], 0);
	CHECK_INT("str.catb_empty_null_buf", str_catb(&s, NULL, 0), 0);
	str_cats(&s, "de");
	str_catc(&s, 'f');
	CHECK_MEM("str.cats_catc", s.s, s.len, "ab\0cdef", 7);
	CHECK_INT("str.cats_catc_nul_after", s.s[s.len], 0);
	str_catc(&s, 0);
	CHECK_MEM("str.catc_nul_byte", s.s, s.len, "ab\0cdef\0", 8);
	CHECK_INT("str.catc_nul_byte_nul_after", s.s[s.len], 0);

	for (i = 0; i < sizeof catu_cases / sizeof catu_cases[0]; i++) {
		str_copys(&s, "x");
		CHECK_INT(tt_name("str.catu_r[%llu]", catu_cases[i].u),
			  str_catu(&s, catu_cases[i].u), 0);
		CHECK_MEM(tt_name("str.catu[%llu]", catu_cases[i].u), s.s + 1,
			  s.len - 1, catu_cases[i].want,
			  strlen(catu_cases[i].want));
	}

	str_copys(&s, "n=");
	CHECK_INT("str.catf_r", str_catf(&s, "%d-%s|%5s|", 42, "x", "ab"), 0);
	CHECK_STR("str.catf", str_cstr(&s), "n=42-x|   ab|");
	CHECK_INT("str.catf_len", s.len, strlen("n=42-x|   ab|"));
	str_catf(&s, "%s", "");
	CHECK_STR("str.catf_empty", str_cstr(&s), "n=42-x|   ab|");
	str_copys(&s, "");
	str_catf(&s, "%0500d", 7);
	bad = s.len != 500 || s.s[499] != '7' || s.s[500] != 0;
	for (i = 0; i < 499; i++)
		bad |= s.s[i] != '0';
	CHECK("str.catf_grows", !bad);

	str_copys(&s, "");
	for (i = 0; i < 100000; i++)
		str_catc(&s, (char)(i % 251));
	bad = s.len != 100000 || s.cap < s.len + 1 || s.s[s.len] != 0;
	for (i = 0; !bad && i < 100000; i++)
		bad = s.s[i] != (char)(i % 251);
	CHECK("str.catc_100000", !bad);

	CHECK_INT("str.copys_r", str_copys(&s, "hello"), 0);
	CHECK_STR("str.copys", str_cstr(&s), "hello");
	CHECK_INT("str.copys_len", s.len, 5);
	CHECK_INT("str.copyb_empty_r", str_copyb(&s, "", 0), 0);
	CHECK("str.copyb_empty", s.len == 0 && s.s[0] == 0);
	str_copyb(&s, "\0\1\0", 3);
	CHECK_MEM("str.copyb_binary", s.s, s.len, "\0\1\0", 3);

	str_copys(&s, "hello");
	str_trunc(&s, 2);
	CHECK_STR("str.trunc", str_cstr(&s), "he");
	CHECK_INT("str.trunc_len", s.len, 2);
	str_trunc(&s, 10);
	CHECK_STR("str.trunc_longer_noop", str_cstr(&s), "he");
	CHECK("str.eqs", str_eqs(&s, "he"));
	CHECK("str.eqs_prefix", !str_eqs(&s, "h"));
	CHECK("str.eqs_longer", !str_eqs(&s, "hex"));
	str_trunc(&s, 0);
	CHECK_STR("str.trunc_zero", str_cstr(&s), "");

	/* the overflow check: nothing is allocated, nothing changes */
	str_copys(&s, "abc");
	CHECK_INT("str.ready_size_max", str_ready(&s, SIZE_MAX), -EOVERFLOW);
	CHECK_INT("str.ready_size_max_minus_len", str_ready(&s, SIZE_MAX - 3),
		  -EOVERFLOW);
	CHECK_INT("str.ready_no_room_for_nul",
		  str_ready(&s, SIZE_MAX - 1 - 2), -EOVERFLOW);
	CHECK_INT("str.catb_size_max", str_catb(&s, "x", SIZE_MAX),
		  -EOVERFLOW);
	CHECK_INT("str.copyb_size_max", str_copyb(&s, "x", SIZE_MAX),
		  -EOVERFLOW);
	CHECK_MEM("str.overflow_keeps_content", s.s, s.len, "abc", 3);
	CHECK_INT("str.overflow_keeps_nul", s.s[s.len], 0);
	CHECK_INT("str.ready_size_max_unallocated", str_ready(&e, SIZE_MAX),
		  -EOVERFLOW);
	CHECK("str.overflow_unallocated_untouched",
	      e.s == NULL && e.len == 0 && e.cap == 0);
	CHECK_INT("str.ready_small", str_ready(&e, 10), 0);
	CHECK("str.ready_small_cap", e.cap >= 11 && e.len == 0);

	str_free(&s);
	CHECK("str.free", s.s == NULL && s.len == 0 && s.cap == 0);
	str_cats(&s, "again");
	CHECK_STR("str.reuse_after_free", str_cstr(&s), "again");
	str_wipe(&s);
	CHECK("str.wipe", s.s == NULL && s.len == 0 && s.cap == 0);
	str_wipe(&s);
	CHECK("str.wipe_twice", s.s == NULL && s.len == 0 && s.cap == 0);
	str_cats(&s, "again");
	CHECK_STR("str.reuse_after_wipe", str_cstr(&s), "again");
	str_free(&s);
	str_free(&e);
}

/* ---- fsx ---------------------------------------------------------- */

/* test_fsx_write - fsx_write_atomic, fsx_write_all, fsync helpers */
static void test_fsx_write(void)
{
	struct str s = STR_INIT, t = STR_INIT;
	char f[PATH_MAX];
	int ntmp = -1;

	snprintf(f, sizeof f, "%s", sp("fsx/file"));

	mkdir(sp("fsx"), 0700);
	CHECK_INT("fsx.write_atomic_new", fsx_write_atomic(f, "one", 3, 0600),
		  0);
	get_file(f, &s);
	CHECK_STR("fsx.write_atomic_new_content", str_cstr(&s), "one");
	CHECK_INT("fsx.write_atomic_new_mode", mode_of(f), 0600);
	CHECK_INT("fsx.write_atomic_replace",
		  fsx_write_atomic(f, "second", 6, 0640), 0);
	get_file(f, &s);
	CHECK_STR("fsx.write_atomic_replace_content", str_cstr(&s), "second");
	CHECK_INT("fsx.write_atomic_replace_mode", mode_of(f), 0640);
	CHECK_INT("fsx.write_atomic_one_entry", entries(sp("fsx"), &ntmp), 1);
	CHECK_INT("fsx.write_atomic_no_tmp", ntmp, 0);
	CHECK_INT("fsx.write_atomic_empty", fsx_write_atomic(f, "", 0, 0600),
		  0);
	get_file(f, &s);
	CHECK_INT("fsx.write_atomic_empty_len", s.len, 0);
	CHECK_INT("fsx.write_atomic_missing_dir",
		  fsx_write_atomic(sp("fsx/nodir/x"), "x", 1, 0600), -ENOENT);

	/* the link itself is replaced; its target is never written through */
	put_file(sp("fsx/target"), "keep", 4);
	(void)!symlink(sp("fsx/target"), sp("fsx/wlink"));
	CHECK_INT("fsx.write_atomic_over_symlink",
		  fsx_write_atomic(sp("fsx/wlink"), "new", 3, 0600), 0);
	get_file(sp("fsx/target"), &s);
	CHECK_STR("fsx.write_atomic_over_symlink_target_kept", str_cstr(&s),
		  "keep");
	CHECK("fsx.write_atomic_over_symlink_now_file",
	      mode_of(sp("fsx/wlink")) == 0600);
	entries(sp("fsx"), &ntmp);
	CHECK_INT("fsx.write_atomic_no_tmp_after_all", ntmp, 0);

	CHECK_INT("fsx.tmpname_r", fsx_tmpname(&t, f), 0);
	CHECK("fsx.tmpname_beside", t.len > strlen(f) + 5 &&
	      !memcmp(t.s, f, strlen(f)) && !memcmp(t.s + strlen(f), ".tmp.", 5));
	CHECK_INT("fsx.fsync_parent", fsx_fsync_parent(f), 0);
	CHECK_INT("fsx.fsync_dir_missing", fsx_fsync_dir(sp("fsx/nodir")),
		  -ENOENT);
	CHECK_INT("fsx.write_all_bad_fd", fsx_write_all(-1, "x", 1), -EBADF);
	str_free(&s);
	str_free(&t);
}

/* test_fsx_mkdir - directories are made, symlinks never accepted */
static void test_fsx_mkdir(void)
{
	CHECK_INT("fsx.mkdir_new", fsx_mkdir(sp("fsx/d"), 0700), 0);
	CHECK_INT("fsx.mkdir_new_is_dir", fsx_is_dir(sp("fsx/d")), 1);
	CHECK_INT("fsx.mkdir_new_mode", mode_of(sp("fsx/d")), 0700);
	CHECK_INT("fsx.mkdir_existing", fsx_mkdir(sp("fsx/d"), 0700), 0);
	(void)!symlink(sp("fsx/d"), sp("fsx/sl"));
	CHECK_INT("fsx.mkdir_symlink_to_dir", fsx_mkdir(sp("fsx/sl"), 0700),
		  -ENOTDIR);
	(void)!symlink(sp("fsx/nowhere"), sp("fsx/dangling"));
	CHECK_INT("fsx.mkdir_dangling_symlink",
		  fsx_mkdir(sp("fsx/dangling"), 0700), -ENOTDIR);
	CHECK_INT("fsx.mkdir_dangling_target_not_made",
		  exists(sp("fsx/nowhere")), 0);
	CHECK_INT("fsx.mkdir_over_file", fsx_mkdir(sp("fsx/file"), 0700),
		  -ENOTDIR);
	CHECK_INT("fsx.mkdir_missing_parent", fsx_mkdir(sp("fsx/x/y"), 0700),
		  -ENOENT);
	CHECK_INT("fsx.mkdir_p", fsx_mkdir_p(sp("fsx/p/q/r"), 0700), 0);
	CHECK_INT("fsx.mkdir_p_is_dir", fsx_is_dir(sp("fsx/p/q/r")), 1);
	CHECK_INT("fsx.mkdir_p_again", fsx_mkdir_p(sp("fsx/p/q/r"), 0700), 0);
	CHECK_INT("fsx.mkdir_p_trailing_slash",
		  fsx_mkdir_p(sp("fsx/p/t/"), 0700), 0);
	CHECK_INT("fsx.mkdir_p_through_symlink",
		  fsx_mkdir_p(sp("fsx/sl/x"), 0700), -ENOTDIR);
	CHECK_INT("fsx.mkdir_p_through_symlink_nothing_made",
		  exists(sp("fsx/d/x")), 0);
	CHECK_INT("fsx.is_dir_symlink", fsx_is_dir(sp("fsx/sl")), 0);
	CHECK_INT("fsx.is_dir_file", fsx_is_dir(sp("fsx/file")), 0);
	CHECK_INT("fsx.is_dir_missing", fsx_is_dir(sp("fsx/missing")), 0);
}

/* test_fsx_rmtree - a tree goes, what its links point at stays */
static void test_fsx_rmtree(void)
{
	int r;

	mkdir(sp("outside"), 0700);
	mkdir(sp("outside/sub"), 0700);
	put_file(sp("outside/keep"), "k", 1);
	put_file(sp("outside/sub/keep2"), "k", 1);
	fsx_mkdir_p(sp("tree/a/b/empty"), 0700);
	put_file(sp("tree/a/b/f1"), "1", 1);
	put_file(sp("tree/f2"), "2", 1);
	(void)!symlink(sp("outside"), sp("tree/a/lnkdir"));
	(void)!symlink(sp("outside/keep"), sp("tree/lnkfile"));
	(void)!symlink(sp("nowhere"), sp("tree/dangling"));
	mkfifo(sp("tree/a/fifo"), 0600);

	CHECK_INT("fsx.rmtree", fsx_rmtree(sp("tree")), 0);
	CHECK_INT("fsx.rmtree_gone", exists(sp("tree")), 0);
	CHECK_INT("fsx.rmtree_link_target_file_kept",
		  exists(sp("outside/keep")), 1);
	CHECK_INT("fsx.rmtree_link_target_dir_kept",
		  exists(sp("outside/sub/keep2")), 1);
	CHECK_INT("fsx.rmtree_missing", fsx_rmtree(sp("tree")), 0);

	(void)!symlink(sp("outside"), sp("tlink"));
	r = fsx_rmtree(sp("tlink"));
	CHECK("fsx.rmtree_symlink_refused", r < 0);
	CHECK_INT("fsx.rmtree_symlink_target_kept",
		  exists(sp("outside/sub/keep2")), 1);
	CHECK_INT("fsx.rmtree_symlink_itself_kept", exists(sp("tlink")), 1);
	CHECK_INT("fsx.rmtree_file_refused", fsx_rmtree(sp("outside/keep")),
		  -ENOTDIR);
	CHECK_INT("fsx.rmtree_file_kept", exists(sp("outside/keep")), 1);
}

/* test_fsx_read - fsx_read_file: limits, links, the NUL invariant */
static void test_fsx_read(void)
{
	struct str s = STR_INIT, want = STR_INIT;
	size_t i;

	put_file(sp("fsx/r10"), "0123456789", 10);
	CHECK_INT("fsx.read_file_at_max", fsx_read_file(sp("fsx/r10"), &s, 10),
		  0);
	CHECK_STR("fsx.read_file_at_max_content", str_cstr(&s), "0123456789");
	CHECK_INT("fsx.read_file_over_max",
		  fsx_read_file(sp("fsx/r10"), &s, 9), -EFBIG);
	CHECK_INT("fsx.read_file_max_zero",
		  fsx_read_file(sp("fsx/r10"), &s, 0), -EFBIG);

	for (i = 0; i < 20000; i++)
		str_catc(&want, (char)('a' + i % 26));
	put_file(sp("fsx/r20000"), want.s, want.len);
	CHECK_INT("fsx.read_file_big", fsx_read_file(sp("fsx/r20000"), &s,
						      20000), 0);
	CHECK_MEM("fsx.read_file_big_content", s.s, s.len, want.s, want.len);
	CHECK_INT("fsx.read_file_big_over_max",
		  fsx_read_file(sp("fsx/r20000"), &s, 19999), -EFBIG);
	put_file(sp("fsx/r8192"), want.s, 8192);
	CHECK_INT("fsx.read_file_one_buffer",
		  fsx_read_file(sp("fsx/r8192"), &s, 8192), 0);
	CHECK_INT("fsx.read_file_one_buffer_len", s.len, 8192);
	put_file(sp("fsx/r8193"), want.s, 8193);
	CHECK_INT("fsx.read_file_one_buffer_plus_one",
		  fsx_read_file(sp("fsx/r8193"), &s, 8192), -EFBIG);

	CHECK_INT("fsx.read_file_missing",
		  fsx_read_file(sp("fsx/missing"), &s, 100), -ENOENT);
	(void)!symlink(sp("fsx/r10"), sp("fsx/rlink"));
	CHECK_INT("fsx.read_file_symlink",
		  fsx_read_file(sp("fsx/rlink"), &s, 100), -ELOOP);
	CHECK_INT("fsx.read_file_dir", fsx_read_file(sp("fsx"), &s, 100),
		  -EISDIR);
	/* a FIFO where a file belongs: refused at once, not waited on */
	unlink(sp("fsx/fifo"));
	CHECK_INT("fsx.read_file_fifo_made", mkfifo(sp("fsx/fifo"), 0600), 0);
	CHECK_INT("fsx.read_file_fifo", fsx_read_file(sp("fsx/fifo"), &s,
						       100), -EINVAL);

	put_file(sp("fsx/empty"), "", 0);
	str_free(&s);
	CHECK_INT("fsx.read_file_empty", fsx_read_file(sp("fsx/empty"), &s,
						       100), 0);
	CHECK("fsx.read_file_empty_terminated",
	      s.len == 0 && s.s && s.s[0] == 0);
	str_copys(&s, "stale");
	CHECK_INT("fsx.read_file_empty_reused",
		  fsx_read_file(sp("fsx/empty"), &s, 100), 0);
	CHECK_STR("fsx.read_file_empty_reused_terminated", str_cstr(&s), "");
	str_copys(&s, "stale");
	fsx_read_file(sp("fsx/r10"), &s, 5);
	CHECK_INT("fsx.read_file_over_max_reused_terminated", s.s[s.len], 0);
	str_free(&s);
	str_free(&want);
}

/* ---- ctl ---------------------------------------------------------- */

static const struct {
	const char *label;
	const char *content;	/* NULL: no such file */
	const char *def;
	int want_r;
	const char *want;
} ctl_get_cases[] = {
	{"missing", NULL, "dflt", 0, "dflt"},
	{"missing_no_default", NULL, NULL, -ENOENT, ""},
	{"plain", "example.com\n", "dflt", 0, "example.com"},
	{"trimmed", "  example.com \t\r\n", "dflt", 0, "example.com"},
	{"inner_space_kept", "a b\nsecond\n", "dflt", 0, "a b"},
	{"no_newline", "no-newline", "dflt", 0, "no-newline"},
	{"empty", "", "dflt", 0, "dflt"},
	{"blank", " \n\t\n", "dflt", 0, "dflt"},
	{"leading_blank_lines", "\n\nthird\n", "dflt", 0, "third"},
	{"empty_no_default", "", NULL, 0, ""},
};

static const struct {
	const char *label;
	const char *content;	/* NULL: no such file */
	int want_r;
	unsigned long want;
} ctl_ulong_cases[] = {
	{"missing", NULL, 0, 7},
	{"plain", "42\n", 0, 42},
	{"trimmed", " 42 \n", 0, 42},
	{"empty", "", 0, 7},
	{"junk", "4x\n", -EINVAL, 0},
	{"negative", "-1\n", -EINVAL, 0},
	{"overflow", "99999999999999999999999\n", -ERANGE, 0},
};

static const struct {
	const char *in;
	int want_r;
	unsigned long want;
} parse_ulong_cases[] = {
	{"0", 0, 0},
	{"42", 0, 42},
	{"007", 0, 7},
	{"4294967296", 0, 4294967296ul},
	{"18446744073709551615", 0, ULONG_MAX},
	{"18446744073709551616", -ERANGE, 0},
	{"18446744073709551620", -ERANGE, 0},
	{"99999999999999999999999", -ERANGE, 0},
	{"", -EINVAL, 0},
	{"-1", -EINVAL, 0},
	{"+1", -EINVAL, 0},
	{" 1", -EINVAL, 0},
	{"1 ", -EINVAL, 0},
	{"1x", -EINVAL, 0},
	{"0x10", -EINVAL, 0},
	{"1.5", -EINVAL, 0},
};

static const struct {
	const char *label;
	const char *content;	/* NULL: no such file */
	size_t len;		/* 0: strlen(content) */
	const char *want;	/* the lines, each ended by NUL */
	size_t want_len;
	size_t want_count;
} ctl_lines_cases[] = {
	{"missing", NULL, 0, "", 0, 0},
	{"empty", "", 0, "", 0, 0},
	{"two", "a\nb\n", 0, "a\0b", 4, 2},
	{"comments_blanks", "# c\n\nfoo\n  bar  \n\t# indented\nbaz", 0,
	 "foo\0bar\0baz", 12, 3},
	{"crlf", "x\r\ny\r\n", 0, "x\0y", 4, 2},
	{"nul_line_skipped", "good\nb\0ad\nlast\n", 15, "good\0last", 10, 2},
	{"only_newlines", "\n\n\n", 0, "", 0, 0},
	{"hash_inside", "a#b\n", 0, "a#b", 4, 1},
};

/* test_ctl_me - control/me, then (missing, empty) the host name */
static void test_ctl_me(const char *root, struct str *s, struct str *p)
{
	char host[HOST_NAME_MAX + 1];

	CHECK_INT("ctl.me_host", gethostname(host, sizeof host), 0);
	host[sizeof host - 1] = 0;
	ctl_path(p, root, "me");
	unlink(p->s);
	CHECK_INT("ctl.me_missing_r", ctl_me(root, s), 0);
	CHECK_STR("ctl.me_missing", str_cstr(s), host);
	put_file(p->s, " \n", 2);
	CHECK_INT("ctl.me_empty_r", ctl_me(root, s), 0);
	CHECK_STR("ctl.me_empty", str_cstr(s), host);
	put_file(p->s, " mx.example \n", 13);
	CHECK_INT("ctl.me_file_r", ctl_me(root, s), 0);
	CHECK_STR("ctl.me_file", str_cstr(s), "mx.example");
}

/* test_ctl_num - the numeric settings: one table, SPEC.md's defaults, a
 * value outside its range held to the nearer bound (1), junk the default */
static void test_ctl_num(const char *root, struct str *p)
{
	static const struct {
		enum ctl_numid id;
		const char *content;	/* NULL: no such file */
		int want_r;
		unsigned long want;
	} cases[] = {
		{CTL_DATABYTES, NULL, 0, 10485760},
		{CTL_QUEUELIFETIME, NULL, 0, 604800},
		{CTL_CONCURRENCYREMOTE, NULL, 0, 20},
		{CTL_POPBEFORESMTP, NULL, 0, 10800},
		{CTL_DMARCREJECT, NULL, 0, 1},
		{CTL_TIMEOUTPOP3, "45\n", 0, 45},
		{CTL_TIMEOUTSMTPD, "0\n", 1, 1},
		{CTL_CONCURRENCYLOCAL, "5000\n", 1, 1000},
		{CTL_QUOTABOUNCE, "2\n", 1, 0},	/* a flag: its default */
		{CTL_DMARCREJECT, "7\n", 1, 1},
		{CTL_REMOTEPORT, "70000\n", 1, 65535},
		{CTL_QUOTAWARN, "ninety\n", -EINVAL, 90},
		{CTL_RETRYBASE, "99999999999999999999999\n", -ERANGE, 20},
	};
	unsigned long u, v;
	char text[64];
	size_t i, j;

	for (i = 0; i < CTL_NUMS; i++) {
		const struct ctl_numdef *n = &ctl_nums[i];
		int dup = 0;

		CHECK(tt_name("ctl.num_def_in_range[%zu]", i), n->name &&
		      n->min <= n->def && n->def <= n->max);
		for (j = 0; n->name && j < i; j++)
			dup |= strcmp(ctl_nums[j].name, n->name) == 0;
		CHECK(tt_name("ctl.num_unique[%zu]", i), !dup);
	}
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *name = ctl_nums[cases[i].id].name;

		ctl_path(p, root, name);
		unlink(p->s);
		if (cases[i].content)
			put_file(p->s, cases[i].content,
				 strlen(cases[i].content));
		u = 12345;
		CHECK_INT(tt_name("ctl.num_r[%s]", name),
			  ctl_num(root, cases[i].id, &u), cases[i].want_r);
		CHECK_U64(tt_name("ctl.num[%s]", name), u, cases[i].want);
		unlink(p->s);
		/* the range rule alone agrees on every value that parses */
		snprintf(text, sizeof text, "%s",
			 cases[i].content ? cases[i].content : "");
		text[strcspn(text, "\n")] = 0;
		if (cases[i].content && cases[i].want_r >= 0 &&
		    ctl_parse_ulong(text, &v) == 0) {
			u = 12345;
			CHECK_INT(tt_name("ctl.num_hold_r[%s]", name),
				  ctl_num_hold(cases[i].id, v, &u),
				  cases[i].want_r);
			CHECK_U64(tt_name("ctl.num_hold[%s]", name), u,
				  cases[i].want);
		}
	}
}

/* the last line ctl_num_warn said, and how many */
static char warned[256];
static int nwarned;

static __attribute__((format(printf, 1, 2))) void catch_warn(const char *fmt,
							     ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(warned, sizeof warned, fmt, ap);
	va_end(ap);
	nwarned++;
}

/* test_ctl_num_warn - the fallback is the value, and said once in the
 * same words for every program; a good file, or none, says nothing */
static void test_ctl_num_warn(const char *root, struct str *p)
{
	ctl_path(p, root, ctl_nums[CTL_DATABYTES].name);
	unlink(p->s);
	nwarned = 0;
	CHECK_U64("ctl.num_warn_none",
		  ctl_num_warn(root, CTL_DATABYTES, catch_warn), 10485760);
	put_file(p->s, "2000\n", 5);
	CHECK_U64("ctl.num_warn_ok",
		  ctl_num_warn(root, CTL_DATABYTES, catch_warn), 2000);
	unlink(p->s);
	ctl_path(p, root, ctl_nums[CTL_TIMEOUTSMTPD].name);
	put_file(p->s, "0\n", 2);	/* held to its range (1): no warning */
	CHECK_U64("ctl.num_warn_held",
		  ctl_num_warn(root, CTL_TIMEOUTSMTPD, catch_warn), 1);
	CHECK_INT("ctl.num_warn_quiet", nwarned, 0);
	unlink(p->s);
	ctl_path(p, root, ctl_nums[CTL_DATABYTES].name);
	put_file(p->s, "10M\n", 4);
	CHECK_U64("ctl.num_warn_junk",
		  ctl_num_warn(root, CTL_DATABYTES, catch_warn), 10485760);
	CHECK_INT("ctl.num_warn_once", nwarned, 1);
	CHECK_STR("ctl.num_warn_text", warned,
		  "warning: control/databytes: Invalid argument; using "
		  "10485760 (write a decimal number there or remove the file)");
	unlink(p->s);
}

/* test_ctl - control files, their defaults and number parsing */
static void test_ctl(void)
{
	struct str s = STR_INIT, p = STR_INIT;
	char root[PATH_MAX], name[64];
	unsigned long u;
	size_t i, n;
	int r;

	snprintf(root, sizeof root, "%s", sp("ctl"));

	mkdir(root, 0700);
	mkdir(sp("ctl/control"), 0700);
	mkdir(sp("ctl/control/adir"), 0700);
	CHECK_INT("ctl.path_r", ctl_path(&p, "/R", "me"), 0);
	CHECK_STR("ctl.path", str_cstr(&p), "/R/control/me");

	for (i = 0; i < sizeof ctl_get_cases / sizeof ctl_get_cases[0]; i++) {
		const char *c = ctl_get_cases[i].content;

		snprintf(name, sizeof name, "get_%s", ctl_get_cases[i].label);
		ctl_path(&p, root, name);
		if (c)
			put_file(p.s, c, strlen(c));
		str_copys(&s, "stale");
		r = ctl_get(root, name, ctl_get_cases[i].def, &s);
		CHECK_INT(tt_name("ctl.get_r[%s]", ctl_get_cases[i].label), r,
			  ctl_get_cases[i].want_r);
		if (r == 0)
			CHECK_STR(tt_name("ctl.get[%s]", ctl_get_cases[i].label),
				  str_cstr(&s), ctl_get_cases[i].want);
	}
	CHECK_INT("ctl.get_unreadable_not_default",
		  ctl_get(root, "adir", "dflt", &s), -EISDIR);

	for (i = 0; i < sizeof ctl_ulong_cases / sizeof ctl_ulong_cases[0];
	     i++) {
		const char *c = ctl_ulong_cases[i].content;

		snprintf(name, sizeof name, "ulong_%s",
			 ctl_ulong_cases[i].label);
		ctl_path(&p, root, name);
		if (c)
			put_file(p.s, c, strlen(c));
		u = 12345;
		r = ctl_get_ulong(root, name, 7, &u);
		CHECK_INT(tt_name("ctl.get_ulong_r[%s]",
				  ctl_ulong_cases[i].label), r,
			  ctl_ulong_cases[i].want_r);
		if (r == 0)
			CHECK_U64(tt_name("ctl.get_ulong[%s]",
					  ctl_ulong_cases[i].label), u,
				  ctl_ulong_cases[i].want);
	}
	CHECK_INT("ctl.get_ulong_unreadable",
		  ctl_get_ulong(root, "adir", 7, &u), -EISDIR);

	for (i = 0; i < sizeof parse_ulong_cases / sizeof parse_ulong_cases[0];
	     i++) {
		u = 12345;
		r = ctl_parse_ulong(parse_ulong_cases[i].in, &u);
		CHECK_INT(tt_name("ctl.parse_ulong_r[%s]",
				  parse_ulong_cases[i].in), r,
			  parse_ulong_cases[i].want_r);
		CHECK_U64(tt_name("ctl.parse_ulong[%s]",
				  parse_ulong_cases[i].in), u,
			  r == 0 ? parse_ulong_cases[i].want : 12345);
	}

	for (i = 0; i < sizeof ctl_lines_cases / sizeof ctl_lines_cases[0];
	     i++) {
		const char *c = ctl_lines_cases[i].content;

		snprintf(name, sizeof name, "lines_%s",
			 ctl_lines_cases[i].label);
		ctl_path(&p, root, name);
		if (c)
			put_file(p.s, c, ctl_lines_cases[i].len ?
				 ctl_lines_cases[i].len : strlen(c));
		str_copys(&s, "stale\0lines");
		n = 999;
		r = ctl_get_lines(root, name, &s, &n);
		CHECK_INT(tt_name("ctl.get_lines_r[%s]",
				  ctl_lines_cases[i].label), r, 0);
		CHECK_MEM(tt_name("ctl.get_lines[%s]",
				  ctl_lines_cases[i].label), s.s, s.len,
			  ctl_lines_cases[i].want, ctl_lines_cases[i].want_len);
		CHECK_INT(tt_name("ctl.get_lines_count[%s]",
				  ctl_lines_cases[i].label), n,
			  ctl_lines_cases[i].want_count);
		CHECK(tt_name("ctl.get_lines_terminated[%s]",
			      ctl_lines_cases[i].label),
		      !s.s || s.s[s.len] == 0);
	}
	CHECK_INT("ctl.get_lines_unreadable",
		  ctl_get_lines(root, "adir", &s, &n), -EISDIR);
	CHECK_INT("ctl.get_lines_null_count",
		  ctl_get_lines(root, "lines_two", &s, NULL), 0);

	/* ctl_line_number: the file's line of a kept line, and of ctl_get's */
	ctl_path(&p, root, "numbered");
	put_file(p.s, "# c\n\n  \na\n#d\nb\n", 15);
	CHECK_INT("ctl.line_number_r", ctl_line_number(root, "numbered", 2, &n),
		  0);
	CHECK_INT("ctl.line_number_2", n, 6);
	ctl_line_number(root, "numbered", 1, &n);
	CHECK_INT("ctl.line_number_1", n, 4);
	ctl_line_number(root, "numbered", 0, &n);
	CHECK_INT("ctl.line_number_get", n, 1);
	put_file(p.s, "\n \n10M\n", 7);
	ctl_line_number(root, "numbered", 0, &n);
	CHECK_INT("ctl.line_number_get_blank_first", n, 3);
	test_ctl_me(root, &s, &p);
	test_ctl_num(root, &p);
	test_ctl_num_warn(root, &p);
	str_free(&s);
	str_free(&p);
}

/* ---- cdbx --------------------------------------------------------- */

#define CDB_KEYS 10000

/* cdb_val - the value stored under key number i */
static void cdb_val(struct str *v, int i)
{
	int k;

	v->len = 0;
	str_catf(v, "value-%d", i);
	for (k = 0; k < i % 7; k++)
		str_catf(v, "/%d", k);
}

/* test_cdbx_big - 10,000 keys written atomically, read back */
static void test_cdbx_big(void)
{
	struct str v = STR_INIT, k = STR_INIT;
	struct cdbw w;
	struct cdbr rd;
	char path[PATH_MAX];
	const char *val;
	size_t vlen;
	int i, r, bad = -1, ntmp = -1;

	snprintf(path, sizeof path, "%s", sp("cdb/big.cdb"));

	mkdir(sp("cdb"), 0700);
	CHECK_INT("cdbx.start", cdbw_start(&w, path, 0640), 0);
	for (i = 0; i < CDB_KEYS && bad < 0; i++) {
		k.len = 0;
		str_catf(&k, "key%d", i);
		cdb_val(&v, i);
		if (cdbw_add(&w, k.s, k.len, v.s, v.len) < 0)
			bad = i;
	}
	CHECK_INT("cdbx.add_10000_first_failure", bad, -1);
	CHECK_INT("cdbx.finish", cdbw_finish(&w), 0);
	CHECK_INT("cdbx.finish_mode", mode_of(path), 0640);
	CHECK_INT("cdbx.finish_one_entry", entries(sp("cdb"), &ntmp), 1);
	CHECK_INT("cdbx.finish_no_tmp", ntmp, 0);

	r = cdbr_open(&rd, path);
	CHECK_INT("cdbx.open", r, 0);
	if (r < 0)
		goto out;
	for (i = 0, bad = -1; i < CDB_KEYS && bad < 0; i++) {
		k.len = 0;
		str_catf(&k, "key%d", i);
		cdb_val(&v, i);
		if (cdbr_find(&rd, k.s, k.len, &val, &vlen) < 0 ||
		    vlen != v.len || memcmp(val, v.s, vlen))
			bad = i;
	}
	CHECK_INT("cdbx.find_10000_first_mismatch", bad, -1);
	CHECK_INT("cdbx.find_missing_key",
		  cdbr_find(&rd, "key10000", 8, &val, &vlen), -ENOENT);
	CHECK_INT("cdbx.find_empty_key", cdbr_find(&rd, "", 0, &val, &vlen),
		  -ENOENT);
	CHECK_INT("cdbx.find_prefix_key", cdbr_find(&rd, "key1", 3, &val,
						     &vlen), -ENOENT);
	CHECK_INT("cdbx.get", cdbr_find(&rd, "key42", 5, &val, &vlen), 0);
	CHECK_MEM("cdbx.get_value", val, vlen, "value-42", 8);
	CHECK_INT("cdbx.get_missing", cdbr_find(&rd, "nokey", 5, &val, &vlen),
		  -ENOENT);
	cdbr_close(&rd);
	cdbr_close(&rd);	/* a second close is harmless */

	CHECK_INT("cdbx.lookup", cdbx_lookup(path, "key9999", 7, &v), 0);
	cdb_val(&k, 9999);
	CHECK_STR("cdbx.lookup_value", str_cstr(&v), str_cstr(&k));
	CHECK_INT("cdbx.lookup_missing_key", cdbx_lookup(path, "x", 1, &v),
		  -ENOENT);
out:
	str_free(&v);
	str_free(&k);
}

/* test_cdbx_edges - binary data, missing and bad files, abort, replace */
static void test_cdbx_edges(void)
{
	static const char k1[] = "a\0b", v1[] = "\0\1\0\377";
	struct str v = STR_INIT;
	struct cdbw w;
	struct cdbr rd, old;
	char bin[PATH_MAX];
	const char *val;
	size_t vlen;
	int i, r, n, ntmp;

	snprintf(bin, sizeof bin, "%s", sp("cdb/bin.cdb"));

	r = cdbw_start(&w, bin, 0600);
	CHECK_INT("cdbx.binary_start", r, 0);
	if (r < 0)
		return;
	cdbw_add(&w, k1, 3, v1, 4);
	cdbw_add(&w, "a", 1, "", 0);
	cdbw_add(&w, "\0", 1, "nul key", 7);
	CHECK_INT("cdbx.binary_finish", cdbw_finish(&w), 0);
	r = cdbr_open(&rd, bin);
	CHECK_INT("cdbx.binary_open", r, 0);
	if (r == 0) {
		CHECK_INT("cdbx.binary_find", cdbr_find(&rd, k1, 3, &val,
							&vlen), 0);
		CHECK_MEM("cdbx.binary_value", val, vlen, v1, 4);
		CHECK_INT("cdbx.binary_key_differs_after_nul",
			  cdbr_find(&rd, "a\0c", 3, &val, &vlen), -ENOENT);
		CHECK_INT("cdbx.empty_value", cdbr_find(&rd, "a", 1, &val,
							&vlen), 0);
		CHECK("cdbx.empty_value_len", vlen == 0);
		CHECK_INT("cdbx.nul_key", cdbr_find(&rd, "\0", 1, &val, &vlen),
			  0);
		CHECK_MEM("cdbx.nul_key_value", val, vlen, "nul key", 7);
	}

	/* replacing: an open reader keeps the old table, a new one sees the new */
	r = cdbw_start(&w, bin, 0600);
	if (r == 0) {
		cdbw_add(&w, "a", 1, "new", 3);
		r = cdbw_finish(&w);
	}
	CHECK_INT("cdbx.replace", r, 0);
	if (r == 0 && rd.fd >= 0) {
		CHECK_INT("cdbx.replace_old_reader",
			  cdbr_find(&rd, k1, 3, &val, &vlen), 0);
		CHECK_INT("cdbx.replace_new_reader", cdbr_open(&old, bin), 0);
		CHECK_INT("cdbx.replace_new_reader_old_key_gone",
			  cdbr_find(&old, k1, 3, &val, &vlen), -ENOENT);
		CHECK_INT("cdbx.replace_new_reader_find",
			  cdbr_find(&old, "a", 1, &val, &vlen), 0);
		CHECK_MEM("cdbx.replace_new_value", val, vlen, "new", 3);
		cdbr_close(&old);
	}
	cdbr_close(&rd);

	CHECK_INT("cdbx.open_missing", cdbr_open(&rd, sp("cdb/none.cdb")),
		  -ENOENT);
	CHECK_INT("cdbx.lookup_missing_file",
		  cdbx_lookup(sp("cdb/none.cdb"), "a", 1, &v), -ENODATA);
	put_file(sp("cdb/junk.cdb"), "not a cdb!", 10);
	r = cdbr_open(&rd, sp("cdb/junk.cdb"));
	CHECK("cdbx.open_junk_refused", r < 0);
	if (r == 0)
		cdbr_close(&rd);
	CHECK_INT("cdbx.start_missing_dir",
		  cdbw_start(&w, sp("cdb/nodir/x.cdb"), 0600), -ENOENT);
	cdbw_abort(&w);	/* after a failed start: nothing to do */

	/* abort: no temporary file, no target, an existing table untouched */
	mkdir(sp("cdb/ab"), 0700);
	r = cdbw_start(&w, sp("cdb/ab/x.cdb"), 0600);
	CHECK_INT("cdbx.abort_start", r, 0);
	if (r == 0) {
		for (i = 0; i < 100; i++)
			cdbw_add(&w, &i, sizeof i, "v", 1);
		cdbw_abort(&w);
	}
	CHECK_INT("cdbx.abort_empty_dir", entries(sp("cdb/ab"), NULL), 0);
	cdbw_start(&w, bin, 0600);
	cdbw_add(&w, "a", 1, "other", 5);
	cdbw_abort(&w);
	n = entries(sp("cdb"), &ntmp);
	CHECK_INT("cdbx.abort_no_tmp_beside_existing", ntmp, 0);
	CHECK_INT("cdbx.abort_entries", n, 4);	/* big, bin, junk, ab */
	str_copys(&v, "stale");
	CHECK_INT("cdbx.abort_keeps_existing", cdbx_lookup(bin, "a", 1, &v),
		  0);
	CHECK_STR("cdbx.abort_keeps_existing_value", str_cstr(&v), "new");
	str_free(&v);
}

/* ---- name --------------------------------------------------------- */

static char label63[64], label64[65], dom253[254], dom254[255];
static char local64[65], local65[66];

static const struct {
	const char *label;
	char kind;		/* 'd' domain, 'l' local part */
	const char *in;
	int len;		/* -1: strlen(in) */
	int want_r;
	const char *want;	/* folded name (NULL: in), or the why phrase */
} name_cases[] = {
	{"fold", 'd', "Example.COM", -1, 0, "example.com"},
	{"one_label", 'd', "localhost", -1, 0, NULL},
	{"idn_ace", 'd', "xn--bcher-kva.EXAMPLE", -1, 0,
	 "xn--bcher-kva.example"},
	{"hyphens_inside", 'd', "a-b.c--d.e", -1, 0, NULL},
	{"digits", 'd', "1.2.3.4", -1, 0, NULL},
	{"label_63", 'd', label63, -1, 0, NULL},
	{"len_253", 'd', dom253, -1, 0, NULL},
	{"slash", 'd', "a/b", -1, -EINVAL, "contains a slash"},
	{"dotdot_path", 'd', "../etc", -1, -EINVAL, "contains a slash"},
	{"dotdot", 'd', "a..b", -1, -EINVAL, "contains '..'"},
	{"only_dotdot", 'd', "..", -1, -EINVAL, "starts with a dot"},
	{"leading_dot", 'd', ".a", -1, -EINVAL, "starts with a dot"},
	{"trailing_dot", 'd', "a.", -1, -EINVAL, "ends with a dot"},
	{"nul", 'd', "a\0b", 3, -EINVAL, "contains a NUL byte"},
	{"control", 'd', "a\001b", -1, -EINVAL, "contains a control byte"},
	{"newline", 'd', "a\nb", -1, -EINVAL, "contains a control byte"},
	{"del", 'd', "a\177b", -1, -EINVAL, "contains a control byte"},
	{"space", 'd', "a b", -1, -EINVAL, "contains a space"},
	{"len_254", 'd', dom254, -1, -EINVAL, "is longer than 253 bytes"},
	{"label_64", 'd', label64, -1, -EINVAL,
	 "has a label longer than 63 bytes"},
	{"label_starts_hyphen", 'd', "-a.b", -1, -EINVAL,
	 "has a label starting with a hyphen"},
	{"inner_label_starts_hyphen", 'd', "a.-b", -1, -EINVAL,
	 "has a label starting with a hyphen"},
	{"label_ends_hyphen", 'd', "a-.b", -1, -EINVAL,
	 "has a label ending with a hyphen"},
	{"last_label_ends_hyphen", 'd', "a.b-", -1, -EINVAL,
	 "has a label ending with a hyphen"},
	/* a U-label is its A-label; UTF-8 that is not well-formed is not */
	{"u_label", 'd', "Caf\303\251.FR", -1, 0, "xn--caf-dma.fr"},
	{"bad_utf8", 'd', "caf\351.fr", -1, -EINVAL,
	 "is not well-formed UTF-8, or has a label too long written as an "
	 "A-label"},
	{"underscore", 'd', "a_b.c", -1, -EINVAL,
	 "may hold only letters, digits, hyphens and dots"},
	{"at", 'd', "a@b.c", -1, -EINVAL,
	 "may hold only letters, digits, hyphens and dots"},
	{"empty", 'd', "", 0, -EINVAL, "is empty"},

	{"fold", 'l', "John.Doe", -1, 0, "john.doe"},
	{"one", 'l', "A", -1, 0, "a"},
	{"plus", 'l', "a+tag", -1, 0, NULL},
	{"atext", 'l', "!#$%&'*+-=?^_`{|}~", -1, 0, NULL},
	{"len_64", 'l', local64, -1, 0, NULL},
	{"slash", 'l', "a/b", -1, -EINVAL, "contains a slash"},
	{"only_dotdot", 'l', "..", -1, -EINVAL, "starts with a dot"},
	{"dotdot", 'l', "a..b", -1, -EINVAL, "contains '..'"},
	{"leading_dot", 'l', ".a", -1, -EINVAL, "starts with a dot"},
	{"trailing_dot", 'l', "a.", -1, -EINVAL, "ends with a dot"},
	{"nul", 'l', "a\0b", 3, -EINVAL, "contains a NUL byte"},
	{"tab", 'l', "a\tb", -1, -EINVAL, "contains a control byte"},
	{"cr", 'l', "a\rb", -1, -EINVAL, "contains a control byte"},
	{"space", 'l', "a b", -1, -EINVAL, "contains a space"},
	{"len_65", 'l', local65, -1, -EINVAL, "is longer than 64 bytes"},
	{"non_ascii", 'l', "\303\251", -1, -EINVAL,
	 "contains a non-ASCII byte"},
	{"at", 'l', "a@b", -1, -EINVAL, "contains an '@'"},
	{"quote", 'l', "a\"b", -1, -EINVAL,
	 "contains a character not allowed in an address"},
	{"paren", 'l', "a(b)", -1, -EINVAL,
	 "contains a character not allowed in an address"},
	{"comma", 'l', "a,b", -1, -EINVAL,
	 "contains a character not allowed in an address"},
	{"empty", 'l', "", 0, -EINVAL, "is empty"},
};

static const struct {
	const char *in;
	int want_r;
	const char *want_local;	/* or the why phrase */
	const char *want_domain;
} addr_cases[] = {
	{"Tim@Example.COM", 0, "tim", "example.com"},
	{"a.b+c@x-y.z", 0, "a.b+c", "x-y.z"},
	{"a@b@c.com", -EINVAL, "contains an '@'", NULL},
	{"nodomain", -EINVAL, "is not of the form user@domain", NULL},
	{"@example.com", -EINVAL, "is empty", NULL},
	{"user@", -EINVAL, "is empty", NULL},
	{"user@a..b", -EINVAL, "contains '..'", NULL},
	{"../etc@x.com", -EINVAL, "contains a slash", NULL},
	{".etc@x.com", -EINVAL, "starts with a dot", NULL},
	{"u@x/y", -EINVAL, "contains a slash", NULL},
};

/* test_name_fold - an appended lower-case copy, ASCII letters only */
static void test_name_fold(void)
{
	struct str s = STR_INIT;

	str_copys(&s, "user ");
	CHECK_INT("name.fold_r", name_fold(&s, "MiXeD.Example-1@X\xc3\x89Z", 20),
		  0);
	CHECK_MEM("name.fold", s.s, s.len, "user mixed.example-1@x\xc3\x89z",
		  25);
	CHECK(tt_name("name.fold_nul_ended"), s.s[s.len] == 0);
	CHECK_INT("name.fold_len_r", name_fold(&s, "ABC", 1), 0);
	CHECK_STR("name.fold_len", s.s + 25, "a");
	str_trunc(&s, 0);
	CHECK_INT("name.fold_empty_r", name_fold(&s, "", 0), 0);
	CHECK_STR("name.fold_empty", str_cstr(&s), "");
	str_free(&s);
}

/* ldh_cases - name_ldh: the host-name rule and its two relaxations */
static const struct {
	const char *in;
	unsigned flags;
	const char *want;	/* NULL: accepted */
} ldh_cases[] = {
	{"mx.example", 0, NULL},
	{"MX.Example", 0, NULL},
	{"a", 0, NULL},
	{"1.2.3.4.zen.example", 0, NULL},
	{"", 0, "is empty"},
	{".", 0, "has an empty label"},
	{"a..b", 0, "has an empty label"},
	{".a", 0, "has an empty label"},
	{"a.", 0, "has an empty label"},
	{"-a.b", 0, "has a label starting with a hyphen"},
	{"a.-b", 0, "has a label starting with a hyphen"},
	{"a-.b", 0, "has a label ending with a hyphen"},
	{"a.b-", 0, "has a label ending with a hyphen"},
	{"a-b.c--d", 0, NULL},
	{"-a-.b-", NAME_LDH_ANY_HYPHEN, NULL},
	{"_dmarc.x", 0, "may hold only letters, digits, hyphens and dots"},
	{"_dmarc.x", NAME_LDH_UNDERSCORE, NULL},
	{"a b", 0, "may hold only letters, digits, hyphens and dots"},
	{"a/b", 0, "may hold only letters, digits, hyphens and dots"},
	{"\xc3\xa9.x", 0, "may hold only letters, digits, hyphens and dots"},
};

/* test_name_ldh - name_ldh over the table and at its length limits */
static void test_name_ldh(void)
{
	char dom255[256];
	size_t i;

	for (i = 0; i < sizeof ldh_cases / sizeof ldh_cases[0]; i++) {
		const char *got = name_ldh(ldh_cases[i].in,
					   strlen(ldh_cases[i].in),
					   ldh_cases[i].flags);

		CHECK_STR(tt_name("name.ldh[%s/%u]", ldh_cases[i].in,
				  ldh_cases[i].flags), got ? got : "(ok)",
			  ldh_cases[i].want ? ldh_cases[i].want : "(ok)");
	}
	CHECK(tt_name("name.ldh_label63"), !name_ldh(label63, 63, 0));
	CHECK_STR("name.ldh_label64", name_ldh(label64, 64, 0),
		  "has a label longer than 63 bytes");
	CHECK(tt_name("name.ldh_253"), !name_ldh(dom253, 253, 0));
	CHECK_STR("name.ldh_254", name_ldh(dom254, 254, 0),
		  "is longer than 253 bytes");
	memset(dom255, 'a', sizeof dom255);
	for (i = 1; i < 255; i += 2)
		dom255[i] = '.';
	CHECK_STR("name.ldh_255", name_ldh(dom255, 255, NAME_LDH_ANY_HYPHEN),
		  "is longer than 253 bytes");
	/* the length, not a NUL, ends the name */
	CHECK(tt_name("name.ldh_len"), !name_ldh("ab.c-", 4, 0));
	test_name_fold();
}

/* test_name - names folded or refused with the user's phrase */
static void test_name(void)
{
	struct str out = STR_INIT, loc = STR_INIT, dom = STR_INIT;
	size_t i;

	memset(label63, 'a', 63);
	memset(label64, 'b', 64);
	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 bytes */
	snprintf(dom253, sizeof dom253, "%s.%s.%s.%.61s", label63, label63,
		 label63, label63);
	snprintf(dom254, sizeof dom254, "%s.%s.%s.%.62s", label63, label63,
		 label63, label63);
	memset(local64, 'c', 64);
	memset(local65, 'd', 65);
	CHECK_INT("name.table_dom253_len", strlen(dom253), 253);
	CHECK_INT("name.table_dom254_len", strlen(dom254), 254);

	for (i = 0; i < sizeof name_cases / sizeof name_cases[0]; i++) {
		const char *kind = name_cases[i].kind == 'd' ? "domain" : "local";
		size_t n = name_cases[i].len < 0 ? strlen(name_cases[i].in) :
			   (size_t)name_cases[i].len;
		/* an exact-size copy with no NUL: ASan sees any over-read */
		char *in = malloc(n ? n : 1);
		const char *why = NULL;
		const char *want = name_cases[i].want ? name_cases[i].want :
				   name_cases[i].in;
		int r;

		if (!in)
			abort();
		memcpy(in, name_cases[i].in, n);
		str_copys(&out, "stale");
		r = name_cases[i].kind == 'd' ? name_domain(in, n, &out, &why) :
		    name_local(in, n, &out, &why);
		CHECK_INT(tt_name("name.%s_r[%s]", kind, name_cases[i].label),
			  r, name_cases[i].want_r);
		if (name_cases[i].want_r == 0) {
			CHECK_STR(tt_name("name.%s[%s]", kind,
					  name_cases[i].label),
				  str_cstr(&out), want);
			CHECK_INT(tt_name("name.%s_len[%s]", kind,
					  name_cases[i].label), out.len,
				  strlen(want));
		} else {
			CHECK(tt_name("name.%s_why_nonempty[%s]", kind,
				      name_cases[i].label), why && *why);
			CHECK_STR(tt_name("name.%s_why[%s]", kind,
					  name_cases[i].label),
				  why ? why : "(null)", want);
		}
		free(in);
	}

	for (i = 0; i < sizeof addr_cases / sizeof addr_cases[0]; i++) {
		const char *why = NULL;
		int r = name_addr(addr_cases[i].in, &loc, &dom, &why);

		CHECK_INT(tt_name("name.addr_r[%s]", addr_cases[i].in), r,
			  addr_cases[i].want_r);
		if (addr_cases[i].want_r == 0) {
			CHECK_STR(tt_name("name.addr_local[%s]",
					  addr_cases[i].in), str_cstr(&loc),
				  addr_cases[i].want_local);
			CHECK_STR(tt_name("name.addr_domain[%s]",
					  addr_cases[i].in), str_cstr(&dom),
				  addr_cases[i].want_domain);
		} else {
			CHECK_STR(tt_name("name.addr_why[%s]", addr_cases[i].in),
				  why ? why : "(null)",
				  addr_cases[i].want_local);
		}
	}
	str_free(&out);
	str_free(&loc);
	str_free(&dom);
	test_name_ldh();
}

/* ---- quota -------------------------------------------------------- */

static const struct {
	const char *in;
	int want_r;
	uint64_t want_bytes;
	uint64_t want_msgs;
} quota_cases[] = {
	{"50M", 0, 52428800, 0},
	{"2G", 0, 2147483648ull, 0},
	{"100K", 0, 102400, 0},
	{"10m", 0, 10485760, 0},
	{"1000000", 0, 1000000, 0},
	{"1000000S", 0, 1000000, 0},
	{"1000000s", 0, 1000000, 0},
	{"1000B", 0, 1000, 0},
	{"500C", 0, 0, 500},
	{"1000000S,500C", 0, 1000000, 500},
	{"500C,1000000S", 0, 1000000, 500},
	{"5M,10C", 0, 5242880, 10},
	{"NOQUOTA", 0, 0, 0},
	{"noquota", 0, 0, 0},
	{"none", 0, 0, 0},
	/* the database stores quotas as signed 64-bit numbers */
	{"8589934591G", 0, 9223372035781033984ull, 0},
	{"9223372036854775807", 0, 9223372036854775807ull, 0},
	{"9223372036854775807C", 0, 0, 9223372036854775807ull},
	{"9223372036854775808", -ERANGE, 0, 0},
	{"8589934592G", -ERANGE, 0, 0},
	{"18446744073709551615", -ERANGE, 0, 0},
	{"99999999999999999999G", -ERANGE, 0, 0},
	{"99999999999999999999", -ERANGE, 0, 0},
	{"1M,2M", -EINVAL, 0, 0},
	{"1C,2C", -EINVAL, 0, 0},
	{"1M,2C,3", -EINVAL, 0, 0},
	{"", -EINVAL, 0, 0},
	{"M", -EINVAL, 0, 0},
	{"5X", -EINVAL, 0, 0},
	{"5MB", -EINVAL, 0, 0},
	{" 5M", -EINVAL, 0, 0},
	{"5M ", -EINVAL, 0, 0},
	{"5M,", -EINVAL, 0, 0},
	{",5M", -EINVAL, 0, 0},
	{"-5M", -EINVAL, 0, 0},
	{"5.5M", -EINVAL, 0, 0},
	{"garbage", -EINVAL, 0, 0},
};

static const struct {
	uint64_t bytes, msgs;
	const char *want;
} quota_fmt_cases[] = {
	{0, 0, ""},
	{1000000, 0, "1000000S"},
	{0, 500, "500C"},
	{1000000, 500, "1000000S,500C"},
	{18446744073709551615ull, 18446744073709551615ull,
	 "18446744073709551615S,18446744073709551615C"},
};

/* test_quota - parsing what admins type, formatting maildirsize's line */
static void test_quota(void)
{
	struct str s = STR_INIT;
	struct quota q, q2;
	size_t i;
	int r;

	for (i = 0; i < sizeof quota_cases / sizeof quota_cases[0]; i++) {
		const char *in = quota_cases[i].in;

		r = quota_parse(in, &q);
		CHECK_INT(tt_name("quota.parse_r[%s]", in), r,
			  quota_cases[i].want_r);
		if (r != 0 || quota_cases[i].want_r != 0)
			continue;
		CHECK_U64(tt_name("quota.parse_bytes[%s]", in), q.bytes,
			  quota_cases[i].want_bytes);
		CHECK_U64(tt_name("quota.parse_msgs[%s]", in), q.msgs,
			  quota_cases[i].want_msgs);
		if (!q.bytes && !q.msgs)
			continue;
		/* round trip: the formatted form parses to the same limits */
		r = quota_format(&q, &s);
		if (r == 0)
			r = quota_parse(s.s, &q2);
		CHECK(tt_name("quota.round_trip[%s]", in),
		      r == 0 && q2.bytes == q.bytes && q2.msgs == q.msgs);
	}
	for (i = 0; i < sizeof quota_fmt_cases / sizeof quota_fmt_cases[0];
	     i++) {
		q.bytes = quota_fmt_cases[i].bytes;
		q.msgs = quota_fmt_cases[i].msgs;
		str_copys(&s, "stale");
		r = quota_format(&q, &s);
		CHECK_INT(tt_name("quota.format_r[%s]", quota_fmt_cases[i].want),
			  r, 0);
		CHECK_STR(tt_name("quota.format[%s]", quota_fmt_cases[i].want),
			  str_cstr(&s), quota_fmt_cases[i].want);
	}
	str_free(&s);
}

/* ---- pw ----------------------------------------------------------- */

static const char *const bad_hashes[] = {
	"",
	"x",
	"!",
	"*",
	"abJnggxhB/yWI",
	"$1$salt",
	"$y$short",
	"$6$salt:with$colon.and.long.enough.to.pass.the.length",
	"$6$salt with$space.and.long.enough.to.pass.the.length",
	"$6$salt\nwith$newline.and.long.enough.to.pass.the.length",
	"$6$salt\twith$tab.and.long.enough.to.pass.the.length",
	"$6$salt\303\251$non.ascii.and.long.enough.to.pass.length",
};

/* hex_of - lower-case hex of n bytes into out (2n + 1 bytes) */
static void hex_of(const unsigned char *p, size_t n, char *out)
{
	static const char h[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = h[p[i] >> 4];
		out[2 * i + 1] = h[p[i] & 15];
	}
	out[2 * n] = 0;
}

/* test_pw_hash - hashing, checking and the accepted hash syntax */
static void test_pw_hash(void)
{
	/* Drepper's SHA-crypt specification, test vector 1 */
	static const char drepper[] = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8"
		"iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
	/* MD5-crypt of "secret": openssl passwd -1 -salt saltsalt secret */
	static const char md5crypt[] = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";
	struct str h = STR_INIT, h2 = STR_INIT;
	size_t i;

	CHECK_INT("pw.hash_default", pw_hash("secret", NULL, &h), 0);
	CHECK("pw.hash_default_yescrypt", h.len > 3 && !memcmp(h.s, "$y$", 3));
	CHECK_INT("pw.hash_yescrypt", pw_hash("secret", "yescrypt", &h), 0);
	CHECK("pw.hash_yescrypt_prefix", h.len > 3 && !memcmp(h.s, "$y$", 3));
	CHECK_INT("pw.hash_ok_yescrypt", pw_hash_ok(h.s), 0);
	CHECK_INT("pw.check_yescrypt_right", pw_check("secret", h.s), 0);
	CHECK_INT("pw.check_yescrypt_wrong", pw_check("Secret", h.s), -EACCES);
	CHECK_INT("pw.check_yescrypt_empty", pw_check("", h.s), -EACCES);
	pw_hash("secret", "yescrypt", &h2);
	CHECK("pw.hash_salted", !str_eqs(&h, str_cstr(&h2)));

	CHECK_INT("pw.hash_sha512crypt", pw_hash("secret", "sha512crypt", &h),
		  0);
	CHECK("pw.hash_sha512crypt_prefix",
	      h.len > 3 && !memcmp(h.s, "$6$", 3));
	CHECK_INT("pw.hash_ok_sha512crypt", pw_hash_ok(h.s), 0);
	CHECK_INT("pw.check_sha512crypt_right", pw_check("secret", h.s), 0);
	CHECK_INT("pw.check_sha512crypt_wrong", pw_check("secreT", h.s),
		  -EACCES);
	CHECK_INT("pw.hash_unknown_scheme", pw_hash("secret", "md5crypt", &h),
		  -EINVAL);
	CHECK_INT("pw.check_drepper_vector", pw_check("Hello world!", drepper),
		  0);
	CHECK_INT("pw.check_drepper_vector_wrong",
		  pw_check("Hello world?", drepper), -EACCES);

	/* MD5-crypt: checked at login (an imported vpopmail hash), never
	 * accepted from an admin */
	CHECK_INT("pw.hash_ok_refuses_md5crypt", pw_hash_ok(md5crypt), -EINVAL);
	CHECK_INT("pw.hash_known_md5crypt", pw_hash_known(md5crypt), 0);
	CHECK_INT("pw.check_md5crypt_right", pw_check("secret", md5crypt), 0);
	CHECK_INT("pw.check_md5crypt_wrong", pw_check("Secret", md5crypt),
		  -EACCES);
	CHECK_INT("pw.hash_known_refuses_des", pw_hash_known("abJnggxhB/yWI"),
		  -EINVAL);
	CHECK_INT("pw.hash_known_sha512crypt", pw_hash_known(drepper), 0);
	for (i = 0; i < sizeof bad_hashes / sizeof bad_hashes[0]; i++) {
		CHECK_INT(tt_name("pw.hash_ok_refuses[%zu]", i),
			  pw_hash_ok(bad_hashes[i]), -EINVAL);
		CHECK_INT(tt_name("pw.check_refuses[%zu]", i),
			  pw_check("secret", bad_hashes[i]), -EINVAL);
	}
	str_free(&h);
	str_free(&h2);
}

/* test_pw_cram - the stored HMAC-MD5 context against OpenSSL's HMAC */
static void test_pw_cram(void)
{
	static const char rfc_chal[] = "<1896.697170952@postoffice.reston.mci.net>";
	char key64[64], key65[65], key200[200], chal200[200];
	const struct {
		const char *label;
		const char *key;
		size_t len;
	} keys[] = {
		{"empty", "", 0},
		{"one", "a", 1},
		{"rfc2195", "tanstaaftanstaaf", 16},
		{"binary", "\0\377\0x", 4},
		{"len64", key64, 64},
		{"len65", key65, 65},
		{"len200", key200, 200},
	};
	const struct {
		const char *label;
		const char *chal;
		size_t len;
	} chals[] = {
		{"empty", "", 0},
		{"rfc2195", rfc_chal, sizeof rfc_chal - 1},
		{"len55", chal200, 55},
		{"len56", chal200, 56},
		{"len64", chal200, 64},
		{"len200", chal200, 200},
	};
	struct str ctx = STR_INIT;
	char got[33], want[33];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	size_t i, j;
	int r, hexok;

	memset(key64, 'k', sizeof key64);
	for (i = 0; i < sizeof key65; i++)
		key65[i] = (char)(i * 7);
	for (i = 0; i < sizeof key200; i++)
		key200[i] = (char)(255 - i);
	for (i = 0; i < sizeof chal200; i++)
		chal200[i] = (char)('!' + i % 90);

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		r = pw_cram_context(keys[i].key, keys[i].len, &ctx);
		CHECK_INT(tt_name("pw.cram_context_r[%s]", keys[i].label), r, 0);
		hexok = ctx.len == PW_CRAM_HEX &&
			strspn(ctx.s, "0123456789abcdef") == PW_CRAM_HEX;
		CHECK(tt_name("pw.cram_context_hex[%s]", keys[i].label), hexok);
		if (r < 0 || !hexok)
			continue;
		for (j = 0; j < sizeof chals / sizeof chals[0]; j++) {
			if (!HMAC(EVP_md5(), keys[i].key, (int)keys[i].len,
				  (const unsigned char *)chals[j].chal,
				  chals[j].len, md, &mdlen) || mdlen != 16) {
				CHECK(tt_name("pw.cram_openssl_hmac[%s,%s]",
					      keys[i].label, chals[j].label), 0);
				continue;
			}
			hex_of(md, 16, want);
			memset(got, 'X', sizeof got);
			r = pw_cram_digest(ctx.s, chals[j].chal, chals[j].len,
					   got);
			CHECK_INT(tt_name("pw.cram_digest_r[%s,%s]",
					  keys[i].label, chals[j].label), r, 0);
			CHECK_STR(tt_name("pw.cram_digest[%s,%s]",
					  keys[i].label, chals[j].label),
				  r == 0 ? got : "", want);
		}
	}

	pw_cram_context("tanstaaftanstaaf", 16, &ctx);
	r = pw_cram_digest(ctx.s, rfc_chal, sizeof rfc_chal - 1, got);
	CHECK_INT("pw.cram_rfc2195_r", r, 0);
	CHECK_STR("pw.cram_rfc2195", r == 0 ? got : "",
		  "b913a602c7eda7a495b4e6e7334d3890");

	str_copys(&ctx, "");
	CHECK_INT("pw.cram_digest_empty_ctx", pw_cram_digest(ctx.s, "x", 1, got),
		  -EINVAL);
	pw_cram_context("tanstaaftanstaaf", 16, &ctx);
	str_trunc(&ctx, PW_CRAM_HEX - 1);
	CHECK_INT("pw.cram_digest_short_ctx", pw_cram_digest(ctx.s, "x", 1, got),
		  -EINVAL);
	pw_cram_context("tanstaaftanstaaf", 16, &ctx);
	str_catc(&ctx, '0');
	CHECK_INT("pw.cram_digest_long_ctx", pw_cram_digest(ctx.s, "x", 1, got),
		  -EINVAL);
	pw_cram_context("tanstaaftanstaaf", 16, &ctx);
	ctx.s[5] = 'g';
	CHECK_INT("pw.cram_digest_nonhex_inner",
		  pw_cram_digest(ctx.s, "x", 1, got), -EINVAL);
	pw_cram_context("tanstaaftanstaaf", 16, &ctx);
	ctx.s[40] = 'A';
	CHECK_INT("pw.cram_digest_upper_outer",
		  pw_cram_digest(ctx.s, "x", 1, got), -EINVAL);
	str_free(&ctx);
}

/* ---- log ---------------------------------------------------------- */

static const char log_shape[] =
	"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
	"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-6][0-9]\\.[0-9]{6}Z "
	"[a-z0-9-]+\\[[0-9]+\\]: [^\n]*\n$";

/* log_f - log_format with variable arguments */
static __attribute__((format(printf, 4, 5)))
int log_f(struct str *out, const char *service, pid_t pid, const char *fmt,
	  ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_format(out, service, pid, fmt, ap);
	va_end(ap);
	return r;
}

/* newlines - how many '\n' bytes s holds */
static size_t newlines(const struct str *s)
{
	size_t i, n = 0;

	for (i = 0; i < s->len; i++)
		n += s->s[i] == '\n';
	return n;
}

/* line_time - the line's timestamp as seconds since the epoch, or -1 */
static time_t line_time(const char *line)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	if (sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static const struct {
	const char *label;
	const char *text;
	const char *want;
} log_cases[] = {
	{"plain", "hello world", "hello world"},
	{"empty", "", ""},
	{"lf", "a\nb", "a?b"},
	{"cr", "a\rb", "a?b"},
	{"crlf_end", "end\r\n", "end??"},
	{"forged_line", "x\n2024-01-01T00:00:00.000000Z mta-smtpd[1]: y",
	 "x?2024-01-01T00:00:00.000000Z mta-smtpd[1]: y"},
	{"controls", "\001\033[31m\037\177", "??[31m??"},
	{"tab", "a\tb", "a?b"},
	{"utf8_kept", "caf\303\251", "caf\303\251"},
	{"utf8_4byte_kept", "a\360\237\223\247b", "a\360\237\223\247b"},
	/* what a reader could take for a line break or a command */
	{"nel", "x\302\205y", "x??y"},
	{"c1_csi", "x\302\233" "31m", "x??31m"},
	{"raw_csi", "x\233" "31m", "x?31m"},
	{"line_sep", "x\342\200\250" "2024-01-01T00:00:00Z", "x???"
	 "2024-01-01T00:00:00Z"},
	{"para_sep", "\342\200\251", "???"},
	{"bidi_override", "a\342\200\256b\342\201\246c", "a???b???c"},
	{"not_utf8", "\377\376a\300\257", "??a??"},
	{"cut_sequence", "caf\303", "caf?"},
	{"surrogate", "\355\240\200", "???"},
	{"percent", "100%", "100%"},
};

/* test_log - the log line's shape, and escaping inside TEXT */
static void test_log(void)
{
	struct str line = STR_INIT, want = STR_INIT, data = STR_INIT;
	regex_t re;
	time_t now = time(NULL), t;
	size_t i;
	int fd, r;
	char *nl;

	if (regcomp(&re, log_shape, REG_EXTENDED | REG_NOSUB) != 0) {
		CHECK("log.regcomp", 0);
		return;
	}
	for (i = 0; i < sizeof log_cases / sizeof log_cases[0]; i++) {
		r = log_f(&line, "vdeliver", 4242, "%s", log_cases[i].text);
		CHECK_INT(tt_name("log.format_r[%s]", log_cases[i].label), r, 0);
		CHECK(tt_name("log.format_shape[%s]", log_cases[i].label),
		      r == 0 && regexec(&re, line.s, 0, NULL, 0) == 0);
		want.len = 0;
		str_catf(&want, " vdeliver[4242]: %s\n", log_cases[i].want);
		CHECK_MEM(tt_name("log.format_text[%s]", log_cases[i].label),
			  line.s + 27, line.len > 27 ? line.len - 27 : 0,
			  want.s, want.len);
		CHECK_INT(tt_name("log.format_one_newline[%s]",
				  log_cases[i].label), newlines(&line), 1);
	}
	log_f(&line, "mta-send", 7, "to <%s> quota %d", "bob@example.com", 5);
	CHECK("log.format_args", line.len > 27 && !strcmp(line.s + 27,
	      " mta-send[7]: to <bob@example.com> quota 5\n"));
	t = line_time(line.s);
	CHECK(tt_name("log.format_time_now[%s]", tt_show(line.s, 27)),
	      t >= now - 5 && t <= now + 5);

	/* log_open and log_write: one line per call, appended */
	mkdir(sp("logr"), 0700);
	mkdir(sp("logr/log"), 0700);
	fd = log_open(sp("logr"));
	CHECK("log.open", fd >= 0);
	if (fd >= 0) {
		CHECK_INT("log.write_1", log_write(fd, "pop3d", "login %s",
						   "a\nb"), 0);
		CHECK_INT("log.write_2", log_write(fd, "pop3d", "%s", "bye"), 0);
		close(fd);
		CHECK_INT("log.open_mode", mode_of(sp("logr/log/current")),
			  0600);
		get_file(sp("logr/log/current"), &data);
		CHECK_INT("log.write_two_lines", newlines(&data), 2);
		nl = strchr(data.s, '\n');
		want.len = 0;
		str_catf(&want, " pop3d[%ld]: login a?b\n", (long)getpid());
		CHECK("log.write_line_1", nl && data.len > 27 &&
		      (size_t)(nl + 1 - data.s) == 27 + want.len &&
		      !memcmp(data.s + 27, want.s, want.len));
		want.len = 0;
		str_catf(&want, " pop3d[%ld]: bye\n", (long)getpid());
		CHECK("log.write_line_2", nl && !strcmp(nl + 1 + 27, want.s));
		if (nl) {
			nl[1] = 0;
			CHECK("log.write_line_1_shape",
			      regexec(&re, data.s, 0, NULL, 0) == 0);
		}
	}
	CHECK_INT("log.open_missing_dir", log_open(sp("logr/none")), -ENOENT);
	mkdir(sp("logl"), 0700);
	mkdir(sp("logl/log"), 0700);
	(void)!symlink(sp("logr/log/current"), sp("logl/log/current"));
	CHECK_INT("log.open_symlink", log_open(sp("logl")), -ELOOP);
	regfree(&re);
	str_free(&line);
	str_free(&want);
	str_free(&data);
}

/* ---- args --------------------------------------------------------- */

static const struct {
	const char *label;
	const char *argv[8];		/* NULL-terminated */
	const char *env;		/* FACTEUR_ROOT, NULL: unset */
	const char *want;		/* NULL: refused */
	const char *want_argv[8];
} args_cases[] = {
	{"before_subcommand", {"vadmin", "--root", "/r", "adduser", "x", NULL},
	 NULL, "/r", {"vadmin", "adduser", "x", NULL}},
	{"after_subcommand", {"vadmin", "adduser", "--root", "/r", "x", NULL},
	 NULL, "/r", {"vadmin", "adduser", "x", NULL}},
	{"last", {"vadmin", "adduser", "x", "--root", "/r", NULL},
	 NULL, "/r", {"vadmin", "adduser", "x", NULL}},
	{"equals", {"vadmin", "adduser", "--root=/r", "x", NULL},
	 NULL, "/r", {"vadmin", "adduser", "x", NULL}},
	{"flag_beats_env", {"facteur", "--root", "/r", "run", NULL},
	 "/e", "/r", {"facteur", "run", NULL}},
	{"env", {"facteur", "run", NULL}, "/e", "/e", {"facteur", "run", NULL}},
	{"empty_env", {"facteur", "run", NULL}, "", ROOT_DEFAULT,
	 {"facteur", "run", NULL}},
	{"default", {"facteur", "run", NULL}, NULL, ROOT_DEFAULT,
	 {"facteur", "run", NULL}},
	{"twice_last_wins", {"f", "--root=/a", "x", "--root", "/b", NULL},
	 NULL, "/b", {"f", "x", NULL}},
	{"after_dashdash", {"f", "x", "--", "--root", "/r", NULL}, "/e", "/e",
	 {"f", "x", "--", "--root", "/r", NULL}},
	{"no_value", {"f", "x", "--root", NULL}, "/e", NULL, {NULL}},
	{"empty_equals", {"f", "x", "--root=", NULL}, "/e", NULL, {NULL}},
	{"empty_value", {"f", "--root", "", "x", NULL}, "/e", NULL, {NULL}},
	{"prefix_not_flag", {"f", "--rooted", "x", NULL}, NULL, ROOT_DEFAULT,
	 {"f", "--rooted", "x", NULL}},
};

static const struct {
	const char *argv[6];
	int want;
} help_cases[] = {
	{{"f", "--help", NULL}, 1},
	{{"f", "add", "-h", NULL}, 1},
	{{"f", "add", "x", NULL}, 0},
	{{"f", "--", "--help", NULL}, 0},
	{{"f", "--helpme", NULL}, 0},
	{{"f", "--root", "--help", NULL}, 0},
};

/* test_args - --root anywhere, the environment, the default */
static void test_args(void)
{
	const char *saved = getenv("FACTEUR_ROOT");
	char *keep = saved ? strdup(saved) : NULL;
	size_t i, j;

	for (i = 0; i < sizeof args_cases / sizeof args_cases[0]; i++) {
		char store[8][32], *v[8];
		const char *got, *label = args_cases[i].label;
		int argc = 0, bad = 0;

		for (j = 0; args_cases[i].argv[j]; j++) {
			snprintf(store[j], sizeof store[j], "%s",
				 args_cases[i].argv[j]);
			v[j] = store[j];
		}
		argc = (int)j;
		v[j] = NULL;
		if (args_cases[i].env)
			setenv("FACTEUR_ROOT", args_cases[i].env, 1);
		else
			unsetenv("FACTEUR_ROOT");
		got = args_root(&argc, v);
		if (!args_cases[i].want) {
			CHECK(tt_name("args.root_refused[%s]", label), !got);
			continue;
		}
		CHECK_STR(tt_name("args.root[%s]", label), got,
			  args_cases[i].want);
		for (j = 0; args_cases[i].want_argv[j]; j++)
			bad |= (int)j >= argc || strcmp(v[j],
						      args_cases[i].want_argv[j]);
		bad |= (int)j != argc || v[argc] != NULL;
		CHECK(tt_name("args.root_argv[%s]", label), !bad);
	}
	if (keep)
		setenv("FACTEUR_ROOT", keep, 1);
	else
		unsetenv("FACTEUR_ROOT");
	free(keep);

	for (i = 0; i < sizeof help_cases / sizeof help_cases[0]; i++) {
		int argc = 0;

		while (help_cases[i].argv[argc])
			argc++;
		CHECK_INT(tt_name("args.has_help[%zu]", i),
			  args_has_help(argc, (char **)help_cases[i].argv),
			  help_cases[i].want);
	}
}

/* envelope programs (args.h): the first operand and "--" end the options,
 * a valued option's value is never an option; FACTEUR_ROOT unset */
static const struct {
	const char *label;
	const char *valued;
	const char *argv[8];		/* NULL-terminated */
	const char *want;		/* NULL: refused */
	const char *want_argv[8];
	int help;
} env_cases[] = {
	{"before_operands", "f", {"mta-inject", "--root", "/r", "-f", "s@x",
	 "r@x", NULL}, "/r", {"mta-inject", "-f", "s@x", "r@x", NULL}, 0},
	{"rcpt_is_not_root", "f", {"mta-inject", "-f", "s@x", "v@x",
	 "--root=/evil@x", NULL}, ROOT_DEFAULT, {"mta-inject", "-f", "s@x",
	 "v@x", "--root=/evil@x", NULL}, 0},
	{"rcpt_pair_is_not_root", "", {"mta-remote", "d", "s@x", "--root",
	 "/evil", NULL}, ROOT_DEFAULT, {"mta-remote", "d", "s@x", "--root",
	 "/evil", NULL}, 0},
	{"sender_value_is_not_root", "f", {"vdeliver", "-f", "--root=/evil",
	 "r@x", NULL}, ROOT_DEFAULT, {"vdeliver", "-f", "--root=/evil", "r@x",
	 NULL}, 0},
	{"sender_value_root_pair", "f", {"vdeliver", "--root", "/r", "-f",
	 "--root", "/evil", NULL}, "/r", {"vdeliver", "-f", "--root", "/evil",
	 NULL}, 0},
	{"joined_sender", "f", {"vdeliver", "-f--root=/evil", "--root", "/r",
	 "r@x", NULL}, "/r", {"vdeliver", "-f--root=/evil", "r@x", NULL}, 0},
	{"after_dashdash", "f", {"mta-inject", "--root=/r", "-fs@x", "--",
	 "--root=/evil@x", NULL}, "/r", {"mta-inject", "-fs@x", "--",
	 "--root=/evil@x", NULL}, 0},
	{"after_flags", "fFrB", {"sendmail", "-t", "-i", "-B", "8BITMIME",
	 "--root", "/r", NULL}, "/r", {"sendmail", "-t", "-i", "-B",
	 "8BITMIME", NULL}, 0},
	{"dash_alone_is_operand", "f", {"vdeliver", "-", "--root", "/evil",
	 NULL}, ROOT_DEFAULT, {"vdeliver", "-", "--root", "/evil", NULL}, 0},
	{"help", "f", {"mta-inject", "-f", "s@x", "--help", NULL},
	 ROOT_DEFAULT, {"mta-inject", "-f", "s@x", "--help", NULL}, 1},
	{"help_as_rcpt", "f", {"mta-inject", "-f", "s@x", "r@x", "--help",
	 NULL}, ROOT_DEFAULT, {"mta-inject", "-f", "s@x", "r@x", "--help",
	 NULL}, 0},
	{"help_as_sender", "f", {"mta-inject", "-f", "--help", "r@x", NULL},
	 ROOT_DEFAULT, {"mta-inject", "-f", "--help", "r@x", NULL}, 0},
	{"help_after_dashdash", "", {"mta-remote", "--", "--help", NULL},
	 ROOT_DEFAULT, {"mta-remote", "--", "--help", NULL}, 0},
	{"bare_root", "f", {"vdeliver", "--root", NULL}, NULL, {NULL}, 0},
	/* found by fuzz_args: --root's value is not read as --help */
	{"root_value_not_help", "f", {"mta-inject", "--root", "-h", "r@x",
	 NULL}, "-h", {"mta-inject", "r@x", NULL}, 0},
};

/* test_args_env - where an envelope program's options end */
static void test_args_env(void)
{
	const char *saved = getenv("FACTEUR_ROOT");
	char *keep = saved ? strdup(saved) : NULL;
	struct str o = STR_INIT;
	size_t i, j;

	unsetenv("FACTEUR_ROOT");
	for (i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++) {
		char store[8][32], *v[8];
		const char *got, *label = env_cases[i].label;
		int argc = 0, bad = 0;

		for (j = 0; env_cases[i].argv[j]; j++) {
			snprintf(store[j], sizeof store[j], "%s",
				 env_cases[i].argv[j]);
			v[j] = store[j];
		}
		argc = (int)j;
		v[j] = NULL;
		CHECK_INT(tt_name("args.env_help[%s]", label),
			  args_has_help_env(argc, v, env_cases[i].valued),
			  env_cases[i].help);
		got = args_root_env(&argc, v, env_cases[i].valued);
		if (!env_cases[i].want) {
			CHECK(tt_name("args.env_root_refused[%s]", label),
			      !got);
			continue;
		}
		CHECK_STR(tt_name("args.env_root[%s]", label), got,
			  env_cases[i].want);
		for (j = 0; env_cases[i].want_argv[j]; j++)
			bad |= (int)j >= argc ||
			       strcmp(v[j], env_cases[i].want_argv[j]);
		bad |= (int)j != argc || v[argc] != NULL;
		CHECK(tt_name("args.env_root_argv[%s]", label), !bad);
	}
	if (keep)
		setenv("FACTEUR_ROOT", keep, 1);
	free(keep);
	CHECK("args.sender_opt", args_sender_opt(&o, "--root=/x@y") == 0 &&
	      str_eqs(&o, "-f--root=/x@y"));
	CHECK("args.sender_opt_null", args_sender_opt(&o, "") == 0 &&
	      str_eqs(&o, "-f<>"));
	str_free(&o);
}

/* ---- db ----------------------------------------------------------- */

/* query_int - the first column of the first row, or -1 */
static long long query_int(sqlite3 *db, const char *sql, const char *arg)
{
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* copy_self - this test program, copied to NAME in directory DFD */
static int copy_self(int dfd, const char *name)
{
	char buf[65536];
	ssize_t n;
	int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			 0700);
	int r = in < 0 || out < 0 ? -1 : 0;

	while (r == 0 && (n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			r = -1;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0)
		r = -1;
	return r;
}

/* child_output - what child PID wrote on FD (the read end of its pipe)
 * until it closed it, NUL-terminated and cut to CAP - 1 bytes; then its
 * wait status */
static void child_output(int fd, pid_t pid, char *got, size_t cap, int *st)
{
	ssize_t n;
	size_t k = 0;

	while (k + 1 < cap && (n = read(fd, got + k, cap - 1 - k)) > 0)
		k += (size_t)n;
	got[k] = 0;
	close(fd);
	waitpid(pid, st, 0);
}

/* test_args_sibling_long - args_sibling() from a binary whose path is longer
 * than its first guess (256) and than the 4076 bytes sendmail's old fixed
 * buffer held: the copy of this program at the end of nested directories
 * names its sibling in full */
static void test_args_sibling_long(void)
{
	struct str want = STR_INIT, deep = STR_INIT;
	char got[8192], comp[201];
	int dfd = open(scratch, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fds[2];
	pid_t pid;
	int st;

	memset(comp, 'd', 200);
	comp[200] = 0;
	str_cats(&deep, scratch);
	/* stop where the binary's path ("/t") is 4080 bytes long */
	while (dfd >= 0 && deep.len + 1 + 200 + 2 <= 4080) {
		int nd;

		mkdirat(dfd, comp, 0700);
		nd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(dfd);
		dfd = nd;
		str_catc(&deep, '/');
		str_cats(&deep, comp);
	}
	if (dfd >= 0 && deep.len + 2 < 4080) {
		int nd;

		/* the last directory, sized to reach 4080 exactly */
		comp[4080 - deep.len - 2 - 1] = 0;
		mkdirat(dfd, comp, 0700);
		nd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(dfd);
		dfd = nd;
		str_catc(&deep, '/');
		str_cats(&deep, comp);
	}
	str_catf(&want, "%s/mta-smtpd", deep.s);
	if (dfd < 0 || copy_self(dfd, "t") < 0 || pipe(fds) < 0) {
		tt_check(0, "args_sibling_setup", "cannot copy: %s",
			 strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		setenv("FACTEUR_TEST_SIBLING", "mta-smtpd", 1);
		if (fchdir(dfd) == 0)
			execl("./t", "t", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	child_output(fds[0], pid, got, sizeof got, &st);
	tt_check(deep.len + 2 == 4080, "args_sibling_path_len", "%zu",
		 deep.len + 2);
	tt_check(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
		 !strcmp(got, want.s), "args_sibling_long_path",
		 "exit %d, got %zu bytes, want %zu", st, strlen(got), want.len);
out:
	if (dfd >= 0)
		close(dfd);
	str_free(&want);
	str_free(&deep);
}

/* sibling_child - in the copy that test_args_sibling_long starts
 * (FACTEUR_TEST_SIBLING=PROG): print args_sibling(PROG) and exit, before
 * main() */
__attribute__((constructor)) static void sibling_child(void)
{
	const char *prog = getenv("FACTEUR_TEST_SIBLING");
	struct str p = STR_INIT;
	int r;

	if (!prog)
		return;
	r = args_sibling(&p, prog);
	if (r == 0)
		fputs(p.s, stdout);
	str_free(&p);
	exit(r == 0 && fflush(stdout) == 0 ? 0 : 1);
}

/* test_db - creation, migrations, reopening, a newer database refused */
static void test_db(void)
{
	static const char *const tables[] = {
		"domains", "users", "aliases", "forwards", "pending",
	};
	char root[PATH_MAX];
	int last = schema_migrations[schema_migration_count - 1].version;
	struct str p = STR_INIT;
	sqlite3 *db = NULL, *db2 = NULL;
	size_t i;
	int r;

	snprintf(root, sizeof root, "%s", sp("dbroot"));
	CHECK_INT("db.path_r", db_path(&p, "/R"), 0);
	CHECK_STR("db.path", str_cstr(&p), "/R/db/accounts.sqlite");
	str_free(&p);

	mkdir(root, 0700);
	CHECK_INT("db.open_no_db_dir", db_open(root, 1, &db), -ENOENT);
	mkdir(sp("dbroot/db"), 0700);
	CHECK_INT("db.open_no_file_no_create", db_open(root, 0, &db), -ENOENT);
	r = db_open(root, 1, &db);
	CHECK_INT("db.open_create", r, 0);
	if (r < 0)
		return;
	CHECK_INT("db.version_last_migration", db_version(db), last);
	for (i = 0; i < sizeof tables / sizeof tables[0]; i++)
		CHECK_INT(tt_name("db.table[%s]", tables[i]),
			  query_int(db, "SELECT count(*) FROM sqlite_master "
				    "WHERE type = 'table' AND name = ?",
				    tables[i]), 1);
	CHECK_INT("db.foreign_keys", query_int(db, "PRAGMA foreign_keys",
					       NULL), 1);
	CHECK_INT("db.synchronous_full", query_int(db, "PRAGMA synchronous",
						   NULL), 2);
	CHECK_INT("db.wal", query_int(db, "SELECT journal_mode = 'wal' FROM "
				      "pragma_journal_mode", NULL), 1);
	CHECK_INT("db.exec", db_exec(db, "CREATE TABLE t (x)"), 0);
	CHECK_INT("db.exec_error", db_exec(db, "CREATE TABLE t (x)"), -EIO);
	CHECK("db.errmsg", db_errmsg(db) && *db_errmsg(db));
	CHECK_STR("db.errmsg_null", db_errmsg(NULL), "no database");

	r = db_open(root, 1, &db2);
	CHECK_INT("db.open_twice_concurrently", r, 0);
	if (r == 0) {
		CHECK_INT("db.open_twice_version", db_version(db2), last);
		sqlite3_close(db2);
	}
	sqlite3_close(db);

	r = db_open(root, 0, &db);
	CHECK_INT("db.reopen", r, 0);
	if (r < 0)
		return;
	CHECK_INT("db.reopen_version", db_version(db), last);
	CHECK_INT("db.reopen_kept_data", query_int(db, "SELECT count(*) FROM "
						   "sqlite_master WHERE name = 't'",
						   NULL), 1);
	p.len = 0;
	str_catf(&p, "PRAGMA user_version = %d", last + 1);
	db_exec(db, p.s);
	str_free(&p);
	sqlite3_close(db);
	db = NULL;
	CHECK_INT("db.open_newer_refused", db_open(root, 0, &db), -EPROTO);
	CHECK("db.open_newer_no_handle", db == NULL);
}

/* hops - a header of N Received: fields (folded when fold), then LINE,
 * scanned in pieces of step bytes (0: at once) */
static void hops(struct hdrscan *h, int n, int fold, const char *line,
		 size_t step)
{
	struct str m = STR_INIT;
	size_t i;
	int k;

	for (k = 0; k < n; k++)
		str_catf(&m, fold ? "Received: from h%d\n\tby x;\n\t1 Jan\n" :
			 "Received: from h%d\n", k);
	str_cats(&m, line);
	hdrscan_init(h, NULL, 0);
	if (step == 0)
		hdrscan_feed(h, str_cstr(&m), m.len);
	for (i = 0; step && i < m.len; i += step)
		hdrscan_feed(h, m.s + i, m.len - i < step ? m.len - i : step);
	hdrscan_end(h);
	str_free(&m);
}

/* test_hdrscan_hops - the hop limit of RFC 5321 6.3, kept once in
 * lib/hdrscan for mta-smtpd, mta-inject, sendmail and mta-send */
static void test_hdrscan_hops(void)
{
	static const size_t steps[] = {0, 1, 5};
	static const char body[] = "\nReceived: in the body\n";
	struct hdrscan h;
	struct str big = STR_INIT;
	size_t s;
	int fd;

	for (s = 0; s < sizeof steps / sizeof *steps; s++) {
		hops(&h, 100, 0, body, steps[s]);
		CHECK_INT(tt_name("hops_100_count_step%zu", steps[s]),
			  h.received, 100);
		CHECK_INT(tt_name("hops_100_not_loop_step%zu", steps[s]),
			  hdrscan_looped(&h, 0), 0);
		hdrscan_free(&h);
		hops(&h, 101, 1, body, steps[s]);
		CHECK_INT(tt_name("hops_101_folded_count_step%zu", steps[s]),
			  h.received, 101);
		CHECK_INT(tt_name("hops_101_loop_step%zu", steps[s]),
			  hdrscan_looped(&h, 0), 1);
		hdrscan_free(&h);
	}
	/* a queued message carries its entry's own line on top */
	hops(&h, 101, 0, "\n", 0);
	CHECK_INT("hops_101_queued_not_loop", hdrscan_looped(&h, 1), 0);
	hdrscan_free(&h);
	hops(&h, 102, 0, "\n", 0);
	CHECK_INT("hops_102_queued_loop", hdrscan_looped(&h, 1), 1);
	hdrscan_free(&h);
	/* the name in any case, with obsolete space; look-alikes are not */
	hops(&h, 0, 0, "RECEIVED: a\nreceived : b\nX-Received: c\n"
	     "Received-SPF: pass\nReceivedX: d\n\n", 0);
	CHECK_INT("hops_name_forms", h.received, 2);
	hdrscan_free(&h);
	hops(&h, 0, 0, "Received: a\r\nReceived: b\r\n\r\nReceived: c\r\n", 1);
	CHECK_INT("hops_crlf", h.received, 2);
	hdrscan_free(&h);
	/* a trace field longer than the compare bound still counts */
	str_cats(&big, "Received: ");
	while (big.len < 3 * HDRSCAN_FIELD_MAX)
		str_cats(&big, "from x\n\t");
	str_cats(&big, "by y\n\n");
	hdrscan_init(&h, NULL, 0);
	hdrscan_feed(&h, big.s, big.len);
	hdrscan_end(&h);
	CHECK_INT("hops_long_field", h.received, 1);
	hdrscan_free(&h);

	/* from a file at an offset, as mta-send reads a queue file */
	big.len = 0;
	str_cats(&big, "ENVELOPE");
	for (s = 0; s < 101; s++)
		str_catf(&big, "Received: from h%zu\n", s);
	str_cats(&big, "\nReceived: body\n");
	put_file(sp("hops"), big.s, big.len);
	fd = open(sp("hops"), O_RDONLY | O_CLOEXEC);
	hdrscan_init(&h, NULL, 0);
	CHECK_INT("hops_fd", hdrscan_fd(&h, fd, 8, big.len - 8), 0);
	CHECK_INT("hops_fd_count", h.received, 101);
	CHECK_INT("hops_fd_loop", hdrscan_looped(&h, 0), 1);
	hdrscan_free(&h);
	/* a length past the end of the file: what is there is judged */
	hdrscan_init(&h, NULL, 0);
	CHECK_INT("hops_fd_short", hdrscan_fd(&h, fd, 8, big.len + 1000), 0);
	CHECK_INT("hops_fd_short_count", h.received, 101);
	hdrscan_free(&h);
	/* only the first 10 lines given: 10 counted */
	hdrscan_init(&h, NULL, 0);
	CHECK_INT("hops_fd_part", hdrscan_fd(&h, fd, 8, 10 * 18), 0);
	CHECK_INT("hops_fd_part_count", h.received, 10);
	hdrscan_free(&h);
	hdrscan_init(&h, NULL, 0);
	CHECK_INT("hops_fd_badfd", hdrscan_fd(&h, -1, 0, 10), -EBADF);
	hdrscan_free(&h);
	close(fd);
	str_free(&big);
}

/* num_cases - lib/num: whole-string parsing against a max */
static const struct {
	const char *in;
	uint64_t max;
	int want_r;
	uint64_t want;
} num_cases[] = {
	{"", UINT64_MAX, -EINVAL, 0},
	{"0", UINT64_MAX, 0, 0},
	{"0", 0, 0, 0},
	{"1", 0, -ERANGE, 0},
	{"007", 7, 0, 7},
	{"65535", 65535, 0, 65535},
	{"65536", 65535, -ERANGE, 0},
	{"0000065535", 65535, 0, 65535},
	{"255", 255, 0, 255},
	{"256", 255, -ERANGE, 0},
	{"18446744073709551615", UINT64_MAX, 0, UINT64_MAX},
	{"18446744073709551616", UINT64_MAX, -ERANGE, 0},
	{"99999999999999999999999", UINT64_MAX, -ERANGE, 0},
	{"9223372036854775807", INT64_MAX, 0, INT64_MAX},
	{"9223372036854775808", INT64_MAX, -ERANGE, 0},
	{"+1", UINT64_MAX, -EINVAL, 0},
	{"-1", UINT64_MAX, -EINVAL, 0},
	{" 1", UINT64_MAX, -EINVAL, 0},
	{"1 ", UINT64_MAX, -EINVAL, 0},
	{"1x", UINT64_MAX, -EINVAL, 0},
	{"0x10", UINT64_MAX, -EINVAL, 0},
	{"1.5", UINT64_MAX, -EINVAL, 0},
};

/* test_num - num_parse, num_parseb and num_scan */
static void test_num(void)
{
	uint64_t v;
	size_t i, used;
	int r;

	for (i = 0; i < sizeof num_cases / sizeof num_cases[0]; i++) {
		v = 12345;
		r = num_parse(num_cases[i].in, num_cases[i].max, &v);
		CHECK_INT(tt_name("num.parse_r[%s/%llu]", num_cases[i].in,
				  (unsigned long long)num_cases[i].max), r,
			  num_cases[i].want_r);
		CHECK_U64(tt_name("num.parse[%s]", num_cases[i].in), v,
			  r == 0 ? num_cases[i].want : 12345);
	}
	/* a length, not a NUL, ends the number */
	CHECK_INT("num.parseb_len", num_parseb("1234", 2, 99, &v), 0);
	CHECK_U64("num.parseb_len_v", v, 12);
	CHECK_INT("num.parseb_nul_inside", num_parseb("1\0" "2", 3, 99, &v),
		  -EINVAL);
	CHECK_INT("num.parseb_empty", num_parseb("5", 0, 99, &v), -EINVAL);

	v = used = 99;
	CHECK_INT("num.scan_suffix", num_scan("50M", 3, UINT64_MAX, &v, &used),
		  0);
	CHECK_U64("num.scan_suffix_v", v, 50);
	CHECK_INT("num.scan_suffix_used", (int)used, 2);
	CHECK_INT("num.scan_all", num_scan("123", 3, 123, &v, &used), 0);
	CHECK_INT("num.scan_all_used", (int)used, 3);
	CHECK_INT("num.scan_none", num_scan("M", 1, 9, &v, &used), -EINVAL);
	CHECK_INT("num.scan_sign", num_scan("-1", 2, 9, &v, &used), -EINVAL);
	used = 77;
	CHECK_INT("num.scan_over", num_scan("10,", 3, 9, &v, &used), -ERANGE);
	CHECK_INT("num.scan_over_untouched", (int)used, 77);
	CHECK_INT("num.scan_stops_at_len", num_scan("19", 1, 9, &v, &used), 0);
	CHECK_U64("num.scan_stops_at_len_v", v, 1);
}

/* test_date - date_cat in zones set by TZ, east and west of UTC */
static void test_date(void)
{
	static const struct {
		const char *tz;
		time_t t;
		const char *want;
	} cases[] = {
		{"UTC0", 0, "Thu, 01 Jan 1970 00:00:00 +0000"},
		{"UTC0", 1796530000, "Sun, 06 Dec 2026 04:06:40 +0000"},
		{"XST-5:30", 1796530000, "Sun, 06 Dec 2026 09:36:40 +0530"},
		{"NST3:30", 0, "Wed, 31 Dec 1969 20:30:00 -0330"},
	};
	const char *old = getenv("TZ");
	char *saved = old ? strdup(old) : NULL;
	struct str s = STR_INIT;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		setenv("TZ", cases[i].tz, 1);
		tzset();
		str_copys(&s, "Date: ");
		CHECK_INT(tt_name("date.cat_r[%zu]", i), date_cat(&s, cases[i].t),
			  0);
		CHECK_STR(tt_name("date.cat[%zu]", i), s.s + 6, cases[i].want);
		CHECK(tt_name("date.cat_appends[%zu]", i),
		      !strncmp(s.s, "Date: ", 6));
	}
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	str_free(&s);
}

/* test_args_sibling - the directory of this very binary, and a sibling */
static void test_args_sibling(void)
{
	struct str s = STR_INIT;
	struct stat self, st;

	CHECK_INT("args.sibling_r", args_sibling(&s, "test_lib"), 0);
	CHECK(tt_name("args.sibling_is_this_binary"),
	      stat("/proc/self/exe", &self) == 0 && stat(s.s, &st) == 0 &&
	      st.st_ino == self.st_ino && st.st_dev == self.st_dev);
	CHECK_INT("args.sibling_dir_r", args_sibling(&s, ""), 0);
	CHECK(tt_name("args.sibling_dir_slash"),
	      s.len > 1 && s.s[0] == '/' && s.s[s.len - 1] == '/');
	CHECK(tt_name("args.sibling_dir_is_dir"),
	      stat(s.s, &st) == 0 && S_ISDIR(st.st_mode));
	str_free(&s);
}

/* test_priv_start - started as root with a mail user that does not
 * exist: exit 111 and the one line saying why; started as anyone else:
 * nothing to drop, it returns */
static void test_priv_start(void)
{
	char got[512];
	int fds[2], st = 0;
	pid_t pid;

	CHECK_INT("priv_start_setup", fsx_mkdir(sp("priv"), 0755) == 0 &&
		  fsx_mkdir(sp("priv/control"), 0755) == 0 &&
		  fsx_write_atomic(sp("priv/control/mailuser"),
				   "no-such-user-facteur\n", 21, 0644) == 0 &&
		  pipe(fds) == 0, 1);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 2);
		msg_init("t");
		priv_start(sp("priv"));
		_exit(0);
	}
	close(fds[1]);
	child_output(fds[0], pid, got, sizeof got, &st);
	if (geteuid() != 0) {
		CHECK("priv_start_not_root", WIFEXITED(st) &&
		      WEXITSTATUS(st) == 0 && !got[0]);
		return;
	}
	CHECK("priv_start_exit_111", WIFEXITED(st) && WEXITSTATUS(st) == 111);
	CHECK("priv_start_says_why",
	      !strncmp(got, "t: cannot become the mail user of ", 34) &&
	      strstr(got, "/priv: the user named in control/mailuser does "
		     "not exist"));
}

/* test_addrlist - the addresses of a field value; a display name word is
 * dropped, an address kept; half a megabyte of address and of spaces
 * after it is one pass (the '@' was searched for again at each space) */
static void test_addrlist(void)
{
	static const struct {
		const char *in, *want;	/* want: addresses joined by '|' */
		size_t n;
	} cases[] = {
		{"Ann Bee <a@b.test>, c@d.test", "a@b.test|c@d.test", 2},
		{"word word a@b.test", "a@b.test", 1},
		{"\"x, y\" <a@b> (c@d, e)", "a@b", 1},
		{"team: a@b, c@d;", "a@b|c@d", 2},
		{"<a@b> ", "a@b", 1},
		/* nothing is validated: the last word is the caller's to check */
		{"no address here", "here", 1},
		{"<a@b", "", 0},
	};
	struct str out = STR_INIT, big = STR_INIT;
	size_t i, j, n;

	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		out.len = 0;
		n = 0;
		CHECK_INT(tt_name("addrlist_r[%zu]", i),
			  addrlist_parse(cases[i].in, &out, &n), 0);
		for (j = 0; j < out.len; j++)
			if (out.s[j] == 0 && j + 1 < out.len)
				out.s[j] = '|';
		CHECK_STR(tt_name("addrlist[%zu]", i), out.len ? out.s : "",
			  cases[i].want);
		CHECK_INT(tt_name("addrlist_n[%zu]", i), (int)n,
			  (int)cases[i].n);
	}
	str_catc(&big, '<');
	for (i = 0; i < 500000; i++)
		str_catc(&big, 'a');
	str_cats(&big, "@x>");
	for (i = 0; i < 500000; i++)
		str_catc(&big, i % 80 ? ' ' : '\n');
	out.len = 0;
	n = 0;
	CHECK_INT("addrlist_big_r", addrlist_parse(big.s, &out, &n), 0);
	CHECK("addrlist_big", n == 1 && out.len == 500003 &&
	      !memcmp(out.s + 500000, "@x", 3));
	str_free(&out);
	str_free(&big);
}

/* json_of - what json_put_str prints for S (N bytes), into OUT */
static void json_of(const char *s, size_t n, struct str *out)
{
	char path[PATH_MAX];
	int saved, fd;

	snprintf(path, sizeof path, "%s/json.out", scratch);
	fflush(stdout);
	saved = dup(1);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (saved < 0 || fd < 0 || dup2(fd, 1) < 0)
		return;
	json_put_str(s, n);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(fd);
	out->len = 0;
	(void)fsx_read_file(path, out, 4096);
}

/* test_json - quotes, backslashes and control bytes escaped, UTF-8 kept,
 * a byte that is not UTF-8 made U+FFFD: the output is valid JSON */
static void test_json(void)
{
	struct str o = STR_INIT;

	json_of("a\"b\\c\n\x7f", 7, &o);
	CHECK_STR("json.escapes", str_cstr(&o), "\"a\\\"b\\\\c\\u000a\\u007f\"");
	json_of("caf\303\251 \360\237\223\247", 10, &o);
	CHECK_STR("json.utf8_kept", str_cstr(&o),
		  "\"caf\303\251 \360\237\223\247\"");
	json_of("u@\377\376x\303", 6, &o);
	CHECK_STR("json.not_utf8", str_cstr(&o),
		  "\"u@\\ufffd\\ufffdx\\ufffd\"");
	str_free(&o);
}

int main(void)
{
	umask(022);
	if (!mkdtemp(scratch)) {
		printf("FAIL mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_str();
	test_fsx_write();
	test_fsx_mkdir();
	test_fsx_rmtree();
	test_fsx_read();
	test_num();
	test_date();
	test_ctl();
	test_cdbx_big();
	test_cdbx_edges();
	test_name();
	test_quota();
	test_pw_hash();
	test_pw_cram();
	test_log();
	test_args();
	test_args_env();
	test_args_sibling();
	test_db();
	test_hdrscan_hops();
	test_addrlist();
	test_json();
	test_args_sibling_long();
	test_priv_start();
	CHECK_INT("cleanup", fsx_rmtree(scratch), 0);
	CHECK_INT("cleanup_gone", exists(scratch), 0);
	return tt_exit();
}
