"""The polling-station master (``wilayah-2024.json``): which TPS exist, and region names.

Shape (see ../shared/data/README.md)::

    {"id2name": {"31": "DKI JAKARTA", ...}, "tps": {"3101011001": [18], "...": [4, 901, 902]}}

``tps[desa] = [n]`` means TPS 001..n; ``[n, a, b]`` adds special TPS a..b. Optional input: the
project runs without it, and R11's existence check runs only when it is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .errors import SchemaError


class Master:
    def __init__(self, names: dict[str, str], tps: dict[str, tuple[int, int, int]]):
        self.names = names
        self._tps = tps  # desa -> (ordinary count, special first, special last) (0, 0 if none)

    @classmethod
    def from_json(cls, obj: Any) -> Master:
        if not isinstance(obj, dict) or not isinstance(obj.get("tps"), dict):
            raise SchemaError("a polling-station master needs a 'tps' object (desa -> [n, ...])")
        names = obj.get("id2name", {})
        if not isinstance(names, dict):
            raise SchemaError("'id2name' must map region codes to names")
        tps: dict[str, tuple[int, int, int]] = {}
        for desa, v in obj["tps"].items():
            if (
                not isinstance(desa, str)
                or len(desa) != 10
                or not desa.isdigit()
                or not isinstance(v, list)
                or len(v) not in (1, 3)
                or not all(type(x) is int and 0 <= x <= 999 for x in v)
            ):
                raise SchemaError(f"master entry tps[{desa!r}] = {v!r} is not [n] or [n, a, b]")
            tps[desa] = (v[0], v[1], v[2]) if len(v) == 3 else (v[0], 0, 0)
        return cls({str(k): str(n) for k, n in names.items()}, tps)

    def tps_exists(self, tps: str) -> bool:
        spec = self._tps.get(tps[:10])
        if spec is None or len(tps) != 13 or not tps.isdigit():
            return False
        n = int(tps[10:])
        return 1 <= n <= spec[0] or (spec[1] > 0 and spec[1] <= n <= spec[2])

    def desa_codes(self, prefix: str = "") -> list[str]:
        return sorted(d for d in self._tps if d.startswith(prefix))

    def tps_codes(self, prefix: str = "", *, special: bool = False) -> Iterator[str]:
        """Every TPS code under a region prefix, in code order."""
        for desa in self.desa_codes(prefix):
            n, a, b = self._tps[desa]
            for i in range(1, n + 1):
                yield f"{desa}{i:03d}"
            if special and a:
                for i in range(a, b + 1):
                    yield f"{desa}{i:03d}"

    def expected_by_kecamatan(self, prefix: str = "") -> dict[str, int]:
        """Ordinary TPS count per kecamatan (6-digit code) under ``prefix``."""
        out: dict[str, int] = {}
        for desa, (n, _a, _b) in self._tps.items():
            if desa.startswith(prefix):
                out[desa[:6]] = out.get(desa[:6], 0) + n
        return out

    def name(self, code: str) -> str:
        return self.names.get(code, code)
