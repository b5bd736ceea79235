#!/usr/bin/env bash
# Install the Debian packages the training-corpus renderer (`launch.py corpus`) needs:
#   fluidsynth               - renders the MIDI written from music21 scores
#   fluid-soundfont-gm       - FluidR3_GM.sf2, the default General MIDI soundfont (MIT licence)
#   timgm6mb-soundfont       - TimGM6mb.sf2, a small GM soundfont used by the tests (GPL-2)
#   espeak-ng                - speech and sung vocal lines
#   sound-theme-freedesktop  - recorded alarms, phone rings, chimes (query classes)
#   alsa-utils               - recorded human voice (/usr/share/sounds/alsa)
# Python packages (music21, librosa, soundfile, scipy, tqdm) come with the project's requirements.
set -euo pipefail
PKGS=(fluidsynth fluid-soundfont-gm timgm6mb-soundfont espeak-ng sound-theme-freedesktop alsa-utils)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "corpus dependencies already installed: ${PKGS[*]}"
  exit 0
fi
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
