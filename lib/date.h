/*
 * date - the date of mail headers (RFC 5322 3.3), one format for every
 * header Facteur writes: Received: lines (mta-smtpd, mta-inject, drop/),
 * Date: of bounces and of quota warnings.
 *
 * date_cat() appends "Sun, 06 Dec 2026 04:05:06 +0100": the local time
 * (TZ) with its offset from UTC. Day and month names are English whatever
 * the locale, as RFC 5322 wants. It returns 0, -EINVAL (a time the C
 * library cannot convert) or -ENOMEM.
 */
#ifndef FACTEUR_DATE_H
#define FACTEUR_DATE_H

#include <time.h>

#include "str.h"

int date_cat(struct str *out, time_t t);

#endif
