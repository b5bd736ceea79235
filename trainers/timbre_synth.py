"""`train timbre-synth`: the synthesis-decoder timbre model (:class:`engines.timbre.synth_model.TimbreSynth`)
under the seed's four-phase curriculum.

Same data as ``train timbre`` (``pairs/<id>/piano.wav`` + ``violin.wav``, ``piano/*.wav``, ``violin/*.wav``;
typed corpus rows), the same class-balanced windows (:class:`trainers.timbre.TimbreWindows`, with dynamic
mixing of gain and frame offset but never a second melody summed in: the model is monophonic), the same
encoders, discriminator and disentanglement terms (HSIC, InfoNCE, margin, adversarial: shared code,
:meth:`trainers.timbre.TimbreTrainer.curriculum_terms`) and the same phases and learning-rate schedule.

What differs is the output: every window's pitch and loudness are tracked (:func:`engines.timbre.pitch.track`)
and the decoder drives the harmonic-plus-noise synthesiser; the loss is a multi-scale magnitude loss on
the synthesised waveform (:class:`engines.timbre.losses.SpectralMagnitudeLoss`), for piano -> piano and
violin -> violin (reconstruction, ``rec``) and, on pairs, piano -> violin and violin -> piano (``pair``).

Validation: whole held-out pairs through :meth:`TimbreSynth.transfer_wave` scored with the bench scorer's
metric functions (``score.timbre_metrics``: MR-STFT, log-mel L1, chroma) for both directions. Held-out pairs
are the corpus's dev rows; a corpus without dev rows gives up the pairs whose row index ends in 9
(``--dev_every 10``, wave 2's rule), never trained on.
"""
from __future__ import annotations

import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

if not __package__:  # run as a script (python trainers/timbre_synth.py): the checkout's packages first
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainers.timbre import PHASES, TimbreTrainer, TimbreWindows, discover, load_clips, lr_schedule, phase_of

logger = logging.getLogger(__name__)

HELP = "train the synthesis-decoder timbre model (pitch + loudness -> harmonic-plus-noise synthesiser)"

DEFAULT_WEIGHTS = {"rec": 1.0, "pair": 2.0, "hsic": 0.1, "infonce": 0.05, "margin": 0.05, "adv": 0.05,
                   "temperature": 0.1, "margin_value": 1.0}


class PitchWindows(TimbreWindows):
    """:class:`TimbreWindows` items plus ``piano_f0``/``violin_f0`` (Hz, ``(L,)``) and ``piano_loud``/``violin_loud``
    (dB ``(L,)``, or with ``note_features`` the decoder's dynamics ``(L, 3)``: loudness, the note's loudest, its
    age; :func:`engines.timbre.pitch.note_features`). No second melody is ever mixed in.

    Pitch and loudness are tracked once on each whole clip (as the engine tracks a whole input) and cut at the
    window's start, the remix gain added to the loudness: a window that starts inside a note knows when the note
    began. Frames past the clip's end (masked in the loss) hold the last pitch at -120 dB."""

    REMIX_SECOND_P = 0.0

    def __init__(self, *args, note_features: bool = False, input_only: set[int] | frozenset = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.note_features = bool(note_features)
        self.input_only = frozenset(input_only)  # pair indices whose piano is an input only, never a target
        self._tracked: dict[int, np.ndarray] = {}

    def tracked(self, clip) -> np.ndarray:
        """``(N, 4)`` for a whole clip: f0 Hz, loudness dB, the note's loudest dB, its age s (cached)."""
        from engines.timbre import pitch

        key = id(clip)
        if key not in self._tracked:
            wav = clip.wav.numpy()
            f0, loud, _ = pitch.track(wav, clip.frames)
            self._tracked[key] = np.concatenate([f0[:, None], pitch.note_features(f0, loud)], axis=1)
        return self._tracked[key]

    def __getitem__(self, i: int) -> dict:
        item = super().__getitem__(i)
        kind, a, b = self.index[i]
        clips = self.pairs[a] if kind == "pair" else (self.pianos[a[0]], self.violins[b[0]])
        L, frames = self.window, int(item["frames"])
        for side, clip, start, gain in zip(("piano", "violin"), clips, item["starts"].tolist(), item["gains"].tolist()):
            t = self.tracked(clip)[start:start + frames].copy()
            t[:, 1:3] += 20 * np.log10(max(gain, 1e-6))
            if len(t) < L:
                pad = np.repeat(t[-1:], L - len(t), axis=0)
                pad[:, 1] = -120.0
                t = np.concatenate([t, pad])
            item[f"{side}_f0"] = torch.from_numpy(np.ascontiguousarray(t[:, 0]))
            item[f"{side}_loud"] = torch.from_numpy(np.ascontiguousarray(t[:, 1:] if self.note_features else t[:, 1]))
        item["piano_target"] = torch.tensor(0.0 if kind == "pair" and a in self.input_only else 1.0)
        return item


class SynthTrainer(TimbreTrainer):
    """``forward(batch, phase) -> {"loss", terms...}``: synthesised reconstruction and paired terms plus the
    seed's curriculum terms."""

    def __init__(self, model, weights: dict[str, float]):
        super().__init__(model, weights)
        from engines.timbre.losses import SpectralMagnitudeLoss

        self.wave_loss = SpectralMagnitudeLoss()

    def forward(self, batch: dict, phase: int) -> dict:
        from engines.timbre.features import HOP, stack_complex, stft_complex

        m, w = self.model, self.w
        pw, vw = batch["piano_wav"], batch["violin_wav"]
        B, T = pw.shape
        sp, sv = stft_complex(pw), stft_complex(vw)
        cq = lambda c: torch.complex(c[:, 0], c[:, 1])  # noqa: E731
        raw = torch.cat([stack_complex(sp, cq(batch["piano_cqt"])), stack_complex(sv, cq(batch["violin_cqt"]))])
        L = raw.shape[-1]
        frames = batch["frames"].long()
        mask1 = torch.arange(L, device=raw.device)[None] < frames[:, None]
        mask = torch.cat([mask1, mask1])
        labels = torch.cat([torch.zeros(B, dtype=torch.long), torch.ones(B, dtype=torch.long)]).to(raw.device)

        # an input-only piano (--input_only: another piano's sound) is never a target: no reconstruction, no
        # violin -> piano term, no prototype update, and its class style is never lent to another item
        pt = batch["piano_target"].float().to(raw.device) if "piano_target" in batch else torch.ones(B, device=raw.device)
        content, fstyle, cls = m.encode(raw, mask)
        keep = torch.cat([pt > 0, torch.ones(B, dtype=torch.bool, device=raw.device)])
        m.update_prototypes(cls.detach()[keep], labels[keep])
        cls_p = torch.where(pt[:, None] > 0, cls[:B], m.prototypes[0].detach().to(cls.dtype)[None])
        st_p, st_v = cls_p.roll(1, 0), cls[B:].roll(1, 0)  # another item's class style (as the seed)
        f_p, f_v = batch["piano_f0"].float(), batch["violin_f0"].float()
        l_p, l_v = batch["piano_loud"].float(), batch["violin_loud"].float()
        paired = batch["paired"].float()
        any_pair = bool(paired.sum() > 0)
        c_p, c_v = content[:B], content[B:]
        dec = [(c_p, st_p, f_p, l_p, 0, pw, mask1), (c_v, st_v, f_v, l_v, 1, vw, mask1)]
        if any_pair:
            dec += [(c_p, st_v, f_p, l_p, 1, vw, mask1), (c_v, st_p, f_v, l_v, 0, pw, mask1)]
        cat = lambda j: torch.cat([d[j] for d in dec])  # noqa: E731
        tgt = torch.cat([torch.full((B,), d[4], dtype=torch.long) for d in dec]).to(raw.device)
        dmask = cat(6)
        amp, harm, noise = m.decoder(cat(0), cat(1), cat(2), cat(3), dmask)
        f0 = cat(2)
        est = m.synth(f0, amp, harm, noise, tgt, T)
        smask = (torch.arange(T, device=raw.device)[None] < (frames.repeat(len(dec))[:, None] - 1) * HOP).to(est.dtype)
        ref = cat(5)
        out: dict[str, torch.Tensor] = {}
        rec = self.wave_loss(est[:2 * B] * smask[:2 * B], ref[:2 * B] * smask[:2 * B], torch.cat([pt, torch.ones_like(pt)]))
        out["rec"] = rec
        loss = w["rec"] * rec
        if any_pair:
            pm = torch.cat([paired, paired * pt])
            pair = self.wave_loss(est[2 * B:] * smask[2 * B:], ref[2 * B:] * smask[2 * B:], pm)
            out["pair"] = pair
            loss = loss + w["pair"] * pair
        loss = loss + self.curriculum_terms(content, fstyle, cls, labels, mask, phase, out)
        out["loss"] = loss
        out["phase"] = torch.tensor(float(phase))
        return out


# --------------------------------------------------------------------------- validation
@torch.no_grad()
def evaluate_pairs(model, clips, max_pairs: int = 6) -> dict:
    """Whole held-out pairs, both directions, with the bench scorer's metrics (at 22050 Hz):
    ``pv_*`` piano -> violin against the violin, ``vp_*`` violin -> piano against the piano."""
    from benchmarks.common import scorer
    from engines.timbre import pitch
    from engines.timbre.features import features, n_frames

    if not clips:
        return {}
    sc = scorer()
    model.eval()
    acc: dict[str, list[float]] = {}
    for p, v in clips[:max_pairs]:
        for src, ref, tgt, key in ((p, v, 1, "pv"), (v, p, 0, "vp")):
            wav = src.wav.numpy()
            raw = features(wav)
            f0, loud, _ = pitch.track(wav, n_frames(len(wav)))
            y = model.transfer_wave(raw, torch.from_numpy(f0), model.dynamics(f0, loud), model.style_of(tgt), tgt,
                                    len(wav)).numpy()
            r = ref.wav.numpy()
            n = min(len(r), len(y))
            met = sc.timbre_metrics(r[:n].astype(np.float64), y[:n].astype(np.float64), 22050)
            for k in ("mrstft", "logmel_l1", "chroma_cos"):
                acc.setdefault(f"{key}_{k}", []).append(float(met[k]))
    model.train()
    return {k: float(np.mean(v)) for k, v in acc.items()}


def held_out(pairs, dev_every: int):
    """``(dev, train)``: pairs whose id ends in a row index ``i`` with ``i % dev_every == dev_every - 1``."""
    def idx(pid: str) -> int:
        digits = "".join(ch for ch in pid.split("_")[-1] if ch.isdigit())
        return int(digits) if digits else 0
    dev = [p for p in pairs if idx(p[0]) % dev_every == dev_every - 1]
    return dev, [p for p in pairs if p not in dev]


def split_data(data: list[str], only: list[str], dev_every: int, seed: int, max_pairs: int | None = None):
    """``(train_pairs, pianos, violins, input_only, dev_pairs)`` of the ``--data`` folders: the rows marked dev
    (else :func:`held_out`) are never trained on; ``input_only`` indexes the training pairs whose piano lies under
    one of the ``only`` folders (those pianos are never a target, nor a solo clip, nor a dev pair)."""
    dev_pairs = discover(data, split="dev", required=False)[0]
    pairs, pianos, violins = discover(data, split="train" if dev_pairs else None)
    if not dev_pairs:
        dev_pairs, pairs = held_out(pairs, dev_every)
    random.Random(seed).shuffle(pairs)
    train_pairs = pairs[:max_pairs] if max_pairs else pairs
    under = lambda f: any(Path(f).is_relative_to(d) for d in only)  # noqa: E731
    input_only = {i for i, (_, p, _) in enumerate(train_pairs) if under(p)}
    pianos = [f for f in pianos if not under(f)]
    dev_pairs = [d for d in dev_pairs if not under(d[1])]  # validation: the target piano's pairs only
    return train_pairs, pianos, violins, input_only, dev_pairs


def fit_high_band(train_pairs, pianos, violins, input_only=frozenset()):
    """:func:`engines.timbre.high_band.fit` on the training targets: every training violin, and the pianos that
    are targets (not the input-only ones), read one at a time at their own rate."""
    from engines.audio import io as audio_io
    from engines.timbre import high_band

    def clips(paths):
        for path in paths:
            x, sr = audio_io.load(path, mono=True)
            yield x[0], sr

    targets = {"piano": [p for i, (_, p, _) in enumerate(train_pairs) if i not in input_only] + list(pianos),
               "violin": [v for _, _, v in train_pairs] + list(violins)}
    return high_band.fit({k: clips(v) for k, v in targets.items() if v})


def export_high_band(init: str, export: str, train_pairs, pianos, violins, input_only) -> int:
    """``--high_band_only``: ``init``'s weights and metadata, with curves fitted on this data, written to ``export``."""
    from engines.checkpoint import load_model, save_model
    from engines.timbre.model import TimbreTransfer
    from engines.timbre.synth_model import TimbreSynth

    model = load_model(init, expected=TimbreTransfer)
    if not isinstance(model, TimbreSynth):
        raise ValueError("--high_band_only: the band-replication curves belong to a synthesis model (timbre-synth).")
    hb = fit_high_band(train_pairs, pianos, violins, input_only)
    save_model(model, export, metadata={**model.checkpoint_metadata, "high_band": hb.to_json()})
    print(json.dumps({"exported": export, "high_band": hb.info}), flush=True)
    return 0


# --------------------------------------------------------------------------- command
def add_arguments(parser) -> None:
    from trainers.solver import add_solver_arguments

    parser.add_argument("--data", action="append", required=True,
                        help="folder with pairs/<id>/{piano,violin}.wav and/or piano/*.wav, violin/*.wav (repeatable)")
    parser.add_argument("--input_only", action="append", default=[],
                        help="a --data folder whose pianos are inputs only (e.g. another soundfont's piano paired with "
                        "the target violin): its pairs train piano -> violin only, its pianos are never a target (repeatable)")
    parser.add_argument("--init", default=None, help="start from an exported model (.safetensors): a TimbreSynth "
                        "(everything) or a spectral TimbreTransfer (its encoders, discriminator, statistics, styles)")
    parser.add_argument("--export", default=None, help="write the inference checkpoint here (.safetensors)")
    parser.add_argument("--val_pairs", type=int, default=6, help="held-out pairs scored at each epoch's end")
    parser.add_argument("--dev_every", type=int, default=10,
                        help="without dev rows in the data: hold out the pairs whose index %% N == N - 1")
    parser.add_argument("--max_pairs", type=int, default=None, help="use at most this many training pairs")
    parser.add_argument("--max_seconds", type=float, default=None, help="cut clips to this length")
    parser.add_argument("--window", type=int, default=172, help="frames per training window (~2 s)")
    parser.add_argument("--overlap", type=float, default=0.3, help="window overlap (fraction)")
    parser.add_argument("--remix_p", type=float, default=0.3, help="share of windows with a random gain and offset")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--enc_lr", type=float, default=0.2, help="encoders' learning rate, as a share of --lr")
    parser.add_argument("--d_model", type=int, default=128, help="encoder/decoder width (without --init)")
    parser.add_argument("--style_dim", type=int, default=64, help="style/content embedding size (without --init)")
    parser.add_argument("--enc_layers", type=int, default=2, help="encoder transformer layers (without --init)")
    parser.add_argument("--dec_layers", type=int, default=3)
    parser.add_argument("--n_harmonics", type=int, default=48)
    parser.add_argument("--reverb_seconds", type=float, default=0.5)
    parser.add_argument("--note_features", action="store_true",
                        help="also drive the decoder with each note's loudest level and age (pitch.note_features), so "
                        "a decayed piano note is still bowed and a held violin note decays; with --init of a synthesis "
                        "model without them, their input weights start at zero")
    parser.add_argument("--weights", default=None, help="JSON overriding loss weights " + json.dumps(DEFAULT_WEIGHTS))
    parser.add_argument("--grad_clip", type=float, default=5.0, help="gradient norm clip (0 = off)")
    parser.add_argument("--high_band_only", action="store_true",
                        help="train nothing: fit the band-replication curves (the band above 10 kHz at 24-48 kHz, per "
                        "target instrument: engines/timbre/high_band.py) on the training split and write --init with "
                        "them to --export")
    parser.add_argument("--export_epochs", action="store_true", help="also write RUN/epochNN.safetensors after each epoch")
    add_solver_arguments(parser, epochs=None, batch_size=4, ckpt_every=50)


def build_model(args):
    from engines.checkpoint import build_checked, load_model
    from engines.timbre.model import TimbreTransfer
    from engines.timbre.synth_model import TimbreSynth

    if args.init:
        init = load_model(args.init, expected=TimbreTransfer)
        if isinstance(init, TimbreSynth):
            kw = dict(init._init_kwargs)
            sd = init.state_dict()
            if args.note_features and not init.note_features:  # the two new pitch inputs start at zero weight
                kw["note_features"] = True
                w = sd["decoder.in_pitch.weight"]
                sd["decoder.in_pitch.weight"] = torch.cat([w, w.new_zeros(w.shape[0], 2)], dim=1)
            model = TimbreSynth(**kw)
            model.load_state_dict(sd)
            return model, "all" + (" (+ note features)" if kw.get("note_features") != init.note_features else "")
        kw = init._init_kwargs
        model = build_checked(TimbreSynth, d_model=kw["d_model"], style_dim=kw["style_dim"],
                              enc_blocks=kw["enc_blocks"], enc_layers=kw["enc_layers"], n_heads=kw["n_heads"],
                              dec_layers=args.dec_layers, window=args.window, overlap=args.overlap,
                              n_harmonics=args.n_harmonics, reverb_seconds=args.reverb_seconds,
                              stats_name=init.stats_name, note_features=args.note_features)
        sd = {k: v for k, v in init.state_dict().items() if not k.startswith("decoder.")}
        model.load_state_dict(sd, strict=False)
        return model, "encoders"
    return build_checked(TimbreSynth, d_model=args.d_model, style_dim=args.style_dim, enc_layers=args.enc_layers,
                         dec_layers=args.dec_layers, window=args.window, overlap=args.overlap,
                         n_harmonics=args.n_harmonics, reverb_seconds=args.reverb_seconds,
                         note_features=args.note_features), None


def run(args) -> int:
    from engines.checkpoint import save_model
    from trainers import distrib
    from trainers.solver import Solver, config_from_args, seed_everything, total_steps

    if args.epochs is None and args.max_steps is None:
        args.max_steps = 1000
    only = [str(Path(d)) for d in args.input_only]
    if any(d not in [str(Path(x)) for x in args.data] for d in only):  # before anything is read or created
        raise ValueError("--input_only names a folder that is not one of the --data folders.")
    if args.high_band_only and not (args.init and args.export):
        raise ValueError("--high_band_only needs --init (the model) and --export (where its copy goes).")
    seed_everything(args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_pairs, pianos, violins, input_only, dev_pairs = split_data(args.data, only, args.dev_every, args.seed,
                                                                     args.max_pairs)
    if args.high_band_only:
        return export_high_band(args.init, args.export, train_pairs, pianos, violins, input_only)
    val_pairs = dev_pairs[: args.val_pairs]
    # the band-replication curves every exported checkpoint carries (they depend on the data, not the weights)
    high_band = None
    if args.export or args.export_epochs:
        try:
            high_band = fit_high_band(train_pairs, pianos, violins, input_only).to_json()
        except ValueError as exc:  # data below 24 kHz: the outputs' high band comes from the input (extend_band)
            print(f"No band-replication curves: {exc}", flush=True)
    (out / "split.json").write_text(json.dumps({"train": [p[0] for p in train_pairs], "val": [p[0] for p in val_pairs]}))
    tp, pn, vn = load_clips(train_pairs, pianos, violins, out / "features_cache.safetensors", args.max_seconds)
    vp = load_clips(val_pairs, [], [], out / "val_cache.safetensors", args.max_seconds)[0] if val_pairs else []

    model, init_what = build_model(args)
    if init_what is None:
        from engines.timbre.features import stats_for_clips

        model.set_stats(stats_for_clips([c for pr in tp for c in pr] + pn + vn, name="unified"))
    else:
        print(f"Initialised ({init_what}) from {args.init}", flush=True)
    weights = {**DEFAULT_WEIGHTS, **(json.loads(args.weights) if args.weights else {})}
    wrapper = SynthTrainer(model, weights)
    ds = PitchWindows(tp, pn, vn, args.window, args.overlap, args.seed, remix_p=args.remix_p,
                      note_features=model.note_features, input_only=input_only)
    if input_only:
        print(f"{len(input_only)} of the training pairs have an input-only piano ({', '.join(only)})", flush=True)
    print(f"Dataset: {len(tp)} training pairs, {len(pn)}+{len(vn)} unpaired clips -> {len(ds)} windows "
          f"of {args.window} frames; {len(vp)} validation pairs", flush=True)
    enc = [p for n, p in model.named_parameters() if n.startswith(("style_encoder.", "content_encoder."))]
    rest = [p for n, p in model.named_parameters() if not n.startswith(("style_encoder.", "content_encoder."))]
    opt = torch.optim.AdamW([{"params": rest}, {"params": enc, "lr": args.lr * args.enc_lr}], lr=args.lr,
                            weight_decay=1e-4)
    cfg = config_from_args(args, progress_bar=False, grad_clip=args.grad_clip or None)
    total = total_steps(len(ds), cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps)
    sched = lr_schedule(opt, total)
    hparams = {"model": model._init_kwargs, "weights": weights, "data": args.data, "lr": args.lr, "enc_lr": args.enc_lr,
               "init": args.init, "train_pairs": len(tp), "unpaired": [len(pn), len(vn)], "windows": len(ds),
               "input_only": args.input_only, "input_only_pairs": len(input_only)}
    solver = Solver(wrapper, opt, cfg, scheduler=sched, hparams=hparams)
    state = {"phase": None}

    def train_step(mod, batch):
        ph = phase_of(solver.step, total)
        if ph != state["phase"]:
            state["phase"] = ph
            if distrib.is_main():
                print(f"Curriculum phase {ph}/4: {PHASES[ph - 1][1]} (from step {solver.step} of {total})", flush=True)
                solver.emit("phase", phase=ph, name=PHASES[ph - 1][1])
        return mod(batch, ph)

    def on_epoch_end(epoch, tr, va):
        print(f"Epoch {epoch}: " + ", ".join(f"{k}={v:.4f}" for k, v in tr.items()) +
              (" | val " + ", ".join(f"{k}={v:.4f}" for k, v in va.items()) if va else ""), flush=True)
        if args.export_epochs and distrib.is_main():  # every epoch's weights, to choose among on the dev split
            save_model(model, out / f"epoch{epoch:02d}.safetensors",
                       metadata={"trained_on": ", ".join(args.data), "init": args.init, "epoch": epoch,
                                 "steps": solver.step, "val": va, "weights": weights, "high_band": high_band})

    t0 = time.time()
    res = solver.fit(ds, train_step, validate=lambda wr: evaluate_pairs(wr.model, vp), on_epoch_end=on_epoch_end)
    if res.get("stopped"):
        print("Stopped; run the same command again to resume.", flush=True)
        return 0
    val = evaluate_pairs(model, vp)
    print("Validation (held-out pairs): " + json.dumps({k: round(v, 4) for k, v in val.items()}), flush=True)
    if args.export and distrib.is_main():
        meta = {"trained_on": ", ".join(args.data), "init": args.init, "train_pairs": len(tp),
                "unpaired": [len(pn), len(vn)], "steps": solver.step, "train_seconds_this_run": round(time.time() - t0, 1),
                "stats": model.stats_name, "val": val, "weights": weights, "val_pairs": [p[0] for p in val_pairs],
                "input_only": args.input_only, "input_only_pairs": len(input_only)}
        meta["high_band"] = high_band
        save_model(model, args.export, metadata=meta)
        print(f"Exported {args.export}", flush=True)
    distrib.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python trainers/timbre_synth.py ...``: the same as ``launch.py train timbre-synth ...``."""
    from trainers.solver import script_main

    return script_main("train timbre-synth", HELP, add_arguments, run, argv)


if __name__ == "__main__":  # (the checkout's path was set at the imports)
    sys.exit(main())
