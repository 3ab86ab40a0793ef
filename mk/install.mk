# make install / uninstall, honouring PREFIX and DESTDIR.
PREFIX ?= /usr/local
INSTALL_FILES := $(PREFIX)/sbin/synfin $(PREFIX)/share/man/man8/synfin.8 \
	$(PREFIX)/share/bash-completion/completions/synfin \
	$(patsubst docs/schema/%,$(PREFIX)/share/synfin/schema/%,$(wildcard docs/schema/*.schema.json)) \
	$(PREFIX)/share/synfin/grafana/synfin-dashboard.json

.PHONY: install uninstall

install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/synfin
	install -D -m 0644 man/synfin.8 $(DESTDIR)$(PREFIX)/share/man/man8/synfin.8
	install -D -m 0644 completion/synfin.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/synfin
	install -d $(DESTDIR)$(PREFIX)/share/synfin/schema
	install -m 0644 docs/schema/*.schema.json $(DESTDIR)$(PREFIX)/share/synfin/schema/
	install -D -m 0644 contrib/grafana/synfin-dashboard.json \
		$(DESTDIR)$(PREFIX)/share/synfin/grafana/synfin-dashboard.json

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALL_FILES))
	-rmdir $(DESTDIR)$(PREFIX)/share/synfin/schema $(DESTDIR)$(PREFIX)/share/synfin/grafana \
		$(DESTDIR)$(PREFIX)/share/synfin 2>/dev/null
