"""`python launch.py vocals-dataset ROOT OUT`: the sliced vocal training set, in memory-mapped arrays.

Finds songs under ROOT in any of these layouts:

* DSD100: ``Mixtures/{Dev,Test}/<song>/mixture.wav`` + ``Sources/{Dev,Test}/<song>/vocals.wav`` (or
  the flattened ``Mixtures/<song>/``, ``Sources/<song>/``);
* MUSDB18-HQ wav folders: ``{train,test}/<song>/{mixture,vocals}.wav`` (or ``<song>/...``);
* the rendered corpus: ``songs/<song>/{mixture,vocals,accompaniment}.wav``.

The accompaniment is ``accompaniment.wav`` when present, else ``mixture - vocals``. Each song is
downmixed to mono, resampled to 22050 Hz, gain-normalised, and turned into features and binary
masks (:mod:`engines.vocals.features`). OUT gets:

* ``features.u8``  ``(N, 513)`` uint8 memmap, the normalised mixture features (x 255), frames of all songs;
* ``masks.u8``     ``(N, 513)`` uint8 memmap, the binary target masks;
* ``index.npy``    int64 first frame of every training window (windows never cross songs;
  one every ``stft_stride`` frames);
* ``dataset.json`` hparams, frame count, window size, the songs and their frame ranges;
* ``eval/<song>/{mixture,vocals,accompaniment}.wav``: held-out evaluation waveforms (22050 Hz mono).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import zlib
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

HELP = "build the sliced vocal training set (memory-mapped arrays + eval wavs) from song folders"
DATASET_FILE = "dataset.json"


def find_songs(root: str | os.PathLike) -> list[dict]:
    """Songs under ``root``: ``[{"name", "mixture", "vocals", "accompaniment" (or None), "split"}]``, sorted.

    A corpus ``songs`` folder (or corpus root) is read as typed rows (:mod:`trainers.data`; rows of the
    ``dev`` split are the held-out songs); other folders are walked for MUSDB18 / DSD100 layouts.
    """
    from .data import NoDataError, kind_folder, read

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset root not found: '{root}'.")
    try:
        rows = read(root, "songs")
    except NoDataError:
        rows = None
    if rows is not None:
        base = kind_folder(root, "songs")
        out = []
        for r in rows:
            f = r.files(base)
            if f["mixture"].is_file() and f["vocals"].is_file():
                out.append({"name": r.id, "mixture": str(f["mixture"]), "vocals": str(f["vocals"]),
                            "accompaniment": str(f["accompaniment"]) if f["accompaniment"].is_file() else None,
                            "split": r.split})
        if not out:
            raise FileNotFoundError(f"The songs manifest of '{root}' lists no song whose files exist.")
        return sorted(out, key=lambda s: s["name"])
    songs = {}
    for mix in sorted(root.rglob("mixture.wav")):
        d = mix.parent
        voc = d / "vocals.wav"
        if not voc.is_file():
            # DSD100: Mixtures/<split>/<song>/mixture.wav <-> Sources/<split>/<song>/vocals.wav
            parts = list(d.relative_to(root).parts)
            if "Mixtures" in parts:
                parts[parts.index("Mixtures")] = "Sources"
                voc = root.joinpath(*parts) / "vocals.wav"
        if not voc.is_file():
            logger.warning("Skipping %s: no vocals.wav next to it", d)
            continue
        acc = voc.parent / "accompaniment.wav"
        name = str(d.relative_to(root)).replace(os.sep, "__")
        for prefix in ("Mixtures__", "songs__"):
            name = name.replace(prefix, "")
        songs[name] = {"name": name, "mixture": str(mix), "vocals": str(voc),
                       "accompaniment": str(acc) if acc.is_file() else None, "split": "train"}
    if not songs:
        raise FileNotFoundError(f"No songs (mixture.wav + vocals.wav) found under '{root}'.")
    return [songs[k] for k in sorted(songs)]


def _load_song(song: dict, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from engines.audio import io as audio_io

    mix, _ = audio_io.load(song["mixture"], sr, mono=True)
    voc, _ = audio_io.load(song["vocals"], sr, mono=True)
    n = min(mix.shape[1], voc.shape[1])
    mix, voc = mix[0, :n], voc[0, :n]
    if song.get("accompaniment"):
        acc, _ = audio_io.load(song["accompaniment"], sr, mono=True)
        acc = acc[0, :n]
        if acc.shape[0] < n:
            acc = np.pad(acc, (0, n - acc.shape[0]))
    else:
        acc = mix - voc
    return mix, voc, acc


def song_arrays(mix: np.ndarray, voc: np.ndarray, acc: np.ndarray, hp) -> tuple[np.ndarray, np.ndarray]:
    """``(features (N, F) uint8, masks (N, F) uint8)`` of one mono song at the model rate."""
    import torch

    from engines.audio import spectral
    from engines.audio.levels import rms_gain
    from engines.vocals.features import features, target_mask

    g = rms_gain(mix, hp.input_rms_db)
    m = torch.from_numpy(mix * g)
    spec_m = spectral.stft(m, hp.n_fft, hp.hop_size)
    feats = features(m, hp, spec_m)
    vm = spectral.stft(torch.from_numpy(voc), hp.n_fft, hp.hop_size).abs()
    am = spectral.stft(torch.from_numpy(acc), hp.n_fft, hp.hop_size).abs()
    mask = target_mask(vm, am, hp)
    f8 = (feats.T * 255.0).round().to(torch.uint8).numpy()
    return f8, mask.T.to(torch.uint8).numpy()


def _eval_excerpt(mix, voc, acc, sr: int, seconds: float):
    """The ``seconds``-long excerpt with the most vocal energy (hop 1 s)."""
    n = int(seconds * sr)
    if mix.shape[0] <= n:
        return mix, voc, acc
    c = np.concatenate([[0.0], np.cumsum(voc.astype(np.float64) ** 2)])
    starts = np.arange(0, mix.shape[0] - n + 1, sr)
    s = int(starts[int(np.argmax(c[starts + n] - c[starts]))])
    return mix[s:s + n], voc[s:s + n], acc[s:s + n]


_STAGING_MARK = ".audio-studio-staging"
#: files that mark a folder as a set this builder made (only such a folder is ever replaced)
_SET_FILES = ("dataset.json", "waves.json")


def _check_out(roots, out: Path) -> None:
    """Refuse, before any work, an output folder that would destroy data: a song folder (or a folder
    holding one), or an existing folder that is not a set built here."""
    o = Path(os.path.realpath(out))
    for r in ([roots] if isinstance(roots, (str, os.PathLike)) else roots):
        r = Path(os.path.realpath(r))
        if o == r or o in r.parents:
            raise ValueError(f"The output folder '{out}' is (or contains) the song folder '{r}': choose another one.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"The output folder '{out}' is a file.")
    if out.is_dir() and any(out.iterdir()) and not any((out / f).exists() for f in _SET_FILES):
        raise ValueError(f"'{out}' is a folder that holds other files, not a set built by vocals-dataset: "
                         f"it is never replaced; choose a new or empty folder.")


def _staging(out: Path) -> Path:
    """A fresh ``<out>.building`` folder (with ``eval/``) where a set is written before :func:`_publish`."""
    tmp = out.with_name(out.name + ".building")
    if tmp.exists():
        if not (tmp / _STAGING_MARK).exists():
            raise ValueError(f"'{tmp}' exists and was not made by vocals-dataset: move it away first.")
        shutil.rmtree(tmp)
    (tmp / "eval").mkdir(parents=True)
    (tmp / _STAGING_MARK).touch()
    return tmp


def _publish(tmp: Path, out: Path, meta_file: str, meta: dict) -> dict:
    """Write ``meta`` into the staging folder ``tmp``, then put ``tmp`` in the place of ``out``
    (which is replaced only when it is empty or a set built here)."""
    (tmp / meta_file).write_text(json.dumps(meta, indent=1))
    (tmp / _STAGING_MARK).unlink(missing_ok=True)
    if out.exists():
        if any(out.iterdir()) and not any((out / f).exists() for f in _SET_FILES):
            raise ValueError(f"'{out}' holds other files: not replaced (the new set is in '{tmp}').")
    from engines.atomic import swap_in

    swap_in(tmp, out)
    return meta


def _training_songs(songs: list[dict], sr: int, eval_names: set, eval_dir: Path, eval_seconds: float,
                    meta_songs: list[dict]):
    """Yield ``(i, song, mix, voc, acc)`` for each training song at ``sr``.

    Unreadable songs are skipped with a warning; held-out songs (``eval_names``) are written as
    evaluation excerpts under ``eval_dir/<name>/`` and recorded in ``meta_songs`` instead.
    """
    from engines.audio import io as audio_io

    for i, song in enumerate(songs):
        try:
            mix, voc, acc = _load_song(song, sr)
        except Exception as err:  # noqa: BLE001 - a broken song is skipped, not fatal
            logger.warning("Skipping %s: %s", song["name"], err)
            continue
        if song["name"] in eval_names:
            m, v, a = _eval_excerpt(mix, voc, acc, sr, eval_seconds)
            for name, x in (("mixture", m), ("vocals", v), ("accompaniment", a)):
                audio_io.save(eval_dir / song["name"] / f"{name}.wav", x[None], sr, "FLOAT")
            meta_songs.append({"name": song["name"], "split": "eval", "seconds": len(mix) / sr})
            continue
        yield i, song, mix, voc, acc


def build(root: str | os.PathLike, out: str | os.PathLike, hp=None, *, eval_songs: int | None = None,
          eval_seconds: float = 20.0, max_songs: int | None = None, overwrite: bool = False) -> dict:
    """Build the dataset; returns the ``dataset.json`` content. Written to a temp folder, then renamed."""
    from engines.vocals.features import HParams

    hp = hp or HParams()
    out = Path(out)
    if (out / DATASET_FILE).exists() and not overwrite:
        raise FileExistsError(f"'{out}' already holds a dataset; pass --overwrite to rebuild it.")
    _check_out(root, out)
    songs = find_songs(root)
    if max_songs:
        songs = songs[:max_songs]
    n_eval = eval_songs if eval_songs is not None else max(1, min(hp.num_evals, len(songs) // 10))
    if len(songs) - n_eval < 1:
        raise ValueError(f"Only {len(songs)} song(s) under '{root}': not enough for training plus {n_eval} eval song(s).")
    # held-out songs: a deterministic choice by name hash
    order = sorted(songs, key=lambda s: zlib.crc32(s["name"].encode()))
    dev = [s["name"] for s in songs if s.get("split") == "dev"]
    eval_names = set(dev) if dev else {s["name"] for s in order[:n_eval]}  # the data's own dev split first
    tmp = _staging(out)
    sr, F = hp.sample_rate, hp.n_fft // 2 + 1
    window = hp.context + hp.predict_frames - 1
    index, meta_songs = [], []
    offset, t0 = 0, time.time()
    fpath, mpath = tmp / "features.u8", tmp / "masks.u8"
    with open(fpath, "wb") as ff, open(mpath, "wb") as fm:
        for i, song, mix, voc, acc in _training_songs(songs, sr, eval_names, tmp / "eval", eval_seconds,
                                                       meta_songs):
            f8, m8 = song_arrays(mix, voc, acc, hp)
            n = f8.shape[0]
            ff.write(f8.tobytes())
            fm.write(m8.tobytes())
            starts = np.arange(0, n - window + 1, hp.stft_stride, dtype=np.int64) + offset
            index.append(starts)
            meta_songs.append({"name": song["name"], "split": "train", "first_frame": offset, "frames": n,
                               "windows": len(starts), "vocal_bins": float(m8.mean())})
            offset += n
            if (i + 1) % 10 == 0 or i + 1 == len(songs):
                print(f"vocals-dataset: {i + 1}/{len(songs)} songs, {offset} frames, {time.time() - t0:.0f} s", flush=True)
    idx = np.concatenate(index) if index else np.zeros(0, np.int64)
    if len(idx) == 0:
        shutil.rmtree(tmp)
        raise ValueError("No training windows: the songs are shorter than one window.")
    np.save(tmp / "index.npy", idx)
    meta = {"frames": int(offset), "bins": F, "window": window, "windows": int(len(idx)),
            "hparams": hp.to_dict(), "root": str(Path(root).resolve()), "songs": meta_songs,
            "train_songs": sum(s["split"] == "train" for s in meta_songs),
            "eval_songs": sorted(eval_names), "train_seconds": round(offset * hp.hop_size / sr, 1)}
    return _publish(tmp, out, DATASET_FILE, meta)


class VocalsWindows:
    """Torch dataset over a built folder: item ``i`` -> ``(features (F, W) float32, mask (F, K) float32)``.

    ``W = context + predict_frames - 1`` input frames, ``K = predict_frames`` target frames (the
    middle frames of every 25-frame sub-window).
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        meta_path = self.folder / DATASET_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"'{folder}' is not a vocals dataset (no {DATASET_FILE}); "
                                    f"build it with 'python launch.py vocals-dataset ROOT OUT'.")
        self.meta = json.loads(meta_path.read_text())
        n, F = self.meta["frames"], self.meta["bins"]
        self.features = np.memmap(self.folder / "features.u8", np.uint8, "r", shape=(n, F))
        self.masks = np.memmap(self.folder / "masks.u8", np.uint8, "r", shape=(n, F))
        self.index = np.load(self.folder / "index.npy", mmap_mode="r")
        hp = self.meta["hparams"]
        self.window, self.half, self.k = self.meta["window"], hp["context"] // 2, hp["predict_frames"]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        import torch

        s = int(self.index[i])
        x = torch.from_numpy(np.array(self.features[s:s + self.window].T, dtype=np.float32) / 255.0)
        y = torch.from_numpy(np.array(self.masks[s + self.half:s + self.half + self.k].T, dtype=np.float32))
        return x, y


def eval_songs(folder: str | os.PathLike) -> list[Path]:
    d = Path(folder) / "eval"
    return sorted(p for p in d.iterdir() if (p / "mixture.wav").is_file()) if d.is_dir() else []


# ---------------------------------------------------------------- command
def add_arguments(parser) -> None:
    parser.add_argument("root", help="DSD100 / MUSDB18-HQ / corpus songs folder")
    parser.add_argument("out", help="output dataset folder")
    parser.add_argument("--stft_stride", type=int, default=None, help="frames between training windows (default: hparams)")
    parser.add_argument("--mask_threshold", type=float, default=None, help="vocal share that makes a bin 'vocal'")
    parser.add_argument("--ref_level_db", type=float, default=None)
    parser.add_argument("--use_preemphasis", action="store_true")
    parser.add_argument("--predict_frames", type=int, default=None, help="target frames per window")
    parser.add_argument("--eval_songs", type=int, default=None, help="held-out songs (default: ~10%%, at most num_evals)")
    parser.add_argument("--eval_seconds", type=float, default=20.0)
    parser.add_argument("--max_songs", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")


def hparams_from_args(args, base=None):
    from engines.vocals.features import HParams

    hp = base or HParams()
    for k in ("stft_stride", "mask_threshold", "ref_level_db", "predict_frames"):
        v = getattr(args, k, None)
        if v is not None:
            setattr(hp, k, v)
    if getattr(args, "use_preemphasis", False):
        hp.use_preemphasis = True
    return hp


def run(args) -> int:
    meta = build(args.root, args.out, hparams_from_args(args), eval_songs=args.eval_songs,
                 eval_seconds=args.eval_seconds, max_songs=args.max_songs, overwrite=args.overwrite)
    print(f"vocals-dataset: {meta['train_songs']} training songs ({meta['train_seconds']} s, {meta['frames']} frames, "
          f"{meta['windows']} windows), {len(meta['eval_songs'])} eval songs -> {args.out}")
    return 0


# ---------------------------------------------------------------- waveform set with remix augmentation
WAVES_FILE = "waves.json"


def _gather(roots) -> list[dict]:
    """Songs of several roots, names prefixed by the root index when more than one root is given."""
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    out = []
    for r, root in enumerate(roots):
        for s in find_songs(root):
            s = dict(s, root=r)
            if len(roots) > 1:
                s["name"] = f"r{r}_{s['name']}"
            out.append(s)
    return out


def build_waves(roots, out: str | os.PathLike, hp=None, *, eval_songs: int = 6, eval_seconds: float = 20.0,
                max_songs: int | None = None, overwrite: bool = False) -> dict:
    """The waveform training set for on-the-fly features with remix augmentation.

    Every training song is downmixed to mono at the model rate and scaled by the gain that brings
    its *mixture* to ``input_rms_db`` (as at inference); its vocals and accompaniment go, one after
    the other, into ``vocals.f32`` / ``accomp.f32`` (memory-mapped float32). ``eval_songs`` songs of
    the *last* root (chosen by name hash) are held out as ``eval/<song>/*.wav`` excerpts.
    Returns the ``waves.json`` content.
    """
    from engines.audio.levels import rms_gain
    from engines.vocals.features import HParams

    hp = hp or HParams()
    out = Path(out)
    if (out / WAVES_FILE).exists() and not overwrite:
        raise FileExistsError(f"'{out}' already holds a waveform set; pass --overwrite to rebuild it.")
    _check_out(roots, out)
    songs = _gather(roots)
    if max_songs:
        songs = songs[:max_songs]
    last = max(s["root"] for s in songs)
    pool = sorted((s for s in songs if s["root"] == last), key=lambda s: zlib.crc32(s["name"].encode()))
    dev = {s["name"] for s in songs if s.get("split") == "dev"}
    eval_names = dev or {s["name"] for s in pool[:eval_songs]}  # the data's own dev split first
    if len(songs) - len(eval_names) < 1:
        raise ValueError("Not enough songs for training plus the held-out ones.")
    tmp = _staging(out)
    sr = hp.sample_rate
    offset, meta_songs, t0 = 0, [], time.time()
    with open(tmp / "vocals.f32", "wb") as fv, open(tmp / "accomp.f32", "wb") as fa:
        for i, song, mix, voc, acc in _training_songs(songs, sr, eval_names, tmp / "eval", eval_seconds,
                                                       meta_songs):
            g = rms_gain(mix, hp.input_rms_db)
            fv.write((voc * g).astype(np.float32).tobytes())
            fa.write((acc * g).astype(np.float32).tobytes())
            meta_songs.append({"name": song["name"], "split": "train", "first_sample": offset, "samples": len(mix)})
            offset += len(mix)
            if (i + 1) % 20 == 0 or i + 1 == len(songs):
                print(f"vocals-waves: {i + 1}/{len(songs)} songs, {offset / sr:.0f} s, {time.time() - t0:.0f} s",
                      flush=True)
    meta = {"samples": int(offset), "hparams": hp.to_dict(), "roots": [str(Path(r).resolve()) for r in
            ([roots] if isinstance(roots, (str, os.PathLike)) else roots)], "songs": meta_songs,
            "train_songs": sum(s["split"] == "train" for s in meta_songs), "eval_songs": sorted(eval_names),
            "train_seconds": round(offset / sr, 1)}
    return _publish(tmp, out, WAVES_FILE, meta)


class VocalsRemix:
    """Torch dataset over a :func:`build_waves` folder: item -> ``(2, L)`` float32 (vocals, accompaniment).

    ``L`` covers ``window + 4`` STFT frames (2 frames each side are dropped after the STFT so that no
    kept frame sees the segment's edge). One item every ``stft_stride`` frames of every training song.
    Augmentation (training only): with probability ``remix_prob`` the accompaniment comes from a random
    position of another song; each stem gets a random gain in ``+-stem_gain_db`` dB.
    """

    def __init__(self, folder: str | os.PathLike, *, remix_prob: float | None = None,
                 stem_gain_db: float | None = None, seed: int = 0, jitter: bool = True):
        self.folder = Path(folder)
        meta_path = self.folder / WAVES_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"'{folder}' is not a vocals waveform set (no {WAVES_FILE}).")
        self.meta = json.loads(meta_path.read_text())
        hp = self.meta["hparams"]
        n = self.meta["samples"]
        self.vocals = np.memmap(self.folder / "vocals.f32", np.float32, "r", shape=(n,))
        self.accomp = np.memmap(self.folder / "accomp.f32", np.float32, "r", shape=(n,))
        self.hop = hp["hop_size"]
        self.window = hp["context"] + hp["predict_frames"] - 1
        self.length = (self.window + 4 - 1) * self.hop
        step = hp["stft_stride"] * self.hop
        starts, songs = [], []
        for k, s in enumerate(x for x in self.meta["songs"] if x["split"] == "train"):
            st = np.arange(s["first_sample"], s["first_sample"] + s["samples"] - self.length + 1, step, dtype=np.int64)
            starts.append(st)
            songs.append(np.full(len(st), k, np.int32))
        self.index = np.concatenate(starts)
        self.song_of = np.concatenate(songs)
        self.remix_prob = hp.get("remix_prob", 0.0) if remix_prob is None else remix_prob
        self.stem_gain_db = hp.get("stem_gain_db", 0.0) if stem_gain_db is None else stem_gain_db
        self.rng = np.random.default_rng(seed)
        self.jitter = jitter
        # last start allowed for the window of each item (its song's end)
        ends = [s["first_sample"] + s["samples"] - self.length for s in self.meta["songs"] if s["split"] == "train"]
        self.last_start = np.asarray(ends, np.int64)[self.song_of] if len(ends) else np.zeros(0, np.int64)
        self.step = step

    def _jitter(self, i: int) -> int:
        """A random offset within the stride (training augmentation), never past the song's end."""
        if not self.jitter:
            return 0
        room = int(min(self.step - 1, self.last_start[i] - self.index[i]))
        return int(self.rng.integers(room + 1)) if room > 0 else 0

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        import torch

        s, L = int(self.index[i]) + self._jitter(i), self.length
        v = np.array(self.vocals[s:s + L], dtype=np.float32)
        j = i
        if self.remix_prob > 0 and self.rng.random() < self.remix_prob:
            j = int(self.rng.integers(len(self.index)))
            if self.song_of[j] == self.song_of[i]:
                j = i
        a0 = int(self.index[j]) + self._jitter(j)
        a = np.array(self.accomp[a0:a0 + L], dtype=np.float32)
        if self.stem_gain_db > 0:
            gv, ga = (10 ** (self.rng.uniform(-self.stem_gain_db, self.stem_gain_db, 2) / 20)).astype(np.float32)
            v, a = v * gv, a * ga
        return torch.from_numpy(np.stack([v, a]))


def remix_batch(batch, hp, *, soft: bool, spectra: bool = False):
    """``(B, 2, L)`` stems -> ``(features (B, F, W), target (B, F, K))`` for the mixture ``v + a``.

    With ``spectra``, also the complex STFTs of the vocals and of the mixture at the ``K`` target
    frames, ``(B, F, K)`` each (for the waveform-domain ``psa`` loss)."""
    import torch

    from engines.audio import spectral
    from engines.vocals.features import features

    v, a = batch[:, 0], batch[:, 1]
    m = v + a
    sv, sa = spectral.stft(v, hp.n_fft, hp.hop_size), spectral.stft(a, hp.n_fft, hp.hop_size)
    x = features(m, hp, sv + sa)[..., 2:-2]  # the STFT is linear: STFT(v + a) = STFT(v) + STFT(a)
    half, K = hp.context // 2, hp.predict_frames
    sl = slice(2 + half, 2 + half + K)
    vm, am = sv[..., sl].abs(), sa[..., sl].abs()
    if soft:
        y = vm / (vm + am).clamp_min(1e-8)
        y = torch.where(vm > 1e-6, y, torch.zeros_like(y))
    else:
        from engines.vocals.features import target_mask
        y = target_mask(vm, am, hp).float()
    if spectra:
        return x.contiguous(), y.contiguous(), sv[..., sl], (sv + sa)[..., sl]
    return x.contiguous(), y.contiguous()
