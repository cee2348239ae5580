/*
 * date - mail header dates (see date.h).
 */
#include "date.h"

#include <errno.h>

/* date_cat - append t as an RFC 5322 date-time in local time */
int date_cat(struct str *out, time_t t)
{
	static const char wd[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu",
				      "Fri", "Sat"};
	static const char mo[12][4] = {"Jan", "Feb", "Mar", "Apr", "May",
				       "Jun", "Jul", "Aug", "Sep", "Oct",
				       "Nov", "Dec"};
	struct tm tm;
	long off;

	if (!localtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11)
		return -EINVAL;
	off = tm.tm_gmtoff / 60;	/* minutes east of UTC */
	return str_catf(out, "%s, %02d %s %d %02d:%02d:%02d %c%02ld%02ld",
			wd[tm.tm_wday], tm.tm_mday, mo[tm.tm_mon],
			tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
			off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60,
			(off < 0 ? -off : off) % 60);
}
