"""Tiny random-init models for tests (like demucs' ``demucs_unittest``): one per engine, each a real model of
the engine's own class with small sizes and seeded weights, saved as a self-describing checkpoint so the
engines load it through their normal path.

Sections: shared, separation, vocals, fusion, timbre (each engine's helper lives in its own section).
"""
from __future__ import annotations

import torch
from torch import nn

from .checkpoint import Int, capture_init


# ------------------------------------------------------------------------------------------------ shared
@capture_init
class TinyNet(nn.Module):
    """A two-layer MLP: ``(B, in_dim) -> (B, out_dim)``; used by checkpoint and solver tests."""

    CHECKPOINT_BOUNDS = {"in_dim": Int(1, 4096), "hidden": Int(1, 4096), "out_dim": Int(1, 4096)}

    def __init__(self, in_dim: int = 8, hidden: int = 16, out_dim: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def randomize(model: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Give every parameter non-trivial seeded values (so chunked-versus-whole tests can fail)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale / max(1.0, p.shape[-1] ** 0.5) if p.dim() > 1
                    else torch.randn(p.shape, generator=g) * 0.1)
    return model


# -------------------------------------------------------------------------------------------- separation
#: the class names of the shipped query model (the corpus's classes)
QUERY_CLASSES = ["speech", "singing", "piano", "strings", "winds", "brass", "guitar", "bass", "organ", "drums",
                 "bells", "alarms", "birds", "noise"]


def tiny_separation(path=None, seed: int = 0, randomized: bool = False):
    """A small :class:`engines.separation.model.QueryNet` (channels 8-16, hidden 32, two blocks, the 14
    corpus classes), seeded; ``randomized`` gives it :func:`randomize`-d weights (for chunked-versus-whole
    tests). Saved as a checkpoint at ``path`` when given (returns the path), else returned (eval mode)."""
    from .separation.model import QueryNet

    torch.manual_seed(seed)
    net = QueryNet(n_classes=len(QUERY_CLASSES), channels=(8, 8, 16, 16), hidden=32, dilations=(1, 2), emb_dim=16,
                   profile_dim=8, class_names=QUERY_CLASSES)
    if randomized:
        randomize(net, seed=seed)
    net.eval()
    if path is None:
        return net
    from .checkpoint import save_model

    return save_model(net, path, metadata={"trained_on": "nothing (tiny random test model)"})



# ------------------------------------------------------------------------------------------------ vocals
def tiny_vocals(path=None, seed: int = 0, randomized: bool = False, width: int = 16):
    """A small :class:`engines.vocals.model.VocalMaskCNN` (4 residual units of ``width``, the real 25-frame
    context and features), seeded, with non-trivial BatchNorm statistics (one train-mode pass on random
    features); ``randomized`` also gives it :func:`randomize`-d weights (chunked-versus-whole tests). Saved as
    a checkpoint at ``path`` when given (returns the path), else returned (eval mode)."""
    from .vocals.features import HParams
    from .vocals.model import VocalMaskCNN

    torch.manual_seed(seed)
    hp = HParams(res_dims=[width] * 4)
    net = VocalMaskCNN(res_dims=hp.res_dims, dilations=hp.dilations, hparams=hp.to_dict())
    if randomized:
        randomize(net, seed=seed)
    net.train()
    with torch.no_grad():
        net(torch.rand(4, hp.n_fft // 2 + 1, 80))
    net.eval()
    if path is None:
        return net
    from .checkpoint import save_model

    return save_model(net, path, metadata={"trained_on": "nothing (tiny random test model)", "kind": "vocals"})


def tiny_vocals_bs(path=None, seed: int = 0, randomized: bool = False, dim: int = 8, n_fft: int = 256):
    """A small :class:`engines.vocals.bandsplit.BandSplitSeparator` (four stems, stereo, 44.1 kHz, ``n_fft`` 256,
    8 bands of ``dim`` features, two trunk blocks), seeded; ``randomized`` gives it :func:`randomize`-d weights.
    Saved at ``path`` when given (returns the path), else returned (eval mode)."""
    from .vocals.bandsplit import BandSplitSeparator, band_edges

    torch.manual_seed(seed)
    net = BandSplitSeparator(sample_rate=44100, n_fft=n_fft, hop=n_fft // 4, band_edges=band_edges(n_fft, 44100, 8),
                             dim=dim, dilations=[1, 2], hparams={"mask_sharpen": 1.0})
    if randomized:
        randomize(net, seed=seed)
    net.eval()
    if path is None:
        return net
    from .checkpoint import save_model

    return save_model(net, path, metadata={"trained_on": "nothing (tiny random test model)", "kind": "vocals"})



# ------------------------------------------------------------------------------------------------ fusion
def tiny_fusion(path=None, seed: int = 0, codec: str = "builtin"):
    """A small :class:`engines.fusion.model.CascadeFusion` (d_model 32, one stage of one layer) with
    :func:`randomize`-d weights, so it is far from the direct fusion; saved as a checkpoint at ``path``
    (metadata ``codec``, ``name``) when given (returns the path), else returned as a model (eval mode)."""
    from .fusion.model import CascadeFusion

    net = randomize(CascadeFusion(d_model=32, num_stages=1, num_transformer_layers=1, nhead=2, dim_feedforward=64),
                    seed=seed).eval()
    if path is None:
        return net
    from .checkpoint import save_model

    return save_model(net, path, metadata={"codec": codec, "name": "tiny-fusion"})


# ------------------------------------------------------------------------------------------------ timbre
#: the sizes of :func:`tiny_timbre` (a 40-frame window: a 1 s clip already has several windows)
TINY_TIMBRE = dict(d_model=32, style_dim=16, latent_dim=8, enc_blocks=1, enc_layers=1, dec_layers=1, n_heads=4,
                   window=40)


def tiny_timbre(path=None, seed: int = 0, *, random: bool = False, **sizes):
    """A tiny :class:`engines.timbre.model.TimbreTransfer` (seeded; the global RNG is left alone) with class
    prototypes set. ``random=True`` gives every weight non-trivial values (:func:`randomize`: the residual
    decoder is no longer the identity). With ``path`` it is saved there and the path returned."""
    from engines.timbre.model import TimbreTransfer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TimbreTransfer(**{**TINY_TIMBRE, **sizes})
        if random:
            randomize(model, seed)
        model.update_prototypes(torch.randn(4, model.prototypes.shape[1]), torch.tensor([0, 0, 1, 1]))
    model.eval()
    if path is None:
        return model
    from .checkpoint import save_model

    return save_model(model, path, metadata={"name": "tiny-timbre"})


#: the sizes of :func:`tiny_timbre_synth`
TINY_SYNTH = dict(d_model=32, style_dim=16, enc_blocks=1, enc_layers=1, dec_layers=1, n_heads=4, window=40,
                  n_harmonics=16, n_noise=17, reverb_seconds=0.05)


def tiny_timbre_synth(path=None, seed: int = 0, note_features: bool = False):
    """A tiny :class:`engines.timbre.synth_model.TimbreSynth` (the synthesis decoder; ``note_features`` as the
    shipped one) with every weight :func:`randomize`-d and class prototypes set (the global RNG is left alone).
    With ``path`` it is saved there and the path returned."""
    from engines.timbre.synth_model import TimbreSynth

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TimbreSynth(**TINY_SYNTH, note_features=note_features)
        randomize(model, seed)
        model.update_prototypes(torch.randn(4, TINY_SYNTH["style_dim"]), torch.tensor([0, 0, 1, 1]))
    model.eval()
    if path is None:
        return model
    from .checkpoint import save_model

    return save_model(model, path, metadata={"name": "tiny-synth"})
