#!/bin/sh
# deps.sh [test|ci] - make sure the Debian packages Facteur builds with
# (with "test", also those its tests drive: `make check`; with "ci", also
# clang and libFuzzer's runtime: `make check-ci`) are present. Installs
# them with apt-get when run as root, otherwise prints the one command to
# run and fails, so `make` stops with an actionable message.
set -u
missing=""
need() { # need HEADER-OR-COMMAND-OR-PERL-MODULE PACKAGE
    case "$1" in
    /*) [ -e "$1" ] || missing="$missing $2" ;;
    *::*) perl -M"$1" -e 1 >/dev/null 2>&1 || missing="$missing $2" ;;
    *) command -v "$1" >/dev/null 2>&1 || missing="$missing $2" ;;
    esac
}
need /usr/include/sqlite3.h libsqlite3-dev
need /usr/include/crypt.h libcrypt-dev
need /usr/include/cdb.h libcdb-dev
need /usr/include/openssl/ssl.h libssl-dev
need /usr/include/ares.h libc-ares-dev
# libpq, PostgreSQL's own client library: the PostgreSQL account store
# (lib/store_pg.c, docs/scale-out.md)
need /usr/include/postgresql/libpq-fe.h libpq-dev
need pkg-config pkg-config
need cc gcc
need /usr/include/stdio.h libc6-dev
need make make
need python3 python3
# the Public Suffix List: mta-smtpd's DMARC finds organizational domains
# with it at run time (lib/dmarc, docs/authentication.md); its test
# vectors (test_psl.txt) are test_dmarc's
need /usr/share/publicsuffix/public_suffix_list.dat publicsuffix
if [ "${1:-}" = test ] || [ "${1:-}" = ci ]; then
    # the real peers of tests/integration (docs/testing.md): swaks and its
    # TLS and IPv6 modules, curl and fetchmail (POP3 clients), dnsmasq
    # (DNS on a high port), libfaketime (clock jumps), tinycdb's cdb, the
    # openssl tool, useradd (the mail user) and setpriv (other users);
    # mandoc lints the man pages (make man-lint); test_install checks the
    # systemd unit with systemd-analyze and emulates its sandbox with
    # unshare and setpriv (util-linux) and libseccomp (through ctypes);
    # Dovecot (test_imap_dovecot)
    need swaks swaks
    need Net::SSLeay libnet-ssleay-perl
    need IO::Socket::INET6 libio-socket-inet6-perl
    need curl curl
    need fetchmail fetchmail
    need /usr/sbin/dnsmasq dnsmasq-base
    need /usr/lib/"$(gcc -dumpmachine 2>/dev/null)"/faketime/libfaketime.so.1 libfaketime
    need cdb tinycdb
    need openssl openssl
    need /usr/sbin/useradd passwd
    need setpriv util-linux
    need /etc/ssl/certs/ca-certificates.crt ca-certificates
    # the two DKIM verifiers of test_dkim_sign: dkimpy (with PyNaCl for
    # Ed25519) and OpenDKIM's libopendkim, which opendkim-tools brings
    need /usr/lib/python3/dist-packages/dkim/__init__.py python3-dkim
    need /usr/lib/python3/dist-packages/nacl/__init__.py python3-nacl
    need /usr/sbin/opendkim-testmsg opendkim-tools
    # OpenDKIM's milter, the signer of test_dkim_interop (our verifier
    # checks its signatures) and the peer of bench/sign_compare.py; the
    # tests run their own instance, never the system's (see below)
    need /usr/sbin/opendkim opendkim
    # the SPF reference of test_spf: pyspf (with dnspython, pointed at
    # the test's dnsmasq) and PyYAML to read the RFC 7208 test suite
    need /usr/lib/python3/dist-packages/spf.py python3-spf
    need /usr/lib/python3/dist-packages/yaml/__init__.py python3-yaml
    need mandoc mandoc
    need systemd-analyze systemd
    need /usr/lib/"$(gcc -dumpmachine 2>/dev/null)"/libseccomp.so.2 libseccomp2
    # Dovecot's imapd, started with contrib/dovecot/ over vchkpw
    # (test_imap_dovecot; dovecot-core comes with it: doveadm and
    # checkpassword-reply)
    need /usr/lib/dovecot/imap dovecot-imapd
    # tests/hostile (issue 15): strace's --inject kills a program or
    # fails its call at the N-th system call of a name (crash points,
    # write faults), and its path log shows what every process wrote;
    # nmap's smtp-open-relay script and testssl.sh, the outside checkers
    # run against `facteur run`
    need strace strace
    need nmap nmap
    need testssl testssl.sh
    # ... and the peers of the slow matrix (docs/security.md): Dovecot's
    # pop3 and Postfix's sendmail/postdrop, each run privately under the
    # test's own directory, never as the system's daemons
    need /usr/lib/dovecot/pop3 dovecot-pop3d
    need /usr/sbin/postdrop postfix
    # PostgreSQL's server (initdb, postgres, pg_isready, createdb, psql):
    # test_store_pg starts a private one in its temporary directory
    need "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -n 1)" postgresql
fi
if [ "${1:-}" = ci ]; then
    # the second compiler of the warnings build and of `make fuzz`; its
    # libFuzzer archive is a separate package that apt only recommends
    need clang clang
    rt="$(clang -print-resource-dir 2>/dev/null)"
    need "$rt/lib/linux/libclang_rt.fuzzer-$(uname -m).a" libclang-rt-dev
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$missing" >&2
    # The tests start their own Dovecot, OpenDKIM and PostgreSQL on
    # loopback ports, and a private Postfix with no daemon; the packages'
    # scripts would start the system's own (on 143/993, 25, a socket of
    # /run, 5432) and enable them at boot. A policy-rc.d that says no (an
    # existing one is kept) stops the start; a daemon this run brought
    # is then disabled at boot too.
    # exists PATH... - is any of the (globbed) paths there?
    exists() { for f in "$@"; do [ -e "$f" ] && return 0; done; return 1; }
    policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d &&
            chmod 0755 /usr/sbin/policy-rc.d && policy=1
    fi
    daemons="dovecot:/usr/sbin/dovecot postfix:/usr/sbin/postfix"
    daemons="$daemons opendkim:/usr/sbin/opendkim"
    daemons="$daemons postgresql:/usr/lib/postgresql/*/bin/postgres"
    had=
    for d in $daemons; do
        exists ${d#*:} && had="$had ${d%%:*}"
    done
    # Postfix's package asks how the system's mail goes; the tests want
    # its programs only (as ../shared/bench/peers/install.sh does)
    case "$missing " in *" postfix "*)
        command -v debconf-set-selections >/dev/null 2>&1 &&
            echo "postfix postfix/main_mailer_type select No configuration" |
            debconf-set-selections ;;
    esac
    DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $missing >&2
    rc=$?
    [ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
    for d in $daemons; do
        name=${d%%:*}
        case " $had " in *" $name "*) continue ;; esac
        exists ${d#*:} || continue
        systemctl disable "$name.service" >/dev/null 2>&1
        update-rc.d "$name" disable >/dev/null 2>&1
        echo "deps: $name installed for the tests, not started, disabled at boot" >&2
    done
    [ "$rc" = 0 ] && exit 0
    echo "deps: apt-get failed; run: apt-get install -y$missing" >&2
    exit 1
fi
echo "deps: missing packages; run as root: apt-get install -y$missing" >&2
exit 1
