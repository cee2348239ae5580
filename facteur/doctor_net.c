/*
 * doctor_net - `facteur doctor`'s checks of what the network sees: tls
 * (the certificate and key the services load) and listen (every
 * configured address answers with a greeting).
 *
 * tls reads control/tls/cert.pem and key.pem as conn_tls_server_ctx does
 * (PEM), and says every problem, each naming the file: a key that is not
 * the certificate's, an expired certificate (FAIL), one that expires
 * within TLS_WARN_DAYS, one that does not cover control/me (by
 * X509_check_host, the rule clients apply: subjectAltName DNS names, else
 * the CN, wildcards), one that is self-signed (warnings: a dev root has
 * one, and mail still flows, as most MTAs do not verify).
 *
 * listen connects to each listen.* address, the unspecified ones through
 * loopback, with a LISTEN_TIMEOUT s deadline and reads one line (220 for
 * SMTP, +OK for POP3; smtps and pop3s after a TLS handshake). Nothing
 * tells doctor whether `facteur run` is running (it writes no pid file),
 * so when no address answers at all the verdict is a warning, "is facteur
 * run started?"; an address refused while others answer is a FAIL.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "clock.h"
#include "conn.h"
#include "ctl.h"
#include "doctor.h"
#include "facteur.h"
#include "listen.h"
#include "msg.h"

#define TLS_WARN_DAYS 21
#define LISTEN_TIMEOUT 3
#define GREETING_MAX 1024

struct pem {
	struct str cert, key;	/* the two paths */
	X509 *x;
	EVP_PKEY *k;
};

/* pem_load - both files; a FAIL naming the one that does not load */
static int pem_load(struct doctor *d, struct report *p, struct pem *m)
{
	BIO *b;

	if (str_catf(&m->cert, "%s/control/tls/cert.pem", d->root) < 0 ||
	    str_catf(&m->key, "%s/control/tls/key.pem", d->root) < 0)
		return say(p, FAIL, "out of memory");
	b = BIO_new_file(m->cert.s, "r");
	m->x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!m->x)
		return say(p, FAIL, "cannot load %s (%s); install a "
			   "certificate, or restore it", m->cert.s,
			   cert_error());
	b = BIO_new_file(m->key.s, "r");
	m->k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!m->k)
		return say(p, FAIL, "cannot load %s (%s); install the key of "
			   "%s", m->key.s, cert_error(), m->cert.s);
	return OK;
}

/* pem_key - the key is the certificate's and only its owner reads it */
static int pem_key(struct report *p, struct pem *m)
{
	struct stat st;

	if (X509_check_private_key(m->x, m->k) != 1)
		return say(p, FAIL, "%s is not the key of %s; install the "
			   "matching pair", m->key.s, m->cert.s);
	if (lstat(m->key.s, &st) == 0 && (st.st_mode & 077))
		return say(p, FAIL, "%s is mode %04o; run chmod 600 %s",
			   m->key.s, (unsigned)(st.st_mode & 07777), m->key.s);
	return OK;
}

/* pem_dates - in date, and for how many more days */
static int pem_dates(struct report *p, struct pem *m)
{
	int days = 0, secs = 0;

	if (X509_cmp_current_time(X509_get0_notBefore(m->x)) > 0)
		return say(p, FAIL, "%s is not valid yet; check the clock",
			   m->cert.s);
	if (!ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(m->x)))
		return say(p, FAIL, "%s has an unreadable expiry date; "
			   "install a new certificate", m->cert.s);
	if (days < 0 || secs < 0 || (days == 0 && secs == 0))
		return say(p, FAIL, "%s expired %d days ago; install a new "
			   "certificate", m->cert.s, -days);
	if (days < TLS_WARN_DAYS)
		return say(p, WARN, "%s expires in %d days; renew it",
			   m->cert.s, days);
	return OK;
}

/* cat_names - the DNS names of the subjectAltName, else the CN */
static void cat_names(X509 *x, struct str *out)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
					       NULL);
	int i, n = gens ? sk_GENERAL_NAME_num(gens) : 0;
	char cn[256];

	for (i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_DNS)
			(void)str_catf(out, "%s%.*s", out->len ? ", " : "",
				       ASN1_STRING_length(g->d.dNSName),
				       ASN1_STRING_get0_data(g->d.dNSName));
	}
	GENERAL_NAMES_free(gens);
	/* a CN longer than cn[] is cut: it is only shown */
	if (out->len == 0 &&
	    X509_NAME_get_text_by_NID(X509_get_subject_name(x),
				      NID_commonName, cn, sizeof cn) > 0)
		(void)str_cats(out, cn);
}

/* pem_names - control/me is a name the certificate covers; self-signed */
static int pem_names(struct doctor *d, struct report *p, struct pem *m)
{
	struct str me = STR_INIT, names = STR_INIT;
	int v = OK;

	if (ctl_get(d->root, "me", "", &me) == 0 && me.len &&
	    X509_check_host(m->x, me.s, me.len, 0, NULL) != 1) {
		cat_names(m->x, &names);
		v = say(p, WARN, "%s covers %s, not %s (control/me); get a "
			"certificate for %s", m->cert.s,
			names.len ? names.s : "no name", me.s, me.s);
	}
	/* not X509_check_issued: it wants keyCertSign, which init's
	 * certificate rightly lacks */
	if (!X509_NAME_cmp(X509_get_subject_name(m->x),
			   X509_get_issuer_name(m->x)) &&
	    X509_verify(m->x, X509_get0_pubkey(m->x)) == 1)
		v = say(p, WARN, "%s is self-signed, so clients that verify "
			"refuse it; install one from a CA for production",
			m->cert.s);
	str_free(&me);
	str_free(&names);
	return v;
}

static int worst(int a, int b)
{
	return a > b ? a : b;
}

/* check_tls_files - control/tls/cert.pem and key.pem */
int check_tls_files(struct doctor *d, struct report *p)
{
	struct pem m = {STR_INIT, STR_INIT, NULL, NULL};
	int v = pem_load(d, p, &m);

	if (v == OK) {
		v = pem_key(p, &m);
		v = worst(v, pem_dates(p, &m));
		v = worst(v, pem_names(d, p, &m));
	}
	ERR_clear_error();
	X509_free(m.x);
	EVP_PKEY_free(m.k);
	str_free(&m.cert);
	str_free(&m.key);
	return v;
}

/* what one listen address did */
enum { ANSWERED, REFUSED, ABSENT, BROKEN };

/* loopback - an unspecified address (0.0.0.0, ::) made the loopback
 * one: a service bound there is reached through it */
static void loopback(struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET && s4->sin_addr.s_addr == INADDR_ANY)
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
		s6->sin6_addr = in6addr_loopback;
}

/* dial - a connected socket within the deadline, or -errno */
static int dial(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
			SOCK_CLOEXEC, 0), e = 0, r = 0;
	socklen_t el = sizeof e;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		r = errno == EINPROGRESS ? 0 : -errno;
		if (r == 0)
			r = conn_wait(fd, POLLOUT, now_ms() +
				      LISTEN_TIMEOUT * 1000);
		if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
			r = -errno;
		if (r == 0 && e)
			r = -e;
	}
	if (r < 0) {
		(void)close(fd);
		return r;
	}
	return fd;
}

/* greeting - the first line of the service on fd, after TLS if tls */
static int greeting(int fd, int tls, struct str *line)
{
	SSL_CTX *ctx = NULL;
	struct conn c;
	int r = 0;

	conn_init(&c, fd, fd, LISTEN_TIMEOUT);
	if (tls) {
		/* only whether it answers: any certificate will do here,
		 * the tls check looks at the files */
		ctx = SSL_CTX_new(TLS_client_method());
		r = ctx ? conn_tls_connect(&c, ctx, NULL) : -ENOMEM;
	}
	if (r == 0)
		r = conn_getline(&c, line, GREETING_MAX);
	/* a polite end (SMTP and POP3 alike), so that the service logs a
	 * finished session rather than a lost client */
	if (r == 0 && conn_puts(&c, "QUIT\r\n") == 0)
		(void)conn_flush(&c);
	conn_free(&c);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

/* probe - one address: ANSWERED, REFUSED, ABSENT (no such address
 * here, as [::] on a host without IPv6), or BROKEN, said */
static int probe(struct report *p, const char *kind, const char *addr)
{
	struct sockaddr_storage ss;
	struct str line = STR_INIT;
	const char *want = strncmp(kind, "pop3", 4) ? "220" : "+OK";
	socklen_t len;
	int fd, r, v = ANSWERED;

	if (listen_parse(addr, &ss, &len) < 0)
		return ABSENT;	/* the control check says it */
	loopback(&ss);
	fd = dial(&ss, len);
	if (fd == -ECONNREFUSED)
		return REFUSED;
	if (fd == -EADDRNOTAVAIL || fd == -ENETUNREACH || fd == -EAFNOSUPPORT)
		return ABSENT;
	if (fd < 0) {
		(void)say(p, FAIL, "cannot connect to %s (%s): %s; see "
			  "log/current", addr, kind, msg_err(fd));
		return BROKEN;
	}
	r = greeting(fd, kind[strlen(kind) - 1] == 's', &line);
	(void)close(fd);
	if (r < 0 || strncmp(str_cstr(&line), want, 3))
		v = BROKEN;
	if (r < 0)
		(void)say(p, FAIL, "%s (%s) accepts connections but sent no "
			  "greeting: %s; see log/current", addr, kind,
			  msg_err(r));
	else if (v == BROKEN)
		(void)say(p, FAIL, "%s (%s) greets with \"%.80s\", not %s; is "
			  "another program on that port?", addr, kind,
			  str_cstr(&line), want);
	str_free(&line);
	return v;
}

/* addresses - the listen lines of KIND, or its defaults when the file
 * is missing (as listen_bind does) */
static int addresses(struct doctor *d, const char *name, struct str *lines,
		     size_t *n)
{
	int port = listen_default_port(name + strlen("listen."));
	struct stat st;
	int r = ctl_path(lines, d->root, name);

	if (r == 0 && stat(lines->s, &st) < 0 && errno == ENOENT) {
		lines->len = 0;
		*n = 2;
		return str_catf(lines, "0.0.0.0:%d%c[::]:%d", port, 0, port);
	}
	return r < 0 ? r : ctl_get_lines(d->root, name, lines, n);
}

/* check_listen_greet - every listen address answers with a greeting */
int check_listen_greet(struct doctor *d, struct report *p)
{
	struct str lines = STR_INIT, refused = STR_INIT;
	size_t i, k, n, answered = 0;
	const char *s;
	int v = OK;

	for (i = 0; i < DOCTOR_LISTEN_FILES; i++) {
		const char *name = doctor_listen_files[i];

		if (addresses(d, name, &lines, &n) < 0) {
			v = say(p, FAIL, "cannot read control/%s", name);
			continue;
		}
		for (k = 0, s = lines.s; k < n; k++, s += strlen(s) + 1) {
			int r = probe(p, name + strlen("listen."), s);

			answered += r == ANSWERED;
			v = r == BROKEN ? FAIL : v;
			if (r == REFUSED)
				(void)str_catf(&refused, "%s%s", refused.len ?
					       ", " : "", s);
		}
	}
	if (refused.len && answered == 0 && v == OK)
		v = say(p, WARN, "nothing listening on %s (is facteur run "
			"started?); start facteur run", refused.s);
	else if (refused.len)
		v = say(p, FAIL, "nothing listening on %s while other "
			"addresses answer; see log/current", refused.s);
	str_free(&lines);
	str_free(&refused);
	return v;
}
