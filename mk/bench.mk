# Overhead measurements (issue 6).
#   make bench          loopback connection storm without and with each tracer, interleaved
#                       rounds, medians, in a fresh namespace, one with its TIME_WAIT table full
#                       and one holding 100,000 TIME_WAIT sockets, then a SYN flood nftables drops
#                       (BENCH_STORM_SYNS, default 100000); a Markdown table for each on
#                       stdout, JSON in .output/bench/results.json. BENCH_ROUNDS=N (default 5),
#                       BENCH_CONNS=N (default 40000), BENCH_CONDITIONS=fresh,full,tw100k change it
#                       (an A/B of a change: python3 bench/bench.py --compare OTHER/synfin
#                       --tracers synfin_json,cmp_json, the rows of the two builds only)
#   make bench-smoke    a few hundred connections, one round, fresh and full-table namespaces,
#                       baseline + synfin --json and --life --json only (< 30 s)
#   The "floor" row is an empty program on sock:inet_sock_set_state: the hook's own price,
#   under which no tracer of that tracepoint can go.
BENCH_DIR := $(OUTPUT)/bench
BENCH_ROUNDS ?= 5
BENCH_CONNS ?= 40000
BENCH_BINS := $(BENCH_DIR)/loadgen $(BENCH_DIR)/synstorm $(BENCH_DIR)/micro $(BENCH_DIR)/floor \
	$(BENCH_DIR)/floor.bpf.o

.PHONY: bench bench-smoke bench-build

$(BENCH_DIR):
	$(Q)mkdir -p $@

$(BENCH_DIR)/loadgen: bench/loadgen.c | $(BENCH_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< -pthread -o $@

$(BENCH_DIR)/synstorm: bench/synstorm.c | $(BENCH_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< -o $@

$(BENCH_DIR)/micro: bench/micro.c $(CORE_OBJS) $(HEADERS) | $(BENCH_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< $(CORE_OBJS) -o $@

# The "floor" row: an empty program on the state tracepoint (bench/floor.bpf.c).
$(BENCH_DIR)/floor.bpf.o: bench/floor.bpf.c $(VMLINUX) | $(BENCH_DIR)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BENCH_DIR)/floor: bench/floor.c | $(BENCH_DIR)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< $(LIBS) -o $@

bench-build: $(BIN) $(BENCH_BINS)

bench: bench-build
	$(Q)python3 bench/bench.py --synfin ./$(BIN) --rounds $(BENCH_ROUNDS) --conns $(BENCH_CONNS) \
		--out $(BENCH_DIR)/results.json

bench-smoke: bench-build
	$(Q)python3 bench/bench.py --synfin ./$(BIN) --smoke --out $(BENCH_DIR)/smoke.json
