# install.mk -- `make install`, `make man` and `make deb` (included by the Makefile).
#
# Layout under $(DESTDIR)$(PREFIX) (PREFIX defaults to /usr/local):
#   sbin/minicdn-dns, sbin/minicdn-edge, sbin/minicdn-origin   the daemons (started by systemd)
#   bin/minicdnctl                                             the operator's command
#   share/man/man8/minicdn-*.8, share/man/man1/minicdnctl.1    generated from --help (help2man)
#   lib/systemd/system/minicdn-*.service                       units (ExecStart follows SBINDIR)
#   lib/sysusers.d/minicdn.conf                                the minicdn system user
#   share/doc/minicdn/examples/                                example configs (never /etc/minicdn:
#                                                              that belongs to the operator or Ansible)
#   $(SYSCONFDIR)/logrotate.d/minicdn-edge                     access log rotation (SIGHUP reopens)
# State lives in /var/lib/minicdn and logs in /var/log/minicdn; the units create both
# (StateDirectory=, LogsDirectory=), so nothing is installed there.

PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/minicdn
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR  ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
INSTALL     ?= install

DAEMONS  := minicdn-dns minicdn-edge minicdn-origin
MANPAGES := $(patsubst %,$(BUILD)/man/man8/%.8,$(DAEMONS)) $(BUILD)/man/man1/minicdnctl.1
UNITS    := $(patsubst %,deploy/systemd/%.service,$(DAEMONS))
EXAMPLES := $(wildcard deploy/examples/*)

.PHONY: man install install-programs install-man install-systemd install-examples deb deb-deps

# help2man turns --help and --version into a manual page; the configuration
# reference printed by --help comes from each program's key table.
$(BUILD)/man/man8/%.8: $(BUILD)/bin/%
	@mkdir -p $(dir $@)
	help2man --no-info --section=8 --no-discard-stderr --source=minicdn \
		--name="$$($< --help | sed -n '1s/^[^ ]* [^ ]* -- //p')" --output=$@ $<
$(BUILD)/man/man1/%.1: $(BUILD)/bin/%
	@mkdir -p $(dir $@)
	help2man --no-info --section=1 --no-discard-stderr --source=minicdn \
		--name="$$($< --help | sed -n '1s/^[^ ]* [^ ]* -- //p')" --output=$@ $<
man: $(MANPAGES)

install: install-programs install-man install-systemd install-examples

install-programs: $(BINS)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 755 $(patsubst %,$(BUILD)/bin/%,$(DAEMONS)) $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -m 755 $(BUILD)/bin/minicdnctl $(DESTDIR)$(BINDIR)/

install-man: $(MANPAGES)
	$(INSTALL) -d $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 644 $(filter %.8,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 644 $(filter %.1,$(MANPAGES)) $(DESTDIR)$(MANDIR)/man1/

# Units name /usr/sbin in ExecStart; another SBINDIR is substituted on the way.
install-systemd: $(UNITS) deploy/systemd/minicdn.sysusers deploy/systemd/minicdn-edge.logrotate
	$(INSTALL) -d $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	for u in $(UNITS); do \
		sed 's|/usr/sbin/|$(SBINDIR)/|g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/} && \
		chmod 644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	$(INSTALL) -m 644 deploy/systemd/minicdn.sysusers $(DESTDIR)$(SYSUSERSDIR)/minicdn.conf
	$(INSTALL) -m 644 deploy/systemd/minicdn-edge.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/minicdn-edge

install-examples: $(EXAMPLES)
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 644 $(EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/

# ---------- Debian packages ----------
# The packaging lives in deploy/debian (the top-level folders are fixed); `make deb`
# copies the sources (no build/, run/ or .git) into build/deb/minicdn-VERSION, puts
# deploy/debian there as debian/, builds binary packages with dpkg-buildpackage and
# runs lintian on the .debs and the .changes.  Results: build/deb/*.deb.
DEB_VERSION := $(shell dpkg-parsechangelog -l deploy/debian/changelog -S Version 2>/dev/null)
DEB_STAGE   := build/deb/minicdn-$(DEB_VERSION)

deb-deps:
	@scripts/install-deps.sh --deb

deb: deb-deps
	rm -rf build/deb
	mkdir -p $(DEB_STAGE)
	tar --exclude=./build --exclude=./run --exclude=./.git --exclude=./deploy/debian -cf - . \
		| tar -xf - -C $(DEB_STAGE)
	cp -r deploy/debian $(DEB_STAGE)/debian
	cd $(DEB_STAGE) && dpkg-buildpackage -b -us -uc -j2
	lintian --fail-on error,warning build/deb/*.changes
	@ls -1 build/deb/*.deb
