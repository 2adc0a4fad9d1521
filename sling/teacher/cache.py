"""A content-addressed cache of teacher replies: one small JSON file per call, written atomically.

The key hashes everything that determines the reply (teacher, prompt version, the exact prompt, the
generation parameters), so re-running or resuming after `kill -9` repeats no finished call, and a
change to any of those misses the cache instead of returning a stale reply.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sling.io import atomic_write_text


class ReplyCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def key(**parts) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # cannot happen with atomic writes, but a hand-edited file must not crash a run
            return None

    def put(self, key: str, value: dict) -> None:
        atomic_write_text(self._path(key), json.dumps(value, sort_keys=True, ensure_ascii=False))
