# lienthong — build, test, install.
#
#   make            all binaries under build/ (-O2, warnings are errors)
#   make deps       install missing build and test dependencies (apt-get, as root)
#   make check      lint, unit + system tests, then the same suite under ASan+UBSan
#   make demo       run the daemon's main job against the simulator, print status
#   make bench      every benchmark; make bench-FLOW for one
#   make lint       clang-format --dry-run, cppcheck, systemd-analyze verify
#   make install    DESTDIR=... PREFIX=/usr/local
#
# SAN=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer into build-san/.

VERSION   := 0.1.0
PREFIX    ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR   ?= /lib/systemd/system
DESTDIR   ?=

PKGS      := libcurl jansson libxml-2.0 openssl libsystemd zlib sqlite3 inih libutf8proc
SIM_PKGS  := libmicrohttpd jansson openssl libsystemd

ifeq ($(SAN),1)
BUILD     ?= build-san
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT       := -O1 -g
else
BUILD     ?= build
SANFLAGS  :=
OPT       := -O2 -g
endif

CC        ?= cc
# Builds run one compiler per CPU (check, demo); the tests themselves run one
# at a time (several of them measure how long things take).
NPROC     := $(shell nproc 2>/dev/null || echo 2)
CFLAGS    ?= $(OPT)
WARN      := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CPPFLAGS  += -D_GNU_SOURCE -DLT_VERSION=\"$(VERSION)\" -Idaemon -Iconnectors
ALL_CFLAGS = $(WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
SIM_CFLAGS := $(shell pkg-config --cflags $(SIM_PKGS) 2>/dev/null)
SIM_LIBS   := $(shell pkg-config --libs $(SIM_PKGS) 2>/dev/null)
LDLIBS_D   := $(PKG_LIBS) -ldl -lm -lpthread

# Everything of the daemon except main.c goes into one archive that unit tests
# link against (the chrony way: tests see the real modules, not mocks).
DAEMON_SRCS := $(filter-out daemon/main.c,$(wildcard daemon/*.c)) $(wildcard connectors/*.c)
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/obj/%.o)
CTL_SRCS    := tools/lienthongctl.c
SIM_SRCS    := $(wildcard tools/sim/*.c)
SIM_OBJS    := $(SIM_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
PLUGIN_SRCS := $(wildcard tests/plugins/*.c)
PLUGIN_SOS  := $(PLUGIN_SRCS:tests/plugins/%.c=$(BUILD)/tests/plugins/%.so)
HELPER_SRCS := $(wildcard tests/helpers/*.c)
HELPER_BINS := $(HELPER_SRCS:tests/helpers/%.c=$(BUILD)/tests/helpers/%)

BINS := $(BUILD)/lienthongd $(BUILD)/lienthongctl $(BUILD)/lienthong-sim

.PHONY: all deps check check-fast check-san unit system demo bench bench-deps lint install clean tests
all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(ALL_CFLAGS) -fPIC -c -o $@ $<

$(BUILD)/obj/tools/sim/%.o: tools/sim/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(SIM_CFLAGS) $(ALL_CFLAGS) -Itools/sim -c -o $@ $<

$(BUILD)/liblienthong.a: $(DAEMON_OBJS)
	@rm -f $@
	ar rcs $@ $^

# -rdynamic: out-of-tree connectors loaded with dlopen call back into the core.
$(BUILD)/lienthongd: $(BUILD)/obj/daemon/main.o $(BUILD)/liblienthong.a
	$(CC) $(ALL_CFLAGS) -rdynamic -o $@ $(BUILD)/obj/daemon/main.o -Wl,--whole-archive $(BUILD)/liblienthong.a -Wl,--no-whole-archive $(LDLIBS_D)

$(BUILD)/lienthongctl: $(BUILD)/obj/tools/lienthongctl.o $(BUILD)/liblienthong.a
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/liblienthong.a $(LDLIBS_D)

# The simulator reads and writes JSON with the daemon's jsontext (and what it
# needs): at thousands of dossier changes a second jansson's own reader and
# writer made the simulator compete with the daemon for the CPU.
SIM_DAEMON_OBJS := $(addprefix $(BUILD)/obj/daemon/,jsontext.o util.o log.o)

$(BUILD)/lienthong-sim: $(SIM_OBJS) $(SIM_DAEMON_OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(SIM_LIBS) -lm -lpthread

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(BUILD)/liblienthong.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(ALL_CFLAGS) -Itests/unit -rdynamic -o $@ $< -Wl,--whole-archive $(BUILD)/liblienthong.a -Wl,--no-whole-archive $(LDLIBS_D)

$(BUILD)/tests/plugins/%.so: tests/plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(ALL_CFLAGS) -fPIC -shared -o $@ $<

$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $<

tests: $(BINS) $(UNIT_BINS) $(PLUGIN_SOS) $(HELPER_BINS)

# ---- dependencies -------------------------------------------------------
deps:
	@sh tools/deps.sh

# ---- tests --------------------------------------------------------------
# check-fast: one pass with the optimised build. check: that, then ASan+UBSan.
check-fast: deps
	@$(MAKE) -j$(NPROC) --no-print-directory tests
	@BUILD=$(BUILD) sh tests/run

check: deps
	@$(MAKE) -j$(NPROC) --no-print-directory tests
	@$(MAKE) --no-print-directory lint
	@BUILD=$(BUILD) sh tests/run
	@$(MAKE) -j$(NPROC) --no-print-directory SAN=1 tests
	@BUILD=build-san SAN=1 sh tests/run

unit: tests
	@BUILD=$(BUILD) sh tests/run unit

system: tests
	@BUILD=$(BUILD) sh tests/run system

# ---- demo and benchmarks ------------------------------------------------
demo: deps
	@$(MAKE) -j$(NPROC) --no-print-directory all
	@BUILD=$(BUILD) sh tools/demo.sh

bench-deps:
	@sh tools/deps.sh bench

bench: deps bench-deps all
	@for b in bench/bench-*.sh; do BUILD=$(BUILD) sh $$b || exit 1; done

bench-%: deps bench-deps all
	@BUILD=$(BUILD) sh bench/bench-$*.sh

# ---- lint ---------------------------------------------------------------
LINT_SRCS = $(wildcard daemon/*.[ch] connectors/*.[ch] tools/*.c tools/sim/*.[ch] tests/unit/*.[ch] tests/plugins/*.c tests/helpers/*.c bench/*.c)
# The unit file is verified on a copy pointing at build/lienthongd (verify
# insists that ExecStart exists), with its exposure score checked too.
lint: all
	clang-format --dry-run --Werror $(LINT_SRCS)
	cppcheck -j$(NPROC) --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	  --suppress=missingIncludeSystem --inline-suppr -D_GNU_SOURCE -DLT_VERSION=\"$(VERSION)\" \
	  -Idaemon -Itools/sim $(filter %.c,$(LINT_SRCS))
	BUILD=$(BUILD) sh tests/system/test_unit.sh

# ---- install ------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(SYSCONFDIR)/lienthong/mappings $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/lib/lienthong/connectors
	install -m 0755 $(BUILD)/lienthongd $(DESTDIR)$(PREFIX)/sbin/lienthongd
	install -m 0755 $(BUILD)/lienthongctl $(DESTDIR)$(PREFIX)/bin/lienthongctl
	install -m 0755 $(BUILD)/lienthong-sim $(DESTDIR)$(PREFIX)/bin/lienthong-sim
	@# An existing configuration is the operator's: never overwritten.
	[ -e $(DESTDIR)$(SYSCONFDIR)/lienthong/lienthong.conf ] || \
	  install -m 0640 etc/lienthong.conf $(DESTDIR)$(SYSCONFDIR)/lienthong/lienthong.conf
	@# Mappings: the shipped set always in share/ (to compare with), the
	@# site's set in /etc only where a file is absent (sites fix mappings).
	install -d $(DESTDIR)$(PREFIX)/share/lienthong/mappings
	for f in mappings/*.json; do \
	  install -m 0644 "$$f" $(DESTDIR)$(PREFIX)/share/lienthong/mappings/; \
	  [ -e $(DESTDIR)$(SYSCONFDIR)/lienthong/mappings/$${f#mappings/} ] || \
	    install -m 0644 "$$f" $(DESTDIR)$(SYSCONFDIR)/lienthong/mappings/; \
	done
	sed 's|/usr/local/sbin/|$(PREFIX)/sbin/|g; s|/usr/local/lib/|$(PREFIX)/lib/|g' systemd/lienthong.service > $(DESTDIR)$(UNITDIR)/lienthong.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/lienthong.service
	install -m 0644 docs/man/lienthongd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 docs/man/lienthongctl.1 docs/man/lienthong-sim.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/man/lienthong.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -D -m 0644 systemd/lienthong.sysusers $(DESTDIR)/usr/lib/sysusers.d/lienthong.conf
	install -D -m 0644 systemd/lienthong.tmpfiles $(DESTDIR)/usr/lib/tmpfiles.d/lienthong.conf
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
	  systemd-sysusers lienthong.conf && systemd-tmpfiles --create lienthong.conf; fi

# The example configuration is generated from the option tables; a unit
# test fails when the committed copy is stale.
etc/lienthong.conf: $(BUILD)/lienthongd
	$(BUILD)/lienthongd --print-config-template > $@

clean:
	rm -rf build build-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
