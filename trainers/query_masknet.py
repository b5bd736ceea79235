"""The query model's second trainer: fine-tunes only the mask net of an existing
:class:`engines.separation.model.QueryNet` (``--init``) on corpus query triples (``--triples``), with
dynamic remixing (:class:`TripleSet`) and -SI-SDR (:func:`engines.audio.losses.si_sdr`) of
:meth:`QueryNet.separate`; the embedder stays frozen (detection and the condition use it). LR:
:func:`trainers.solver.warmup_cosine` over :func:`trainers.solver.total_steps`.

Command: ``launch.py train query --triples DIR ... --init MODEL`` (:mod:`trainers.query_embedder`).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engines.audio import limits  # noqa: E402
from engines.audio.losses import si_sdr  # noqa: E402
from engines.separation.features import SR  # noqa: E402

from .query_classifier import QLEN, _crop  # noqa: E402


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
    est, mask, _, _ = net.separate(mix, query)
    pres = present > 0.5
    sdr = si_sdr(tgt, est)
    absent_term = 10 * torch.log10(est.pow(2).sum(-1) / (mix.pow(2).sum(-1) + 1e-8) + 1e-3)
    loss = torch.where(pres, -sdr.clamp(max=40), absent_term).mean()
    with torch.no_grad():
        sdri = ((sdr - si_sdr(tgt, mix)) * present).sum() / present.sum().clamp_min(1)
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
        est, _, _, _ = net.separate(m, torch.from_numpy(q)[None])
        vals.append(float(si_sdr(t, est) - si_sdr(t, m)))
    return {"si_sdri": float(np.mean(vals)) if vals else 0.0, "n": len(vals)}


def add_cross_attention(net, dim: int, at: int = 4):
    """A copy of the QueryNet ``net`` with a :class:`engines.separation.model.QueryCrossAttention` block of width
    ``dim`` after mask block ``at``; its output projection is zero, so the new model computes what ``net`` did."""
    from engines.separation.model import QueryNet

    kw = dict(net._init_kwargs, xattn_dim=dim, xattn_at=at)
    new = QueryNet(**kw)
    missing, unexpected = new.load_state_dict(net.state_dict(), strict=False)
    if unexpected or any(not k.startswith("xattn.") for k in missing):
        raise ValueError(f"cannot add cross-attention: unexpected {unexpected}, missing {missing}")
    return new


def run(args) -> int:
    """``--triples``: fine-tune the mask net of an existing model (``--init``) on query triples."""
    from engines.checkpoint import load_model
    from engines.registry import resolve
    from engines.separation.model import QueryNet
    from trainers.solver import Solver, config_from_args, seed_everything, total_steps, warmup_cosine

    if not getattr(args, "threads", None):
        limits.set_threads(1)
    seed_everything(args.seed)
    net = load_model(resolve(args.init, "query"), expected=QueryNet)
    xdim = int(getattr(args, "xattn_dim", 0) or 0)
    if xdim and net.xattn is None:
        net = add_cross_attention(net, xdim, int(getattr(args, "xattn_at", 4)))
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
    # --mask_lr_scale: the existing mask net's learning rate relative to --lr (0 freezes it: only a new
    # cross-attention block trains)
    scale = float(getattr(args, "mask_lr_scale", 1.0))
    new_p = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith("xattn.")]
    old_p = [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("xattn.")]
    if scale <= 0:
        for p in old_p:
            p.requires_grad = False
    groups = [g for g in ({"params": new_p, "lr": args.lr},
                          {"params": old_p if scale > 0 else [], "lr": args.lr * scale}) if g["params"]]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=1e-4)
    cfg = config_from_args(args, progress_bar=False)
    cfg.grad_clip = 5.0
    total = total_steps(args.examples_per_epoch, cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps)
    sched = warmup_cosine(opt, total, warmup=max(1, total // 40), floor=0.05)
    hp = {"init": str(args.init), "triples": args.triples, "holdout": held[:1] + held[-1:], "lr": args.lr,
          "seg_s": args.seg_s, "remix_p": args.remix_p, "absent_p": args.absent_p, "xattn_dim": xdim,
          "mask_lr_scale": scale}
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
