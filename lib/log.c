/*
 * log - log lines (see log.h).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fsx.h"
#include "utf8.h"

/* log_format - one complete line, newline included */
int log_format(struct str *out, const char *service, pid_t pid,
	       const char *fmt, va_list ap)
{
	struct timeval tv;
	struct tm tm;
	size_t start;
	int r;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	out->len = 0;
	r = str_catf(out, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s[%ld]: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, (long)tv.tv_usec, service,
		     (long)pid);
	start = out->len;
	if (r == 0)
		r = str_vcatf(out, fmt, ap);
	if (r < 0)
		return r;
	utf8_mask(out->s + start, out->len - start);
	return str_catc(out, '\n');
}

/* log_open - ROOT/log/current, for appending */
int log_open(const char *root)
{
	struct str p = STR_INIT;
	int fd;

	if (str_cats(&p, root) || str_cats(&p, "/log/current")) {
		str_free(&p);
		return -ENOMEM;
	}
	fd = open(p.s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	str_free(&p);
	return fd < 0 ? -errno : fd;
}

/* log_write - format and append one line with a single write */
int log_write(int fd, const char *service, const char *fmt, ...)
{
	struct str line = STR_INIT;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_format(&line, service, getpid(), fmt, ap);
	va_end(ap);
	if (r == 0)
		r = fsx_write_all(fd, line.s, line.len);
	str_free(&line);
	return r;
}
