"""Consistency objectives: pseudo-label thresholds, the EMA teacher, FixMatch and Mean Teacher steps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from semisup.config import load_recipe
from semisup.data.samples import TaskSpec
from semisup.errors import SemisupError
from semisup.losses import AsymmetricLoss, MulticlassLoss
from semisup.models.ema import EmaTeacher
from semisup.objectives import StepBatch, StepContext, get_consistency
from semisup.objectives.pseudo import CapThresholds, FixedThresholds, FreeMatchThresholds


def test_fixed_thresholds_keep_confident_positives_and_negatives_and_ignore_the_rest():
    probs = torch.tensor([[0.97, 0.50, 0.02], [0.94, 0.06, 0.95]])
    targets, mask = FixedThresholds("multilabel", 3, positive=0.95, negative=0.05).decide(probs)
    assert targets.tolist() == [[1, 0, 0], [0, 0, 1]]
    assert mask.tolist() == [[1, 0, 1], [0, 0, 1]]  # 0.94 and 0.06 are in neither band
    targets, mask = FixedThresholds("multiclass", 3, positive=0.8).decide(
        torch.tensor([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2]]))
    assert targets.tolist() == [[1, 0, 0], [1, 0, 0]] and mask.tolist() == [1, 0]


def test_cap_thresholds_reproduce_the_labeled_priors_on_unlabeled_scores():
    generator = torch.Generator().manual_seed(0)
    prior = torch.tensor([0.05, 0.2, 0.5])
    rule = CapThresholds("multilabel", prior, memory=4000)
    scores = torch.rand(4000, 3, generator=generator) ** torch.tensor([3.0, 1.0, 0.3])  # any shapes of scores
    rule.observe(scores)
    targets, mask = rule.decide(scores)
    assert torch.allclose(targets.mean(0), prior, atol=0.01)  # the pseudo-positive rate is the labeled prior
    assert mask.mean().item() == pytest.approx(1.0, abs=0.01)  # keep = 1: every label decided, as CAP
    half = CapThresholds("multilabel", prior, memory=4000, keep=0.5)
    half.observe(scores)
    targets, mask = half.decide(scores)
    assert torch.allclose(targets.mean(0), prior * 0.5, atol=0.01)
    assert torch.allclose(((1 - targets) * mask).mean(0), (1 - prior) * 0.5, atol=0.01)


def test_cap_thresholds_cap_each_class_share_for_multiclass_tasks():
    prior = torch.tensor([0.6, 0.3, 0.1])
    rule = CapThresholds("multiclass", prior, memory=1000)
    logits = torch.randn(1000, 3, generator=torch.Generator().manual_seed(1)) + torch.tensor([0.0, 1.0, 0.5])
    probs = torch.softmax(logits, 1)
    rule.observe(probs)
    targets, mask = rule.decide(probs)
    kept = (targets * mask[:, None]).sum(0) / len(probs)
    predicted = torch.bincount(probs.argmax(1), minlength=3) / len(probs)
    assert torch.all(kept <= prior + 0.01)  # no class takes more than its labeled share ...
    assert torch.allclose(kept, torch.minimum(prior, predicted), atol=0.01)  # ... and each takes all it may
    assert mask.sum() < len(probs)


def test_cap_memory_is_a_ring_of_the_latest_scores():
    rule = CapThresholds("multilabel", torch.tensor([0.5]), memory=3)
    for value in (0.1, 0.2, 0.3, 0.4):
        rule.observe(torch.tensor([[value]]))
    assert sorted(rule.memory[:, 0].tolist()) == pytest.approx([0.2, 0.3, 0.4]) and int(rule.filled) == 3


def test_freematch_thresholds_follow_the_teachers_confidence():
    rule = FreeMatchThresholds("multiclass", 2, momentum=0.5)
    assert rule.positive_thresholds().tolist() == [0.5, 0.5]  # 1 / C at the start
    for _ in range(20):
        rule.observe(torch.tensor([[0.95, 0.05], [0.9, 0.1]]))
    thresholds = rule.positive_thresholds()
    assert thresholds[0] == pytest.approx(0.925, abs=1e-3)  # the mean top confidence ...
    assert thresholds[1] < 0.2  # ... scaled down for the class the teacher rarely predicts
    multilabel = FreeMatchThresholds("multilabel", 1, momentum=0.0)
    scores = torch.tensor([[0.6], [0.4], [0.95], [0.05]])  # mean confidence 0.775, half the mass positive
    multilabel.observe(scores)
    targets, mask = multilabel.decide(scores)
    assert targets[:, 0].tolist() == [0, 0, 1, 0] and mask[:, 0].tolist() == [0, 0, 1, 1]
    rare = FreeMatchThresholds("multilabel", 1, momentum=0.0)
    rare.observe(torch.tensor([[0.1], [0.1], [0.1], [0.9]]))  # a rare label: its positives need only win
    assert rare.positive_thresholds().item() == 0.5 and rare.negative_thresholds().item() == pytest.approx(0.1)


def test_the_ema_teacher_moves_towards_the_student_with_the_mean_teacher_ramp():
    student = nn.Linear(2, 1)
    teacher = EmaTeacher(student, decay=0.9)
    with torch.no_grad():
        student.weight.fill_(1.0)
    teacher.update(student, step=0)  # decay min(0.9, 1 - 1/1) = 0: a copy
    assert torch.equal(teacher.module.weight, student.weight)
    with torch.no_grad():
        student.weight.fill_(3.0)
    teacher.update(student, step=1)  # decay min(0.9, 1 - 1/2) = 0.5
    assert torch.allclose(teacher.module.weight, torch.full((1, 2), 2.0))
    teacher.update(student, step=100)  # decay 0.9
    assert torch.allclose(teacher.module.weight, torch.full((1, 2), 2.1))
    assert not teacher.module.training


class TinyModel(nn.Module):
    """A TrailerModel stand-in: mean-pooled linear features of packed frames, one head per task."""

    def __init__(self, sizes: dict[str, int]) -> None:
        super().__init__()
        self.body = nn.Linear(3 * 8 * 8, 16)
        self.heads = nn.ModuleDict({name: nn.Linear(16, size) for name, size in sizes.items()})

    def forward(self, frames, owner, num_trailers):
        x = torch.relu(self.body(frames.flatten(1)))
        pooled = torch.zeros(num_trailers, 16).index_add_(0, owner, x) / torch.bincount(owner)[:, None]
        return {name: head(pooled) for name, head in self.heads.items()}

    def supervised_parameters(self):
        return list(self.parameters())


def unlabeled_batch(seed: int, trailers: int = 16, frames: int = 2) -> StepBatch:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (trailers * frames, 3, 8, 8), dtype=torch.uint8, generator=generator)

    def weak(x, owner):
        return x.float() / 255

    def strong(x, owner):
        return (x.float() / 255 + 0.1 * torch.randn(x.shape, generator=generator)).clamp(0, 1)

    return StepBatch(pixels, torch.arange(trailers).repeat_interleave(frames), trailers,
                     {"weak": weak, "strong": strong}, frames_per_trailer=frames)


TASKS = [TaskSpec("genres", ("a", "b", "c"), "multilabel"), TaskSpec("scale", ("LS", "MS", "CS"), "multiclass")]
PRIORS = {"genres": torch.tensor([0.5, 0.3, 0.2]), "scale": torch.tensor([0.5, 0.3, 0.2])}


@pytest.mark.parametrize("threshold", ["fixed", "cap", "freematch"])
def test_fixmatch_steps_lower_its_loss_on_the_same_clips(threshold):
    """With the teacher held still (an EMA teacher that is not updated) the pseudo-labels are
    fixed, and steps on the strong views must fit them."""
    torch.manual_seed(0)
    model, teacher = TinyModel({"genres": 3, "scale": 3}), TinyModel({"genres": 3, "scale": 3})
    method = get_consistency("fixmatch")
    options = method.Options(threshold=threshold, positive=0.55, negative=0.45, teacher="ema")
    objective = method(options, TASKS, {"genres": AsymmetricLoss(), "scale": MulticlassLoss()}, PRIORS)
    optimizer = torch.optim.Adam(objective.trained_parameters(model), lr=0.01)
    context = StepContext(step=10, steps_per_epoch=10, total_steps=100, teacher=teacher,
                          autocast=lambda: torch.autocast("cpu", enabled=False))

    def loss_on(seed):
        return objective(unlabeled_batch(seed), model, context)

    first = loss_on(0)
    assert first.images == 64 and {"genres_mask_rate", "scale_mask_rate"} <= set(first.logs)
    losses = []
    for _ in range(30):
        out = loss_on(0)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0] * 0.7, losses


def test_fixmatch_learns_only_confident_targets_and_warms_up():
    model = TinyModel({"scale": 3})
    with torch.no_grad():  # a teacher sure of class 0 for every clip
        model.heads["scale"].weight.zero_()
        model.heads["scale"].bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    method = get_consistency("fixmatch")
    objective = method(method.Options(threshold="fixed", positive=0.95), TASKS[1:], {"scale": MulticlassLoss()},
                       PRIORS, weight=2.0, warmup_epochs=1.0)
    context = StepContext(step=4, steps_per_epoch=10, total_steps=100, teacher=None,
                          autocast=lambda: torch.autocast("cpu", enabled=False))
    out = objective(unlabeled_batch(0), model, context)
    p0 = torch.softmax(torch.tensor([5.0, 0.0, 0.0]), 0)[0]
    assert out.logs["scale_mask_rate"] == 1.0
    assert out.loss.item() == pytest.approx(2.0 * 0.5 * -torch.log(p0).item(), rel=1e-4)  # weight * ramp * CE
    late = method(method.Options(), TASKS[1:], {"scale": MulticlassLoss()}, PRIORS, warmup_epochs=1.0,
                  start_epoch=2.0)
    assert not late.active(context) and late.active(StepContext(20, 10, 100, None, context.autocast))
    assert late.weight_now(StepContext(24, 10, 100, None, context.autocast)) == pytest.approx(0.5)
    sure_of_nothing = method(method.Options(threshold="fixed", positive=0.999), TASKS[1:], {"scale": MulticlassLoss()},
                             PRIORS)
    assert sure_of_nothing(unlabeled_batch(0), model, context).loss.item() == 0.0


def test_fixmatch_soft_targets_and_negatives_only_on_hand_computed_scores():
    """Hard: confident entries become 0/1; soft: the teacher's (sharpened) probability;
    positives = false: only the confident negatives are learned."""
    method = get_consistency("fixmatch")
    probs = torch.tensor([[0.97, 0.5, 0.02], [0.2, 0.96, 0.6]])
    losses, priors = {"genres": AsymmetricLoss()}, {"genres": PRIORS["genres"]}

    def pseudo(**options):
        objective = method(method.Options(threshold="fixed", positive=0.9, negative=0.1, **options), TASKS[:1],
                           losses, priors)
        return objective.pseudo_targets("genres", "multilabel", probs)

    targets, mask = pseudo()
    assert targets.tolist() == [[1, 0, 0], [0, 1, 0]] and mask.tolist() == [[1, 0, 1], [0, 1, 0]]
    targets, mask = pseudo(targets="soft")
    assert torch.allclose(targets, probs) and mask.tolist() == [[1, 0, 1], [0, 1, 0]]
    targets, _ = pseudo(targets="soft", temperature=0.5)  # sigmoid(2 logit): p^2 / (p^2 + (1 - p)^2)
    assert targets[0, 0].item() == pytest.approx(0.97 ** 2 / (0.97 ** 2 + 0.03 ** 2), rel=1e-5)
    assert targets[0, 1].item() == pytest.approx(0.5)
    targets, mask = pseudo(positives=False)
    assert mask.tolist() == [[0, 0, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match="temperature"):
        method.Options(targets="soft", temperature=0.0)
    soft = method(method.Options(threshold="fixed", positive=0.9, negative=0.1, targets="soft"), TASKS[:1], losses,
                  priors)
    logits = torch.zeros(2, 3)  # a student at p = 0.5: BCE log(2) per masked label (three of six), over 2 clips
    targets, mask = soft.pseudo_targets("genres", "multilabel", probs)
    expected = sum(-(t * math.log(0.5) + (1 - t) * math.log(0.5)) for t in targets[mask.bool()].tolist()) / 2
    assert soft.student_loss("genres", "multilabel", logits, targets, mask).item() == pytest.approx(expected)
    fitted = soft.student_loss("genres", "multilabel", torch.logit(targets.clamp(1e-4, 1 - 1e-4)), targets, mask)
    assert fitted < soft.student_loss("genres", "multilabel", torch.logit(targets.clamp(1e-4, 1 - 1e-4)) + 0.5,
                                      targets, mask)  # the minimum is at the soft target


def test_the_precision_guard_admits_only_pseudo_labels_as_precise_as_measured_on_validation():
    method = get_consistency("fixmatch")
    objective = method(method.Options(threshold="fixed", positive=0.5, negative=0.5 - 1e-6, min_precision=0.7),
                       TASKS, {"genres": AsymmetricLoss(), "scale": MulticlassLoss()}, PRIORS)
    probs = torch.tensor([[0.95, 0.9, 0.1], [0.6, 0.2, 0.05]])
    _, mask = objective.pseudo_targets("genres", "multilabel", probs)
    assert mask.sum() == 0  # before any validation nothing is trusted
    # validation: class a's positives are right from 0.7 up, its negatives up to 0.6; b and c have no
    # positive at all: their positives are never trusted, their negatives up to their highest score
    val = torch.tensor([[0.9, 0.9, 0.1], [0.8, 0.8, 0.1], [0.7, 0.7, 0.2], [0.6, 0.6, 0.2], [0.3, 0.3, 0.3],
                        [0.1, 0.1, 0.3]])
    truth = torch.tensor([[1.0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])
    scale_val = torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.5, 0.4, 0.1]])
    scale_truth = torch.tensor([[1.0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0]])
    objective.calibrate({"genres": val.numpy(), "scale": scale_val.numpy()},
                        {"genres": truth.numpy(), "scale": scale_truth.numpy()},
                        {"genres": np.ones(6, bool), "scale": np.ones(4, bool)})
    guard = objective.guards["genres"]
    assert guard.positive.tolist() == pytest.approx([0.7, 2.0, 2.0])
    assert guard.negative.tolist() == pytest.approx([0.6, 0.9, 0.3])  # c: all 6 scores true negatives, 6/7 >= 0.7
    targets, mask = objective.pseudo_targets("genres", "multilabel", probs)
    assert mask.tolist() == [[1, 0, 1], [0, 1, 1]]  # a: 0.95 passes, 0.6 not; b: never a positive
    assert objective.guards["scale"].positive[0].item() == pytest.approx(0.7)
    _, scale_mask = objective.pseudo_targets("scale", "multiclass", torch.tensor([[0.75, 0.2, 0.05], [0.6, 0.3, 0.1]]))
    assert scale_mask.tolist() == [1.0, 0.0]
    quality = objective.pseudo_label_quality({"genres": val.numpy(), "scale": scale_val.numpy()},
                                             {"genres": truth.numpy(), "scale": scale_truth.numpy()},
                                             {"genres": np.ones(6, bool), "scale": np.ones(4, bool)})
    assert quality["genres"]["positive_precision"] == 1.0


def test_mean_teacher_pulls_the_student_towards_the_teacher():
    torch.manual_seed(0)
    student, other = TinyModel({"genres": 3, "scale": 3}), TinyModel({"genres": 3, "scale": 3})
    teacher = EmaTeacher(other, decay=0.99)
    method = get_consistency("mean-teacher")
    objective = method(method.Options(), TASKS, {}, PRIORS)
    batch = unlabeled_batch(0)
    batch.augmentations["weak"] = lambda x, owner: x.float() / 255
    context = StepContext(step=50, steps_per_epoch=10, total_steps=100, teacher=teacher.module,
                          autocast=lambda: torch.autocast("cpu", enabled=False))
    optimizer = torch.optim.Adam(objective.trained_parameters(student), lr=0.01)
    gaps = []
    for _ in range(30):
        out = objective(batch, student, context)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        gaps.append(out.logs["genres_gap"] + out.logs["scale_gap"])
    assert gaps[-1] < gaps[0] * 0.2
    assert method.needs_teacher(method.Options())
    with pytest.raises(RuntimeError, match="needs the run's EMA teacher"):
        objective(batch, student, StepContext(0, 10, 100, None, lambda: torch.autocast("cpu", enabled=False)))


SESEMI = "recipes/sesemi.toml"


@pytest.mark.parametrize("table, message", [
    ('{name = "fixmach"}', 'unknown consistency method \'fixmach\' (did you mean "fixmatch"?)'),
    ('{name = "fixmatch", threshold = "adaptive"}', 'consistency.0.threshold: expected one of "fixed", "cap", '
                                                    '"freematch"'),
    ('{name = "fixmatch", thresold = "cap"}', 'consistency.0.thresold: unknown key (did you mean "threshold"?)'),
    ('{name = "fixmatch", positive = 0.3, negative = 0.5}', "expected 0 < negative < positive < 1"),
    ('{name = "mean-teacher", weight = -1}', "consistency.0.weight: expected x >= 0"),
])
def test_bad_consistency_tables_name_the_key(table, message):
    with pytest.raises(SemisupError) as error:
        load_recipe(SESEMI, [f"consistency=[{table}]"])
    assert message in str(error.value) and "\n" not in str(error.value)


PLUGIN = '''
from dataclasses import dataclass

import torch

from semisup.objectives import ConsistencyObjective, ObjectiveOutput


class Entropy(ConsistencyObjective):
    """Entropy minimisation: confident predictions on unlabeled clips."""

    @dataclass(frozen=True)
    class Options:
        scale: float = 1.0

    def forward(self, batch, model, context):
        with context.autocast():
            logits = model(batch.view("weak"), batch.owner, batch.num_trailers)
        p = torch.sigmoid(logits["genres"].float()).clamp(1e-6, 1 - 1e-6)
        entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum(1).mean()
        return ObjectiveOutput(self.options.scale * self.weight_now(context) * entropy,
                               {"entropy": entropy.item()}, len(batch.frames))
'''


@pytest.mark.slow
def test_a_consistency_plug_in_by_module_path_trains_beside_sesemi(tiny_recipe, tmp_path, monkeypatch):
    from semisup.io import read_metrics
    from semisup.train.run import start_run

    # A package name no other test uses: Python caches imported packages for the session.
    (tmp_path / "consistency_plugins").mkdir()
    (tmp_path / "consistency_plugins" / "__init__.py").write_text("")
    (tmp_path / "consistency_plugins" / "entropy.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    extra = '\n[[consistency]]\nname = "consistency_plugins.entropy:Entropy"\nscale = 0.5\nframes_per_trailer = 2\n'
    result = start_run(tiny_recipe(extra=extra), ["train.epochs=1"], tmp_path / "run")
    record = read_metrics(result.run_dir / "metrics.jsonl")[0]
    assert set(record["consistency"]) == {"consistency_plugins.entropy:Entropy"} and "sesemi" in record["pretext"]
    assert record["consistency"]["consistency_plugins.entropy:Entropy"]["entropy"] > 0
    with pytest.raises(SemisupError, match="consistency.0.scal: unknown key"):
        load_recipe(tiny_recipe(extra=extra.replace("scale", "scal"), name="bad.toml"))


@pytest.mark.slow
def test_the_guard_is_calibrated_on_validation_clips_as_long_as_the_unlabeled_ones(tiny_recipe, tmp_path):
    """The unlabeled clips have 2 frames, validation scores 4: the ``min_precision`` guard is
    measured on 2-frame validation clips, where its cut-offs hold for the clips it judges."""
    from semisup.build import build_eval_loader, build_model, input_transform, load_data
    from semisup.checkpoints import load_checkpoint
    from semisup.data.samples import split_samples
    from semisup.device import resolve_precision
    from semisup.evaluate.inference import predict
    from semisup.objectives.fixmatch import PrecisionGuard
    from semisup.train.loop import pseudo_label_frames
    from semisup.train.run import start_run
    from semisup.train.setup import build_objectives

    extra = '\n[[consistency]]\nname = "fixmatch"\nmin_precision = 0.6\nframes_per_trailer = 2\n'
    path = tiny_recipe(extra=extra, pretext=False)
    result = start_run(path, ["train.epochs=2"], tmp_path / "run")
    recipe = load_recipe(path)
    dataset = load_data(recipe.data, recipe.tasks, needs_unlabeled=True)
    specs = dataset.tasks
    assert pseudo_label_frames(recipe, build_objectives(recipe, dataset.samples, specs)) == 2
    sesemi = load_recipe(tiny_recipe(name="sesemi.toml"))
    assert pseudo_label_frames(sesemi, build_objectives(sesemi, dataset.samples, specs)) is None

    saved = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")  # after the last validation
    model = build_model(recipe, specs)
    model.load_state_dict(saved["model"])
    stored = saved["objectives"]["consistency/fixmatch"]

    def guard_from(frames):
        loader = build_eval_loader(split_samples(dataset.samples, "val"), specs, recipe.data.image_size, frames,
                                   8, 0)
        scored = predict(model, loader, input_transform(model), specs, torch.device("cpu"),
                         resolve_precision(torch.device("cpu"), recipe.run.precision))  # as the run scored
        keep = scored.labeled["genres"]
        guard = PrecisionGuard("multilabel", len(specs[0].labels), 0.6)
        guard.calibrate(torch.as_tensor(scored.scores["genres"][keep]),
                        torch.as_tensor(scored.targets["genres"][keep], dtype=torch.float32))
        return guard

    def gap(a, b):  # the largest difference between two guards' cut-offs
        return max((a.positive - b.positive).abs().max().item(), (a.negative - b.negative).abs().max().item())

    two = guard_from(2)
    stored_guard = PrecisionGuard("multilabel", len(specs[0].labels), 0.6)
    stored_guard.load_state_dict({"positive": stored["guards.genres.positive"],
                                  "negative": stored["guards.genres.negative"]})
    four = guard_from(recipe.data.eval_frames)  # what validation's own scores would have set
    assert gap(stored_guard, two) < 1e-6 < 1e-3 < gap(stored_guard, four)
