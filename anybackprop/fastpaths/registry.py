"""The registry's two types: :class:`FastPath` (one stand-in) and :class:`FastPaths` (one backend's
table); see :mod:`anybackprop.fastpaths`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FastPath:
    """``function`` stands in for ``formula`` (a formula, or a tuple of formulas it fuses);
    ``overwrites`` is the index (after ``xp``) of the argument it may write into, or the indices
    of those, or None."""

    formula: Any
    function: Callable
    overwrites: int | tuple[int, ...] | None = None


class FastPaths:
    """One backend's fast paths, looked up by the formula they replace."""

    def __init__(self, name: str, paths: Iterable[FastPath] = ()) -> None:
        self.name = name
        self._paths = {path.formula: path for path in paths}
        self._pure = {key: p.function for key, p in self._paths.items() if p.overwrites is None}
        self._any = {key: p.function for key, p in self._paths.items()}

    def get(self, formula: Any, *, may_overwrite: bool = False) -> Callable:
        """The fast path for ``formula``, or ``formula`` itself. A path that writes into an
        argument is returned only when the caller owns it (``may_overwrite=True``)."""
        return (self._any if may_overwrite else self._pure).get(formula, formula)

    def fused(self, *formulas: Any) -> Callable | None:
        """The fast path that computes ``formulas`` in one go (e.g. affine + activation), or None."""
        path = self._paths.get(formulas)
        return None if path is None else path.function

    def __iter__(self) -> Iterator[FastPath]:
        return iter(self._paths.values())

    def __len__(self) -> int:
        return len(self._paths)

    def __repr__(self) -> str:
        return f"FastPaths({self.name!r}, {len(self)} paths)"


NONE = FastPaths("none")
