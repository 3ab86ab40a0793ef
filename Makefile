# synfin — the only build entry point.
#   make            build ./synfin (BPF objects embedded through skeletons)
#   make run        install missing build deps, build, trace (as root)
#   make check      install missing deps, build, run the whole test suite
#   make vmtest     the integration suite in qemu VMs booting Debian's 6.1 and 6.12 kernels
#   make bench      overhead against no tracer, tcpstates and tcplife
#   make vmlinux    regenerate vmlinux/<arch>/vmlinux.h from this kernel's BTF
#   V=1             show full commands
OUTPUT := .output
CLANG ?= clang
CC ?= cc
BPFTOOL ?= bpftool
LLVM_STRIP ?= $(shell command -v llvm-strip || command -v llvm-strip-14 || echo true)
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' -e 's/riscv64/riscv/' -e 's/s390x/s390/')
VMLINUX := vmlinux/$(ARCH)/vmlinux.h
VERSION := 0.1.0

CFLAGS ?= -O2 -g
# user/: main.c and options.c; source/ reads the kernel (load, attach, rings),
# model/ follows connections, enrich/ adds what other kernel views say
# (TIME_WAIT, the wire), sinks/ writes the records out.
USER_DIRS := user user/source user/model user/enrich user/sinks
vpath %.c $(USER_DIRS)
USER_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Ibpf $(addprefix -I,$(USER_DIRS)) -I$(OUTPUT) \
	-DSYNFIN_VERSION='"$(VERSION)"' $(CFLAGS)
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -I$(dir $(VMLINUX)) -Ibpf
LIBS := $(shell pkg-config --libs libbpf 2>/dev/null || echo -lbpf) -lelf -lz

BIN ?= synfin
BPF_APPS := state wire
BPF_OBJS := $(patsubst %,$(OUTPUT)/%.bpf.o,$(BPF_APPS))
SKELS := $(patsubst %,$(OUTPUT)/%.skel.h,$(BPF_APPS))
# Pure user-space parts (no libbpf): unit-tested on their own.
CORE_SRCS := $(addprefix user/model/,tracker.c lifecycle.c index.c names.c bigmem.c rstlog.c holders.c droplog.c) \
	$(addprefix user/enrich/,timewait.c flows.c netnsdiag.c listeners.c) user/source/cpuring.c user/options.c \
	$(addprefix user/sinks/,sink.c outbuf.c output.c output_json.c output_text.c output_ladder.c \
		summary.c metrics_text.c)
CORE_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(notdir $(CORE_SRCS)))
APP_SRCS := user/main.c user/source/loader.c user/source/kfeatures.c user/source/wire.c \
	user/enrich/procscan.c
APP_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(notdir $(APP_SRCS)))
HEADERS := $(wildcard $(addsuffix /*.h,$(USER_DIRS))) bpf/synfin.h
UNIT_TESTS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(wildcard tests/unit/test_*.c))

ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

.DELETE_ON_ERROR:
# Keep the BPF objects: the skeletons are made from them.
.SECONDARY:
.PHONY: all run check deps test-deps unit vmtest vmlinux clean

all: $(BIN)

$(OUTPUT) $(OUTPUT)/tests:
	$(Q)mkdir -p $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) $(VMLINUX) | $(OUTPUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@
	$(Q)$(LLVM_STRIP) -g $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@

$(OUTPUT)/%.o: %.c $(HEADERS) | $(OUTPUT)
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -c $< -o $@

$(APP_OBJS): $(SKELS)

$(BIN): $(APP_OBJS) $(CORE_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(USER_CFLAGS) $^ $(LIBS) -o $@

$(OUTPUT)/tests/%: tests/unit/%.c tests/unit/check.h $(CORE_OBJS) $(HEADERS) | $(OUTPUT)/tests
	$(call msg,CC,$@)
	$(Q)$(CC) $(USER_CFLAGS) -Itests/unit $< $(CORE_OBJS) -o $@

deps:
	$(Q)bash tools/install-deps.sh build

run: deps
	$(Q)$(MAKE) --no-print-directory all
	./synfin $(ARGS)

unit: $(UNIT_TESTS)

test-deps:
	$(Q)bash tools/install-deps.sh test

check: test-deps
	$(Q)$(MAKE) --no-print-directory all unit bpf-tests asan-build fuzz-build bench-build
	$(Q)bash tests/run.sh

# The parser tests and the integration suite inside a VM booting each of Debian's
# kernel series (VM_KERNELS: meta-packages, resolved with apt), or KERNEL=bzImage.
VM_KERNELS ?= linux-image-amd64 linux-image-6.12-amd64
export VM_KERNELS
vmtest: test-deps
	$(Q)$(MAKE) --no-print-directory all bench-build bpf-tests
	$(Q)tests/vm/each-kernel.sh

vmlinux:
	$(Q)mkdir -p $(dir $(VMLINUX))
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $(VMLINUX)

clean:
	rm -rf $(OUTPUT) synfin

# Feature areas add their own targets here (bench, packet layer, ...).
include $(sort $(wildcard mk/*.mk))
