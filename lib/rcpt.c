/*
 * rcpt - what a local address of a hosted domain delivers to (see rcpt.h).
 */
#include "rcpt.h"

#include <errno.h>
#include <string.h>

#include "acct.h"
#include "num.h"

/* rcpt_ext_prev - length of the next shorter name to try: the longest
 * prefix shorter than len that ends before a '-' or '+'; 0 when none */
size_t rcpt_ext_prev(const char *local, size_t len)
{
	while (len > 1) {
		len--;
		if (local[len] == '-' || local[len] == '+')
			return len;
	}
	return 0;
}

/* lookup - one key of the delivery table: kind letter and name */
static int lookup(const char *root, const char *real, const char *name,
		  char kind, struct str *key, struct str *val)
{
	key->len = 0;
	if (str_catc(key, kind) || str_cats(key, name))
		return -ENOMEM;
	return acct_get(root, real, ACCT_DELIVERY, name, key->s, key->len,
			val);
}

/* rcpt_find - the record that a local part of a real domain resolves to */
int rcpt_find(const char *root, const char *real, const char *local,
	      int catchall, struct rcpt *r)
{
	struct str key = STR_INIT;
	size_t len = strlen(local);
	int e = -ENOENT;

	r->kind = 0;
	r->has_fwd = 0;
	while (len > 0) {
		if (str_copyb(&r->name, local, len) < 0) {
			e = -ENOMEM;
			break;
		}
		e = lookup(root, real, r->name.s, 'u', &key, &r->val);
		if (e == 0) {
			r->kind = RCPT_USER;
			e = lookup(root, real, r->name.s, 'f', &key, &r->fwd);
			r->has_fwd = e == 0;
			if (e == -ENOENT)
				e = 0;
			break;
		}
		if (e == -ENOENT)
			e = lookup(root, real, r->name.s, 'a', &key, &r->val);
		if (e == 0)
			r->kind = RCPT_ALIAS;
		if (e != -ENOENT)
			break;
		len = rcpt_ext_prev(local, len);
	}
	if (e == -ENOENT && catchall) {
		/* the catch-all is in every shard; any name finds it */
		e = acct_get(root, real, ACCT_DELIVERY, local, "*", 1, &r->val);
		if (e == 0) {
			r->kind = RCPT_CATCHALL;
			r->name.len = 0;
			e = str_catb(&r->name, "", 0);
		}
	}
	str_free(&key);
	return e;
}

/* rcpt_accepts - the answer at RCPT for LOCAL of the real domain REAL,
 * by the rule vdeliver delivers with (rcpt_find, its flags, the
 * catch-all), so that nothing accepted bounces later for want of a user */
int rcpt_accepts(const char *root, const char *real, const char *local)
{
	struct rcpt rc = RCPT_INIT;
	struct rcpt_user u = RCPT_USER_INIT;
	int r = rcpt_find(root, real, local, 1, &rc);

	if (r == -ENOENT)
		r = RCPT_NO_USER;
	else if (r == 0 && rc.kind == RCPT_USER) {
		r = rcpt_parse_user(rc.val.s, rc.val.len, &u);
		if (r == 0)
			r = u.flags & ACCT_NODELIVERY ? RCPT_DISABLED :
			    RCPT_OK;
	} else if (r == 0 && rc.kind == RCPT_CATCHALL)
		r = rc.val.len == 0 || str_eqs(&rc.val, "bounce") ?
		    RCPT_NO_USER : RCPT_OK;
	else if (r == 0)
		r = RCPT_OK;
	rcpt_user_free(&u);
	rcpt_free(&rc);
	return r;
}

/* rcpt_parse_user - MAILDIR \0 QUOTA_BYTES \0 QUOTA_MSGS \0 FLAGS; a
 * MAILDIR that login_parse would refuse is refused here too */
int rcpt_parse_user(const char *v, size_t n, struct rcpt_user *u)
{
	const char *f[4];
	size_t len[4];
	uint64_t flags;

	if (acct_fields(v, n, f, len, 4) < 0 ||
	    !acct_maildir_ok(f[0], len[0]) ||
	    num_parseb(f[1], len[1], UINT64_MAX, &u->quota.bytes) ||
	    num_parseb(f[2], len[2], UINT64_MAX, &u->quota.msgs) ||
	    num_parseb(f[3], len[3], UINT64_MAX, &flags))
		return -EILSEQ;
	u->flags = (unsigned long)flags;
	return str_copyb(&u->maildir, f[0], len[0]);
}

/* rcpt_parse_forward - KEEP \0 DEST; the destination points into v */
int rcpt_parse_forward(const char *v, size_t n, int *keep_r,
		       const char **dest_r, size_t *dlen_r)
{
	if (n < 3 || (v[0] != '0' && v[0] != '1') || v[1] != 0 ||
	    memchr(v + 2, 0, n - 2))
		return -EILSEQ;
	*keep_r = v[0] == '1';
	*dest_r = v + 2;
	*dlen_r = n - 2;
	return 0;
}

/* rcpt_free - release an rcpt */
void rcpt_free(struct rcpt *r)
{
	str_free(&r->name);
	str_free(&r->val);
	str_free(&r->fwd);
}

/* rcpt_user_free - release an rcpt_user */
void rcpt_user_free(struct rcpt_user *u)
{
	str_free(&u->maildir);
}
