"""A small warehouse inventory service: stock levels, reservations and restock planning.

Fixture for the autocomplete replay benchmark.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
from collections import defaultdict
from typing import Iterable, Iterator, Optional

log = logging.getLogger(__name__)


class StockError(Exception):
    """Raised when an operation would leave the inventory inconsistent."""


class Unit(enum.Enum):
    PIECE = "piece"
    BOX = "box"
    PALLET = "pallet"

    def pieces(self, per_box: int, boxes_per_pallet: int) -> int:
        if self is Unit.PIECE:
            return 1
        if self is Unit.BOX:
            return per_box
        return per_box * boxes_per_pallet


@dataclasses.dataclass(frozen=True)
class Sku:
    code: str
    name: str
    per_box: int = 12
    boxes_per_pallet: int = 40

    def to_pieces(self, quantity: int, unit: Unit) -> int:
        if quantity < 0:
            raise StockError(f"negative quantity for {self.code}: {quantity}")
        return quantity * unit.pieces(self.per_box, self.boxes_per_pallet)


@dataclasses.dataclass
class Reservation:
    order_id: str
    sku: str
    pieces: int
    expires: dt.datetime

    def expired(self, now: dt.datetime) -> bool:
        return now >= self.expires


@dataclasses.dataclass
class Level:
    on_hand: int = 0
    reserved: int = 0
    reorder_point: int = 0
    reorder_quantity: int = 0

    @property
    def available(self) -> int:
        return max(self.on_hand - self.reserved, 0)


class Inventory:
    def __init__(self, skus: Iterable[Sku], clock=dt.datetime.utcnow):
        self._skus = {s.code: s for s in skus}
        self._levels: dict[str, Level] = defaultdict(Level)
        self._reservations: dict[str, list[Reservation]] = defaultdict(list)
        self._clock = clock

    def sku(self, code: str) -> Sku:
        try:
            return self._skus[code]
        except KeyError:
            raise StockError(f"unknown SKU {code!r}") from None

    def level(self, code: str) -> Level:
        self.sku(code)
        return self._levels[code]

    def receive(self, code: str, quantity: int, unit: Unit = Unit.PIECE) -> int:
        pieces = self.sku(code).to_pieces(quantity, unit)
        level = self._levels[code]
        level.on_hand += pieces
        log.info("received %d pieces of %s (now %d)", pieces, code, level.on_hand)
        return level.on_hand

    def reserve(self, order_id: str, code: str, pieces: int, hold: dt.timedelta) -> Reservation:
        self.release_expired()
        level = self.level(code)
        if pieces > level.available:
            raise StockError(f"only {level.available} of {code} available, {pieces} requested")
        reservation = Reservation(order_id, code, pieces, self._clock() + hold)
        level.reserved += pieces
        self._reservations[order_id].append(reservation)
        return reservation

    def release(self, order_id: str) -> int:
        released = 0
        for r in self._reservations.pop(order_id, []):
            self._levels[r.sku].reserved -= r.pieces
            released += r.pieces
        return released

    def release_expired(self) -> list[str]:
        now = self._clock()
        dropped = []
        for order_id, items in list(self._reservations.items()):
            if all(r.expired(now) for r in items):
                self.release(order_id)
                dropped.append(order_id)
        return dropped

    def ship(self, order_id: str) -> dict[str, int]:
        items = self._reservations.pop(order_id, None)
        if not items:
            raise StockError(f"no reservation for order {order_id}")
        shipped: dict[str, int] = defaultdict(int)
        for r in items:
            level = self._levels[r.sku]
            level.reserved -= r.pieces
            level.on_hand -= r.pieces
            shipped[r.sku] += r.pieces
        return dict(shipped)

    def set_policy(self, code: str, reorder_point: int, reorder_quantity: int) -> None:
        if reorder_point < 0 or reorder_quantity <= 0:
            raise StockError("reorder point must be >= 0 and quantity > 0")
        level = self.level(code)
        level.reorder_point = reorder_point
        level.reorder_quantity = reorder_quantity

    def below_reorder_point(self) -> Iterator[tuple[str, Level]]:
        for code in sorted(self._levels):
            level = self._levels[code]
            if level.reorder_quantity and level.available <= level.reorder_point:
                yield code, level


@dataclasses.dataclass
class PurchaseLine:
    sku: str
    boxes: int

    def as_dict(self) -> dict:
        return {"sku": self.sku, "boxes": self.boxes}


def plan_restock(inventory: Inventory, budget_boxes: Optional[int] = None) -> list[PurchaseLine]:
    """Order whole boxes for every SKU at or below its reorder point, most depleted first."""
    wanted = []
    for code, level in inventory.below_reorder_point():
        sku = inventory.sku(code)
        shortfall = level.reorder_point - level.available + level.reorder_quantity
        boxes = -(-shortfall // sku.per_box)
        ratio = level.available / level.reorder_point if level.reorder_point else 0.0
        wanted.append((ratio, PurchaseLine(code, boxes)))
    wanted.sort(key=lambda item: item[0])
    lines = []
    remaining = budget_boxes
    for _, line in wanted:
        if remaining is not None:
            if remaining <= 0:
                break
            line.boxes = min(line.boxes, remaining)
            remaining -= line.boxes
        lines.append(line)
    return lines


def load_skus(path: str) -> list[Sku]:
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    skus = []
    for entry in raw.get("skus", []):
        code = entry.get("code", "").strip()
        if not code:
            log.warning("skipping SKU without a code: %r", entry)
            continue
        skus.append(
            Sku(
                code=code,
                name=entry.get("name", code),
                per_box=int(entry.get("per_box", 12)),
                boxes_per_pallet=int(entry.get("boxes_per_pallet", 40)),
            )
        )
    return skus


def summarize(inventory: Inventory, codes: Iterable[str]) -> str:
    rows = ["code       on hand  reserved  available"]
    for code in codes:
        level = inventory.level(code)
        rows.append(f"{code:<10} {level.on_hand:>7}  {level.reserved:>8}  {level.available:>9}")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: inventory.py SKUS.json")
        return 2
    inventory = Inventory(load_skus(argv[1]))
    for sku in list(inventory._skus.values())[:3]:
        inventory.receive(sku.code, 2, Unit.BOX)
        inventory.set_policy(sku.code, reorder_point=30, reorder_quantity=48)
    print(summarize(inventory, sorted(inventory._skus)))
    for line in plan_restock(inventory, budget_boxes=10):
        print(json.dumps(line.as_dict()))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv))
