/*
 * clock - monotonic milliseconds (see clock.h).
 */
#include <time.h>

#include "clock.h"

/* now_ms - CLOCK_MONOTONIC in milliseconds; it cannot fail on Linux with a
 * valid clock id and pointer, so there is no error to return */
int64_t now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
