/*
 * vpopparse - the lines of a vpopmail tree (see vpopparse.h).
 */
#include "vpopparse.h"

#include <errno.h>
#include <string.h>

#include "acct.h"
#include "num.h"
#include "pw.h"

/* split - cut S at each SEP into at most MAX fields; the field count, or
 * MAX + 1 when there are more */
static int split(char *s, int sep, char **f, int max)
{
	int n = 0;

	for (;;) {
		char *e = strchr(s, sep);

		if (n == max)
			return max + 1;
		f[n++] = s;
		if (!e)
			return n;
		*e = 0;
		s = e + 1;
	}
}

/* chomp - remove a trailing CR and blanks (a file edited elsewhere) */
static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
}

/* vpp_passwd - split one vpasswd line in place */
int vpp_passwd(char *line, struct vpp_user *u, const char **why_r)
{
	char *f[8];
	int n;

	chomp(line);
	n = split(line, ':', f, 8);
	if (n < 7 || n > 8) {
		*why_r = n < 7 ? "has too few fields (want NAME:CRYPTED:UID:"
			"GID:GECOS:DIR:QUOTA[:CLEARPASS])" :
			"has too many fields (want NAME:CRYPTED:UID:GID:GECOS:"
			"DIR:QUOTA[:CLEARPASS])";
		return -EINVAL;
	}
	if (!*f[0]) {
		*why_r = "has an empty user name";
		return -EINVAL;
	}
	u->name = f[0], u->pass = f[1], u->uid = f[2], u->gid = f[3];
	u->gecos = f[4], u->dir = f[5], u->quota = f[6];
	u->clear = n == 8 ? f[7] : NULL;
	return 0;
}

/* vpopmail.h's names of the gid bits, for the report */
static const struct {
	unsigned long bit;
	const char *name;
} flag_names[] = {
	{0x01, "NO_PASSWD_CHNG"}, {0x02, "NO_POP"}, {0x04, "NO_WEBMAIL"},
	{0x08, "NO_IMAP"}, {0x10, "BOUNCE_MAIL"}, {0x20, "NO_RELAY"},
	{0x40, "NO_DIALUP"}, {0x80, "V_USER0"}, {0x100, "V_USER1"},
	{0x200, "V_USER2"}, {0x400, "V_USER3"}, {0x800, "NO_SMTP"},
	{0x1000, "QA_ADMIN"}, {0x2000, "V_OVERRIDE"},
	{0x4000, "NO_SPAMASSASSIN"}, {0x8000, "DELETE_SPAM"},
	{0x10000, "SA_ADMIN"}, {0x20000, "SA_EXPERT"}, {0x40000, "NO_MAILDROP"},
};

/* vpp_flag_name - vpopmail's name of one bit, or NULL */
const char *vpp_flag_name(unsigned long bit)
{
	size_t i;

	for (i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
		if (flag_names[i].bit == bit)
			return flag_names[i].name;
	return NULL;
}

/* vpp_flags - the gid field: Facteur's flags, and the bits it has none
 * for (NO_IMAP, NO_WEBMAIL, ...) in *dropped_r */
int vpp_flags(const char *gid, int *acct_r, unsigned long *dropped_r)
{
	uint64_t v = 0;

	/* vpopmail reads the field with atoi: empty is 0 */
	if (*gid && num_parse(gid, 0xffffffffu, &v) < 0)
		return -EINVAL;
	*acct_r = (v & VPP_NO_POP ? ACCT_NOPOP : 0) |
		  (v & VPP_NO_SMTP ? ACCT_NOSMTP : 0) |
		  (v & VPP_BOUNCE_MAIL ? ACCT_NODELIVERY : 0);
	*dropped_r = (unsigned long)v & ~(VPP_NO_POP | VPP_NO_SMTP |
					  VPP_BOUNCE_MAIL);
	return 0;
}

/* quota_item - one comma-separated item as vpopmail wrote it (`50M`,
 * `1MB`, `5mbs`, `1048576S`, `1000C`, bare bytes), in lib/quota's
 * spelling: digits and one unit letter */
static int quota_item(const char *s, size_t n, struct str *out)
{
	static const char *const units[][2] = {
		{"", "S"}, {"s", "S"}, {"b", "S"}, {"bs", "S"}, {"c", "C"},
		{"k", "K"}, {"kb", "K"}, {"ks", "K"}, {"kbs", "K"},
		{"m", "M"}, {"mb", "M"}, {"ms", "M"}, {"mbs", "M"},
		{"g", "G"}, {"gb", "G"}, {"gs", "G"}, {"gbs", "G"},
	};
	char suf[4];
	size_t d = 0, i, k;

	while (d < n && s[d] >= '0' && s[d] <= '9')
		d++;
	if (!d || n - d >= sizeof suf)
		return -EINVAL;
	for (k = d; k < n; k++)
		suf[k - d] = (char)(s[k] >= 'A' && s[k] <= 'Z' ? s[k] + 32 :
				    s[k]);
	suf[n - d] = 0;
	for (i = 0; i < sizeof units / sizeof units[0]; i++)
		if (!strcmp(suf, units[i][0]))
			return str_catb(out, s, d) || str_cats(out, units[i][1])
				? -ENOMEM : 0;
	return -EINVAL;
}

/* vpp_quota - the QUOTA field: empty and NOQUOTA are none */
int vpp_quota(const char *s, struct quota *q)
{
	struct str norm = STR_INIT;
	const char *p = s;
	int r = 0;

	q->bytes = q->msgs = 0;
	if (!*s || !strcasecmp(s, "NOQUOTA"))
		return 0;
	while (r == 0) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);

		r = quota_item(p, n, &norm);
		if (r == 0 && e)
			r = str_catc(&norm, ',');
		if (!e)
			break;
		p = e + 1;
	}
	if (r == 0)
		r = quota_parse(norm.s, q) < 0 ? -EINVAL : 0;
	str_free(&norm);
	return r;
}

/* des_like - 13 bytes of crypt's alphabet: a traditional DES hash */
static int des_like(const char *h)
{
	size_t i;

	for (i = 0; h[i]; i++)
		if (!strchr("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "abcdefghijklmnopqrstuvwxyz", h[i]))
			return 0;
	return i == 13;
}

/* vpp_hash - whether a CRYPTED field can be kept, and its scheme's name */
int vpp_hash(const char *h, const char **scheme_r)
{
	*scheme_r = "unknown";
	if (!*h) {
		*scheme_r = "empty";
		return VPP_PW_EMPTY;
	}
	if (!strncmp(h, "$1$", 3))
		*scheme_r = "MD5-crypt";
	else if (!strncmp(h, "$6$", 3))
		*scheme_r = "SHA-512-crypt";
	else if (!strncmp(h, "$y$", 3))
		*scheme_r = "yescrypt";
	else if (!strncmp(h, "$5$", 3))
		*scheme_r = "SHA-256-crypt";
	else if (!strncmp(h, "$2a$", 4) || !strncmp(h, "$2b$", 4) ||
		 !strncmp(h, "$2y$", 4))
		*scheme_r = "bcrypt";
	else if (des_like(h))
		*scheme_r = "DES-crypt";
	return pw_hash_known(h) == 0 ? VPP_PW_KEEP : VPP_PW_OTHER;
}

/* component_ok - one directory name of a path taken from the tree */
static int component_ok(const char *s, size_t n)
{
	size_t i;

	if (!n || (n == 1 && s[0] == '.') || (n == 2 && !memcmp(s, "..", 2)))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* vpp_rel - the part of an absolute PATH of the old server below the
 * domain's directory DOMREL ("domains/D" or "domains/H/D"), checked
 * component by component: -ENOENT when PATH is not below it (the tree may
 * have moved, but never out of its domain), -EINVAL for an empty, `.` or
 * `..` component (a path traversal) */
int vpp_rel(const char *path, const char *domrel, struct str *rel)
{
	struct str needle = STR_INIT;
	const char *p, *last = NULL, *s;
	size_t n;
	int r;

	if (str_catf(&needle, "/%s/", domrel) < 0)
		return -ENOMEM;
	for (p = path; (p = strstr(p, needle.s)); p++)
		last = p;
	n = needle.len;
	str_free(&needle);
	if (!last)
		return -ENOENT;
	s = last + n;
	n = strlen(s);
	while (n && s[n - 1] == '/')
		n--;
	if (!n)
		return -EINVAL;
	str_trunc(rel, 0);
	for (p = s; p < s + n;) {
		const char *e = memchr(p, '/', (size_t)(s + n - p));
		size_t len = e ? (size_t)(e - p) : (size_t)(s + n - p);

		if (!component_ok(p, len))
			return -EINVAL;
		p += len + (e ? 1 : 0);
	}
	r = str_catb(rel, s, n);
	return r < 0 ? r : 0;
}

/* vpp_qmail_name - a domain directory's .qmail-X: the alias (':' is how
 * qmail writes '.'), the catch-all, or an extension default */
int vpp_qmail_name(const char *fname, struct str *local)
{
	const char *x = fname + strlen(".qmail-");
	size_t n, i;
	int kind = VPP_Q_ALIAS;

	if (strncmp(fname, ".qmail-", strlen(".qmail-")) || !*x)
		return -EINVAL;
	if (!strcmp(x, "default"))
		return VPP_Q_DEFAULT;
	n = strlen(x);
	if (n > strlen("-default") &&
	    !strcmp(x + n - strlen("-default"), "-default")) {
		n -= strlen("-default");
		kind = VPP_Q_EXTDEFAULT;
	}
	str_trunc(local, 0);
	for (i = 0; i < n; i++)
		if (str_catc(local, x[i] == ':' ? '.' : x[i]) < 0)
			return -ENOMEM;
	return kind;
}

/* vpp_qmail_line - what one line of a .qmail file delivers to (qmail's
 * dot-qmail rules); *arg_r: the program, path or address */
int vpp_qmail_line(char *line, char **arg_r)
{
	size_t n;

	chomp(line);
	*arg_r = line;
	if (!*line || *line == '#')
		return VPP_L_SKIP;
	if (*line == '|') {
		*arg_r = line + 1;
		return VPP_L_PROGRAM;
	}
	if (*line == '.' || *line == '/') {
		n = strlen(line);
		return line[n - 1] == '/' ? VPP_L_MAILDIR : VPP_L_MBOX;
	}
	if (*line == '&')
		*arg_r = line + 1;
	return **arg_r ? VPP_L_ADDRESS : -EINVAL;
}

/* word - the next shell word of CMD (blanks separate; '...' and "..."
 * quote), appended to OUT; 0 at the end, 1 for a word, -EINVAL for an
 * unclosed quote */
static int word(const char **cmd, struct str *out)
{
	const char *p = *cmd;

	str_trunc(out, 0);
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return 0;
	while (*p && *p != ' ' && *p != '\t') {
		if (*p == '\'' || *p == '"') {
			const char *e = strchr(p + 1, *p);

			if (!e)
				return -EINVAL;
			if (str_catb(out, p + 1, (size_t)(e - p - 1)) < 0)
				return -ENOMEM;
			p = e + 1;
			continue;
		}
		if (str_catc(out, *p++) < 0)
			return -ENOMEM;
	}
	*cmd = p;
	return str_catb(out, "", 0) < 0 ? -ENOMEM : 1;
}

/* vpp_vdelivermail - the ARG of `| .../vdelivermail '' ARG`, vpopmail's
 * .qmail-default; -EINVAL for any other program */
int vpp_vdelivermail(const char *cmd, struct str *arg)
{
	struct str w = STR_INIT;
	const char *base;
	int n = 0, r;

	while ((r = word(&cmd, &w)) == 1) {
		if (n == 0) {
			base = strrchr(w.s, '/');
			base = base ? base + 1 : w.s;
			if (strcmp(base, "vdelivermail"))
				r = -EINVAL;
		} else if (n == 2 && str_copys(arg, w.s) < 0) {
			r = -ENOMEM;
		}
		if (r < 0 || ++n > 3)
			break;
	}
	str_free(&w);
	if (r < 0)
		return r;
	return n == 3 && arg->len ? 0 : -EINVAL;
}

/* vpp_assign - one users/assign line: 1 a `+NAME-` line, 0 one to skip
 * (the final `.`, `=` lines of single users, blank), -EINVAL */
int vpp_assign(char *line, struct vpp_assign *a)
{
	char *f[8];
	size_t n;

	chomp(line);
	if (!*line || !strcmp(line, ".") || *line == '=')
		return 0;
	if (*line != '+' || split(line, ':', f, 8) < 6)
		return -EINVAL;
	n = strlen(f[0]);
	if (n < 3 || f[0][n - 1] != '-')
		return -EINVAL;
	f[0][n - 1] = 0;
	a->name = f[0] + 1;
	a->real = f[1];
	a->dir = f[4];
	return *a->real && *a->dir ? 1 : -EINVAL;
}

/* vpp_valias - one line of `valias -s`: 1 with ALIAS@DOMAIN and the
 * .qmail-style LINE, 0 for a blank line, -EINVAL */
int vpp_valias(char *line, char **alias_r, char **dest_r)
{
	char *arrow;

	chomp(line);
	if (!*line)
		return 0;
	arrow = strstr(line, " -> ");
	if (!arrow || arrow == line || !arrow[4])
		return -EINVAL;
	*arrow = 0;
	*alias_r = line;
	*dest_r = arrow + 4;
	return 1;
}
