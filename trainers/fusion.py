"""``python launch.py train fusion``: the A/B fusion cascade transformer (seeds 000 and 001).

Reads pairs of songs (a ``dataset_pairs_wav``-style folder: sub-folders holding ``input.wav`` +
``target.wav`` or ``a.wav`` + ``b.wav``, or ``*_input.wav`` / ``*_target.wav`` files, or loose songs; or
a rendered corpus ``fusion`` folder, read as typed rows by :mod:`trainers.data`), crops both, encodes them with the codec, builds
complementary masks and trains the cascade on the shared solver (torchrun DDP, resumable, MLflow).

Target of training (:mod:`engines.fusion.targets`: ``arrangement``, ``restrict``, ``stft_masks``): the
complementary arrangement built in the STFT domain (n_fft 512, hop 128,
the latent frame grid; each STFT bin inherits the mask of its MDCT band), i.e. A in A's regions and B
in B's regions with clean seams. The cascade starts as the direct latent fusion and learns to
correct it. Losses (audio space, after decoding): ``rms_input`` = RMS between the output and the
input restricted to the input's region, ``rms_target`` likewise for the target, ``spectral``
(multi-resolution STFT) and ``mel`` against the arrangement. ``--anti_cheating`` adds noise to each
source's latent where it is masked out, so the network cannot copy what it must not use.
Validation runs without masking (full inputs, matched pairs), as in the original.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import sys
from pathlib import Path

HELP = "train the A/B fusion cascade transformer on song pairs"
logger = logging.getLogger(__name__)
TRAIN_MASK_TYPES = ("temporal", "frequency", "spectral", "energy", "hybrid")


def str2bool(v) -> bool:
    if isinstance(v, bool):
        return v
    if str(v).lower() in ("1", "true", "yes", "y", "on"):
        return True
    if str(v).lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{v}'")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from trainers.solver import add_solver_arguments

    d = p.add_argument_group("data")
    d.add_argument("--dataset_folder", nargs="+", required=True,
                   help="pair folder(s) (input/target wavs) or corpus folder(s) with manifest.jsonl")
    d.add_argument("--crop_seconds", type=float, default=3.0, help="training crop length")
    d.add_argument("--crops_per_pair", type=int, default=4, help="crops of each pair per epoch")
    d.add_argument("--val_pairs", type=int, default=8, help="pairs held out for validation")
    d.add_argument("--max_pairs", type=int, default=None, help="use at most this many pairs")
    d.add_argument("--shuffle_targets", type=str2bool, nargs="?", const=True, default=True,
                   help="pair each input with a random other song's target (style transfer)")
    d.add_argument("--unity_test", type=str2bool, nargs="?", const=True, default=False,
                   help="target = input (the model must reproduce its input)")
    m = p.add_argument_group("model")
    m.add_argument("--codec", default="builtin", help="builtin, or an EnCodec hub id / local folder")
    m.add_argument("--num_transformer_layers", type=int, default=2, help="transformer layers per stage")
    m.add_argument("--num_stages", type=int, default=3, help="stages in the cascade")
    m.add_argument("--d_model", type=int, default=128)
    m.add_argument("--nhead", type=int, default=4)
    m.add_argument("--dim_feedforward", type=int, default=256)
    m.add_argument("--cascade", type=str2bool, nargs="?", const=True, default=True,
                   help="stages also read the target latent")
    k = p.add_argument_group("masking")
    k.add_argument("--mask_type", default="mixed", choices=("mixed",) + ("none",) + TRAIN_MASK_TYPES,
                   help="mask per batch; 'mixed' draws one of the five types per batch")
    k.add_argument("--mask_temporal_segment", type=int, default=150, help="frames per temporal segment "
                   "('mixed' draws 40-400)")
    k.add_argument("--mask_freq_split", type=float, default=0.3)
    k.add_argument("--mask_channel_keep", type=float, default=0.5)
    k.add_argument("--mask_energy_threshold", type=float, default=0.7)
    k.add_argument("--mask_energy_smoothing", type=int, default=19,
                   help="moving average (frames) of frame energies before the energy threshold (fuse: 100 ms)")
    k.add_argument("--crossfade_frames", type=int, default=4, help="mask crossfade (frames), as fuse uses")
    k.add_argument("--anti_cheating", type=float, default=0.3, help="noise (x latent RMS) on masked-out regions")
    w = p.add_argument_group("loss")
    w.add_argument("--loss_weight_input", type=float, default=1.0)
    w.add_argument("--loss_weight_target", type=float, default=1.0)
    w.add_argument("--loss_weight_spectral", type=float, default=0.5)
    w.add_argument("--loss_weight_mel", type=float, default=0.5)
    w.add_argument("--relative_loss", type=str2bool, nargs="?", const=True, default=True,
                   help="train on loss / (loss of the direct fusion on the same batch), so that mask types "
                        "with large irreducible losses do not dominate (1.0 = no better than direct)")
    o = p.add_argument_group("optimiser / export")
    o.add_argument("--lr", type=float, default=5e-4)
    o.add_argument("--grad_clip", type=float, default=1.0, help="gradient norm clip (0 = off)")
    o.add_argument("--export", default=None, help="write the inference checkpoint here at the end")
    o.add_argument("--name", default="fusion-cascade", help="model name stored in the export")
    o.add_argument("--init", default=None, help="start from this exported model (.safetensors; fine-tuning): "
                   "its architecture and weights are kept, the model flags are ignored")
    o.add_argument("--export_only", action="store_true",
                   help="export the model of the checkpoint in --out_dir (e.g. after a stopped run) and exit")
    add_solver_arguments(p, epochs=10, batch_size=8, ckpt_every=100)


# ------------------------------------------------------------------------------------------ data
def discover_pairs(folder: str | os.PathLike, split: str | None = None) -> list[tuple[str, str | None]]:
    """Pairs ``(a, b_or_None)`` of a folder, through the data contract (:func:`trainers.data.load`):
    a corpus ``fusion`` manifest, or one of the user-folder layouts of the module docstring (all "train").
    ``split`` keeps the rows of one split only."""
    from .data import fusion_files, load

    rows, base = load(folder, "fusion")
    out = []
    for r in rows:
        if split is not None and r.split != split:
            continue
        a, b = fusion_files(r, base)
        out.append((str(a), str(b) if b else None))
    return out


class PairCrops:
    """Random crops of song pairs: item -> ``(a (1, L), b (1, L))`` float32 at ``sr``.

    ``shuffle`` pairs an input with a random other pair's target (or single song); ``unity`` makes the
    target the input. ``fixed`` gives deterministic crops (validation)."""

    def __init__(self, pairs, sr: int, seconds: float, crops_per_pair: int = 4, shuffle: bool = True,
                 unity: bool = False, fixed: bool = False, seed: int = 0):
        self.pairs, self.sr, self.L = pairs, sr, int(round(seconds * sr))
        self.crops, self.shuffle, self.unity, self.fixed, self.seed = crops_per_pair, shuffle, unity, fixed, seed
        import soundfile as sf

        self._frames = {}
        for a, b in pairs:
            for f in (a, b):
                if f and f not in self._frames:
                    i = sf.info(f)
                    self._frames[f] = (i.frames, i.samplerate)

    def __len__(self) -> int:
        return len(self.pairs) * self.crops

    def _crop(self, path: str, rng: random.Random):
        import numpy as np
        import soundfile as sf

        frames, rate = self._frames[path]
        need = int(math.ceil(self.L * rate / self.sr)) + 8
        start = rng.randint(0, max(frames - need, 0))
        x, rate = sf.read(path, start=start, frames=need, dtype="float32", always_2d=True)
        x = x.mean(1)
        if rate != self.sr:
            import soxr

            x = soxr.resample(x, rate, self.sr).astype("float32")
        x = np.pad(x, (0, max(self.L - len(x), 0)))[: self.L]
        return x

    def __getitem__(self, i: int):
        import numpy as np
        import torch

        rng = random.Random(self.seed * 100003 + i if self.fixed else random.random())
        pi = i % len(self.pairs)
        a_path, b_path = self.pairs[pi]
        a = self._crop(a_path, rng)
        if self.unity:
            b = a.copy()
        else:
            if self.shuffle or b_path is None:
                j = rng.randrange(len(self.pairs))
                if len(self.pairs) > 1:
                    while j == pi:
                        j = rng.randrange(len(self.pairs))
                cand = [p for p in self.pairs[j] if p]
                b_path = cand[rng.randrange(len(cand))]
            b = self._crop(b_path, rng)
        # level: a at a random RMS in -26..-14 dBFS, b matched to it (as fuse matches loudness)
        from engines.audio import levels

        target_db = rng.uniform(-26, -14)
        a, b = (np.float32(levels.rms_gain(x, target_db)) * x if levels.rms(x) > 1e-5 else x for x in (a, b))
        return torch.from_numpy(np.ascontiguousarray(a))[None], torch.from_numpy(np.ascontiguousarray(b))[None]


# ------------------------------------------------------------------------------------------ run
def run(args) -> int:
    import torch

    from engines.fusion.align import smooth_masks
    from engines.fusion.codec import get_codec
    from engines.fusion.losses import FusionLoss
    from engines.fusion.masking import complementary_masks, describe
    from engines.fusion.model import CascadeFusion
    from engines.fusion.targets import arrangement, restrict
    from trainers import distrib
    from trainers.solver import Solver, config_from_args, one_cycle, total_steps

    if not getattr(args, "threads", None):
        from engines.audio.limits import set_threads

        set_threads(1)
    pairs = []
    dev: list = []
    for f in args.dataset_folder:
        pairs += discover_pairs(f, split="train")
        dev += discover_pairs(f, split="dev")
    if args.max_pairs:
        pairs = pairs[: args.max_pairs]
    if len(pairs) + len(dev) < 2:
        raise ValueError(f"Found {len(pairs) + len(dev)} song(s) in {args.dataset_folder}; at least 2 are needed.")
    if dev and pairs:  # the corpus's dev split (held-out real sources) validates; it is never trained on
        val_pairs, train_pairs = dev[: max(args.val_pairs, 1)], pairs
    else:
        pairs = pairs + dev
        rng = random.Random(args.seed)
        order = list(range(len(pairs)))
        rng.shuffle(order)
        n_val = min(args.val_pairs, max(len(pairs) // 5, 1))
        val_pairs = [pairs[i] for i in order[:n_val]]
        train_pairs = [pairs[i] for i in order[n_val:]]
    codec = get_codec(args.codec)
    sr = codec.sample_rate
    train_set = PairCrops(train_pairs, sr, args.crop_seconds, args.crops_per_pair, args.shuffle_targets,
                          args.unity_test, seed=args.seed)
    val_set = PairCrops(val_pairs, sr, args.crop_seconds, 2, False, args.unity_test, fixed=True, seed=args.seed)
    val_batch = [val_set[i] for i in range(len(val_set))]
    from engines.checkpoint import build_checked
    if getattr(args, "init", None):  # fine-tuning an exported model: its architecture and weights
        from engines.checkpoint import load_model
        init = load_model(args.init, expected=CascadeFusion)
        model = build_checked(CascadeFusion, **init._init_kwargs)
        model.load_state_dict(init.state_dict())
        print(f"Initialised from {args.init}", flush=True)
    else:
        model = build_checked(CascadeFusion, channels=codec.channels, d_model=args.d_model, num_stages=args.num_stages,
                              num_transformer_layers=args.num_transformer_layers, nhead=args.nhead,
                              dim_feedforward=args.dim_feedforward, cascade=args.cascade)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    cfg = config_from_args(args, progress_bar=False, grad_clip=args.grad_clip)
    total = total_steps(len(train_set), args.batch_size, epochs=args.epochs, max_steps=args.max_steps)
    sched = one_cycle(opt, args.lr, total, pct_start=0.05)
    hparams = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    solver = Solver(model, opt, cfg, scheduler=sched, hparams=hparams)
    crit = FusionLoss(args.loss_weight_input, args.loss_weight_target, args.loss_weight_spectral,
                      args.loss_weight_mel, sample_rate=sr)
    if distrib.is_main():
        print(f"Fusion training: {len(train_pairs)} train pairs, {len(val_pairs)} val pairs, codec {codec.name}, "
              f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {total} steps", flush=True)
        if args.mask_type == "mixed":
            print("🎭 Complementary Masking Applied:\n  Type: mixed (one of temporal, frequency, spectral, energy, "
                  "hybrid per batch)", flush=True)
        else:
            print("\n".join(describe(args.mask_type, temporal_segment=args.mask_temporal_segment,
                                     freq_split=args.mask_freq_split, channel_keep=args.mask_channel_keep,
                                     energy_threshold=args.mask_energy_threshold, frame_rate=codec.frame_rate)),
                  flush=True)

    def masks_for(za, mask_type, gen):
        seg = args.mask_temporal_segment
        split, keep, thr = args.mask_freq_split, args.mask_channel_keep, args.mask_energy_threshold
        if mask_type == "mixed":
            mask_type = TRAIN_MASK_TYPES[int(torch.randint(len(TRAIN_MASK_TYPES), (1,), generator=gen))]
            seg = int(torch.randint(40, 400, (1,), generator=gen))
            split = float(torch.empty(1).uniform_(0.15, 0.6, generator=gen))
            thr = float(torch.empty(1).uniform_(0.5, 0.9, generator=gen))
        m_in, m_tgt = complementary_masks(za, mask_type, temporal_segment=seg, freq_split=split, channel_keep=keep,
                                          energy_threshold=thr, generator=gen,
                                          energy_smoothing=args.mask_energy_smoothing)
        return m_in, m_tgt

    gen = torch.Generator().manual_seed(args.seed + distrib.rank())

    def compute(net, a, b, mask_type, noise: float, g, relative: bool = False):
        with torch.no_grad():
            za, zb = codec.encode(a), codec.encode(b)
            m_in, m_tgt = masks_for(za, mask_type, g)
            s_in, s_tgt = smooth_masks(m_in, m_tgt, args.crossfade_frames) if mask_type != "none" else (m_in, m_tgt)
            ref, ref_in, ref_tgt, (Mi, Mt, n_fft, hop) = arrangement(a, b, s_in, s_tgt, codec)
            if noise > 0:  # only where the (crossfaded) mask is exactly 0: the direct path never sees it
                rms = torch.cat([za, zb], 1).pow(2).mean((1, 2), keepdim=True).sqrt()
                za = za + noise * rms * torch.randn(za.shape, generator=g) * (s_in == 0)
                zb = zb + noise * rms * torch.randn(zb.shape, generator=g) * (s_tgt == 0)
        z = net(za, zb, s_in, s_tgt)
        y = codec.decode(z, length=a.shape[-1])
        if mask_type == "none":
            return crit(y, a, b, ref=ref)

        def losses(out):
            return crit(out, ref_in, ref_tgt, out_input=restrict(out, Mi, n_fft, hop),
                        out_target=restrict(out, Mt, n_fft, hop), ref=ref)

        res = losses(y)
        if relative:  # divide by the direct fusion's loss on the same batch: every mask type weighs alike
            with torch.no_grad():
                base = losses(codec.decode(s_in * za + s_tgt * zb, length=a.shape[-1]))["loss"]
            res["direct_loss"] = base
            res["loss"] = res["loss"] / (base + 0.01)  # +0.01: batches the direct path already solves
        return res

    def train_step(net, batch):
        a, b = batch
        return compute(net, a, b, args.mask_type, args.anti_cheating, gen, relative=args.relative_loss)

    def validate(net):
        g = torch.Generator().manual_seed(1234)
        a = torch.stack([x[0] for x in val_batch])
        b = torch.stack([x[1] for x in val_batch])
        out = {k: float(v) for k, v in compute(net, a, b, "none", 0.0, g).items()}
        masked = compute(net, a, b, args.mask_type if args.mask_type != "none" else "temporal", 0.0, g, relative=True)
        out["masked_loss"] = float(masked["loss"])  # relative to the direct fusion: < 1 is better than direct
        return out

    def on_epoch_end(epoch, tr, va):
        print(f"Epoch {epoch}/{args.epochs}:")
        print(f"  Train Loss: {tr['loss']:.4f} (rms_in: {tr['rms_input']:.4f}, rms_tgt: {tr['rms_target']:.4f}, "
              f"spec: {tr['spectral']:.4f}, mel: {tr['mel']:.4f})")
        if va:
            print(f"  Val Loss:   {va['loss']:.4f} (rms_in: {va['rms_input']:.4f}, rms_tgt: {va['rms_target']:.4f}, "
                  f"spec: {va['spectral']:.4f}, mel: {va['mel']:.4f}) masked/direct: {va.get('masked_loss', 0):.4f}")
        print(f"  LR: {solver.lr():.2e}", flush=True)

    if args.export_only:
        if not solver.step:
            raise ValueError(f"No training checkpoint in '{args.out_dir}' to export.")
        res = {"stopped": False}
    else:
        res = solver.fit(train_set, train_step, validate=validate, on_epoch_end=on_epoch_end)
    if args.export and not res.get("stopped") and distrib.is_main():
        datasets = ", ".join(str(Path(f)) for f in args.dataset_folder)
        path = solver.export(args.export, {"name": args.name, "codec": codec.name, "sample_rate": sr,
                                           "trained_on": f"{len(train_pairs)} pairs from {datasets}",
                                           "mask_type": args.mask_type})
        print(f"Exported {path}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python trainers/fusion.py ...``: the same as ``launch.py train fusion ...``."""
    from trainers.solver import script_main

    return script_main("train fusion", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
