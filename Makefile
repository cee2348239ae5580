# Facteur - plain Makefile. `make` builds into bin/; `make check` builds a
# second copy with AddressSanitizer and UndefinedBehaviorSanitizer under
# build/san/ and runs every test against it.

CC      ?= cc
O       ?= build/rel
BINDIR  ?= bin
PREFIX  ?= /usr/local
PYTHON  ?= python3

WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wpointer-arith \
          -Wformat=2 -Wvla
CFLAGS  ?= -O2 -g
ifeq ($(SAN),1)
CFLAGS  = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
          -fno-sanitize-recover=undefined
LDSAN   = -fsanitize=address,undefined
endif
# hardening: stack canaries, position-independent executables, full RELRO;
# _FORTIFY_SOURCE where no sanitizer replaces the checked functions
HARDEN  = -fstack-protector-strong -fPIE
LDSAN  += -pie -Wl,-z,relro,-z,now
ifneq ($(SAN),1)
HARDEN += -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3
endif
# libpq's header lives in its own directory (Debian's libpq-dev)
CPPFLAGS += -std=c17 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Ilib -I$(O) \
            -I/usr/include/postgresql
LIBS    = -Wl,--as-needed -lsqlite3 -lpq -lcrypt -lcdb -lssl -lcrypto -lcares

LIB_SRC = $(wildcard lib/*.c)
LIB_OBJ = $(LIB_SRC:%.c=$(O)/%.o) $(O)/schema_sql.o
SCHEMA  = $(sort $(wildcard schema/[0-9]*.sql))
# the same migrations in PostgreSQL's dialect (docs/scale-out.md)
SCHEMA_PG = $(sort $(wildcard schema/pg/[0-9]*.sql))

# Each program is its sources plus lib/: SRC_<program> names them, and one
# link rule below makes every program from its list.
VLINKS  = vadddomain vdeldomain vadduser vdeluser vpasswd vsetuserquota \
          valias vuserinfo vdominfo vaddaliasdomain vmoduser
MTA     = mta-inject mta-qstat mta-qread mta-rules sendmail
PROGS   = vadmin facteur vdeliver pop3d vchkpw mta-smtpd mta-send mta-remote \
          $(MTA)
# A man page (mdoc) for every program, beside its source; the suffix is
# the section: 8 for daemons and administration tools, 1 for sendmail,
# which every local user runs, 5 for the control files (docs/install.md)
MAN     = facteur/facteur.8 facteur/facteur-control.5 mta/smtpd/mta-smtpd.8 \
          mta/send/mta-send.8 mta/remote/mta-remote.8 mta/mta-inject.8 \
          mta/sendmail.1 mta/mta-qstat.8 mta/mta-qread.8 mta/mta-rules.8 \
          vdeliver/vdeliver.8 vadmin/vadmin.8 pop3d/pop3d.8 vchkpw/vchkpw.8
SRC_vadmin     = $(wildcard vadmin/*.c)
SRC_facteur    = $(wildcard facteur/*.c)
SRC_vdeliver   = $(wildcard vdeliver/*.c)
SRC_pop3d      = $(wildcard pop3d/*.c)
# Dovecot's checkpassword program (docs/imap.md)
SRC_vchkpw     = $(wildcard vchkpw/*.c)
SRC_mta-smtpd  = $(wildcard mta/smtpd/*.c)
# the scheduler (mta/send/) and its remote SMTP client (mta/remote/)
SRC_mta-send   = $(wildcard mta/send/*.c)
SRC_mta-remote = $(wildcard mta/remote/*.c)
$(foreach p,$(MTA),$(eval SRC_$(p) = mta/$(p).c))
objs = $(patsubst %.c,$(O)/%.o,$(1))

# Unit tests: tests/unit/NAME.c with lib/, and for those that test a
# program's modules, those modules without the file holding main()
# (TOBJ_NAME) and the program's directory on the include path (TINC_NAME).
TESTS   = test_lib test_acct test_queue test_qstatus test_rules test_pop3d \
          test_listen test_vdeliver test_remote test_send test_smtpd test_limit \
          test_sasl test_conn test_vpopparse test_vchkpw test_dkim test_dkimv \
          test_dns test_server test_spf test_srs test_dmarc test_store \
          test_share
# test drivers of the integration tests, built like unit tests, never run
# by themselves (tests/run.py runs test_* only)
TDRIVERS = spfcheck
TOBJ_test_pop3d  = $(call objs,$(filter-out pop3d/pop3d.c,$(SRC_pop3d)))
TOBJ_test_vchkpw = $(call objs,$(filter-out %/vchkpw.c,$(SRC_vchkpw)))
TINC_test_vchkpw = -Ivchkpw
TOBJ_test_remote = $(call objs,$(filter-out %/remote.c,$(SRC_mta-remote)))
TINC_test_remote = -Imta/remote
# mta-send's owner.c, dropseen.c and slog.c need nothing else of it
TOBJ_test_send   = $(addprefix $(O)/mta/send/,owner.o dropseen.o slog.o quarantine.o)
TINC_test_send   = -Imta/send
TOBJ_test_smtpd  = $(call objs,$(filter-out %/main.c,$(SRC_mta-smtpd)))
TINC_test_smtpd  = -Imta/smtpd
TOBJ_test_vpopparse = $(O)/vadmin/vpopparse.o
TINC_test_vpopparse = -Ivadmin

all: deps $(PROGS:%=$(BINDIR)/%) $(VLINKS:%=$(BINDIR)/%)

deps:
	@tools/deps.sh

# what the tests drive too (swaks, fetchmail, dnsmasq, libfaketime, ...)
deps-test:
	@tools/deps.sh test

# and what CI adds: clang and libFuzzer
deps-ci:
	@tools/deps.sh ci

# deps first, even with -j: a fresh machine has no headers until then.
# Each object's headers are those the compiler saw (-MMD), in its .d file
$(O)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(HARDEN) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(wildcard $(O)/*/*.d $(O)/*/*/*.d)

$(O)/libfacteur.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(O)/schema_sql.c: $(SCHEMA) $(SCHEMA_PG) tools/embed.sh
	@mkdir -p $(O)
	tools/embed.sh $(SCHEMA) -- $(SCHEMA_PG) > $@.tmp && mv $@.tmp $@

$(O)/schema_sql.o: $(O)/schema_sql.c
	$(CC) $(CPPFLAGS) $(WARN) $(HARDEN) $(CFLAGS) -c -o $@ $<

# the one link rule: a program's objects, then lib/
$(foreach p,$(PROGS),$(eval $(BINDIR)/$(p): $(call objs,$(SRC_$(p)))))
$(PROGS:%=$(BINDIR)/%): $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $(filter %.o,$^) $(O)/libfacteur.a $(LIBS)

$(VLINKS:%=$(BINDIR)/%): $(BINDIR)/vadmin
	ln -sf vadmin $@

$(foreach t,$(TESTS),$(eval $(O)/tests/$(t): $(TOBJ_$(t))))
$(TESTS:%=$(O)/tests/%) $(TDRIVERS:%=$(O)/tests/%): $(O)/tests/%: tests/unit/%.c $(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(TINC_$*) $(WARN) $(HARDEN) $(CFLAGS) $(LDSAN) \
		-o $@ $< $(TOBJ_$*) $(O)/libfacteur.a $(LIBS)

unit: $(TESTS:%=$(O)/tests/%) $(TDRIVERS:%=$(O)/tests/%)

# The sanitizer build runs on every core unless the caller chose with -j;
# the tests run in TEST_JOBS processes (tests/run.py -j; those that
# measure time run alone afterwards), and the ten slowest are listed with
# the total, so that what makes `make check` slow shows (docs/testing.md)
NPROC     := $(shell nproc 2>/dev/null || echo 1)
BUILD_J    = $(if $(filter -j%,$(MAKEFLAGS)),,-j$(NPROC))
TEST_JOBS ?= 2
RUNTESTS   = $(PYTHON) tests/run.py -j $(TEST_JOBS) --durations 10 \
	     --bin build/san/bin --unit build/san/tests

check: deps-test
	$(MAKE) --no-print-directory man-lint
	$(MAKE) $(BUILD_J) O=build/san BINDIR=build/san/bin SAN=1 all unit
	$(RUNTESTS)

# every man page through mandoc's linter: a warning fails the build
man-lint:
	mandoc -Tlint -Wwarning $(MAN)

check-slow: deps-test
	$(MAKE) $(BUILD_J) O=build/san BINDIR=build/san/bin SAN=1 all unit
	$(RUNTESTS) --slow
	@echo "check-slow: fuzzing's CPU-hour a target is make fuzz-long" \
		"(and make fuzz-fresh); where they stand, from their logs:"
	@$(MAKE) -s --no-print-directory fuzz-table

# CI (.ci/run): the tests, then the whole tree and its unit tests built
# again with each compiler, warnings as errors (gcc without sanitizers
# sees what _FORTIFY_SOURCE adds; clang warns where gcc does not), then
# every libFuzzer target for FUZZTIME_CI seconds
FUZZTIME_CI ?= 10
check-ci: deps-ci
	$(MAKE) check
	$(MAKE) $(BUILD_J) CC=gcc O=build/gcc BINDIR=build/gcc/bin all unit
	$(MAKE) $(BUILD_J) CC=clang O=build/clang BINDIR=build/clang/bin \
		all unit
	$(MAKE) $(BUILD_J) fuzz
	$(MAKE) fuzz-run FUZZTIME=$(FUZZTIME_CI)

# libFuzzer targets for lib/'s parsers (tests/fuzz/), built only by
# `make fuzz`, with clang, into build/fuzz/. lib/ gets its own instrumented
# archive, so a target links only the modules it uses. `make fuzz-run` runs
# each for FUZZTIME seconds with its .dict, keeping its corpus and any crash
# under build/fuzz/. clang's -Wformat=2 also flags lib's va_list wrappers.
FUZZ      = fuzz_name fuzz_quota fuzz_ctl fuzz_pop3
# lib/num: every decimal number the programs read
FUZZ     += fuzz_num
# the option scanners: an envelope value is never an option
FUZZ     += fuzz_args
FUZZ     += fuzz_hdrscan fuzz_mdquota
# the queue file reader and the status file parser of mta-send
FUZZ     += fuzz_queue fuzz_qstatus
# the SMTP session, with every parser in it, read from a memfd
FUZZ     += fuzz_smtpd
# mta-remote: SMTP replies, the DATA writer, smtproutes
FUZZ     += fuzz_remote
# the login parsers of mta-smtpd and pop3d: base64, SASL, passwd records
FUZZ     += fuzz_sasl
# lib/conn's line reader, which every network byte goes through
FUZZ     += fuzz_conn_line
# vchkpw: what Dovecot passes on descriptor 3, a client's user and password
FUZZ     += fuzz_vchkpw
# lib/dkim: header fields, relaxed canonicalization; qsign's From: rule
FUZZ     += fuzz_dkim
# lib/dkimv and lib/authres: signatures, key records, the A-R filter
FUZZ     += fuzz_dkimv
# mta-smtpd's parsers one at a time: address, DATA
FUZZ_SMTPD = fuzz_smtpd_addr fuzz_smtpd_data
FUZZ     += $(FUZZ_SMTPD)
# lib/srs: the SRS0 recipients any client may send
FUZZ     += fuzz_srs
# vadmin import-vpopmail: the lines of a vpopmail tree
FUZZ     += fuzz_vpop
# lib/spf: SPF records and macro-strings from DNS
FUZZ     += fuzz_spf
# lib/dmarc: DMARC records from DNS, the PSL lookup of From: domains
FUZZ     += fuzz_dmarc
# lib/dnscache: the TTLs of DNS answers from the network
FUZZ     += fuzz_dnscache
# lib/limit: the keys and datagrams vadmin share carries between hosts
FUZZ     += fuzz_share
# lib/rules: control/relayrules compiled and looked up, against a model
FUZZ     += fuzz_rules
# lib/dns: A, AAAA, MX, TXT and PTR answers as the lookups read them
FUZZ     += fuzz_dns
# vadmin import: the lines of an import file (vadmin/vimpline.c)
FUZZ     += fuzz_vimport
# lib/acct, lib/rcpt: the records of the generated CDBs (assign, mailbox,
# forward) and the extension walk of vdeliver and mta-smtpd
FUZZ     += fuzz_records
# lib/listen, lib/dns, lib/peer: listen.*, resolvers, client addresses
FUZZ     += fuzz_listen
FUZZCC   ?= clang
FUZZO     = build/fuzz
FUZZTIME ?= 30
FUZZFLAGS = -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZWARN  = $(WARN) -Wno-format-nonliteral

fuzz: $(FUZZ:%=$(FUZZO)/%)

# every fuzzed object, lib/ or a program's module, instrumented the same way
$(FUZZO)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CPPFLAGS) $(FUZZWARN) $(FUZZFLAGS) -MMD -MP \
		-fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

-include $(wildcard $(FUZZO)/*/*.d $(FUZZO)/*/*/*.d)

$(FUZZO)/schema_sql.c: $(SCHEMA) $(SCHEMA_PG) tools/embed.sh
	@mkdir -p $(FUZZO)
	tools/embed.sh $(SCHEMA) -- $(SCHEMA_PG) > $@.tmp && mv $@.tmp $@

$(FUZZO)/schema_sql.o: $(FUZZO)/schema_sql.c
	$(FUZZCC) $(CPPFLAGS) $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZO)/libfacteur.a: $(LIB_SRC:lib/%.c=$(FUZZO)/lib/%.o) $(FUZZO)/schema_sql.o
	rm -f $@ && ar rcs $@ $^

# the targets that parse inside a program link its modules (without main)
# and see its headers, as the unit tests do
fuzzobjs = $(patsubst $(O)/%,$(FUZZO)/%,$(TOBJ_$(1)))
FOBJ_fuzz_pop3  = $(FUZZO)/pop3d/proto.o
FINC_fuzz_pop3  = -Ipop3d
FOBJ_fuzz_vchkpw = $(FUZZO)/vchkpw/input.o
FINC_fuzz_vchkpw = -Ivchkpw
FOBJ_fuzz_remote = $(call fuzzobjs,test_remote)
FINC_fuzz_remote = -Imta/remote
FOBJ_fuzz_vpop  = $(call fuzzobjs,test_vpopparse)
FINC_fuzz_vpop  = -Ivadmin
FOBJ_fuzz_vimport = $(FUZZO)/vadmin/vimpline.o
FINC_fuzz_vimport = -Ivadmin
$(foreach f,fuzz_smtpd $(FUZZ_SMTPD),$(eval FOBJ_$(f) = $(call fuzzobjs,test_smtpd)))
$(foreach f,fuzz_smtpd $(FUZZ_SMTPD),$(eval FINC_$(f) = -Imta/smtpd))
$(foreach f,$(FUZZ),$(eval $(FUZZO)/$(f): $(FOBJ_$(f))))

$(FUZZ:%=$(FUZZO)/%): $(FUZZO)/%: tests/fuzz/%.c $(FUZZO)/libfacteur.a \
		$(wildcard tests/fuzz/*.h)
	$(FUZZCC) $(CPPFLAGS) $(FINC_$*) $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer,address,undefined \
		-o $@ $< $(FOBJ_$*) $(FUZZO)/libfacteur.a $(LIBS)

# the corpus grows in build/fuzz/corpus/NAME, seeded by the committed one
# in tests/fuzz/corpus/NAME (if any)
fuzz-run: fuzz
	@for f in $(FUZZ); do \
		mkdir -p $(FUZZO)/corpus/$$f && \
		echo "fuzz-run: $$f for $(FUZZTIME) s" && \
		$(FUZZO)/$$f -max_total_time=$(FUZZTIME) -print_final_stats=1 \
			-dict=tests/fuzz/$$f.dict -artifact_prefix=$(FUZZO)/$$f- \
			$(FUZZO)/corpus/$$f \
			$$(test -d tests/fuzz/corpus/$$f && \
			   echo tests/fuzz/corpus/$$f) || exit 1; \
	done

# issue 15's CPU-hour per target: tests/fuzz/long.py stops each fuzzer
# when it has used FUZZCPU seconds of CPU (not wall time), FUZZJOBS at a
# time, at nice 19; a target already done in FUZZLOG is skipped, so the
# campaign (about a day of CPU for all targets) can be spread over several
# runs and machines: the log is committed, because build/ does not outlive
# a machine. Then `make fuzz-corpus` keeps the grown corpora, minimized,
# in tests/fuzz/corpus/ for the next runs.
FUZZCPU  ?= 3600
FUZZJOBS ?= 2
FUZZLOG  ?= tests/fuzz/long.tsv
fuzz-long: fuzz
	$(PYTHON) tests/fuzz/long.py --fuzzo $(FUZZO) --cpu $(FUZZCPU) \
		--jobs $(FUZZJOBS) --log $(FUZZLOG) --resume $(FUZZ)

# targets whose code changed after their hour was credited: each gets a
# fresh FUZZCPU on the code as it is now, logged apart in FUZZFRESHLOG so
# the two hours are never added together
FUZZFRESH    ?= fuzz_dkimv fuzz_smtpd_addr fuzz_name fuzz_remote fuzz_hdrscan
FUZZFRESHLOG ?= tests/fuzz/fresh.tsv
fuzz-fresh: fuzz
	$(PYTHON) tests/fuzz/long.py --fuzzo $(FUZZO) --cpu $(FUZZCPU) \
		--jobs $(FUZZJOBS) --log $(FUZZFRESHLOG) --resume $(FUZZFRESH)

# where the campaign stands, as docs/security.md's tables (runs nothing)
fuzz-table:
	@$(PYTHON) tests/fuzz/long.py --table --cpu $(FUZZCPU) --log $(FUZZLOG) \
		$(FUZZ)
	@echo
	@$(PYTHON) tests/fuzz/long.py --table --cpu $(FUZZCPU) \
		--log $(FUZZFRESHLOG) $(FUZZFRESH)

# issue 15's soak: an hour (SOAKTIME seconds) of mixed load on `facteur
# run` with kills and write faults, every message accounted for
# (tests/hostile/soak.py; check-slow runs three minutes of it)
SOAKTIME ?= 3600
soak: deps-test
	$(MAKE) $(BUILD_J) O=build/rel BINDIR=build/rel/bin all
	$(PYTHON) tests/hostile/soak.py --bin build/rel/bin --seconds $(SOAKTIME)

fuzz-corpus: fuzz
	@for f in $(FUZZ); do \
		test -d $(FUZZO)/corpus/$$f || continue; \
		mkdir -p tests/fuzz/corpus/$$f && \
		$(FUZZO)/$$f -merge=1 tests/fuzz/corpus/$$f \
			$(FUZZO)/corpus/$$f || exit 1; \
	done

RUNROOT ?= $(CURDIR)/run-root
run: all
	exec tools/run.sh "$(BINDIR)" "$(RUNROOT)"

bench: all $(O)/bench/smtp_spread $(O)/bench/pop3_load $(O)/bench/cdb_lookup $(O)/bench/relay_decide $(O)/bench/dkim_sign
	$(PYTHON) bench/run.py --bin $(BINDIR) --obj $(O)

# `make install` builds, then installs; `make install-files` installs what
# BINDIR holds and builds nothing (a packager's second step, and what
# tests/integration/test_install.py runs on the tested programs). Programs
# and the vpopmail-named links go to PREFIX/bin (SPEC.md), the man pages
# to PREFIX/share/man/manN by their suffix, the systemd unit, its
# ExecStart made from PREFIX, to PREFIX/lib/systemd/system (docs/install.md)
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
install: all
	$(MAKE) --no-print-directory install-files

install-files:
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) \
		$(sort $(foreach m,$(MAN),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))))
	install -m 0755 $(PROGS:%=$(BINDIR)/%) $(DESTDIR)$(PREFIX)/bin/
	for l in $(VLINKS); do ln -sf vadmin $(DESTDIR)$(PREFIX)/bin/$$l; done
	for m in $(MAN); do \
		install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; \
	done
	for l in $(VLINKS); do ln -sf vadmin.8 $(DESTDIR)$(MANDIR)/man8/$$l.8; done
	sed 's|@BINDIR@|$(PREFIX)/bin|g' contrib/systemd/facteur.service.in \
		> $(DESTDIR)$(UNITDIR)/facteur.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/facteur.service.tmp
	mv $(DESTDIR)$(UNITDIR)/facteur.service.tmp \
		$(DESTDIR)$(UNITDIR)/facteur.service

uninstall:
	rm -f $(PROGS:%=$(DESTDIR)$(PREFIX)/bin/%) \
		$(VLINKS:%=$(DESTDIR)$(PREFIX)/bin/%) \
		$(foreach m,$(MAN),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))) \
		$(VLINKS:%=$(DESTDIR)$(MANDIR)/man8/%.8) \
		$(DESTDIR)$(UNITDIR)/facteur.service

clean:
	rm -rf build bin

.PHONY: all deps deps-test deps-ci unit check check-slow check-ci run bench fuzz-table \
	fuzz-long fuzz-fresh fuzz-corpus soak \
	install install-files uninstall man-lint clean fuzz fuzz-run

$(O)/bench/%: bench/%.c $(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(HARDEN) $(CFLAGS) -o $@ $^ $(LIBS)

$(O)/bench/relay_decide: bench/relay_decide.c $(O)/mta/smtpd/check.o $(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Imta/smtpd $(WARN) $(HARDEN) $(CFLAGS) -o $@ $^ $(LIBS)
