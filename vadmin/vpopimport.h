/*
 * vpopimport - `vadmin import-vpopmail DIR`: the plan read from a vpopmail
 * tree (vpopimport.c) and its storing (vpopstore.c).
 *
 * vpopimport.c reads DIR without changing it and builds, in memory, the
 * domains, users, aliases, forwards, catch-alls and alias domains it can
 * carry, reporting every other thing (vi_say). vpopstore.c then inserts
 * the plan in the one open transaction, links or copies the Maildirs into
 * the root, makes them durable with one syncfs(), commits and regenerates
 * the tables (docs/vadmin.md "import-vpopmail").
 */
#ifndef FACTEUR_VPOPIMPORT_H
#define FACTEUR_VPOPIMPORT_H

#include <stdint.h>

#include "quota.h"
#include "str.h"
#include "vadmin.h"

struct vi_user {
	char *local;		/* folded */
	char *rel;		/* its directory below the domain's; NULL: none */
	char *hash, *cram;	/* cram NULL: unknown */
	char *name;
	struct quota q;
	int flags;
	char *fwd;		/* a forward's destination, or NULL */
	int keep;		/* the forward keeps a copy */
	int64_t id;		/* users.id once inserted */
	unsigned long line;	/* its line in vpasswd */
};

struct vi_alias {
	char *local, *dest;
	char *place;		/* where it was read, for the report */
};

struct vi_domain {
	char *name;		/* folded */
	char *rel;		/* domains/D or domains/H/D below DIR */
	int fd;			/* that directory */
	int skip;		/* hosted here already: not imported */
	char *catchall;		/* NULL: bounce */
	struct vi_user *u;
	size_t nu, capu;
	struct vi_alias *a;
	size_t na, capa;
	int64_t id;
};

struct vi_adom {
	char *name, *real;
};

struct vi {
	struct vctx *c;
	const char *dir;
	int dirfd, domfd;	/* DIR and DIR/domains */
	struct vi_domain *d;
	size_t nd, capd;
	struct vi_adom *ad;
	size_t nad, capad;
	struct str scheme;	/* control/passwordscheme */
	struct str json;	/* the report lines, as JSON strings */
	unsigned long said;	/* report lines */
	unsigned long domains, adoms, users, aliases, forwards, catchalls;
	unsigned long msgs, linked, copied;
};

/* vpopimport.c */
void vi_say(struct vi *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
char *vi_strdup(const char *s);
void *vi_grow(void *p, size_t *cap, size_t n, size_t size);
int vi_open_below(int dirfd, const char *rel);
void vi_read(struct vi *v, const char *assign, const char *valias);
void vi_free(struct vi *v);

/* vpopstore.c */
#define VI_MARK ".vpopimport"	/* in ROOT/domains/D while D is imported */
int vi_root_dir(struct vi *v, const char *domain);
void vi_store(struct vi *v);
void vi_files(struct vi *v);
void vi_done(struct vi *v);

int vpi_run(struct vctx *c, const char *dir, const char *assign,
	    const char *valias);

#endif
