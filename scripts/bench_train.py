"""Training speed against a hand-written loop doing the same work, side by side in one run.

    python scripts/bench_train.py --model resnet18 --size 64 --trainable-stages all --write BENCHMARKS.md
    python scripts/bench_train.py --model resnet50 --size 224 --trainable-stages 1 --write BENCHMARKS.md

Three steps, each measured three ways (every row a fresh process, one after another):

* supervised: 8 labeled trailers x 8 frames -> left-right flip, normalise ->
  encoder -> mean over each trailer's frames -> MLP head -> Asymmetric Loss -> Adam;
* SESEMI: that step, then 16 unlabeled trailers x 2 frames, each in all six
  rotations / flips -> encoder -> MLP head -> cross-entropy -> a second Adam;
* SimCLR: 32 unlabeled trailers x 4 frames, two views of each (crop, flip,
  colour jitter, grayscale, blur) -> encoder -> projection head -> NT-Xent.

The three ways:

* hand-written: timm, torch and lightly only, the loop one writes by hand with the
  uint8 frames already in memory; for SimCLR the loop of lightly's own SimCLR
  example (views made by lightly's ``SimCLRTransform`` in two DataLoader worker
  processes, SGD at lr 0.06);
* semisup step: semisup's components and its loop's step function
  (:func:`semisup.train.engine.step_objectives`) on the same frames in memory;
* semisup run: ``semisup run`` end to end on a generated folder dataset of 640x360
  JPEG keyframes (loader workers decode and crop, kornia augments, the step),
  images/s and peak memory of its second epoch from ``metrics.jsonl``.

Every row of a step does the same work: the same timm model with the same
trainable stages (frozen ones in eval mode, outside autograd), batch
composition, precision (channels_last, autocast to the dtype semisup picks) and
augmentation (semisup runs with ``augment.crop_scale_min = 1`` and
``augment.rotation = 0``: flip and normalise, as the hand-written loop).
Images count every frame through the encoder (a SESEMI step: 64 + 6 x 32 = 256).

Each row also gives the model FLOP/s (forward and backward FLOPs of one step,
counted by torch's ``FlopCounterMode``, times steps per second) as a share of the
matmul throughput measured in the same run, and the peak memory of its process
(CUDA: tensors allocated; CPU: peak resident set). ``--compile`` adds semisup's
step with ``run.compile = "inductor"``; ``--ddp`` adds the SESEMI ``semisup run``
under ``torchrun`` with two gloo processes and the same global batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semisup.device import autocast, peak_memory_mb, resolve_device, resolve_precision  # noqa: E402

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Thriller", "Crime", "Sci-Fi", "Family", "Music")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "brick", "grass", "hubble_deep_field")
RECIPES = {"supervised": "recipes/supervised.toml", "sesemi": "recipes/sesemi.toml", "simclr": "recipes/simclr.toml"}
LABELED, FRAMES, UNLABELED, UNLABELED_FRAMES, SIMCLR_TRAILERS, SIMCLR_FRAMES = 8, 8, 16, 2, 32, 4


def timed(step: Callable[[], int], warmup: int, steps: int, device: torch.device) -> float:
    """Images per second of ``step`` (which returns the images it put through the encoder)."""
    for _ in range(warmup):
        step()
    sync(device)
    images, start = 0, time.perf_counter()
    for _ in range(steps):
        images += step()
    sync(device)
    return images / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(step: Callable[[], int]) -> float:
    """Forward and backward FLOPs of one call of ``step``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


# ---------------------------------------------------------------- the hand-written loops


def hand_backbone(args, device: torch.device) -> nn.Module:
    """A timm backbone with only its last ``--trainable-stages`` training, frozen modules in
    eval mode, channels_last: what one writes to fine-tune the top of a network."""
    import timm

    net = timm.create_model(args.model, num_classes=0).to(device).train()
    if args.trainable_stages != "all":
        stages = [f["module"] for f in net.feature_info]
        trainable = tuple(f"{s}." for s in stages[len(stages) - int(args.trainable_stages):])
        for name, p in net.named_parameters():
            p.requires_grad_(name.startswith(trainable))
        for m in net.modules():
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                m.eval()
    return net.to(memory_format=torch.channels_last)


def mlp(width: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(hidden, classes))


def hand_steps(args, kind: str, device: torch.device, dtype) -> tuple[Callable[[], int], Callable[[], int]]:
    """The hand-written step of ``kind`` (and the same step for counting FLOPs)."""
    from timm.loss import AsymmetricLossMultiLabel

    net = hand_backbone(args, device)
    trainable = [p for p in net.parameters() if p.requires_grad]
    cfg = net.pretrained_cfg
    mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1) * 255
    s = args.size
    if kind == "simclr":
        return lightly_example(args, net, device, dtype)

    head = mlp(net.num_features, 256, len(GENRES)).to(device)
    asl = AsymmetricLossMultiLabel(gamma_neg=4, gamma_pos=1, clip=0.05)
    opt = torch.optim.Adam(trainable + list(head.parameters()), lr=1e-3)
    frames = torch.randint(0, 256, (LABELED * FRAMES, 3, s, s), dtype=torch.uint8, device=device)
    targets = (torch.rand(LABELED, len(GENRES), device=device) < 0.3).float()
    pretext = mlp(net.num_features, 256, 6).to(device)
    opt_pretext = torch.optim.Adam(trainable + list(pretext.parameters()), lr=1e-3)
    unlabeled = torch.randint(0, 256, (UNLABELED * UNLABELED_FRAMES, 3, s, s), dtype=torch.uint8, device=device)
    rotations = torch.arange(6, device=device).repeat_interleave(len(unlabeled))

    def step() -> int:
        with torch.no_grad():
            x = (frames.float() - mean) / std
            flip = torch.rand(len(x), device=device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = head(net(x).view(LABELED, FRAMES, -1).mean(1))
        loss = asl(logits.float(), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if kind == "supervised":
            return len(x)
        with torch.no_grad():
            u = (unlabeled.float() - mean) / std
            u = torch.cat([u, u.rot90(1, (2, 3)), u.rot90(2, (2, 3)), u.rot90(3, (2, 3)), u.flip(3), u.flip(2)])
        with autocast(device, dtype):
            out = pretext(net(u.contiguous(memory_format=torch.channels_last)))
        loss = nn.functional.cross_entropy(out.float(), rotations)
        opt_pretext.zero_grad(set_to_none=True)
        loss.backward()
        opt_pretext.step()
        return len(x) + len(u)

    return step, step


def lightly_example(args, net: nn.Module, device: torch.device, dtype) -> tuple[Callable[[], int], Callable[[], int]]:
    """lightly's SimCLR example loop (examples/pytorch/simclr.py) with this backbone and batch."""
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from PIL import Image

    s, batch = args.size, SIMCLR_TRAILERS * SIMCLR_FRAMES
    head = SimCLRProjectionHead(net.num_features, 512, 128).to(device)
    transform = SimCLRTransform(input_size=s, min_scale=0.2, cj_strength=0.5, random_gray_scale=0.2,
                                gaussian_blur=0.5)
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (s, s, 3), dtype=np.uint8))
              for i in range(batch)]

    class Frames(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 10 ** 6

        def __getitem__(self, i):
            return transform(images[i % len(images)]), 0

    loader = iter(torch.utils.data.DataLoader(Frames(), batch_size=batch, shuffle=False, drop_last=True,
                                              num_workers=2, persistent_workers=True))
    criterion = NTXentLoss(temperature=0.2)
    params = [p for p in net.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=0.06)

    def train(x0: torch.Tensor, x1: torch.Tensor) -> int:
        x0, x1 = (x.to(device).contiguous(memory_format=torch.channels_last) for x in (x0, x1))
        with autocast(device, dtype):
            z0, z1 = head(net(x0)), head(net(x1))
        loss = criterion(z0.float(), z1.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return 2 * len(x0)

    def step() -> int:
        (x0, x1), _ = next(loader)
        return train(x0, x1)

    fixed = torch.randn(batch, 3, s, s)
    return step, lambda: train(fixed, fixed)


# ---------------------------------------------------------------- semisup's own step, in memory


def recipe_overrides(args, root: Path, kind: str) -> list[str]:
    """``--set`` overrides that give the bench's model, batch and augmentation to a recipe."""
    out = [f"data.format=folder", f"data.root={root}", f"data.image_size={args.size}", f"data.max_frames={FRAMES}",
           f"data.eval_frames={FRAMES}", f"model.encoder={args.model}",
           f"model.trainable_stages={args.trainable_stages if args.trainable_stages == 'all' else int(args.trainable_stages)}",
           "augment.crop_scale_min=1.0", "augment.rotation=0", "train.epochs=2", "run.seed=0",
           f"train.labeled_batch_size={LABELED}"]
    if kind == "sesemi":
        out += [f"train.unlabeled_batch_size={UNLABELED}", f"pretext.0.frames_per_trailer={UNLABELED_FRAMES}"]
    if kind == "simclr":
        out += ["pretrain.epochs=2", f"pretrain.batch_size={SIMCLR_TRAILERS * SIMCLR_FRAMES}",
                f"pretrain.frames_per_trailer={SIMCLR_FRAMES}"]
    return out


def semisup_step(args, kind: str, device: torch.device, dtype, compile_backend: str = "off") -> Callable[[], int]:
    """semisup's components for ``kind`` (built from its recipe as ``semisup run`` builds them)
    stepped by the loop's own step function on frames in memory (the encoder compiled with
    ``compile_backend``, as ``run.compile`` does)."""
    from semisup.build import build_model, load_data
    from semisup.config import load_recipe
    from semisup.device import needs_grad_scaler
    from semisup.objectives import StepBatch, StepContext
    from semisup.train.engine import Stage, step_objectives
    from semisup.train.learner import Learner
    from semisup.train.optimizers import adam_optimizers
    from semisup.train.setup import (build_augmentations, build_objectives, build_optimizers, build_pretrain_objective,
                                     compile_encoder)

    recipe = load_recipe(ROOT / RECIPES[kind], recipe_overrides(args, args.data, kind))
    dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=kind != "supervised")
    model = build_model(recipe, dataset.tasks).to(device).train()
    compile_encoder(model, compile_backend)
    if kind == "simclr":
        simclr, views = build_pretrain_objective(recipe, model)
        objectives = [simclr.to(device)]
        optimizers = adam_optimizers(objectives, model, "separate", recipe.pretrain.lr)
        augmentations = {name: view.to(device) for name, view in views.items()}
    else:
        objectives = [o.to(device) for o in build_objectives(recipe, dataset.samples, dataset.tasks)]
        optimizers = build_optimizers(recipe, objectives, model)
        augmentations = {name: view.to(device) for name, view in build_augmentations(recipe, model).items()}
    stage = Stage(model, objectives, optimizers, None, augmentations, validate=None)
    learner = Learner(model, objectives)
    scalers = {n: torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device, dtype)) for n in optimizers}
    s, classes = args.size, len(dataset.tasks[0].labels)
    frames = torch.randint(0, 256, (LABELED * FRAMES, 3, s, s), dtype=torch.uint8, device=device)
    owner = torch.arange(LABELED, device=device).repeat_interleave(FRAMES)
    targets = {"genres": (torch.rand(LABELED, classes, device=device) < 0.3).float()}
    has_label = {"genres": torch.ones(LABELED, dtype=torch.bool, device=device)}
    trailers, per = (SIMCLR_TRAILERS, SIMCLR_FRAMES) if kind == "simclr" else (UNLABELED, UNLABELED_FRAMES)
    clips = torch.randint(0, 256, (trailers * per, 3, s, s), dtype=torch.uint8, device=device)
    clip_owner = torch.arange(trailers, device=device).repeat_interleave(per)
    count = iter(range(10 ** 9))

    def step() -> int:
        batches = {"labeled": None if kind == "simclr" else
                   StepBatch(frames, owner, LABELED, augmentations, targets, has_label),
                   "unlabeled": None if kind == "supervised" else
                   StepBatch(clips, clip_owner, trailers, augmentations, frames_per_trailer=per)}
        context = StepContext(next(count), 100, 10 ** 6, None, lambda: autocast(device, dtype))
        outputs = step_objectives(stage, learner, batches, context, scalers, 0.0)
        for o in outputs.values():  # as the loop logs them
            o.loss.item()
        return sum(o.images for o in outputs.values())

    return step


# ---------------------------------------------------------------- semisup run, end to end


def write_dataset(root: Path, labeled: int, unlabeled: int) -> None:
    """A folder dataset: ``labeled`` train, 8 val, 8 test and ``unlabeled`` trailers of
    8 JPEG keyframes each (640x360, made from scikit-image's photos)."""
    from PIL import Image
    from skimage import data as photos

    sources = []
    for i, name in enumerate(PHOTOS):
        array = np.asarray(getattr(photos, name)())
        array = np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3]
        path = root / "sources" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).resize((640, 360)).save(path, quality=90)
        sources.append(path)
    rng = np.random.default_rng(0)
    rows = ["id,split,genres"]
    splits = ["train"] * labeled + ["val"] * 8 + ["test"] * 8 + ["unlabeled"] * unlabeled
    for i, split in enumerate(splits):
        genres = "|".join(rng.choice(GENRES, size=2, replace=False)) if split != "unlabeled" else ""
        rows.append(f"t{i:05d},{split},{genres}")
        folder = root / "frames" / f"t{i:05d}"
        folder.mkdir(parents=True)
        for k in range(FRAMES):
            os.link(sources[(i + k) % len(sources)], folder / f"{k:03d}.jpg")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def semisup_run(args, kind: str, processes: int = 1) -> dict:
    """``semisup run`` end to end (two epochs); images/s and peak memory of the second."""
    out = args.work / f"run-{kind}-{processes}"
    sets = recipe_overrides(args, args.data, kind)
    if processes > 1:  # the same global batch, split between the processes
        sets += [f"train.labeled_batch_size={LABELED // processes}",
                 f"train.unlabeled_batch_size={UNLABELED // processes}"]
        launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", "-m", "semisup"]
    else:
        launcher = [sys.executable, "-m", "semisup"]
    command = launcher + ["run", str(ROOT / RECIPES[kind]), "--out", str(out)] + [x for s in sets for x in ("--set", s)]
    if kind == "simclr":
        command += ["--stage", "pretrain"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"semisup run failed:\n{done.stderr[-3000:]}")
    metrics = out / ("pretrain" if kind == "simclr" else "") / "metrics.jsonl"
    last = [json.loads(line) for line in metrics.read_text().splitlines()][-1]
    return {"images_per_s": last["images_per_s"], "peak_mb": last.get("peak_memory_mb")}


# ---------------------------------------------------------------- rows, each in its own process


def matmul_roof(device: torch.device, dtype, seconds: float = 3.0) -> float:
    """FLOP/s of a large square matmul in the training dtype (the hardware roof as torch reaches it)."""
    n = 2048
    a = torch.randn(n, n, device=device, dtype=dtype or torch.float32)
    b = torch.randn(n, n, device=device, dtype=dtype or torch.float32)
    a @ b
    sync(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
        sync(device)
    return 2 * n ** 3 * runs / (time.perf_counter() - start)


def run_row(args) -> dict:
    """One row in this process (``--row WAY:KIND``): images/s, FLOPs per image, peak memory."""
    torch.manual_seed(0)
    device = resolve_device("auto")
    dtype = resolve_precision(device, "auto")
    way, kind = args.row.split(":")
    if way == "roof":
        return {"flops_per_s": matmul_roof(device, dtype)}
    if way == "run":
        return semisup_run(args, kind, processes=int(args.processes))
    if way == "compiled":  # FLOPs are not counted inside compiled graphs: the table takes the hand-written count
        step = semisup_step(args, kind, device, dtype, compile_backend="inductor")
        return {"images_per_s": timed(step, args.warmup + 3, args.steps, device), "peak_mb": peak_memory_mb(device)}
    if way == "hand":
        step, flop_step = hand_steps(args, kind, device, dtype)
    else:
        step = flop_step = semisup_step(args, kind, device, dtype)
    rate = timed(step, args.warmup, args.steps, device)
    images = flop_step()
    flops = count_flops(flop_step) / images
    return {"images_per_s": rate, "flops_per_image": flops, "peak_mb": peak_memory_mb(device)}


def row_in_process(args, row: str, processes: int = 1) -> dict:
    command = [sys.executable, __file__, "--row", row, "--processes", str(processes), "--data", str(args.data),
               "--work", str(args.work)] + [x for name in ("model", "size", "trainable_stages", "steps", "warmup")
                                            for x in (f"--{name.replace('_', '-')}", str(getattr(args, name)))]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    found = re.search(r"^RESULT (.*)$", done.stdout, re.M)
    if done.returncode != 0 or not found:
        raise SystemExit(f"row {row} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return json.loads(found.group(1))


STEP_NAMES = {"supervised": "supervised", "sesemi": "SESEMI", "simclr": "SimCLR"}
WAY_NAMES = {"hand": "hand-written loop, frames in memory", "step": "semisup step, frames in memory",
             "compiled": "semisup step, frames in memory, `run.compile = \"inductor\"` (after 3 more warm-up steps)",
             "run": "`semisup run`, end to end (loader, augmentation, step)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--trainable-stages", default="all", help='"all" or how many of the last stages train')
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--labeled-trailers", type=int, default=64, help="of the generated dataset (semisup run)")
    parser.add_argument("--unlabeled-trailers", type=int, default=128)
    parser.add_argument("--ddp", action="store_true", help="add SESEMI under torchrun, 2 gloo processes")
    parser.add_argument("--compile", action="store_true", help="add semisup's steps with run.compile = inductor")
    parser.add_argument("--write", type=Path, help="Markdown file whose section to replace")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--processes", default="1", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        print("RESULT " + json.dumps(run_row(args)), flush=True)
        return

    device = resolve_device("auto")
    dtype = resolve_precision(device, "auto")
    with tempfile.TemporaryDirectory() as tmp:
        args.work, args.data = Path(tmp), Path(tmp) / "data"
        write_dataset(args.data, args.labeled_trailers, args.unlabeled_trailers)
        roof = row_in_process(args, "roof:none")["flops_per_s"]
        print(f"matmul roof: {roof / 1e9:.0f} GFLOP/s ({dtype or 'fp32'})", flush=True)
        rows = []
        for kind in ("supervised", "sesemi", "simclr"):
            flops = None
            for way in ("hand", "step") + (("compiled",) if args.compile else ()) + ("run",):
                result = row_in_process(args, f"{way}:{kind}")
                flops = result.get("flops_per_image", flops)
                rows.append((kind, way, 1, result, flops))
                print(f"{STEP_NAMES[kind]} / {WAY_NAMES[way]}: {result['images_per_s']:.1f} img/s", flush=True)
            if args.ddp and kind == "sesemi":
                result = row_in_process(args, "run:sesemi", processes=2)
                rows.append((kind, "run", 2, result, flops))
                print(f"SESEMI / torchrun 2 processes: {result['images_per_s']:.1f} img/s", flush=True)

    base = {kind: result["images_per_s"] for kind, way, _, result, _ in rows if way == "hand"}
    table_rows = []
    for kind, way, processes, result, flops in rows:
        name = WAY_NAMES[way] + (f", torchrun {processes} gloo processes (same global batch)" if processes > 1 else "")
        ips = result["images_per_s"]
        roof_share = f"{ips * flops / roof:.0%}" if flops else ""
        peak = f"{result['peak_mb'] / 1024:.2f}" if result.get("peak_mb") is not None else ""
        table_rows.append((STEP_NAMES[kind], name, f"{ips:.1f}", f"{ips / base[kind]:.2f}x", roof_share, peak))
    title = f"bench_train: {args.model} at {args.size} px, trainable stages {args.trainable_stages}"
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device.type}, "
               f"{dtype or 'fp32'}, torch {torch.__version__}")
    intro = (f"`python scripts/bench_train.py --model {args.model} --size {args.size} --trainable-stages "
             f"{args.trainable_stages} --steps {args.steps} --warmup {args.warmup} --labeled-trailers "
             f"{args.labeled_trailers} --unlabeled-trailers {args.unlabeled_trailers}"
             f"{' --ddp' if args.ddp else ''}{' --compile' if args.compile else ''}` on {machine}; matmul roof measured in the same "
             f"run: {roof / 1e9:.0f} GFLOP/s. Ratio: images/s over the hand-written loop's for the same step.")
    table = markdown_section(title, intro, ("step", "how", "images/s", "ratio", "share of matmul roof",
                                            "peak memory (GiB)"), table_rows)
    print(table)
    if args.write:
        replace_section(args.write, title, table)


def markdown_section(title: str, intro: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A titled Markdown table between ``<!-- title -->`` markers (see :func:`replace_section`)."""
    lines = [f"<!-- {title} -->", f"### {title}", "", intro, "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines + [f"<!-- /{title} -->"])


def replace_section(path: Path, title: str, table: str) -> None:
    """Replace the ``<!-- title -->`` ... ``<!-- /title -->`` section of a Markdown file (or append it)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {re.escape(title)} -->.*?<!-- /{re.escape(title)} -->", re.S)
    text = pattern.sub(lambda _: table, text) if pattern.search(text) else text.rstrip() + "\n\n" + table + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
