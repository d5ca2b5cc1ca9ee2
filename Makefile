# Front door: `make` builds build/domainmon, `make run` runs it, `make test` tests it all.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)

.PHONY: all build deps run test unit asan integration format format-check fuzz bench clean \
        readme-config

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS) -- --no-print-directory

$(BUILD_ASAN)/CMakeCache.txt:
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DDM_SANITIZE=ON >/dev/null

asan-build: $(BUILD_ASAN)/CMakeCache.txt
	@cmake --build $(BUILD_ASAN) -j $(JOBS) -- --no-print-directory

run: deps build
	./$(BUILD)/domainmon all

test: deps
	@$(MAKE) --no-print-directory build asan-build
	@./scripts/test.sh

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	@./scripts/format-check.sh

# The README's configuration table, from the table in lib/conf/conf.c.
readme-config: build
	@./scripts/readme-config.sh $(BUILD)/domainmon

fuzz:
	@CC=clang cmake -S . -B $(BUILD_FUZZ) -DDM_FUZZ=ON >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
