/*
 * qsign - DKIM signing at the queue's door: the one place where a message
 * is signed, once, as it is written into the queue (docs/authentication.md).
 *
 * Every writer that may sign (mta-smtpd for authenticated sessions and
 * relay clients, mta-inject, the drop/ pickup of local users' sendmail,
 * mta-send's bounces) passes the message's bytes through a qsign instead
 * of calling qw_body() itself:
 *
 *   qsign_start(&q, &w, root, on)   after qw_open and the writer's own
 *                                   trace line; ON 0: pass everything on
 *   qsign_put(&q, buf, n)           message bytes, LF line ends
 *   qsign_end(&q)                   before qw_commit; 0, or the message
 *                                   must be aborted (nothing signed half)
 *   qsign_free(&q)
 *
 * The header is kept in memory (at most QSIGN_HEAD_MAX bytes; a longer
 * one is written unsigned) until its end. Then, if its one From: field
 * names a domain with keys in control/dkim.cdb, the room for one
 * DKIM-Signature field a key is left in the file (qw_reserve: their
 * length is known before their content), the header follows, the body
 * streams to the file while its hash is computed, and qsign_end() writes
 * the signatures into the room (qw_fill). No body byte is held or copied
 * twice. A header we cannot sign faithfully (no From:, two, a line that
 * is not a field) is written as it is, unsigned.
 *
 * Keys are loaded once per process and kept by domain; the cache is
 * dropped when control/dkim.cdb is replaced (vadmin writes it by rename),
 * so a long-lived mta-send sees `vadmin dkim add` and `del` at its next
 * message. A key the table names but that cannot be read is a temporary
 * failure (-EIO): the message is not queued rather than sent unsigned
 * past the domain's DMARC policy. Returns 0 or a negative errno code;
 * -EFBIG from qw_body past the writer's limit.
 */
#ifndef FACTEUR_QSIGN_H
#define FACTEUR_QSIGN_H

#include <stddef.h>
#include <sys/types.h>

#include "dkim.h"
#include "queue.h"
#include "str.h"

#define QSIGN_HEAD_MAX (1024 * 1024)

struct qsign_dom;

struct qsign {
	struct qwriter *w;
	const char *root;
	int state;
	int bol;		/* the next header byte starts a line */
	struct str head;
	struct dkim_sign sig;
	struct dkim_body body;
	const struct qsign_dom *dom;
	off_t gap_off;
	size_t gap_len;
	size_t nsigned;		/* signatures written by qsign_end */
};

int qsign_start(struct qsign *q, struct qwriter *w, const char *root, int on);
int qsign_put(struct qsign *q, const void *buf, size_t n);
int qsign_end(struct qsign *q);
void qsign_free(struct qsign *q);
int qsign_from_domain(const char *hdr, size_t n, struct str *domain);
void qsign_cache_free(void);

#endif
