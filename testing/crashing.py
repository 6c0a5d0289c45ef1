"""A photo decoder that crashes its process, as a decoder's bug on a crafted file would
(tests/test_photo_processes.py)."""

from __future__ import annotations

import os

from store.images import Inspected


def decoder_crash(data: bytes, max_bytes: int) -> Inspected:
    os.abort()
