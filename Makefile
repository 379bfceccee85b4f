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
	@echo "make bench-accuracy - fixed-budget accuracy: ConDSeg against MONAI baselines on Kvasir-SEG (bench/accuracy.py, ~2 h on 2 CPU cores)"
	@echo "make bench-label-efficiency - 10 / 25 % labels: supervised vs semi-supervised vs all labels on Kvasir-SEG at 64 px (bench/label_efficiency.py, ~10 h on 1-2 threads)"
	@echo "make bench-active-learning - uncertainty vs random annotation rounds and failure detection of the scores, ConDSeg on Kvasir-SEG at 64 px (bench/active_learning.py, ~1.5 h on 1 thread)"
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

# Needs a Kvasir-SEG folder (images/ + masks/); results.json is resumable: re-running continues an interrupted run.
KVASIR ?= ../shared/data/kvasir-seg
# The annotation loop of docs/benchmarks.md: the sid_uncertainty arm with the random arm, then the
# tta_disagreement arm (the same initial model and random arm by construction: same seeds and settings).
AL_DIR ?= runs/active_learning
AL := $(PY) bench/active_learning.py --data $(KVASIR) --size 64 --threads 1 --seeds 0
bench-active-learning: venv
	$(AL) --out $(AL_DIR)/kvasir64
	$(AL) --out $(AL_DIR)/kvasir64_tta --score tta_disagreement --arms uncertainty

ACCURACY_DIR ?= runs/accuracy/kvasir128
bench-accuracy: venv
	$(PY) bench/accuracy.py --data $(KVASIR) --out $(ACCURACY_DIR) --size 128 --steps 400 --stage1-steps 100 \
		--seeds 0 1 --models unet attention_unet basic_unet segresnet condseg

# Same data folder; one results.json per network and setting (resumable). Every run of docs/benchmarks.md.
LABEL_EFF_DIR ?= runs/label_efficiency
LE := $(PY) bench/label_efficiency.py --data $(KVASIR) --size 64
LE_UNET := $(LE) --models basic_unet --steps 2000 --eval-at 500 1000 1500
LE_CONDSEG := $(LE) --models condseg --steps 300 --stage1-steps 100 --eval-at 150 200 250 --rampup 0.25 --fractions 0.1
LE_CONDSEG_1500 := $(LE) --models condseg --steps 1500 --stage1-steps 300 --eval-at 500 750 1000 1250 --rampup 0.25 \
	--threshold 0.8 --ema-warmup-iters 50 --ema-warmup-momentum 0.5 --fractions 0.1 --seeds 0
bench-label-efficiency: venv
	$(LE_UNET) --out $(LABEL_EFF_DIR)/basic_unet64_2000 --fractions 0.1 --arms sup semi full --seeds 0
	$(LE_UNET) --out $(LABEL_EFF_DIR)/basic_unet64_2000 --fractions 0.1 --arms sup full --seeds 1
	$(LE_UNET) --out $(LABEL_EFF_DIR)/basic_unet64_2000 --fractions 0.25 --arms sup --seeds 0
	$(LE_UNET) --out $(LABEL_EFF_DIR)/basic_unet64_2000_t08 --threshold 0.8 --fractions 0.1 --arms semi --seeds 0 1
	$(LE_UNET) --out $(LABEL_EFF_DIR)/basic_unet64_2000_t08 --threshold 0.8 --fractions 0.25 --arms semi --seeds 0
	$(LE_CONDSEG) --out $(LABEL_EFF_DIR)/condseg64 --threshold 0.9 --arms sup full --seeds 0
	$(LE_CONDSEG) --out $(LABEL_EFF_DIR)/condseg64_t08 --threshold 0.8 --arms semi --seeds 0
	$(LE_CONDSEG) --out $(LABEL_EFF_DIR)/condseg64_t08_warm --threshold 0.8 --ema-warmup-iters 50 \
		--ema-warmup-momentum 0.5 --arms semi --seeds 0
	$(LE_CONDSEG_1500) --out $(LABEL_EFF_DIR)/condseg64_1500_sup --threads 1 --arms sup
	$(LE_CONDSEG_1500) --out $(LABEL_EFF_DIR)/condseg64_1500_full --threads 1 --arms full
	$(LE_CONDSEG_1500) --out $(LABEL_EFF_DIR)/condseg64_1500_semi_m05 --threads 2 --ema-momentum 0.05 --arms semi
	$(LE_CONDSEG_1500) --out $(LABEL_EFF_DIR)/condseg64_1500_semi_m05_w0 --threads 2 --ema-momentum 0.05 --arms semi \
		--unsup-weight 0

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
