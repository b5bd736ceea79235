"""The learned key finder (engines/audio/key.py: KeyNet) and how align.estimate_key uses it."""
import numpy as np
import pytest
import torch

from engines.audio import key
from engines.fusion import align

SR = 24000


def _triad(root_hz, intervals=(0, 4, 7), seconds=3.0):
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * root_hz * 2 ** (i / 12) * t) for i in intervals).astype(np.float32) * 0.1


def test_keynet_is_transposition_equivariant():
    torch.manual_seed(0)
    m = key.KeyNet()
    with torch.no_grad():
        m.weight.normal_()
        m.bias.normal_()
    c = torch.rand(1, 12) + 0.1
    base = m(c)[0].view(2, 12)
    for k in (1, 5, 11):
        shifted = m(torch.roll(c, k, 1))[0].view(2, 12)
        assert torch.allclose(shifted, torch.roll(base, k, 1), atol=1e-5)
    assert torch.allclose(m(3.0 * c), m(c), atol=1e-5)  # scale-free


def test_keynet_with_profile_weights_finds_the_profile_key():
    m = key.KeyNet()
    major, minor = key.profiles("krumhansl")
    with torch.no_grad():
        m.weight.copy_(torch.tensor(np.stack([major - major.mean(), minor - minor.mean()]), dtype=torch.float32))
    chroma = np.roll(major, 7)  # a G major histogram
    p, tonic, mode = key.classify(m, chroma)
    assert (tonic, mode) == (7, "major") and 1 / 24 < p <= 1


def test_the_shipped_model_is_used_and_finds_triads():
    from engines import registry

    model = registry.load_optional("fusion-key", (key.KeyNet,))
    assert isinstance(model, key.KeyNet) and registry.default("fusion-key")["name"] == "fusion-key"
    y = _triad(392.0)
    assert align.estimate_key(y, SR).confidence == pytest.approx(key.classify(model, key.chroma_vector(y, SR))[0])
    for root, iv, name in ((392.0, (0, 4, 7), "G major"), (220.0, (0, 3, 7), "A minor"), (293.66, (0, 4, 7), "D major")):
        k = align.estimate_key(_triad(root, iv), SR)
        assert k.name == name and 0 < k.confidence <= 1


def test_without_a_registered_model_the_profile_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIO_STUDIO_MODELS", str(tmp_path))  # an empty registry
    y = _triad(392.0)
    k = align.estimate_key(y, SR)
    r, tonic, mode = key.best_key(key.chroma_vector(y, SR), align.KEY_PROFILE)
    assert (k.tonic, k.mode, k.confidence) == (tonic, mode, pytest.approx(r))


def test_use_optional_puts_an_unregistered_model_in_place(monkeypatch):
    """What fusion_bench --downbeat_checkpoint does for the beat model: the engine then uses the given model."""
    from engines import registry

    monkeypatch.setattr(registry, "_OPTIONAL", {})
    m = key.KeyNet()
    with torch.no_grad():
        m.bias.copy_(torch.tensor([-50.0, 50.0]))  # always minor
        m.weight[1, 0] = 1.0  # ... on the strongest pitch class
    registry.use_optional("fusion-key", m)
    k = align.estimate_key(_triad(392.0, (0, 4, 7)), SR)
    assert k.mode == "minor" and k.confidence == pytest.approx(key.classify(m, key.chroma_vector(_triad(392.0), SR))[0])
