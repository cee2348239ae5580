/*
 * authres - the Authentication-Results header (RFC 8601) of mail received
 * from others, and the removal of forged ones.
 *
 *   authres_add()     one result (method, result word, reason or NULL,
 *                     up to two properties "ptype.property" = value);
 *                     mta-smtpd adds spf=, dkim= and dmarc= results in
 *                     the order they are known; at most AUTHRES_MAX
 *   authres_build()   "Authentication-Results: ME;" and one result a
 *                     line, LF ends; "ME; none" when there is none.
 *                     Values that are not safe as RFC 8601 tokens are
 *                     left out, reasons are quoted without '"' or '\'.
 *   authres_room()    a bound on the header's length with N results:
 *                     what the queue writer reserves before the message
 *                     (lib/queue.h, qw_top_room)
 *   authres_claims()  does field F (name, value, LF) claim authserv-id
 *                     ME (case-insensitively, after comments): 1 or 0
 *   authres_filter_*() the header as it streams, without the fields that
 *                     claim ME (RFC 8601 5); one field is held at a time,
 *                     at most AUTHRES_FIELD_MAX bytes: a longer
 *                     Authentication-Results field is dropped (nobody
 *                     writes one that long), any other passes as it is.
 */
#ifndef FACTEUR_AUTHRES_H
#define FACTEUR_AUTHRES_H

#include <stddef.h>

#include "str.h"

#define AUTHRES_MAX 16
#define AUTHRES_FIELD_MAX 65536

struct authres_one {
	const char *method, *result, *reason;
	const char *ptype[2], *pval[2];
};

struct authres {
	size_t n;
	struct authres_one r[AUTHRES_MAX];
};

struct authres_filter {
	const char *me;
	int state;		/* header, a field being dropped, body */
	int bol;
	struct str field;
};

int authres_add(struct authres *a, const char *method, const char *result,
		const char *reason, const char *p1, const char *v1,
		const char *p2, const char *v2);
int authres_build(const struct authres *a, const char *me, struct str *out);
size_t authres_room(const char *me, size_t n);
int authres_claims(const char *f, size_t n, const char *me);

void authres_filter_init(struct authres_filter *f, const char *me);
int authres_filter_put(struct authres_filter *f, const char *b, size_t n,
		       struct str *out);
int authres_filter_end(struct authres_filter *f, struct str *out);
void authres_filter_free(struct authres_filter *f);

#endif
