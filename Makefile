# Nano agent MLPerf-style suite. Every target creates the virtual environment when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# BENCHMARK: one benchmark (evaluate, bench; default nano-react) or a comma list (submission;
# default: all of rules.yaml). WORKLOAD and BENCHMARKS are its old names, still accepted.
BENCHMARK ?=
ifdef WORKLOAD
$(warning WORKLOAD is now called BENCHMARK; using BENCHMARK=$(WORKLOAD))
BENCHMARK := $(WORKLOAD)
endif
ifdef BENCHMARKS
$(warning BENCHMARKS is now called BENCHMARK; using BENCHMARK=$(BENCHMARKS))
BENCHMARK := $(BENCHMARKS)
endif
ONE_BENCHMARK = $(or $(BENCHMARK),nano-react)
SYSTEM   ?= cpu
PROFILE  ?= official
SUBMITTER ?= reference
ALLOW_MISMATCH ?=
DIVISION ?= closed
SUBMISSIONS ?= submissions
BOARD ?= leaderboard

.PHONY: help venv test test-slow train train-react train-react-init train-codegen train-codegen-init evaluate submission bench check \
	leaderboard report clean-venv

help:
	@echo "make submission    SYSTEM=cpu PROFILE=official|smoke SUBMITTER=name: MLPerf-layout results"
	@echo "                   (every benchmark; BENCHMARK=nano-react or nano-codegen for one)"
	@echo "make bench         naive vs engine vs LoadGen, Offline episodes/s (BENCHMARK=...)"
	@echo "make check         validate results/DIVISION/SUBMITTER (PROFILE=smoke for a smoke one)"
	@echo "make leaderboard   SUBMISSIONS=dir BOARD=out: validate and rank a course's submissions"
	@echo "make report        RESULTS=dir OUT=dir [SWEEP=sweep.json]: plots and an HTML page"
	@echo "make evaluate      closed-loop evaluation of a committed agent (BENCHMARK=nano-react|nano-codegen)"
	@echo "make test          fast test suite (creates .venv if missing)"
	@echo "make test-slow     slow tests: full frozen-set accuracy, determinism"
	@echo "make train         retrain both checkpoints (each a fine-tune of its committed init: see the model cards)"

venv: $(VENV)/.installed

# torch is pinned exactly: a looser range pulls several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 numpy
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: venv
	$(PY) -m pytest -q

test-slow: venv
	$(PY) -m pytest -q -m slow

# The committed checkpoints' recipes (see each MODEL_CARD.md). Each ends with a fine-tune on
# the broadened data of issue 12 (random words, wide numbers) from a committed earlier model;
# the *-init targets rebuild those earlier models (hours on 2 cores).
CKPT := reference/checkpoints/nano-react
train: train-react train-codegen

# nano-react: stage 2 fine-tunes the rotary-position model in $(CKPT)/init (train-react-init)
# with 70% broadened trajectories; one torch thread, as measured.
train-react: venv
	$(PY) -m reference.train nano-react --rope --init-from $(CKPT)/init/model.pt --broad 0.7 \
		--mix sum_lengths=1.5,sum_lengths3=0.5 --steps 1500 --lr 1e-3 --warmup 50 --seed 12 \
		--threads 1 --eval-start 750 --eval-every 250 --out $(CKPT)

train-react-init: venv
	$(PY) -m reference.train nano-react --rope --steps 5000 --lr 3e-3 --warmup 200 --seed 11 \
		--mix sum_lengths=1.5,sum_lengths3=0.5 --eval-start 1500 --eval-every 500 --threads 2 \
		--out $(CKPT)/init

# nano-codegen starts from an earlier nano-react model (learned positions, three stages; kept in
# $(CG)/init, rebuilt by train-codegen-init: the byte-level copying transfers), then a second
# stage with training variety (random words, arithmetic-free oracles), then a third on the
# broadened data (`--variety wide`: longer lists, wider integers, never a held-out word).
CG := reference/checkpoints/nano-codegen
train-codegen: venv
	$(PY) -m reference.train nano-codegen --init-from $(CG)/init/model.pt --steps 1500 --lr 1e-3 \
		--warmup 50 --p-detour 0.3 --seed 1 --eval-start 500 --eval-every 250 --threads 1 \
		--out $(CG)/stage1
	$(PY) -m reference.train nano-codegen --init-from $(CG)/stage1/model.pt --variety \
		--steps 1000 --lr 6e-4 --warmup 50 --p-detour 0.3 --seed 2 --eval-start 500 \
		--eval-every 250 --threads 1 --out $(CG)/stage2
	$(PY) -m reference.train nano-codegen --init-from $(CG)/stage2/model.pt --variety wide \
		--steps 1000 --lr 6e-4 --warmup 50 --p-detour 0.3 --seed 3 --eval-start 500 \
		--eval-every 250 --threads 1 --out $(CG)

train-codegen-init: venv
	$(PY) -m reference.train nano-react --steps 3200 --stop-after 2400 --out $(CG)/init/stage1
	$(PY) -m reference.train nano-react --init-from $(CG)/init/stage1/model.pt --steps 1500 \
		--lr 1e-3 --warmup 50 --seed 2 --eval-start 750 --eval-every 250 --out $(CG)/init/stage2
	$(PY) -m reference.train nano-react --init-from $(CG)/init/stage2/model.pt --steps 2000 \
		--lr 8e-4 --warmup 50 --seed 3 --mix sum_lengths=1.5,sum_lengths3=0.5 \
		--eval-start 1000 --eval-every 250 --out $(CG)/init

evaluate: venv
	$(PY) -m reference.evaluate $(ONE_BENCHMARK)

submission: venv
	$(PY) -m loadgen_harness.submission --system $(SYSTEM) --profile $(PROFILE) \
		--submitter $(SUBMITTER) --division $(DIVISION) $(if $(ALLOW_MISMATCH),--allow-mismatch,) \
		$(if $(BENCHMARK),--benchmarks $(BENCHMARK),)

bench: venv
	$(PY) -m loadgen_harness.bench --system $(SYSTEM) --benchmark $(ONE_BENCHMARK)

check: venv
	$(PY) -m compliance check results/$(DIVISION)/$(SUBMITTER) --profile $(PROFILE)

leaderboard: venv
	$(PY) -m compliance leaderboard $(SUBMISSIONS) --out $(BOARD) --profile $(PROFILE)

# Plots and one HTML page from a submission's performance runs; SWEEP adds the throughput and
# latency curves of a sweep (python -m loadgen_harness.report --sweep build/sweep.json).
RESULTS ?= results/closed/reference
OUT ?= build/report
SWEEP ?=
report: venv
	$(PY) -m loadgen_harness.report $(RESULTS) --out $(OUT) $(if $(SWEEP),--sweep-json $(SWEEP),)

clean-venv:
	rm -rf $(VENV)
