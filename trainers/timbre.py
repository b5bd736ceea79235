"""`train timbre`: the timbre transfer model under a four-phase curriculum.

Data (``--data DIR``, repeatable), any mix of:

* ``DIR/pairs/<id>/piano.wav`` + ``violin.wav``: the rendered corpus (same notes on both
  instruments, so a paired loss piano -> violin and violin -> piano is used on top of the rest);
* ``DIR/piano/*.wav`` and ``DIR/violin/*.wav``: unpaired recordings (reconstruction and
  disentanglement losses only).

Every clip is resampled to 22050 Hz mono and brought to -20 dBFS RMS, then cut into windows of
287 frames overlapping by 30% (shorter clips give one padded window: lengths vary, a mask marks the
valid frames). Each batch item holds one piano and one violin window, so batches are class-balanced.

Curriculum (fraction of the total steps; the phase is printed, logged to progress.jsonl/MLflow):

1. 0-20%   reconstruction (piano->piano, violin->violin, and the paired piano<->violin terms)
2. 20-40%  + disentanglement (HSIC between frame style and content)
3. 40-60%  + contrastive (label-supervised InfoNCE and margin on class embeddings)
4. 60-100% + adversarial (discriminator on style/content; encoders make content unreadable)
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

logger = logging.getLogger(__name__)

HELP = "train the timbre transfer model (piano <-> violin) under the four-phase curriculum"
PHASES = [(0.0, "reconstruction"), (0.2, "disentanglement"), (0.4, "contrastive"), (0.6, "adversarial")]


def phase_of(step: int, total: int) -> int:
    """Curriculum phase (1..4) of ``step`` (0-based) out of ``total`` steps."""
    frac = step / max(total, 1)
    return max(i + 1 for i, (start, _) in enumerate(PHASES) if frac >= start - 1e-12)


# --------------------------------------------------------------------------- data
def discover(data_dirs: list[str]) -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
    """``(pairs [(id, piano, violin)], unpaired piano files, unpaired violin files)`` under the folders."""
    pairs, pianos, violins = [], [], []
    for d in data_dirs:
        root = Path(d)
        if not root.is_dir():
            raise FileNotFoundError(f"Timbre data folder not found: '{root}'.")
        for p in sorted((root / "pairs").glob("*/piano.wav")):
            v = p.with_name("violin.wav")
            if v.is_file():
                pairs.append((p.parent.name, str(p), str(v)))
        pianos += [str(p) for p in sorted((root / "piano").glob("*.wav"))]
        violins += [str(p) for p in sorted((root / "violin").glob("*.wav"))]
    if not pairs and not (pianos and violins):
        raise ValueError(f"No timbre data under {', '.join(data_dirs)}: expected pairs/<id>/piano.wav + "
                         "violin.wav, or piano/*.wav and violin/*.wav.")
    return pairs, pianos, violins


def load_clip(path: str, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 at 22050 Hz, -20 dBFS RMS."""
    from engines.audio.io import load
    from engines.timbre.features import SAMPLE_RATE, normalize_rms

    audio, _ = load(path, sr=SAMPLE_RATE, mono=True)
    wav = audio[0]
    if max_seconds:
        wav = wav[: int(max_seconds * SAMPLE_RATE)]
    return normalize_rms(wav)[0]


class Clip:
    """A loaded clip: waveform (22050 Hz) and its CQT (complex, stored as float16 real/imag)."""

    def __init__(self, wav: np.ndarray):
        from engines.timbre.features import cqt_complex, n_frames

        self.wav = torch.from_numpy(wav)
        c = cqt_complex(wav, n_frames(len(wav)))
        self.cqt = torch.from_numpy(np.stack([c.real, c.imag]).astype(np.float16))  # (2, 84, N)

    @property
    def frames(self) -> int:
        return self.cqt.shape[-1]


class TimbreWindows(Dataset):
    """Class-balanced windows: each item is one piano window and one violin window.

    Items: ``{"piano_wav" (Tw,), "violin_wav" (Tw,), "piano_cqt" (2,84,L), "violin_cqt" (2,84,L),
    "frames" () valid frames, "paired" () 1.0 when the violin window plays the piano window's notes}``.
    """

    def __init__(self, pairs: list[tuple[Clip, Clip]], pianos: list[Clip], violins: list[Clip],
                 window: int = 287, overlap: float = 0.3, seed: int = 0):
        from engines.timbre.model import window_starts

        self.window = window
        hop = max(1, int(round(window * (1 - overlap))))
        self.pairs, self.pianos, self.violins = pairs, pianos, violins
        self.index: list[tuple] = []
        for i, (p, v) in enumerate(pairs):
            n = min(p.frames, v.frames)
            self.index += [("pair", i, s) for s in window_starts(n, window, hop)]
        pw = [(i, s) for i, c in enumerate(pianos) for s in window_starts(c.frames, window, hop)]
        vw = [(i, s) for i, c in enumerate(violins) for s in window_starts(c.frames, window, hop)]
        if pw and vw:
            rng = random.Random(seed)
            rng.shuffle(vw)
            for k, w in enumerate(pw if len(pw) >= len(vw) else vw):
                a, b = (w, vw[k % len(vw)]) if len(pw) >= len(vw) else (pw[k % len(pw)], w)
                self.index.append(("unpaired", a, b))

    def __len__(self) -> int:
        return len(self.index)

    def _crop(self, clip: Clip, start: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        from engines.timbre.features import HOP

        L = self.window
        n_samp = (L - 1) * HOP
        wav = clip.wav[start * HOP: start * HOP + min(frames - 1, L - 1) * HOP]
        cqt = clip.cqt[..., start:start + min(frames, L)].float()
        wav = torch.nn.functional.pad(wav, (0, n_samp - wav.shape[-1]))
        cqt = torch.nn.functional.pad(cqt, (0, L - cqt.shape[-1]))
        return wav, cqt

    def __getitem__(self, i: int) -> dict:
        kind, a, b = self.index[i]
        if kind == "pair":
            p, v = self.pairs[a]
            frames = min(min(p.frames, v.frames) - b, self.window)
            (pw, pc), (vw, vc) = self._crop(p, b, frames), self._crop(v, b, frames)
            paired = 1.0
        else:
            p, v = self.pianos[a[0]], self.violins[b[0]]
            frames = min(p.frames - a[1], v.frames - b[1], self.window)
            (pw, pc), (vw, vc) = self._crop(p, a[1], frames), self._crop(v, b[1], frames)
            paired = 0.0
        return {"piano_wav": pw, "violin_wav": vw, "piano_cqt": pc, "violin_cqt": vc,
                "frames": torch.tensor(frames), "paired": torch.tensor(paired)}


def load_clips(pairs, pianos, violins, cache: Path | None, max_seconds: float | None):
    """Load (or read from ``cache``) every clip; returns ``(pair clips, piano clips, violin clips)``."""
    key = json.dumps([pairs, pianos, violins, max_seconds])
    if cache is not None and cache.is_file():
        obj = torch.load(cache, weights_only=False)
        if obj.get("key") == key:
            logger.info("Read cached features from %s", cache)
            return obj["pairs"], obj["pianos"], obj["violins"]
    t0 = time.time()
    pc = [(Clip(load_clip(p, max_seconds)), Clip(load_clip(v, max_seconds))) for _, p, v in pairs]
    pn = [Clip(load_clip(p, max_seconds)) for p in pianos]
    vn = [Clip(load_clip(v, max_seconds)) for v in violins]
    print(f"Loaded {len(pc)} pairs, {len(pn)} piano and {len(vn)} violin clips in {time.time() - t0:.1f} s",
          flush=True)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp")
        torch.save({"key": key, "pairs": pc, "pianos": pn, "violins": vn}, tmp)
        os.replace(tmp, cache)
    return pc, pn, vn


# --------------------------------------------------------------------------- losses under the curriculum
class TimbreTrainer(nn.Module):
    """Training wrapper: ``forward(batch, phase) -> {"loss", terms...}`` for the solver (and DDP)."""

    def __init__(self, model: nn.Module, weights: dict[str, float]):
        super().__init__()
        from engines.timbre import losses

        self.model = model
        self.w = dict(weights)
        self.spec = losses.LogSpectralLoss(mel_weight=1.0)
        self.mrstft = losses.MultiResolutionSTFTLoss()
        self.hsic = losses.HSICLoss()
        self.nce = losses.InfoNCELoss(self.w.get("temperature", 0.1))
        self.margin = losses.MarginLoss(self.w.get("margin_value", 1.0))
        self.d_loss = losses.DiscriminatorLoss()
        self.confusion = losses.ConfusionLoss()

    def forward(self, batch: dict, phase: int) -> dict:
        from engines.audio import spectral
        from engines.timbre.features import HOP, LOG_EPS, N_FFT, log_magnitude, stack_complex, stft_complex

        m, w = self.model, self.w
        B = batch["piano_wav"].shape[0]
        sp, sv = stft_complex(batch["piano_wav"]), stft_complex(batch["violin_wav"])  # (B, 513, L)
        cq = lambda c: torch.complex(c[:, 0], c[:, 1])  # noqa: E731
        raw = torch.cat([stack_complex(sp, cq(batch["piano_cqt"])), stack_complex(sv, cq(batch["violin_cqt"]))])
        L = raw.shape[-1]
        frames = batch["frames"].long()
        mask1 = torch.arange(L, device=raw.device)[None] < frames[:, None]  # (B, L)
        mask = torch.cat([mask1, mask1])
        labels = torch.cat([torch.zeros(B, dtype=torch.long), torch.ones(B, dtype=torch.long)]).to(raw.device)

        content, fstyle, cls = m.encode(raw, mask)
        m.update_prototypes(cls.detach(), labels)
        lm_p, lm_v = log_magnitude(sp).transpose(1, 2), log_magnitude(sv).transpose(1, 2)
        c_p, c_v = content[:B], content[B:]
        # decode with another item's class style: the style vector cannot smuggle this item's notes
        st_p, st_v = cls[:B].roll(1, 0), cls[B:].roll(1, 0)
        paired = batch["paired"].float()
        any_pair = bool(paired.sum() > 0)
        dec_c = [c_p, c_v] + ([c_p, c_v] if any_pair else [])
        dec_s = [st_p, st_v] + ([st_v, st_p] if any_pair else [])
        dec_t = [lm_p, lm_v] + ([lm_v, lm_p] if any_pair else [])
        dec_b = [lm_p, lm_v] + ([lm_p, lm_v] if any_pair else [])  # the content source's spectrum
        pred = m.decoder(torch.cat(dec_c), torch.cat(dec_s), torch.cat(dec_t), torch.cat(dec_b))
        out: dict[str, torch.Tensor] = {}
        rec = self.spec(pred[:2 * B], torch.cat([lm_p, lm_v]), mask, m.mel_fb)
        out["rec"] = rec
        loss = w["rec"] * rec
        if any_pair:
            pm = torch.cat([mask1 & (paired[:, None] > 0)] * 2)
            pair = self.spec(pred[2 * B:], torch.cat([lm_v, lm_p]), pm, m.mel_fb)
            out["pair"] = pair
            loss = loss + w["pair"] * pair
        if w.get("mrstft", 0) > 0:  # waveform multi-scale term on piano->piano (input phase), 2 items
            k = 1
            mag = (torch.exp(pred[:k]) - LOG_EPS).clamp_min(0).transpose(1, 2)
            est = spectral.istft(mag * sp[:k] / sp[:k].abs().clamp_min(1e-8), N_FFT, HOP, batch["piano_wav"].shape[-1])
            ms = self.mrstft(est, batch["piano_wav"][:k])
            out["mrstft"] = ms
            loss = loss + w["mrstft"] * ms
        # frames for the frame-level terms: up to 192 valid frames
        flat = mask.reshape(-1).nonzero().squeeze(1)
        sel = flat[torch.randperm(len(flat), device=flat.device)[:192]]
        fs, fc = fstyle.reshape(-1, fstyle.shape[-1])[sel], content.reshape(-1, content.shape[-1])[sel]
        flab = labels[:, None].expand(-1, L).reshape(-1)[sel]
        if phase >= 2:
            h = self.hsic(fs, fc)
            out["hsic"] = h
            loss = loss + w["hsic"] * h
        if phase >= 3:
            nce, mar = self.nce(cls, labels), self.margin(cls, labels)
            out["infonce"], out["margin"] = nce, mar
            loss = loss + w["infonce"] * nce + w["margin"] * mar
        if phase >= 4:
            D = m.discriminator
            d = (self.d_loss(D(cls.detach()), labels) + self.d_loss(D(fs.detach()), flab)
                 + self.d_loss(D(fc.detach()), flab)) / 3
            frozen = {k: v.detach() for k, v in D.named_parameters()}
            g_content = self.confusion(torch.func.functional_call(D, frozen, (fc,)))
            g_style = self.d_loss(torch.func.functional_call(D, frozen, (cls,)), labels)
            out["adv_d"], out["adv_g"] = d, g_content + g_style
            loss = loss + w["adv"] * (d + g_content + g_style)
        out["loss"] = loss
        out["phase"] = torch.tensor(float(phase))
        return out


DEFAULT_WEIGHTS = {"rec": 1.0, "pair": 2.0, "mrstft": 0.1, "hsic": 0.1, "infonce": 0.05, "margin": 0.05,
                   "adv": 0.05, "temperature": 0.1, "margin_value": 1.0}


# --------------------------------------------------------------------------- validation
@torch.no_grad()
def evaluate_windows(model, clips: list[tuple["Clip", "Clip"]], max_windows: int = 6) -> dict:
    """Free-running (autoregressive) log-magnitude and log-mel L1 on held-out paired clips.

    ``pv_*``: piano -> violin against the real violin; ``pp_*``: piano -> piano reconstruction.
    """
    from engines.timbre.features import log_magnitude, stack_complex, stft_complex

    if not clips:
        return {}
    model.eval()
    res = {"pv_logmag": 0.0, "pv_logmel": 0.0, "pp_logmag": 0.0, "pp_logmel": 0.0}
    n = 0
    for p, v in clips[:max_windows]:
        N = min(p.frames, v.frames)
        sp, sv = stft_complex(p.wav)[..., :N], stft_complex(v.wav)[..., :N]
        raw = stack_complex(sp[None], torch.complex(p.cqt[0, :, :N].float(), p.cqt[1, :, :N].float())[None])[0]
        for tgt, ref, key in (("violin", sv, "pv"), ("piano", sp, "pp")):
            est = model.transfer_logmag(raw, model.style_of(tgt))
            lr = log_magnitude(ref)
            res[f"{key}_logmag"] += float((est - lr).abs().mean())
            me = torch.log(model.mel_fb @ torch.exp(est) + 1e-5)
            mr = torch.log(model.mel_fb @ torch.exp(lr) + 1e-5)
            res[f"{key}_logmel"] += float((me - mr).abs().mean())
        n += 1
    return {k: v / n for k, v in res.items()}


# --------------------------------------------------------------------------- command
def add_arguments(parser) -> None:
    from trainers.solver import add_solver_arguments

    parser.add_argument("--data", action="append", required=True,
                        help="folder with pairs/<id>/{piano,violin}.wav and/or piano/*.wav, violin/*.wav (repeatable)")
    parser.add_argument("--stats", default=None, help="normalisation statistics .npz (timbre-stats); "
                        "default: computed from the training data (unified) and saved in out_dir")
    parser.add_argument("--init", default=None, help="start from this exported model (.safetensors; fine-tuning); "
                        "its architecture and statistics are kept")
    parser.add_argument("--export", default=None, help="write the inference checkpoint here (.safetensors)")
    parser.add_argument("--val_pairs", type=int, default=4, help="paired clips held out for validation")
    parser.add_argument("--max_pairs", type=int, default=None, help="use at most this many pairs")
    parser.add_argument("--max_seconds", type=float, default=None, help="cut clips to this length")
    parser.add_argument("--window", type=int, default=287, help="frames per training window")
    parser.add_argument("--overlap", type=float, default=0.3, help="window overlap (fraction)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--d_model", type=int, default=128)
    parser.add_argument("--style_dim", type=int, default=64)
    parser.add_argument("--enc_layers", type=int, default=2)
    parser.add_argument("--dec_layers", type=int, default=2)
    parser.add_argument("--no_residual", action="store_true",
                        help="decoder predicts the target spectrum from scratch instead of a log-gain on the input's")
    parser.add_argument("--weights", default=None, help="JSON overriding loss weights " + json.dumps(DEFAULT_WEIGHTS))
    add_solver_arguments(parser, epochs=None, batch_size=4, ckpt_every=100)


def run(args) -> int:
    from engines.checkpoint import save_model
    from engines.timbre.features import FeatureStats
    from engines.timbre.model import TimbreTransfer
    from trainers import distrib
    from trainers.solver import Solver, config_from_args, seed_everything

    if args.epochs is None and args.max_steps is None:
        args.max_steps = 2000
    seed_everything(args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs, pianos, violins = discover(args.data)
    rng = random.Random(args.seed)
    rng.shuffle(pairs)
    n_val = min(args.val_pairs, max(len(pairs) - 1, 0))
    val_pairs, train_pairs = pairs[:n_val], pairs[n_val:]
    if args.max_pairs:
        train_pairs = train_pairs[: args.max_pairs]
    (out / "split.json").write_text(json.dumps({"train": [p[0] for p in train_pairs], "val": [p[0] for p in val_pairs]}))
    tp, pn, vn = load_clips(train_pairs, pianos, violins, out / "features_cache.pt", args.max_seconds)
    vp = load_clips(val_pairs, [], [], out / "val_cache.pt", args.max_seconds)[0] if val_pairs else []

    init = None
    if args.init:
        from engines.checkpoint import load_model

        init = load_model(args.init, expected=TimbreTransfer)
        from engines.timbre.model import stats_from_model

        stats = stats_from_model(init)
    elif args.stats:
        stats = FeatureStats.load(args.stats)
    else:
        from trainers.timbre_stats import stats_for_clips

        stats = stats_for_clips([c for pr in tp for c in pr] + pn + vn, name="unified")
        stats.save(out / "stats_unified.npz")
    if init is not None:
        model = TimbreTransfer(**init._init_kwargs)
        model.load_state_dict(init.state_dict())
        print(f"Initialised from {args.init}", flush=True)
    else:
        model = TimbreTransfer(d_model=args.d_model, style_dim=args.style_dim, enc_layers=args.enc_layers,
                               dec_layers=args.dec_layers, window=args.window, overlap=args.overlap,
                               residual=not args.no_residual)
    model.set_stats(stats)
    weights = {**DEFAULT_WEIGHTS, **(json.loads(args.weights) if args.weights else {})}
    wrapper = TimbreTrainer(model, weights)
    ds = TimbreWindows(tp, pn, vn, args.window, args.overlap, args.seed)
    print(f"Dataset: {len(tp)} training pairs, {len(pn)}+{len(vn)} unpaired clips -> {len(ds)} windows "
          f"of {args.window} frames ({args.overlap:.0%} overlap); {len(vp)} validation pairs", flush=True)
    opt = torch.optim.AdamW(wrapper.parameters(), lr=args.lr, weight_decay=1e-4)
    cfg = config_from_args(args, progress_bar=False)
    spe = math.ceil(len(ds) / (cfg.batch_size * max(distrib.world_size(), 1)))
    total = cfg.max_steps or spe * cfg.epochs
    if cfg.epochs is not None:
        total = min(total, spe * cfg.epochs)
    warm = max(1, min(100, total // 20))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))))
    hparams = {"model": model._init_kwargs, "weights": weights, "data": args.data, "lr": args.lr,
               "train_pairs": len(tp), "unpaired": [len(pn), len(vn)], "windows": len(ds)}
    solver = Solver(wrapper, opt, cfg, scheduler=sched, hparams=hparams)
    state = {"phase": None, "sums": {}, "n": 0}
    phase_log = out / "phases.json"
    phase_means: dict = json.loads(phase_log.read_text()) if phase_log.is_file() else {}

    def close_phase():
        if state["phase"] is not None and state["n"]:
            means = {k: round(v / state["n"], 5) for k, v in state["sums"].items()}
            prev = phase_means.get(str(state["phase"]), {})
            phase_means[str(state["phase"])] = {"name": PHASES[state["phase"] - 1][1], "steps": state["n"] + prev.get("steps", 0),
                                                "means": means if not prev else {**prev.get("means", {}), **means}}
            if distrib.is_main():
                print(f"Phase {state['phase']} ({PHASES[state['phase'] - 1][1]}) mean losses over its last "
                      f"{state['n']} steps: " + ", ".join(f"{k}={v:.4f}" for k, v in means.items()), flush=True)
                phase_log.write_text(json.dumps(phase_means, indent=1))

    def train_step(mod, batch):
        ph = phase_of(solver.step, total)
        if ph != state["phase"]:
            close_phase()
            state.update(phase=ph, sums={}, n=0)
            lo, name = PHASES[ph - 1]
            if distrib.is_main():
                print(f"Curriculum phase {ph}/4: {name} (from step {solver.step} of {total}, {lo:.0%})", flush=True)
                solver.emit("phase", phase=ph, name=name)
        res = mod(batch, ph)
        for k, v in res.items():
            if k != "phase":
                state["sums"][k] = state["sums"].get(k, 0.0) + float(v.detach())
        state["n"] += 1
        return res

    def validate(wr):
        return evaluate_windows(wr.model, vp)

    def on_epoch_end(epoch, tr, va):
        print(f"Epoch {epoch}: " + ", ".join(f"{k}={v:.4f}" for k, v in tr.items()) +
              (" | val " + ", ".join(f"{k}={v:.4f}" for k, v in va.items()) if va else ""), flush=True)

    t0 = time.time()
    res = solver.fit(ds, train_step, validate=validate, on_epoch_end=on_epoch_end)
    close_phase()
    if res.get("stopped"):
        print("Stopped; run the same command again to resume.", flush=True)
        return 0
    val = evaluate_windows(model, vp)
    print("Validation (held-out pairs, autoregressive): " + json.dumps({k: round(v, 4) for k, v in val.items()}), flush=True)
    if args.export and distrib.is_main():
        meta = {"trained_on": ", ".join(args.data), "init": args.init, "train_pairs": len(tp), "unpaired": [len(pn), len(vn)],
                "steps": solver.step, "train_seconds_this_run": round(time.time() - t0, 1),
                "stats": stats.name, "phases": phase_means, "val": val, "weights": weights}
        save_model(model, args.export, metadata=meta)
        print(f"Exported {args.export}", flush=True)
    distrib.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="train timbre", description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
