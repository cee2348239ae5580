/*
 * vdkim - `vadmin dkim add|list|show|rotate|del`: the DKIM keys of the
 * hosted domains (docs/authentication.md, docs/vadmin.md). The table and
 * the key files as a whole (generation, sweep, check) are vdkimgen.c.
 *
 * A key is a private key file, control/dkim/KEY/SELECTOR.pem (0600, made
 * by the mail user: vadmin run as root has become it), and a row of
 * dkim_keys (schema/002_dkim.sql) with its public half. The file is
 * written and fsynced before the row is committed, so a row never names a
 * missing key; a file without a row (a vadmin killed in between, a
 * deleted key or domain) is removed by the next generation of
 * control/dkim.cdb (gen_dkim), which every change to the keys owes
 * through the pending journal (triggers of 002_dkim.sql queue 'dkim').
 *
 * control/dkim.cdb: key the domain (folded; an alias domain has its own
 * keys or none), value SELECTOR \0 TYPE [\0 SELECTOR \0 TYPE ...] in the
 * order the keys were made; lib/qsign reads it and signs with every key
 * listed. The table holds no secret and is 0644 like assign.cdb.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acct.h"
#include "dkim.h"
#include "fsx.h"
#include "json.h"
#include "num.h"
#include "vadmin.h"

static const char dkim_usage[] =
"usage: vadmin [--root DIR] dkim add DOMAIN [--selector SEL] "
"[--type rsa|ed25519] [--bits 2048..4096]\n"
"       vadmin dkim list [DOMAIN] | show DOMAIN | rotate DOMAIN | "
"del DOMAIN SELECTOR\n"
"       (add --json for scripts)\n";

/* one key as made or listed */
struct vkey {
	struct str domain, selector, p;
	int type;
	unsigned bits;
	long long created;
};

/* vkey_free - release a key's strings */
static void vkey_free(struct vkey *k)
{
	str_free(&k->domain);
	str_free(&k->selector);
	str_free(&k->p);
}

/* the domain operand: valid, folded, hosted (real or alias); its id */
static int64_t hosted(struct vctx *c, const char *in, struct str *domain)
{
	int64_t did;

	m_parse_domain(in, domain);
	did = m_domain_id(c, domain->s, NULL);
	if (!did)
		vfail(EX_REFUSED, "domain %s does not exist; add it with "
		      "'vadmin adddomain %s'", domain->s, domain->s);
	return did;
}

/* count_keys - the domain's keys; selector_taken - is SEL one of them */
static int count_keys(struct vctx *c, int64_t did, const char *sel)
{
	struct store_stmt *st = m_prep(c, sel ?
				  "SELECT count(*) FROM dkim_keys WHERE "
				  "domain_id = ? AND selector = ?" :
				  "SELECT count(*) FROM dkim_keys WHERE "
				  "domain_id = ?");
	int n = 0;

	store_bind_int(st, 1, did);
	if (sel)
		store_bind_text(st, 2, sel);
	if (store_step(st) == STORE_ROW)
		n = store_column_int(st, 0);
	store_finalize(st);
	return n;
}

/* default_selector - f + the UTC date (+ e for Ed25519), then -2, -3...
 * if the domain has it already: sortable, and says when it was made */
static void default_selector(struct vctx *c, int64_t did, int type,
			     struct str *out)
{
	time_t now = time(NULL);
	struct tm tm;
	size_t base;
	int i;

	gmtime_r(&now, &tm);
	str_trunc(out, 0);
	if (str_catf(out, "f%04d%02d%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
		     tm.tm_mday, type == DKIM_ED25519 ? "e" : ""))
		vfail(EX_TEMP, "out of memory");
	base = out->len;
	for (i = 2; count_keys(c, did, out->s); i++) {
		str_trunc(out, base);
		if (i > 99 || str_catf(out, "-%d", i))
			vfail(EX_REFUSED, "no free selector for today; give one "
			      "with --selector");
	}
}

/* write_key - a new key of K->type into its file, K->p its public half */
static void write_key(struct vctx *c, struct vkey *k)
{
	struct str pem = STR_INIT, path = STR_INIT;
	int r = dkim_keygen(k->type, k->bits, &pem, &k->p);
	char *slash;

	if (r == 0)
		r = dkim_key_path(&path, c->root, k->domain.s, k->selector.s);
	if (r == 0) {
		/* control/dkim/KEY made if missing, and its entry and that of
		 * control/dkim made durable with the file, before the row */
		slash = strrchr(path.s, '/');
		*slash = 0;
		r = fsx_mkdir_p(path.s, 0700);
		if (r == 0)
			r = fsx_fsync_parent(path.s);
		if (r == 0) {
			char *up = strrchr(path.s, '/');

			*up = 0;
			r = fsx_fsync_parent(path.s);
			*up = '/';
		}
		*slash = '/';
	}
	/* durable before any row names it (fsx_write_atomic fsyncs both) */
	if (r == 0)
		r = fsx_write_atomic(path.s, pem.s, pem.len, 0600);
	str_wipe(&pem);
	if (r < 0)
		vfail(EX_TEMP, "cannot make the key %s: %s", path.len ? path.s :
		      k->selector.s, msg_err(r));
	str_free(&path);
}

/* insert_key - the row of a key whose file is written */
static void insert_key(struct vctx *c, int64_t did, const struct vkey *k)
{
	struct store_stmt *st = m_prep(c, "INSERT INTO dkim_keys(domain_id, "
				  "selector, type, bits, public_key, created) "
				  "VALUES (?, ?, ?, ?, ?, ?)");
	int rc;

	store_bind_int(st, 1, did);
	store_bind_text(st, 2, k->selector.s);
	store_bind_text(st, 3, dkim_type_name(k->type));
	store_bind_int(st, 4, (int)k->bits);
	store_bind_text(st, 5, k->p.s);
	store_bind_int(st, 6, k->created);
	rc = store_step(st);
	store_finalize(st);
	if (rc != STORE_DONE)
		vfail(rc == -EEXIST ? EX_REFUSED : EX_TEMP,
		      "cannot record the key: %s", store_errmsg(c->db));
}

/* print_key - the record to publish: a zone line, or a JSON object */
static void print_key(struct vctx *c, const struct vkey *k, int first)
{
	struct str txt = STR_INIT, zone = STR_INIT, name = STR_INIT;

	if (dkim_txt(&txt, k->type, k->p.s) ||
	    dkim_txt_zone(&zone, k->selector.s, k->domain.s, txt.s) ||
	    str_catf(&name, "%s._domainkey.%s", k->selector.s, k->domain.s))
		vfail(EX_TEMP, "out of memory");
	if (!c->json) {
		printf("%s\n", zone.s);
	} else {
		printf("%s{\"domain\":", first ? "" : ",");
		json_put_str(k->domain.s, k->domain.len);
		printf(",\"selector\":");
		json_put_str(k->selector.s, k->selector.len);
		printf(",\"type\":\"%s\",\"bits\":%u,\"created\":%lld,"
		       "\"name\":", dkim_type_name(k->type), k->bits,
		       k->created);
		json_put_str(name.s, name.len);
		printf(",\"txt\":");
		json_put_str(txt.s, txt.len);
		printf(",\"record\":");
		json_put_str(zone.s, zone.len);
		printf("}");
	}
	str_free(&txt);
	str_free(&zone);
	str_free(&name);
}

/* make_keys - N new keys of DOMAIN (their type, bits and selector set),
 * files first, then the rows in one transaction, then dkim.cdb */
static void make_keys(struct vctx *c, int64_t did, struct vkey *k, int n,
		      const char *what)
{
	int i;

	if (count_keys(c, did, NULL) + n > DKIM_KEYS_MAX)
		vfail(EX_REFUSED, "%s already has %d keys, the most that sign "
		      "at once; delete one with 'vadmin dkim del %s SELECTOR'",
		      k[0].domain.s, count_keys(c, did, NULL), k[0].domain.s);
	/* owe dkim.cdb before the first file exists: a vadmin killed or
	 * failing between a file and its row leaves this debt, which the
	 * next vadmin pays (gen_recover), and that generation's sweep
	 * removes the file no row names */
	m_begin(c);
	m_pending(c, "dkim", "");
	m_commit(c);
	for (i = 0; i < n; i++) {
		k[i].created = (long long)time(NULL);
		write_key(c, &k[i]);
	}
	m_begin(c);
	for (i = 0; i < n; i++)
		insert_key(c, did, &k[i]);
	m_commit(c);
	gen_run_pending(c);
	if (c->json)
		printf("[");
	for (i = 0; i < n; i++) {
		print_key(c, &k[i], i == 0);
		vlog(c, "dkim %s %s %s %s %u", what, k[i].domain.s,
		     k[i].selector.s, dkim_type_name(k[i].type), k[i].bits);
	}
	if (c->json)
		printf("]\n");
}

/* parse_kind - --type and --bits; refused as invalid (exit 1) */
static void parse_kind(const struct dkim_args *a, int *type, unsigned *bits)
{
	uint64_t b = DKIM_RSA_DEFAULT;

	*type = a->type ? dkim_type_parse(a->type) : DKIM_RSA;
	if (*type < 0)
		vfail(EX_REFUSED, "unknown key type '%s': use rsa or ed25519",
		      a->type);
	if (a->bits && *type == DKIM_ED25519)
		vfail(EX_REFUSED, "--bits is for RSA keys; an Ed25519 key has "
		      "no size to choose");
	if (a->bits && (num_parse(a->bits, DKIM_RSA_MAX, &b) < 0 ||
			b < DKIM_RSA_MIN))
		vfail(EX_REFUSED, "--bits %s: an RSA key has 2048 to 4096 bits "
		      "(RFC 8301: less is unsafe, more is not verified by all)",
		      a->bits);
	*bits = *type == DKIM_ED25519 ? 256 : (unsigned)b;
}

/* dkim_add - vadmin dkim add DOMAIN [--selector S] [--type T] [--bits N] */
static int dkim_add(struct vctx *c, const struct dkim_args *a)
{
	struct vkey k;
	int64_t did;

	memset(&k, 0, sizeof k);
	parse_kind(a, &k.type, &k.bits);
	did = hosted(c, a->pos[1], &k.domain);
	if (a->selector) {
		if (str_copys(&k.selector, a->selector))
			vfail(EX_TEMP, "out of memory");
		if (count_keys(c, did, k.selector.s))
			vfail(EX_REFUSED, "%s already has a key with selector "
			      "%s", k.domain.s, k.selector.s);
	} else {
		default_selector(c, did, k.type, &k.selector);
	}
	make_keys(c, did, &k, 1, "add");
	vkey_free(&k);
	return EX_DONE;
}

/* vdkim_adddomain - adddomain --dkim: the default key at once */
void vdkim_adddomain(struct vctx *c, const char *domain)
{
	const char *pos[2] = {"add", domain};
	struct dkim_args a;

	memset(&a, 0, sizeof a);
	a.pos = pos;
	a.npos = 2;
	(void)dkim_add(c, &a);
}

/* load_row - a dkim_keys row (domain, selector, type, bits, p, created) */
static void load_row(struct store_stmt *st, struct vkey *k)
{
	if (str_copys(&k->domain, m_col(st, 0)) ||
	    str_copys(&k->selector, m_col(st, 1)) ||
	    str_copys(&k->p, m_col(st, 4)))
		vfail(EX_TEMP, "out of memory");
	k->type = dkim_type_parse(m_col(st, 2));
	k->bits = (unsigned)store_column_int(st, 3);
	k->created = store_column_int(st, 5);
}

/* print_line - DOMAIN SELECTOR TYPE BITS CREATED (ISO 8601, UTC) */
static void print_line(const struct vkey *k)
{
	time_t t = (time_t)k->created;
	struct tm tm;
	char when[32];

	if (!gmtime_r(&t, &tm) ||
	    !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
		strcpy(when, "?");
	printf("%s %s %s %u %s\n", k->domain.s, k->selector.s,
	       dkim_type_name(k->type), k->bits, when);
}

#define KEY_COLUMNS "d.name, k.selector, k.type, k.bits, k.public_key, " \
	"k.created FROM dkim_keys k JOIN domains d ON d.id = k.domain_id "

/* dkim_list - list [DOMAIN] (all keys) and show DOMAIN (the records) */
static int dkim_list(struct vctx *c, const struct dkim_args *a, int show)
{
	struct str domain = STR_INIT;
	struct vkey k;
	struct store_stmt *st;
	int n = 0;

	/* show without a key is an error; list of a keyless domain is empty */
	if (a->npos > 1 && !count_keys(c, hosted(c, a->pos[1], &domain),
					NULL) && show)
		vfail(EX_REFUSED, "%s has no DKIM key; make one with 'vadmin "
		      "dkim add %s'", domain.s, domain.s);
	st = m_prep(c, a->npos > 1 ? "SELECT " KEY_COLUMNS "WHERE d.name = ? "
		    "ORDER BY k.id" : "SELECT " KEY_COLUMNS "ORDER BY d.name, "
		    "k.id");
	if (a->npos > 1)
		store_bind_text(st, 1, domain.s);
	memset(&k, 0, sizeof k);
	if (c->json)
		printf("[");
	while (store_step(st) == STORE_ROW) {
		load_row(st, &k);
		if (show || c->json)
			print_key(c, &k, n == 0);
		else
			print_line(&k);
		n++;
	}
	if (c->json)
		printf("]\n");
	store_finalize(st);
	vkey_free(&k);
	str_free(&domain);
	return EX_DONE;
}

/* dkim_rotate - a new key, of a new selector, for each type the domain
 * signs with (the newest key of that type gives the size); the old keys
 * keep signing until `dkim del` */
static int dkim_rotate(struct vctx *c, const struct dkim_args *a)
{
	struct str domain = STR_INIT;
	struct vkey k[2];
	struct store_stmt *st;
	int64_t did = hosted(c, a->pos[1], &domain);
	int n = 0;

	memset(k, 0, sizeof k);
	st = m_prep(c, "SELECT type, bits FROM dkim_keys WHERE id IN (SELECT "
		    "max(id) FROM dkim_keys WHERE domain_id = ? GROUP BY type) "
		    "ORDER BY type DESC");
	store_bind_int(st, 1, did);
	while (n < 2 && store_step(st) == STORE_ROW) {
		k[n].type = dkim_type_parse(m_col(st, 0));
		k[n].bits = (unsigned)store_column_int(st, 1);
		if (str_copys(&k[n].domain, domain.s))
			vfail(EX_TEMP, "out of memory");
		n++;
	}
	store_finalize(st);
	if (n == 0)
		vfail(EX_REFUSED, "%s has no DKIM key to rotate; make one with "
		      "'vadmin dkim add %s'", domain.s, domain.s);
	/* the selectors after the loop: the second must not take the first's */
	default_selector(c, did, k[0].type, &k[0].selector);
	if (n == 2)
		default_selector(c, did, k[1].type, &k[1].selector);
	make_keys(c, did, k, n, "rotate");
	vkey_free(&k[0]);
	vkey_free(&k[1]);
	str_free(&domain);
	return EX_DONE;
}

/* dkim_del - del DOMAIN SELECTOR: the row, then (gen_dkim) the table and
 * the file; the DNS record should stay until mail signed with it is read */
static int dkim_del(struct vctx *c, const struct dkim_args *a)
{
	struct str domain = STR_INIT;
	int64_t did = hosted(c, a->pos[1], &domain);
	struct store_stmt *st;
	int gone;

	m_begin(c);
	st = m_prep(c, "DELETE FROM dkim_keys WHERE domain_id = ? AND "
		    "selector = ?");
	store_bind_int(st, 1, did);
	store_bind_text(st, 2, a->pos[2]);
	if (store_step(st) != STORE_DONE)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	store_finalize(st);
	gone = store_changes(c->db);
	if (!gone)
		vfail(EX_REFUSED, "%s has no key with selector %s; see 'vadmin "
		      "dkim list %s'", domain.s, a->pos[2], domain.s);
	m_commit(c);
	gen_run_pending(c);
	vlog(c, "dkim del %s %s", domain.s, a->pos[2]);
	str_free(&domain);
	return EX_DONE;
}

/* vdkim_check - the operands, before the root is opened; 1 if it writes */
int vdkim_check(const struct dkim_args *a)
{
	const char *w = a->npos ? a->pos[0] : "";
	int want = !strcmp(w, "del") ? 3 : !strcmp(w, "list") ? -1 : 2;

	if (strcmp(w, "add") && strcmp(w, "list") && strcmp(w, "show") &&
	    strcmp(w, "rotate") && strcmp(w, "del"))
		msg_usage(dkim_usage, "dkim: use 'dkim add', 'list', 'show', "
			  "'rotate' or 'del'");
	if (want > 0 ? a->npos != want : a->npos > 2)
		msg_usage(dkim_usage, "dkim %s: wrong number of arguments", w);
	if ((a->selector || a->type || a->bits) && strcmp(w, "add"))
		msg_usage(dkim_usage, "dkim %s: --selector, --type and --bits are for "
			  "'dkim add'", w);
	if (a->selector && !dkim_selector_ok(a->selector))
		vfail(EX_REFUSED, "invalid selector '%s': one DNS label of "
		      "a-z, 0-9 and '-', at most 63", a->selector);
	return strcmp(w, "list") && strcmp(w, "show");
}

/* vdkim_run - the command on the opened root; the exit code */
int vdkim_run(struct vctx *c, const struct dkim_args *a)
{
	const char *w = a->pos[0];

	if (!strcmp(w, "add"))
		return dkim_add(c, a);
	if (!strcmp(w, "list") || !strcmp(w, "show"))
		return dkim_list(c, a, !strcmp(w, "show"));
	if (!strcmp(w, "rotate"))
		return dkim_rotate(c, a);
	return dkim_del(c, a);
}
