"""Structured-output success rate of the embedded models, with and without grammar-constrained decoding.

50 extraction prompts (people, products, meetings; generated deterministically below, with
the true values known) are sent to each model twice:

* ``grammar``: the JSON Schema goes to the backend (llama.cpp compiles it into a GBNF
  grammar, so only schema-shaped JSON can be sampled) plus the schema hint in the prompt;
* ``prompt``: the schema hint in the prompt only (free decoding).

One attempt per prompt (``max_attempts=1``), so the numbers show first-try behaviour.
Columns: ``valid`` = reply parsed and validated into the pydantic type; ``exact`` = every
field equal to the truth (strings compared case-insensitively); ``s/call`` = mean wall
seconds per call.

Usage::

    python benches/structured_output.py --limit 10 --models smollm2-135m
    python benches/structured_output.py --limit 50 --models smollm2-135m,qwen2.5-coder-1.5b

A full Qwen run on 2 CPU cores takes long (about 10-30 s per call): use ``--limit``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from pydantic import BaseModel


class Person(BaseModel):
    name: str
    age: int
    city: str


class Product(BaseModel):
    name: str
    price: float
    currency: str


class Meeting(BaseModel):
    title: str
    day: str
    hour: int


_NAMES = ["Maria Lopez", "Ken Tanaka", "Amara Obi", "Lars Berg", "Priya Nair", "Tom Walsh", "Chen Wei",
          "Sofia Rossi", "Omar Haddad", "Eva Novak", "Jonas Weber", "Lina Park", "Diego Silva", "Nora Kim",
          "Ivan Petrov", "Aisha Khan", "Paul Martin"]
_CITIES = ["Madrid", "Osaka", "Lagos", "Oslo", "Chennai", "Dublin", "Shanghai", "Rome", "Beirut", "Prague",
           "Berlin", "Seoul", "Lisbon", "Busan", "Kazan", "Lahore", "Lyon"]
_PRODUCTS = ["Trail Runner 2", "AquaBottle", "Desk Lamp Pro", "Noise Buds", "Chef Knife", "Yoga Mat", "Smart Plug",
             "Travel Mug", "Rain Jacket", "Phone Stand", "Bike Light", "Wool Socks", "Tea Kettle", "USB Hub",
             "Notebook A5", "Camp Stove", "Sun Hat"]
_CURRENCIES = ["EUR", "USD", "GBP", "JPY"]
_TITLES = ["Budget review", "Sprint planning", "Design critique", "Hiring sync", "Quarterly report",
           "Security audit", "Launch prep", "Customer call", "Team retro", "Board update", "Vendor demo",
           "Roadmap talk", "Data cleanup", "Onboarding", "Release check", "Ops handover"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

PERSON_TEXT = ["{name}, aged {age}, lives in {city}.", "Meet {name} from {city}; she turned {age} last spring.",
               "Our new hire {name} ({age}) relocated to {city}."]
PRODUCT_TEXT = ["The {name} costs {price} {currency}.", "Now on sale: {name} for just {price} {currency}!",
                "Item: {name}. Price {price} ({currency}), free shipping."]
MEETING_TEXT = ["{title} is on {day} at {hour}:00.", "Reminder: the {title} meeting moved to {day}, {hour} o'clock.",
                "Please join {title} this {day} at {hour}h."]


def cases(n: int = 50) -> list[tuple[str, type[BaseModel], BaseModel]]:
    """``n`` (prompt, type, truth) triples, cycling people, products and meetings."""
    out: list[tuple[str, type[BaseModel], BaseModel]] = []
    for i in range(n):
        kind = i % 3
        j = i // 3
        if kind == 0:
            truth: BaseModel = Person(name=_NAMES[j % len(_NAMES)], age=21 + (j * 7) % 50, city=_CITIES[j % len(_CITIES)])
            text = PERSON_TEXT[j % 3].format(**truth.model_dump())
            ask = "Extract the person's name, age and city."
        elif kind == 1:
            price = round(4.5 + (j * 13.25) % 180, 2)
            truth = Product(name=_PRODUCTS[j % len(_PRODUCTS)], price=price, currency=_CURRENCIES[j % 4])
            text = PRODUCT_TEXT[j % 3].format(**truth.model_dump())
            ask = "Extract the product name, price and currency code."
        else:
            truth = Meeting(title=_TITLES[j % len(_TITLES)], day=_DAYS[j % 5], hour=9 + j % 8)
            text = MEETING_TEXT[j % 3].format(**truth.model_dump())
            ask = "Extract the meeting title, day and hour (0-23)."
        out.append((f"{ask}\n\nText: {text}", type(truth), truth))
    return out


def exact(value: BaseModel, truth: BaseModel) -> bool:
    for field, want in truth.model_dump().items():
        got = getattr(value, field)
        if isinstance(want, str):
            if str(got).strip().lower() != want.lower():
                return False
        elif isinstance(want, float):
            if abs(float(got) - want) > 0.005:
                return False
        elif got != want:
            return False
    return True


def run(model_name: str, mode: str, items: list[tuple[str, type[BaseModel], BaseModel]],
        max_tokens: int) -> dict[str, Any]:
    from knowbase.errors import KnowbaseError
    from knowbase.models.registry import get_chat_model
    from knowbase.output import chat_structured

    model = get_chat_model(f"llamacpp:{model_name}", tracing=False)
    valid = good = 0
    seconds = 0.0
    for i, (prompt, kind, truth) in enumerate(items, start=1):
        t0 = time.perf_counter()
        try:
            done = chat_structured(model, prompt, kind, max_attempts=1, constrained=(mode == "grammar"),
                                   max_tokens=max_tokens, temperature=0.0)
        except KnowbaseError:
            pass
        else:
            valid += 1
            good += exact(done.value, truth)
        seconds += time.perf_counter() - t0
        print(f"  {model_name} {mode}: {valid}/{i} valid", file=sys.stderr, flush=True)
    n = len(items)
    return {"model": model_name, "mode": mode, "n": n, "valid": valid / n, "exact": good / n, "s_call": seconds / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=50, help="prompts per model and mode (at most 50)")
    parser.add_argument("--models", default="smollm2-135m,qwen2.5-coder-1.5b", help="comma-separated llamacpp names")
    parser.add_argument("--modes", default="grammar,prompt", help="grammar, prompt or both")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    items = cases(50)[: max(1, min(50, args.limit))]
    rows = [run(m.strip(), mode.strip(), items, args.max_tokens)
            for m in args.models.split(",") for mode in args.modes.split(",")]
    print(f"{'model':<22} {'decoding':<9} {'n':>4} {'valid':>7} {'exact':>7} {'s/call':>8}")
    print("-" * 62)
    for r in rows:
        print(f"{r['model']:<22} {r['mode']:<9} {r['n']:>4} {r['valid']:>7.0%} {r['exact']:>7.0%} {r['s_call']:>8.1f}")


if __name__ == "__main__":
    main()
