/*
 * doctor_dkim - `facteur doctor`'s dkim check: every key of the
 * dkim_keys table can sign, and the DNS publishes it.
 *
 * The file (dkim_key_path): there, a regular file of this process's user
 * (the mail user, as the signer runs), mode 0600 (--fix: chmod 0600 when
 * it is ours and a single link, by fix_mode), loaded by the signer's own
 * loader (dkim_key_load) and holding the private half of the row's
 * public key. A key that cannot sign is a FAIL: the domain's mail goes
 * out unsigned or with a signature nobody can verify. Whether rows and
 * files agree as a whole (files without rows, control/dkim.cdb) is
 * vadmin check's rule, which lives in vadmin, so the fixes point to it.
 *
 * The record: SEL._domainkey.DOMAIN TXT, asked through lib/dns's
 * dns_batch on a thread of its own beside the disk checks, as the mx
 * check does, and bounded the same way: each try DKIM_TRY_MS, the whole
 * batch by DKIM_TOTAL_MS after the check began. The record and the row
 * are both read by lib/dkimv's parser (the verifier's rule, so doctor
 * cannot pass a record the receivers refuse): the same type and p= is
 * ok; no record a warning (mail is signed, receivers cannot verify it
 * yet); another key a FAIL (every signature fails, which DMARC may turn
 * into rejections); no answer in time counted as unchecked (timeout).
 * At most DKIM_MAX keys are checked and DKIM_SAY problems spelled out.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "dkim.h"
#include "dkimv.h"
#include "dns.h"
#include "doctor.h"
#include "msg.h"
#include "store.h"

#define DKIM_TRY_MS 500
#define DKIM_TOTAL_MS 3000
#define DKIM_MAX 1000
#define DKIM_SAY 10

/* problem - one key's verdict, the first DKIM_SAY spelled out */
#define problem(c, level, ...) say_capped(c, DKIM_SAY, level, __VA_ARGS__)

/* one key: its row and what the file check found */
struct dkey {
	char *domain, *selector, *pub;
	int type;
	struct str name;	/* SEL._domainkey.DOMAIN */
};

struct dkc {
	struct doctor *d;
	struct report *p;
	struct dns *dns;
	struct dkey *k;
	struct dns_q *q;
	size_t n;
	size_t said, unsaid, late;
	int64_t deadline;
	struct beside_thread bt;
	int v;
};


/* file_mode - the key file is 0600, or --fix made it so */
static void file_mode(struct dkc *c, const struct dkey *k, const char *path,
		      const struct stat *st)
{
	const char *slash = strrchr(path, '/');
	size_t off = strlen(c->d->root) + 1;
	int dfd, r = -EPERM;

	/* group or others' bits: the secret is not the mail user's alone */
	if ((st->st_mode & 077) == 0)
		return;
	if (c->d->fix && slash) {
		struct str dir = STR_INIT;

		if (str_copyb(&dir, path, (size_t)(slash - path)) == 0 &&
		    (dfd = open(dir.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			r = fix_mode(c->d, c->p, dfd, slash + 1, path + off, st,
				     0600);
			(void)close(dfd);
		}
		str_free(&dir);
	}
	if (r < 0)
		problem(c, FAIL, "the key of %s (selector %s), %s, is mode "
			"%04o: its private half is not the mail user's alone; "
			"run chmod 600 %s", k->domain, k->selector, path,
			(unsigned)(st->st_mode & 07777), path);
}

/* key_loads - the signer's loader takes the file, and it is the row's key */
static void key_loads(struct dkc *c, const struct dkey *k, const char *path)
{
	struct dkim_key key;
	struct str pub = STR_INIT;
	int r = dkim_key_load(&key, path, k->type);

	if (r == 0)
		r = dkim_key_pub(&key, &pub) < 0 ? -ENOMEM :
		    strcmp(str_cstr(&pub), k->pub) ? 1 : 0;
	if (r == 1)
		problem(c, FAIL, "%s is not the key of %s selector %s in the "
			"database: its signatures fail; run vadmin check, then "
			"vadmin dkim rotate %s", path, k->domain, k->selector,
			k->domain);
	else if (r < 0)
		problem(c, FAIL, "%s (selector %s of %s) cannot be loaded as an "
			"%s key: %s, so that domain's mail cannot be signed; run "
			"vadmin check, then vadmin dkim rotate %s", path,
			k->selector, k->domain, dkim_type_name(k->type),
			r == -EINVAL ? "not a key of that type" : msg_err(r),
			k->domain);
	if (r == 0)
		dkim_key_free(&key);
	str_free(&pub);
}

/* key_file - the file of key K, judged as the signer would use it */
static void key_file(struct dkc *c, const struct dkey *k)
{
	struct str path = STR_INIT;
	struct stat st;

	if (dkim_key_path(&path, c->d->root, k->domain, k->selector) < 0) {
		problem(c, WARN, "%s: not checked: out of memory", k->domain);
		return;
	}
	if (lstat(path.s, &st) < 0)
		problem(c, FAIL, "the key file of %s selector %s, %s: %s, so "
			"that domain's mail cannot be signed; run vadmin check, "
			"then vadmin dkim rotate %s", k->domain, k->selector,
			path.s, strerror(errno), k->domain);
	else if (!S_ISREG(st.st_mode))
		problem(c, FAIL, "%s is not a regular file, so %s's mail cannot "
			"be signed; move it away and run vadmin dkim rotate %s",
			path.s, k->domain, k->domain);
	else if (st.st_uid != geteuid())
		problem(c, FAIL, "%s belongs to uid %lu, not %s; run chown %s "
			"%s", path.s, (unsigned long)st.st_uid,
			str_cstr(&c->d->user), str_cstr(&c->d->user), path.s);
	else {
		file_mode(c, k, path.s, &st);
		key_loads(c, k, path.s);
	}
	str_free(&path);
}

/* dup_col - column I of ST, copied; NULL without memory */
static char *dup_col(struct store_stmt *st, int i)
{
	const char *s = (const char *)store_column_text(st, i);

	return strdup(s ? s : "");
}

/* one_row - the key of the current row, and its TXT question */
static int one_row(struct dkc *c, struct store_stmt *st)
{
	struct dkey *k = &c->k[c->n];
	const char *type = (const char *)store_column_text(st, 2);

	k->domain = dup_col(st, 0);
	k->selector = dup_col(st, 1);
	k->pub = dup_col(st, 3);
	k->type = dkim_type_parse(type ? type : "");
	if (!k->domain || !k->selector || !k->pub ||
	    str_catf(&k->name, "%s._domainkey.%s", k->selector, k->domain) < 0)
		return -ENOMEM;
	c->q[c->n].type = DNS_Q_TXT;
	c->q[c->n].name = k->name.s;
	c->n++;
	return 0;
}

/* load_keys - the rows of dkim_keys (the first DKIM_MAX), in the
 * caller's thread: the database connection is not shared */
static int load_keys(struct dkc *c)
{
	static const char sql[] =
		"SELECT d.name, k.selector, k.type, k.public_key "
		"FROM dkim_keys k JOIN domains d ON d.id = k.domain_id "
		"ORDER BY d.name, k.selector LIMIT ?1";
	struct store_stmt *st = NULL;
	int rc, r = 0;

	c->k = calloc(DKIM_MAX, sizeof *c->k);
	c->q = calloc(DKIM_MAX, sizeof *c->q);
	if (!c->k || !c->q)
		return -ENOMEM;
	rc = store_prepare(c->d->db, sql, &st);
	if (rc == 0)
		rc = store_bind_int(st, 1, DKIM_MAX);
	while (r == 0 && c->n < DKIM_MAX && next_row(st, &rc))
		r = one_row(c, st);
	if (r == 0 && rc != STORE_DONE && rc != STORE_ROW)
		problem(c, FAIL, "cannot read the dkim_keys table: %s; run "
			"vadmin rebuild", store_errmsg(c->d->db));
	store_finalize(st);
	return r;
}

/* same_key - TXT (N bytes) publishes the type and p= of row K, both
 * read by the verifier's parser; 1 yes, 0 no, -EINVAL not a key record */
static int same_key(const struct dkey *k, const char *txt, size_t n,
		    const char **why_r)
{
	struct dkimv_key got, want;
	struct str ours = STR_INIT;
	const char *why;
	int r = dkimv_key_parse(&got, txt, n, why_r);

	if (r < 0)
		return -EINVAL;
	r = dkim_txt(&ours, k->type, k->pub) < 0 ? -ENOMEM :
	    dkimv_key_parse(&want, ours.s, ours.len, &why);
	if (r == 0) {
		r = got.type == want.type && got.p.len == want.p.len &&
		    got.p.len && !memcmp(got.p.s, want.p.s, got.p.len);
		dkimv_key_free(&want);
	}
	dkimv_key_free(&got);
	str_free(&ours);
	return r;
}

/* one_record - the answer Q for key K */
static void one_record(struct dkc *c, const struct dkey *k,
		       const struct dns_q *q)
{
	const char *why = "";
	int r;

	if (q->r == -ETIMEDOUT) {
		c->late++;
		return;
	}
	if (q->r == -ENOENT || q->r == -ENODATA) {
		problem(c, WARN, "%s has no TXT record, so receivers cannot "
			"verify %s's signatures; publish the record `vadmin dkim "
			"show %s` prints", k->name.s, k->domain, k->domain);
		return;
	}
	if (q->r < 0) {
		problem(c, WARN, "cannot look up %s: %s; check "
			"control/resolvers", k->name.s, q->r == -EAGAIN ?
			"no answer from the DNS servers" : msg_err(q->r));
		return;
	}
	r = same_key(k, q->txt.s ? q->txt.s : "", q->txt.len, &why);
	if (r == -EINVAL)
		problem(c, FAIL, "%s is not a DKIM key record (%s), so every "
			"signature of %s fails; publish the record `vadmin "
			"dkim show %s` prints", k->name.s, why, k->domain,
			k->domain);
	else if (r == 0)
		problem(c, FAIL, "%s publishes another key than selector %s's, "
			"so every signature of %s with it fails; publish the "
			"record `vadmin dkim show %s` prints", k->name.s,
			k->selector, k->domain, k->domain);
}

/* resolve - the thread: every record at once, by the deadline */
static void *resolve(void *arg)
{
	struct dkc *c = arg;
	size_t i;
	int r = dns_batch(c->dns, c->q, c->n, c->deadline);

	for (i = 0; r == 0 && i < c->n; i++)
		one_record(c, &c->k[i], &c->q[i]);
	if (r < 0)
		problem(c, WARN, "DNS records not checked: %s; run doctor "
			"again", msg_err(r));
	beside_end(&c->bt);
	return NULL;
}

/* prepare - the rows, their files and a resolver, in the caller's
 * thread; 0 when there are records to ask */
static int prepare(struct dkc *c)
{
	size_t i;
	int r;

	if (!c->d->db) {
		c->v = say(c->p, WARN, "not checked: the database did not open");
		return -1;
	}
	r = load_keys(c);
	for (i = 0; r == 0 && i < c->n; i++)
		key_file(c, &c->k[i]);
	if (r == 0 && c->n)
		r = dns_open(&c->dns, c->d->root, DKIM_TRY_MS);
	if (r < 0)
		problem(c, WARN, "DNS records not checked: %s; check "
			"control/resolvers", r == -EINVAL ? "control/resolvers "
			"does not parse" : msg_err(r));
	return r == 0 && c->n ? 0 : -1;
}

/* check_dkim_start - the files judged now, the records asked on a
 * thread of their own; *job_r for check_dkim_finish */
int check_dkim_start(struct doctor *d, struct report *p, void **job_r)
{
	struct dkc *c = calloc(1, sizeof *c);

	*job_r = c;
	if (!c)
		return -ENOMEM;
	c->d = d;
	c->p = p;
	c->deadline = now_ms() + DKIM_TOTAL_MS;
	if (prepare(c) < 0) {
		beside_end(&c->bt);
		return 0;
	}
	beside_run(&c->bt, resolve, c);
	return 0;
}

/* check_dkim_done - finishing will not wait */
int check_dkim_done(void *job)
{
	struct dkc *c = job;

	return !c || beside_ended(&c->bt);
}

/* tail - the counts that close the report */
static void tail(struct dkc *c)
{
	if (c->unsaid)
		(void)say(c->p, c->v, "%zu more problems like these",
			  c->unsaid);
	if (c->late)
		c->v = say(c->p, c->v > WARN ? c->v : WARN, "%zu DKIM records "
			   "unchecked (timeout): no DNS answer within %d s; "
			   "check control/resolvers, or run doctor again",
			   c->late, DKIM_TOTAL_MS / 1000);
	if (c->n == DKIM_MAX)
		c->v = say(c->p, c->v > WARN ? c->v : WARN, "only the first "
			   "%d keys checked", DKIM_MAX);
}

/* check_dkim_finish - wait for the records, free it all; the verdict */
int check_dkim_finish(void *job, struct report *p)
{
	struct dkc *c = job;
	size_t i;
	int v;

	if (!c)
		return say(p, WARN, "not checked: out of memory");
	beside_join(&c->bt);
	tail(c);
	v = c->v;
	dns_close(c->dns);
	dns_batch_free(c->q, c->n);
	/* every slot: a row cut short by ENOMEM holds strings too */
	for (i = 0; c->k && i < DKIM_MAX; i++) {
		free(c->k[i].domain);
		free(c->k[i].selector);
		free(c->k[i].pub);
		str_free(&c->k[i].name);
	}
	free(c->k);
	free(c->q);
	free(c);
	return v;
}
