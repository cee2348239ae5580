/*
 * fuzz_qstatus - libFuzzer target for the recipients' status file parser
 * (lib/qstatus.c qstatus_parse).
 *
 * Checked: any input parses without undefined behaviour; a recipient's
 * try count never exceeds the number of lines; a line made by
 * qstatus_line() and appended to an input that ends in a newline is
 * applied (the recipient it names is then settled or one try further).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qstatus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qrcpt r[4], r2[4];
	struct str buf = STR_INIT, line = STR_INIT;
	size_t i, lines = 0;

	memset(r, 0, sizeof r);
	memset(r2, 0, sizeof r2);
	if (qstatus_parse((const char *)data, size, r, 4) < 0)
		return 0;
	for (i = 0; i < size; i++)
		lines += data[i] == '\n';
	for (i = 0; i < 4; i++)
		if (r[i].tries > lines || r[i].state > QS_FAILED)
			abort();
	if (size && data[size - 1] == '\n' &&
	    str_catb(&buf, data, size) == 0 &&
	    qstatus_line(&line, 'T', 3, 1, 2, (const char *)data,
			 size > 64 ? 64 : size) == 0 &&
	    str_catb(&buf, line.s, line.len) == 0 &&
	    qstatus_parse(buf.s, buf.len, r2, 4) == 0) {
		if (r[3].state == QS_PENDING &&
		    (r2[3].tries != r[3].tries + 1 || r2[3].next_us != 2))
			abort();
	}
	qrcpt_free(r, 4);
	qrcpt_free(r2, 4);
	str_free(&buf);
	str_free(&line);
	return 0;
}
