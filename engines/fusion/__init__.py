"""A/B fusion: two songs in, one arrangement out (see ``docs/fusion.md``).

Layers: ``codec`` (latent interface, built-in MDCT codec and the EnCodec wrapper), ``masking``
(complementary masks), ``model`` (cascade transformer), ``losses``, ``align`` (beats, tempo, key,
loudness, crossfades), ``api`` (``fuse``) and ``cli`` (``launch.py fuse``).
"""
