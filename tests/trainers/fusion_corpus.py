"""A tiny rendered "corpus" ``fusion`` kind for the fusion trainers' tests: 8 pairs, rows 6-7 dev, and song ``a`` of
pair 7 marked a real bed (``estimated``: what it knows is an estimate, never a target)."""
import json

import soundfile as sf

SR = 24000


def write_fusion_corpus(tmp_path, side, seconds: float):
    """``side(i, k) -> (signal at SR, meta.json entry)`` for song ``k`` (0 = a, 1 = b) of pair ``i``; returns the
    corpus root."""
    from trainers.data import FusionRow, Source

    root = tmp_path / "corpus" / "fusion"
    rows = []
    for i in range(8):
        d = root / "pairs" / f"p{i}"
        d.mkdir(parents=True)
        meta = {}
        for k, name in enumerate(("a", "b")):
            y, meta[name] = side(i, k)
            sf.write(d / f"{name}.wav", y, SR)
        if i == 7:
            meta["a"]["estimated"] = True
        (d / "meta.json").write_text(json.dumps(meta))
        rows.append(FusionRow(id=f"p{i}", index=i, path=f"pairs/p{i}", sr=SR, seconds=seconds, effects=[],
                              split="dev" if i >= 6 else "train",
                              sources=[Source(f"p{i}", "test", "MIT", False)], a={}, b={}))
    (root / "manifest.jsonl").write_text("".join(json.dumps(r.to_json()) + "\n" for r in rows))
    return tmp_path / "corpus"
