# Sanitizers and fuzzing (issue 5).
#   make check-asan   unit + integration tests with synfin built under ASan + UBSan
#   make fuzz         libFuzzer targets for every parser of untrusted bytes, bounded in time
ASAN_DIR := $(OUTPUT)/asan
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_DIR := $(OUTPUT)/fuzz
FUZZ_SECONDS ?= 20
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Ibpf $(addprefix -I,$(USER_DIRS)) -I$(OUTPUT) -DSYNFIN_VERSION='"fuzz"' \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/bin/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: asan-build check-asan fuzz-build fuzz

asan-build:
	$(Q)$(MAKE) --no-print-directory OUTPUT=$(ASAN_DIR) BIN=$(ASAN_DIR)/synfin \
		CC=clang CFLAGS="$(ASAN_CFLAGS)" $(ASAN_DIR)/synfin unit

check-asan: asan-build
	$(Q)bash tests/run-asan.sh

$(FUZZ_DIR)/bin/%: tests/fuzz/%.c $(CORE_SRCS) $(HEADERS)
	$(Q)mkdir -p $(FUZZ_DIR)/bin
	$(call msg,FUZZ-CC,$@)
	$(Q)clang $(FUZZ_CFLAGS) $< $(CORE_SRCS) -o $@

fuzz-build: $(FUZZ_TARGETS)

fuzz: fuzz-build
	$(Q)bash tests/fuzz/run.sh $(FUZZ_SECONDS)

# The packet parser through BPF_PROG_TEST_RUN (root): not a plain unit test.
BPF_TESTS := $(OUTPUT)/bpftests/test_parser
$(OUTPUT)/bpftests/test_parser: tests/bpf/test_parser.c $(OUTPUT)/wire.skel.h tests/unit/check.h bpf/synfin.h
	$(Q)mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -Itests/unit $< $(LIBS) -o $@

# Inside the VM only: see its comment (QEMU TCG and text patching).
BPF_TESTS += $(OUTPUT)/bpftests/hold-tracepoints
$(OUTPUT)/bpftests/hold-tracepoints: tests/vm/hold-tracepoints.c
	$(Q)mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) $< $(LIBS) -o $@

bpf-tests: $(BPF_TESTS)
.PHONY: bpf-tests
