"""The built-in demo: a small, deterministic trailer dataset made from real photos.

A fair miniature of multi-label genre classification: ten genres with a long
tail, one to four genres per trailer, 3-20 frames per trailer, and genre cues
a CNN has to learn from pixels: objects cut from real photos (a cat for
Comedy, a motorbike for Action), textures (a star field for Sci-Fi,
micrographs for Documentary) and colour grading (warm for Romance, dark
green for Horror). A frame shows each of its trailer's genres only with some
probability, some frames show none, and unrelated objects appear as
distractors. All photos ship with scikit-image; nothing is downloaded.

``write_demo(root, seed)`` writes the generic folder format: ``labels.csv``
(a few dozen labeled train trailers, a pool of unlabeled ones several times
larger, val and test) and ``labels_all.csv`` (the same trailers with the
pool's hidden labels revealed, for "all labels" reference runs). See
``datasets/demo.md``. ``variant="shots"`` writes the shot variant instead
(:mod:`semisup.data.demo_shots`): short shots labeled with shot scale and
camera movement (columns ``scale`` and ``movement``); ``variant="moves"`` the
cross-source movement benchmark (:mod:`semisup.data.demo_moves`: column
``movement``, the test split filmed over real videos no other split uses).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from semisup.data import demo_moves, demo_shots
from semisup.errors import SemisupError
from semisup.io import atomic_folder

DEMO_VERSION = 1
FRAME_SIZE = (128, 96)  # width, height: 4:3 frames
SPLIT_SIZES = {"train": 60, "unlabeled": 360, "val": 100, "test": 200}

# (genre, relative frequency, cues): the long tail is in the frequencies.
GENRES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("Drama", 0.40, ("obj:person",)),
    ("Comedy", 0.32, ("obj:cat",)),
    ("Action", 0.26, ("obj:motorbike",)),
    ("Thriller", 0.20, ("obj:cameraman", "grade:cold")),
    ("Romance", 0.15, ("obj:cup", "grade:warm")),
    ("Horror", 0.11, ("grade:horror",)),
    ("Sci-Fi", 0.08, ("bg:stars", "obj:rocket")),
    ("Documentary", 0.06, ("bg:micrograph",)),
    ("Animation", 0.045, ("obj:logo", "grade:poster")),
    ("Western", 0.035, ("bg:desert", "obj:horse", "grade:sepia")),
)
GENRES_PER_TRAILER = (0.35, 0.35, 0.2, 0.1)  # P(1), P(2), P(3), P(4)
CUE_SHOWN = 0.6       # chance a frame shows a given genre of its trailer
FILLER_FRAME = 0.12   # chance a frame shows no genre at all
DISTRACTOR = 0.35     # chance a frame holds an unrelated object


VARIANTS = ("genres", "shots", "moves")


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`write_demo` wrote.

    Attributes:
        label_counts: per CSV column (task), how many samples carry each label.
    """

    root: Path
    trailers: int
    frames: int
    splits: dict[str, int]
    label_counts: dict[str, dict[str, int]]


def write_demo(root: Path, seed: int = 0, scale: float = 1.0, variant: str = "genres") -> DemoSummary:
    """Write the demo dataset into ``root`` (which must not exist yet).

    The folder is built next to ``root`` and renamed into place, so an
    interrupted build leaves nothing half-written.

    Args:
        root: output folder.
        seed: the same seed gives byte-identical files.
        scale: multiplies every split's size (``0.1`` for a tiny copy in tests).
        variant: ``genres`` (trailers with multi-label genres), ``shots``
            (shots with a shot scale and a camera movement) or ``moves`` (shots with a
            camera movement, tested on footage no other split holds).

    Raises:
        SemisupError: ``root`` exists and is not empty.
        ValueError: an unknown variant.
    """
    if variant not in VARIANTS:
        raise ValueError(f"demo variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SemisupError(f"{root}: already exists and is not an empty folder")
    base = {"genres": SPLIT_SIZES, "shots": demo_shots.SPLIT_SIZES, "moves": demo_moves.SPLIT_SIZES}[variant]
    sizes = {split: max(2, round(n * scale)) for split, n in base.items()}
    columns = {"genres": {"genres": [g for g, _, _ in GENRES]},
               "shots": {"scale": list(demo_shots.SCALES), "movement": list(demo_shots.MOVEMENTS)},
               "moves": {"movement": list(demo_shots.MOVEMENTS)}}[variant]
    with atomic_folder(root) as tmp:
        rows, n_frames = [], 0
        index = 0
        for split, count in sizes.items():
            for _ in range(count):
                rng = np.random.default_rng([seed, index])
                if variant == "shots":
                    sample_id = f"shot-{index:04d}"
                    shot_scale, movement = demo_shots.draw_labels(rng)
                    frames, _ = demo_shots.render_shot(shot_scale, movement, rng, FRAME_SIZE, _assets())
                    labels = {"scale": (shot_scale,), "movement": (movement,)}
                elif variant == "moves":
                    sample_id = f"move-{index:04d}"
                    movement = demo_moves.draw_movement(rng)
                    frames = demo_moves.render_move(split, movement, rng, FRAME_SIZE, _assets())
                    labels = {"movement": (movement,)}
                else:
                    sample_id = f"demo-{index:04d}"
                    genres = _draw_genres(rng)
                    frames = _render_trailer(genres, rng)
                    labels = {"genres": genres}
                folder = tmp / "frames" / sample_id
                folder.mkdir(parents=True)
                for j, frame in enumerate(frames):
                    frame.save(folder / f"{j:03d}.jpg", quality=88)
                n_frames += len(frames)
                rows.append((sample_id, split, labels))
                index += 1
        hidden = [(i, s, {} if s == "unlabeled" else labels) for i, s, labels in rows]
        _write_csv(tmp / "labels.csv", hidden, columns)
        _write_csv(tmp / "labels_all.csv", [(i, "train" if s == "unlabeled" else s, labels) for i, s, labels in rows],
                   columns)
        counts = {c: {v: sum(v in labels[c] for _, _, labels in rows) for v in order} for c, order in columns.items()}
        summary = {"version": DEMO_VERSION, "variant": variant, "seed": seed, "scale": scale, "splits": sizes,
                   "frames": n_frames, "label_counts": counts}
        (tmp / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    return DemoSummary(root, len(rows), n_frames, sizes, counts)


def demo_cache() -> Path:
    """The one place where a recipe with ``format = "demo"`` builds the demo on first use."""
    return Path("~/.cache/semisup").expanduser()


def ensure_demo(root: Path, seed: int = 0, variant: str = "genres") -> Path:
    """Build the demo at ``root`` unless it is already there; return ``root``.

    The demo is built on first use only under :func:`demo_cache`
    (``~/.cache/semisup``), where the shipped recipes keep it. Anywhere else,
    a missing folder is an error: a recipe switched to your own data with
    ``--set data.root=PATH`` but still ``format = "demo"`` must never train on
    a demo rendered at a mistyped path. ``semisup data demo PATH`` builds it
    anywhere on purpose.

    Raises:
        SemisupError: ``root`` holds something that is not this demo version,
            or is missing outside the cache.
    """
    root = Path(root).expanduser()
    marker = root / "demo.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("version") == DEMO_VERSION and info.get("variant", "genres") == variant:
            return root
        if info.get("version") == DEMO_VERSION:
            raise SemisupError(f"{root}: holds the demo's {info.get('variant', 'genres')!r} variant, the recipe "
                               f"asks for {variant!r}; point data.root at another folder")
        raise SemisupError(f"{root}: holds demo version {info.get('version')}, this semisup makes "
                           f"version {DEMO_VERSION}; delete the folder to rebuild it")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SemisupError(f"{root}: not a semisup demo folder; use data.format = \"folder\" to read it")
    if not root.resolve().is_relative_to(demo_cache().resolve()):
        state = "is an empty folder" if root.exists() else "does not exist"
        raise SemisupError(f'{root}: {state}; data.format = "demo" builds the demo on first use only under '
                           f'{demo_cache()} (for your own data set data.format = "folder"; to build the demo '
                           f"there, run `semisup data demo {root}`)")
    try:
        write_demo(root, seed, variant=variant)
    except FileExistsError:  # pragma: no cover - another process built it meanwhile
        pass
    except OSError as exc:
        if not marker.is_file():
            raise SemisupError(f"{root}: cannot build the demo dataset here ({exc.strerror})") from exc
    return root


def _write_csv(path: Path, rows: list, columns: dict[str, list[str]]) -> None:
    """``id,split,<column>...`` rows; labels in vocabulary order, ``|``-separated; no labels: empty cells."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "split", *columns])
        for sample_id, split, labels in rows:
            writer.writerow([sample_id, split, *("|".join(sorted(labels.get(c, ()), key=order.index))
                                                 for c, order in columns.items())])


def _draw_genres(rng: np.random.Generator) -> tuple[str, ...]:
    k = rng.choice(len(GENRES_PER_TRAILER), p=GENRES_PER_TRAILER) + 1
    weights = np.array([w for _, w, _ in GENRES])
    picked = rng.choice(len(GENRES), size=k, replace=False, p=weights / weights.sum())
    return tuple(GENRES[i][0] for i in sorted(picked))


# ----------------------------------------------------------------- rendering


def _render_trailer(genres: tuple[str, ...], rng: np.random.Generator) -> list[Image.Image]:
    n = int(rng.integers(3, 21))
    shown = [[g for g in genres if rng.random() < CUE_SHOWN] for _ in range(n)]
    for j in range(n):
        if rng.random() < FILLER_FRAME:
            shown[j] = []
    for g in genres:  # every genre of the trailer is visible somewhere
        if not any(g in s for s in shown):
            shown[int(rng.integers(n))].append(g)
    return [_render_frame(s, rng) for s in shown]


def _render_frame(genres: list[str], rng: np.random.Generator) -> Image.Image:
    cues = [c for g in genres for c in dict((n, c) for n, _, c in GENRES)[g]]
    backgrounds = [c[3:] for c in cues if c.startswith("bg:")]
    objects = [c[4:] for c in cues if c.startswith("obj:")]
    grades = [c[6:] for c in cues if c.startswith("grade:")]
    assets = _assets()
    bg_name = backgrounds[int(rng.integers(len(backgrounds)))] if backgrounds else None
    source = assets.backgrounds[bg_name] if bg_name else assets.neutral[int(rng.integers(len(assets.neutral)))]
    frame = _background(source, rng)
    if rng.random() < DISTRACTOR:
        objects.append("distractor")
    for name in rng.permutation(objects):
        pool = assets.objects[name]
        _paste(frame, pool[int(rng.integers(len(pool)))], rng)
    image = np.asarray(frame, dtype=np.float32) / 255.0
    if grades:
        image = _GRADES[grades[int(rng.integers(len(grades)))]](image)
    else:  # mild, meaningless colour casts so that colour alone is not a giveaway
        image = image * rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    image = image + rng.normal(0, 0.02, size=image.shape).astype(np.float32)
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))


def _background(source: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random crop of a background photo at a random zoom, resized to the frame."""
    w, h = FRAME_SIZE
    sw, sh = source.size
    zoom = rng.uniform(0.45, 1.0)
    cw = min(sw, int(sh * w / h)) * zoom
    ch = cw * h / w
    x0 = rng.uniform(0, sw - cw)
    y0 = rng.uniform(0, sh - ch)
    return source.resize((w, h), Image.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch))


def _paste(frame: Image.Image, patch: Image.Image, rng: np.random.Generator) -> None:
    """Paste an RGBA patch at a random size, position, tilt and mirror."""
    w, h = FRAME_SIZE
    height = int(h * rng.uniform(0.35, 0.7))
    width = max(4, int(height * patch.width / patch.height))
    patch = patch.resize((width, height), Image.BILINEAR)
    if rng.random() < 0.5:
        patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
    patch = patch.rotate(rng.uniform(-12, 12), resample=Image.BILINEAR, expand=True)
    scale = rng.uniform(0.7, 1.3, size=3)
    rgb = np.asarray(patch, dtype=np.float32)
    rgb[..., :3] = np.clip(rgb[..., :3] * scale, 0, 255)
    patch = Image.fromarray(rgb.astype(np.uint8), "RGBA")
    x = int(rng.uniform(-0.2 * patch.width, w - 0.8 * patch.width))
    y = int(rng.uniform(-0.2 * patch.height, h - 0.8 * patch.height))
    frame.paste(patch, (x, y), patch)


def _grade_cold(x: np.ndarray) -> np.ndarray:
    x = np.clip((x - 0.5) * 1.35 + 0.42, 0, 1)
    return x * np.array([0.75, 0.95, 1.2], np.float32)


def _grade_warm(x: np.ndarray) -> np.ndarray:
    return np.clip(x * np.array([1.2, 0.92, 0.8], np.float32) + np.array([0.08, 0.02, 0.04], np.float32), 0, 1)


def _grade_horror(x: np.ndarray) -> np.ndarray:
    grey = x.mean(axis=2, keepdims=True)
    x = (0.35 * x + 0.65 * grey) * np.array([0.55, 0.8, 0.6], np.float32) * 0.75
    h, w = x.shape[:2]
    yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
    vignette = np.clip(1.25 - 0.6 * (xx ** 2 + yy ** 2), 0.2, 1).astype(np.float32)
    return x * vignette[..., None]


def _grade_poster(x: np.ndarray) -> np.ndarray:
    x = np.clip((x - 0.5) * 1.5 + 0.5, 0, 1)
    return np.round(x * 3) / 3


def _grade_sepia(x: np.ndarray) -> np.ndarray:
    grey = x.mean(axis=2, keepdims=True)
    return np.clip(grey * np.array([1.15, 0.95, 0.7], np.float32) + 0.05, 0, 1)


_GRADES = {"cold": _grade_cold, "warm": _grade_warm, "horror": _grade_horror,
           "poster": _grade_poster, "sepia": _grade_sepia}


# -------------------------------------------------------------------- assets


@dataclass(frozen=True)
class _Assets:
    backgrounds: dict[str, Image.Image]
    neutral: list[Image.Image]
    objects: dict[str, list[Image.Image]]


@lru_cache(maxsize=1)
def _assets() -> _Assets:
    """Photos from scikit-image, cropped and shrunk once per process."""
    from skimage import data

    def rgb(array: np.ndarray, box: tuple[float, float, float, float] = (0, 0, 1, 1),
            height: int = 160) -> Image.Image:
        array = np.asarray(array)
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        h, w = array.shape[:2]
        x0, y0, x1, y1 = box
        crop = Image.fromarray(array[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w), :3])
        return crop.resize((max(1, round(crop.width * height / crop.height)), height), Image.BILINEAR)

    def cutout(image: Image.Image, alpha: np.ndarray | None = None) -> Image.Image:
        """Give a patch a soft elliptical (or the given) alpha, so no rectangle edge is a cue."""
        if alpha is None:
            yy, xx = np.mgrid[-1:1:image.height * 1j, -1:1:image.width * 1j]
            alpha = np.clip((1.0 - (xx ** 2 + yy ** 2)) * 3.0, 0, 1)
        mask = Image.fromarray((alpha * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5))
        out = image.convert("RGBA")
        out.putalpha(mask)
        return out

    horse = rgb(~data.horse(), (0.0, 0.0, 1.0, 1.0), height=120)
    horse_alpha = np.asarray(horse)[..., 0] / 255.0
    horse_rgb = Image.fromarray((np.ones_like(np.asarray(horse)) * np.array([70, 45, 25])).astype(np.uint8))
    logo = data.logo()
    logo_img = rgb(logo[..., :3], height=120)
    logo_alpha = np.asarray(Image.fromarray(logo[..., 3]).resize(logo_img.size)) / 255.0
    objects = {
        "person": [cutout(rgb(data.astronaut(), (0.1, 0.0, 0.7, 0.75)))],
        "cat": [cutout(rgb(data.chelsea(), (0.2, 0.0, 0.85, 1.0)))],
        "motorbike": [cutout(rgb(data.stereo_motorcycle()[0], (0.0, 0.3, 0.85, 0.95)))],
        "cameraman": [cutout(rgb(data.camera(), (0.2, 0.0, 0.75, 0.95)))],
        "cup": [cutout(rgb(data.coffee(), (0.1, 0.0, 0.85, 0.85)))],
        "rocket": [cutout(rgb(data.rocket(), (0.42, 0.1, 0.66, 1.0)))],
        "logo": [cutout(logo_img, logo_alpha), cutout(rgb(data.colorwheel(), (0.05, 0.05, 0.95, 0.95)))],
        "horse": [cutout(horse_rgb, horse_alpha)],
        "distractor": [cutout(rgb(data.coins(), (0.0, 0.0, 0.5, 0.5))), cutout(rgb(data.clock())),
                       cutout(rgb(data.moon(), (0.1, 0.0, 0.5, 0.4))), cutout(rgb(data.cell()))],
    }
    backgrounds = {
        "stars": rgb(data.hubble_deep_field(), height=256),
        "micrograph": rgb(data.immunohistochemistry(), height=256),
        "desert": rgb(data.gravel(), height=256),
    }
    neutral = [rgb(data.brick(), height=256), rgb(data.page(), height=160), rgb(data.text(), height=160),
               rgb(data.grass(), height=256), rgb(data.astronaut(), (0.0, 0.75, 1.0, 1.0), height=128),
               rgb(data.camera(), (0.0, 0.7, 1.0, 1.0), height=128), rgb(data.coins(), height=200),
               rgb(data.retina(), (0.3, 0.3, 0.7, 0.7), height=200)]
    return _Assets(backgrounds, neutral, objects)
