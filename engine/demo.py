"""`engine demo`: a short, readable session on several instruments.

Sends a few thousand seeded orders (resting quotes around a drifting mid, some aggressive
orders, cancels and replaces) through the decimal edge (`Market`) into the compiled core, then
prints each book and the tape of the last trades. With a journal directory every command goes
through the sequencer and the journal first (engine.pipeline), so the session can be replayed.
It shows; it decides nothing.
"""
from __future__ import annotations

import random
import sys

from .config import ConfigError
from .instruments import InstrumentSet
from .market import Market

# Where each asset class starts trading in the demo, in price units.
_START = {"equity": "190", "etf": "560", "future": "5800", "option": "12.5",
          "fx_spot": "1.08", "bond": "98", "crypto": "65000"}


def run_demo(config_path: str | None = None, n_orders: int = 3000, seed: int = 1,
             out=None, journal: str | None = None, durability: str = "write") -> int:
    try:
        instruments = InstrumentSet.load(config_path) if config_path else InstrumentSet.default()
    except ConfigError as e:
        print(f"engine demo: {e}", file=sys.stderr)
        return 1
    if journal is None:
        return _session(instruments, Market(instruments), n_orders, seed, out)
    from .journal.format import JournalError
    from .pipeline import Engine, EngineCore

    try:
        engine = Engine(instruments, journal, durability=durability)  # type: ignore[arg-type]
    except JournalError as e:
        print(f"engine demo: {e}", file=sys.stderr)
        return 1
    with engine:
        if engine.last_seq:
            print(f"engine demo: {journal} already holds {engine.last_seq:,} commands;"
                  " give the demo a new journal directory", file=sys.stderr)
            return 1
        market = Market(instruments, core_factory=lambda: EngineCore(engine))
        rc = _session(instruments, market, n_orders, seed, out)
        (out or sys.stdout).write(
            f"journal {journal}: seq 1..{engine.last_seq:,} ({durability}); replay it with"
            f" `engine replay {journal}`\n")
    return rc


def _session(instruments: InstrumentSet, market: Market, n_orders: int, seed: int,
             out) -> int:
    rng = random.Random(seed)
    mids = {i.symbol: i.price_to_ticks(_START.get(i.asset_class, "100")) for i in instruments}
    live: list[tuple[int, str]] = []
    tape = []
    counts = {"orders": 0, "trades": 0, "cancels": 0, "replaces": 0, "rejects": 0}
    symbols = [i.symbol for i in instruments]
    done: set[int] = set()  # makers filled since the last sweep of `live`
    for _ in range(n_orders):
        if done:
            live = [(oid, s) for oid, s in live if oid not in done]
            done.clear()
        sym = rng.choice(symbols)
        inst = instruments[sym]
        mids[sym] += rng.choice((-1, 0, 1))
        mid = mids[sym]
        lots = rng.randint(1, 20) * max(1, inst.min_lots)
        qty = inst.lots_to_qty(lots)
        x = rng.random()
        if live and x < 0.25:
            oid, _sym = live.pop(rng.randrange(len(live)))
            evs = market.cancel(oid)
            counts["cancels"] += 1
        elif live and x < 0.30:
            oid, osym = live[rng.randrange(len(live))]
            o = market.order(oid)
            evs = [] if o is None else market.replace(oid, o.price, o.qty + instruments[osym].lot_size)
            counts["replaces"] += 1
        else:
            side = rng.choice(("buy", "sell"))
            aggressive = x > 0.88
            off = rng.randint(0, 3) if aggressive else rng.randint(1, 10)
            ticks = mid + off if (side == "buy") == aggressive else mid - off
            price = inst.ticks_to_price(ticks)
            evs = market.submit(sym, side, qty, price, tif="ioc" if aggressive else "gtc")
            counts["orders"] += 1
            if not aggressive:
                live.append((evs[0].order_id, sym))
        for e in evs:
            if e.type == "TRADE":
                counts["trades"] += 1
                tape.append(e)
                if e.other_leaves == 0:
                    done.add(e.other_id)
                if e.leaves == 0:
                    done.add(e.order_id)
            elif e.type == "REJECTED":
                counts["rejects"] += 1

    w = (out or sys.stdout).write
    w(f"engine demo: {n_orders:,} orders over {len(instruments)} instruments (seed {seed})\n")
    w(f"  {counts['orders']:,} new, {counts['cancels']:,} cancels, {counts['replaces']:,} "
      f"replaces -> {counts['trades']:,} trades, {counts['rejects']:,} rejects, "
      f"{market.core.open_orders:,} orders resting\n\n")
    for inst in instruments:
        book = market.book(inst.symbol, depth=3)
        w(f"{inst.symbol} ({inst.asset_class}, tick {inst.tick_size}, lot {inst.lot_size}, "
          f"x{inst.multiplier} {inst.currency})\n")
        for lv in reversed(book.asks):
            w(f"    ask {lv.price:>14} x {lv.qty:<10} ({lv.orders} orders)\n")
        for lv in book.bids:
            w(f"    bid {lv.price:>14} x {lv.qty:<10} ({lv.orders} orders)\n")
    w("\nlast trades (taker side, price x qty, taker <- maker):\n")
    for e in tape[-12:]:
        notional = instruments[e.symbol].multiplier * e.price * e.qty
        w(f"  seq {e.seq:>5}  {e.symbol:<20} {e.side:<4} {e.price:>12} x {e.qty:<8} "
          f"#{e.order_id} <- #{e.other_id}  notional {notional:,.2f}\n")
    market.core.check_integrity()
    w(f"\nstate digest {market.core.state_digest()[:16]}...\n")
    return 0
