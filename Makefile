# The README's two commands: `make run` (the main job) and `make test`. Both build what they need.
VENV := .venv
# Offline machines keep MNIST beside the clone; elsewhere the pipeline downloads it (checksummed).
MNIST_DIR ?= $(wildcard ../shared/data/mnist)
OUTPUT_ROOT ?= runs/pipeline
# The improved preset cut to 3,000 iterations (the decay starts at 1,500): the best model measured within the seed
# preset's pipeline time (docs/benchmarks.md, "The main job"). 2 Horovod workers x 50 images = the preset's global batch of 100.
PRESET ?= improved
ITERATIONS ?= 3000
# Empty: train ITERATIONS. Seconds: train for about that long (ITERATIONS is then the most it may run), so that the
# flow's wall time holds on machines of any speed; `make run TIME_BUDGET=450` ends within 10 minutes (docs/benchmarks.md).
TIME_BUDGET ?=
WORKERS ?= 2
BATCH_SIZE ?= 50
# Test processes (pytest-xdist), given a test file at a time, so that a file's shared fixtures are made once.
TEST_PROCESSES ?= 2

.PHONY: env run test
env:
	scripts/make-env.sh

run: env
	$(VENV)/bin/sgan pipeline --preset $(PRESET) --iterations $(ITERATIONS) --labels 100 --seed 0 --workers $(WORKERS) \
		--batch-size $(BATCH_SIZE) $(if $(TIME_BUDGET),--time-budget $(TIME_BUDGET)) \
		$(if $(MNIST_DIR),--data $(MNIST_DIR)) --output-root $(OUTPUT_ROOT)

test: env
	scripts/test-hosts.sh
	scripts/test-browser.sh
	$(VENV)/bin/python -m pytest -q --numprocesses $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder
