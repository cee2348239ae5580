/*
 * qstatus - the recipients' outcomes of a queued message.
 *
 * The message file is never rewritten once queued (docs/queue.md); what
 * happened to each recipient is appended, one line an event, to a second
 * file beside it, queue/msg/HH/ID.s, written only by mta-send:
 *
 *   D IDX TIME_US TEXT       delivered (or dropped by rule): done
 *   F IDX TIME_US TEXT       failed for good: goes into the bounce
 *   T IDX TIME_US NEXT_US TEXT   deferred: try again at NEXT_US
 *
 * IDX is the recipient's place in the envelope (0-based). A recipient's
 * last D or F line settles it; the number of T lines is its try count. A
 * line without its newline (a write cut short) is ignored, as is a line
 * that does not parse or names a recipient the envelope does not have:
 * at worst one recipient is tried once more, never lost.
 */
#ifndef FACTEUR_QSTATUS_H
#define FACTEUR_QSTATUS_H

#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define QS_PENDING 0
#define QS_DONE 1
#define QS_FAILED 2
#define QS_TEXT_MAX 1000

struct qrcpt {
	unsigned char state;	/* QS_* */
	unsigned tries;		/* T lines so far */
	uint64_t last_us;	/* time of the last line, 0 if none */
	uint64_t next_us;	/* next try (pending), 0 = at once */
	struct str text;	/* the last line's text */
};

int qstatus_parse(const char *buf, size_t len, struct qrcpt *r, size_t n);
int qstatus_read(const char *path, struct qrcpt *r, size_t n);
int qstatus_line(struct str *out, char kind, size_t idx, uint64_t now_us,
		 uint64_t next_us, const char *text, size_t tlen);
void qstatus_clean(struct str *out, const char *text, size_t len);
void qrcpt_free(struct qrcpt *r, size_t n);

#endif
