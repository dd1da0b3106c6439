"""Sharing backends, one module per `sharing` mode, behind one interface (base.SharingBackend).

`backend_for(mode)` is the only place a mode string is looked up.
"""

from __future__ import annotations

from collections.abc import Mapping

from infra.model import SharingMode
from infra.sharing.base import SharingBackend
from infra.sharing.hami import Hami
from infra.sharing.mig import Mig
from infra.sharing.mps import Mps
from infra.sharing.none import NoSharing
from infra.sharing.time_slicing import TimeSlicing

BACKENDS: Mapping[SharingMode, SharingBackend] = {
    backend.mode: backend for backend in (NoSharing(), TimeSlicing(), Mps(), Mig(), Hami())
}


def backend_for(mode: SharingMode) -> SharingBackend:
    return BACKENDS[mode]


__all__ = ["BACKENDS", "SharingBackend", "backend_for"]
