"""The query model's first trainer: the embedder/classifier and the mask net of a new
:class:`engines.separation.model.QueryNet`, on mixtures made on the fly from single-source clips.

Training examples are mixed from single-source clips (``/work/corpus/clips`` by default; ``--data`` takes a
corpus ``clips`` folder (typed rows, :mod:`trainers.data`) or a folder of ``<class>/*.wav`` files, and
``--synthetic N`` makes N generated clips for tests). Each example: a target excerpt (1-2 events,
sometimes absent) inside a 3 s segment, 1-3 background clips at a target-to-background ratio drawn
from ``--tbr_db``, and a query that is another excerpt of the same source (another clip of the same
source when the manifest has one).

Loss: -SI-SDR (:func:`engines.audio.losses.si_sdr`) of the masked mixture (:meth:`QueryNet.separate`;
energy of the estimate when the target is absent) + cross-entropy on the query's and a clean target
window's class + a supervised InfoNCE term making the query embedding close to clean and mixed windows of
its own source (so the cosine gate works). LR: :func:`trainers.solver.warmup_cosine` over
:func:`trainers.solver.total_steps`.

Command: ``launch.py train query`` (:mod:`trainers.query_embedder`, without ``--triples``).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engines.audio import limits  # noqa: E402
from engines.audio.losses import si_sdr  # noqa: E402
from engines.separation.features import SR, log_mel, rms_normalise  # noqa: E402

logger = logging.getLogger(__name__)

SEG = 3 * SR
QLEN = 2 * SR
WIN = SR


def class_names() -> list[str]:
    try:
        from trainers.corpus import CLASSES

        return list(CLASSES)
    except Exception:  # noqa: BLE001
        return ["speech", "singing", "piano", "strings", "winds", "brass", "guitar", "bass", "organ", "drums",
                "bells", "alarms", "birds", "noise"]


# ---------------------------------------------------------------------- clip banks
def source_key(src) -> str:
    """A stable source identity (the same voice / GM program / sound file) from a manifest's source
    field, which may be a string or a dict such as the corpus's ``{"type", "voice": {...}, "program"}``."""
    if not isinstance(src, dict):
        return str(src)
    voice = src.get("voice")
    if isinstance(voice, dict):
        voice = voice.get("espeak_voice") or voice.get("name")
    for v in (voice, src.get("program"), src.get("name"), src.get("file"), src.get("sound")):
        if v not in (None, ""):
            return f"{src.get('type', '')}:{v}"
    return json.dumps(src, sort_keys=True)


def load_manifest(folder: str | os.PathLike, classes: list[str], limit: int | None = None) -> list[dict]:
    """Clips of a ``clips`` folder (typed rows, :mod:`trainers.data`; or ``<label>/*.wav`` without a
    manifest) as ``{audio int16 (T,), label, source}`` at 16 kHz mono. Rows of other classes are skipped."""
    from engines.audio import io as aio

    from .data import load

    rows, base = load(folder, "clips")
    idx = {c: i for i, c in enumerate(classes)}
    out = []
    for r in rows[:limit] if limit else rows:
        if r.label not in idx:
            continue
        p = r.files(base)["audio"]
        try:
            a, _ = aio.load(p, sr=SR, mono=True)
        except Exception as err:  # noqa: BLE001
            logger.warning("skipping %s: %s", p, err)
            continue
        a = a[0]
        if a.size < SR // 2 or np.sqrt(np.mean(a ** 2)) < 1e-4:
            continue
        src = r.info.get("source") if isinstance(r.info, dict) else None
        src = f"{r.label}:{source_key(src)}" if src is not None else f"{r.label}:{p.stem}"
        peak = float(np.abs(a).max()) or 1.0
        out.append({"audio": (a / peak * 32000).astype(np.int16), "label": idx[r.label], "source": str(src)})
    return out


def synthetic_clips(n: int, n_classes: int, seed: int = 0, seconds: float = 3.0) -> list[dict]:
    """Generated single-source clips: per class a family of tones, chirps, noise bands and clicks;
    each source has its own fixed parameters (used by tests and smoke runs)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = []
    for i in range(n):
        c = i % n_classes
        src = (i // n_classes) % 3
        r = np.random.default_rng(1000 * c + src)
        f0 = 80 * 2 ** (c * 0.35 + r.uniform(0, 0.3))
        kind = c % 4
        if kind == 0:
            sig = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
        elif kind == 1:
            sig = np.sin(2 * np.pi * (f0 * t + 40 * np.sin(2 * np.pi * (1 + c % 3) * t)))
        elif kind == 2:
            noise = rng.standard_normal(t.size)
            X = np.fft.rfft(noise)
            f = np.fft.rfftfreq(t.size, 1 / SR)
            X *= np.exp(-0.5 * ((f - 6 * f0) / (f0 + 50)) ** 2)
            sig = np.fft.irfft(X, t.size)
        else:
            sig = np.zeros_like(t)
            period = int(SR / (2 + c % 5))
            for s in range(0, t.size, period):
                n_ = min(2000, t.size - s)
                sig[s:s + n_] += np.sin(2 * np.pi * f0 * 4 * t[:n_]) * np.exp(-t[:n_] * 30)
        env = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.3, 2) * t + rng.uniform(0, 6)) ** 2
        a = (sig * env).astype(np.float32)
        a /= np.abs(a).max() + 1e-9
        out.append({"audio": (a * 30000).astype(np.int16), "label": c, "source": f"{c}:{src}"})
    return out


# ---------------------------------------------------------------------- examples
def _crop(a: np.ndarray, n: int, rng) -> np.ndarray:
    if a.size >= n:
        s = int(rng.integers(0, a.size - n + 1))
        return a[s:s + n]
    reps = int(np.ceil(n / a.size))
    return np.tile(a, reps)[:n]


def _f(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / 32768.0


class MixtureSet(Dataset):
    """On-the-fly query/mixture/target examples from a clip bank.

    Item: ``(mix (SEG,), target (SEG,), query (QLEN,), pos_window (WIN,), mix_window (WIN,),
    label (), source_id (), present ())``.
    """

    def __init__(self, clips: list[dict], length: int, *, tbr_db=(-8.0, 6.0), absent_p: float = 0.1,
                 fixed_seed: int | None = None):
        self.clips = clips
        self.length = length
        self.tbr_db = tbr_db
        self.absent_p = absent_p
        self.fixed_seed = fixed_seed
        self.by_source = defaultdict(list)
        for i, c in enumerate(clips):
            self.by_source[c["source"]].append(i)
        self.source_ids = {s: k for k, s in enumerate(sorted(self.by_source))}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        rng = np.random.default_rng(None if self.fixed_seed is None else self.fixed_seed * 100003 + i)
        ti = int(rng.integers(len(self.clips)))
        tc = self.clips[ti]
        tgt_audio = _f(tc["audio"])
        # query: another clip of the same source when there is one, else another excerpt
        sib = [j for j in self.by_source[tc["source"]] if j != ti]
        q_src = _f(self.clips[int(rng.choice(sib))]["audio"]) if sib and rng.random() < 0.7 else tgt_audio
        query = _crop(q_src, QLEN, rng)
        if rng.random() < 0.3:  # shorter queries, looped like the engine's padding would not: zero-pad
            k = int(rng.integers(SR // 2, QLEN))
            query = np.concatenate([query[:k], np.zeros(QLEN - k, np.float32)])
        # target events
        target = np.zeros(SEG, np.float32)
        present = rng.random() >= self.absent_p
        if present:
            for _ in range(1 if rng.random() < 0.7 else 2):
                n = int(rng.integers(int(0.6 * SR), SEG + 1))
                s = int(rng.integers(0, SEG - n + 1))
                ev = _crop(tgt_audio, n, rng).copy()
                ramp = min(400, n // 4)
                ev[:ramp] *= np.linspace(0, 1, ramp)
                ev[-ramp:] *= np.linspace(1, 0, ramp)
                target[s:s + n] += ev
        # background: 1-3 other sources
        bg = np.zeros(SEG, np.float32)
        for _ in range(int(rng.integers(1, 4))):
            for _try in range(10):
                j = int(rng.integers(len(self.clips)))
                if self.clips[j]["source"] != tc["source"]:
                    break
            b = _crop(_f(self.clips[j]["audio"]), SEG, rng)
            bg += b / (np.sqrt(np.mean(b ** 2)) + 1e-8) * 10 ** (rng.uniform(-10, 0) / 20)
        present = present and bool(np.any(np.abs(target) > 1e-6))  # an excerpt may be silent
        if not present:
            target[:] = 0
        if present:
            act = np.abs(target) > 1e-6
            pt = np.mean(target[act] ** 2) + 1e-10
            pb = np.mean(bg[act] ** 2) + 1e-10
            tbr = rng.uniform(*self.tbr_db)
            bg *= np.sqrt(pt / pb / 10 ** (tbr / 10))
            c = int(np.clip(np.flatnonzero(act).mean(), WIN // 2, SEG - WIN // 2))
        else:
            c = int(rng.integers(WIN // 2, SEG - WIN // 2))
        mix = target + bg
        g = 10 ** (rng.uniform(-20, 0) / 20) / (np.abs(mix).max() + 1e-8)
        mix, target = mix * g, target * g
        pos = _crop(tgt_audio, WIN, rng)
        mwin = mix[c - WIN // 2: c + WIN // 2]
        return (torch.from_numpy(mix.astype(np.float32)), torch.from_numpy(target.astype(np.float32)),
                torch.from_numpy(query.astype(np.float32)), torch.from_numpy(pos.astype(np.float32)),
                torch.from_numpy(mwin.astype(np.float32)), torch.tensor(tc["label"]),
                torch.tensor(self.source_ids[tc["source"]]), torch.tensor(float(present)))


# ---------------------------------------------------------------------- losses
def train_step_fn(net, batch, temperature: float = 0.1) -> dict:
    mix, tgt, query, pos, mwin, label, src, present = batch
    est, mask, emb, logits = net.separate(mix, query)
    pres = present > 0.5
    sdr = si_sdr(tgt, est)
    mix_e = mix.pow(2).sum(-1) + 1e-8
    absent_term = 10 * torch.log10(est.pow(2).sum(-1) / mix_e + 1e-3)
    sep = torch.where(pres, -sdr.clamp(max=40), absent_term).mean()
    e_pos, l_pos = net.embed(log_mel(rms_normalise(pos)[0]))
    e_mix, _ = net.embed(log_mel(rms_normalise(mwin)[0]))
    same = (src[:, None] == src[None, :]).float()
    tgt_p = same / same.sum(1, keepdim=True)
    nce = -(tgt_p * F.log_softmax(emb @ e_pos.T / temperature, 1)).sum(1).mean()
    logit_m = emb @ e_mix.T / temperature
    nce_m = -(tgt_p * F.log_softmax(logit_m, 1)).sum(1)
    nce_m = (nce_m * present).sum() / present.sum().clamp_min(1)
    ce = 0.5 * (F.cross_entropy(logits, label) + F.cross_entropy(l_pos, label))
    loss = sep + 2.0 * ce + 1.0 * nce + 0.5 * nce_m
    acc = (logits.argmax(1) == label).float().mean()
    with torch.no_grad():
        base = si_sdr(tgt, mix)
        sdri = ((sdr - base) * present).sum() / present.sum().clamp_min(1)
    return {"loss": loss, "sep": sep.detach(), "ce": ce.detach(), "nce": nce.detach(), "acc": acc, "si_sdri": sdri}


@torch.no_grad()
def evaluate(net, dataset: MixtureSet, batch: int = 16) -> dict:
    """Mean SI-SDRi (present examples), class accuracy and absent-example leakage (dB re mixture)."""
    net.eval()
    sdri, acc, leak, n_p, n_a, n = 0.0, 0.0, 0.0, 0, 0, 0
    for s in range(0, len(dataset), batch):
        items = [dataset[i] for i in range(s, min(len(dataset), s + batch))]
        mix, tgt, query, pos, mwin, label, src, present = [torch.stack(x) for x in zip(*items)]
        est, _, _, logits = net.separate(mix, query)
        pres = present > 0.5
        d = si_sdr(tgt, est) - si_sdr(tgt, mix)
        sdri += float(d[pres].sum())
        n_p += int(pres.sum())
        lk = 10 * torch.log10(est.pow(2).sum(-1) / (mix.pow(2).sum(-1) + 1e-8) + 1e-8)
        leak += float(lk[~pres].sum())
        n_a += int((~pres).sum())
        acc += float((logits.argmax(1) == label).float().sum())
        n += len(items)
    return {"si_sdri": sdri / max(n_p, 1), "acc": acc / max(n, 1), "absent_db": leak / max(n_a, 1),
            "loss": -sdri / max(n_p, 1)}


# ---------------------------------------------------------------------- command
def run(args) -> int:
    from engines.separation.model import QueryNet
    from trainers.solver import Solver, config_from_args, seed_everything, total_steps, warmup_cosine

    if not getattr(args, "threads", None):
        limits.set_threads(1)
    seed_everything(args.seed)
    classes = class_names()
    t0 = time.time()
    if args.synthetic:
        clips = synthetic_clips(args.synthetic, len(classes), seed=args.seed)
        trained_on = f"{args.synthetic} synthetic clips"
    else:
        clips = load_manifest(args.data, classes, args.limit)
        for extra in args.extra_data:
            clips += load_manifest(extra, classes, args.limit)
        trained_on = ", ".join([args.data, *args.extra_data])
    if len(clips) < 4:
        raise ValueError(f"Only {len(clips)} usable clips found; need at least 4.")
    print(f"loaded {len(clips)} clips in {time.time() - t0:.1f} s", flush=True)
    # hold out ~8 % of the sources for validation
    sources = sorted({c["source"] for c in clips})
    rng = np.random.default_rng(1234)
    val_src = set(rng.choice(sources, size=max(1, len(sources) // 12), replace=False)) if len(sources) > 12 else set()
    train_clips = [c for c in clips if c["source"] not in val_src] or clips
    val_clips = [c for c in clips if c["source"] in val_src] or clips
    train = MixtureSet(train_clips, args.examples_per_epoch)
    val = MixtureSet(val_clips + train_clips[: max(0, 50 - len(val_clips))], args.val_examples, fixed_seed=7)
    from engines.checkpoint import build_checked
    net = build_checked(QueryNet, n_classes=len(classes), hidden=args.hidden, class_names=classes)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    cfg = config_from_args(args, progress_bar=False)
    cfg.grad_clip = 5.0
    total = total_steps(args.examples_per_epoch, cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps)
    sched = warmup_cosine(opt, total, warmup=max(1, total // 20), floor=0.05)  # linear warm-up, cosine to 5 %
    hp = {"classes": classes, "hidden": args.hidden, "lr": args.lr, "examples_per_epoch": args.examples_per_epoch,
          "n_clips": len(clips), "n_sources": len(sources), "trained_on": trained_on}
    solver = Solver(net, opt, cfg, scheduler=sched, hparams=hp)
    res = solver.fit(train, train_step_fn, validate=lambda m: evaluate(m, val),
                     on_epoch_end=lambda e, tr, va: print(
                         f"Epoch {e}: train loss {tr['loss']:.3f} si_sdri {tr['si_sdri']:.2f} acc {tr['acc']:.2f} | "
                         f"val si_sdri {va.get('si_sdri', 0):.2f} acc {va.get('acc', 0):.2f} "
                         f"absent {va.get('absent_db', 0):.1f} dB", flush=True))
    if args.export and solver.step and not res.get("stopped"):
        val_m = evaluate(net, val)
        path = solver.export(args.export, {"trained_on": trained_on, "classes": classes, "validation": val_m,
                                           "train_seconds": round(time.time() - t0, 1)})
        print(f"exported {path} (validation {json.dumps(val_m)})", flush=True)
    return 0
