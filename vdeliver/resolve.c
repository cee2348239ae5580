/*
 * resolve - the recipient expanded into mailboxes and remote addresses.
 *
 * Only the generated tables are read (lib/rcpt.h, lib/acct.h): never the
 * database, which may be busy or on another machine. Each address is
 * looked up as lib/rcpt.h says (mailbox, alias, extensions, catch-all); a
 * mailbox with a forward delivers to the forward's destination (and to
 * itself with KEEP 1). Destinations in a hosted domain are followed here,
 * up to RCPT_DEPTH_MAX in a row; others become remote targets for the queue.
 *
 * Every address passed through is kept in v->seen, which the header scan
 * compares with the message's Delivered-To: lines, and in each target's
 * chain, which becomes that copy's Delivered-To: lines, newest first, as
 * qmail would have written them had it re-injected the message at each
 * step. Nothing is written before the whole expansion has succeeded, so a
 * permanent failure anywhere (an unknown destination, a disabled mailbox,
 * a loop) leaves no copy anywhere.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acct.h"
#include "name.h"
#include "rcpt.h"
#include "vdeliver.h"

static void expand(struct vd *v, const char *local, const char *domain,
		   const char *real, const struct str *parent, unsigned depth,
		   const char *nocatch);

/* in_list - is s one of the NUL-terminated strings of list */
static int in_list(const struct str *list, const char *s)
{
	size_t i, n = strlen(s);

	for (i = 0; i < list->len; i += strlen(list->s + i) + 1)
		if (strlen(list->s + i) == n && !memcmp(list->s + i, s, n))
			return 1;
	return 0;
}

/* add_target - a mailbox or a remote address, once each */
static struct target *add_target(struct vd *v, int remote, const char *addr,
				 const struct str *chain, const char *maildir)
{
	struct target *t;
	size_t i;

	for (i = 0; i < v->n; i++) {
		t = &v->t[i];
		if (t->remote != remote)
			continue;
		/* two ways to one mailbox, or one remote address: one copy */
		if (remote ? str_eqs(&t->addr, addr) :
		    str_eqs(&t->maildir, maildir))
			return NULL;
	}
	if (v->n == RCPT_TARGETS_MAX)
		vd_fail(v, EX_PERM, "5.5.3", "%s expands to more than %d "
			"destinations", v->rcpt.s, RCPT_TARGETS_MAX);
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 4;
		struct target *nt = realloc(v->t, cap * sizeof *nt);

		if (!nt)
			vd_fail_errno(v, -ENOMEM, "cannot expand %s", v->rcpt.s);
		v->t = nt;
		v->cap = cap;
	}
	t = &v->t[v->n];
	memset(t, 0, sizeof *t);
	t->remote = remote;
	t->md.dfd = t->md.tmpfd = t->md.newfd = -1;
	t->f.fd = -1;
	v->n++;
	if (str_copys(&t->addr, addr) < 0 ||
	    str_copyb(&t->chain, chain->s, chain->len) < 0 ||
	    (maildir && str_copys(&t->maildir, maildir) < 0))
		vd_fail_errno(v, -ENOMEM, "cannot expand %s", v->rcpt.s);
	return t;
}

/* table_error - a lookup that failed for another reason than "absent" */
static _Noreturn void table_error(struct vd *v, int r, const char *addr,
				  const char *domain)
{
	if (r == -ENODATA)
		vd_fail(v, EX_TEMP, "4.3.0", "%s/control/assign.cdb is missing; "
			"run 'vadmin rebuild'", v->root);
	if (r == -EIO)
		vd_fail(v, EX_TEMP, "4.3.0", "a delivery table file of %s is "
			"missing; run 'vadmin rebuild'", domain);
	if (r == -EILSEQ)
		vd_fail(v, EX_TEMP, "4.3.0", "the record of %s in the tables is "
			"malformed; run 'vadmin rebuild'", addr);
	vd_fail_errno(v, r, "cannot look %s up", addr);
}

/* dest - one destination of an alias, a forward or a catch-all */
static void dest(struct vd *v, const char *addr, size_t len,
		 const struct str *chain, unsigned depth, const char *nocatch)
{
	struct str a = STR_INIT, local = STR_INIT, domain = STR_INIT;
	struct acct_domain d = {STR_INIT, STR_INIT, 0};
	const char *at, *why;
	int r;

	if (memchr(addr, 0, len) || str_copyb(&a, addr, len) < 0)
		vd_fail(v, EX_TEMP, "4.3.0", "a destination of %s in the tables "
			"is malformed; run 'vadmin rebuild'", v->rcpt.s);
	at = strrchr(a.s, '@');
	if (!at || name_domain(at + 1, strlen(at + 1), &domain, &why) < 0)
		vd_fail(v, EX_TEMP, "4.3.0", "destination '%s' of %s in the "
			"tables is not an address; fix it with vadmin", a.s,
			v->rcpt.s);
	r = acct_domain(v->root, domain.s, &d);
	if (r == -ENOENT) {
		size_t i;

		/* remote: the local part keeps its case; it becomes an
		 * argument of mta-inject, so no control byte or space */
		for (i = 0; i < (size_t)(at - a.s); i++)
			if ((unsigned char)a.s[i] <= ' ' || a.s[i] == 0x7f)
				vd_fail(v, EX_TEMP, "4.3.0", "destination of %s "
					"in the tables is not an address; fix "
					"it with vadmin", v->rcpt.s);
		if (at == a.s)
			vd_fail(v, EX_TEMP, "4.3.0", "destination '%s' of %s "
				"has no local part; fix it with vadmin", a.s,
				v->rcpt.s);
		add_target(v, 1, a.s, chain, NULL);
	} else if (r < 0) {
		table_error(v, r, a.s, domain.s);
	} else {
		if (name_local(a.s, (size_t)(at - a.s), &local, &why) < 0)
			vd_fail(v, EX_TEMP, "4.3.0", "destination '%s' of %s "
				"in the tables: the local part %s; fix it with "
				"vadmin", a.s, v->rcpt.s, why);
		expand(v, local.s, domain.s, d.real.s, chain, depth, nocatch);
	}
	acct_domain_free(&d);
	str_free(&a);
	str_free(&local);
	str_free(&domain);
}

/* user - a mailbox record, and its forward */
static void user(struct vd *v, const char *addr, const char *real,
		 struct rcpt *rc, const struct str *chain, unsigned depth)
{
	struct rcpt_user u = RCPT_USER_INIT;
	struct str box = STR_INIT;
	const char *fdest;
	size_t flen;
	int keep = 1;

	if (rcpt_parse_user(rc->val.s, rc->val.len, &u) < 0)
		table_error(v, -EILSEQ, addr, real);
	if (u.flags & ACCT_NODELIVERY)
		vd_fail(v, EX_PERM, "5.2.1", "%s does not accept mail: delivery "
			"to this mailbox is disabled", addr);
	if (rc->has_fwd && rcpt_parse_forward(rc->fwd.s, rc->fwd.len, &keep,
					      &fdest, &flen) < 0)
		table_error(v, -EILSEQ, addr, real);
	if (keep) {
		struct target *t;

		/* the mailbox's own address, for messages and the log */
		if (str_catf(&box, "%s@%s", rc->name.s, real) < 0)
			vd_fail_errno(v, -ENOMEM, "cannot expand %s", addr);
		t = add_target(v, 0, box.s, chain, u.maildir.s);
		if (t)
			t->quota = u.quota;
	}
	if (rc->has_fwd)
		dest(v, fdest, flen, chain, depth + 1, NULL);
	rcpt_user_free(&u);
	str_free(&box);
}

/* expand - LOCAL@DOMAIN (REAL after alias domains) and what it leads to */
static void expand(struct vd *v, const char *local, const char *domain,
		   const char *real, const struct str *parent, unsigned depth,
		   const char *nocatch)
{
	struct rcpt rc = RCPT_INIT;
	struct str addr = STR_INIT, chain = STR_INIT;
	size_t i;
	int r;

	if (str_catf(&addr, "%s@%s", local, domain) < 0)
		vd_fail_errno(v, -ENOMEM, "cannot expand %s", v->rcpt.s);
	if (in_list(parent, addr.s))
		vd_fail(v, EX_PERM, "5.4.6", "alias loop: %s leads back to "
			"itself; fix its aliases or forwards", addr.s);
	if (depth > RCPT_DEPTH_MAX)
		vd_fail(v, EX_PERM, "5.4.6", "alias loop: %s passes through "
			"more than %d aliases or forwards", v->rcpt.s,
			RCPT_DEPTH_MAX);
	if ((v->lookups += 8) > VD_LOOKUPS_MAX)
		vd_fail(v, EX_PERM, "5.5.3", "%s expands to too many "
			"destinations", v->rcpt.s);
	/* newest first, as each re-injection would have prepended it */
	if (str_catb(&chain, addr.s, addr.len + 1) < 0 ||
	    str_catb(&chain, parent->s, parent->len) < 0 ||
	    (!in_list(&v->seen, addr.s) &&
	     str_catb(&v->seen, addr.s, addr.len + 1) < 0))
		vd_fail_errno(v, -ENOMEM, "cannot expand %s", v->rcpt.s);
	r = rcpt_find(v->root, real, local, !nocatch || strcmp(nocatch, real),
		      &rc);
	if (r == -ENOENT)
		vd_fail(v, EX_PERM, "5.1.1", "%s does not exist", addr.s);
	if (r < 0)
		table_error(v, r, addr.s, real);
	switch (rc.kind) {
	case RCPT_USER:
		user(v, addr.s, real, &rc, &chain, depth);
		break;
	case RCPT_ALIAS:
		for (i = 0; i < rc.val.len; i += strlen(rc.val.s + i) + 1)
			dest(v, rc.val.s + i, strlen(rc.val.s + i), &chain,
			     depth + 1, NULL);
		break;
	default:
		if (rc.val.len == 0 || str_eqs(&rc.val, "bounce"))
			vd_fail(v, EX_PERM, "5.1.1", "%s does not exist",
				addr.s);
		if (str_eqs(&rc.val, "delete")) {
			v->discard = 1;
			vd_log(v, "discarded msg to %s: the catch-all of %s is "
			       "delete", addr.s, real);
			break;
		}
		/* the catch-all's own domain gives it no second catch-all:
		 * a catch-all to a deleted user must bounce, not loop */
		dest(v, rc.val.s, rc.val.len, &chain, depth + 1, real);
	}
	rcpt_free(&rc);
	str_free(&addr);
	str_free(&chain);
}

/* resolve - expand the recipient into v->t */
void resolve(struct vd *v)
{
	struct acct_domain d = {STR_INIT, STR_INIT, 0};
	struct str none = STR_INIT;
	int r = acct_domain(v->root, v->domain.s, &d);

	if (r == -ENOENT)
		vd_fail(v, EX_PERM, "5.1.2", "domain %s is not hosted here (it "
			"is not in control/assign.cdb)", v->domain.s);
	if (r < 0)
		table_error(v, r, v->rcpt.s, v->domain.s);
	if (str_catb(&none, "", 0) < 0)
		vd_fail_errno(v, -ENOMEM, "cannot expand %s", v->rcpt.s);
	none.len = 0;
	expand(v, v->local.s, v->domain.s, d.real.s, &none, 0, NULL);
	acct_domain_free(&d);
	str_free(&none);
}
