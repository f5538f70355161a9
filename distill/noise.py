"""Quiet the libraries' output that tells a user nothing to act on.

    quiet_libraries()       # at CLI start (no heavy import): warnings and log lines
    quiet_transformers()    # after importing transformers: no per-load progress bars

Silenced: bitsandbytes' CPU backend advising `pip install kernels` on every 4-bit-capable import
(its fallback works), FutureWarnings about transformers/TRL/PEFT internals that distill does not
call itself, and transformers' "Loading weights" / "Writing model shards" bars. Hub download bars
and every error stay.
"""

from __future__ import annotations

import logging
import sys
import warnings


def quiet_libraries() -> None:
    """Filter warnings and log lines before any library is imported; cheap, idempotent."""
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings(
        "ignore", category=FutureWarning, module=r"(transformers|trl|peft|accelerate)(\.|$)"
    )


def quiet_transformers() -> None:
    """Turn off transformers' own progress bars (model loading and saving), if it is imported."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
