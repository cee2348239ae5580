/*
 * session - the SMTP state machine of one client, driven by a command table.
 *
 * Commands are taken one line at a time from the connection's input
 * buffer, in order, so PIPELINING needs nothing special here: replies
 * queue up in conn.c and leave when the buffer runs dry. The order
 * HELO/EHLO -> MAIL -> RCPT... -> DATA is enforced with 503 5.5.1; the
 * submission ports also want AUTH before MAIL (530 5.7.0).
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"
#include "log.h"
#include "num.h"
#include "rules.h"
#include "smtpd.h"
#include "utf8.h"

#define ERRORS_MAX 20	/* unknown or malformed commands before we hang up */

struct cmd {
	const char *name;
	void (*fn)(struct session *s, const char *arg);
};

/* session_note - remember a refusal for the session's log line */
void session_note(struct session *s, const char *reply)
{
	s->refused++;
	str_trunc(&s->reason, 0);
	(void)str_cats(&s->reason, reply);
}

/* refuse - send a refusal and note it */
static void refuse(struct session *s, const char *reply)
{
	session_note(s, reply);
	(void)conn_reply(&s->c, "%s", reply);
}

/* txn_reset - forget the current transaction */
static void txn_reset(struct session *s)
{
	qenv_free(&s->env);
	qenv_init(&s->env);
	s->mail = 0;
	s->utf8 = 0;
	spf_result_free(&s->spf);
	s->spf_done = 0;	/* each MAIL checks afresh */
}

/* auth_offered - may AUTH be used here? Never in plaintext on 587 */
static int auth_offered(const struct session *s)
{
	return s->tls || (s->kind == PORT_SMTP && s->relay);
}

/* set_helo - keep the client's name, printable bytes only, bounded */
static int set_helo(struct session *s, const char *arg)
{
	size_t i;

	str_trunc(&s->helo, 0);
	for (i = 0; arg[i] && arg[i] != ' ' && i < 255; i++)
		if (str_catc(&s->helo, (unsigned char)arg[i] > ' ' &&
			     (unsigned char)arg[i] < 0x7f ? arg[i] : '?') < 0)
			return -ENOMEM;
	return s->helo.len ? 0 : -EINVAL;
}

/* cmd_helo - HELO name */
static void cmd_helo(struct session *s, const char *arg)
{
	if (set_helo(s, arg) < 0) {
		refuse(s, "501 5.5.4 HELO needs your host name");
		return;
	}
	txn_reset(s);
	s->esmtp = 0;
	(void)conn_reply(&s->c, "250 %s", s->me.s);
}

/* cmd_ehlo - EHLO name and the extensions of SPEC.md */
static void cmd_ehlo(struct session *s, const char *arg)
{
	if (set_helo(s, arg) < 0) {
		refuse(s, "501 5.5.4 EHLO needs your host name");
		return;
	}
	txn_reset(s);
	s->esmtp = 1;
	(void)conn_reply(&s->c, "250-%s", s->me.s);
	(void)conn_reply(&s->c, "250-PIPELINING");
	(void)conn_reply(&s->c, "250-8BITMIME");
	(void)conn_reply(&s->c, "250-SIZE %lu", s->databytes);
	(void)conn_reply(&s->c, "250-ENHANCEDSTATUSCODES");
	if (!s->tls)
		(void)conn_reply(&s->c, "250-STARTTLS");
	if (auth_offered(s) && !s->auth_user.len)
		(void)conn_reply(&s->c, "250-AUTH PLAIN LOGIN CRAM-MD5");
	(void)conn_reply(&s->c, "250 SMTPUTF8");
}

/* prefix - ARG starts with WORD (case-insensitive): what follows it */
static const char *prefix(const char *arg, const char *word)
{
	size_t n = strlen(word);

	return strncasecmp(arg, word, n) ? NULL : arg + n;
}

/* mail_params - the ESMTP parameters of MAIL; NULL or a refusal */
static const char *mail_params(struct session *s, const char *p)
{
	while (*p) {
		const char *end, *v;
		uint64_t size;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		end = strchr(p, ' ');
		if (!end)
			end = p + strlen(p);
		if (!s->esmtp)
			return "555 5.5.4 parameters need EHLO";
		if ((v = prefix(p, "SIZE=")) && v < end) {
			if (num_parseb(v, (size_t)(end - v), UINT64_MAX,
				       &size))
				return "501 5.5.4 bad SIZE parameter";
			if (size > s->databytes)
				return "552 5.3.4 message size exceeds fixed "
				       "maximum message size";
		} else if ((v = prefix(p, "BODY=")) && v < end) {
			if ((size_t)(end - v) != 4 && (size_t)(end - v) != 8)
				return "501 5.5.4 bad BODY parameter";
			if (strncasecmp(v, "7BIT", 4) &&
			    strncasecmp(v, "8BITMIME", 8))
				return "501 5.5.4 bad BODY parameter";
		} else if ((size_t)(end - p) == 8 &&
			   !strncasecmp(p, "SMTPUTF8", 8)) {
			s->utf8 = 1;	/* 8-bit addresses may follow */
		} else if (prefix(p, "AUTH=")) {
			/* RFC 4954 5: may be ignored */
		} else {
			return "555 5.5.4 unsupported MAIL parameter";
		}
		p = end;
	}
	return NULL;
}

/* raw_8bit - the <address> at P, as the client sent it, holds a byte
 * over 0x7f (its domain is stored as A-labels, so look at the text) */
static int raw_8bit(const char *p)
{
	const char *a = strchr(p, '<'), *b = a ? strchr(a, '>') : NULL;

	return a && b && utf8_8bit(a, (size_t)(b - a));
}

#define NEED_UTF8 "553 5.6.7 an address with UTF-8 needs SMTPUTF8 on MAIL"

/* qualify_sender - a sender without a domain is ours, by the rule of
 * every other entry (queue_qualify): never queued without one; NULL, or
 * the refusal */
static const char *qualify_sender(struct session *s)
{
	struct str q = STR_INIT;
	const char *why = NULL;
	int r = 0;

	if (s->env.sender.len && !strchr(s->env.sender.s, '@')) {
		r = queue_qualify(s->env.sender.s, s->me.s, 1, &q, &why);
		if (r == 0)
			r = str_copys(&s->env.sender, q.s);
	}
	str_free(&q);
	return r == -EINVAL ? "553 5.1.7 the sender is not an address this "
	       "host can complete with its name" :
	       r < 0 ? "451 4.3.0 out of memory" : NULL;
}

/* blocked - a client a blocklist or its RBLSMTPD refuses, until it
 * authenticates: refused at every MAIL and RCPT (rbl.c) */
static int blocked(struct session *s)
{
	if (!s->rbl.len || s->auth_user.len)
		return 0;
	refuse(s, s->rbl.s);
	return 1;
}

/* cmd_mail - MAIL FROM:<sender> [params] */
static void cmd_mail(struct session *s, const char *arg)
{
	const char *p, *rest, *why;
	int r;

	if (blocked(s))
		return;
	if (!s->helo.len) {
		refuse(s, "503 5.5.1 send HELO or EHLO first");
		return;
	}
	if (s->mail) {
		refuse(s, "503 5.5.1 nested MAIL command");
		return;
	}
	if (s->kind != PORT_SMTP && !s->auth_user.len) {
		refuse(s, "530 5.7.0 authentication required");
		return;
	}
	p = prefix(arg, "FROM:");
	if (!p) {
		refuse(s, "501 5.5.4 syntax: MAIL FROM:<address>");
		return;
	}
	txn_reset(s);
	r = addr_parse(p, &s->env.sender, &rest, 1);
	if (r < 0) {
		refuse(s, "501 5.1.7 bad sender address syntax");
		return;
	}
	if (queue_addr_entry(s->env.sender.s, s->env.sender.len) < 0) {
		txn_reset(s);
		refuse(s, "553 5.1.3 an address may not begin with '-'");
		return;
	}
	if ((why = mail_params(s, rest))) {
		refuse(s, why);
		return;
	}
	if (raw_8bit(p) && !s->utf8) {	/* RFC 6531 3.4 */
		txn_reset(s);
		refuse(s, NEED_UTF8);
		return;
	}
	if ((why = qualify_sender(s))) {
		txn_reset(s);
		refuse(s, why);
		return;
	}
	if (s->env.sender.len &&
	    (r = check_badlist(s->root, "badmailfrom", s->env.sender.s))) {
		refuse(s, r < 0 ? "451 4.3.0 cannot read control/badmailfrom"
			  : "553 5.7.1 sorry, your envelope sender is in my "
			    "badmailfrom list");
		return;
	}
	if ((why = inbound_spf(s))) {
		txn_reset(s);
		refuse(s, why);
		return;
	}
	s->mail = 1;
	(void)conn_reply(&s->c, "250 2.1.0 ok");
}

/* cmd_rcpt - RCPT TO:<recipient> */
static void cmd_rcpt(struct session *s, const char *arg)
{
	struct str a = STR_INIT;
	const char *p, *rest, *why;
	int srs;

	if (blocked(s))
		return;
	if (!s->mail) {
		refuse(s, "503 5.5.1 MAIL first");
		return;
	}
	if (queue_rcpts_ok(s->env.nrcpts + 1) < 0) {
		refuse(s, "452 4.5.3 too many recipients");
		return;
	}
	p = prefix(arg, "TO:");
	if (!p) {
		refuse(s, "501 5.5.4 syntax: RCPT TO:<address>");
		return;
	}
	if (addr_parse(p, &a, &rest, 0) < 0) {
		refuse(s, "501 5.1.3 bad recipient address syntax");
		goto out;
	}
	if (queue_addr_entry(a.s, a.len) < 0) {
		refuse(s, "553 5.1.3 an address may not begin with '-'");
		goto out;
	}
	if (raw_8bit(p) && !s->utf8) {
		refuse(s, NEED_UTF8);
		goto out;
	}
	while (*rest == ' ')
		rest++;
	if (*rest) {
		refuse(s, "555 5.5.4 unsupported RCPT parameter");
		goto out;
	}
	/* RFC 5321 4.5.1: <postmaster> without a domain must work */
	if (!strcasecmp(a.s, "postmaster") &&
	    (str_catc(&a, '@') < 0 || str_cats(&a, s->me.s) < 0)) {
		refuse(s, "451 4.3.0 out of memory");
		goto out;
	}
	/* an SRS bounce is checked, and rewritten, before anything else */
	why = check_srs(s, &a, &srs);
	if (why || (!srs && (why = check_rcpt(s, a.s)))) {
		refuse(s, why);
		goto out;
	}
	if (qenv_add_rcpt(&s->env, a.s) < 0) {
		refuse(s, "501 5.1.3 bad recipient address");
		goto out;
	}
	(void)conn_reply(&s->c, "250 2.1.5 ok");
out:
	str_free(&a);
}

/* cmd_data - DATA: the message, read by data.c */
static void cmd_data(struct session *s, const char *arg)
{
	if (*arg) {
		refuse(s, "501 5.5.4 DATA takes no argument");
		return;
	}
	if (!s->mail) {
		refuse(s, "503 5.5.1 MAIL first");
		return;
	}
	if (!s->env.nrcpts) {
		refuse(s, "554 5.5.1 no valid recipients");
		return;
	}
	data_receive(s);
	txn_reset(s);
}

/* cmd_rset - RSET */
static void cmd_rset(struct session *s, const char *arg)
{
	(void)arg;
	txn_reset(s);
	(void)conn_reply(&s->c, "250 2.0.0 ok");
}

/* cmd_noop - NOOP */
static void cmd_noop(struct session *s, const char *arg)
{
	(void)arg;
	(void)conn_reply(&s->c, "250 2.0.0 ok");
}

/* cmd_quit - QUIT */
static void cmd_quit(struct session *s, const char *arg)
{
	(void)arg;
	(void)conn_reply(&s->c, "221 2.0.0 %s closing connection", s->me.s);
	s->quit = 1;
	str_trunc(&s->end, 0);
	(void)str_cats(&s->end, "quit");
}

/* cmd_vrfy - VRFY: never tells whether a user exists */
static void cmd_vrfy(struct session *s, const char *arg)
{
	(void)arg;
	(void)conn_reply(&s->c, "252 2.5.2 send some mail, I'll try my best");
}

/* cmd_help - HELP */
static void cmd_help(struct session *s, const char *arg)
{
	(void)arg;
	(void)conn_reply(&s->c, "214 2.0.0 see RFC 5321; commands: HELO EHLO "
			 "MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS "
			 "AUTH");
}

/* set_end - why the session ended, for the log line */
static void set_end(struct session *s, const char *why)
{
	str_trunc(&s->end, 0);
	(void)str_cats(&s->end, why);
}

/*
 * tls_start - the server side of TLS on this connection, with the
 * certificate read from the root now (a renewed one is used at once);
 * input sent before it is dropped (lib/conn.h). 0, or -1 with the session
 * ended and the reason noted for the log line
 */
static int tls_start(struct session *s)
{
	struct str err = STR_INIT;
	SSL_CTX *ctx = NULL;
	int r = conn_tls_server_ctx(s->root, &ctx, &err);

	if (r == 0) {
		r = conn_tls_accept(&s->c, ctx);
		SSL_CTX_free(ctx);	/* the SSL keeps its own reference */
		if (r < 0)
			str_trunc(&err, 0);
	}
	if (r < 0) {
		session_note(s, err.len ? err.s : "TLS handshake failed");
		set_end(s, "tls failed");
	}
	str_free(&err);
	return r < 0 ? -1 : 0;
}

/* cmd_starttls - STARTTLS: everything after it starts afresh under TLS */
static void cmd_starttls(struct session *s, const char *arg)
{
	if (s->tls) {
		refuse(s, "503 5.5.1 TLS already active");
		return;
	}
	if (*arg) {
		refuse(s, "501 5.5.4 STARTTLS takes no argument");
		return;
	}
	(void)conn_reply(&s->c, "220 2.0.0 ready to start TLS");
	if (tls_start(s) < 0) {
		s->quit = 1;
		return;
	}
	s->tls = 1;
	txn_reset(s);
	str_trunc(&s->helo, 0);
	str_trunc(&s->auth_user, 0);
	s->esmtp = 0;
}

/* cmd_auth - AUTH: see auth.c */
static void cmd_auth(struct session *s, const char *arg)
{
	if (!auth_offered(s)) {
		refuse(s, s->kind == PORT_SMTP ? "503 5.5.1 AUTH not available"
			  : "538 5.7.11 encryption required: STARTTLS first");
		return;
	}
	if (!s->helo.len) {
		refuse(s, "503 5.5.1 send EHLO first");
		return;
	}
	if (s->auth_user.len) {
		refuse(s, "503 5.5.1 already authenticated");
		return;
	}
	if (s->mail) {
		refuse(s, "503 5.5.1 AUTH not allowed during a transaction");
		return;
	}
	auth_command(s, arg);
}

static const struct cmd commands[] = {
	{"HELO", cmd_helo},	{"EHLO", cmd_ehlo},	{"MAIL", cmd_mail},
	{"RCPT", cmd_rcpt},	{"DATA", cmd_data},	{"RSET", cmd_rset},
	{"NOOP", cmd_noop},	{"QUIT", cmd_quit},	{"VRFY", cmd_vrfy},
	{"HELP", cmd_help},	{"STARTTLS", cmd_starttls},
	{"AUTH", cmd_auth},
};

/* dispatch - one command line through the table */
static void dispatch(struct session *s, const struct str *line)
{
	size_t i, n;
	const char *arg;

	/* a NUL or a CR inside a command: never guess what was meant */
	if (memchr(line->s, 0, line->len) || memchr(line->s, '\r', line->len)) {
		s->errors++;
		refuse(s, "500 5.5.2 bad character in command");
		return;
	}
	for (n = 0; n < line->len && line->s[n] != ' '; n++)
		;
	arg = line->s + n;
	while (*arg == ' ')
		arg++;
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strlen(commands[i].name) == n &&
		    !strncasecmp(commands[i].name, line->s, n)) {
			commands[i].fn(s, arg);
			return;
		}
	s->errors++;
	refuse(s, "500 5.5.1 command unrecognized");
}

/* start - relay rules, blocklists, POP-before-SMTP, implicit TLS; 0 to
 * go on */
static int start(struct session *s)
{
	struct rule rule;
	int r;

	memset(&rule, 0, sizeof rule);
	if (s->kind == PORT_SMTPS) {
		if (tls_start(s) < 0)
			return -1;
		s->tls = 1;
	}
	r = rules_lookup(s->root, s->ip.s, &rule);
	if (r < 0) {
		refuse(s, "421 4.3.0 cannot read the relay rules, try later");
		set_end(s, "relayrules unreadable");
		return -1;
	}
	if (!rule.allow) {
		refuse(s, "554 5.7.1 your address is not allowed to connect");
		set_end(s, "denied by relayrules");
		rules_free(&rule);
		return -1;
	}
	s->relay = rules_env(&rule, "RELAYCLIENT") != NULL;
	rbl_start(s, rules_env(&rule, "RBLSMTPD"));
	rules_free(&rule);
	s->pbs = check_pbs(s->root, s->ip.s) > 0;
	return 0;
}

/* session_run - one whole session, ending with its log line */
void session_run(struct session *s)
{
	struct str line = STR_INIT;

	set_end(s, "eof");
	if (start(s) == 0) {
		(void)conn_reply(&s->c, "220 %s ESMTP", s->me.s);
		while (!s->quit && !s->c.dead) {
			int r = conn_getline(&s->c, &line, SMTPD_CMD_MAX);

			if (r == -EMSGSIZE) {
				s->errors++;
				refuse(s, "500 5.5.2 line too long");
			} else if (r == -ETIMEDOUT) {
				(void)conn_reply(&s->c, "421 4.4.2 %s timeout, "
						 "closing connection", s->me.s);
				set_end(s, "timeout");
				break;
			} else if (r < 0) {
				/* -EPIPE from a failed flush is no end of input */
				set_end(s, r == -EPIPE && !s->c.dead ? "eof" :
					"read error");
				break;
			} else {
				dispatch(s, &line);
			}
			if (s->errors >= ERRORS_MAX) {
				(void)conn_reply(&s->c, "421 4.7.0 too many "
						 "errors, closing connection");
				set_end(s, "too many errors");
				break;
			}
		}
	}
	(void)conn_flush(&s->c);
	if (s->c.dead && !strcmp(s->end.s, "eof"))
		set_end(s, "write error");
	(void)log_write(2, "mta-smtpd", "session %s helo %s auth %s tls %s: "
			"queued %lu%s%s refused %lu%s%s; end %s%s%s%s%s",
			s->ip.s, s->helo.len ? s->helo.s : "-",
			s->auth_user.len ? s->auth_user.s : "-",
			s->tls ? "yes" : "no", s->msgs, s->ids.len ? " " : "",
			s->ids.len ? s->ids.s : "", s->refused,
			s->reason.len ? " last: " : "",
			s->reason.len ? s->reason.s : "", s->end.s,
			s->rbl_log.len ? "; rbl " : "",
			s->rbl_log.len ? s->rbl_log.s : "",
			s->spf_log.len ? "; last spf " : "",
			s->spf_log.len ? s->spf_log.s : "");
	str_free(&line);
	str_free(&s->rbl);
	str_free(&s->rbl_log);
	str_free(&s->spf_log);
	txn_reset(s);
}

/* session_free - all a session holds, then the structure wiped: the
 * process may serve another client next, and AUTH lines passed through
 * the input buffer */
void session_free(struct session *s)
{
	conn_free(&s->c);
	str_free(&s->me);
	str_free(&s->ip);
	str_free(&s->helo);
	str_free(&s->auth_user);
	str_free(&s->ids);
	str_free(&s->reason);
	str_free(&s->end);
	str_free(&s->rbl);
	str_free(&s->rbl_log);
	str_free(&s->spf_log);
	spf_result_free(&s->spf);
	qenv_free(&s->env);
	explicit_bzero(s, sizeof *s);
}
