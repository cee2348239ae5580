/*
 * clock - the one clock for deadlines and intervals.
 *
 * now_ms() reads CLOCK_MONOTONIC, which neither the administrator nor NTP
 * can set back or forward, so a deadline taken from it is never cut short
 * or stretched by a change of the wall clock. It is in milliseconds
 * because whole seconds cut a wait that began just before a tick short by
 * up to a second (found by fuzz_smtpd_line: a 1 s timeout that expired at
 * once). Its zero is arbitrary: compare its values, never print them.
 */
#ifndef FACTEUR_CLOCK_H
#define FACTEUR_CLOCK_H

#include <stdint.h>

/* now_ms - monotonic milliseconds since an arbitrary start */
int64_t now_ms(void);

/* now_us - wall-clock microseconds since the epoch, for times that are
 * written down and must mean the same after a restart (mta-send's retry
 * schedule in the queue's status files), where a monotonic zero would not */
uint64_t now_us(void);

#endif
