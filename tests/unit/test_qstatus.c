/*
 * test_qstatus - the recipients' status file (lib/qstatus.c) and queue
 * ids (lib/queue.c queue_id_parse, queue_msg_path).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "qstatus.h"
#include "queue.h"
#include "tinytest.h"

int main(void)
{
	struct qrcpt r[3];
	struct str line = STR_INIT, all = STR_INIT, p = STR_INIT;
	uint64_t a, ino;
	int rc;

	/* lines as mta-send writes them parse back */
	memset(r, 0, sizeof r);
	qstatus_line(&line, 'T', 0, 100, 500, "451 try\nlater", 13);
	tt_check(!strcmp(line.s, "T 0 100 500 451 try?later\n"), "line_clean",
		 "%s", line.s);
	str_catb(&all, line.s, line.len);
	qstatus_line(&line, 'T', 0, 600, 2000, "again", 5);
	str_catb(&all, line.s, line.len);
	qstatus_line(&line, 'D', 1, 700, 0, "250 ok", 6);
	str_catb(&all, line.s, line.len);
	qstatus_line(&line, 'F', 2, 800, 0, "550 no", 6);
	str_catb(&all, line.s, line.len);
	/* a later line for a settled recipient changes nothing */
	str_cats(&all, "T 1 900 901 late\n");
	/* garbage, an index out of range and a cut last line are ignored */
	str_cats(&all, "X 0 1 2\nT 7 1 2 x\nT 0 1\nT 0 99 99");
	rc = qstatus_parse(all.s, all.len, r, 3);
	tt_check(rc == 0, "parse", "rc=%d", rc);
	tt_check(r[0].state == QS_PENDING && r[0].tries == 2 &&
		 r[0].next_us == 2000 && r[0].last_us == 600 &&
		 str_eqs(&r[0].text, "again"), "deferred_twice",
		 "state=%d tries=%u next=%llu text=%s", r[0].state, r[0].tries,
		 (unsigned long long)r[0].next_us, str_cstr(&r[0].text));
	tt_check(r[1].state == QS_DONE && str_eqs(&r[1].text, "250 ok"),
		 "done_stays_done", "state=%d", r[1].state);
	tt_check(r[2].state == QS_FAILED && r[2].last_us == 800 &&
		 str_eqs(&r[2].text, "550 no"), "failed", "state=%d",
		 r[2].state);
	qrcpt_free(r, 3);

	/* a number too big for 64 bits is a bad line, not a wrap */
	memset(r, 0, sizeof r);
	str_copys(&all, "T 0 1 99999999999999999999999 x\n");
	qstatus_parse(all.s, all.len, r, 1);
	tt_check(r[0].tries == 0, "overflow_ignored", "tries=%u", r[0].tries);
	qrcpt_free(r, 1);

	/* a missing file is no news */
	memset(r, 0, sizeof r);
	rc = qstatus_read("/nonexistent/x.s", r, 1);
	tt_check(rc == 0 && r[0].state == QS_PENDING, "missing_file",
		 "rc=%d", rc);

	/* ids */
	rc = queue_id_parse("66116a17f9e85.a72261", &a, &ino);
	tt_check(rc == 0 && a == 0x66116a17f9e85ULL && ino == 0xa72261,
		 "id_parse", "rc=%d", rc);
	tt_check(queue_id_parse("66116a17f9e85.a72261.s", &a, &ino) < 0 &&
		 queue_id_parse(".a", &a, &ino) < 0 &&
		 queue_id_parse("1.", &a, &ino) < 0 &&
		 queue_id_parse("1.2.3", &a, &ino) < 0 &&
		 queue_id_parse("ABC.1", &a, &ino) < 0 &&
		 queue_id_parse("..", &a, &ino) < 0 &&
		 queue_id_parse("12345678901234567.1", &a, &ino) < 0,
		 "id_refused", "a bad id parsed");
	rc = queue_msg_path(&p, "/r", "1.2ff", ".s");
	tt_check(rc == 0 && str_eqs(&p, "/r/queue/msg/ff/1.2ff.s"),
		 "msg_path", "%s", str_cstr(&p));
	tt_check(queue_msg_path(&p, "/r", "../x", NULL) == -EINVAL,
		 "msg_path_refused", "accepted");
	str_free(&line);
	str_free(&all);
	str_free(&p);
	return tt_exit();
}
