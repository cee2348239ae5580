/*
 * clock - monotonic milliseconds and wall-clock microseconds (clock.h).
 */
#include <sys/time.h>
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

/* now_us - gettimeofday in microseconds */
uint64_t now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}
