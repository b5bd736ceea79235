"""Losses of the timbre model: contrastive, margin, adversarial, HSIC and reconstruction.

Every loss is an ``nn.Module`` with ``forward`` and a ``Shape:`` section (auraloss style).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engines.audio import spectral


class InfoNCELoss(nn.Module):
    """Label-supervised InfoNCE (SupCon, Khosla et al. 2020) with a temperature.

    For each anchor, the positives are the other samples of its class; all other samples are the
    denominator. Embeddings are L2-normalised first.

    Shape:
        emb: ``(B, D)``; labels: ``(B,)`` int. Returns a scalar (anchors without a positive are skipped).
    """

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.t = temperature

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = F.normalize(emb, dim=-1)
        sim = z @ z.t() / self.t
        B = z.shape[0]
        eye = torch.eye(B, dtype=torch.bool, device=z.device)
        sim = sim.masked_fill(eye, float("-inf"))
        logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
        pos = (labels[:, None] == labels[None, :]) & ~eye
        n_pos = pos.sum(1)
        ok = n_pos > 0
        if not ok.any():
            return emb.sum() * 0.0
        per = -(logp.masked_fill(~pos, 0.0)).sum(1)[ok] / n_pos[ok]
        return per.mean()


class MarginLoss(nn.Module):
    """Keeps class centroids (of L2-normalised embeddings) at least ``margin`` apart and each
    embedding within ``margin / 2`` of its centroid.

    Shape:
        emb: ``(B, D)``; labels: ``(B,)``. Returns a scalar.
    """

    def __init__(self, margin: float = 1.0):
        super().__init__()
        self.margin = margin

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = F.normalize(emb, dim=-1)
        classes = labels.unique()
        cents = torch.stack([z[labels == c].mean(0) for c in classes])
        pull = torch.stack([F.relu((z[labels == c] - cents[i]).norm(dim=-1) - self.margin / 2).mean()
                            for i, c in enumerate(classes)]).mean()
        if len(classes) < 2:
            return pull
        d = torch.cdist(cents, cents)
        off = ~torch.eye(len(classes), dtype=torch.bool, device=z.device)
        push = F.relu(self.margin - d[off]).mean()
        return push + pull


class DiscriminatorLoss(nn.Module):
    """Cross-entropy of the discriminator on detached embeddings of known instrument.

    Shape:
        logits: ``(M, n_classes)``; labels: ``(M,)``. Returns a scalar.
    """

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)


class ConfusionLoss(nn.Module):
    """Generator loss on content: cross-entropy to the uniform distribution (zero when the
    discriminator is at chance, i.e. its minimum is log(n_classes)); we subtract that constant.

    Shape:
        logits: ``(M, n_classes)``. Returns a scalar >= 0.
    """

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        n = logits.shape[-1]
        return -F.log_softmax(logits, dim=-1).mean(-1).mean() - torch.log(torch.tensor(float(n)))


def _rbf_median(x: torch.Tensor) -> torch.Tensor:
    d2 = torch.cdist(x, x).pow(2)
    n = x.shape[0]
    off = d2[~torch.eye(n, dtype=torch.bool, device=x.device)]
    sigma2 = off.detach().median().clamp_min(1e-6)  # median heuristic
    return torch.exp(-d2 / (2 * sigma2))


class HSICLoss(nn.Module):
    """Biased HSIC estimator (Gretton et al. 2005) with RBF kernels, bandwidth by the median heuristic.

    ``HSIC = tr(K H L H) / (n - 1)^2``; normalised (``nhsic``) by ``sqrt(HSIC(x,x) HSIC(y,y))`` when
    ``normalized`` so the value lies in [0, 1].

    Shape:
        x: ``(n, Dx)``, y: ``(n, Dy)`` (paired samples). Returns a scalar.
    """

    def __init__(self, normalized: bool = True):
        super().__init__()
        self.normalized = normalized

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        K, L = _rbf_median(x), _rbf_median(y)
        H = torch.eye(n, device=x.device) - 1.0 / n
        Kc, Lc = H @ K @ H, H @ L @ H
        hsic = (Kc * Lc).sum() / (n - 1) ** 2
        if not self.normalized:
            return hsic
        return hsic / torch.sqrt((Kc * Kc).sum() * (Lc * Lc).sum() / (n - 1) ** 4).clamp_min(1e-12)


class MultiResolutionSTFTLoss(nn.Module):
    """Multi-scale reconstruction on waveforms: auraloss's multi-resolution STFT loss (spectral convergence +
    log-magnitude L1, :func:`engines.audio.losses.mrstft`) plus an L1 on power-compressed real/imag parts (the
    complex term), both averaged over the FFT sizes (hop ``n // 4``, window ``n``).

    The complex term stays here: auraloss has no compressed-complex loss, and it is the part that sees the phase
    (``train timbre`` feeds this loss the input-phase iSTFT of the predicted magnitude, where a magnitude-only
    loss cannot tell a consistent spectrogram from an inconsistent one).

    Shape:
        est, ref: ``(B, T)``. Returns a scalar.
    """

    def __init__(self, fft_sizes: tuple[int, ...] = (512, 1024, 2048), complex_weight: float = 1.0,
                 mag_weight: float = 1.0, compress: float = 0.3, eps: float = 1e-5):
        super().__init__()
        self.fft_sizes, self.cw, self.mw, self.c, self.eps = tuple(fft_sizes), complex_weight, mag_weight, compress, eps

    def magnitude(self, est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        from engines.audio.losses import mrstft

        n = self.fft_sizes
        return mrstft(est, ref, fft_sizes=n, hop_sizes=tuple(k // 4 for k in n), win_lengths=n)

    def complex(self, est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        total = est.new_zeros(())
        for n in self.fft_sizes:
            E, R = spectral.stft(est, n, n // 4), spectral.stft(ref, n, n // 4)
            ce = E * (E.abs() + self.eps) ** (self.c - 1)
            cr = R * (R.abs() + self.eps) ** (self.c - 1)
            total = total + (torch.view_as_real(ce) - torch.view_as_real(cr)).abs().mean()
        return total / len(self.fft_sizes)

    def forward(self, est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        total = est.new_zeros(())
        if self.mw:
            total = total + self.mw * self.magnitude(est, ref)
        if self.cw:
            total = total + self.cw * self.complex(est, ref)
        return total


class LogSpectralLoss(nn.Module):
    """L1 between log-magnitude frames plus L1 between their log-mel projections (the decoder's
    reconstruction loss in the spectrogram domain), on valid frames only.

    Shape:
        est, ref: ``(B, N, F)`` log-magnitudes (``log(|X| + eps)``); mask: ``(B, N)`` bool or None.
        mel_fb: ``(M, F)`` or None. Returns a scalar.
    """

    def __init__(self, mel_weight: float = 1.0, eps: float = 1e-4):
        super().__init__()
        self.mel_weight, self.eps = mel_weight, eps

    def forward(self, est: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None,
                mel_fb: torch.Tensor | None = None) -> torch.Tensor:
        m = torch.ones(est.shape[:2], dtype=torch.bool, device=est.device) if mask is None else mask
        w = m[..., None].to(est.dtype)
        loss = ((est - ref).abs() * w).sum() / (w.sum() * est.shape[-1]).clamp_min(1)
        if mel_fb is not None and self.mel_weight:
            me = torch.log(torch.exp(est) @ mel_fb.t() + 1e-5)
            mr = torch.log(torch.exp(ref) @ mel_fb.t() + 1e-5)
            loss = loss + self.mel_weight * ((me - mr).abs() * w).sum() / (w.sum() * mel_fb.shape[0]).clamp_min(1)
        return loss


class SpectralMagnitudeLoss(nn.Module):
    """Multi-scale magnitude loss for synthesised audio (phase-free, so a synthesiser is not asked to
    match the reference's phase): per FFT size, spectral convergence (over the louder of the two norms, so a
    silent reference cannot make it explode: at most 2) + L1 of log magnitudes, as the bench's scorer
    (``score.mrstft``: 512/1024/2048, hop n/4), plus smaller sizes for attacks.

    Shape:
        est, ref: ``(B, T)``; weight: ``(B,)`` per-row weights (optional). Returns a scalar.
    """

    def __init__(self, fft_sizes=(2048, 1024, 512, 256), eps: float = 1e-5):
        super().__init__()
        self.fft_sizes, self.eps = tuple(fft_sizes), eps

    def forward(self, est: torch.Tensor, ref: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        from engines.audio import spectral

        total = est.new_zeros(est.shape[0])
        for n in self.fft_sizes:
            E, R = spectral.stft(est, n, n // 4).abs(), spectral.stft(ref, n, n // 4).abs()
            # spectral convergence over the louder of the two: a near-silent reference window (a decayed note,
            # trailing silence) would otherwise divide by ~0 and one batch could blow the training up (losses of
            # 1e5-1e8 seen); where the estimate is no louder than the reference this is the usual term
            den = torch.maximum(torch.linalg.vector_norm(R, dim=(-2, -1)), torch.linalg.vector_norm(E, dim=(-2, -1)))
            sc = torch.linalg.vector_norm(R - E, dim=(-2, -1)) / den.clamp_min(1e-7)
            lm = (torch.log(E + self.eps) - torch.log(R + self.eps)).abs().mean(dim=(-2, -1))
            total = total + sc + lm
        total = total / len(self.fft_sizes)
        if weight is None:
            return total.mean()
        return (total * weight).sum() / weight.sum().clamp_min(1e-8)
