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
# your name in results/<division>/<submitter>; `reference` (the committed reference
# submission) is written only with REFERENCE=1
SUBMITTER ?= $(or $(shell id -un 2>/dev/null),student)
REFERENCE ?=
REPLACE ?=
ALLOW_MISMATCH ?=
COMPRESS_TRACES ?=
DIVISION ?= closed
# the course's submissions (directories and/or archives); by default this checkout's own
# division folder: the committed reference (the baseline row) and your submissions
SUBMISSIONS ?= results/$(DIVISION)
BOARD ?= build/leaderboard

.PHONY: help venv test test-slow train train-react train-codegen train-planner evaluate submission bench check \
	leaderboard report clean-venv bench-peers

help:
	@echo "make submission    SYSTEM=cpu PROFILE=official|smoke SUBMITTER=name: MLPerf-layout results"
	@echo "                   (SUBMITTER defaults to your user name; REPLACE=1 drops earlier results)"
	@echo "                   (every benchmark; BENCHMARK=nano-react, nano-codegen or nano-planner for one)"
	@echo "make bench         naive vs engine vs LoadGen, Offline episodes/s (BENCHMARK=...)"
	@echo "make bench-peers   the engine against Hugging Face transformers on the same weights"
	@echo "                   (its own venv, build/peers-venv; build/bench-peers.json)"
	@echo "make check         validate results/DIVISION/SUBMITTER (PROFILE=smoke for a smoke one)"
	@echo "make leaderboard   SUBMISSIONS=dir BOARD=out: validate and rank a course's submissions"
	@echo "                   (defaults: results/closed -> build/leaderboard)"
	@echo "make report        RESULTS=dir OUT=dir [SWEEP=sweep.json]: plots and an HTML page"
	@echo "make evaluate      closed-loop evaluation of a committed agent (BENCHMARK=nano-react|nano-codegen|nano-planner)"
	@echo "make test          fast test suite (creates .venv if missing)"
	@echo "make test-slow     slow tests: full frozen-set accuracy, determinism"
	@echo "make train         retrain the three checkpoints from scratch (see the model cards; hours on 2 cores)"

venv: $(VENV)/.installed

# torch is pinned exactly: a looser range pulls several GB of CUDA packages.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 numpy
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: venv
	$(PY) -m pytest -q -n auto --dist loadfile

test-slow: venv
	$(PY) -m pytest -q -m slow

# The committed checkpoints' recipes (see each MODEL_CARD.md). Intermediate models are rebuilt
# into $(TRAIN_TMP), never committed. About 3.5 hours on 2 cores in all.
CKPT := reference/checkpoints/nano-react
CG := reference/checkpoints/nano-codegen
TRAIN_TMP := build/train
PL := reference/checkpoints/nano-planner
train: train-react train-codegen train-planner

# nano-react: a rotary-position model trained from scratch on the frozen set's distribution,
# then a fine-tune with 70% broadened trajectories (random words, 1-6 digit operands); the
# fine-tune runs on one torch thread, as measured.
train-react: venv
	$(PY) -m reference.train nano-react --rope --steps 5000 --lr 3e-3 --warmup 200 --seed 11 \
		--mix sum_lengths=1.5,sum_lengths3=0.5 --eval-start 1500 --eval-every 500 --threads 2 \
		--out $(TRAIN_TMP)/nano-react-init
	$(PY) -m reference.train nano-react --rope --init-from $(TRAIN_TMP)/nano-react-init/model.pt \
		--broad 0.7 --mix sum_lengths=1.5,sum_lengths3=0.5 --steps 1500 --lr 1e-3 --warmup 50 \
		--seed 12 --threads 1 --eval-start 750 --eval-every 250 --out $(CKPT)

# nano-codegen starts from the nano-react model (the byte-level copying transfers) and trains on
# the broadened data (`--variety wide`: random words, lists of 2-10 integers of 1-6 digits,
# power bases of 1-6 digits, never a held-out word), 30% of the tasks a failed attempt and its
# feedback first, a quarter of the trajectories nano-react's own (`--replay`: it keeps copying
# long numbers); stage 2 makes half the failed attempts miscopied arguments (`--miscopy`); stage 3
# adds lists of quoted digit strings of 1-12 digits (`--variety copy`: long digit runs copied
# inside a list, where integers stay 1-6 digits).
train-codegen: venv
	$(PY) -m reference.train nano-codegen --rope --init-from $(CKPT)/model.pt --variety wide \
		--steps 3000 --lr 1e-3 --warmup 50 --p-detour 0.3 --seed 4 --threads 1 --replay 0.25 \
		--eval-start 1500 --eval-every 250 --out $(TRAIN_TMP)/nano-codegen-stage1
	$(PY) -m reference.train nano-codegen --rope \
		--init-from $(TRAIN_TMP)/nano-codegen-stage1/model.pt --variety wide --steps 1500 \
		--lr 5e-4 --warmup 50 --p-detour 0.3 --seed 5 --threads 1 --replay 0.25 --miscopy 0.5 \
		--eval-start 750 --eval-every 250 --out $(TRAIN_TMP)/nano-codegen-stage2
	$(PY) -m reference.train nano-codegen --rope \
		--init-from $(TRAIN_TMP)/nano-codegen-stage2/model.pt --variety copy --steps 1500 \
		--lr 5e-4 --warmup 50 --p-detour 0.3 --seed 6 --threads 1 --replay 0.25 --miscopy 0.5 \
		--eval-start 750 --eval-every 250 --out $(CG)

# nano-planner starts from the nano-react model too and learns its JSON steps (masked SFT: the
# request and the Result lines carry no loss), the templates whose step count varies weighted up.
train-planner: venv
	$(PY) -m reference.planner.train --init-from $(CKPT)/model.pt --steps 2400 --warmup 50 \
		--lr 2e-3 --mix average_length=2,two_longest_times_const=2,length_diff_arith=1.5,total_lengths_compare=1.5 \
		--eval-n 100 --gen-n 100 --threads 1 --out $(PL)

evaluate: venv
	$(PY) -m reference.evaluate $(ONE_BENCHMARK)

submission: venv
	$(PY) -m loadgen_harness.submission --system $(SYSTEM) --profile $(PROFILE) \
		--submitter $(SUBMITTER) --division $(DIVISION) $(if $(ALLOW_MISMATCH),--allow-mismatch,) \
		$(if $(COMPRESS_TRACES),--compress-traces,) $(if $(REFERENCE),--as-reference,) \
		$(if $(REPLACE),--replace,) \
		$(if $(BENCHMARK),--benchmarks $(BENCHMARK),)

bench: venv
	$(PY) -m loadgen_harness.bench --system $(SYSTEM) --benchmark $(ONE_BENCHMARK)

# The peers on the same weights (loadgen_harness/peers.py): Hugging Face transformers in its
# own virtual environment, never the test one (which must not see transformers).
PEERS_VENV ?= build/peers-venv
PEERS_TASKS ?= 100
$(PEERS_VENV)/.installed: pyproject.toml
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install -q torch==2.13.0 numpy
	$(PEERS_VENV)/bin/python -m pip install -q -e '.[test]' transformers
	touch $@

bench-peers: $(PEERS_VENV)/.installed
	$(PEERS_VENV)/bin/python -m loadgen_harness.bench --system $(SYSTEM) --benchmark nano-react \
		--peers --peer-tasks $(PEERS_TASKS) --json build/bench-peers.json

check: venv
	$(PY) -m compliance check results/$(DIVISION)/$(SUBMITTER) --profile $(PROFILE)

leaderboard: venv
	@test -d "$(SUBMISSIONS)" || { echo "error: SUBMISSIONS=$(SUBMISSIONS) is not a directory (make leaderboard SUBMISSIONS=<folder of the course's submissions>)" >&2; exit 2; }
	$(PY) -m compliance leaderboard $(SUBMISSIONS) --out $(BOARD) --profile $(PROFILE)
	@echo "open $(BOARD)/index.html"

# Plots and one HTML page from a submission's performance runs; SWEEP adds the throughput and
# latency curves of a sweep (python -m loadgen_harness.report --sweep build/sweep.json).
RESULTS ?= results/closed/reference
OUT ?= build/report
SWEEP ?=
report: venv
	$(PY) -m loadgen_harness.report $(RESULTS) --out $(OUT) $(if $(SWEEP),--sweep-json $(SWEEP),)

clean-venv:
	rm -rf $(VENV)
