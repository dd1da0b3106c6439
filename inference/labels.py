"""Label vocabularies shared by the model builders and the post-processing."""

from __future__ import annotations

from typing import Final

# The detector's class order: output channel 4 + i scores BEHAVIOURS[i].
BEHAVIOURS: Final = ("eating", "drinking", "sleeping", "vomiting", "waiting", "litterbox", "yowling")
# A cat whose best behaviour score is below the confidence threshold (but above presence).
PRESENT: Final = "present"
# An identified crop whose best cat probability is below the identity threshold.
UNKNOWN_CAT: Final = "unknown"
