/*
 * vshow - what vadmin prints: userinfo, dominfo, listusers, listdomains,
 * and valias's listing. Text for people (one "key: value" a line, or one
 * name a line for lists), and with --json one JSON document for scripts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "maildir.h"
#include "name.h"
#include "vadmin.h"

/* json_str - a JSON string literal of s */
static void json_str(const char *s)
{
	json_put_str(s, strlen(s));
}

static struct store_stmt *prep(struct vctx *c, const char *sql)
{
	struct store_stmt *st = NULL;

	if (store_prepare(c->db, sql, &st) != 0)
		vfail(EX_TEMP, "database error: %s", store_errmsg(c->db));
	return st;
}

static const char *col(struct store_stmt *st, int i)
{
	const char *t = store_column_text(st, i);

	return t ? t : "";
}

static void iso_time(time_t t, char out[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *scheme_of(const char *hash)
{
	if (!strncmp(hash, "$y$", 3))
		return "yescrypt";
	if (!strncmp(hash, "$6$", 3))
		return "sha512crypt";
	/* kept from vpopmail by import-vpopmail: weak, say so (SPEC.md) */
	if (!strncmp(hash, "$1$", 3))
		return "md5crypt";
	return "none";
}

/* show_user - vadmin userinfo */
void show_user(struct vctx *c, const char *addr)
{
	struct str local = STR_INIT, domain = STR_INIT, real = STR_INIT;
	struct str qs = STR_INIT, md = STR_INIT;
	struct quota q;
	struct store_stmt *st;
	uint64_t bytes = 0, msgs = 0;
	char created[32];
	int64_t did, flags;
	int dfd;
	static const char *const svc[3] = {"pop", "smtp", "delivery"};
	const char *fwd, *fwdkeep;
	int i;

	m_parse_addr(addr, &local, &domain);
	did = m_real_domain(c, domain.s, &real);
	if (!did)
		vfail(EX_REFUSED, "domain %s does not exist", domain.s);
	st = prep(c, "SELECT u.name, u.maildir, u.quota_bytes, u.quota_msgs, "
		     "u.flags, u.hash, u.cram IS NOT NULL, u.created, f.dest, "
		     "f.keep FROM users u LEFT JOIN forwards f ON f.user_id = "
		     "u.id WHERE u.domain_id = ? AND u.local = ?");
	store_bind_int(st, 1, did);
	store_bind_text(st, 2, local.s);
	if (store_step(st) != STORE_ROW)
		vfail(EX_REFUSED, "user %s@%s does not exist", local.s,
		      domain.s);
	q.bytes = (uint64_t)store_column_int(st, 2);
	q.msgs = (uint64_t)store_column_int(st, 3);
	flags = store_column_int(st, 4);
	iso_time((time_t)store_column_int(st, 7), created);
	if (quota_format(&q, &qs) < 0 ||
	    str_catf(&md, "%s/%s", c->root, col(st, 1)) < 0)
		vfail(EX_TEMP, "out of memory");
	/* lib/maildir's count, folders included, as the quota counts */
	dfd = open(md.s, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)maildir_usage(dfd, &bytes, &msgs);
		close(dfd);
	}
	fwd = col(st, 8);
	fwdkeep = store_column_int(st, 9) ? "yes" : "no";
	if (c->json) {
		printf("{\"address\":\"%s@%s\"", local.s, real.s); /* checked names */
		printf(",\"domain\":");
		json_str(real.s);
		printf(",\"name\":");
		json_str(col(st, 0));
		printf(",\"maildir\":");
		json_str(md.s);
		printf(",\"quota\":");
		json_str(qs.len ? qs.s : "none");
		printf(",\"quota_bytes\":%llu,\"quota_messages\":%llu",
		       (unsigned long long)q.bytes, (unsigned long long)q.msgs);
		printf(",\"usage_bytes\":%llu,\"usage_messages\":%llu",
		       (unsigned long long)bytes, (unsigned long long)msgs);
		for (i = 0; i < 3; i++)
			printf(",\"%s\":%s", svc[i],
			       flags & (1 << i) ? "false" : "true");
		printf(",\"forward\":");
		if (*fwd) {
			json_str(fwd);
			printf(",\"forward_keep\":%s", *fwdkeep == 'y' ?
			       "true" : "false");
		} else {
			printf("null");
		}
		printf(",\"password\":");
		json_str(scheme_of(col(st, 5)));
		printf(",\"password_weak\":%s",
		       strncmp(col(st, 5), "$1$", 3) ? "false" : "true");
		printf(",\"cram_md5\":%s,\"created\":",
		       store_column_int(st, 6) ? "true" : "false");
		json_str(created);
		printf("}\n");
	} else {
		printf("address: %s@%s\n", local.s, real.s);
		printf("name: %s\n", col(st, 0));
		printf("maildir: %s\n", md.s);
		printf("quota: %s\n", qs.len ? qs.s : "none");
		printf("usage: %llu bytes, %llu messages\n",
		       (unsigned long long)bytes, (unsigned long long)msgs);
		for (i = 0; i < 3; i++)
			printf("%s: %s\n", svc[i],
			       flags & (1 << i) ? "disabled" : "enabled");
		if (*fwd)
			printf("forward: %s%s\n", fwd, *fwdkeep == 'y' ?
			       " (keeps a copy)" : "");
		else
			printf("forward: none\n");
		printf("password: %s%s\n", scheme_of(col(st, 5)),
		       strncmp(col(st, 5), "$1$", 3) ? "" : " (weak: give a "
		       "new one with 'vadmin passwd')");
		printf("cram-md5: %s\n", store_column_int(st, 6) ? "yes" :
		       "no");
		printf("created: %s\n", created);
	}
	store_finalize(st);
	str_free(&local);
	str_free(&domain);
	str_free(&real);
	str_free(&qs);
	str_free(&md);
}

/* show_one_domain - dominfo for one domain row */
static void show_one_domain(struct vctx *c, struct store_stmt *st, int first)
{
	struct quota q = {(uint64_t)store_column_int(st, 4),
			  (uint64_t)store_column_int(st, 5)};
	struct str qs = STR_INIT, aliases = STR_INIT;
	struct store_stmt *a;
	int64_t id = store_column_int(st, 0);
	const char *name = col(st, 1), *real = col(st, 2);
	int is_alias = !store_column_null(st, 2);
	char created[32];

	if (quota_format(&q, &qs) < 0)
		vfail(EX_TEMP, "out of memory");
	iso_time((time_t)store_column_int(st, 8), created);
	a = prep(c, "SELECT name FROM domains WHERE alias_of = ? ORDER BY name");
	store_bind_int(a, 1, id);
	while (store_step(a) == STORE_ROW)
		if ((aliases.len && str_catc(&aliases, ' ')) ||
		    str_cats(&aliases, col(a, 0)))
			vfail(EX_TEMP, "out of memory");
	store_finalize(a);
	if (c->json) {
		printf("%s{\"domain\":", first ? "" : ",");
		json_str(name);
		printf(",\"alias_of\":");
		if (is_alias)
			json_str(real);
		else
			printf("null");
		if (!is_alias) {
			struct str dir = STR_INIT;

			if (str_catf(&dir, "%s/domains/%s", c->root, name))
				vfail(EX_TEMP, "out of memory");
			printf(",\"directory\":");
			json_str(dir.s);
			str_free(&dir);
			printf(",\"users\":%lld,\"aliases\":%lld",
			       (long long)store_column_int(st, 6),
			       (long long)store_column_int(st, 7));
			printf(",\"catchall\":");
			json_str(col(st, 3));
			printf(",\"default_quota\":");
			json_str(qs.len ? qs.s : "none");
			printf(",\"alias_domains\":[");
			for (size_t i = 0, n = 0; i < aliases.len; n++) {
				size_t e = i;

				while (e < aliases.len && aliases.s[e] != ' ')
					e++;
				aliases.s[e] = 0;
				printf("%s", n ? "," : "");
				json_str(aliases.s + i);
				i = e + 1;
			}
			printf("]");
		}
		printf(",\"created\":\"%s\"}", created);
	} else {
		printf("%sdomain: %s\n", first ? "" : "\n", name);
		if (is_alias) {
			printf("alias of: %s\n", real);
		} else {
			printf("directory: %s/domains/%s\n", c->root, name);
			printf("users: %lld\n",
			       (long long)store_column_int(st, 6));
			printf("aliases: %lld\n",
			       (long long)store_column_int(st, 7));
			printf("catchall: %s\n", col(st, 3));
			printf("default quota: %s\n", qs.len ? qs.s : "none");
			printf("alias domains: %s\n", aliases.len ? aliases.s :
			       "none");
		}
		printf("created: %s\n", created);
	}
	str_free(&qs);
	str_free(&aliases);
}

/* show_domain - vadmin dominfo [DOMAIN] */
void show_domain(struct vctx *c, const char *in)
{
	struct str domain = STR_INIT;
	struct store_stmt *st;
	int n = 0;

	if (in)
		m_parse_domain(in, &domain);
	st = prep(c, "SELECT d.id, d.name, r.name, d.catchall, d.quota_bytes, "
		     "d.quota_msgs, (SELECT count(*) FROM users WHERE domain_id "
		     "= d.id), (SELECT count(DISTINCT local) FROM aliases WHERE "
		     "domain_id = d.id), d.created FROM domains d LEFT JOIN "
		     "domains r ON r.id = d.alias_of WHERE ?1 IS NULL OR d.name "
		     "= ?1 ORDER BY d.name");
	if (in)
		store_bind_text(st, 1, domain.s);
	if (c->json && !in)
		printf("[");
	while (store_step(st) == STORE_ROW)
		show_one_domain(c, st, n++ == 0);
	if (c->json && !in)
		printf("]\n");
	else if (c->json && n)
		printf("\n");
	store_finalize(st);
	if (in && !n)
		vfail(EX_REFUSED, "domain %s does not exist", domain.s);
	str_free(&domain);
}

/* show_users - vadmin listusers DOMAIN */
void show_users(struct vctx *c, const char *in)
{
	struct str domain = STR_INIT, real = STR_INIT, qs = STR_INIT;
	struct store_stmt *st;
	int64_t did;
	int n = 0;

	m_parse_domain(in, &domain);
	did = m_real_domain(c, domain.s, &real);
	if (!did)
		vfail(EX_REFUSED, "domain %s does not exist", domain.s);
	st = prep(c, "SELECT local, name, quota_bytes, quota_msgs, flags FROM "
		     "users WHERE domain_id = ? ORDER BY local");
	store_bind_int(st, 1, did);
	if (c->json)
		printf("[");
	while (store_step(st) == STORE_ROW) {
		struct quota q = {(uint64_t)store_column_int(st, 2),
				  (uint64_t)store_column_int(st, 3)};
		int f = store_column_int(st, 4);

		if (!c->json) {
			printf("%s@%s\n", col(st, 0), real.s);
			continue;
		}
		if (quota_format(&q, &qs) < 0 ||
		    str_catf(&qs, "%s", "") < 0)
			vfail(EX_TEMP, "out of memory");
		printf("%s{\"address\":\"%s@%s\",\"name\":", n++ ? "," : "",
		       col(st, 0), real.s);
		json_str(col(st, 1));
		printf(",\"quota\":");
		json_str(qs.len ? qs.s : "none");
		printf(",\"pop\":%s,\"smtp\":%s,\"delivery\":%s}",
		       f & ACCT_NOPOP ? "false" : "true",
		       f & ACCT_NOSMTP ? "false" : "true",
		       f & ACCT_NODELIVERY ? "false" : "true");
	}
	if (c->json)
		printf("]\n");
	store_finalize(st);
	str_free(&domain);
	str_free(&real);
	str_free(&qs);
}

/* show_domains - vadmin listdomains */
void show_domains(struct vctx *c)
{
	struct store_stmt *st = prep(c, "SELECT d.name, r.name FROM domains d LEFT "
				   "JOIN domains r ON r.id = d.alias_of ORDER "
				   "BY d.name");
	int n = 0;

	if (c->json)
		printf("[");
	while (store_step(st) == STORE_ROW) {
		int alias = !store_column_null(st, 1);

		if (c->json) {
			printf("%s{\"domain\":\"%s\",\"alias_of\":", n++ ? "," :
			       "", col(st, 0));
			if (alias)
				printf("\"%s\"}", col(st, 1));
			else
				printf("null}");
		} else if (alias) {
			printf("%s (alias of %s)\n", col(st, 0), col(st, 1));
		} else {
			printf("%s\n", col(st, 0));
		}
	}
	if (c->json)
		printf("]\n");
	store_finalize(st);
}

/* show_aliases - valias DOMAIN | valias ALIAS@DOMAIN: "alias -> dest" */
void show_aliases(struct vctx *c, const char *what)
{
	struct str local = STR_INIT, domain = STR_INIT, real = STR_INIT;
	struct store_stmt *st;
	int64_t did;
	int n = 0;

	if (strchr(what, '@'))
		m_parse_addr(what, &local, &domain);
	else
		m_parse_domain(what, &domain);
	did = m_real_domain(c, domain.s, &real);
	if (!did)
		vfail(EX_REFUSED, "domain %s does not exist", domain.s);
	st = prep(c, "SELECT local, dest FROM aliases WHERE domain_id = ?1 AND "
		     "(?2 IS NULL OR local = ?2) ORDER BY local, dest");
	store_bind_int(st, 1, did);
	if (local.len)
		store_bind_text(st, 2, local.s);
	while (store_step(st) == STORE_ROW) {
		printf("%s@%s -> %s\n", col(st, 0), real.s, col(st, 1));
		n++;
	}
	store_finalize(st);
	if (local.len && !n)
		vfail(EX_REFUSED, "alias %s@%s does not exist", local.s, real.s);
	str_free(&local);
	str_free(&domain);
	str_free(&real);
}

/* show_flags - vadmin moduser USER@DOMAIN: which services are on */
void show_flags(struct vctx *c, const char *addr)
{
	struct str local = STR_INIT, domain = STR_INIT, real = STR_INIT;
	struct store_stmt *st;
	int64_t did;
	int f;

	m_parse_addr(addr, &local, &domain);
	did = m_real_domain(c, domain.s, &real);
	if (!did)
		vfail(EX_REFUSED, "domain %s does not exist", domain.s);
	st = prep(c, "SELECT flags FROM users WHERE domain_id = ? AND local = ?");
	store_bind_int(st, 1, did);
	store_bind_text(st, 2, local.s);
	if (store_step(st) != STORE_ROW)
		vfail(EX_REFUSED, "user %s@%s does not exist", local.s,
		      domain.s);
	f = store_column_int(st, 0);
	if (c->json)
		printf("{\"pop\":%s,\"smtp\":%s,\"delivery\":%s}\n",
		       f & ACCT_NOPOP ? "false" : "true",
		       f & ACCT_NOSMTP ? "false" : "true",
		       f & ACCT_NODELIVERY ? "false" : "true");
	else
		printf("pop: %s\nsmtp: %s\ndelivery: %s\n",
		       f & ACCT_NOPOP ? "disabled" : "enabled",
		       f & ACCT_NOSMTP ? "disabled" : "enabled",
		       f & ACCT_NODELIVERY ? "disabled" : "enabled");
	store_finalize(st);
	str_free(&local);
	str_free(&domain);
	str_free(&real);
}
