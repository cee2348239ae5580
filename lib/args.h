/*
 * args - the options every program shares.
 *
 * Where options end. A program's arguments are of one of two kinds:
 *
 *  - Command programs (facteur, vadmin and its vpopmail-named links,
 *    mta-send, mta-smtpd, pop3d, mta-qstat, mta-qread, mta-rules): their
 *    operands are subcommands and what an administrator typed after them,
 *    so "--root DIR" may come before or after them (SPEC: "before or after
 *    a subcommand"); only "--" ends the options. args_root(),
 *    args_has_help() and args_start() read them so.
 *
 *  - Envelope programs (mta-inject, sendmail, vdeliver, mta-remote): their
 *    operands are envelope addresses, which come from whoever sent the
 *    mail. An address must never be read as an option ("--root=/tmp/x@y"
 *    would choose the root; "--help" would end the program). Options end
 *    at the first operand (a word not starting with '-', or "-" alone) and
 *    at "--"; and the value of a short option that takes one is skipped
 *    as a value, never read as an option ("-f --root=/x": --root=/x is the
 *    sender). VALUED lists those options' letters ("f" for -f SENDER),
 *    "" when there are none. args_root_env(), args_has_help_env() and
 *    args_start_env() read them so.
 *
 * Whoever builds an envelope program's argv from envelope data (mta-send,
 * vdeliver's forwards, sendmail) passes the sender joined to its flag,
 * one word that no scanner can take for --root (args_sender_opt: -fSENDER,
 * -f<> for the null sender), and every other envelope value after "--";
 * and no entry lets in an address whose local part begins with '-'
 * (queue_addr_entry, lib/queue.h). Either defence alone closes the hole;
 * both are kept so that neither depends on the other.
 *
 * args_root*() remove "--root DIR" or "--root=DIR" from the options part
 * of argv, the last one winning, and return the root: the flag, else
 * $FACTEUR_ROOT, else /var/facteur; NULL when --root has no value.
 * args_has_help*() is 1 when --help or -h is among the options.
 * args_start*() do both checks every program makes first: --root without
 * a value exits 2 with the usage, --help prints the usage and exits 0;
 * they return the root.
 * args_sibling() names another Facteur program in the directory this one
 * was started from, so that a build tree and an install run their own;
 * with "" it gives that directory with its final '/' (facteur run).
 */
#ifndef FACTEUR_ARGS_H
#define FACTEUR_ARGS_H

#define ROOT_DEFAULT "/var/facteur"

const char *args_root(int *argc, char **argv);
int args_has_help(int argc, char **argv);
const char *args_start(int *argc, char **argv, const char *usage);

const char *args_root_env(int *argc, char **argv, const char *valued);
int args_has_help_env(int argc, char **argv, const char *valued);
const char *args_start_env(int *argc, char **argv, const char *usage,
			   const char *valued);

struct str;
int args_sender_opt(struct str *out, const char *sender);
int args_sibling(struct str *out, const char *prog);

#endif
