#!/usr/bin/env bash
# The data-parallel check for a machine with a CUDA GPU (CI has none; run it the day one is lent):
#
#     bash scripts/gpu_check.sh            # from the repository root; prints images/s and writes gpu-check/
#
# 1. installs the project into a fresh virtual environment (./.venv-gpu);
# 2. renders a small folder dataset (scripts/bench_train.py's JPEG keyframes);
# 3. trains one epoch of SESEMI (ResNet50, 224 px, last stage) under
#    `torchrun --nproc_per_node=1`: NCCL process group, the learner in DistributedDataParallel,
#    AMP (bf16 where the GPU has it), and once more alone (no torchrun) for the same work;
# 4. with more than one GPU, the same under `--nproc_per_node=$(nvidia-smi -L | wc -l)`, same global batch;
# 5. prints each run's images/s and peak GPU memory from metrics.jsonl.
# NCCL refuses two processes on one GPU: on a single-GPU machine step 4 is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${GPU_CHECK_OUT:-gpu-check}"
rm -rf "$out" && mkdir -p "$out"
if [ ! -x .venv-gpu/bin/python ]; then
    python3 -m venv .venv-gpu
    .venv-gpu/bin/pip install --quiet --upgrade pip
    .venv-gpu/bin/pip install --quiet -e ".[test]"
fi
py=.venv-gpu/bin/python
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi -L
$py - "$out/data" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "scripts")
from bench_train import write_dataset
write_dataset(Path(sys.argv[1]), labeled=128, unlabeled=512)
EOF
sets=(--set data.format=folder --set "data.root=$out/data" --set data.image_size=224 --set data.num_workers=6
      --set model.encoder=resnet50 --set model.trainable_stages=1 --set train.epochs=1 --set run.device=cuda
      --set run.precision=auto --set train.labeled_batch_size=32 --set train.unlabeled_batch_size=64)
$py -m semisup run recipes/sesemi.toml --out "$out/alone" "${sets[@]}"
$py -m torch.distributed.run --standalone --nproc_per_node=1 -m semisup run recipes/sesemi.toml \
    --out "$out/torchrun-1" "${sets[@]}"
gpus=$(nvidia-smi -L | wc -l)
if [ "$gpus" -gt 1 ]; then
    $py -m torch.distributed.run --standalone --nproc_per_node="$gpus" -m semisup run recipes/sesemi.toml \
        --out "$out/torchrun-$gpus" "${sets[@]}" --set "train.labeled_batch_size=$((32 / gpus))" \
        --set "train.unlabeled_batch_size=$((64 / gpus))"
fi
for run in "$out"/alone "$out"/torchrun-*; do
    $py - "$run" <<'EOF'
import json, sys
from pathlib import Path
record = json.loads((Path(sys.argv[1]) / "metrics.jsonl").read_text().splitlines()[-1])
print(f"{Path(sys.argv[1]).name}: {record['images_per_s']:.0f} img/s, peak {record['peak_memory_mb']:.0f} MB, "
      f"loss {record['loss']:.4f}, val score {record['val_score']:.3f}")
EOF
done
