"""Deterministic randomness and the small product catalogue shared by the generators.

Only operations whose results are fixed by IEEE-754 and the Mersenne Twister are used
(``random()``, ``randrange``, ``choice``, ``choices``, ``sample``, ``shuffle``, ``+ - * /``),
never ``gauss``/``expovariate`` (they call libm's ``log``/``exp``, which may differ in the last
bit between platforms). That keeps the output byte-identical across machines.
"""

from __future__ import annotations

import math
import random
import uuid

PRODUCT_IDS = range(1, 501)
"""The catalogue: product ids 1..500."""
SEARCH_TERMS = (
    "running shoes",
    "headphones",
    "laptop stand",
    "coffee grinder",
    "yoga mat",
    "usb-c cable",
    "desk lamp",
    "backpack",
    "water bottle",
    "wireless mouse",
    "rain jacket",
    "board game",
)
CATEGORIES = ("electronics", "home", "sports", "fashion", "toys", "books")


def rng_for(seed: int, *labels: object) -> random.Random:
    """An independent random stream per (seed, purpose): a string seed is hashed with
    SHA-512 by ``random.Random`` (stable across runs; ``PYTHONHASHSEED`` plays no part)."""
    return random.Random(":".join(str(part) for part in (seed, *labels)))


def count_around(rng: random.Random, mean: float, minimum: int = 0) -> int:
    """An integer >= ``minimum`` whose expectation is ``mean`` (binomial above the minimum).

    ``mean`` below ``minimum`` gives ``minimum``."""
    extra = mean - minimum
    if extra <= 0:
        return minimum
    trials = max(1, math.ceil(2 * extra))
    p = extra / trials
    return minimum + sum(1 for _ in range(trials) if rng.random() < p)


def uuid_from(rng: random.Random) -> str:
    """A version-4 UUID string drawn from ``rng`` (not from the OS)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def product_price_cents(product_id: int) -> int:
    """The fixed list price of a product: 1.99 .. 249.99, always ending in 99 cents."""
    return 199 + ((product_id * 7919) % 249) * 100


def skewed_int(rng: random.Random, low: int, high: int) -> int:
    """An int in ``[low, high]`` skewed towards ``low`` (cube of a uniform)."""
    u = rng.random()
    return low + int((high - low) * u * u * u)
