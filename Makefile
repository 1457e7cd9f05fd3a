# The front door: `make run` builds and runs the program, `make test` builds and runs
# the test suite. Both install the Debian packages they need first.
#
#   make run | test | test-asan | test-valgrind | install | fixtures | clean
#   variables: BUILD (build dir), WERROR=ON, CMAKE_FLAGS="...", PREFIX, DESTDIR, RUN_PROMPT
BUILD ?= build
WERROR ?= OFF
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
# no "make[1]: Entering directory" lines from the makes that cmake --build runs
MAKEFLAGS += --no-print-directory

.PHONY: all deps build run test test-asan test-valgrind install fixtures clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DBITNET_WERROR=$(WERROR) \
	      -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# The main job: the model that ships with the project (models/tiny-en.gguf, a BitNet
# b1.58 model this program trained on Jane Austen and the World English Bible; see
# docs/TRAINING.md) continues a prompt, greedy (with a light repetition penalty: a model
# this small loops without one) and then sampled, with tokens/s on stderr.
RUN_PROMPT ?= Elizabeth looked at her sister, and said
run: build
	./$(BUILD)/bitnet info --system
	./$(BUILD)/bitnet generate -p "$(RUN_PROMPT)" -n 64 --temp 0 --repeat-penalty 1.15
	./$(BUILD)/bitnet generate -p "$(RUN_PROMPT)" -n 64 --temp 0.8 --seed 1

# the output of failing tests, then each skipped test with its reason
test: build
	@./scripts/run-tests.sh $(BUILD) -j$(JOBS)

test-asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DBITNET_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"

test-valgrind: build
	./scripts/valgrind-tests.sh $(BUILD)

install: build
	cmake --install $(BUILD)

# The references pinned to one code path (regenerate.sh says why): the same bytes on
# every x86 host.
fixtures: build
	./scripts/install-deps.sh --fixtures
	./scripts/fixtures/regenerate.sh $(BUILD)/bitnet

clean:
	rm -rf build build-asan
