import subprocess
import sys
from pathlib import Path

import launch

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_existing_commands_only():
    r = subprocess.run([sys.executable, str(ROOT / "launch.py"), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    listed = {line.split()[0] for line in r.stdout.splitlines() if line.startswith("    ") and line.strip()}
    for name, (module, _) in launch.COMMANDS.items():
        assert (name in listed) == launch._exists(module), name
    assert "models" in r.stdout


def test_models_command_and_command_help(capsys):
    assert launch.main(["models"]) == 0
    assert launch.main(["models", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.strip()
    r = subprocess.run([sys.executable, str(ROOT / "launch.py"), "models", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "--kind" in r.stdout


def test_unknown_command_fails():
    r = subprocess.run([sys.executable, str(ROOT / "launch.py"), "no-such-command"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "invalid choice" in r.stderr
