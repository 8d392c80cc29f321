#!/usr/bin/env bash
# The one-GPU measurements (the throughput table, and the quick PTB-XL profile's Tables 1 and 3)
# as one prepared script, for a GPU machine that is lent for minutes, takes one upload of at most
# 64 MiB and reaches no package index (DEVELOPERS.md, "The GPU machine").
#
#   bash benchmarks/one_gpu.sh prepare [--python-version 3.12]
#       here: PyPI and ../shared/data/ptbxl beside the checkout. Builds .device/ (git-ignored):
#       site.tar.xz, the Python packages the workflow needs that the GPU image lacks (snakemake and
#       its needs, jsonschema, defusedxml), unpacked from their wheels, pruned of what a run never
#       loads and xz-compressed (about 5 MB, against 10 MB of wheels), and
#       ptbxl-compact/, PTB-XL's 100 Hz records packed by ../shared/data/ptbxl/compact.py (about 57 MB,
#       slightly lossy: read its docstring) with compact.py beside it. About 5 minutes on 2 cores.
#   bash benchmarks/one_gpu.sh run check|quick|bench|all [--dry-run]
#       there, with .device carried (device run: carry [".device"]), output under $OUT (or ./one-gpu-out):
#       check, first, in about two minutes: benchmarks/gpu_check.py (the host time of a non-blocking copy
#       of a contiguous pinned, a strided and a pageable batch while the GPU is busy; one eager step
#       under torch.cuda.set_sync_debug_mode("error"); what a 1.2 GiB pinned allocation takes; the
#       trainer compiled in reduce-overhead mode for 60 steps with two flushes), then the pretraining
#       tests on CUDA; all: check, quick, bench;
#       quick: the quick profile end to end (standardization included), its wall time, Tables 1, 3;
#       bench: benchmarks/pretrain.py --ops, --sdpa (the attention backends), then --trainer in each
#       input mode, eager, then HL(60, 2, 512)
#       compiled (reduce-overhead: CUDA graphs) from GPU memory. Minutes, compilation included: with
#       15 minutes of device time, quick and bench may not both fit one session.
#       --dry-run: everything up to the work itself (unpacking, imports, snakemake --dry-run).
#       Run check first: if it fails, what it printed says why, before quick or bench spend minutes.
#   bash benchmarks/one_gpu.sh preflight
#       here, after prepare, before spending device minutes: a Python 3.12 venv with the image's
#       torch and numpy (a CUDA build of torch 2.11.0 from PyPI, about 3 GB, run on the CPU; the venv
#       at $PREFLIGHT_VENV or /tmp/ecgfm-preflight, kept for the next preflight, completed when the
#       list below changes) and the image's other packages, tensorboard included; then, with .device/site.tar.xz unpacked as `run` unpacks it there: `run all
#       --dry-run`, the tests of what a run does (pretraining, the step compiled and as one graph,
#       the quick profile at a reduced size, the benchmarks), the trainer compiled by inductor for
#       a few steps, and check's CPU-possible part (the compiled trainer through two flushes; the
#       copies, the sync check and the pinned sizes need CUDA and say so). 6 minutes the first time on 2 cores (the download included), 3 after.
# The quick profile is sized for about 10 minutes on an H100 and one command may run 10 minutes:
# give quick its own call; snakemake resumes where a killed run stopped (pretraining from its
# checkpoint) if the machine is still warm.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE_DIR=.device
SHARED_PTBXL=../shared/data/ptbxl
# not carried: on the GPU image already (the device README's list), or never imported here (pulp:
# the ILP scheduler; greenlet: SQLAlchemy's asyncio, which snakemake's sqlite metadata never uses)
NOT_CARRIED="attrs certifi charset-normalizer idna jinja2 markupsafe packaging psutil pyyaml requests tabulate
typing-extensions urllib3 wrapt pulp greenlet"
# the GPU image's Python, torch and numpy, as the device README's KINDS.md lists them (2026-11)
IMAGE_PYTHON=3.12 IMAGE_TORCH=2.11.0 IMAGE_NUMPY=2.5.2
SITE=${ECGFM_SITE:-/tmp/ecgfm-site}     # where run unpacks site.tar.xz
# the image's other packages that the workflow and the tests import, unpinned (the image's exact
# versions are not listed); tensorboard, which the trainer writes to when it is installed (it is on
# the image, not in this checkout's venv); wfdb and pydicom are test-only and not on the image
IMAGE_PACKAGES="scipy pandas pyarrow h5py scikit-learn safetensors tqdm matplotlib tensorboard pytest wfdb pydicom"

prepare() {
    local pyver=$IMAGE_PYTHON
    [[ "${1:-}" == "--python-version" ]] && pyver=$2
    local tmp
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    mkdir -p "$DEVICE_DIR"
    # 1. the packages: the installed closure of snakemake, jsonschema and defusedxml, at the
    #    versions this checkout is tested with, minus what the image has
    python - "$NOT_CARRIED" > "$tmp/requirements.txt" <<'EOF'
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement
skip = set(sys.argv[1].split())
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
seen = {}
def walk(name):
    if norm(name) in seen:
        return
    dist = md.distribution(name)
    seen[norm(name)] = dist.version
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            walk(req.name)
for root in ("snakemake", "jsonschema", "defusedxml"):
    walk(root)
print("\n".join(f"{name}=={version}" for name, version in sorted(seen.items()) if name not in skip))
EOF
    mkdir -p "$tmp/wheels" "$tmp/site"
    local platforms=() n
    for n in 28 27 24 17 5; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
    while read -r requirement; do
        pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
            "${platforms[@]}" -d "$tmp/wheels" "$requirement" 2>/dev/null \
        || pip wheel -q --no-deps -w "$tmp/wheels" "$requirement"      # an sdist-only package: built here
    done < "$tmp/requirements.txt"
    for wheel in "$tmp"/wheels/*.whl; do python -m zipfile -e "$wheel" "$tmp/site"; done
    # what a run never loads, so that the packages and PTB-XL fit one upload with room to spare:
    # test suites, the HTML report's JavaScript, SQLAlchemy's optional compiled speed-ups (it falls
    # back to Python), SBOMs
    find "$tmp/site" -mindepth 2 -type d \( -name __pycache__ -o -name tests -o -name test \) -prune -exec rm -rf {} +
    rm -rf "$tmp/site/snakemake/assets/data" "$tmp/site/sqlalchemy/cyextension" "$tmp"/site/*.dist-info/sboms
    tar -C "$tmp/site" -cf - . | xz -9 -T0 > "$DEVICE_DIR/site.tar.xz"
    echo "site.tar.xz: $(wc -l < "$tmp/requirements.txt") packages for Python $pyver"
    # 2. PTB-XL, compact
    if [[ ! -d "$DEVICE_DIR/ptbxl-compact" ]]; then
        python "$SHARED_PTBXL/unpack.py" "$tmp/ptbxl" --rate 100
        python "$SHARED_PTBXL/compact.py" pack "$tmp/ptbxl" "$DEVICE_DIR/ptbxl-compact"
    fi
    cp "$SHARED_PTBXL/compact.py" "$DEVICE_DIR/compact.py"
    du -sb "$DEVICE_DIR" "$DEVICE_DIR"/*
    echo "the working tree that travels, .device included: $(( ( $(git ls-files -z | xargs -0 cat | wc -c) \
+ $(du -sb "$DEVICE_DIR" | cut -f1) ) / 1048576 )) MiB of the 64 allowed"
}

# the carried packages on PYTHONPATH (site.tar.xz unpacked once) and, for the Python $1, the
# `snakemake` command that the wheels' unpacking leaves out (the tests start it)
use_site() {
    if [[ ! -d $SITE ]]; then mkdir -p "$SITE" && tar -C "$SITE" -xJf "$DEVICE_DIR/site.tar.xz"; fi
    mkdir -p "$SITE/bin"
    printf '#!/bin/sh\nexec "%s" -m snakemake "$@"\n' "$1" > "$SITE/bin/snakemake"
    chmod +x "$SITE/bin/snakemake"
    export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1 PATH="$SITE/bin:$PATH"
}

run() {
    local what=$1 dry=${2:-}
    local out=${OUT:-one-gpu-out}
    mkdir -p "$out"
    exec > >(tee -a "$out/log.txt") 2>&1
    local py=${PYTHON:-python3}      # the image's python3 holds its torch
    use_site "$py"
    "$py" - <<'EOF'
import platform, torch, snakemake, jsonschema, defusedxml, ecgfm
print(f"python {platform.python_version()}; torch {torch.__version__}; snakemake {snakemake.__version__}; "
      f"device {torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}")
EOF
    if [[ ! -f data/ptbxl/ptbxl_database.csv ]]; then
        "$py" "$DEVICE_DIR/compact.py" unpack "$DEVICE_DIR/ptbxl-compact" data/ptbxl
    fi
    if [[ $what == check || $what == all ]]; then
        if [[ $dry == --dry-run ]]; then
            "$py" benchmarks/gpu_check.py --help > /dev/null && echo "check: ready"
        else
            "$py" benchmarks/gpu_check.py | tee "$out/check.txt" || echo "check: a part FAILED ($out/check.txt)"
            "$py" -m pytest -q -p no:cacheprovider -rs tests/test_pretrain.py tests/test_ddp.py \
                tests/test_benchmarks.py > "$out/check-tests.txt" 2>&1 || echo "check: tests failed"
            tail -n 15 "$out/check-tests.txt"
        fi
    fi
    if [[ $what == quick || $what == all ]]; then
        local quick=(--profile profiles/ptbxl-gpu --scheduler greedy
                     --configfile profiles/ptbxl-gpu/ptbxl-gpu-config.yaml profiles/ptbxl-gpu/quick.yaml)
        if [[ $dry == --dry-run ]]; then
            "$py" -m snakemake "${quick[@]}" --dry-run --quiet rules
        else
            local start=$SECONDS
            "$py" -m snakemake "${quick[@]}" > "$out/quick-snakemake.txt" 2>&1 || echo "snakemake failed: $out/quick-snakemake.txt"
            echo "quick profile: $((SECONDS - start)) s wall"
            for t in table1 table3; do
                cp "results/ptbxl-gpu-quick/tables/$t.md" "$out/" 2>/dev/null && cat "$out/$t.md"
            done
        fi
    fi
    if [[ $what == bench || $what == all ]]; then
        local bench=("$py" benchmarks/pretrain.py)
        if [[ $dry == --dry-run ]]; then
            "${bench[@]}" --help > /dev/null && echo "benchmark: ready"
        else
            # each table on its own: one that fails says so and the next still runs
            "${bench[@]}" --ops | tee "$out/ops.md" || echo "bench: --ops FAILED"
            "${bench[@]}" --sdpa --models HL_p60_d2_e512,GL_p60_d2_e512,CL_p250_d2_e1024 | tee "$out/sdpa.md" \
                || echo "bench: --sdpa FAILED"
            "${bench[@]}" --trainer --records 20000 --patients 15000 --steps 300 | tee "$out/trainer.md" \
                || echo "bench: --trainer FAILED"
            "${bench[@]}" --trainer --records 20000 --patients 15000 --steps 300 --modes device \
                --models HL_p60_d2_e512 --compile reduce-overhead | tee "$out/trainer-compiled.md" \
                || echo "bench: --trainer --compile reduce-overhead FAILED"
        fi
    fi
}

preflight() {
    local venv=${PREFLIGHT_VENV:-/tmp/ecgfm-preflight} base
    [[ -f "$DEVICE_DIR/site.tar.xz" ]] || { echo "no $DEVICE_DIR/site.tar.xz: run prepare first" >&2; exit 1; }
    # the packages the image has and the carried site leaves out (NOT_CARRIED), but the two
    # never imported, so that a package missing from the site fails here as it would there
    local packages
    packages="torch==$IMAGE_TORCH numpy==$IMAGE_NUMPY $IMAGE_PACKAGES $(tr ' ' '\n' <<< "$NOT_CARRIED" \
        | grep -vx -e pulp -e greenlet | tr '\n' ' ')"
    if [[ "$(cat "$venv/preflight-installed" 2>/dev/null)" != "$packages" ]]; then   # new, failed or other packages
        if [[ ! -x "$venv/bin/python" ]]; then
            base=python$IMAGE_PYTHON            # on the PATH, else pyenv's, which its shim may not enable
            "$base" -c '' 2>/dev/null || base=$(compgen -G "${PYENV_ROOT:-$HOME/.pyenv}/versions/$IMAGE_PYTHON.*/bin/python" | tail -1 || true)
            [[ -n "$base" ]] || { echo "preflight needs a Python $IMAGE_PYTHON (python$IMAGE_PYTHON)" >&2; exit 1; }
            rm -rf "$venv"
            "$base" -m venv "$venv"
        fi
        "$venv/bin/pip" install -q $packages
        echo "$packages" > "$venv/preflight-installed"
    fi
    local out
    out=$(mktemp -d)
    rm -rf "$SITE"                          # unpacked afresh from this prepare's site.tar.xz
    (OUT=$out PYTHON="$venv/bin/python" run all --dry-run)
    export PATH="$venv/bin:$PATH"
    use_site "$venv/bin/python"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_pretrain.py \
        tests/test_ptbxl_gpu.py tests/test_benchmarks.py tests/test_model.py tests/test_augment.py
    "$venv/bin/python" benchmarks/pretrain.py --trainer --records 400 --patients 300 --steps 12 --batch 16 \
        --modes host --models HL_p60_d2_e512 --compile default
    # check's CPU-possible part, its CUDA graph mode included (inductor skips the graphs on a CPU)
    "$venv/bin/python" benchmarks/gpu_check.py --model HL_p250_d1_e32 --batch 8 --records 200 --patients 150 \
        --steps 8 --log-every 4
    rm -rf "$out"
    echo "preflight passed: python $IMAGE_PYTHON, torch $IMAGE_TORCH, numpy $IMAGE_NUMPY, the prepared site"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    preflight) preflight ;;
    *) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; exit 2 ;;
esac
