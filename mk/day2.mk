# Dashboards and day-two use (issue 7): the Prometheus endpoint.
#
# user/sinks/metrics.c calls libmicrohttpd, so it is linked into ./synfin and into
# its own unit test only: kept out of CORE_SRCS, whose objects every other
# unit test, the fuzz targets and the micro-benchmark link without that library.
#   make metrics-check   the unit test of the exposition, checked by promtool when installed
METRICS_OBJ := $(OUTPUT)/metrics.o
METRICS_LIBS := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd) -lpthread

# An extra prerequisite lands in the link's $^; LIBS is expanded when the recipe runs.
$(BIN): $(METRICS_OBJ)
LIBS += $(METRICS_LIBS)

# An explicit rule wins over the generic tests/unit pattern, which links CORE_OBJS only.
$(OUTPUT)/tests/test_metrics: tests/unit/test_metrics.c tests/unit/check.h $(CORE_OBJS) \
		$(METRICS_OBJ) $(HEADERS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -Itests/unit $< $(CORE_OBJS) $(METRICS_OBJ) $(METRICS_LIBS) -o $@

.PHONY: metrics-check
metrics-check: $(OUTPUT)/tests/test_metrics
	$(Q)$<
