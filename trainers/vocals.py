"""`python launch.py train vocals DATA --out_dir RUN`: train the vocal mask CNN on the shared solver.

DATA is a folder built by ``vocals-dataset`` or a raw songs root (DSD100, MUSDB18-HQ, corpus
``songs/``), which is then built first into ``RUN/data``. AdamW, one-cycle learning rate (peak
``--lr``) or ``--fix_learning_rate``; binary cross-entropy on the middle frames' masks (weighted by
the mixture's normalised level so loud bins count more). Every ``eval_every_epoch`` epochs,
``num_evals`` held-out songs are separated, written to ``RUN/eval/epoch_XXX/<song>/vocals.wav``
and scored (SDR); every ``save_every_epoch`` epochs a snapshot ``RUN/epoch_XXX.safetensors`` is
exported. Resumable (rerun the same command), MLflow, torchrun; the final model goes to ``--export``.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

HELP = "train the vocal mask CNN (builds the sliced dataset first when DATA is a songs folder)"


def add_arguments(parser) -> None:
    from trainers.solver import add_solver_arguments

    from engines.vocals.features import HParams

    d = HParams()
    parser.add_argument("data", nargs="+",
                        help="a vocals-dataset folder, or songs root(s) (DSD100 / MUSDB18-HQ / corpus songs)")
    add_solver_arguments(parser, epochs=d.nepochs, batch_size=d.batch_size, ckpt_every=200)
    h = parser.add_argument_group("model hyper-parameters (the original's names)")
    h.add_argument("--fix_learning_rate", type=float, default=None, help="fixed learning rate (default: one-cycle)")
    h.add_argument("--lr", type=float, default=d.lr, help="peak learning rate of the one-cycle schedule")
    h.add_argument("--weight_decay", type=float, default=d.weight_decay)
    h.add_argument("--res_dims", type=int, nargs="+", default=d.res_dims, help="width of each residual unit")
    h.add_argument("--dilations", type=int, nargs="+", default=d.dilations,
                   help="time dilation per unit (2*sum+1 = context = 25)")
    h.add_argument("--stem", type=int, nargs="*", default=d.stem, help="channels of 2D conv stem layers (optional)")
    h.add_argument("--save_every_epoch", type=int, default=d.save_every_epoch)
    h.add_argument("--eval_every_epoch", type=int, default=d.eval_every_epoch)
    h.add_argument("--num_evals", type=int, default=d.num_evals)
    h.add_argument("--mask_at_eval", action="store_true", help="binary mask in evaluation and as the model's default")
    h.add_argument("--stft_stride", type=int, default=None, help="(when building) frames between windows")
    h.add_argument("--mask_threshold", type=float, default=None, help="(when building) vocal-share cutoff")
    h.add_argument("--ref_level_db", type=float, default=None, help="(when building)")
    h.add_argument("--use_preemphasis", action="store_true", help="(when building)")
    h.add_argument("--predict_frames", type=int, default=None, help="(when building) target frames per window")
    h.add_argument("--soft_mask", action="store_true",
                   help="soft ratio-mask target |V|/(|V|+|A|) (BCE on soft labels) instead of the binary mask")
    h.add_argument("--loss", choices=("bce", "psa"), default=d.loss,
                   help="bce: the original's level-weighted binary cross-entropy on the mask; psa: the masked "
                        "mixture's error |m X - V|^2 / |X|^2 per window (what SDR measures; needs --waves)")
    w = parser.add_argument_group("waveform training set (on-the-fly features, several roots, remix augmentation)")
    w.add_argument("--waves", action="store_true",
                   help="train from a waveform set (RUN/waves, built from the roots; implied by several roots, "
                        "--remix_prob or --stem_gain_db)")
    w.add_argument("--remix_prob", type=float, default=0.0, help="probability of another song's accompaniment")
    w.add_argument("--stem_gain_db", type=float, default=0.0, help="random gain of each stem, +- dB")
    w.add_argument("--eval_songs", type=int, default=6, help="held-out songs of the last root (waveform set)")
    parser.add_argument("--init", default=None,
                        help="initialise the weights from this exported model (same architecture, or narrower: "
                             "widened function-preservingly, see widen_state_dict)")
    parser.add_argument("--export", default=None, help="final model path (default RUN/vocals.safetensors)")
    parser.add_argument("--trained_on", default=None, help="description of the training data for the metadata")


def _prepare_data(args) -> Path:
    from trainers import distrib
    from trainers.vocals_dataset import DATASET_FILE, build, hparams_from_args

    from trainers.vocals_dataset import WAVES_FILE, build_waves

    roots = [Path(d) for d in args.data]
    if _use_waves(args):
        if len(roots) == 1 and (roots[0] / WAVES_FILE).is_file():
            return roots[0]
        built = Path(args.out_dir) / "waves"
        if distrib.is_main() and not (built / WAVES_FILE).is_file():
            print(f"Building the vocals waveform set from {', '.join(map(str, roots))} into {built}", flush=True)
            build_waves(roots, built, hparams_from_args(args), eval_songs=args.eval_songs)
        distrib.barrier()
        return built
    if len(roots) > 1:
        raise ValueError("Several roots need the waveform set (--waves).")
    data = roots[0]
    if (data / DATASET_FILE).is_file():
        return data
    built = Path(args.out_dir) / "data"
    if distrib.is_main() and not (built / DATASET_FILE).is_file():
        print(f"Building the vocals dataset from {data} into {built}", flush=True)
        build(data, built, hparams_from_args(args))
    distrib.barrier()
    return built


def widen_state_dict(old: dict, new: dict) -> dict:
    """Weights of a narrower model (same depth and dilations) copied into a wider one, function-preservingly.

    Every tensor of ``new`` (the wider model's fresh initialisation) receives ``old`` in its leading
    slice. Weights that make the old outputs *read* the new input channels (conv dim 1 beyond the old
    width) are zeroed, so the wider network computes exactly the old function at the start, while the
    new channels keep their random input weights (and therefore get gradients). BatchNorm entries of
    new channels keep their defaults. Tensors of equal shape are copied as they are.
    """
    import torch

    out = {}
    for k, t in new.items():
        if k not in old:
            raise ValueError(f"--init model has no '{k}'")
        o = old[k]
        if o.shape == t.shape:
            out[k] = o.clone()
            continue
        if o.dim() != t.dim() or any(a > b for a, b in zip(o.shape, t.shape)):
            raise ValueError(f"--init model's '{k}' {tuple(o.shape)} does not fit into {tuple(t.shape)}")
        w = t.detach().clone()
        if w.dim() >= 2:
            w[: o.shape[0], o.shape[1]:] = 0
        w[tuple(slice(0, n) for n in o.shape)] = o
        out[k] = w
    return out


def psa_loss(logits, sv, sx):
    """Waveform-domain loss of the masked mixture: ``sum |sigmoid(logits) X - V|^2 / sum |X|^2`` per window,
    averaged over the batch. By Parseval this is the error energy of the separated vocals relative to the
    mixture (what SDR measures); its minimiser is the phase-sensitive mask ``Re(V X*) / |X|^2`` clipped to 0..1.

    Args:
        logits: mask logits ``(B, F, K)``.
        sv, sx: complex STFTs of the vocals and of the mixture at the same frames, ``(B, F, K)``.
    """
    import torch

    err = (torch.sigmoid(logits) * sx - sv).abs().pow(2).sum((1, 2))
    return (err / (sx.abs().pow(2).sum((1, 2)) + 1e-8)).mean()


def _use_waves(args) -> bool:
    return bool(args.waves or len(args.data) > 1 or args.remix_prob > 0 or args.stem_gain_db > 0)


def run(args) -> int:
    import numpy as np
    import torch

    from engines.audio import io as audio_io
    from engines.audio.metrics import sdr
    from engines.vocals.api import VocalIsolator
    from engines.vocals.features import HParams
    from engines.vocals.model import VocalMaskCNN
    from trainers import distrib
    from trainers.solver import Solver, config_from_args, one_cycle, seed_everything, total_steps
    from trainers.vocals_dataset import VocalsRemix, VocalsWindows, eval_songs, remix_batch

    distrib.init()
    seed_everything(args.seed)
    folder = _prepare_data(args)
    waves = _use_waves(args)
    hp = HParams.from_dict(json.loads((folder / ("waves.json" if waves else "dataset.json")).read_text())["hparams"])
    hp.soft_mask, hp.remix_prob, hp.stem_gain_db = bool(args.soft_mask), args.remix_prob, args.stem_gain_db
    if waves:
        ds = VocalsRemix(folder, remix_prob=hp.remix_prob, stem_gain_db=hp.stem_gain_db,
                         seed=args.seed + 1000 * distrib.rank())
    else:
        if hp.soft_mask or args.loss != "bce":
            raise ValueError("--soft_mask and --loss psa need the waveform set (--waves).")
        ds = VocalsWindows(folder)
    hp.batch_size, hp.nepochs = args.batch_size, args.epochs
    hp.fix_learning_rate, hp.lr, hp.weight_decay = args.fix_learning_rate, args.lr, args.weight_decay
    hp.res_dims, hp.dilations, hp.stem = list(args.res_dims), list(args.dilations), list(args.stem or [])
    hp.save_every_epoch, hp.eval_every_epoch, hp.num_evals = args.save_every_epoch, args.eval_every_epoch, args.num_evals
    hp.mask_at_eval, hp.loss = bool(args.mask_at_eval), args.loss
    from engines.checkpoint import build_checked
    model = build_checked(VocalMaskCNN, n_bins=hp.n_fft // 2 + 1, context=hp.context, res_dims=hp.res_dims,
                         dilations=hp.dilations, hparams=hp.to_dict(), stem=hp.stem)
    if args.init:
        from engines.checkpoint import load_model
        model.load_state_dict(widen_state_dict(load_model(args.init, expected=VocalMaskCNN).state_dict(),
                                               model.state_dict()))
        print(f"Initialised the weights from {args.init}", flush=True)
    lr = hp.fix_learning_rate or hp.lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=hp.weight_decay)
    cfg = config_from_args(args, progress_bar=False)
    total = total_steps(len(ds), cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps)
    sched = one_cycle(opt, hp.lr, total, pct_start=0.15) if hp.fix_learning_rate is None else None
    solver = Solver(model, opt, cfg, scheduler=sched, hparams=hp.to_dict())
    if sched is not None and sched.total_steps != max(total, 2):
        raise ValueError(f"{cfg.out_dir} holds a run with a {sched.total_steps}-step one-cycle schedule; resume it "
                         f"with the same --epochs/--max_steps/--batch_size, use --fix_learning_rate, or --no_resume.")
    half, K = hp.context // 2, hp.predict_frames
    out = Path(cfg.out_dir)
    evals = eval_songs(folder)[: hp.num_evals]
    src = ", ".join(ds.meta["roots"]) if waves else ds.meta["root"]
    trained_on = args.trained_on or f"{src} ({ds.meta['train_songs']} songs, {ds.meta['train_seconds']} s)"

    def train_step(m, batch):
        if hp.loss == "psa":
            x, y, sv, sx = remix_batch(batch, hp, soft=hp.soft_mask, spectra=True)
            logits = m(x)
            loss = psa_loss(logits, sv, sx)
        else:
            x, y = remix_batch(batch, hp, soft=hp.soft_mask) if waves else batch
            logits = m(x)
            w = 0.1 + x[..., half:half + K]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=w, reduction="sum") / w.sum()
        with torch.no_grad():
            acc = ((logits > 0) == (y > 0.5)).float().mean()
        return {"loss": loss, "acc": acc}

    def validate(m):
        epoch = solver.epoch + 1
        if not evals or epoch % max(hp.eval_every_epoch, 1):
            return {}
        iso = VocalIsolator(net=m, chunk_seconds=30.0)
        scores = []
        for song in evals:
            mix, sr = audio_io.load(song / "mixture.wav")
            ref, _ = audio_io.load(song / "vocals.wav")
            res = iso.separate(mix, sr, binary_mask=hp.mask_at_eval)
            scores.append(sdr(ref[0], res.vocals[0]))
            if distrib.is_main():
                audio_io.save(out / "eval" / f"epoch_{epoch:03d}" / song.name / "vocals.wav", res.vocals, sr, "FLOAT")
        m.train()
        return {"sdr": float(np.mean(scores))}

    def on_epoch_end(epoch, tr, va):
        msg = f"Epoch {epoch}: Train Loss: {tr.get('loss', float('nan')):.4f} acc {tr.get('acc', float('nan')):.3f}"
        if "sdr" in va:
            msg += f" Eval SDR: {va['sdr']:.2f} dB"
        print(msg, flush=True)
        if hp.save_every_epoch and epoch % hp.save_every_epoch == 0:
            solver.export(out / f"epoch_{epoch:03d}.safetensors", {"trained_on": trained_on, "kind": "vocals"})

    res = solver.fit(ds, train_step, validate=validate, on_epoch_end=on_epoch_end)
    if distrib.is_main() and solver.step and not res.get("stopped"):
        path = Path(args.export or out / "vocals.safetensors")
        solver.export(path, {"trained_on": trained_on, "kind": "vocals",
                             "dataset": {"windows": len(ds), **{k: ds.meta[k] for k in ("train_songs", "train_seconds")}}})
        print(json.dumps({"event": "exported", "path": str(path), **{k: v for k, v in res.items() if k != "stopped"}}),
              flush=True)
    distrib.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python trainers/vocals.py ...``: the same as ``launch.py train vocals ...``."""
    from trainers.solver import script_main

    return script_main("train vocals", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
