# zsesbir - build, test, benchmark.
#   make test    all tests: SIMD, scalar, no-threads, C++ and -ffast-math builds
#   make asan    the tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench   GEMM benchmark against OpenBLAS (installs libopenblas-dev if root)
#   make bench-zse  ZSE-SBIR speed/memory against PyTorch on this machine
#   make bench-tcn  TCN (ResNet-50 forward, training step) against PyTorch
#   make bench-train  ZSE-SBIR trained on real data, C vs PyTorch: mAP and wall time
#   make bench-tcn-train  TCN trained on real data, C vs PyTorch: mAP/P@100 real and hashed, wall time
#   make demo    the end-to-end demo
#   make parity  ZSE-SBIR and the TCN ResNet-50 at full size against PyTorch
#   make fuzz    libFuzzer on every file loader, FUZZ_SECONDS (60) per target (needs clang)

CC      ?= cc
CXX     ?= c++
WARN    := -Wall -Wextra -Werror
# AVX2+FMA when this CPU has them (x86-64), plus AVX-512 (the x86-64-v4 set
# F/DQ/BW/VL: the SGEMM micro-kernel and dropout masks use F and DQ; clang 14
# crashes on -mavx512f without BW/VL) when it has those too; NEON is on by
# default on aarch64.
SIMD    ?= $(shell f=/proc/cpuinfo; grep -qw avx2 $$f 2>/dev/null && grep -qw fma $$f && echo "-mavx2 -mfma" && \
             grep -qw avx512f $$f && grep -qw avx512dq $$f && grep -qw avx512bw $$f && grep -qw avx512vl $$f && \
             echo "-mavx512f -mavx512dq -mavx512bw -mavx512vl")
OPT     ?= -O2
CFLAGS  ?= $(OPT) $(SIMD)
LDLIBS  := -lm -lpthread
B       := build

TESTS   := $(patsubst tests/%.c,%,$(wildcard tests/test_*.c))
HDR     := zsesbir.h $(wildcard dev/*.h) $(wildcard tests/*.h)

.PHONY: all test asan bench bench-zse bench-tcn bench-train bench-tcn-train openblas demo parity deps fuzz clean

all: zsesbir $(B)/demo

zsesbir: examples/zsesbir.c $(HDR)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -I. $< -o $@ $(LDLIBS)

$(B)/demo: examples/demo.c $(HDR) | $(B)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -I. $< -o $@ $(LDLIBS)

# the README's main command; DATA=<sketchy root> runs it on real data
demo: deps zsesbir $(B)/demo
	@DATA="$(DATA)" sh tools/demo.sh

$(B):
	@mkdir -p $(B)

# -- test builds: one binary per test file and configuration ----------------
$(B)/%: tests/%.c $(HDR) | $(B)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -I. $< -o $@ $(LDLIBS)
$(B)/nosimd/%: tests/%.c $(HDR) | $(B)
	@mkdir -p $(B)/nosimd
	$(CC) -std=c99 $(OPT) -DZSESBIR_NO_SIMD $(WARN) -I. $< -o $@ $(LDLIBS)
# the no-threads build also leaves stb_image out (ZT_NO_STB), so the
# PPM-only image path stays tested on machines that have libstb-dev, and
# keeps the AVX2 GEMM micro-kernel on AVX-512 machines (ZSESBIR_NO_AVX512)
$(B)/nothreads/%: tests/%.c $(HDR) | $(B)
	@mkdir -p $(B)/nothreads
	$(CC) -std=c99 $(CFLAGS) -DZSESBIR_NO_THREADS -DZT_NO_STB -DZSESBIR_NO_AVX512 $(WARN) -I. $< -o $@ -lm
$(B)/cpp/%: tests/%.c $(HDR) | $(B)
	@mkdir -p $(B)/cpp
	$(CXX) -x c++ -std=c++11 $(CFLAGS) $(WARN) -I. $< -o $@ $(LDLIBS)
$(B)/fastmath/%: tests/%.c $(HDR) | $(B)
	@mkdir -p $(B)/fastmath
	$(CC) -std=c99 $(CFLAGS) -ffast-math $(WARN) -I. $< -o $@ $(LDLIBS)
$(B)/asan/%: tests/%.c $(HDR) | $(B)
	@mkdir -p $(B)/asan
	$(CC) -std=c99 -O1 -g $(SIMD) -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer $(WARN) -I. $< -o $@ $(LDLIBS)

TEST_BINS := $(addprefix $(B)/,$(TESTS)) $(addprefix $(B)/nosimd/,$(TESTS)) \
             $(addprefix $(B)/nothreads/,$(TESTS)) $(addprefix $(B)/cpp/,$(TESTS)) \
             $(addprefix $(B)/fastmath/,$(TESTS))

test: zsesbir $(TEST_BINS)
	@sh tests/run.sh $(foreach t,$(TESTS),simd:$(B)/$(t)) \
	    $(foreach t,$(TESTS),scalar:$(B)/nosimd/$(t)) \
	    $(foreach t,$(TESTS),nothreads:$(B)/nothreads/$(t)) \
	    $(foreach t,$(TESTS),c++:$(B)/cpp/$(t)) \
	    $(foreach t,$(TESTS),fastmath:$(B)/fastmath/$(t))

# the CLI under the sanitizers too (tests/test_cli.c runs it via ZSESBIR_CLI)
$(B)/asan/zsesbir: examples/zsesbir.c $(HDR) | $(B)
	@mkdir -p $(B)/asan
	$(CC) -std=c99 -O1 -g $(SIMD) -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer $(WARN) -I. $< -o $@ $(LDLIBS)

asan: $(B)/asan/zsesbir $(addprefix $(B)/asan/,$(TESTS))
	@ZSESBIR_CLI=$(B)/asan/zsesbir ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    sh tests/run.sh $(foreach t,$(TESTS),asan:$(B)/asan/$(t))

# -- benchmark ---------------------------------------------------------------
# OpenBLAS for the reference column (Debian puts cblas.h in a subdirectory)
CBLAS_GLOB = /usr/include/cblas.h /usr/include/*/cblas.h /usr/include/*/*/cblas.h
# PyTorch (Debian's python3-torch) also takes its GEMMs from libblas.so.3: without
# OpenBLAS that is the reference BLAS and the PyTorch columns would be ~10x too slow.
openblas:
	@if [ -z "$$(ls $(CBLAS_GLOB) 2>/dev/null)" ] && [ "$$(id -u)" = 0 ]; then \
	    echo "installing libopenblas-dev for the reference columns"; \
	    apt-get install -y -qq libopenblas-dev >/dev/null 2>&1 || echo "could not install libopenblas-dev: benchmarking without it"; fi

bench: openblas | $(B)
	@h=$$(ls $(CBLAS_GLOB) 2>/dev/null | head -n 1); \
	if [ -n "$$h" ]; then \
	    echo "OpenBLAS header: $$h"; \
	    $(CC) -std=c99 -O3 $(SIMD) $(WARN) -DZS_BENCH_OPENBLAS -I. -I$$(dirname $$h) tools/bench_gemm.c -o $(B)/bench_gemm -lopenblas $(LDLIBS); \
	else echo "no OpenBLAS: zsesbir column only"; $(CC) -std=c99 -O3 $(SIMD) $(WARN) -I. tools/bench_gemm.c -o $(B)/bench_gemm $(LDLIBS); fi
	$(B)/bench_gemm

$(B)/bench_zse: tools/bench_zse.c $(HDR) | $(B)
	$(CC) -std=c99 -O3 $(SIMD) $(WARN) -I. $< -o $@ $(LDLIBS)

bench-zse: openblas $(B)/bench_zse
	sh tools/bench_zse.sh

$(B)/tcn_bench: tools/tcn_bench.c $(HDR) | $(B)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -I. $< -o $@ $(LDLIBS)

bench-tcn: openblas $(B)/tcn_bench
	B=$(B) sh tools/bench_tcn.sh

# real-data training, C vs the PyTorch reference (~20 min; STEPS, SEEDS, ... see the script)
bench-train: openblas deps zsesbir | $(B)
	@cp zsesbir $(B)/zsesbir_bench
	ZS=$(B)/zsesbir_bench OUT=$(B)/bench_train bash tools/bench_train.sh

# real-data TCN training (ResNet-18, D 64, 112 px, no augmentation), C vs the PyTorch
# reference (tools/tcn_train_ref.py) from the same weights on the same pairs; ~25 min a
# seed on one core (STEPS, SEEDS, THREADS, PIN, ... see the script)
bench-tcn-train: openblas deps zsesbir | $(B)
	@cp zsesbir $(B)/zsesbir_tcn_bench
	ZS=$(B)/zsesbir_tcn_bench OUT=$(B)/bench_tcn_train bash tools/bench_tcn_train.sh

# -- fuzzing: libFuzzer on every file loader (needs clang), FUZZ_SECONDS per target
fuzz:
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) sh tools/fuzz.sh

# tests/test_fuzz_regress.c replays tests/fuzz/regress/ through the harnesses it includes
FUZZ_HARNESS := $(wildcard tests/fuzz/*.c tests/fuzz/*.h)
$(foreach d,/ /nosimd/ /nothreads/ /cpp/ /fastmath/ /asan/,$(B)$(d)test_fuzz_regress): $(FUZZ_HARNESS)

# -- full-size parity with the PyTorch reference (needs python3-torch) ------
$(B)/parity_zse: tools/parity_zse.c $(HDR) | $(B)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -I. $< -o $@ $(LDLIBS)

parity: $(B)/parity_zse $(B)/tcn_bench
	@/usr/bin/python3 -c "import torch, numpy" 2>/dev/null || { \
	    echo "make parity needs PyTorch: apt-get install -y python3-torch python3-numpy"; exit 1; }
	@[ -f $(B)/parity_full.safetensors ] || /usr/bin/python3 tools/zsesbir_ref.py --parity $(B)/parity_full.safetensors
	$(B)/parity_zse $(B)/parity_full.safetensors
	@[ -f $(B)/tcn_full/resnet50_io.safetensors ] || /usr/bin/python3 tools/tcn_ref.py --full $(B)/tcn_full
	$(B)/tcn_bench --parity $(B)/tcn_full

# optional stb_image (PNG/JPEG) support: install libstb-dev when root, else report
deps:
	@if [ -f /usr/include/stb/stb_image.h ] || [ -f /usr/include/stb_image.h ]; then echo "libstb-dev: present"; \
	elif [ "$$(id -u)" = 0 ]; then echo "installing libstb-dev"; \
	    (apt-get install -y -qq libstb-dev >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libstb-dev >/dev/null 2>&1)) \
	    && echo "libstb-dev: installed" || echo "libstb-dev: could not install; PNG/JPEG tests will be skipped"; \
	else echo "libstb-dev missing (apt-get install libstb-dev): PNG/JPEG tests will be skipped"; fi

clean:
	rm -rf $(B) zsesbir
