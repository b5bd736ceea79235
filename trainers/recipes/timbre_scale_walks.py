"""Fallback paired piano/violin data (used only if /work/corpus/timbre is not there in time).
Random scale-walk melodies (not from the benchmark scores), rendered with FluidR3_GM programs 0 and 40."""
import json, os, sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from trainers.corpus.synth import Note, Track, render
from trainers.corpus.deps import find_soundfont
import soundfile as sf

out = sys.argv[1]; n = int(sys.argv[2]); seed = int(sys.argv[3])
sf2 = find_soundfont()
rng = np.random.default_rng(seed)
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10], "dorian": [0, 2, 3, 5, 7, 9, 10]}
SR = 24000
for i in range(n):
    d = os.path.join(out, "pairs", f"r{seed}_{i:04d}")
    if os.path.exists(os.path.join(d, "violin.wav")):
        continue
    os.makedirs(d, exist_ok=True)
    scale = SCALES[rng.choice(list(SCALES))]
    tonic = int(rng.integers(55, 72))
    qpm = float(rng.uniform(60, 150)); q = 60.0 / qpm
    deg = int(rng.integers(0, 7)); t = 0.0; notes = []
    dur_total = float(rng.uniform(6, 10))
    while t < dur_total - 0.2:
        deg += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3, 4, -4], p=[.1, .2, .1, .05, .2, .1, .1, .05, .04, .03, .03]))
        deg = int(np.clip(deg, -7, 14))
        pitch = tonic + 12 * (deg // 7) + scale[deg % 7]
        pitch = int(np.clip(pitch, 55, 96))
        L = q * float(rng.choice([0.25, 0.5, 0.5, 1, 1, 1.5, 2, 3], p=[.1, .2, .15, .2, .1, .1, .1, .05]))
        if rng.random() < 0.08:
            t += L; continue  # rest
        notes.append(Note(t, min(L, dur_total - t) * float(rng.uniform(0.85, 1.0)), pitch, int(rng.integers(60, 120))))
        t += L
    meta = {"notes": [[x.start, x.dur, x.pitch, x.vel] for x in notes], "qpm": qpm}
    for name, prog in (("piano", 0), ("violin", 40)):
        y = render([Track(prog, notes, reverb=int(rng.integers(0, 60)) if name == "piano" else 40)], dur_total + 0.5, SR, sf2)
        r = np.sqrt(np.mean(y ** 2)) + 1e-9
        y = y * (0.1 / r)
        y = y / max(1.0, np.abs(y).max() / 0.99)
        sf.write(os.path.join(d, f"{name}.wav"), y.astype(np.float32), SR, subtype="PCM_16")
    json.dump(meta, open(os.path.join(d, "melody.json"), "w"))
print("done", n)
