/*
 * ctl - control files (see ctl.h).
 */
#include "ctl.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "fsx.h"
#include "msg.h"
#include "num.h"

/* ctl_path - ROOT/control/NAME */
int ctl_path(struct str *out, const char *root, const char *name)
{
	out->len = 0;
	if (str_cats(out, root) || str_cats(out, "/control/") ||
	    str_cats(out, name))
		return -ENOMEM;
	return 0;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ctl_get - first line of a control file, or def */
int ctl_get(const char *root, const char *name, const char *def,
	    struct str *out)
{
	struct str path = STR_INIT, data = STR_INIT;
	size_t a = 0, b;
	int r;

	r = ctl_path(&path, root, name);
	if (r == 0)
		r = fsx_read_file(path.s, &data, CTL_MAX);
	if (r == -ENOENT) {
		r = def ? str_copys(out, def) : -ENOENT;
		goto out;
	}
	if (r < 0)
		goto out;
	while (a < data.len && is_space(data.s[a]))
		a++;
	b = a;
	while (b < data.len && data.s[b] != '\n')
		b++;
	while (b > a && is_space(data.s[b - 1]))
		b--;
	if (a == b && def)
		r = str_copys(out, def);
	else
		r = str_copyb(out, data.s + a, b - a);
out:
	str_free(&path);
	str_free(&data);
	return r;
}

/* ctl_parse_ulong - lib/num's rule, for the unsigned long of ctl_get_ulong */
int ctl_parse_ulong(const char *s, unsigned long *out)
{
	uint64_t v;
	int r = num_parse(s, ULONG_MAX, &v);

	if (r == 0)
		*out = (unsigned long)v;
	return r;
}

/* ctl_me - control/me, else (missing or empty) the system host name */
int ctl_me(const char *root, struct str *out)
{
	char host[HOST_NAME_MAX + 1];
	int r = ctl_get(root, "me", "", out);

	if (r < 0 || out->len)
		return r;
	if (gethostname(host, sizeof host) < 0)
		return -errno;
	host[sizeof host - 1] = 0;
	return str_copys(out, host);
}

/* ctl_get_ulong - a numeric control file, or def */
int ctl_get_ulong(const char *root, const char *name, unsigned long def,
		  unsigned long *out)
{
	struct str v = STR_INIT;
	int r = ctl_get(root, name, "", &v);

	if (r == 0) {
		if (v.len == 0)
			*out = def;
		else
			r = ctl_parse_ulong(v.s, out);
	}
	str_free(&v);
	return r;
}

/* the numeric settings: SPEC.md's defaults; the ranges are ours (the
 * manual page facteur-control(5) gives them). Bounds keep arithmetic
 * sane (a timeout in ms, a grant's mtime plus its life). A flag is 0-1,
 * and another number in it is its default, not a guess: "2" in
 * pop3plaintext must not open plaintext logins to the world. */
const struct ctl_numdef ctl_nums[CTL_NUMS] = {
	[CTL_DATABYTES] = {"databytes", 10485760, 0, ULONG_MAX},
	[CTL_QUEUELIFETIME] = {"queuelifetime", 604800, 0, 100000000},
	[CTL_CONCURRENCYLOCAL] = {"concurrencylocal", 10, 1, 1000},
	[CTL_CONCURRENCYREMOTE] = {"concurrencyremote", 20, 1, 1000},
	[CTL_RETRYBASE] = {"retrybase", 20, 1, 86400},
	[CTL_REMOTEPORT] = {"remoteport", 25, 1, 65535},
	[CTL_TIMEOUTCONNECT] = {"timeoutconnect", 60, 1, 86400},
	[CTL_QUOTAWARN] = {"quotawarn", 90, 0, 100},
	[CTL_QUOTABOUNCE] = {"quotabounce", 0, 0, 1},
	[CTL_POPBEFORESMTP] = {"popbeforesmtp", 10800, 0, 31536000},
	[CTL_TIMEOUTSMTPD] = {"timeoutsmtpd", 300, 1, 86400},
	[CTL_TIMEOUTREMOTE] = {"timeoutremote", 1200, 1, 86400},
	[CTL_TIMEOUTPOP3] = {"timeoutpop3", 600, 1, 86400},
	[CTL_MAXSESSIONS] = {"maxsessions", 1000, 1, 1000000},
	[CTL_MAXPERIP] = {"maxperip", 20, 1, 1000000},
	[CTL_POP3MAXFAIL] = {"pop3maxfail", 100, 1, 1000000},
	[CTL_SMTPMAXFAIL] = {"smtpmaxfail", 100, 1, 1000000},
	[CTL_POP3PLAINTEXT] = {"pop3plaintext", 0, 0, 1},
	[CTL_SPFREJECT] = {"spfreject", 0, 0, 1},
	[CTL_DMARCREJECT] = {"dmarcreject", 1, 0, 1},
};

/* ctl_num_hold - the value V of setting ID once held to its range: 0
 * when V is in it, else 1 */
int ctl_num_hold(enum ctl_numid id, unsigned long v, unsigned long *out)
{
	const struct ctl_numdef *n = &ctl_nums[id];

	*out = n->def;
	if (v >= n->min && v <= n->max)
		*out = v;
	else if (n->min != 0 || n->max != 1)	/* a flag keeps its default */
		*out = v < n->min ? n->min : n->max;
	return *out != v;
}

/* ctl_num - a numeric setting by ctl_nums[]: 0, 1 when held to its range,
 * or a negative errno with *out its default */
int ctl_num(const char *root, enum ctl_numid id, unsigned long *out)
{
	unsigned long v;
	int r = ctl_get_ulong(root, ctl_nums[id].name, ctl_nums[id].def, &v);

	*out = ctl_nums[id].def;
	return r < 0 ? r : ctl_num_hold(id, v, out);
}

/* ctl_num_warn - ctl_num()'s value, its fallback said through WARN */
unsigned long ctl_num_warn(const char *root, enum ctl_numid id,
			   void (*warn)(const char *fmt, ...))
{
	unsigned long v;
	int r = ctl_num(root, id, &v);

	if (r < 0)
		warn("warning: control/%s: %s; using %lu (write a decimal "
		     "number there or remove the file)", ctl_nums[id].name,
		     msg_err(r), v);
	return v;
}

/* kept_line - the next line of data from *i on, trimmed, into [*a, *b);
 * 1 when ctl_get_lines keeps it (not empty, no '#', no NUL) */
static int kept_line(const struct str *data, size_t *i, size_t *a, size_t *b)
{
	*a = *i;
	while (*i < data->len && data->s[*i] != '\n')
		(*i)++;
	*b = (*i)++;
	while (*a < *b && is_space(data->s[*a]))
		(*a)++;
	while (*b > *a && is_space(data->s[*b - 1]))
		(*b)--;
	return *a != *b && data->s[*a] != '#' &&
	       !memchr(data->s + *a, 0, *b - *a);
}

/* read_ctl - ROOT/control/NAME's bytes; a missing file is empty */
static int read_ctl(const char *root, const char *name, struct str *data)
{
	struct str path = STR_INIT;
	int r = ctl_path(&path, root, name);

	if (r == 0)
		r = fsx_read_file(path.s, data, CTL_MAX);
	if (r == -ENOENT)
		r = 0;
	str_free(&path);
	return r;
}

/* ctl_get_lines - every non-empty line not starting with '#', NUL-ended */
int ctl_get_lines(const char *root, const char *name, struct str *out,
		  size_t *count_r)
{
	struct str data = STR_INIT;
	size_t i = 0, n = 0, a, b;
	int r;

	str_trunc(out, 0);
	r = read_ctl(root, name, &data);
	while (r == 0 && i < data.len) {
		if (!kept_line(&data, &i, &a, &b))
			continue;
		r = str_catb(out, data.s + a, b - a);
		if (r == 0)
			r = str_catc(out, 0);
		n++;
	}
	if (count_r)
		*count_r = n;
	str_free(&data);
	return r;
}

/* ctl_line_number - the file's line number of a line read from it, for
 * messages: k 0 is ctl_get's line, k from 1 the k-th of ctl_get_lines */
int ctl_line_number(const char *root, const char *name, size_t k,
		    size_t *line_r)
{
	struct str data = STR_INIT;
	size_t i = 0, n = 0, line = 0, a, b;
	int r = read_ctl(root, name, &data);

	*line_r = 1;
	while (r == 0 && i < data.len) {
		int kept = kept_line(&data, &i, &a, &b);

		line++;
		/* ctl_get: the first line that is not all white space */
		if (k == 0 ? a != b : kept && ++n == k) {
			*line_r = line;
			break;
		}
	}
	str_free(&data);
	return r;
}
