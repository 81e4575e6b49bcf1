# minicdn -- top-level build.  `make` builds, `make run` starts a CDN on loopback,
# `make test` runs every test (unit, integration, multi-node, sanitizers).
#
# Layout: each program's sources live in its folder; every file except main.c goes
# into a static library so unit tests link exactly the objects the daemons use.
#   common/*.c        -> libcommon.a            (shared by everything)
#   dns/*.c           -> libdns.a    + minicdn-dns
#   edge/*.c          -> libedge.a   + minicdn-edge
#   origin/*.c        -> liborigin.a + minicdn-origin
#   origin/ctl/*.c    -> libctl.a    + minicdnctl
#   tests/tools/*.c, scripts/testbed/*.c -> one helper program each (test origin, WAN emulator)
#
# SAN=1 builds into build/asan with -fsanitize=address,undefined.

CC      ?= gcc
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build/asan
OPT      = -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
OPT     ?= -O2
endif

PKGS    := ldns libmicrohttpd lmdb lua5.4 libcurl libsodium libconfig libmaxminddb jansson zlib libsystemd
# cmocka is only needed by the unit tests: package builds (make deb) do without it.
DEPS_OK := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)

CFLAGS  += -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -Wshadow -Wno-unused-parameter \
           -Wstrict-prototypes -Wmissing-prototypes -fno-strict-aliasing -pthread -MMD -MP -I.
ifeq ($(DEPS_OK),yes)
CFLAGS  += $(shell pkg-config --cflags $(PKGS))
# Lua from Debian's static archive (liblua5.4-dev): calls into the API and
# between its own exported functions then skip the PLT (-1.7 % instructions
# per edge script request, callgrind).
LDLIBS  += $(patsubst -llua5.4,-l:liblua5.4.a,$(shell pkg-config --libs $(PKGS))) -lm -ldl -lpthread
TESTLIBS = $(shell pkg-config --libs cmocka 2>/dev/null)
endif
LDFLAGS += -pthread -Wl,--as-needed $(filter -fsanitize=%,$(OPT))

COMMON_SRC := $(wildcard common/*.c)
DNS_SRC    := $(filter-out dns/main.c,$(wildcard dns/*.c))
EDGE_SRC   := $(filter-out edge/main.c,$(wildcard edge/*.c edge/*/*.c))
ORIGIN_SRC := $(filter-out origin/main.c,$(wildcard origin/*.c))
CTL_SRC    := $(filter-out origin/ctl/main.c,$(wildcard origin/ctl/*.c))
TOOL_SRC   := $(wildcard tests/tools/*.c scripts/testbed/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBCOMMON := $(BUILD)/lib/libcommon.a
LIBDNS    := $(BUILD)/lib/libdns.a
LIBEDGE   := $(BUILD)/lib/libedge.a
LIBORIGIN := $(BUILD)/lib/liborigin.a
LIBCTL    := $(BUILD)/lib/libctl.a

BINS  := $(BUILD)/bin/minicdn-dns $(BUILD)/bin/minicdn-edge $(BUILD)/bin/minicdn-origin $(BUILD)/bin/minicdnctl
TOOLS := $(patsubst %.c,$(BUILD)/bin/%,$(notdir $(TOOL_SRC)))

# Unit tests: tests/unit/<lib>/test_*.c link with lib<lib>.a and libcommon.a.
UNIT_SRC  := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))

.PHONY: all deps run test test-deploy test-unit test-integration test-netns test-san bench bench-dns bench-edge bench-lua fuzz soak testbed clean
all: deps
	@$(MAKE) --no-print-directory build-all

.PHONY: build-all programs
build-all: $(BINS) $(TOOLS) $(UNIT_BINS)
# The four programs alone (what packages ship): no test tools, no cmocka.
programs: $(BINS)

deps:
	@scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIBCOMMON): $(call obj,$(COMMON_SRC))
$(LIBDNS):    $(call obj,$(DNS_SRC))
$(LIBEDGE):   $(call obj,$(EDGE_SRC))
$(LIBORIGIN): $(call obj,$(ORIGIN_SRC))
$(LIBCTL):    $(call obj,$(CTL_SRC))
$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/bin/minicdn-dns:    $(call obj,dns/main.c)        $(LIBDNS)    $(LIBCOMMON)
$(BUILD)/bin/minicdn-edge:   $(call obj,edge/main.c)       $(LIBEDGE)   $(LIBCOMMON)
$(BUILD)/bin/minicdn-origin: $(call obj,origin/main.c)     $(LIBORIGIN) $(LIBCOMMON)
$(BUILD)/bin/minicdnctl:     $(call obj,origin/ctl/main.c) $(LIBCTL)    $(LIBCOMMON)
$(BINS):
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

define tool_rule
$(BUILD)/bin/$(notdir $(basename $(1))): $(call obj,$(1)) $(LIBCOMMON)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(TOOL_SRC),$(eval $(call tool_rule,$(t))))

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(BUILD)/lib/lib$(firstword $(subst /, ,$*)).a $(LIBCOMMON) $(LDLIBS) $(TESTLIBS)
$(foreach u,$(UNIT_BINS),$(eval $(u): $(BUILD)/lib/lib$(word 3,$(subst /, ,$(u:$(BUILD)/%=%))).a $(LIBCOMMON)))

# The whole CDN on loopback, in the foreground (Ctrl-C stops it).
run: all
	@scripts/run-local

# Every test: unit, integration and multi-node on the normal build, then unit and
# integration again on the sanitizer build.  Ends with "N passed, N failed".
test: all
	@scripts/install-deps.sh --deb --deploy
	@$(MAKE) --no-print-directory SAN=1 build-all
	@tests/run.sh

# The Ansible deployment on six booted containers (root): builds the packages,
# builds or reuses the image in /var/cache/minicdn-test, runs deploy/ansible.
test-deploy: all
	@scripts/install-deps.sh --deb --deploy
	@tests/deploy/static.sh
	@tests/deploy/run.sh

bench: bench-dns bench-edge bench-lua
bench-dns bench-edge bench-lua: all
	@scripts/install-deps.sh --bench
	@scripts/bench/$(@:bench-%=%).sh

# Every libFuzzer target for FUZZ_SECONDS each (make test runs them briefly).
FUZZ_SECONDS ?= 60
fuzz: deps
	@tests/fuzz/run.sh $(FUZZ_SECONDS)
	@tests/fuzz/targets.sh $(FUZZ_SECONDS)

# Mixed load, chaos and a byte-for-byte check (not part of make test):
# SOAK_MINUTES (10), SOAK_RSS_MB; SAN=1 soaks the sanitizer build.
soak: all
	@MINICDN_BIN=$(CURDIR)/$(BUILD)/bin scripts/soak/soak.py

testbed: all
	@scripts/testbed/testbed up

clean:
	rm -rf build

include deploy/install.mk

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
