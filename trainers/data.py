"""The typed data contract between the corpus writer and every trainer.

One row type per kind of training material, read and written only here:

| kind | row | files (relative to the kind folder, ``row.path``) |
|---|---|---|
| ``clips`` | :class:`ClipRow` (label) | ``path`` is the clip |
| ``query`` | :class:`QueryRow` (label, events) | ``path/{mix,target,background,query}.wav`` |
| ``songs`` | :class:`SongRow` (stems) | ``path/{mixture,vocals,accompaniment,drums,bass,other}.wav`` |
| ``timbre`` | :class:`TimbreRow` (pair or solo) | pair: ``path/{piano,violin}.wav``; solo: ``path`` |
| ``fusion`` | :class:`FusionRow` (a, b) | ``path/{a,b}.wav`` |

A kind folder holds ``manifest.jsonl``, one JSON row per item. :func:`read` returns typed rows and
fails loudly (:class:`DataError`, naming the file, the line and the field) on a missing or unknown
field or a wrong type: no trainer guesses field names. Every row carries

* ``sources``: where its audio came from, ``[{"path", "package", "licence", "real"}]`` (``real`` is
  true for recordings, false for renders and synthetic voices), and
* ``effects``: the production chain applied (``[{"stem", "effect", ...}]``, empty when none;
  :mod:`trainers.corpus.effects`),
* ``split``: ``"train"`` or ``"dev"`` (held-out sources for choosing models; never the bench).

A folder of the user's own audio without a manifest (the Train tab's "dataset folder") is turned
into rows by :func:`rows_from_folder`, the one place that knows those layouts.
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

MANIFEST = "manifest.jsonl"
SPLITS = ("train", "dev")
KINDS = ("clips", "query", "songs", "timbre", "fusion")
#: source of audio the user brought (no package, licence unknown to us)
USER_PACKAGE = "user"


class DataError(ValueError):
    """A manifest row or a dataset folder does not follow the contract (message names where)."""


class NoDataError(DataError):
    """A folder holds no items of the kind asked for (no manifest, or no known layout)."""


# ---------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Source:
    """Where a piece of audio came from."""

    path: str
    package: str
    licence: str
    real: bool

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise DataError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise DataError(f"{where}: expected a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        return [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise DataError(f"{where}: expected an object, got {value!r}")
        return value
    if tp is Source:
        return _parse(Source, value, where)
    if origin is typing.Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        return _check_type(value, next(a for a in args if a is not type(None)), where)
    raise TypeError(f"unsupported field type {tp!r}")


def _parse(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise DataError(f"{where}: expected an object, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown} for a {cls.__name__} (known: {sorted(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
                raise DataError(f"{where}: missing field '{name}' of a {cls.__name__}")
            continue
        kwargs[name] = _check_type(d[name], hints[name], f"{where}: field '{name}'")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        raise DataError(f"{where}: {err}") from None


# ---------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """Fields every row has."""

    id: str
    index: int
    path: str
    sr: int
    seconds: float
    sources: list[Source]
    effects: list[dict]
    split: str = "train"
    #: free description (score, voices, tempo, ...): recorded for people, never read by a trainer
    info: dict = field(default_factory=dict)

    kind: ClassVar[str] = ""
    #: the files of an item: name -> path relative to the item (``""`` = ``path`` itself)
    FILES: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.sr <= 0 or self.seconds < 0:
            raise ValueError(f"bad sr/seconds ({self.sr}, {self.seconds})")
        if Path(self.path).is_absolute() and self.sources and self.sources[0].package != USER_PACKAGE:
            raise ValueError(f"path must be relative to the kind folder, got {self.path!r}")
        if ".." in Path(self.path).parts:
            raise ValueError(f"path must stay inside the kind folder, got {self.path!r}")

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["sources"] = [s.to_json() if isinstance(s, Source) else dict(s) for s in self.sources]
        return d

    def files(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Absolute paths of this item's audio files, by name (``folder`` = the kind folder)."""
        base = Path(folder) / self.path
        return {n: base / f"{n}.wav" for n in self.FILES} if self.FILES else {"audio": base}

    @property
    def real(self) -> bool:
        """Whether any of its audio is a real recording."""
        return any(s.real for s in self.sources)


@dataclass(frozen=True)
class ClipRow(Row):
    """One labelled clip (``clips/<label>/clip_NNNNN.wav``)."""

    label: str = ""
    label_index: int = -1
    rms_db: float = 0.0
    kind: ClassVar[str] = "clips"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.label:
            raise ValueError("a clip needs a label")


@dataclass(frozen=True)
class QueryRow(Row):
    """A (mixture, query, target) triple; ``events`` are ``[start, end]`` seconds of the target."""

    label: str = ""
    label_index: int = -1
    events: list[list[float]] = field(default_factory=list)
    tbr_db_active: float = 0.0
    kind: ClassVar[str] = "query"
    FILES: ClassVar[tuple[str, ...]] = ("mix", "target", "background", "query")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.label:
            raise ValueError("a triple needs a label")
        for ev in self.events:
            if len(ev) != 2 or not ev[0] < ev[1]:
                raise ValueError(f"bad event {ev}")


@dataclass(frozen=True)
class SongRow(Row):
    """A song with stems; ``mixture = vocals + accompaniment``, ``accompaniment = drums + bass + other``."""

    stems: list[str] = field(default_factory=lambda: ["vocals", "drums", "bass", "other"])
    kind: ClassVar[str] = "songs"

    def files(self, folder: str | os.PathLike) -> dict[str, Path]:
        base = Path(folder) / self.path
        return {n: base / f"{n}.wav" for n in ("mixture", "vocals", "accompaniment", *self.stems)}


@dataclass(frozen=True)
class TimbreRow(Row):
    """A piano/violin pair of the same notes (``type="pair"``) or one instrument's solo."""

    type: str = "pair"
    instrument: str = "pair"
    kind: ClassVar[str] = "timbre"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.type not in ("pair", "solo"):
            raise ValueError(f"type must be 'pair' or 'solo', got {self.type!r}")
        if self.type == "solo" and self.instrument not in ("piano", "violin"):
            raise ValueError(f"a solo's instrument must be piano or violin, got {self.instrument!r}")

    def files(self, folder: str | os.PathLike) -> dict[str, Path]:
        base = Path(folder) / self.path
        if self.type == "pair":
            return {"piano": base / "piano.wav", "violin": base / "violin.wav"}
        return {self.instrument: base}


@dataclass(frozen=True)
class FusionRow(Row):
    """Two songs ``a`` and ``b`` (``a``/``b``: tempo, key, meter and source of each)."""

    a: dict = field(default_factory=dict)
    b: dict = field(default_factory=dict)
    kind: ClassVar[str] = "fusion"
    FILES: ClassVar[tuple[str, ...]] = ("a", "b")


ROW_TYPES: dict[str, type[Row]] = {c.kind: c for c in (ClipRow, QueryRow, SongRow, TimbreRow, FusionRow)}


def parse_row(kind: str, d: dict, where: str = "row") -> Row:
    """A typed row from its JSON object (raises :class:`DataError` naming ``where``)."""
    if kind not in ROW_TYPES:
        raise DataError(f"unknown data kind {kind!r}; one of {KINDS}")
    return _parse(ROW_TYPES[kind], d, where)


def manifest_path(folder: str | os.PathLike, kind: str) -> Path:
    """``folder/manifest.jsonl``, or ``folder/<kind>/manifest.jsonl`` for a corpus root."""
    folder = Path(folder)
    for p in (folder / MANIFEST, folder / kind / MANIFEST):
        if p.is_file():
            return p
    raise NoDataError(f"'{folder}' holds no {MANIFEST} of {kind} items (nor '{kind}/{MANIFEST}'): render it with "
                    f"`launch.py corpus --kinds {kind}`, or see docs/corpus.md for the layout.")


def read(folder: str | os.PathLike, kind: str, *, split: str | None = None, check_files: bool = False) -> list[Row]:
    """Typed rows of a kind folder (or a corpus root), in manifest order.

    ``split`` keeps one split only; ``check_files`` also requires every file of each row to exist.
    Raises :class:`DataError` on the first malformed row (file, line and field in the message).
    """
    man = manifest_path(folder, kind)
    rows: list[Row] = []
    with man.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{man}:{n}"
            try:
                d = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not JSON ({err.msg})") from None
            row = parse_row(kind, d, where)
            if check_files:
                missing = [str(p) for p in row.files(man.parent).values() if not p.is_file()]
                if missing:
                    raise DataError(f"{where}: missing file(s) {missing}")
            if split is None or row.split == split:
                rows.append(row)
    return rows


def kind_folder(folder: str | os.PathLike, kind: str) -> Path:
    """The folder that the rows' ``path`` fields are relative to."""
    return manifest_path(folder, kind).parent


# ---------------------------------------------------------------------------------- user folders
_USER = lambda p: [Source(str(p), USER_PACKAGE, "user-supplied", True)]  # noqa: E731


def rows_from_folder(folder: str | os.PathLike, kind: str) -> list[Row]:
    """Rows for a folder of the user's own audio without a manifest.

    Layouts (documented in docs/corpus.md):
    * ``fusion``: sub-folders with ``a.wav`` + ``b.wav`` (or the original's ``input.wav`` + ``target.wav``),
      or files ``NAME_input.wav`` + ``NAME_target.wav``; else every ``*.wav`` is a song of its own;
    * ``clips``: ``<label>/<file>.wav`` (the folder name is the class);
    * ``timbre``: sub-folders with ``piano.wav`` + ``violin.wav``, and ``piano/*.wav`` / ``violin/*.wav`` solos.
    Paths are absolute; sources say ``package="user"``.
    """
    import soundfile as sf

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Dataset folder not found: '{folder}'.")
    rows: list[Row] = []

    def info(p: Path) -> tuple[int, float]:
        try:
            i = sf.info(str(p))
            return int(i.samplerate), float(i.frames / i.samplerate)
        except Exception:  # noqa: BLE001 - unreadable files are reported by the trainer's loader
            return 1, 0.0

    def walk(pattern: str):
        return sorted(p for p in folder.rglob(pattern)
                      if not any(x.startswith(".") for x in p.relative_to(folder).parts))

    if kind == "fusion":
        for sub in sorted({p.parent for p in walk("*.wav")}):
            for na, nb in (("a", "b"), ("input", "target")):
                if (sub / f"{na}.wav").is_file() and (sub / f"{nb}.wav").is_file():
                    sr, s = info(sub / f"{na}.wav")
                    row = FusionRow(id=sub.name, index=len(rows), path=str(sub), sr=sr, seconds=s,
                                    sources=_USER(sub), effects=[])
                    rows.append(dataclasses.replace(row, info={"files": {"a": f"{na}.wav", "b": f"{nb}.wav"}}))
                    break
        for f in walk("*_input.wav"):
            t = f.with_name(f.name.replace("_input.wav", "_target.wav"))
            if t.is_file():
                sr, s = info(f)
                rows.append(FusionRow(id=f.stem, index=len(rows), path=str(f.parent), sr=sr, seconds=s,
                                      sources=_USER(f), effects=[], info={"files": {"a": f.name, "b": t.name}}))
        if not rows:  # loose songs: the trainer pairs them at random
            for f in walk("*.wav"):
                sr, s = info(f)
                rows.append(FusionRow(id=f.stem, index=len(rows), path=str(f.parent), sr=sr, seconds=s,
                                      sources=_USER(f), effects=[], info={"files": {"a": f.name, "b": None}}))
    elif kind == "clips":
        for f in walk("*.wav"):
            if f.parent == folder:
                continue
            sr, s = info(f)
            rows.append(ClipRow(id=f.stem, index=len(rows), path=str(f), sr=sr, seconds=s, sources=_USER(f),
                                effects=[], label=f.parent.name))
    elif kind == "timbre":
        for sub in sorted({p.parent for p in walk("piano.wav")}):
            if (sub / "violin.wav").is_file():
                sr, s = info(sub / "piano.wav")
                rows.append(TimbreRow(id=sub.name, index=len(rows), path=str(sub), sr=sr, seconds=s,
                                      sources=_USER(sub), effects=[], type="pair"))
        for inst in ("piano", "violin"):
            for f in walk(f"{inst}/*.wav"):
                sr, s = info(f)
                rows.append(TimbreRow(id=f.stem, index=len(rows), path=str(f), sr=sr, seconds=s, sources=_USER(f),
                                      effects=[], type="solo", instrument=inst))
    else:
        raise DataError(f"no folder layout for {kind!r} without a manifest; render it with `launch.py corpus`.")
    if not rows:
        raise NoDataError(f"'{folder}' holds no {kind} items in a known layout (see docs/corpus.md).")
    return rows


def fusion_files(row: FusionRow, folder: str | os.PathLike) -> tuple[Path, Path | None]:
    """The (a, b) files of a fusion row (user rows may name them input/target; a loose song has no b)."""
    names = row.info.get("files") if isinstance(row.info, dict) else None
    base = Path(folder) / row.path
    if names:
        return base / names["a"], (base / names["b"]) if names.get("b") else None
    return base / "a.wav", base / "b.wav"


def rendered_fusion_sides(folder: str | os.PathLike):
    """``(row, "a" | "b", that side of its meta.json, its wav path)`` for every rendered song of a corpus's fusion
    pairs; a real bed (``estimated`` in the manifest or in ``meta.json``: its beats and key are the engine's own
    estimates, not the truth) is left out."""
    base = kind_folder(folder, "fusion")
    for row in read(folder, "fusion"):
        meta = json.loads((base / row.path / "meta.json").read_text())
        for name in ("a", "b"):
            side = meta.get(name) or {}
            if side.get("estimated") or (getattr(row, name) or {}).get("estimated"):
                continue
            yield row, name, side, base / row.path / f"{name}.wav"


def load(folder: str | os.PathLike, kind: str, **kw) -> tuple[list[Row], Path]:
    """Rows and their base folder: a manifest when there is one, else :func:`rows_from_folder`."""
    try:
        return read(folder, kind, **kw), kind_folder(folder, kind)
    except NoDataError:
        return rows_from_folder(folder, kind), Path("/")
