"""``launch.py train query``: train the built-in query model (embedder/classifier + mask net).

Training examples are mixed on the fly from single-source clips (``/work/corpus/clips`` by default;
``--data`` takes a corpus ``clips`` folder (typed rows, :mod:`trainers.data`) or a folder of
``<class>/*.wav`` files, and
``--synthetic N`` makes N generated clips for tests). Each example: a target excerpt (1-2 events,
sometimes absent) inside a 3 s segment, 1-3 background clips at a target-to-background ratio drawn
from ``--tbr_db``, and a query that is another excerpt of the same source (another clip of the same
source when the manifest has one).

Loss: -SI-SDR of the masked mixture (energy of the estimate when the target is absent) +
cross-entropy on the query's and a clean target window's class + a supervised InfoNCE term making
the query embedding close to clean and mixed windows of its own source (so the cosine gate works).

``--triples DIR ... --init MODEL``: stage 2, fine-tunes only the mask net of an existing model on corpus
query triples (:class:`TripleSet`, with dynamic remixing) with -SI-SDR; the embedder stays frozen.
"""
from __future__ import annotations

import argparse
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

from engines.audio.spectral import istft, stft  # noqa: E402
from engines.separation.features import LOG_EPS, MODEL_HOP, MODEL_NFFT, SR, log_mel, rms_normalise  # noqa: E402

HELP = "train the built-in query embedder/classifier and mask net on single-source clips"
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
def si_sdr_t(ref: torch.Tensor, est: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """SI-SDR (dB) per row of ``(B, T)``."""
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    a = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    t = a * ref
    return 10 * torch.log10(t.pow(2).sum(-1) / ((est - t).pow(2).sum(-1) + eps) + eps)


def separate_batch(net, mix: torch.Tensor, query: torch.Tensor):
    """``mix (B, T)``, ``query (B, Tq)`` -> ``(estimate (B, T), mask, query emb, query logits)``."""
    from engines.separation.features import log_mag

    mixn, g = rms_normalise(mix)
    X = stft(mixn, MODEL_NFFT, MODEL_HOP)
    lm = torch.log(X.abs() + LOG_EPS)
    qn, _ = rms_normalise(query)
    mask, emb, logits = net(lm, log_mel(qn), log_mag(qn))
    est = istft(X * mask, MODEL_NFFT, MODEL_HOP, mix.shape[-1]) / g
    return est, mask, emb, logits


def train_step_fn(net, batch, temperature: float = 0.1) -> dict:
    mix, tgt, query, pos, mwin, label, src, present = batch
    est, mask, emb, logits = separate_batch(net, mix, query)
    pres = present > 0.5
    sdr = si_sdr_t(tgt, est)
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
        base = si_sdr_t(tgt, mix)
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
        est, _, _, logits = separate_batch(net, mix, query)
        pres = present > 0.5
        d = si_sdr_t(tgt, est) - si_sdr_t(tgt, mix)
        sdri += float(d[pres].sum())
        n_p += int(pres.sum())
        lk = 10 * torch.log10(est.pow(2).sum(-1) / (mix.pow(2).sum(-1) + 1e-8) + 1e-8)
        leak += float(lk[~pres].sum())
        n_a += int((~pres).sum())
        acc += float((logits.argmax(1) == label).float().sum())
        n += len(items)
    return {"si_sdri": sdri / max(n_p, 1), "acc": acc / max(n, 1), "absent_db": leak / max(n_a, 1),
            "loss": -sdri / max(n_p, 1)}


# ---------------------------------------------------------------------- fine-tuning on query triples
def _triple_rows(folder: str | os.PathLike) -> list[dict]:
    """Rows of a corpus query folder (typed :class:`trainers.data.QueryRow` rows; files must exist)."""
    from .data import NoDataError, kind_folder, read

    try:
        rows = read(folder, "query")
    except NoDataError:
        return []
    base = kind_folder(folder, "query")
    out = []
    for r in rows:
        f = r.files(base)
        if all(f[n].is_file() for n in ("target", "background", "query")):
            out.append({"dir": str(base / r.path), "id": r.id, "events": r.events, "label": r.label,
                        "split": r.split})
    return out


def _read16(path: str) -> np.ndarray:
    import soundfile as sf

    a, sr = sf.read(path, dtype="float32", always_2d=True)
    a = a.mean(1)
    if sr != SR:
        from engines.audio import io as aio

        a = aio.resample(a[None], sr, SR)[0]
    return a


class TripleSet(Dataset):
    """Separation examples from corpus (mixture, query, target) triples, with dynamic remixing.

    With probability ``absent_p`` the query is replaced by one of a triple of another class and the
    target by silence (teaches the mask net to stay silent when the query does not occur).
    With probability ``1 - remix_p`` an item is a crop of a triple as rendered (``mix = target +
    background``); otherwise the triple's target is laid over *another* triple's background at a
    target-to-background ratio (over the target's events) drawn from ``tbr_db``. The query is always
    the triple's own query clip (a different excerpt of the same source). Crops of ``seg`` samples
    overlap an event with probability 0.85. Item: ``(mix, target, query (QLEN,), present)``.
    ``refresh()`` re-reads the manifests (a corpus still being rendered grows between epochs).
    ``split`` keeps the rows of one split (default ``"train"``: the corpus's dev rows, items with
    ``index % 10 == 9``, are the held-out validation set); ``None`` keeps every row.
    """

    def __init__(self, folders, length: int, *, exclude: set | None = None, seg: int = 4 * SR,
                 remix_p: float = 0.5, tbr_db=(-5.0, 5.0), fixed_seed: int | None = None, only: set | None = None,
                 absent_p: float = 0.0, split: str | None = "train"):
        self.folders, self.length, self.exclude, self.only = list(folders), length, exclude or set(), only
        self.split = split
        self.seg, self.remix_p, self.tbr_db, self.fixed_seed = seg, remix_p, tbr_db, fixed_seed
        self.absent_p = absent_p
        self.refresh()

    def refresh(self) -> int:
        rows = []
        for f in self.folders:
            rows += [r for r in _triple_rows(f) if r["dir"] not in self.exclude
                     and (self.only is None or r["dir"] in self.only)
                     and (self.split is None or r["split"] == self.split)]
        self.rows = rows
        # per label, the rows of every other class in row order (queries for absent-target items)
        self._others = {lab: [o for o in rows if o["label"] != lab] for lab in {r["label"] for r in rows}}
        return len(rows)

    def __len__(self) -> int:
        return self.length

    def _crop_at(self, n_total: int, events, rng) -> int:
        if n_total <= self.seg:
            return 0
        if events and rng.random() < 0.85:
            a, b = events[int(rng.integers(len(events)))]
            a, b = int(a * SR), int(b * SR)
            lo = max(0, a - self.seg + SR // 2)
            hi = min(n_total - self.seg, b - SR // 2)
            if hi > lo:
                return int(rng.integers(lo, hi + 1))
        return int(rng.integers(0, n_total - self.seg + 1))

    def __getitem__(self, i: int):
        rng = np.random.default_rng(None if self.fixed_seed is None else self.fixed_seed * 100003 + i)
        r = self.rows[int(rng.integers(len(self.rows)))]
        tgt = _read16(f"{r['dir']}/target.wav")
        q = _read16(f"{r['dir']}/query.wav")
        if len(self.rows) > 1 and rng.random() < self.remix_p:
            r2 = r
            while r2 is r:
                r2 = self.rows[int(rng.integers(len(self.rows)))]
            bg = _read16(f"{r2['dir']}/background.wav")
            if bg.size < tgt.size:
                bg = np.tile(bg, int(np.ceil(tgt.size / bg.size)))
            s = int(rng.integers(0, bg.size - tgt.size + 1))
            bg = bg[s:s + tgt.size]
            act = np.abs(tgt) > 1e-4
            if act.sum() > SR // 10:
                pt = np.mean(tgt[act] ** 2)
                pb = np.mean(bg[act] ** 2) + 1e-10
                bg = bg * np.sqrt(pt / pb / 10 ** (rng.uniform(*self.tbr_db) / 10))
        else:
            bg = _read16(f"{r['dir']}/background.wav")[:tgt.size]
            if bg.size < tgt.size:
                bg = np.pad(bg, (0, tgt.size - bg.size))
        if tgt.size < self.seg:
            tgt, bg = np.pad(tgt, (0, self.seg - tgt.size)), np.pad(bg, (0, self.seg - bg.size))
        s = self._crop_at(tgt.size, r["events"], rng)
        tgt, bg = tgt[s:s + self.seg], bg[s:s + self.seg]
        mix = tgt + bg
        g = 10 ** (rng.uniform(-20, 0) / 20) / (np.abs(mix).max() + 1e-8)
        mix, tgt = mix * g, tgt * g
        present = float(np.sqrt(np.mean(tgt ** 2)) > 0.03 * np.sqrt(np.mean(mix ** 2)) + 1e-9)
        if self.absent_p > 0 and rng.random() < self.absent_p:
            # a query of another class: the wanted source is absent, the ideal estimate is silence
            others = self._others[r["label"]]
            if others:
                q = _read16(f"{others[int(rng.integers(len(others)))]['dir']}/query.wav")
                tgt, present = np.zeros_like(tgt), 0.0
        query = _crop(q, QLEN, rng) if q.size >= QLEN else np.pad(q, (0, QLEN - q.size))
        return (torch.from_numpy(mix.astype(np.float32)), torch.from_numpy(tgt.astype(np.float32)),
                torch.from_numpy(query.astype(np.float32)), torch.tensor(present))


def sep_step_fn(net, batch) -> dict:
    """Separation-only loss for the mask net (the embedder is frozen): -SI-SDR of the masked
    mixture where the target is present, the estimate's energy re the mixture where it is not."""
    mix, tgt, query, present = batch
    est, mask, _, _ = separate_batch(net, mix, query)
    pres = present > 0.5
    sdr = si_sdr_t(tgt, est)
    absent_term = 10 * torch.log10(est.pow(2).sum(-1) / (mix.pow(2).sum(-1) + 1e-8) + 1e-3)
    loss = torch.where(pres, -sdr.clamp(max=40), absent_term).mean()
    with torch.no_grad():
        sdri = ((sdr - si_sdr_t(tgt, mix)) * present).sum() / present.sum().clamp_min(1)
    return {"loss": loss, "si_sdri": sdri}


@torch.no_grad()
def evaluate_triples(net, dirs: list[str]) -> dict:
    """Mean SI-SDRi of the mask net alone on whole held-out triples (``mix.wav`` vs ``target.wav``)."""
    net.eval()
    vals = []
    for d in dirs:
        mix, tgt, q = (_read16(f"{d}/{f}.wav") for f in ("mix", "target", "query"))
        n = min(mix.size, tgt.size)
        m, t = torch.from_numpy(mix[:n])[None], torch.from_numpy(tgt[:n])[None]
        est, _, _, _ = separate_batch(net, m, torch.from_numpy(q)[None])
        vals.append(float(si_sdr_t(t, est) - si_sdr_t(t, m)))
    return {"si_sdri": float(np.mean(vals)) if vals else 0.0, "n": len(vals)}


def run_finetune(args) -> int:
    """``--triples``: fine-tune the mask net of an existing model (``--init``) on query triples."""
    from engines.checkpoint import load_model
    from engines.registry import resolve
    from engines.separation.model import QueryNet
    from trainers.solver import Solver, config_from_args, seed_everything

    if not getattr(args, "threads", None):
        torch.set_num_threads(1)
    seed_everything(args.seed)
    net = load_model(resolve(args.init, "query"), expected=QueryNet)
    net.train()
    for name, p in net.named_parameters():  # the embedder stays as it is (detection and the condition use it)
        p.requires_grad = not name.startswith(("stem.", "proj.", "frame_proj.", "classifier."))
    # the corpus's dev rows are the held-out set when it has some (TripleSet trains on train rows
    # only); otherwise the first --holdout triples of the first folder
    dev = sorted(r["dir"] for f in args.triples for r in _triple_rows(f) if r["split"] == "dev")
    held = dev[: max(args.holdout, 1)] if dev else sorted(r["dir"] for r in _triple_rows(args.triples[0]))[: args.holdout]
    train = TripleSet(args.triples, args.examples_per_epoch, exclude=set(held), seg=int(args.seg_s * SR),
                      remix_p=args.remix_p, absent_p=args.absent_p)
    print(f"fine-tuning on {len(train.rows)} triples ({', '.join(args.triples)}), {len(held)} held out", flush=True)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    cfg = config_from_args(args, progress_bar=False)
    cfg.grad_clip = 5.0
    total = cfg.max_steps or (args.epochs * (args.examples_per_epoch // cfg.batch_size))
    warm = max(1, total // 40)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        p = min(1.0, (step - warm) / max(1, total - warm))
        return float(0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * p)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    hp = {"init": str(args.init), "triples": args.triples, "holdout": held[:1] + held[-1:], "lr": args.lr,
          "seg_s": args.seg_s, "remix_p": args.remix_p, "absent_p": args.absent_p}
    solver = Solver(net, opt, cfg, scheduler=sched, hparams=hp)
    t0 = time.time()

    def on_epoch(e, tr, va):
        n = train.refresh()
        print(f"Epoch {e} step {solver.step}: train loss {tr['loss']:.3f} si_sdri {tr['si_sdri']:.2f} | "
              f"held-out mask-net si_sdri {va.get('si_sdri', 0):.2f} ({n} train triples, "
              f"{time.time() - t0:.0f} s)", flush=True)

    res = solver.fit(train, sep_step_fn, validate=lambda m: evaluate_triples(m, held), on_epoch_end=on_epoch)
    if args.export and solver.step and not res.get("stopped"):
        val_m = evaluate_triples(net, held)
        path = solver.export(args.export, {"trained_on": ", ".join(args.triples), "classes": net.class_names,
                                           "validation": val_m, "train_seconds": round(time.time() - t0, 1)})
        print(f"exported {path} (held-out {json.dumps(val_m)})", flush=True)
    return 0


# ---------------------------------------------------------------------- command
def add_arguments(p: argparse.ArgumentParser) -> None:
    from trainers.solver import add_solver_arguments

    p.add_argument("--data", default="/work/corpus/clips", help="folder with manifest.jsonl of single-source clips")
    p.add_argument("--extra_data", nargs="*", default=[], help="more clip folders (e.g. /work/corpus/query)")
    p.add_argument("--synthetic", type=int, default=0, help="use N generated clips instead of --data (tests)")
    p.add_argument("--limit", type=int, default=None, help="read at most this many clips per folder")
    p.add_argument("--examples_per_epoch", type=int, default=4000)
    p.add_argument("--val_examples", type=int, default=96)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, default=160)
    p.add_argument("--export", default=None, help="write the inference checkpoint here (.safetensors)")
    p.add_argument("--triples", nargs="*", default=[], help="fine-tune the mask net on corpus query folders "
                   "(q_*/{mix,query,target,background}.wav) instead of training from clips")
    p.add_argument("--init", default=None, help="with --triples: the model to start from (registry name or path)")
    p.add_argument("--holdout", type=int, default=40, help="with --triples: first N triples of the first folder held out; when the "
                   "corpus has dev rows (index %% 10 == 9), at most N of those instead (train rows only are trained on)")
    p.add_argument("--seg_s", type=float, default=4.0, help="with --triples: training crop length (s)")
    p.add_argument("--remix_p", type=float, default=0.5, help="with --triples: share of dynamically remixed items")
    p.add_argument("--absent_p", type=float, default=0.0,
                   help="with --triples: share of items whose query comes from another class (target: silence)")
    add_solver_arguments(p, epochs=10, batch_size=16, ckpt_every=100)


def run(args) -> int:
    from engines.separation.model import QueryNet
    from trainers.solver import Solver, config_from_args, seed_everything

    if getattr(args, "triples", None):
        return run_finetune(args)
    if not getattr(args, "threads", None):
        torch.set_num_threads(1)
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
    total = cfg.max_steps or (args.epochs * (args.examples_per_epoch // cfg.batch_size))
    warm = max(1, total // 20)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay to 5 %
        if step < warm:
            return (step + 1) / warm
        p = min(1.0, (step - warm) / max(1, total - warm))
        return float(0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * p)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
