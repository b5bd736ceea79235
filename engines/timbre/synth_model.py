"""Timbre transfer with a synthesis decoder: the seed's encoders drive a harmonic-plus-noise synthesiser.

Data flow (frames ``N`` at 22050 Hz / hop 256)::

    raw (B, 2, 597, N) STFT+CQT -> prepare -> ContentEncoder -> content (B, N, 64)    (as TimbreTransfer)
                                             StyleEncoder   -> class style (B, 64)
    pitch.track(wav) -> f0 (B, N) Hz, loudness (B, N) dB                               (the content's pitch/loudness)
        [note_features: + pitch.note_features -> dynamics (B, N, 3): loudness, the note's loudest, its age]
    SynthDecoder(content, f0, loudness, target style)  -- parallel (non-causal) transformer, no frame loop
        -> amplitude (B, N), harmonic distribution (B, N, K), noise bands (B, N, M)
    HarmonicNoiseSynth(f0, controls, target class) -> waveform (B, T)   (harmonics + filtered noise + learned reverb)

The output's pitch is the input's tracked pitch (held through quiet frames); its envelope (a bowed
sustain, a struck decay), its spectrum and its noise come from the decoder, whatever the input's
envelope was. Monophonic by design: one fundamental per frame.

Long clips are decoded in windows of ``window`` frames overlapping by ``overlap`` (the frame controls
are overlap-added with the same :class:`~engines.timbre.model.OverlapAdd` as the spectral model), then
synthesised in one pass (the synthesiser works in bounded blocks of samples).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engines.checkpoint import Bool, Float, Int, Str, capture_init

from .features import HOP, INSTRUMENTS, SAMPLE_RATE
from .model import OverlapAdd, TimbreTransfer, window_plan
from .style_encoder import sinusoidal
from .synth import HarmonicNoiseSynth, exp_sigmoid


class SynthDecoder(nn.Module):
    """Content + pitch + loudness + target style -> synthesiser controls, all frames at once.

    Shape:
        content ``(B, N, C)``; style ``(B, S)``; f0 ``(B, N)`` Hz; loudness ``(B, N)`` dB, or with
        ``note_features`` ``(B, N, 3)`` (:func:`engines.timbre.pitch.note_features`: loudness dB, the current
        note's loudest dB, its age in seconds).
        Returns ``amplitude (B, N)``, ``harmonics (B, N, K)`` (softmax), ``noise (B, N, M)``.
    """

    def __init__(self, content_dim: int = 64, style_dim: int = 64, d_model: int = 128, n_layers: int = 3,
                 n_heads: int = 4, dropout: float = 0.1, n_harmonics: int = 48, n_noise: int = 65,
                 note_features: bool = False):
        super().__init__()
        self.d_model, self.K, self.M = d_model, n_harmonics, n_noise
        self.note_features = bool(note_features)
        self.in_content = nn.Linear(content_dim, d_model)
        self.in_style = nn.Linear(style_dim, d_model)
        self.in_pitch = nn.Linear(5 if self.note_features else 3, d_model)
        self.conv = nn.Sequential(nn.Conv1d(d_model, d_model, 5, padding=2), nn.GELU(),
                                  nn.Conv1d(d_model, d_model, 5, padding=2))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 2 * d_model, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 1 + n_harmonics + n_noise))
        with torch.no_grad():  # start: a moderate amplitude, a 1/k harmonic roll-off, quiet noise
            b = self.head[-1].bias
            b[0] = -1.0
            b[1:1 + n_harmonics] = -torch.log(torch.arange(1, n_harmonics + 1, dtype=torch.float32))
            b[1 + n_harmonics:] = -4.0

    def pitch_features(self, f0: torch.Tensor, loudness: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3)``: log2(f0 / 440), loudness (dB + 20) / 20, and the loudness' frame-to-frame change;
        with ``note_features`` ``(B, N, 5)``: also the note's loudest (dB + 20) / 20 and log1p(age / 0.1 s) / 3."""
        if (loudness.dim() == 3) != self.note_features:
            want = "(B, N, 3) dynamics (pitch.note_features)" if self.note_features else "(B, N) loudness"
            raise ValueError(f"This decoder takes {want}, got a tensor of shape {tuple(loudness.shape)}.")
        loud = loudness[..., 0] if self.note_features else loudness
        lf = torch.log2(f0.clamp_min(20.0) / 440.0)
        ld = (loud + 20.0) / 20.0
        dl = torch.cat([torch.zeros_like(ld[:, :1]), ld[:, 1:] - ld[:, :-1]], dim=1)
        feats = [lf, ld, 4 * dl]
        if self.note_features:
            feats += [(loudness[..., 1] + 20.0) / 20.0, torch.log1p(loudness[..., 2].clamp_min(0) / 0.1) / 3.0]
        return torch.stack(feats, dim=-1)

    def forward(self, content: torch.Tensor, style: torch.Tensor, f0: torch.Tensor, loudness: torch.Tensor,
                mask: torch.Tensor | None = None):
        B, N, _ = content.shape
        h = self.in_content(content) + self.in_style(style)[:, None] + self.in_pitch(self.pitch_features(f0, loudness))
        h = h + self.conv(h.transpose(1, 2)).transpose(1, 2)
        h = h + sinusoidal(N, self.d_model, h.device)
        h = self.transformer(h, src_key_padding_mask=None if mask is None else ~mask)
        out = self.head(h)
        amp = exp_sigmoid(out[..., 0])
        harm = torch.softmax(out[..., 1:1 + self.K], dim=-1)
        noise = exp_sigmoid(out[..., 1 + self.K:] - 1.0) * 0.1
        return amp, harm, noise

    def controls(self, *args, **kwargs) -> torch.Tensor:
        """The three outputs concatenated ``(B, N, 1 + K + M)`` (what the windows overlap-add)."""
        amp, harm, noise = self(*args, **kwargs)
        return torch.cat([amp[..., None], harm, noise], dim=-1)


@capture_init
class TimbreSynth(TimbreTransfer):
    """The seed's style/content encoders and discriminator with a synthesis decoder (see the module docstring).

    Shares :class:`TimbreTransfer`'s encoders, statistics, prototypes, ``prepare``/``encode``/``classify``/
    ``embed_style``, so a spectral model's encoders can initialise it (``trainers.timbre_synth --init``).
    """

    CHECKPOINT_BOUNDS = {"d_model": Int(1, 2048), "style_dim": Int(1, 1024), "enc_blocks": Int(0, 16),
                         "enc_layers": Int(0, 16), "dec_layers": Int(0, 16), "n_heads": Int(1, 64),
                         "dropout": Float(0.0, 1.0), "window": Int(1, 2048), "overlap": Float(0.0, 0.9),
                         "n_mels": Int(1, 512), "stats_name": Str(128), "n_harmonics": Int(1, 256),
                         "n_noise": Int(2, 513), "reverb_seconds": Float(0.0, 4.0), "note_features": Bool()}

    def __init__(self, d_model: int = 128, style_dim: int = 64, enc_blocks: int = 2, enc_layers: int = 2,
                 dec_layers: int = 3, n_heads: int = 4, dropout: float = 0.1, window: int = 287,
                 overlap: float = 0.3, n_mels: int = 80, stats_name: str = "identity", n_harmonics: int = 48,
                 n_noise: int = 65, reverb_seconds: float = 0.5, note_features: bool = False):
        nn.Module.__init__(self)  # TimbreTransfer's constructor builds the autoregressive decoder: not here
        self._build_encoders(d_model, style_dim, enc_blocks, enc_layers, n_heads, dropout, window, overlap, stats_name)
        self.decoder = SynthDecoder(style_dim, style_dim, d_model, dec_layers, n_heads, dropout, n_harmonics, n_noise,
                                    note_features)
        self.synth = HarmonicNoiseSynth(SAMPLE_RATE, HOP, len(INSTRUMENTS), reverb_seconds)
        self._build_discriminator(style_dim, n_mels)

    def forward(self, raw: torch.Tensor, style: torch.Tensor, f0: torch.Tensor, loudness: torch.Tensor,
                target: torch.Tensor, length: int | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Content of ``raw (B, 2, 597, N)`` (pitch ``f0``, ``loudness`` ``(B, N)``) played with ``style (B, S)``
        through the synthesiser of class ``target (B,)`` -> waveform ``(B, length)``."""
        content = self.content_encoder(self.prepare(raw), mask)
        amp, harm, noise = self.decoder(content, style, f0, loudness, mask)
        return self.synth(f0, amp, harm, noise, target, length)

    @property
    def note_features(self) -> bool:
        return self.decoder.note_features

    def dynamics(self, f0: np.ndarray, loud: np.ndarray) -> torch.Tensor:
        """What the decoder takes as ``loudness`` for a whole clip's tracked ``f0``/``loud`` ``(N,)``: the loudness
        ``(N,)``, or with ``note_features`` :func:`~engines.timbre.pitch.note_features` ``(N, 3)`` (computed on the
        whole clip: a window cut from it knows the notes that began before it)."""
        from . import pitch

        return torch.from_numpy(pitch.note_features(f0, loud) if self.note_features else np.asarray(loud, np.float32))

    # ------------------------------------------------------------------ inference on whole clips
    def controls_windows(self, wins: torch.Tensor, f0: torch.Tensor, loud: torch.Tensor,
                         style: torch.Tensor) -> torch.Tensor:
        """Windows ``(W, 2, 597, L)`` with pitch/loudness ``(W, L)`` and style ``(S,)`` -> ``(W, L, 1 + K + M)``."""
        content = self.content_encoder(self.prepare(wins))
        return self.decoder.controls(content, style[None].expand(len(wins), -1), f0, loud)

    def generate_windows(self, wins: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        raise TypeError("TimbreSynth makes waveforms, not log-magnitudes: use transfer_wave().")

    @torch.no_grad()
    def transfer_controls(self, raw: torch.Tensor, f0: torch.Tensor, loud: torch.Tensor,
                          style: torch.Tensor) -> torch.Tensor:
        """One clip ``(2, 597, N)``, ``f0`` ``(N,)``, ``loud`` :meth:`dynamics` ``(N,)`` or ``(N, 3)``, style ``(S,)``
        -> controls ``(N, 1 + K + M)``
        (all windows in one batch, overlap-added with linear cross-fades)."""
        N = raw.shape[-1]
        starts, L, _, fade = window_plan(N, self.window, self.overlap)
        out = self.controls_windows(torch.stack([raw[..., s:s + L] for s in starts]),
                                    torch.stack([f0[s:s + L] for s in starts]),
                                    torch.stack([loud[s:s + L] for s in starts]), style)
        oa = OverlapAdd(N, L, fade, out.shape[-1], device=out.device, dtype=out.dtype)
        oa.add(starts, out)
        return oa.result().t()

    @torch.no_grad()
    def render(self, controls: torch.Tensor, f0: torch.Tensor, target: int, length: int, seed: int = 0) -> torch.Tensor:
        """Controls ``(N, 1 + K + M)`` and ``f0 (N,)`` -> waveform ``(length,)`` (noise from ``seed``)."""
        K = self.decoder.K
        g = torch.Generator().manual_seed(seed)
        cls = torch.tensor([target], device=controls.device)
        return self.synth(f0[None], controls[None, :, 0], controls[None, :, 1:1 + K], controls[None, :, 1 + K:],
                          cls, length, generator=g)[0]

    @torch.no_grad()
    def transfer_wave(self, raw: torch.Tensor, f0: torch.Tensor, loud: torch.Tensor, style: torch.Tensor,
                      target: int, length: int, seed: int = 0) -> torch.Tensor:
        """One clip end to end -> waveform ``(length,)`` at 22050 Hz."""
        return self.render(self.transfer_controls(raw, f0, loud, style), f0, target, length, seed)


__all__ = ["SynthDecoder", "TimbreSynth"]
