/*
 * qstatus - recipients' outcomes beside a queued message (see qstatus.h).
 */
#include "qstatus.h"

#include <errno.h>
#include <string.h>

#include "fsx.h"
#include "num.h"

/* the status file is ours, but bounded all the same: 1,000 recipients
 * retried for a week at qmail's schedule write a few hundred KiB */
#define QS_FILE_MAX (64u * 1024 * 1024)

static int num(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t x;
	size_t used;

	if (num_scan(s, (size_t)(end - s), UINT64_MAX, &x, &used))
		return -1;
	s += used;
	if (s < end && *s != ' ')
		return -1;
	if (s < end)
		s++;
	*p = s;
	*v = x;
	return 0;
}

/* qstatus_parse - apply a status file's lines to r[0..n) */
int qstatus_parse(const char *buf, size_t len, struct qrcpt *r, size_t n)
{
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *q;
		uint64_t idx, t, next = 0;
		char kind;

		if (!nl)
			break; /* cut short by a crash: as if never written */
		kind = *p;
		q = p + 2;
		if (nl - p < 2 || p[1] != ' ' ||
		    (kind != 'D' && kind != 'F' && kind != 'T') ||
		    num(&q, nl, &idx) < 0 || num(&q, nl, &t) < 0 ||
		    (kind == 'T' && num(&q, nl, &next) < 0) || idx >= n) {
			p = nl + 1;
			continue;
		}
		if (r[idx].state == QS_PENDING) {
			r[idx].last_us = t;
			if (kind == 'T') {
				r[idx].tries++;
				r[idx].next_us = next;
			} else {
				r[idx].state = kind == 'D' ? QS_DONE :
					       QS_FAILED;
			}
			if (str_copyb(&r[idx].text, q, (size_t)(nl - q)) < 0)
				return -ENOMEM;
		}
		p = nl + 1;
	}
	return 0;
}

/* qstatus_read - read PATH into r[0..n); a missing file is no news */
int qstatus_read(const char *path, struct qrcpt *r, size_t n)
{
	struct str data = STR_INIT;
	int rc = fsx_read_file(path, &data, QS_FILE_MAX);

	if (rc == -ENOENT)
		rc = 0;
	else if (rc == 0)
		rc = qstatus_parse(data.s ? data.s : "", data.len, r, n);
	str_free(&data);
	return rc;
}

/* qstatus_clean - TEXT made one safe line: a remote server's reply is
 * hostile, and a newline in it would forge a status line */
void qstatus_clean(struct str *out, const char *text, size_t len)
{
	size_t i;

	if (len > QS_TEXT_MAX)
		len = QS_TEXT_MAX;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (str_catc(out, c < 0x20 || c >= 0x7f ? '?' : (char)c) < 0)
			return;
	}
}

/* qstatus_line - one status line, to be appended with a single write */
int qstatus_line(struct str *out, char kind, size_t idx, uint64_t now_us,
		 uint64_t next_us, const char *text, size_t tlen)
{
	int r;

	out->len = 0;
	if (kind == 'T')
		r = str_catf(out, "T %zu %llu %llu ", idx,
			     (unsigned long long)now_us,
			     (unsigned long long)next_us);
	else
		r = str_catf(out, "%c %zu %llu ", kind, idx,
			     (unsigned long long)now_us);
	if (r < 0)
		return r;
	qstatus_clean(out, text, tlen);
	return str_catc(out, '\n');
}

void qrcpt_free(struct qrcpt *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		str_free(&r[i].text);
}
