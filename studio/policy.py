"""Deployment policy: what a visitor of this studio may do on the server.

The studio is safe to open to strangers (a Hugging Face Space). Training and every input that names
a server path (dataset and output folders, local model folders, checkpoint paths) are available only
when the studio runs for its owner:

* bound to a loopback address (127.0.0.0/8, ``::1``, ``localhost``) and not shared (no ``--share``),
  and not on a Space (``SPACE_ID`` unset); or
* explicitly enabled with ``AUDIO_STUDIO_ALLOW_TRAINING=1`` (the owner takes responsibility).

``AUDIO_STUDIO_ALLOW_TRAINING=0`` turns it off even on loopback. Every event that needs it checks
:meth:`Policy.require_owner` on the server, not only in the page.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass


class PolicyError(PermissionError):
    """The request needs a permission this deployment does not give (message for people)."""


def _is_loopback(host: str | None) -> bool:
    if not host:
        return True  # Gradio's own default is 127.0.0.1
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Policy:
    """Whether this studio serves its owner only (training and server paths on) and why."""

    owner_only: bool
    reason: str

    @classmethod
    def decide(cls, host: str | None = None, share: bool = False, env: dict | None = None) -> "Policy":
        env = os.environ if env is None else env
        host = host if host is not None else env.get("GRADIO_SERVER_NAME", "127.0.0.1")
        flag = (env.get("AUDIO_STUDIO_ALLOW_TRAINING") or "").strip().lower()
        if flag in ("1", "true", "yes", "on"):
            return cls(True, "enabled by AUDIO_STUDIO_ALLOW_TRAINING=1")
        if flag in ("0", "false", "no", "off"):
            return cls(False, "AUDIO_STUDIO_ALLOW_TRAINING=0 turns training off")
        if env.get("SPACE_ID"):
            return cls(False, "this studio runs as a public Hugging Face Space")
        share = share or (env.get("GRADIO_SHARE") or "").strip().lower() in ("1", "true", "yes", "on")
        if share:
            return cls(False, "this studio is shared through a public link (--share)")
        if not _is_loopback(host):
            return cls(False, f"this studio listens on a non-loopback address ({host})")
        return cls(True, f"the studio is bound to loopback ({host}) and not shared")

    @property
    def training(self) -> bool:
        return self.owner_only

    @property
    def server_paths(self) -> bool:
        return self.owner_only

    def require_owner(self, what: str = "Training") -> None:
        """Raise :class:`PolicyError` unless training / server paths are allowed here."""
        if not self.owner_only:
            raise PolicyError(f"{what} is turned off on this studio: {self.reason}. The owner can run it "
                              f"locally (python launch.py, bound to 127.0.0.1) or set AUDIO_STUDIO_ALLOW_TRAINING=1.")


def current(ctx=None) -> Policy:
    """The policy of ``ctx`` (set by :func:`studio.app.launch`), else the one the environment gives."""
    pol = getattr(ctx, "policy", None) if ctx is not None else None
    return pol if isinstance(pol, Policy) else Policy.decide()
