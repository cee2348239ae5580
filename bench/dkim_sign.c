/*
 * dkim_sign - what DKIM signing costs a message, RSA-2048 and Ed25519.
 *
 * SYNOPSIS
 *	dkim_sign [MESSAGES] [BODY_BYTES]
 *
 * Makes one key of each type (lib/dkim.h) and signs MESSAGES (default
 * 2,000) messages of a usual header and BODY_BYTES of body (default
 * 4,096; lines of 72 bytes) the way lib/qsign does as a message is
 * queued: the signed fields chosen and made canonical, the placeholder
 * field that measures the room, the body hash, the real field. Also
 * times the body hash alone over 16 MiB (its cost a byte, which grows
 * with big messages while the signature does not). Prints one line a
 * key type: `dkim_sign type=.. body=.. us_per_message=..` and
 * `dkim_sign body_hash mb_per_s=..`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dkim.h"

static const char hdr[] =
	"From: \"Bob Example\" <bob@example.test>\n"
	"To: Alice <alice@remote.test>, carol@remote.test\n"
	"Subject: the quarterly figures, as promised\n"
	"Date: Sun, 6 Dec 2026 06:00:00 +0000\n"
	"Message-ID: <20261206060000.1234@example.test>\n"
	"MIME-Version: 1.0\n"
	"Content-Type: text/plain; charset=utf-8\n"
	"Content-Transfer-Encoding: 8bit\n";

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "dkim_sign: %s: error %d\n", what, r);
	exit(111);
}

/* make_key - a fresh key of TYPE, through a PEM file as the signer reads */
static void make_key(int type, struct dkim_key *k)
{
	struct str pem = STR_INIT, p = STR_INIT;
	char path[] = "/tmp/dkim_sign.XXXXXX";
	int fd = mkstemp(path), r = dkim_keygen(type, 2048, &pem, &p);

	if (fd < 0 || r < 0 || write(fd, pem.s, pem.len) != (ssize_t)pem.len)
		die("keygen", r);
	close(fd);
	r = dkim_key_load(k, path, type);
	unlink(path);
	if (r < 0)
		die("key load", r);
	str_wipe(&pem);
	str_free(&p);
}

/* sign_one - one message signed with K, as lib/qsign does it */
static void sign_one(const struct dkim_key *k, const char *body, size_t n,
		     struct str *out)
{
	unsigned char bh[DKIM_HASH_LEN];
	struct dkim_sign s;
	struct dkim_body b;
	int r;

	dkim_sign_init(&s);
	r = dkim_sign_header(&s, hdr, sizeof hdr - 1, "example.test",
			     time(NULL));
	if (r == 0)
		r = dkim_sign_field(&s, k, "f20261206", NULL, out);
	if (r == 0)
		r = dkim_body_init(&b);
	if (r == 0) {
		r = dkim_body_feed(&b, body, n);
		if (r == 0)
			r = dkim_body_final(&b, bh);
		dkim_body_free(&b);
	}
	if (r == 0)
		r = dkim_sign_field(&s, k, "f20261206", bh, out);
	if (r < 0)
		die("sign", r);
	dkim_sign_free(&s);
}

/* body_rate - MB/s of the relaxed body hash */
static double body_rate(const char *body, size_t n)
{
	unsigned char bh[DKIM_HASH_LEN];
	struct dkim_body b;
	size_t done = 0;
	double t0 = now();

	if (dkim_body_init(&b) < 0)
		die("body", -1);
	while (done < 16u << 20) {
		if (dkim_body_feed(&b, body, n) < 0)
			die("body", -1);
		done += n;
	}
	if (dkim_body_final(&b, bh) < 0)
		die("body", -1);
	dkim_body_free(&b);
	return (double)done / (now() - t0) / 1e6;
}

int main(int argc, char **argv)
{
	unsigned long msgs = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
	size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 4096, i;
	static const int types[] = {DKIM_RSA, DKIM_ED25519};
	struct str out = STR_INIT;
	char *body = malloc(n + 1);
	unsigned t, m;

	if (!body || !msgs)
		die("usage: dkim_sign [MESSAGES] [BODY_BYTES]", 0);
	for (i = 0; i < n; i++)
		body[i] = i % 73 == 72 ? '\n' : (char)('a' + i % 26);
	for (t = 0; t < 2; t++) {
		struct dkim_key k;
		double t0;

		make_key(types[t], &k);
		t0 = now();
		for (m = 0; m < msgs; m++)
			sign_one(&k, body, n, &out);
		printf("dkim_sign type=%s body=%zu us_per_message=%.1f\n",
		       dkim_type_name(types[t]), n,
		       (now() - t0) / (double)msgs * 1e6);
		dkim_key_free(&k);
	}
	printf("dkim_sign body_hash mb_per_s=%.0f\n", body_rate(body, n));
	str_free(&out);
	free(body);
	return 0;
}
