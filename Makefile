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
CPPFLAGS += -std=c17 -D_DEFAULT_SOURCE -D_GNU_SOURCE -Ilib -I$(O)
LIBS    = -Wl,--as-needed -lsqlite3 -lcrypt -lcdb -lssl -lcrypto -lcares

LIB_SRC = $(wildcard lib/*.c)
LIB_OBJ = $(LIB_SRC:%.c=$(O)/%.o) $(O)/schema_sql.o

VADMIN_SRC = $(wildcard vadmin/*.c)
FACTEUR_SRC = $(wildcard facteur/*.c)
POP3D_SRC = $(wildcard pop3d/*.c)
# pop3d without main(), for its unit test and fuzz target
POP3D_LIB = $(filter-out pop3d/pop3d.c,$(POP3D_SRC))
SCHEMA  = $(sort $(wildcard schema/[0-9]*.sql))

VLINKS  = vadddomain vdeldomain vadduser vdeluser vpasswd vsetuserquota \
          valias vuserinfo vdominfo vaddaliasdomain vmoduser
MTA     = mta-inject mta-qstat mta-qread mta-rules sendmail
PROGS   = vadmin facteur $(MTA) pop3d
# mta-smtpd is several files (mta/smtpd/), so it has its own link rule
SMTPD_SRC = $(wildcard mta/smtpd/*.c)
PROGS   += mta-smtpd
TESTS_SMTPD = test_smtpd
TESTS   = test_lib test_acct test_queue test_qstatus test_rules test_pop3d
TESTS   += test_listen
VDELIVER_SRC = $(wildcard vdeliver/*.c)
PROGS   += vdeliver
# the scheduler (mta/send/) and its remote SMTP client (mta/remote/)
SEND_SRC = $(wildcard mta/send/*.c)
REMOTE_SRC = $(wildcard mta/remote/*.c)
PROGS   += mta-send mta-remote
TESTS   += test_vdeliver

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

$(O)/schema_sql.c: $(SCHEMA) tools/embed.sh
	@mkdir -p $(O)
	tools/embed.sh $(SCHEMA) > $@.tmp && mv $@.tmp $@

$(O)/schema_sql.o: $(O)/schema_sql.c
	$(CC) $(CPPFLAGS) $(WARN) $(HARDEN) $(CFLAGS) -c -o $@ $<

$(BINDIR)/vadmin: $(VADMIN_SRC:%.c=$(O)/%.o) $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(BINDIR)/facteur: $(FACTEUR_SRC:%.c=$(O)/%.o) $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(BINDIR)/vdeliver: $(VDELIVER_SRC:%.c=$(O)/%.o) $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(BINDIR)/pop3d: $(POP3D_SRC:%.c=$(O)/%.o) $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(O)/tests/test_pop3d: tests/unit/test_pop3d.c $(POP3D_LIB:%.c=$(O)/%.o) \
		$(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(HARDEN) $(CFLAGS) $(LDSAN) -o $@ $^ $(LIBS)

$(MTA:%=$(BINDIR)/%): $(BINDIR)/%: $(O)/mta/%.o $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(BINDIR)/mta-smtpd: $(SMTPD_SRC:%.c=$(O)/%.o) $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)


$(BINDIR)/mta-send: $(SEND_SRC:%.c=$(O)/%.o) $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

$(BINDIR)/mta-remote: $(REMOTE_SRC:%.c=$(O)/%.o) $(O)/libfacteur.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDSAN) -o $@ $^ $(LIBS)

# mta-remote's modules without main(), for its unit test
TESTS   += test_remote
$(O)/tests/test_remote: tests/unit/test_remote.c \
		$(patsubst %.c,$(O)/%.o,$(filter-out %/remote.c,$(REMOTE_SRC))) \
		$(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Imta/remote $(WARN) $(HARDEN) $(CFLAGS) $(LDSAN) -o $@ $^ $(LIBS)

# mta-send's owner.c and dropseen.c, which need nothing else of it, for
# their unit test
TESTS   += test_send
$(O)/tests/test_send: tests/unit/test_send.c $(O)/mta/send/owner.o \
		$(O)/mta/send/dropseen.o $(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Imta/send $(WARN) $(HARDEN) $(CFLAGS) $(LDSAN) -o $@ $^ $(LIBS)

# mta-smtpd's modules without main(), for its unit test
$(O)/tests/test_smtpd: tests/unit/test_smtpd.c \
		$(patsubst %.c,$(O)/%.o,$(filter-out %/main.c,$(SMTPD_SRC))) \
		$(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Imta/smtpd $(WARN) $(HARDEN) $(CFLAGS) $(LDSAN) -o $@ $^ $(LIBS)

$(VLINKS:%=$(BINDIR)/%): $(BINDIR)/vadmin
	ln -sf vadmin $@

$(O)/tests/%: tests/unit/%.c $(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(HARDEN) $(CFLAGS) $(LDSAN) -o $@ $^ $(LIBS)

unit: $(TESTS:%=$(O)/tests/%) $(TESTS_SMTPD:%=$(O)/tests/%)

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
	$(MAKE) $(BUILD_J) O=build/san BINDIR=build/san/bin SAN=1 all unit
	$(RUNTESTS)

check-slow: deps-test
	$(MAKE) $(BUILD_J) O=build/san BINDIR=build/san/bin SAN=1 all unit
	$(RUNTESTS) --slow

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
# the option scanners: an envelope value is never an option
FUZZ     += fuzz_args
FUZZ     += fuzz_hdrscan fuzz_mdquota
# the queue file reader and the status file parser of mta-send
FUZZ     += fuzz_queue fuzz_qstatus
# the SMTP session, with every parser in it, read from a memfd
FUZZ     += fuzz_smtpd
# mta-remote: SMTP replies, the DATA writer, smtproutes
FUZZ     += fuzz_remote
# mta-smtpd's parsers one at a time: address, base64, command line, DATA
FUZZ_SMTPD = fuzz_smtpd_addr fuzz_smtpd_b64 fuzz_smtpd_line fuzz_smtpd_data
FUZZ     += $(FUZZ_SMTPD)
FUZZCC   ?= clang
FUZZO     = build/fuzz
FUZZTIME ?= 30
FUZZFLAGS = -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZWARN  = $(WARN) -Wno-format-nonliteral

fuzz: $(FUZZ:%=$(FUZZO)/%)

$(FUZZO)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CPPFLAGS) $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZO)/schema_sql.c: $(SCHEMA) tools/embed.sh
	@mkdir -p $(FUZZO)
	tools/embed.sh $(SCHEMA) > $@.tmp && mv $@.tmp $@

$(FUZZO)/schema_sql.o: $(FUZZO)/schema_sql.c
	$(FUZZCC) $(CPPFLAGS) $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZO)/libfacteur.a: $(LIB_SRC:lib/%.c=$(FUZZO)/lib/%.o) $(FUZZO)/schema_sql.o
	rm -f $@ && ar rcs $@ $^

$(FUZZO)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZO)/libfacteur.a
	$(FUZZCC) $(CPPFLAGS) $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

# the POP3 command parser lives in pop3d/proto.c, not in lib/
$(FUZZO)/pop3d/%.o: pop3d/%.c pop3d/pop3d.h $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CPPFLAGS) $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZO)/fuzz_pop3: tests/fuzz/fuzz_pop3.c $(FUZZO)/pop3d/proto.o \
		$(FUZZO)/libfacteur.a
	$(FUZZCC) $(CPPFLAGS) -Ipop3d $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

$(FUZZO)/mta/smtpd/%.o: mta/smtpd/%.c mta/smtpd/smtpd.h $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CPPFLAGS) $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZO)/fuzz_smtpd: tests/fuzz/fuzz_smtpd.c \
		$(patsubst %.c,$(FUZZO)/%.o,$(filter-out %/main.c,$(SMTPD_SRC))) \
		$(FUZZO)/libfacteur.a
	$(FUZZCC) $(CPPFLAGS) -Imta/smtpd $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

$(FUZZ_SMTPD:%=$(FUZZO)/%): $(FUZZO)/%: tests/fuzz/%.c \
		$(patsubst %.c,$(FUZZO)/%.o,$(filter-out %/main.c,$(SMTPD_SRC))) \
		$(FUZZO)/libfacteur.a
	$(FUZZCC) $(CPPFLAGS) -Imta/smtpd $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

$(FUZZO)/mta/remote/%.o: mta/remote/%.c mta/remote/remote.h $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CPPFLAGS) $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer-no-link,address,undefined -c -o $@ $<

$(FUZZO)/fuzz_remote: tests/fuzz/fuzz_remote.c \
		$(patsubst %.c,$(FUZZO)/%.o,$(filter-out %/remote.c,$(REMOTE_SRC))) \
		$(FUZZO)/libfacteur.a
	$(FUZZCC) $(CPPFLAGS) -Imta/remote $(FUZZWARN) $(FUZZFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

fuzz-run: fuzz
	@for f in $(FUZZ); do \
		mkdir -p $(FUZZO)/corpus/$$f && \
		echo "fuzz-run: $$f for $(FUZZTIME) s" && \
		$(FUZZO)/$$f -max_total_time=$(FUZZTIME) -print_final_stats=1 \
			-dict=tests/fuzz/$$f.dict -artifact_prefix=$(FUZZO)/$$f- \
			$(FUZZO)/corpus/$$f || exit 1; \
	done

RUNROOT ?= $(CURDIR)/run-root
run: all
	exec tools/run.sh "$(BINDIR)" "$(RUNROOT)"

bench: all $(O)/bench/cdb_lookup $(O)/bench/relay_decide
	$(PYTHON) bench/run.py --bin $(BINDIR) --obj $(O)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(PROGS:%=$(BINDIR)/%) $(DESTDIR)$(PREFIX)/bin/
	for l in $(VLINKS); do ln -sf vadmin $(DESTDIR)$(PREFIX)/bin/$$l; done

clean:
	rm -rf build bin

.PHONY: all deps deps-test deps-ci unit check check-slow check-ci run bench \
	install clean fuzz fuzz-run

$(O)/bench/%: bench/%.c $(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(HARDEN) $(CFLAGS) -o $@ $^ $(LIBS)

$(O)/bench/relay_decide: bench/relay_decide.c $(O)/mta/smtpd/check.o $(O)/libfacteur.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Imta/smtpd $(WARN) $(HARDEN) $(CFLAGS) -o $@ $^ $(LIBS)
