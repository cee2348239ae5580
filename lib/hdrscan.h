/*
 * hdrscan - Delivered-To: and Received: fields of a message header, fed
 * in pieces.
 *
 * A delivery agent must refuse a message that already carries its own
 * Delivered-To: line (a mail loop) without holding the message in memory.
 * hdrscan_feed() takes the message in pieces of any size (a byte at a time
 * gives the result of all at once) and looks at the header only: it stops
 * at the first empty line, or at the first line that is neither a header
 * field nor a continuation line (a message with no header). Each field is
 * unfolded and kept up to HDRSCAN_FIELD_MAX bytes; a longer one is counted
 * but its value is not compared.
 *
 * Field names compare without regard to case. A Delivered-To: value, with
 * surrounding white space and one pair of angle brackets removed, is
 * compared without regard to case with each address of the list given to
 * hdrscan_init() (NUL-terminated strings one after another, lower case),
 * until one matches, and only in the first HDRSCAN_DELIVERED_MAX such
 * fields: a message with more is a loop whatever they say (vdeliver
 * refuses it on the count alone), and comparing every one of a 10 MB
 * header's 700,000 against a list of 1,000 cost seconds a delivery.
 * compared counts the values compared.
 *
 * After hdrscan_end(): delivered counts the Delivered-To: fields, received
 * the Received: fields, match is the index in the list of the first
 * address found in one (-1 if none), crlf is 1 when the first line of the
 * message ends in CR LF, bytes is what was fed. hdrscan_feed() and
 * hdrscan_end() return 0 or -ENOMEM.
 *
 * The hop limit (RFC 5321 6.3) lives here, once, for every program that
 * takes mail in or sends it on: a message that arrives with more than
 * HDRSCAN_HOPS_MAX Received: fields is in a loop. mta-smtpd, mta-inject
 * and sendmail judge the message as it reaches them (own = 0); mta-send
 * judges a queued message, which carries the one Received: line its entry
 * (mta-smtpd, mta-inject or the drop/ pickup) put on top (own = 1), so a
 * message accepted with exactly HDRSCAN_HOPS_MAX is delivered, not failed
 * by the next program. hdrscan_fd() scans the header of a message that
 * lies in a file at OFF, LEN bytes long, and ends the scan; it returns 0,
 * -ENOMEM or the -errno of pread.
 */
#ifndef FACTEUR_HDRSCAN_H
#define FACTEUR_HDRSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "str.h"

#define HDRSCAN_FIELD_MAX 1000
#define HDRSCAN_DELIVERED_MAX 100	/* Delivered-To: fields compared */
#define HDRSCAN_HOPS_MAX 100	/* HDRSCAN_LOOP_TEXT says it too */
/* the reason every program gives, after its own status code */
#define HDRSCAN_LOOP_TEXT "too many hops: more than 100 Received: " \
	"header lines, a mail loop"

struct hdrscan {
	const char *addrs;	/* the list to look for */
	size_t addrs_len;
	struct str field;	/* the current field, unfolded, bounded */
	size_t line_len;	/* bytes of the current physical line */
	int too_long;		/* the field passed HDRSCAN_FIELD_MAX */
	int last_cr;		/* the previous byte was CR */
	int done;		/* the header has ended */
	int first_line;		/* 1 until the first line has ended */
	int crlf;
	unsigned long delivered;
	unsigned long compared;	/* Delivered-To: values compared */
	unsigned long received;
	long match;
	uint64_t bytes;
};

void hdrscan_init(struct hdrscan *h, const char *addrs, size_t addrs_len);
int hdrscan_feed(struct hdrscan *h, const void *buf, size_t n);
int hdrscan_end(struct hdrscan *h);
void hdrscan_free(struct hdrscan *h);
int hdrscan_looped(const struct hdrscan *h, unsigned own);
int hdrscan_fd(struct hdrscan *h, int fd, off_t off, uint64_t len);

#endif
