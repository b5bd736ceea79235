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
def discover(data_dirs: list[str], split: str | None = None,
             required: bool = True) -> tuple[list[tuple[str, str, str]], list[str], list[str]]:
    """``(pairs [(id, piano, violin)], unpaired piano files, unpaired violin files)`` under the folders
    (``split``: the rows of one split only; user folders are all "train")."""
    from .data import NoDataError, load

    pairs, pianos, violins = [], [], []
    for d in data_dirs:
        root = Path(d)
        if not root.is_dir():
            raise FileNotFoundError(f"Timbre data folder not found: '{root}'.")
        try:  # a corpus timbre folder (typed rows) or the user layouts of trainers.data.rows_from_folder
            rows, base = load(root, "timbre")
        except NoDataError:
            continue
        for r in rows:
            if split is not None and r.split != split:
                continue
            f = r.files(base)
            if r.type == "pair" and f["piano"].is_file() and f["violin"].is_file():
                pairs.append((r.id, str(f["piano"]), str(f["violin"])))
            elif r.type == "solo" and f[r.instrument].is_file():
                (pianos if r.instrument == "piano" else violins).append(str(f[r.instrument]))
    if required and not pairs and not (pianos and violins):
        raise ValueError(f"No timbre data under {', '.join(data_dirs)}: expected pairs/<id>/piano.wav + "
                         "violin.wav, or piano/*.wav and violin/*.wav.")
    return pairs, pianos, violins


def load_clip(path: str, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 at 22050 Hz, -20 dBFS RMS."""
    from engines.audio.io import load
    from engines.audio.levels import normalize_rms
    from engines.timbre.features import SAMPLE_RATE, TARGET_RMS_DB

    audio, _ = load(path, sr=SAMPLE_RATE, mono=True)
    wav = audio[0]
    if max_seconds:
        wav = wav[: int(max_seconds * SAMPLE_RATE)]
    return normalize_rms(wav, TARGET_RMS_DB, peak_limit=None)


class Clip:
    """A loaded clip: waveform (22050 Hz) and its CQT (complex, stored as float16 real/imag)."""

    def __init__(self, wav: np.ndarray):
        from engines.timbre.features import cqt_complex, n_frames

        self.wav = torch.from_numpy(wav)
        c = cqt_complex(wav, n_frames(len(wav)))
        self.cqt = torch.from_numpy(np.stack([c.real, c.imag]).astype(np.float16))  # (2, 84, N)

    @classmethod
    def from_tensors(cls, wav: torch.Tensor, cqt: torch.Tensor) -> "Clip":
        """A clip from cached tensors (``wav (T,)`` float32, ``cqt (2, 84, N)`` float16); raises
        ``ValueError`` when they are not what :class:`Clip` computes for such a waveform."""
        from engines.timbre.features import N_CQT, n_frames

        if wav.dtype != torch.float32 or wav.dim() != 1 or cqt.dtype != torch.float16 \
                or tuple(cqt.shape) != (2, N_CQT, n_frames(wav.shape[0])):
            raise ValueError(f"cached clip of shapes {tuple(wav.shape)}/{tuple(cqt.shape)} is not a timbre clip")
        self = cls.__new__(cls)
        self.wav, self.cqt = wav, cqt
        return self

    @property
    def frames(self) -> int:
        return self.cqt.shape[-1]


class TimbreWindows(Dataset):
    """Class-balanced windows: each item is one piano window and one violin window.

    Items: ``{"piano_wav" (Tw,), "violin_wav" (Tw,), "piano_cqt" (2,84,L), "violin_cqt" (2,84,L),
    "frames" () valid frames, "paired" () 1.0 when the violin window plays the piano window's notes,
    "starts" (2,) the piano and violin windows' first frames in their clips, "gains" (2,) the remix gains}``.

    Dynamic mixing (training only; validation reads the clips directly): with probability
    ``remix_p`` (0 turns it off) an item is remixed on the fly. Its window start moves by a random
    number of frames (up to ``REMIX_SHIFT`` of a window, the same shift on both sides of a pair), it
    gets a random gain of ``±REMIX_GAIN_DB`` dB (one gain for piano and violin of a pair), and a paired
    item, with probability ``REMIX_SECOND_P``, gets a window of another pair summed into both sides at
    one relative gain drawn from ``REMIX_SECOND_DB``: piano A+B -> violin A+B is still a pair. The CQT
    is linear in the signal and the second window is cut at whole frames (hop 256 samples), so the
    stored CQTs are mixed with the same gains as the waveforms, which is the CQT of the mixed waveform
    up to the window's edge frames (the same edge effect every window has). Draws come from
    ``(seed, item, how many times this item was read)``: the same seed and read order give the same
    items, and each epoch remixes an item anew.
    """

    REMIX_GAIN_DB = 6.0
    REMIX_SHIFT = 0.35
    REMIX_SECOND_P = 0.5
    REMIX_SECOND_DB = (-9.0, 0.0)

    def __init__(self, pairs: list[tuple[Clip, Clip]], pianos: list[Clip], violins: list[Clip],
                 window: int = 287, overlap: float = 0.3, seed: int = 0, remix_p: float = 0.0):
        from engines.timbre.model import window_starts

        if not 0.0 <= remix_p <= 1.0:
            raise ValueError(f"remix_p must be within 0..1, got {remix_p}.")
        self.window, self.seed, self.remix_p = window, seed, float(remix_p)
        self._reads: dict[int, int] = {}
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

    def _shift(self, rng: np.random.Generator, start: int, n: int) -> int:
        """``start`` moved by a random whole number of frames, kept inside a clip of ``n`` frames."""
        m = max(1, int(self.window * self.REMIX_SHIFT))
        return int(min(max(start + int(rng.integers(-m, m + 1)), 0), max(n - 1, 0)))

    def __getitem__(self, i: int) -> dict:
        kind, a, b = self.index[i]
        rng = None
        if self.remix_p > 0:
            k = self._reads.get(i, 0)
            self._reads[i] = k + 1
            rng = np.random.default_rng([self.seed, i, k, 0x7E3])
            if rng.random() >= self.remix_p:
                rng = None
        remix: dict = {}
        if kind == "pair":
            p, v = self.pairs[a]
            n = min(p.frames, v.frames)
            start = b if rng is None else self._shift(rng, b, n)
            frames = min(n - start, self.window)
            (pw, pc), (vw, vc) = self._crop(p, start, frames), self._crop(v, start, frames)
            paired = 1.0
            if rng is not None and len(self.pairs) > 1 and rng.random() < self.REMIX_SECOND_P:
                j = int(rng.integers(len(self.pairs) - 1))
                j += j >= a  # another pair
                p2, v2 = self.pairs[j]
                s2 = int(rng.integers(max(min(p2.frames, v2.frames) - frames, 0) + 1))
                g2 = float(10 ** (rng.uniform(*self.REMIX_SECOND_DB) / 20))
                (pw2, pc2), (vw2, vc2) = self._crop(p2, s2, frames), self._crop(v2, s2, frames)
                pw, pc, vw, vc = pw + g2 * pw2, pc + g2 * pc2, vw + g2 * vw2, vc + g2 * vc2
                remix.update(second=j, second_start=s2, second_gain=g2)
            gains = (float(10 ** (rng.uniform(-self.REMIX_GAIN_DB, self.REMIX_GAIN_DB) / 20)),) * 2 \
                if rng is not None else (1.0, 1.0)
        else:
            p, v = self.pianos[a[0]], self.violins[b[0]]
            sp = a[1] if rng is None else self._shift(rng, a[1], p.frames)
            sv = b[1] if rng is None else self._shift(rng, b[1], v.frames)
            frames = min(p.frames - sp, v.frames - sv, self.window)
            (pw, pc), (vw, vc) = self._crop(p, sp, frames), self._crop(v, sv, frames)
            paired = 0.0
            gains = tuple(float(10 ** (rng.uniform(-self.REMIX_GAIN_DB, self.REMIX_GAIN_DB) / 20))
                          for _ in range(2)) if rng is not None else (1.0, 1.0)
        if rng is not None:
            pw, pc, vw, vc = pw * gains[0], pc * gains[0], vw * gains[1], vc * gains[1]
        starts = (start, start) if kind == "pair" else (sp, sv)
        item = {"piano_wav": pw, "violin_wav": vw, "piano_cqt": pc, "violin_cqt": vc,
                "frames": torch.tensor(frames), "paired": torch.tensor(paired),
                "starts": torch.tensor(starts), "gains": torch.tensor(gains, dtype=torch.float32)}
        if self.remix_p > 0:  # the draw, for tests and logs (a tensor so the default collate batches it)
            item["remixed"] = torch.tensor(float(rng is not None))
        return item


CACHE_FORMAT = "audio_studio.timbre_clips"
CACHE_VERSION = "1"


def _cache_names(counts: tuple[int, int, int]) -> list[str]:
    n_pairs, n_pianos, n_violins = counts
    groups = [f"pairs.{i}.{side}" for i in range(n_pairs) for side in ("piano", "violin")]
    groups += [f"pianos.{i}" for i in range(n_pianos)] + [f"violins.{i}" for i in range(n_violins)]
    return [f"{g}.{part}" for g in groups for part in ("wav", "cqt")]


def write_clip_cache(path: Path, key: str, pc, pn, vn) -> Path:
    """Write clips to ``path`` as safetensors (tensors only: reading it back runs no code)."""
    from safetensors.torch import save_file

    from engines.atomic import atomic_path

    clips = [c for pair in pc for c in pair] + list(pn) + list(vn)
    names = _cache_names((len(pc), len(pn), len(vn)))
    tensors = {}
    for i, c in enumerate(clips):
        tensors[names[2 * i]] = c.wav.contiguous()
        tensors[names[2 * i + 1]] = c.cqt.contiguous()
    meta = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key,
            "counts": json.dumps([len(pc), len(pn), len(vn)])}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return path


def read_clip_cache(path: Path, key: str, counts: tuple[int, int, int]):
    """``(pair clips, piano clips, violin clips)`` cached at ``path`` for ``key`` (``counts`` clips of
    each group), or ``None`` with the reason printed (another key, another format, a damaged file):
    the caller rebuilds it."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION:
                raise ValueError("not a timbre clip cache of this version")
            if meta.get("key") != key:
                logger.info("Feature cache %s is for other files or settings; rebuilding it", path)
                return None
            names = _cache_names(counts)
            if set(f.keys()) != set(names):
                raise ValueError("its tensors are not the clips it should hold")
            clips = [Clip.from_tensors(f.get_tensor(names[i]), f.get_tensor(names[i + 1]))
                     for i in range(0, len(names), 2)]
    except Exception as err:  # noqa: BLE001 - any unreadable cache is rebuilt
        print(f"Ignoring the feature cache '{path.name}' ({err}); rebuilding it.", file=sys.stderr, flush=True)
        return None
    n_pairs, n_pianos, _ = counts
    pc = [(clips[2 * i], clips[2 * i + 1]) for i in range(n_pairs)]
    rest = clips[2 * n_pairs:]
    return pc, rest[:n_pianos], rest[n_pianos:]


def load_clips(pairs, pianos, violins, cache: Path | None, max_seconds: float | None):
    """Load (or read from ``cache``, a ``.safetensors`` file) every clip; returns ``(pair clips,
    piano clips, violin clips)``. A cache of the old pickle format (``.pt``) is never read."""
    key = json.dumps([pairs, pianos, violins, max_seconds])
    if cache is not None:
        cache = Path(cache)
        if cache.suffix != ".safetensors":
            cache = cache.with_suffix(".safetensors")
        old = cache.with_suffix(".pt")
        if old.exists():
            print(f"Not reading the old-format feature cache '{old.name}' (pickle, which can run code); "
                  f"using '{cache.name}' instead. Delete '{old}' to silence this note.", file=sys.stderr, flush=True)
        if cache.is_file():
            got = read_clip_cache(cache, key, (len(pairs), len(pianos), len(violins)))
            if got is not None:
                logger.info("Read cached features from %s", cache)
                return got
    t0 = time.time()
    pc = [(Clip(load_clip(p, max_seconds)), Clip(load_clip(v, max_seconds))) for _, p, v in pairs]
    pn = [Clip(load_clip(p, max_seconds)) for p in pianos]
    vn = [Clip(load_clip(v, max_seconds)) for v in violins]
    print(f"Loaded {len(pc)} pairs, {len(pn)} piano and {len(vn)} violin clips in {time.time() - t0:.1f} s",
          flush=True)
    if cache is not None:
        write_clip_cache(cache, key, pc, pn, vn)
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
        loss = loss + self.curriculum_terms(content, fstyle, cls, labels, mask, phase, out)
        out["loss"] = loss
        out["phase"] = torch.tensor(float(phase))
        return out

    def curriculum_terms(self, content: torch.Tensor, fstyle: torch.Tensor, cls: torch.Tensor, labels: torch.Tensor,
                         mask: torch.Tensor, phase: int, out: dict) -> torch.Tensor:
        """The seed's disentanglement terms of curriculum ``phase`` (2: HSIC, 3: + InfoNCE and margin, 4: +
        adversarial), weighted; each term is also written into ``out``. ``content``/``fstyle`` ``(2B, L, S)``,
        ``cls (2B, S)``, ``labels (2B,)``, ``mask (2B, L)``. Shared with ``trainers.timbre_synth``."""
        m, w = self.model, self.w
        L = content.shape[1]
        loss = content.new_zeros(())
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
        return loss


def lr_schedule(opt, total: int):
    """``LambdaLR``: linear warm-up over ``min(100, total // 20)`` steps *times* a cosine from 1 to 0.1 over the
    whole run (from step 0). Not :func:`trainers.solver.warmup_cosine`: that one starts its cosine after the
    warm-up, so the two differ by up to ~0.04 of the base rate; the shipped models were trained with
    this one (tests/trainers/test_timbre_train.py pins its shape)."""
    warm = max(1, min(100, total // 20))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))))


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
    parser.add_argument("--remix_p", type=float, default=0.3,
                        help="dynamic mixing: share of training windows remixed on the fly (random gain and frame "
                             "offset; half of the remixed pairs get a second pair summed into both sides); 0 = off")
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
    from trainers.solver import Solver, config_from_args, seed_everything, total_steps

    if args.epochs is None and args.max_steps is None:
        args.max_steps = 2000
    seed_everything(args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev_pairs = discover(args.data, split="dev", required=False)[0]
    pairs, pianos, violins = discover(args.data, split="train" if dev_pairs else None)
    rng = random.Random(args.seed)
    rng.shuffle(pairs)
    if dev_pairs:  # the corpus's dev split validates and is never trained on
        val_pairs, train_pairs = dev_pairs[: args.val_pairs], pairs
    else:
        n_val = min(args.val_pairs, max(len(pairs) - 1, 0))
        val_pairs, train_pairs = pairs[:n_val], pairs[n_val:]
    if args.max_pairs:
        train_pairs = train_pairs[: args.max_pairs]
    (out / "split.json").write_text(json.dumps({"train": [p[0] for p in train_pairs], "val": [p[0] for p in val_pairs]}))
    tp, pn, vn = load_clips(train_pairs, pianos, violins, out / "features_cache.safetensors", args.max_seconds)
    vp = load_clips(val_pairs, [], [], out / "val_cache.safetensors", args.max_seconds)[0] if val_pairs else []

    init = None
    if args.init:
        from engines.checkpoint import load_model

        init = load_model(args.init, expected=TimbreTransfer)
        from engines.timbre.model import stats_from_model

        stats = stats_from_model(init)
    elif args.stats:
        stats = FeatureStats.load(args.stats)
    else:
        from engines.timbre.features import stats_for_clips

        stats = stats_for_clips([c for pr in tp for c in pr] + pn + vn, name="unified")
        stats.save(out / "stats_unified.npz")
    if init is not None:
        model = TimbreTransfer(**init._init_kwargs)
        model.load_state_dict(init.state_dict())
        print(f"Initialised from {args.init}", flush=True)
    else:
        from engines.checkpoint import build_checked
        model = build_checked(TimbreTransfer, d_model=args.d_model, style_dim=args.style_dim, enc_layers=args.enc_layers,
                               dec_layers=args.dec_layers, window=args.window, overlap=args.overlap,
                               residual=not args.no_residual)
    model.set_stats(stats)
    weights = {**DEFAULT_WEIGHTS, **(json.loads(args.weights) if args.weights else {})}
    wrapper = TimbreTrainer(model, weights)
    ds = TimbreWindows(tp, pn, vn, args.window, args.overlap, args.seed, remix_p=args.remix_p)
    print(f"Dataset: {len(tp)} training pairs, {len(pn)}+{len(vn)} unpaired clips -> {len(ds)} windows "
          f"of {args.window} frames ({args.overlap:.0%} overlap); {len(vp)} validation pairs", flush=True)
    opt = torch.optim.AdamW(wrapper.parameters(), lr=args.lr, weight_decay=1e-4)
    cfg = config_from_args(args, progress_bar=False)
    total = total_steps(len(ds), cfg.batch_size, epochs=cfg.epochs, max_steps=cfg.max_steps)
    sched = lr_schedule(opt, total)
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
    """``python trainers/timbre.py ...``: the same as ``launch.py train timbre ...``."""
    from trainers.solver import script_main

    return script_main("train timbre", HELP, add_arguments, run, argv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
