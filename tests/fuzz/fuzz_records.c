/*
 * fuzz_records - libFuzzer target for the readers of the records vadmin
 * writes into the CDBs (docs/architecture.md "Generated tables"), which
 * vdeliver, mta-smtpd and pop3d read: acct_fields (the one splitter),
 * assign.cdb's REAL \0 DIR \0 SHARDS (through acct_domain, from a CDB
 * written in a scratch root on tmpfs), a mailbox's MAILDIR \0 BYTES \0
 * MSGS \0 FLAGS and a forward's KEEP \0 DEST (lib/rcpt), and the
 * extension rule that walks a local part's prefixes (rcpt_ext_prev).
 *
 * Checked against models: a record splits into K fields exactly when it
 * holds K-1 NULs, and the fields joined by NUL give it back; an assign
 * record is taken exactly when its shard count is a power of two up to
 * 65536; a mailbox record is taken only with decimal numbers and a
 * Maildir that lib/login would take too (under domains/, relative, no
 * "." or ".." component, no control byte: the table is a file, and
 * delivery must not leave the root whatever it says); a forward is
 * KEEP 0 or 1 and a destination without NUL; the extension walk visits
 * exactly the '-' and '+' after the first byte, longest first. The same
 * bytes as a queue file's name (queue_id_parse: what mta-send takes from
 * queue/ and the tools from their arguments): taken exactly when they
 * are two runs of 1 to 16 lower-case hex digits joined by a dot, read
 * as those two numbers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acct.h"
#include "cdbx.h"
#include "queue.h"
#include "rcpt.h"
#include "scratch.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	scratch_make("records", "assign.cdb");
	return 0;
}

/* nuls - how many NUL bytes */
static size_t nuls(const char *s, size_t n)
{
	size_t i, k = 0;

	for (i = 0; i < n; i++)
		k += !s[i];
	return k;
}

/* decimal - digits only, at least one */
static int decimal(const char *s, size_t n)
{
	return n > 0 && strspn(s, "0123456789") >= n;
}

/* check_fields - acct_fields for K = 1..6 against the NUL count */
static void check_fields(const struct str *v)
{
	const char *f[6];
	size_t len[6], k, j;
	struct str back = STR_INIT;

	for (k = 1; k <= 6; k++) {
		int r = acct_fields(v->s, v->len, f, len, k);

		if ((r == 0) != (nuls(v->s, v->len) == k - 1))
			abort();
		if (r)
			continue;
		back.len = 0;
		for (j = 0; j < k; j++)
			if ((j && str_catc(&back, 0)) ||
			    strlen(f[j]) != len[j] ||
			    str_catb(&back, f[j], len[j]))
				abort();
		if (back.len != v->len || (back.len &&
		    memcmp(back.s, v->s, back.len)))
			abort();
	}
	str_free(&back);
}

/* maildir_safe - what a delivery may open below the root (an empty
 * component, "a//b", is "a/b" to the kernel) */
static int maildir_safe(const struct str *m)
{
	const char *p = m->s;

	if (m->len < 9 || strncmp(p, "domains/", 8) || strlen(p) != m->len ||
	    p[m->len - 1] == '/')
		return 0;
	for (size_t i = 0; i < m->len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	while (p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p = e ? e + 1 : NULL;
	}
	return 1;
}

/* check_user - a mailbox record */
static void check_user(const struct str *v)
{
	struct rcpt_user u = RCPT_USER_INIT;
	const char *f[4];
	size_t len[4];

	if (rcpt_parse_user(v->s, v->len, &u) == 0) {
		if (acct_fields(v->s, v->len, f, len, 4) ||
		    !decimal(f[1], len[1]) || !decimal(f[2], len[2]) ||
		    !decimal(f[3], len[3]) || !maildir_safe(&u.maildir) ||
		    len[0] != u.maildir.len || memcmp(f[0], u.maildir.s,
						      len[0]))
			abort();
	}
	rcpt_user_free(&u);
}

/* check_forward - KEEP \0 DEST */
static void check_forward(const struct str *v)
{
	const char *dest;
	size_t dlen;
	int keep = -1;

	if (rcpt_parse_forward(v->s, v->len, &keep, &dest, &dlen) == 0 &&
	    (v->len < 3 || nuls(v->s, v->len) != 1 || v->s[1] ||
	     keep != (v->s[0] == '1') || (v->s[0] != '0' && v->s[0] != '1') ||
	     dest != v->s + 2 || dlen != v->len - 2 || !dlen))
		abort();
}

/* check_ext - rcpt_ext_prev's walk against every '-' and '+' */
static void check_ext(const struct str *v)
{
	size_t len = v->len, i, next;

	for (;;) {
		next = rcpt_ext_prev(v->s, len);
		/* the model: the last '-' or '+' in [1, len) */
		for (i = len > 0 ? len - 1 : 0; i >= 1; i--)
			if (v->s[i] == '-' || v->s[i] == '+')
				break;
		if (next != (len > 1 ? i : 0))
			abort();
		if (!next)
			break;
		len = next;
	}
}

/* check_assign - the record as assign.cdb's value for "e.test" */
static void check_assign(const struct str *v)
{
	struct acct_domain d = {STR_INIT, STR_INIT, 0};
	struct cdbw w;
	const char *f[3];
	size_t len[3];
	unsigned long long n = 0;
	int r, want;

	if (cdbw_start(&w, scratch_file, 0644) ||
	    cdbw_add(&w, "e.test", 6, v->s, v->len) || cdbw_finish(&w))
		abort();
	r = acct_domain(scratch_root, "e.test", &d);
	want = acct_fields(v->s, v->len, f, len, 3) == 0 &&
	       decimal(f[2], len[2]);
	if (want) {
		n = strtoull(f[2], NULL, 10);
		want = n && n <= ACCT_BUCKETS && !(n & (n - 1));
	}
	if (r != (want ? 0 : -EILSEQ))
		abort();
	if (r == 0 && (d.shards != n || !str_eqs(&d.real, f[0]) ||
		       !str_eqs(&d.dir, f[1]) || d.real.len != len[0] ||
		       d.dir.len != len[1]))
		abort();
	acct_domain_free(&d);
}

/* check_qid - the text up to the first NUL as a queue id */
static void check_qid(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t a = strspn(s, hex), b = 0;
	uint64_t arr = 0, ino = 0;
	int want, r = queue_id_parse(s, &arr, &ino);

	if (s[a] == '.')
		b = strspn(s + a + 1, hex);
	want = a >= 1 && a <= 16 && s[a] == '.' && b >= 1 && b <= 16 &&
	       !s[a + 1 + b];
	if ((r == 0) != want || (r && r != -EINVAL))
		abort();
	if (want && (arr != strtoull(s, NULL, 16) ||
		     ino != strtoull(s + a + 1, NULL, 16)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct str v = STR_INIT;

	/* a CDB value, NUL-terminated after its bytes as a struct str is */
	if (str_copyb(&v, data, size) < 0)
		abort();
	check_fields(&v);
	check_user(&v);
	check_forward(&v);
	check_ext(&v);
	check_assign(&v);
	check_qid(v.s);
	str_free(&v);
	return 0;
}
