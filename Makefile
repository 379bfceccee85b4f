# condseg-monai developer commands. `make demo` is the main job, `make test` runs lint and the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install -q -c constraints.txt
RUN_DIR ?= runs/demo

.PHONY: help venv test lint demo bench bench-accuracy bench-label-efficiency bench-active-learning bench-colonoscopy bench-video clean label-test

help:
	@echo "make demo   - train Stage 1 + Stage 2 on the built-in demo data and run inference (CPU, minutes)"
	@echo "make test   - ruff + pytest (creates $(VENV) if missing)"
	@echo "make bench  - speed / memory: ConDSeg against MONAI baselines (bench/compare.py, ~9 min; tables in docs/benchmarks.md)"
	@echo "make bench-accuracy - fixed-budget accuracy through the bundle: ConDSeg against MONAI baselines on Kvasir-SEG (bench/accuracy.py, hours on 2 CPU cores)"
	@echo "make bench-label-efficiency - 10 / 25 % labels through the bundle: supervised, semi-supervised, control, all labels; ConDSeg and BasicUNet, 3 seeds (bench/label_efficiency.py, a GPU or a day of CPU)"
	@echo "make bench-active-learning - random, foreground-aware random, uncertainty and diverse annotation rounds through the bundle, polyp-free frames in the pool, failure detection of the scores (bench/active_learning.py, ~2 h on 1 thread per seed)"
	@echo "make bench-colonoscopy - per-frame sensitivity / specificity on CVC-ClinicDB and polyp-free frames, negatives, temporal filter (bench/colonoscopy.py, hours on 2 CPU cores)"
	@echo "make bench-video - frames per second of video inference at 128 and 256 px (bench/video_throughput.py)"
	@echo "make label-test - MONAI Label 0.8.5 contract test against a real server (own env, ~5 min cold build)"

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e ".[test]"
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest -q

BUNDLE_RUN := $(PY) -m monai.bundle run
META := --meta_file bundle/configs/metadata.json

# The main job: both training stages on the built-in demo data (no --datalist), then inference on the demo
# test images and the paper's metrics on them. Every step is the documented `monai.bundle` command.
demo: venv
	$(BUNDLE_RUN) training $(META) --config_file "['bundle/configs/train.json','configs/both_stages.json']" \
		--output_dir $(RUN_DIR)
	$(BUNDLE_RUN) inference $(META) --config_file bundle/configs/inference.json \
		--ckpt_path $(RUN_DIR)/stage2/model.pt --image_size 64 --output_dir $(RUN_DIR)/predictions \
		--datalist "\$$condseg_monai.data.load_datalist('$(RUN_DIR)/demo_data/datalist.json', 'test')" \
		--save_overlay true --save_uncertainty true --save_probability true
	$(BUNDLE_RUN) evaluating $(META) --config_file "['bundle/configs/train.json','bundle/configs/evaluate.json']" \
		--datalist $(RUN_DIR)/demo_data/datalist.json --ckpt_path $(RUN_DIR)/stage2/model.pt \
		--image_size 64 --output_dir $(RUN_DIR)/evaluation
	@echo ""
	@echo "Demo finished."
	@echo "  model (Stage 2, best val mIoU): $(RUN_DIR)/stage2/model.pt   (Stage 1: $(RUN_DIR)/stage1/model.pt)"
	@echo "  TensorBoard logs:               $(VENV)/bin/tensorboard --logdir $(RUN_DIR)"
	@echo "  training pictures:              $(RUN_DIR)/stage1/previews/ $(RUN_DIR)/stage2/previews/"
	@echo "  predictions and overlays:       $(RUN_DIR)/predictions/"
	@echo "  test metrics:                   $(RUN_DIR)/evaluation/"

bench: venv
	$(PY) bench/compare.py --size 256 --repeats 3

# Every benchmark trains and evaluates through the bundle's own commands (bench/harness.py). They need a Kvasir-SEG
# folder (images/ + masks/); the other hospital's frames and the polyp-free frames are used when present.
# results.json is resumable: re-running continues an interrupted run.
KVASIR ?= ../shared/data/kvasir-seg
CVC ?= ../shared/data/cvc-clinicdb
POLYP_FREE ?= ../shared/data/polyp-free
CROSS := $(if $(wildcard $(CVC)/images),cvc=$(CVC)) $(if $(wildcard $(POLYP_FREE)/images),polyp_free=$(POLYP_FREE))
CROSS_ARG := $(if $(strip $(CROSS)),--cross $(CROSS))

# The annotation loop of docs/benchmarks.md: random and uncertainty arms from one initial model per seed.
AL_DIR ?= runs/active_learning
bench-active-learning: venv
	$(PY) bench/active_learning.py --data $(KVASIR) --out $(AL_DIR)/kvasir64 --size 64 --presize --threads 1 \
		--seeds 0 1 2 --pool-size 100 --feature-size 32 \
		$(if $(wildcard $(POLYP_FREE)/images),--negatives $(POLYP_FREE) --negatives-count 100)

ACCURACY_DIR ?= runs/accuracy/kvasir128
bench-accuracy: venv
	$(PY) bench/accuracy.py --data $(KVASIR) --out $(ACCURACY_DIR) --size 128 --steps 400 --stage1-steps 100 \
		--seeds 0 1 --models condseg unet attention_unet basic_unet segresnet $(CROSS_ARG)

# 10 % / 25 % labels: supervised, semi-supervised (configs/semi_supervised.json as shipped), its control without
# the unlabeled loss, and all labels; ConDSeg and BasicUNet, three seeds, model selected on validation, reported on
# a held-out test split, the other hospital and polyp-free frames. Then a hospital's own frames (CVC-ClinicDB cut
# by video sequence): its unlabeled frames added, or labeled (the ceiling).
LABEL_EFF_DIR ?= runs/label_efficiency
bench-label-efficiency: venv
	$(PY) bench/label_efficiency.py --data $(KVASIR) --out $(LABEL_EFF_DIR)/kvasir64 --size 64 \
		--models condseg basic_unet --fractions 0.1 0.25 --arms sup semi semi_off full --seeds 0 1 2 \
		--stage1-steps 200 --steps 400 --eval-every 50 $(CROSS_ARG)
	$(PY) bench/label_efficiency.py --data $(KVASIR) --out $(LABEL_EFF_DIR)/kvasir64_target --size 64 \
		--models condseg basic_unet --fractions 0.1 --arms sup semi semi_target target_labels full --seeds 0 1 2 \
		--stage1-steps 200 --steps 400 --eval-every 50 --target $(CVC) --cross polyp_free=$(POLYP_FREE)

# Colonoscopy as it is (docs/benchmarks.md): Kvasir-trained models on CVC-ClinicDB and polyp-free frames, with and
# without negatives, calibrated operating point, temporal filter on videos. Needs ../shared/data; resumable.
COLON_DIR ?= runs/colonoscopy
bench-colonoscopy: venv
	$(PY) bench/colonoscopy.py data --out $(COLON_DIR)
	$(PY) bench/colonoscopy.py train --out $(COLON_DIR) --arms sup sup_neg semi
	$(PY) bench/colonoscopy.py evaluate --out $(COLON_DIR)
	$(PY) bench/colonoscopy.py temporal --out $(COLON_DIR)

# frames per second of the bundle's video inference on this machine (docs/benchmarks.md)
bench-video: venv
	$(PY) bench/video_throughput.py --sizes 128 256 --frames 40 --threads 2

clean:
	rm -rf runs .pytest_cache .ruff_cache

# MONAI Label 0.8.5 contract tests in their own environment (.label-venv, ~7 GB, first build downloads ~3 GB;
# not part of `make test` / CI). LABEL_BUNDLE picks the bundle folder to test.
LABEL_VENV ?= .label-venv
LABEL_BUNDLE ?= bundle
label-test:
	LABEL_VENV=$(abspath $(LABEL_VENV)) bash tests/monailabel/setup_env.sh
	CONDSEG_LABEL_BUNDLE=$(abspath $(LABEL_BUNDLE)) $(LABEL_VENV)/bin/python -m pytest -q --disable-warnings tests/monailabel
	$(LABEL_VENV)/bin/python tests/monailabel/run_server_test.py --bundle $(LABEL_BUNDLE)
	$(LABEL_VENV)/bin/python tests/monailabel/run_server_test.py --bundle $(LABEL_BUNDLE) --app condseg
