"""`python launch.py train vocals-bs ROOT [ROOT2 ...] --out_dir RUN`: train the band-split separator (four stems).

ROOT is a corpus (or its ``songs/`` folder) whose rows carry ``vocals, drums, bass, other`` stems. Rows of the
``dev`` split are held out and used for every choice (``validate``: the dev songs' vocals SDR, the number the
trainer reports); the training rows are stored once as a waveform set (``RUN/waves``: the four stems of every
training song, mono at the model rate, float16, each song scaled by the gain that brings its mixture to -20
dBFS as at inference). Each training example is built on the fly (**dynamic remixing**): with probability
``--remix_prob`` a stem comes from another song (each stem drawn independently), each stem gets a random gain
in +-``--stem_gain_db`` dB and a random stereo position (constant-power pan, ``--pan``), so the stereo model
sees stereo mixes although the corpus is mono. Loss: per stem, the log error-to-signal energy ratio of the
masked mixture STFT relative to the mixture's energy (the CNN's ``psa`` loss per stem, vocals weighted
``--vocals_weight``). The shared solver: AdamW,
one-cycle, resumable (rerun the same command), torchrun; the final model goes to ``--export``.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

HELP = "train the band-split separator (vocals, drums, bass, other; full band, stereo) on corpus songs"
WAVES_FILE = "waves_bs.json"
STEMS = ("vocals", "drums", "bass", "other")


def add_arguments(parser) -> None:
    from trainers.solver import add_solver_arguments

    parser.add_argument("data", nargs="+", help="corpus roots (or their songs/ folders) with four-stem songs")
    add_solver_arguments(parser, epochs=4, batch_size=6, ckpt_every=50)
    h = parser.add_argument_group("model")
    h.add_argument("--dim", type=int, default=48, help="features per band")
    h.add_argument("--n_bands", type=int, default=32, help="bands (mel-like spacing, at most)")
    h.add_argument("--dilations", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 1],
                   help="time dilation per trunk block (receptive field 1 + 2 * sum)")
    h.add_argument("--compress", type=float, default=0.3, help="power-law exponent of the input magnitudes")
    h.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle)")
    h.add_argument("--weight_decay", type=float, default=1e-4)
    d = parser.add_argument_group("data")
    d.add_argument("--seconds", type=float, default=3.0, help="training excerpt length")
    d.add_argument("--remix_prob", type=float, default=0.5, help="probability that a stem comes from another song")
    d.add_argument("--stem_gain_db", type=float, default=6.0, help="random gain of each stem, +- dB")
    d.add_argument("--pan", type=float, default=0.6, help="largest pan position of a stem (0 centre, 1 hard side)")
    d.add_argument("--vocals_weight", type=float, default=2.0, help="weight of the vocals stem in the loss")
    d.add_argument("--dev_seconds", type=float, default=20.0, help="seconds of each dev song scored in validation")
    d.add_argument("--epoch_items", type=int, default=0,
                   help="examples per epoch (0: two per excerpt length of training audio); validation runs per epoch")
    d.add_argument("--dev_songs", type=int, default=13, help="dev songs scored in validation (at most)")
    parser.add_argument("--init", default=None, help="initialise the weights from this exported model (same shape)")
    parser.add_argument("--export", default=None, help="final model path (default RUN/vocals-bs.safetensors)")


def _rows(roots):
    from trainers.data import kind_folder, read

    out = []
    for root in roots:
        base = kind_folder(root, "songs")
        for r in read(root, "songs"):
            f = r.files(base)
            if all(f[s].is_file() for s in STEMS):
                out.append((r, f))
    if not out:
        raise FileNotFoundError("No songs with vocals, drums, bass and other stems in " + ", ".join(map(str, roots)))
    return out


def load_stems(files: dict, sr: int):
    """``(4, T)`` float32 mono stems at ``sr`` and the gain that brings their sum to -20 dBFS."""
    import numpy as np

    from engines.audio import io as audio_io
    from engines.audio import levels

    arrs = [audio_io.load(files[s], sr, mono=True)[0][0] for s in STEMS]
    T = min(a.shape[-1] for a in arrs)
    x = np.stack([a[:T] for a in arrs]).astype(np.float32)
    return x, levels.rms_gain(x.sum(0), -20.0)


def build_waves(roots, out: Path, sr: int) -> dict:
    """``out/stems.f16`` ``(4, total)`` memmap of the training songs, ``out/waves_bs.json`` (songs and offsets,
    the dev songs' files)."""
    import numpy as np

    rows = _rows(roots)
    train = [(r, f) for r, f in rows if r.split != "dev"]
    dev = [(r, f) for r, f in rows if r.split == "dev"]
    out.mkdir(parents=True, exist_ok=True)
    total, arrays = 0, []
    songs = []
    for r, f in train:
        x, g = load_stems(f, sr)
        arrays.append((x * g).astype(np.float16))
        songs.append({"id": r.id, "start": total, "length": int(x.shape[1])})
        total += x.shape[1]
    mm = np.lib.format.open_memmap(out / "stems.npy", mode="w+", dtype=np.float16, shape=(4, total))
    for s, a in zip(songs, arrays):
        mm[:, s["start"]:s["start"] + s["length"]] = a
    mm.flush()
    del mm
    meta = {"sample_rate": sr, "stems": list(STEMS), "songs": songs, "train_songs": len(songs),
            "train_seconds": round(total / sr, 1), "roots": [str(r) for r in roots],
            "dev": [{"id": r.id, **{k: str(v) for k, v in f.items()}} for r, f in dev]}
    (out / WAVES_FILE).write_text(json.dumps(meta, indent=1))
    return meta


class RemixSet:
    """Training examples ``(4 stems, 2 channels, L)`` float32 drawn from the waveform set (see the module
    docstring); one item per ``L / 2`` samples of training audio, so an epoch sees every part about twice."""

    def __init__(self, folder: Path, seconds: float, remix_prob: float, stem_gain_db: float, pan: float,
                 seed: int = 0, items: int = 0):
        import numpy as np

        self.meta = json.loads((folder / WAVES_FILE).read_text())
        self.stems = np.load(folder / "stems.npy", mmap_mode="r")
        self.L = int(seconds * self.meta["sample_rate"])
        self.songs = [s for s in self.meta["songs"] if s["length"] > self.L]
        self.remix_prob, self.gain_db, self.pan, self.seed = remix_prob, stem_gain_db, pan, seed
        self.n = items or max(1, sum(s["length"] for s in self.songs) * 2 // self.L)
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def _cut(self, rng, song: dict, k: int):
        off = song["start"] + int(rng.integers(0, song["length"] - self.L + 1))
        return self.stems[k, off:off + self.L].astype("float32")

    def __getitem__(self, i: int):
        import numpy as np
        import torch

        rng = np.random.default_rng((self.seed, i, int(torch.randint(0, 2**31 - 1, ()).item())))
        base = self.songs[int(rng.integers(len(self.songs)))]
        out = np.empty((4, 2, self.L), np.float32)
        for k in range(4):
            song = self.songs[int(rng.integers(len(self.songs)))] if rng.random() < self.remix_prob else base
            x = self._cut(rng, song, k) * 10 ** (rng.uniform(-self.gain_db, self.gain_db) / 20)
            p = rng.uniform(-self.pan, self.pan)
            theta = (p + 1) * np.pi / 4
            out[k, 0], out[k, 1] = x * np.cos(theta) * np.sqrt(2), x * np.sin(theta) * np.sqrt(2)
        return torch.from_numpy(out)


def stem_loss(logits, spec_stems, spec_mix, weights):
    """Weighted sum over stems of ``sum |M_s X - S_s|^2 / sum |X|^2`` per example, averaged over the batch: by
    Parseval each stem's waveform error energy relative to the mixture (the CNN's ``psa`` loss, per stem; what a
    song's SDR measures, without the huge weight a per-window log ratio gives to windows where a stem is silent).

    Args:
        logits: ``(B, S, C, F, N)``; spec_stems: complex ``(B, S, C, F, N)``; spec_mix: complex ``(B, C, F, N)``.
        weights: ``(S,)`` tensor.
    """
    import torch

    m = torch.softmax(logits, 1)
    err = (m * spec_mix[:, None] - spec_stems).abs().pow(2).sum((2, 3, 4))  # (B, S)
    energy = spec_mix.abs().pow(2).sum((1, 2, 3))[:, None] + 1e-8
    return ((err / energy) * weights).sum(1).mean() / weights.sum()


def audible(stem, mix, floor_db: float = -30.0) -> bool:
    """Whether ``stem`` holds more than ``floor_db`` dB of the mixture's energy (else its SDR means nothing)."""
    import numpy as np

    return float(np.sum(np.square(stem))) > 10 ** (floor_db / 10) * float(np.sum(np.square(mix)))


def evaluate(net, dev: list[dict], sr: int, seconds: float | None, stems: int = 4) -> dict:
    """SDR of each stem (and of the accompaniment) on the dev songs, mono references: ``{"sdr": vocals mean,
    "per_song": [...], "<stem>": mean, "accompaniment": mean}``; a stem under -30 dB of its song's mixture is
    left out of its mean (its SDR would be meaningless)."""
    import numpy as np
    import torch

    from engines.audio.metrics import sdr
    from engines.vocals.bandsplit import separate_stems

    per: dict[str, list] = {s: [] for s in (*STEMS, "accompaniment")}
    for song in dev:
        x, _ = load_stems(song, sr)
        if seconds:
            x = x[:, : int(seconds * sr)]
        mix = x.sum(0, keepdims=True)
        from engines.audio import levels

        gain = levels.rms_gain(mix, -20.0)
        est = separate_stems(net, torch.from_numpy(mix), gain, stems=stems).cpu().numpy()[:, 0]
        for k, s in enumerate(STEMS[: est.shape[0]]):
            if audible(x[k], mix[0]):  # a stem absent from the song has no meaningful SDR
                per[s].append(sdr(x[k], est[k]))
        per["accompaniment"].append(sdr(x[1:].sum(0), mix[0] - est[0]))
    out = {s: float(np.mean(v)) for s, v in per.items() if v}
    out["sdr"] = out["vocals"]
    out["per_song"] = [round(float(v), 2) for v in per["vocals"]]
    return out


def run(args) -> int:
    import torch

    from engines.checkpoint import build_checked, load_model
    from engines.vocals.bandsplit import BandSplitSeparator, band_edges
    from trainers import distrib
    from trainers.solver import Solver, config_from_args, one_cycle, seed_everything, total_steps

    distrib.init()
    seed_everything(args.seed)
    sr, n_fft, hop = 44100, 2048, 512
    folder = Path(args.out_dir) / "waves"
    if distrib.is_main() and not (folder / WAVES_FILE).is_file():
        print(f"Building the four-stem waveform set from {', '.join(args.data)} into {folder}", flush=True)
        build_waves([Path(d) for d in args.data], folder, sr)
    distrib.barrier()
    ds = RemixSet(folder, args.seconds, args.remix_prob, args.stem_gain_db, args.pan, seed=args.seed + 1000 * distrib.rank(),
                  items=args.epoch_items)
    hp = {k: getattr(args, k) for k in ("dim", "n_bands", "dilations", "compress", "lr", "weight_decay", "seconds",
                                         "remix_prob", "stem_gain_db", "pan", "vocals_weight", "batch_size",
                                         "epochs", "max_steps", "bf16")}
    hp["mask_sharpen"] = 1.0
    model = build_checked(BandSplitSeparator, sample_rate=sr, n_fft=n_fft, hop=hop,
                          band_edges=band_edges(n_fft, sr, args.n_bands), dim=args.dim, dilations=list(args.dilations),
                          kernel=3, channels=2, stems=list(STEMS), compress=args.compress, hparams=hp)
    if args.init:
        model.load_state_dict(load_model(args.init, expected=BandSplitSeparator).state_dict())
        print(f"Initialised the weights from {args.init}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    cfg = config_from_args(args, progress_bar=False)
    cfg.grad_clip = 5.0
    total = total_steps(len(ds), cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps)
    sched = one_cycle(opt, args.lr, total, pct_start=0.1)
    solver = Solver(model, opt, cfg, scheduler=sched, hparams=hp)
    weights = torch.tensor([args.vocals_weight, 1.0, 1.0, 1.0])
    out = Path(cfg.out_dir)
    dev = ds.meta["dev"][: args.dev_songs]
    trained_on = (f"{', '.join(ds.meta['roots'])}: {ds.meta['train_songs']} training songs "
                  f"({ds.meta['train_seconds']} s), dynamic remixing p {args.remix_prob}, +-{args.stem_gain_db} dB, "
                  f"pan +-{args.pan}; dev split held out ({len(ds.meta['dev'])} songs)")

    from engines.audio import spectral

    def train_step(m, batch):
        # batch (B, 4, 2, L): stems; the mixture is their sum
        mix = batch.sum(1)
        X = spectral.stft(mix, n_fft, hop)
        S = spectral.stft(batch, n_fft, hop)
        logits = m(X).float()  # float32 loss under --bf16 autocast
        loss = stem_loss(logits, S, X, weights.to(batch.device))
        return {"loss": loss}

    def validate(m):
        if not dev:
            return {}
        res = evaluate(m, dev, sr, args.dev_seconds)
        m.train()
        return {k: v for k, v in res.items() if k != "per_song"}

    def on_epoch_end(epoch, tr, va):
        msg = f"Epoch {epoch}: Train Loss: {tr.get('loss', float('nan')):.3f}"
        if "sdr" in va:
            msg += " dev SDR " + ", ".join(f"{k} {va[k]:.2f}" for k in (*STEMS, "accompaniment") if k in va)
        print(msg, flush=True)
        solver.export(out / f"epoch_{epoch:03d}.safetensors", {"trained_on": trained_on, "kind": "vocals", "dev": va})

    res = solver.fit(ds, train_step, validate=validate, on_epoch_end=on_epoch_end)
    if distrib.is_main() and solver.step and not res.get("stopped"):
        path = Path(args.export or out / "vocals-bs.safetensors")
        solver.export(path, {"trained_on": trained_on, "kind": "vocals",
                             "dataset": {"train_songs": ds.meta["train_songs"], "train_seconds": ds.meta["train_seconds"]}})
        print(json.dumps({"event": "exported", "path": str(path), **{k: v for k, v in res.items() if k != "stopped"}}),
              flush=True)
    distrib.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python trainers/vocals_bs.py ...``: the same as ``launch.py train vocals-bs ...``."""
    from trainers.solver import script_main

    return script_main("train vocals-bs", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
