#!/usr/bin/env bash
# Install the Debian packages the training-corpus renderer (`launch.py corpus`) needs:
#   fluidsynth               - renders the MIDI written from music21 scores
#   fluid-soundfont-gm       - FluidR3_GM.sf2, the default General MIDI soundfont (MIT licence)
#   timgm6mb-soundfont       - TimGM6mb.sf2, a small GM soundfont used by the tests (GPL-2)
#   espeak-ng                - speech and sung vocal lines
#   flite                    - CMU voices kal16/awb/rms/slt for English speech and sung lines (BSD-style)
#   festival festvox-kallpc16k festvox-us-slt-hts festvox-italp16k
#                            - festival voices kal_diphone, cmu_us_slt_arctic_hts (English; BSD-style)
#                              and lp_diphone (Italian; GPL-2+). Never festlex-oald (non-commercial),
#                              nor the British festvox-rab*/-ked* voices that need it.
#   sound-theme-freedesktop  - recorded alarms, phone rings, chimes (query classes)
#   alsa-utils               - recorded human voice (/usr/share/sounds/alsa)
# and the packages of real recordings registered in trainers/corpus/real_sources.py (docs/corpus.md,
# "Real recordings"; about 1.9 GB installed). `--no-real` installs only the first list.
# Never add an evaluation-only package here (shared/bench/README.md): fretsonfire-songs-*,
# wesnoth-*-music, klettres-data, tuxpaint-stamps-default, salamander*, musescore-general-soundfont*.
# Python packages (music21, librosa, soundfile, scipy, tqdm) come with the project's requirements.
# Idempotent: installs only what is missing.
set -euo pipefail
PKGS=(fluidsynth fluid-soundfont-gm timgm6mb-soundfont espeak-ng sound-theme-freedesktop alsa-utils
      flite festival festvox-kallpc16k festvox-us-slt-hts festvox-italp16k)
REAL_PKGS=(
  # speech
  asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav
  asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-es-co
  asterisk-prompt-fr-armelle asterisk-prompt-it-menardi-wav ktuberling-data hedgewars-data
  megaglest-data
  # drums and instruments
  hydrogen-drumkits hydrogen-drumkits-effects sonic-pi-samples lmms-common
  freepats csound-soundfont
  # music beds and soundtracks
  asterisk-moh-opsound-wav warzone2100-music hyperrogue-music singularity-music planetblupi-music-ogg
  colobot-common-sounds supertux-data extremetuxracer-data frozen-bubble-data asc-music
  # recorded effects
  lomiri-sounds oxygen-sounds
)
if [ "${1:-}" != "--no-real" ]; then PKGS+=("${REAL_PKGS[@]}"); fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "corpus dependencies already installed: ${#PKGS[@]} packages"
  exit 0
fi
echo "installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
