"""Region layouts: which part of the picture drives which layer group (coarse / middle / fine).

Regions split the FEATURE MAP, not the frame. Why:
* cost: one forward pass serves every region, so a 2x2 grid costs the same as the whole frame; cropping the
  frame would run the CNN once per region (3-4x the time of the slowest stage on a CPU);
* no false borders: a crop adds zero-padded edges the scene does not have, changing every feature near them;
* locality is kept where it matters: a conv4_1 position sees a 60x60 pixel window of the encode-size frame
  (conv5_3: 196x196, pool5: 212x212; theoretical receptive fields, the effective ones are smaller), so a
  region of a conv4 map mostly reflects its part of the frame, with some spill across the border.
  Deep taps blur regions more, and the vector taps (fc1, fc2, fc3) have no layout at all: every region of a
  vector tap gets the same whole-frame vector.

Regions are taken in the picture as encoded, i.e. after ``encoder.mirror``: with a mirrored selfie camera,
"left" is the left of what the performer sees on the monitor.

A layout is named or given as a grid spec:

* ``whole``: one region, all three groups the same z (the paper's default);
* ``paper``: top half -> coarse, bottom-left quarter -> middle, bottom-right quarter -> fine (as the paper's
  code does); the same as grid ``2x2:ccmf``;
* ``columns``: left / centre / right thirds -> coarse / middle / fine (``3x1``);
* ``rows``: top / middle / bottom thirds -> coarse / middle / fine (``1x3``);
* grid ``CxR[:CELLS]``: C columns by R rows (like WIDTHxHEIGHT). CELLS gives one letter per cell in reading
  order (left to right, top to bottom): ``c`` coarse, ``m`` middle, ``f`` fine, ``.`` unused. A group with
  several cells takes the mean over all of them. Without CELLS, the cells in reading order are cut into
  three runs as equal as possible (the first runs get the extra cells): ``2x2`` is the paper layout,
  ``3x3`` gives each group a row. With fewer than 3 cells, coarse takes the first cell and fine the last.
"""
from __future__ import annotations

import dataclasses
import re

import torch

from bridge.encoder.backbone import EncoderInputError
from bridge.frames import GROUPS

NAMED_LAYOUTS: dict[str, str] = {"whole": "1x1", "paper": "2x2:ccmf", "columns": "3x1", "rows": "1x3"}
MAX_CELLS_PER_SIDE = 16
_GRID_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*(?::\s*([cmfCMF.]+)\s*)?$")
_LETTER_GROUP = {"c": "coarse", "m": "middle", "f": "fine"}


@dataclasses.dataclass(frozen=True)
class Layout:
    """A grid of ``columns`` x ``rows`` cells and, per region, the cells it is made of.

    ``regions`` lists distinct regions (cell-index tuples); ``group_region`` maps each group to one of them,
    so groups that share cells share one computed z.
    """

    spec: str
    columns: int
    rows: int
    regions: tuple[tuple[int, ...], ...]
    group_region: dict[str, int]

    def weights(self, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(R, height*width) averaging weights over a feature map of that size; each row sums to 1.

        A position belongs to the cell its centre falls in. A region with no position (a map smaller than
        the grid, e.g. 7x7 avgpool under a 16x16 grid) takes the position under its first cell's centre.
        """
        ys = ((torch.arange(height) + 0.5) / height * self.rows).floor().long().clamp_max(self.rows - 1)
        xs = ((torch.arange(width) + 0.5) / width * self.columns).floor().long().clamp_max(self.columns - 1)
        cell_of = (ys[:, None] * self.columns + xs[None, :]).flatten()  # (h*w,) cell index per position
        rows = []
        for cells in self.regions:
            mask = torch.isin(cell_of, torch.tensor(cells)).float()
            if mask.sum() == 0:
                mask[self._position_under(cells[0], height, width)] = 1.0
            rows.append(mask / mask.sum())
        return torch.stack(rows).to(device)

    def _position_under(self, cell: int, height: int, width: int) -> int:
        row, col = divmod(cell, self.columns)
        y = min(int((row + 0.5) / self.rows * height), height - 1)
        x = min(int((col + 0.5) / self.columns * width), width - 1)
        return y * width + x


def parse_layout(layout: str, grid: str = "") -> Layout:
    """The Layout for ``layout`` (a name, or ``grid`` to use the ``grid`` spec); EncoderInputError if bad."""
    if layout == "grid":
        return parse_grid(grid)
    if layout not in NAMED_LAYOUTS:
        raise EncoderInputError(f"unknown encoder layout {layout!r}; layouts are {', '.join(NAMED_LAYOUTS)}, grid")
    return dataclasses.replace(parse_grid(NAMED_LAYOUTS[layout]), spec=layout)


def parse_grid(spec: str) -> Layout:
    """Parse ``CxR[:CELLS]`` (see the module docstring); EncoderInputError naming the problem if bad."""
    match = _GRID_RE.match(spec or "")
    if not match:
        raise EncoderInputError(f"encoder grid {spec!r} is not COLUMNSxROWS[:CELLS] (e.g. 2x2:ccmf or 3x1)")
    columns, rows = int(match.group(1)), int(match.group(2))
    if not (1 <= columns <= MAX_CELLS_PER_SIDE and 1 <= rows <= MAX_CELLS_PER_SIDE):
        raise EncoderInputError(f"encoder grid {spec!r}: columns and rows must be 1..{MAX_CELLS_PER_SIDE}")
    n = columns * rows
    letters = (match.group(3) or "").lower()
    if letters:
        if len(letters) != n:
            raise EncoderInputError(f"encoder grid {spec!r}: {n} cells need {n} letters (c/m/f/.), got {len(letters)}")
        cells_of = {g: tuple(i for i, ch in enumerate(letters) if _LETTER_GROUP.get(ch) == g) for g in GROUPS}
        for group, cells in cells_of.items():
            if not cells:
                raise EncoderInputError(f"encoder grid {spec!r}: no cell is given to the {group} group ({group[0]})")
    else:
        cells_of = _default_cells(n)
    regions: list[tuple[int, ...]] = []
    group_region: dict[str, int] = {}
    for group in GROUPS:
        if cells_of[group] not in regions:
            regions.append(cells_of[group])
        group_region[group] = regions.index(cells_of[group])
    return Layout(spec.strip(), columns, rows, tuple(regions), group_region)


def _default_cells(n: int) -> dict[str, tuple[int, ...]]:
    if n < 3:
        return {"coarse": (0,), "middle": (0,), "fine": (n - 1,)}
    sizes = [n // 3 + (1 if k < n % 3 else 0) for k in range(3)]
    starts = [0, sizes[0], sizes[0] + sizes[1]]
    return {g: tuple(range(s, s + size)) for g, s, size in zip(GROUPS, starts, sizes)}
