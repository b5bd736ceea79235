"""``python launch.py fuse --a A --b B --out_dir DIR ...``: writes DIR/fusion.wav and DIR/fusion.json."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "A/B fusion: two songs -> one arrangement (A's patterns placed into B's context)"


def _bool(v) -> bool:
    if str(v).lower() in ("1", "true", "yes", "on"):
        return True
    if str(v).lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{v}'")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from engines.audio import limits

    from .masking import MASK_TYPES

    p.add_argument("--a", required=True, help="song A (the input: its tempo, bars and length lead)")
    p.add_argument("--b", required=True, help="song B (the target)")
    p.add_argument("--out_dir", required=True, help="writes fusion.wav and fusion.json here")
    p.add_argument("--mode", choices=("direct", "learned"), default="direct",
                   help="direct: complementary masks, no network; learned: the cascade transformer")
    p.add_argument("--model", default=None, help="registry name of the cascade (default: the fusion default)")
    p.add_argument("--checkpoint", default=None, help="path of a cascade checkpoint (.safetensors)")
    p.add_argument("--codec", default="builtin", help="builtin, or an EnCodec hub id / local folder")
    p.add_argument("--mask_type", choices=MASK_TYPES, default="temporal")
    p.add_argument("--segment_unit", choices=("bars", "beats", "frames"), default="bars",
                   help="temporal segments follow A's bars or beats, or fixed --mask_temporal_segment frames")
    p.add_argument("--segment_length", type=limits.arg("fuse", "segment_length"), default=1, help="bars (or beats) per segment (1-64)")
    p.add_argument("--mask_temporal_segment", type=limits.arg("fuse", "mask_temporal_segment"), default=150, help="frames per segment (--segment_unit frames)")
    p.add_argument("--mask_freq_split", type=limits.arg("fuse", "mask_freq_split"), default=0.3,
                   help="share of bands (from the bottom) given to A (0-1)")
    p.add_argument("--mask_channel_keep", type=limits.arg("fuse", "mask_channel_keep"), default=0.5,
                   help="share of channels given to A (spectral; 0-1)")
    p.add_argument("--mask_energy_threshold", type=limits.arg("fuse", "mask_energy_threshold"), default=0.7,
                   help="energy percentile (energy; 0-1)")
    p.add_argument("--match_tempo", type=_bool, default=True, help="time-stretch B to A's tempo and bar grid")
    p.add_argument("--match_key", type=_bool, default=False, help="pitch-shift B to A's key")
    p.add_argument("--match_loudness", type=_bool, default=True, help="match B's loudness (LUFS) to A's")
    p.add_argument("--crossfade_ms", type=limits.arg("fuse", "crossfade_ms"), default=20.0, help="crossfade at segment edges (0-2000 ms)")
    p.add_argument("--energy_smoothing_ms", type=limits.arg("fuse", "energy_smoothing_ms"), default=100.0,
                   help="moving average of frame energies before the energy threshold")
    p.add_argument("--beats_per_bar", type=limits.arg("fuse", "beats_per_bar"), default=0, help="beats per bar: 2-12, or 0 = detect 3 or 4")
    p.add_argument("--seed", type=limits.arg("fuse", "seed"), default=0, help="seed of the random (spectral) mask")
    p.add_argument("--subtype", default="PCM_16", choices=("PCM_16", "PCM_24", "FLOAT", "16", "24", "float"),
                   help="output sample format")
    p.add_argument("--threads", type=limits.thread_count, default=None,
                   help="torch CPU threads (default: at most 2)")


def run(args) -> int:
    import torch

    from engines.atomic import OutputStage, check_names
    from engines.audio import io
    from .api import fuse

    outputs = ["fusion.wav", "fusion.json"]
    check_names(args.out_dir, outputs, [args.a, args.b])  # before the work
    from engines.audio.limits import set_threads

    set_threads(args.threads or max(1, min(2, torch.get_num_threads())))
    res = fuse(args.a, args.b, mask_type=args.mask_type, mode=args.mode, model=args.model, checkpoint=args.checkpoint,
               codec=args.codec, segment_unit=args.segment_unit, segment_length=args.segment_length,
               mask_temporal_segment=args.mask_temporal_segment, mask_freq_split=args.mask_freq_split,
               mask_channel_keep=args.mask_channel_keep, mask_energy_threshold=args.mask_energy_threshold,
               match_tempo=args.match_tempo, match_key=args.match_key, match_loudness=args.match_loudness,
               crossfade_ms=args.crossfade_ms, energy_smoothing_ms=args.energy_smoothing_ms,
               beats_per_bar=args.beats_per_bar, seed=args.seed)
    out = Path(args.out_dir)
    info = {"a": str(args.a), "b": str(args.b), **res.to_json()}
    with OutputStage(out, inputs=[args.a, args.b], names=outputs) as stage:  # all-or-nothing
        io.save(stage.path("fusion.wav"), res.audio, res.sample_rate, args.subtype)
        stage.write_text("fusion.json", json.dumps(info, indent=2))
    wav = stage.published["fusion.wav"]
    t = res.params.get("tempo", {})
    print(f"Fused {res.duration:.1f} s ({res.mode}, {res.mask_type}) -> {wav}")
    if t:
        print(f"  tempo: A {t.get('a_bpm')} BPM, B {t.get('b_bpm')} BPM, stretch x{t.get('rate')}")
    if "key" in res.params:
        k = res.params["key"]
        print(f"  key: A {k['a']['name']}, B {k['b']['name']}, B shifted {k['b_semitones']:+d} semitones")
    share = res.share()
    print(f"  regions: A {share['A']:.0%}, B {share['B']:.0%}, both {share['both']:.0%}, none {share['neither']:.0%}")
    print(f"  time: {res.timings['total']:.2f} s (RTF {res.timings['rtf']:.3f}); details in {out / 'fusion.json'}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fuse", description=HELP)
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
