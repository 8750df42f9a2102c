"""Read, override, validate and write recipes.

A recipe is TOML read with :mod:`tomllib`, overridden with ``--set
section.key=value`` strings, and turned into the frozen dataclasses of
:mod:`semisup.config.schema`. Every problem raises :class:`SemisupError` with
one line naming the file and key, e.g.::

    recipes/sesemi.toml: data.image_siz: unknown key (did you mean "image_size"?)
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Sequence

import tomli_w

from semisup.config.schema import ConsistencyConfig, DataConfig, ModelConfig, PretextConfig, Recipe, TaskConfig
from semisup.errors import SemisupError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read a TOML recipe, apply ``--set`` overrides and validate it.

    Args:
        path: the recipe file.
        overrides: ``"section.key=value"`` strings; values are TOML literals
            (``3``, ``true``, ``"x"``, ``[1, 2]``) or, failing that, plain strings.

    Returns:
        The validated recipe.

    Raises:
        SemisupError: unreadable or malformed file, unknown key, wrong type,
            out-of-range value or missing path.
    """
    path = Path(path)
    if path.is_dir():
        raise SemisupError(f"{path}: is a folder, expected a recipe .toml file (e.g. recipes/sesemi.toml, "
                           "or RUN_DIR/config.toml)")
    if not path.is_file():
        raise SemisupError(f"{path}: recipe not found (expected a .toml file)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SemisupError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SemisupError(f"{path}: not a UTF-8 text file") from None
    raw = apply_overrides(raw, overrides)
    return parse_recipe(raw, source=str(path))


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``section.key=value`` override set.

    Numeric path segments index arrays of tables: ``tasks.0.column=genre``.
    """
    import copy

    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise SemisupError(f"--set {item}: expected section.key=value")
        value = _parse_value(text.strip())
        node: Any = raw
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                node = _list_item(node, part, where, item)
            else:
                node = node.setdefault(part, {})
                if isinstance(node, list) and len(node) == 1 and not parts[depth + 1].isdigit():
                    node = node[0]  # a single [[tasks]] or [[pretext]] entry: tasks.column=x
            if not isinstance(node, (dict, list)):
                raise SemisupError(f"--set {item}: {where} is a value, not a section")
        if isinstance(node, list):
            raise SemisupError(f"--set {item}: {'.'.join(parts[:-1])} holds several entries; "
                               f"name one by index, e.g. {parts[0]}.0.{parts[-1]}")
        node[parts[-1]] = value
    return raw


def parse_assignments(items: Sequence[str], option: str = "--option") -> dict[str, Any]:
    """``key=value`` strings (values are TOML literals; anything else is a string) as a dict.

    Example:
        >>> parse_assignments(["candidates=4", 'reduce="max"', "measure=entropy"])
        {'candidates': 4, 'reduce': 'max', 'measure': 'entropy'}
    """
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SemisupError(f"{option} {item}: expected key=value")
        out[key.strip()] = _parse_value(text.strip())
    return out


def _list_item(node: list, part: str, where: str, item: str) -> Any:
    if not part.isdigit() or int(part) >= len(node):
        raise SemisupError(f"--set {item}: {where}: expected an index below {len(node)}")
    return node[int(part)]


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_recipe(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a raw TOML mapping into a :class:`Recipe`.

    Raises:
        SemisupError: naming ``source`` and the offending key.
    """
    recipe = _build(Recipe, raw, "", source)
    _check_semantics(recipe, source)
    return recipe


# ---------------------------------------------------------------- validation


def build_options(cls: type, table: dict[str, Any], where: str, source: str) -> Any:
    """Build a plug-in's ``Options`` dataclass from a table (a recipe section, or a command's
    ``--option key=value`` pairs), checking keys, types, ranges and the class's own checks.

    Raises:
        SemisupError: one line naming ``source``, ``where`` and the key at fault.
    """
    return _build(cls, table, where, source)


def _build(cls: type, table: Any, where: str, source: str) -> Any:
    """Build dataclass ``cls`` from ``table``, checking keys, types and ranges."""
    if not isinstance(table, dict):
        raise SemisupError(f"{source}: {where or 'recipe'}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    own, extra = dict(table), {}
    if cls in (PretextConfig, ConsistencyConfig):  # a plug-in's own options sit beside the common keys
        extra = {k: own.pop(k) for k in list(own) if k not in fields or k == "options"}
    for key in own:
        if key not in fields:
            raise _unknown_key(source, where, key, fields)
    values = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in own:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SemisupError(f"{source}: {key}: {_missing(hints[name], f)}")
            if isinstance(f.default, Path):  # relative default paths are resolved like given ones
                values[name] = f.default.expanduser().absolute()
            continue
        value = _coerce(hints[name], own[name], key, source)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            _check_range(value, key, source, f.metadata)
        values[name] = value
    if cls is PretextConfig:
        values["options"] = _pretext_options(values, extra, where, source, fields)
    if cls is ConsistencyConfig:
        values["options"] = _consistency_options(values, extra, where, source, fields)
    if cls is TaskConfig and values.get("aggregator"):
        values["aggregator_options"] = _aggregator_options(values, where, source)
    elif cls is TaskConfig and values.get("aggregator_options") is not None:
        raise SemisupError(f"{source}: {where}.aggregator_options: set only together with an aggregator")
    try:
        return cls(**values)
    except ValueError as exc:  # a section's own consistency checks (e.g. a task's options)
        key, _, rest = str(exc).partition(": ")
        if rest and key in values:  # "keep: expected ..." from check_option: name the key in full
            raise SemisupError(f"{source}: {where + '.' if where else ''}{key}: {rest}") from None
        raise SemisupError(f"{source}: {where or 'recipe'}: {exc}") from None


def _missing(tp: Any, f: dataclasses.Field) -> str:
    if dataclasses.is_dataclass(tp):
        return f"missing required [{f.name}] section"
    if typing.get_origin(tp) is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
        return f"at least one [[{f.name}]] entry is required"
    return f"missing required key ({f.metadata.get('doc') or 'no default'})"


def _pretext_options(values: dict, extra: dict, where: str, source: str, fields: dict) -> Any:
    from semisup.pretext import get_pretext_task

    task_cls = get_pretext_task(values["name"], where=f"{source}: {where}.name")
    frames = values.get("frames_per_trailer", fields["frames_per_trailer"].default)
    if frames < task_cls.min_frames:
        raise SemisupError(f"{source}: {where}.frames_per_trailer: pretext task {values['name']!r} needs at least "
                           f"{task_cls.min_frames} frames per trailer, got {frames}")
    option_fields = {f.name: f for f in dataclasses.fields(task_cls.Options)}
    for key in extra:
        if key not in option_fields:
            raise _unknown_key(source, where, key, {**fields, **option_fields}, omit={"options"})
    return _build(task_cls.Options, extra, where, source)


def _consistency_options(values: dict, extra: dict, where: str, source: str, fields: dict) -> Any:
    from semisup.objectives import get_consistency

    method = get_consistency(values["name"], where=f"{source}: {where}.name")
    option_fields = {f.name: f for f in dataclasses.fields(method.Options)}
    for key in extra:
        if key not in option_fields:
            raise _unknown_key(source, where, key, {**fields, **option_fields}, omit={"options"})
    return _build(method.Options, extra, where, source)


def _aggregator_options(values: dict, where: str, source: str) -> Any:
    from semisup.models.aggregators import get_aggregator

    cls = get_aggregator(values["aggregator"], where=f"{source}: {where}.aggregator")
    return _build(cls.Options, values.get("aggregator_options") or {}, f"{where}.aggregator_options", source)


def _unknown_key(source: str, where: str, key: str, known: dict, omit: set = frozenset()) -> SemisupError:
    names = [n for n in known if n not in omit]
    guess = difflib.get_close_matches(key, names, n=1)
    full = f"{where}.{key}" if where else key
    hint = f'did you mean "{guess[0]}"?' if guess else "expected one of " + ", ".join(names)
    return SemisupError(f"{source}: {full}: unknown key ({hint})")


def _coerce(tp: Any, value: Any, key: str, source: str) -> Any:
    """Check ``value`` against type hint ``tp``; return it in the schema's type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [o for o in typing.get_args(tp) if o is not type(None)]  # TOML has no null: absent is None
        if len(options) == 1:  # an optional section: its own errors name the key at fault
            return _coerce(options[0], value, key, source)
        for option in options:
            try:
                return _coerce(option, value, key, source)
            except SemisupError:
                continue
        raise SemisupError(f"{source}: {key}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise SemisupError(f"{source}: {key}: expected {_describe(tp)}, got {value!r}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise SemisupError(f"{source}: {key}: expected a table of strings, e.g. {{\"a\" = \"b\"}}, got {value!r}")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list):
            raise SemisupError(f"{source}: {key}: expected {_describe(tp)}, got {value!r}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(item_tp, v, f"{key}.{i}", source) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, source)
    if tp is Any:
        return value
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        Path: isinstance(value, str) and value != "",
    }.get(tp)
    if ok is None:  # pragma: no cover - a schema bug, not user input
        raise TypeError(f"unsupported schema type {tp!r} for {key}")
    if not ok:
        raise SemisupError(f"{source}: {key}: expected {_describe(tp)}, got {value!r}")
    if tp is float:
        value = float(value)
    if tp is Path:  # an object-store URL (data.root of shards) stays as written
        from semisup.data.shards import is_url

        value = Path(value) if is_url(value) else Path(value).expanduser().absolute()
    return value


def _check_range(value: float, key: str, source: str, meta: Any) -> None:
    bounds = [(meta.get("ge"), lambda a, b: a >= b), (meta.get("gt"), lambda a, b: a > b),
              (meta.get("le"), lambda a, b: a <= b), (meta.get("lt"), lambda a, b: a < b)]
    if any(bound is not None and not holds(value, bound) for bound, holds in bounds):
        raise SemisupError(f"{source}: {key}: expected {range_text(meta)}, got {value!r}")


def range_text(meta: typing.Mapping[str, Any]) -> str:
    """A field's numeric range, e.g. ``0 < x <= 1``; empty when it has none.

    One wording for the error a value out of range gets and for the key
    reference (:mod:`semisup.config.reference`).

    >>> range_text({"gt": 0.0, "le": 1.0})
    '0 < x <= 1'
    >>> range_text({"ge": 1})
    'x >= 1'
    """
    def num(v: float) -> str:
        return f"{v:g}"

    low = f"{num(meta['ge'])} <= " if meta.get("ge") is not None else (
        f"{num(meta['gt'])} < " if meta.get("gt") is not None else "")
    high = f" <= {num(meta['le'])}" if meta.get("le") is not None else (
        f" < {num(meta['lt'])}" if meta.get("lt") is not None else "")
    if not low and not high:
        return ""
    if low and not high:
        return "x " + (">= " if "<=" in low else "> ") + low.split(" ")[0]
    return f"{low}x{high}"


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(t) for t in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(f'"{v}"' for v in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            Path: "a path"}.get(tp, getattr(tp, "__name__", str(tp)))


def _first_repeat(values: typing.Iterable[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


MULTICLASS_LOSS_KEYS = ("label_smoothing", "focal_gamma", "class_balance", "logit_adjustment")


def balance_task(recipe: Recipe) -> TaskConfig | None:
    """The task whose classes ``train.balance`` re-balances (None when balancing is off)."""
    t = recipe.train
    if t.balance == "none":
        return None
    if t.balance_task:
        return next((task for task in recipe.tasks if task.name == t.balance_task), None)
    kinds = ("multiclass", "multilabel") if t.balance == "repeat-factor" else ("multiclass",)
    return next((task for task in recipe.tasks if task.kind in kinds), None)


def _check_balance(recipe: Recipe, source: str) -> None:
    t = recipe.train
    if t.balance == "none":
        return
    task = balance_task(recipe)
    if t.balance_task and task is None:
        raise SemisupError(f"{source}: train.balance_task: no task {t.balance_task!r} "
                           f"(tasks: {', '.join(x.name for x in recipe.tasks)})")
    if task is None or (t.balance != "repeat-factor" and task.kind != "multiclass"):
        raise SemisupError(f'{source}: train.balance = "{t.balance}" needs a multiclass task (use "repeat-factor" '
                           "for multi-label tasks)")


def _motion_inputs(model: ModelConfig) -> list[str]:
    """The motion inputs a 2D encoder is given (``frame_differences``, ``temporal_shift``), by key."""
    return [key for key in ("frame_differences", "temporal_shift") if getattr(model, key)]


def reads_order(recipe: Recipe, task: TaskConfig) -> bool:
    """Whether ``task`` hears the order of a trailer's frames: its aggregator reads order or feeds
    motion features, or the encoder sees motion (frame differences, temporal shift, a video network)."""
    from semisup.models.aggregators import get_aggregator
    from semisup.models.video_encoder import is_video_encoder

    m = recipe.model
    if _motion_inputs(m) or is_video_encoder(m.encoder):
        return True
    return (get_aggregator(task.aggregator or m.pooling).order_sensitive
            or bool(getattr(task.aggregator_options, "motion", False)))


def _check_reversed_labels(recipe: Recipe, source: str) -> None:
    """``reversed_labels``: multiclass tasks, known classes, and a task that hears the order."""
    for i, task in enumerate(recipe.tasks):
        if not task.reversed_labels:
            continue
        where = f"{source}: tasks.{i}.reversed_labels"
        if task.kind != "multiclass":
            raise SemisupError(f"{where}: only for multiclass tasks (a reversed clip takes one class)")
        unknown = [c for pair in task.reversed_labels.items() for c in pair if task.labels and c not in task.labels]
        if unknown:
            raise SemisupError(f"{where}: {unknown[0]!r} is not a label of task {task.name!r} "
                               f"(labels: {', '.join(task.labels)})")
        if not reads_order(recipe, task):
            raise SemisupError(f"{where}: task {task.name!r} does not read its frames in order (its aggregator, "
                               f"{task.aggregator or recipe.model.pooling!r}, neither reads order nor feeds motion, "
                               "and the encoder sees no motion), so a clip played backwards looks the same as "
                               'forwards; use an order-aware aggregator ("gru") or drop reversed_labels')


def _check_synthetic_moves(recipe: Recipe, source: str) -> None:
    from semisup.data.synthetic import MOVE_KINDS

    m = recipe.synthetic_moves
    if m is None:
        return
    where = f"{source}: synthetic_moves"
    names = ", ".join(t.name for t in recipe.tasks)
    task = next((t for t in recipe.tasks if t.name == m.task), None)
    if task is None:
        raise SemisupError(f"{where}.task: no task {m.task!r} (tasks: {names})")
    if task.kind != "multiclass":
        raise SemisupError(f"{where}.task: {m.task!r} is {task.kind}; camera moves label a multiclass task")
    if not m.moves:
        raise SemisupError(f'{where}.moves: expected at least one class, e.g. {{Push = "push", Pull = "pull"}}')
    for name, kind in m.moves.items():
        if kind not in MOVE_KINDS:
            raise SemisupError(f"{where}.moves.{name}: expected one of {', '.join(MOVE_KINDS)}, got {kind!r}")
    if not m.sources:
        raise SemisupError(f'{where}.sources: expected at least one class, e.g. ["Static"]')
    both = sorted(set(m.sources) & set(m.moves))
    if both:
        raise SemisupError(f"{where}: class {both[0]!r} is both a source and a move")
    classes = [*m.sources, *m.moves]
    unknown = [c for c in classes if task.labels and c not in task.labels]
    if unknown:
        raise SemisupError(f"{where}: {unknown[0]!r} is not a label of task {m.task!r} "
                           f"(labels: {', '.join(task.labels)})")
    if len(m.zoom) != 2 or not 1.0 <= m.zoom[0] <= m.zoom[1] <= 4.0:
        raise SemisupError(f"{where}.zoom: expected [low, high] with 1 <= low <= high <= 4, got {list(m.zoom)}")
    for name in m.keep_labels:
        if name == m.task or name not in {t.name for t in recipe.tasks}:
            raise SemisupError(f"{where}.keep_labels: {name!r} is not another task (tasks: {names})")


def _check_features(recipe: Recipe, source: str) -> None:
    """A run from cached features (``data.features``) has no pixels: a frozen encoder, no pixel objectives."""
    if not recipe.data.features:
        return
    why = "cached features are the frozen encoder's output, there are no pixels"
    if recipe.model.trainable_stages != 0:
        raise SemisupError(f"{source}: model.trainable_stages: training from cached features (data.features) "
                           f"needs a frozen encoder, trainable_stages = 0, got {recipe.model.trainable_stages!r}")
    if recipe.pretext:
        raise SemisupError(f"{source}: pretext: pretext task {recipe.pretext[0].name!r} cannot train from cached "
                           f"features (data.features): {why} to rotate or shuffle; drop the [[pretext]] tables")
    if recipe.pretrain is not None:
        raise SemisupError(f"{source}: pretrain: a [pretrain] stage trains the encoder, which data.features "
                           "keeps frozen")
    if recipe.synthetic_moves is not None:
        raise SemisupError(f"{source}: synthetic_moves: camera moves are filmed in pixels; {why}")
    reversed_task = next((i for i, t in enumerate(recipe.tasks) if t.reversed_labels), None)
    if reversed_task is not None:
        raise SemisupError(f"{source}: tasks.{reversed_task}.reversed_labels: a cached feature is one frame's alone, "
                           "so a clip played backwards from the cache is not the clip reversed for the encoder; "
                           "drop one of the two")
    from semisup.models.video_encoder import is_video_encoder

    if is_video_encoder(recipe.model.encoder):
        raise SemisupError(f"{source}: model.encoder: a cached feature is one frame's alone, but the video network "
                           f"{recipe.model.encoder!r} reads frames together; train it from frames (drop data.features)")
    if _motion_inputs(recipe.model):
        key = _motion_inputs(recipe.model)[0]
        raise SemisupError(f"{source}: model.{key}: a cached feature is one frame's alone, but "
                           f"model.{key} makes it depend on the frames around it; drop one of the two")


def _check_semantics(recipe: Recipe, source: str) -> None:
    """Checks that span several keys, or touch the file system."""
    if not recipe.tasks:
        raise SemisupError(f"{source}: tasks: at least one [[tasks]] entry is required")
    twice = _first_repeat(t.name for t in recipe.tasks)
    if twice is not None:
        raise SemisupError(f"{source}: tasks: task name {twice!r} appears twice")
    for i, task in enumerate(recipe.tasks):
        if len(set(task.labels)) != len(task.labels):
            raise SemisupError(f"{source}: tasks.{i}.labels: a label appears twice")
        if not task.separator:
            raise SemisupError(f"{source}: tasks.{i}.separator: expected a non-empty string")
        for key in MULTICLASS_LOSS_KEYS:
            if task.kind == "multilabel" and getattr(task, key):
                raise SemisupError(f"{source}: tasks.{i}.{key}: only for multiclass tasks (multi-label tasks use "
                                   "Asymmetric Loss, set in [loss])")
    _check_balance(recipe, source)
    _check_synthetic_moves(recipe, source)
    _check_reversed_labels(recipe, source)
    _check_features(recipe, source)
    if recipe.model.temporal_shift and recipe.model.trainable_stages == 0:
        raise SemisupError(f"{source}: model.temporal_shift: shifts channels in the encoder stages that train, "
                           "and model.trainable_stages = 0 trains none; train at least one stage")
    twice = _first_repeat(p.name for p in recipe.pretext)
    if twice is not None:
        raise SemisupError(f"{source}: pretext: task {twice!r} is listed twice")
    twice = _first_repeat(c.name for c in recipe.consistency)
    if twice is not None:
        raise SemisupError(f"{source}: consistency: method {twice!r} is listed twice")
    data: DataConfig = recipe.data
    root = data.root.expanduser()
    from semisup.data.shards import PLAN, is_url

    if data.format == "shards" and not is_url(data.root) and not (root / PLAN).is_file():
        raise SemisupError(f"{source}: data.root: {root} is not a shard dataset (no {PLAN}; write one with "
                           "`semisup data shard ROOT OUT`)")
    if not data.format.startswith("demo") and data.format != "shards" and not root.is_dir():  # the demo's formats build their root
        what = "is a file, expected a folder" if root.exists() else "does not exist"
        raise SemisupError(f"{source}: data.root: {root} {what}")
    needed = {"folder": [("labels_file", data.labels_file)], "movieshots": [("annotations", data.annotations)],
              "movienet": [("keyframes_dir", data.keyframes_dir)]}.get(data.format, [])
    for key, name in needed:
        if not (root / name).exists():
            raise SemisupError(f"{source}: data.{key}: {root / name} does not exist")
    from semisup.data.video import decoder_missing

    missing = decoder_missing(data.decoder)
    if missing:
        raise SemisupError(f"{source}: data.decoder: {data.decoder!r} cannot run here: {missing}; "
                           'or use "pyav"')
    pretrained = recipe.model.pretrained
    if isinstance(pretrained, Path) and not pretrained.is_file():
        raise SemisupError(f"{source}: model.pretrained: {pretrained} does not exist "
                           "(expected false, true or a weights file)")
    device = recipe.run.device
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise SemisupError(f'{source}: run.device: expected "auto", "cpu", "cuda" or "cuda:N", got {device!r}')
    if any(k < 1 for k in recipe.eval.top_k):
        raise SemisupError(f"{source}: eval.top_k: expected positive integers, got {list(recipe.eval.top_k)}")
    import timm

    from semisup.models.video_encoder import PREFIX, VIDEO_MODELS, is_video_encoder

    if is_video_encoder(recipe.model.encoder):
        if recipe.model.encoder[len(PREFIX):] not in VIDEO_MODELS:
            raise SemisupError(f"{source}: model.encoder: {recipe.model.encoder!r}: semisup takes torchvision's video "
                               f"ResNets {', '.join(PREFIX + m for m in VIDEO_MODELS)}")
        if _motion_inputs(recipe.model):
            key = _motion_inputs(recipe.model)[0]
            raise SemisupError(f"{source}: model.{key}: {recipe.model.encoder!r} is a video network, it reads "
                               f"motion itself; drop model.{key}")
    elif not timm.is_model(recipe.model.encoder):
        guess = difflib.get_close_matches(recipe.model.encoder, timm.list_models(), n=1)
        hint = f' (did you mean "{guess[0]}"?)' if guess else ""
        raise SemisupError(f"{source}: model.encoder: {recipe.model.encoder!r} is not a timm model{hint}")


# ------------------------------------------------------------------- writing


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain TOML-ready data (pretext options flattened into their tables)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            out = {}
            for f in dataclasses.fields(value):
                item = getattr(value, f.name)
                if f.name == "options" and isinstance(value, (PretextConfig, ConsistencyConfig)):
                    out.update(plain(item) if item is not None else {})
                elif item is not None:
                    out[f.name] = plain(item)
            return out
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, Path):  # a URL (shards' data.root) gets back the "//" a Path drops
            from semisup.data.shards import is_url, location_of

            return location_of(value) if is_url(value) else str(value)
        return value

    return plain(recipe)


def recipe_to_toml(recipe: Recipe) -> str:
    """Serialise a recipe as TOML that :func:`load_recipe` reads back unchanged."""
    return tomli_w.dumps(recipe_to_dict(recipe))


# ---------------------------------------------------------------- resuming

SAFE_TO_CHANGE_ON_RESUME = ("run.name", "run.out_dir", "run.device", "run.compile", "data.root",
                            "data.num_workers", "data.max_unreadable", "train.eval_batch_size",
                            "train.checkpoint_minutes", "pretrain.checkpoint_minutes", "eval.top_k",
                            "eval.threshold", "train.epochs", "pretrain.epochs", "train.labeled_batch_size",
                            "train.unlabeled_batch_size", "pretrain.batch_size", "run.parallel")
"""Recipe keys a run's ``config.toml`` may change between a kill and ``semisup run --resume``: where
the data lies and how fast it is read, where and on what the run computes, how often it saves, how
its reports round; and how long it trains and its per-process batch sizes, so that a run can be
trained for more epochs, or continued by another number of processes at the same global batch
(``run.parallel`` too: a checkpoint says which it resumes under). Every other key shapes the model or
what it learns from, and a resumed run refuses a change."""

MOVABLE_ON_RESUME = ("model.pretrained", "data.features")
"""Keys whose path may change on resume as long as they still name a file or folder (the weights
file or the feature cache moved; a cache is opened only if its key still matches)."""


def recipe_changes(trained: dict[str, Any], now: dict[str, Any],
                   allowed: Sequence[str] = SAFE_TO_CHANGE_ON_RESUME) -> list[str]:
    """The keys on which two recipes (as :func:`recipe_to_dict` writes them) differ, outside ``allowed``,
    each described as ``key: now NEW, trained with OLD``.

    Example:
        >>> trained = {"data": {"image_size": 32, "num_workers": 2}}
        >>> recipe_changes(trained, {"data": {"image_size": 48, "num_workers": 0}})
        ['data.image_size: now 48, trained with 32']
    """
    before, after = _flat(trained), _flat(now)
    changed = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new or any(key == a or key.startswith(a + ".") for a in allowed):
            continue
        if key in MOVABLE_ON_RESUME and isinstance(old, str) and isinstance(new, str) and old and new:
            continue
        changed.append(f"{key}: now {_shown(new)}, trained with {_shown(old)}")
    return changed


def stored_recipe_dict(stored: dict[str, Any]) -> dict[str, Any] | None:
    """A recipe kept as :func:`recipe_to_dict` wrote it (by this or an older semisup), read through
    today's schema, so that options added since take their defaults on both sides of a comparison;
    None when it no longer reads (an option removed since: nothing to compare against).

    Example:
        >>> stored_recipe_dict({"data": {"root": "/data"}, "tasks": [{"name": "genres"}]})["data"]["image_size"]
        224
    """
    try:
        return recipe_to_dict(_build(Recipe, stored, "", "stage.json"))
    except (SemisupError, TypeError, ValueError):
        return None


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data": {"root": x}, "tasks": [{"name": y}]}`` -> ``{"data.root": x, "tasks.0.name": y}``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, item in enumerate(value):
            out.update(_flat(item, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): value}


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value)
