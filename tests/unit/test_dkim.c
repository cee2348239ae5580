/*
 * test_dkim - lib/dkim (relaxed canonicalization, the signed field list,
 * the DKIM-Signature text, keys, TXT records) and lib/qsign's From: rule.
 * The signatures themselves are checked by real verifiers (dkimpy and
 * OpenDKIM) in tests/integration/test_dkim_sign.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cdbx.h"
#include "dkim.h"
#include "fsx.h"
#include "qsign.h"
#include "queue.h"
#include "sasl.h"
#include "tinytest.h"

/* sha_b64 - base64 of SHA-256 of S (what bh= would be) */
static void sha_b64(const char *s, size_t n, struct str *out)
{
	unsigned char h[32];
	unsigned int hl = 0;

	EVP_Digest(s, n, h, &hl, EVP_sha256(), NULL);
	b64_encode(h, hl, out);
}

/* body_b64 - the relaxed body hash of IN, fed STEP bytes at a time */
static void body_b64(const char *in, size_t step, struct str *out)
{
	struct dkim_body b;
	unsigned char h[DKIM_HASH_LEN];
	size_t i, n = strlen(in);

	dkim_body_init(&b);
	for (i = 0; i < n; i += step)
		dkim_body_feed(&b, in + i, n - i < step ? n - i : step);
	dkim_body_final(&b, h);
	dkim_body_free(&b);
	b64_encode(h, sizeof h, out);
}

static void test_body(void)
{
	static const struct {
		const char *name, *in, *want;
	} cases[] = {
		/* RFC 6376 3.4.5 */
		{"rfc6376_crlf", " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"},
		{"rfc6376_lf", " C \nD \t E\n\n\n", " C\r\nD E\r\n"},
		{"empty", "", ""},
		{"only_empty_lines", "\n\n\n", ""},
		{"only_white_space", "  \t\n \n", ""},
		{"no_final_newline", "x", "x\r\n"},
		{"trailing_wsp_no_newline", "x \t", "x\r\n"},
		{"inner_blank_lines_kept", "a\n\n\nb\n", "a\r\n\r\n\r\nb\r\n"},
		{"wsp_line_is_empty", "a\n \t\nb\n\n", "a\r\n\r\nb\r\n"},
		{"leading_wsp_one_sp", "\t\tx  y\n", " x y\r\n"},
		{"bare_cr_is_content", "a\rb\n", "a\rb\r\n"},
		{"eight_bit", "caf\xc3\xa9 \xff\n", "caf\xc3\xa9 \xff\r\n"},
		{"cr_at_end", "a\r", "a\r\r\n"},
	};
	struct str got = STR_INIT, want = STR_INIT;
	size_t i, step;

	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		sha_b64(cases[i].want, strlen(cases[i].want), &want);
		for (step = 1; step <= 4096; step *= 4096) {
			body_b64(cases[i].in, step, &got);
			tt_check(!strcmp(got.s, want.s),
				 tt_name("dkim_body_%s_step%zu", cases[i].name,
					 step),
				 "got %s want %s", got.s, want.s);
		}
	}
	/* the hash of an empty body, as RFC 8463's example gives it */
	body_b64("", 1, &got);
	tt_check(!strcmp(got.s, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
		 "dkim_body_empty_known_hash", "got %s", got.s);
	str_free(&got);
	str_free(&want);
}

/* a function of one text that makes a string, or fails (-EINVAL) */
typedef int (*text_fn)(const char *in, size_t n, struct str *out);

/* text_case - what FN makes of IN: WANT, or NULL for a refusal */
struct text_case {
	const char *name, *in, *want;
};

/* check_texts - each case of a table of texts through FN */
static void check_texts(const char *prefix, const struct text_case *c,
			size_t n, text_fn fn)
{
	struct str got = STR_INIT;
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		str_trunc(&got, 0);
		r = fn(c[i].in, strlen(c[i].in), &got);
		tt_check(c[i].want ? r == 0 && got.s && !strcmp(got.s,
							       c[i].want) :
			 r == -EINVAL, tt_name("%s_%s", prefix, c[i].name),
			 "r %d got '%s'", r, got.s ? got.s : "");
	}
	str_free(&got);
}

/* canon - dkim_canon_header in check_texts' order of arguments */
static int canon(const char *in, size_t n, struct str *out)
{
	return dkim_canon_header(out, in, n);
}

static void test_canon_header(void)
{
	static const struct text_case cases[] = {
		/* RFC 6376 3.4.5 */
		{"rfc_a", "A: X\n", "a:X\r\n"},
		{"rfc_b", "B : Y\t\n\tZ  \n", "b:Y Z\r\n"},
		{"crlf_folded", "Subject:  a\r\n  b \r\n", "subject:a b\r\n"},
		{"empty_value", "X-Empty:   \n", "x-empty:\r\n"},
		{"no_final_lf", "To: x", "to:x\r\n"},
		{"eight_bit", "Subject: caf\xc3\xa9\n", "subject:caf\xc3\xa9\r\n"},
		{"no_colon", "no colon\n", NULL},
	};

	check_texts("dkim_canon_header", cases, sizeof cases / sizeof *cases,
		    canon);
}

static void test_hdr_next(void)
{
	const char *h = "A: 1\nB: 2\n 3\n\tfour\nC:\n\nbody: no\n", *f;
	const char *bad = "A: 1\nnot a field\n";
	size_t pos = 0, flen, n = strlen(h);
	int r, count = 0;

	while ((r = dkim_hdr_next(h, n, &pos, &f, &flen)) == 1)
		count++;
	tt_check(r == 0 && count == 3, "dkim_hdr_next_stops_at_empty_line",
		 "r %d count %d", r, count);
	pos = 0;
	dkim_hdr_next(h, n, &pos, &f, &flen);
	dkim_hdr_next(h, n, &pos, &f, &flen);
	tt_check(flen == 14 && !strncmp(f, "B: 2\n 3\n\tfour\n", 14),
		 "dkim_hdr_next_continuation", "flen %zu", flen);
	pos = 0;
	dkim_hdr_next(bad, strlen(bad), &pos, &f, &flen);
	tt_check(dkim_hdr_next(bad, strlen(bad), &pos, &f, &flen) == -EINVAL,
		 "dkim_hdr_next_refuses_non_field", "accepted");
}

static void test_sign_header(void)
{
	static const struct {
		const char *name, *hdr, *want;
		int r;
	} cases[] = {
		{"from_oversigned", "From: a@b.test\nX-Other: 1\n", "from:from", 0},
		{"present_identity_oversigned",
		 "Subject: s\nFrom: a@b.test\nTo: x@y.test\nTo: z@y.test\n"
		 "Date: d\n", "from:from:subject:subject:date:date:to:to:to", 0},
		{"mime_not_oversigned", "From: a@b.test\nMIME-Version: 1.0\n",
		 "from:from:mime-version", 0},
		{"two_from_refused", "From: a@b.test\nFrom: c@b.test\n", "", -EINVAL},
		{"no_from_refused", "To: a@b.test\n", "", -EINVAL},
		{"bad_line_refused", "From: a@b.test\nnonsense\n", "", -EINVAL},
	};
	struct dkim_sign s;
	size_t i;
	int r;

	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		dkim_sign_init(&s);
		r = dkim_sign_header(&s, cases[i].hdr, strlen(cases[i].hdr),
				     "b.test", 1);
		tt_check(r == cases[i].r && (r || !strcmp(s.names.s,
							  cases[i].want)),
			 tt_name("dkim_sign_header_%s", cases[i].name),
			 "r %d h=%s", r, s.names.s ? s.names.s : "");
		dkim_sign_free(&s);
	}
	/* the bottom To: is the first one signed (RFC 6376 5.4.2) */
	dkim_sign_init(&s);
	dkim_sign_header(&s, "From: f@b.test\nTo: top\nTo: bottom\n", 34,
			 "b.test", 1);
	tt_check(s.canon.s && strstr(s.canon.s, "to:bottom\r\nto:top\r\n"),
		 "dkim_sign_header_bottom_up", "canon %s",
		 s.canon.s ? s.canon.s : "");
	dkim_sign_free(&s);
}

/* one_key - a placeholder field and a real one have the same length, the
 * real one carries bh=, no l=, and no line over 80 columns */
static void one_key(int type, unsigned bits, const char *name)
{
	struct str pem = STR_INIT, p = STR_INIT, ph = STR_INIT, real = STR_INIT;
	struct dkim_key k;
	struct dkim_sign s;
	unsigned char bh[DKIM_HASH_LEN] = {1, 2, 3};
	char path[] = "/tmp/test_dkim.XXXXXX";
	const char *hdr = "From: Someone <a@b.test>\nSubject: hello\n";
	int fd = mkstemp(path), r;
	size_t col = 0, maxcol = 0, i;

	r = dkim_keygen(type, bits, &pem, &p);
	if (fd >= 0 && r == 0) {
		r = write(fd, pem.s, pem.len) == (ssize_t)pem.len ? 0 : -EIO;
		close(fd);
	}
	if (r == 0)
		r = dkim_key_load(&k, path, type);
	unlink(path);
	tt_check(r == 0, tt_name("dkim_key_%s_made_and_loaded", name), "r %d",
		 r);
	if (r)
		return;
	dkim_sign_init(&s);
	r = dkim_sign_header(&s, hdr, strlen(hdr), "b.test", 1700000000);
	if (r == 0)
		r = dkim_sign_field(&s, &k, "sel", NULL, &ph);
	if (r == 0)
		r = dkim_sign_field(&s, &k, "sel", bh, &real);
	tt_check(r == 0 && ph.len == real.len,
		 tt_name("dkim_sign_%s_placeholder_same_length", name),
		 "r %d %zu != %zu", r, ph.len, real.len);
	for (i = 0; i < real.len; i++) {
		col = real.s[i] == '\n' ? 0 : col + 1;
		maxcol = col > maxcol ? col : maxcol;
	}
	tt_check(real.s && maxcol <= 80 && !strstr(real.s, " l=") &&
		 strstr(real.s, "c=relaxed/relaxed;") &&
		 strstr(real.s, type == DKIM_RSA ? "a=rsa-sha256;" :
			"a=ed25519-sha256;") && strstr(real.s, "h=from:from:"),
		 tt_name("dkim_sign_%s_field_shape", name), "%s",
		 real.s ? real.s : "");
	tt_check(p.len == (type == DKIM_RSA ? (bits == 2048 ? 392u : 0u) :
			   44u) || (type == DKIM_RSA && bits != 2048),
		 tt_name("dkim_key_%s_p_length", name), "p %zu", p.len);
	dkim_sign_free(&s);
	dkim_key_free(&k);
	str_wipe(&pem);
	str_free(&p);
	str_free(&ph);
	str_free(&real);
}

static void test_keys(void)
{
	struct str a = STR_INIT, b = STR_INIT;

	one_key(DKIM_RSA, 2048, "rsa2048");
	one_key(DKIM_ED25519, 0, "ed25519");
	tt_check(dkim_keygen(DKIM_RSA, 1024, &a, &b) == -EINVAL &&
		 dkim_keygen(DKIM_RSA, 8192, &a, &b) == -EINVAL,
		 "dkim_keygen_refuses_bits", "accepted");
	tt_check(dkim_type_parse("rsa") == DKIM_RSA &&
		 dkim_type_parse("ed25519") == DKIM_ED25519 &&
		 dkim_type_parse("dsa") == -EINVAL, "dkim_type_parse", "wrong");
	tt_check(dkim_selector_ok("f20261206") && dkim_selector_ok("a-b") &&
		 !dkim_selector_ok("") && !dkim_selector_ok("-a") &&
		 !dkim_selector_ok("A") && !dkim_selector_ok("a.b") &&
		 !dkim_selector_ok("a/b"), "dkim_selector_ok", "wrong");
	str_free(&a);
	str_free(&b);
}

static void test_txt(void)
{
	struct str t = STR_INIT, z = STR_INIT;
	char p[400];

	memset(p, 'Q', sizeof p - 1);
	p[sizeof p - 1] = 0;
	dkim_txt(&t, DKIM_RSA, p);
	dkim_txt_zone(&z, "s1", "example.test", t.s);
	/* 18 + 399 = 417 bytes: one string of 255 and one of 162 */
	tt_check(z.s && !strncmp(z.s, "s1._domainkey.example.test. IN TXT "
				 "\"v=DKIM1; k=rsa; p=QQ", 55) &&
		 strstr(z.s, "\" \"") && strlen(z.s) == 34 + 2 + 255 + 3 + 162
		 + 1, "dkim_txt_zone_split_255", "%s", z.s ? z.s : "");
	str_free(&t);
	str_free(&z);
}

static void test_from_domain(void)
{
	static const struct text_case cases[] = {
		{"angle", "From: \"Doe, J\" <j@Example.TEST>\n", "example.test"},
		{"bare", "To: x\nfrom:a@b.test\n", "b.test"},
		{"folded", "From: Some One\n <x@c.test>\n", "c.test"},
		{"comment", "From: x@d.test (Mr X)\n", "d.test"},
		{"two_addresses", "From: a@b.test, c@d.test\n", NULL},
		{"two_fields", "From: a@b.test\nFrom: a@b.test\n", NULL},
		{"none", "To: a@b.test\n", NULL},
		{"no_at", "From: nobody\n", NULL},
		{"bad_domain", "From: a@b..test\n", NULL},
	};

	check_texts("qsign_from_domain", cases, sizeof cases / sizeof *cases,
		    qsign_from_domain);
}

/* test_rfc8463 - RFC 8463 appendix A: its Ed25519 key, its message and
 * its signature field; Ed25519 is deterministic, so the relaxed forms,
 * the header hash and the signature over the hash must give its b=
 * exactly, and the body its bh= */
static void test_rfc8463(void)
{
	static const unsigned char der_prefix[] = {
		0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b,
		0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
	static const char *const fields[] = {
		"From: Joe SixPack <joe@football.example.com>\n",
		"To: Suzie Q <suzie@shopping.example.net>\n",
		"Subject: Is dinner ready?\n",
		"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\n",
		"Message-ID: <20030712040037.46341.5F8J@football.example.com>\n",
		/* the signature field, b= emptied (RFC 6376 3.7) */
		"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\n"
		" d=football.example.com; i=@football.example.com;\n"
		" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\n"
		" subject : date : message-id : from : subject : date;\n"
		" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\n"
		" b=\n",
	};
	struct str seed = STR_INIT, der = STR_INIT, pem = STR_INIT;
	struct str canon = STR_INIT, sig = STR_INIT, b = STR_INIT;
	char path[] = "/tmp/test_dkim8463.XXXXXX";
	unsigned char h[32];
	unsigned int hl = 0;
	struct dkim_key k;
	size_t i;
	int fd, r;

	/* the key: PKCS#8 of the RFC's seed, as the signer reads keys */
	b64_decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=", 44, &seed);
	str_catb(&der, der_prefix, sizeof der_prefix);
	str_catb(&der, seed.s, seed.len);
	b64_encode(der.s, der.len, &b);
	str_catf(&pem, "-----BEGIN PRIVATE KEY-----\n%s\n"
		 "-----END PRIVATE KEY-----\n", b.s);
	fd = mkstemp(path);
	r = fd >= 0 && write(fd, pem.s, pem.len) == (ssize_t)pem.len ? 0 : -EIO;
	if (fd >= 0)
		close(fd);
	if (r == 0)
		r = dkim_key_load(&k, path, DKIM_ED25519);
	unlink(path);
	tt_check(r == 0 && dkim_key_pub(&k, &b) == 0 &&
		 !strcmp(b.s, "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="),
		 "dkim_rfc8463_key", "r %d p=%s", r, b.s ? b.s : "");
	if (r)
		return;
	for (i = 0; i < sizeof fields / sizeof *fields; i++)
		dkim_canon_header(&canon, fields[i], strlen(fields[i]));
	/* the signature field is hashed without its CR LF */
	EVP_Digest(canon.s, canon.len - 2, h, &hl, EVP_sha256(), NULL);
	r = dkim_sign_hash(&k, h, &sig);
	if (r == 0)
		r = b64_encode(sig.s, sig.len, &b);
	tt_check(r == 0 && !strcmp(b.s, "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9"
				   "OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq"
				   "+eXdp1Q1Dw=="), "dkim_rfc8463_signature",
		 "r %d b=%s", r, b.s ? b.s : "");
	body_b64("Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\n"
		 "Joe.\r\n", 7, &b);
	tt_check(!strcmp(b.s, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="),
		 "dkim_rfc8463_body_hash", "bh=%s", b.s);
	dkim_key_free(&k);
	str_wipe(&seed);
	str_wipe(&der);
	str_wipe(&pem);
	str_free(&canon);
	str_free(&sig);
	str_free(&b);
}

/* signed_root - a root with queue/ and example.test's Ed25519 key "s1"
 * in control/dkim.cdb; 0 or -1 */
static int signed_root(char *root)
{
	struct str p = STR_INIT, pem = STR_INIT, pub = STR_INIT;
	struct cdbw w;
	int r = mkdtemp(root) ? 0 : -1;

	if (r == 0 && (str_catf(&p, "%s/queue/tmp", root) ||
		       fsx_mkdir_p(p.s, 0700)))
		r = -1;
	str_trunc(&p, 0);
	if (r == 0 && (str_catf(&p, "%s/queue/new", root) ||
		       fsx_mkdir_p(p.s, 0700)))
		r = -1;
	str_trunc(&p, 0);
	if (r == 0 && (str_catf(&p, "%s/control/dkim/example.test", root) ||
		       fsx_mkdir_p(p.s, 0700) ||
		       dkim_keygen(DKIM_ED25519, 0, &pem, &pub) ||
		       str_cats(&p, "/s1.pem") ||
		       fsx_write_atomic(p.s, pem.s, pem.len, 0600)))
		r = -1;
	str_trunc(&p, 0);
	if (r == 0 && (str_catf(&p, "%s/control/dkim.cdb", root) ||
		       cdbw_start(&w, p.s, 0644) ||
		       cdbw_add(&w, "example.test", 12, "s1\0ed25519", 10) ||
		       cdbw_finish(&w)))
		r = -1;
	str_free(&p);
	str_wipe(&pem);
	str_free(&pub);
	return r;
}

/* read_msg - the message of queue file ID (after its envelope) */
static int read_msg(const char *root, const char *id, struct str *out)
{
	struct str path = STR_INIT;
	struct qenv e;
	uint64_t len = 0;
	off_t off = 0;
	int fd, r;

	qenv_init(&e);
	r = str_catf(&path, "%s/queue/new/%s", root, id);
	fd = r ? -1 : open(path.s, O_RDONLY);
	r = fd < 0 ? -EIO : queue_read_env(fd, &e, &off, &len);
	if (r == 0 && (str_ready(out, (size_t)len) ||
		       pread(fd, out->s, (size_t)len, off) != (ssize_t)len))
		r = -EIO;
	if (r == 0) {
		out->len = (size_t)len;
		out->s[len] = 0;
	}
	if (fd >= 0)
		close(fd);
	qenv_free(&e);
	str_free(&path);
	return r;
}

/* queue_through - MSG queued through qsign in pieces of STEP bytes; the
 * message as the queue file holds it, t= and b= values blanked (they
 * change with the second), in OUT */
static int queue_through(const char *root, const char *msg, size_t step,
			 struct str *out)
{
	struct qenv e;
	struct qwriter w;
	struct qsign q;
	struct str id = STR_INIT;
	size_t i, n = strlen(msg);
	char *p;
	int r;

	qenv_init(&e);
	r = str_copys(&e.sender, "bob@example.test") ? -ENOMEM :
	    qenv_add_rcpt(&e, "a@remote.test");
	if (r == 0)
		r = qw_open(&w, root, &e);
	if (r < 0)
		return r;
	qsign_start(&q, &w, root, 1);
	for (i = 0; r == 0 && i < n; i += step)
		r = qsign_put(&q, msg + i, n - i < step ? n - i : step);
	if (r == 0)
		r = qsign_end(&q);
	qsign_free(&q);
	if (r < 0)
		qw_abort(&w);
	else
		r = qw_commit(&w, &id);
	if (r == 0)
		r = read_msg(root, id.s, out);
	/* the time and the signature vary; the rest may not */
	for (p = out->s; r == 0 && (p = strstr(p, " t=")) != NULL; p++)
		for (p += 3; *p != ';'; p++)
			*p = '0';
	if (r == 0 && (p = strstr(out->s, "\tb=")) != NULL)
		for (p += 3; *p && strncmp(p, "From:", 5); p++)
			if (*p != '\n' && *p != '\t')
				*p = 'A';
	qenv_free(&e);
	str_free(&id);
	return r;
}

/* test_qsign - any piece size gives the same queue file; the header's
 * end found across pieces; unkeyed, unsignable and huge headers pass
 * unchanged */
static void test_qsign(void)
{
	static const char *const msgs[] = {
		"From: Bob <bob@example.test>\nSubject: hi\n\nbody\n\n",
		"From: bob@example.test\nSubject: no body\n",
		"From: bob@example.test\n\n",
		"From: x@other.test\nSubject: no key\n\nbody\n",
		"From: bob@example.test\nnot a field\n\nbody\n",
	};
	static const size_t steps[] = {1, 2, 3, 7, 64, 100000};
	char root[] = "/tmp/test_qsign.XXXXXX";
	struct str want = STR_INIT, got = STR_INIT, big = STR_INIT;
	size_t i, k;
	int r;

	if (signed_root(root) < 0) {
		tt_check(0, "qsign_root", "cannot make %s", root);
		return;
	}
	for (i = 0; i < sizeof msgs / sizeof *msgs; i++) {
		str_trunc(&want, 0);
		r = queue_through(root, msgs[i], 100000, &want);
		tt_check(r == 0 && (i < 3) == (strncmp(want.s,
			 "DKIM-Signature:", 15) == 0) && (i < 3 ||
			 !strcmp(want.s, msgs[i])),
			 tt_name("qsign_signed_or_not_%zu", i), "r %d: %s", r,
			 want.s ? want.s : "");
		for (k = 0; k < sizeof steps / sizeof *steps; k++) {
			str_trunc(&got, 0);
			r = queue_through(root, msgs[i], steps[k], &got);
			tt_check(r == 0 && got.len == want.len &&
				 !memcmp(got.s, want.s, got.len),
				 tt_name("qsign_pieces_%zu_step%zu", i,
					 steps[k]), "r %d: %s", r,
				 got.s ? got.s : "");
		}
	}
	/* a header past QSIGN_HEAD_MAX is queued as it came, unsigned */
	str_cats(&big, "From: bob@example.test\n");
	while (big.len <= QSIGN_HEAD_MAX)
		str_cats(&big, "X-Filler: 0123456789012345678901234567890\n");
	str_cats(&big, "\nbody\n");
	str_trunc(&got, 0);
	r = queue_through(root, big.s, 65536, &got);
	tt_check(r == 0 && got.len == big.len && !strcmp(got.s, big.s),
		 "qsign_huge_header_unsigned", "r %d len %zu", r, got.len);
	qsign_cache_free();
	fsx_rmtree(root);
	str_free(&want);
	str_free(&got);
	str_free(&big);
}

int main(void)
{
	test_qsign();
	test_rfc8463();
	test_body();
	test_canon_header();
	test_hdr_next();
	test_sign_header();
	test_keys();
	test_txt();
	test_from_domain();
	return tt_exit();
}
