"""Synthetic card transactions of any size, streamed chunk by chunk, with a known fraud ground truth."""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.data.demo.files import DemoResult, atomic_path, demo_result
from core.errors import QuarryError

GROUND_TRUTH_KEY = b"quarry.ground_truth"
GENERATOR_KEY = b"quarry.generator"

# The columns the fraud label depends on, strongest first (by univariate ROC AUC on large samples).
FRAUD_DRIVERS: tuple[str, ...] = ("amount", "velocity_24h", "merchant_category", "distance_from_home_km")
FRAUD_TARGET = "is_fraud"
RISKY_CATEGORIES: tuple[str, ...] = ("electronics", "jewelry", "online_gaming")
# Log-odds model of the label. The intercept puts the fraud rate near 0.6 %; the coefficients give
# univariate AUCs of about 0.78 / 0.73 / 0.67 / 0.60 for the drivers in the order above.
FRAUD_INTERCEPT = -12.2
FRAUD_COEF_LOG_AMOUNT = 1.0
FRAUD_COEF_VELOCITY = 0.6
FRAUD_COEF_RISKY_CATEGORY = 2.3
FRAUD_COEF_LOG1P_DISTANCE = 0.3
FRAUD_FORMULA = (
    f"logit(P(is_fraud)) = {FRAUD_INTERCEPT} + {FRAUD_COEF_LOG_AMOUNT} * ln(amount)"
    f" + {FRAUD_COEF_VELOCITY} * velocity_24h"
    f" + {FRAUD_COEF_RISKY_CATEGORY} * (merchant_category in {list(RISKY_CATEGORIES)})"
    f" + {FRAUD_COEF_LOG1P_DISTANCE} * ln(1 + coalesce(distance_from_home_km, 0))"
)

MERCHANT_CATEGORIES: tuple[str, ...] = (
    "grocery", "fuel", "restaurants", "electronics", "jewelry", "travel", "online_gaming", "clothing",
    "pharmacy", "entertainment", "utilities", "transport", "home_improvement", "subscriptions", "cash",
)
_CATEGORY_WEIGHTS = (20, 12, 15, 4, 1.5, 4, 2.5, 9, 6, 5, 6, 6, 4, 3, 2)
CHANNELS: tuple[str, ...] = ("pos", "contactless", "online", "atm")
_CHANNEL_WEIGHTS = (35, 30, 28, 7)
CARD_TYPES: tuple[str, ...] = ("debit", "credit", "prepaid")
_CARD_TYPE_CUMULATIVE = (0.55, 0.93)  # debit below 0.55, credit below 0.93, prepaid above
HOME_COUNTRY = "US"
COUNTRIES: tuple[str, ...] = (
    "US", "CA", "MX", "GB", "DE", "FR", "ES", "IT", "NL", "JP",
    "CN", "IN", "BR", "AU", "AE", "TR", "NG", "PH", "SG", "CH",
)
_COUNTRY_WEIGHTS = (860, 25, 20, 15, 12, 10, 8, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 2, 1)
N_MERCHANTS = 40_000
CUSTOMERS_PER_ROW = 1 / 20
CUSTOMER_AGE_MISSING = 0.02
DISTANCE_MISSING = 0.05
DEVICE_SCORE_MISSING = 0.10
# Hourly share of card activity (midnight first): quiet nights, a lunch and an evening peak.
_HOURLY_WEIGHTS = (
    1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4.0, 5.0, 5.5, 6.0,
    7.0, 6.5, 5.5, 5.5, 6.0, 6.5, 7.0, 6.5, 5.5, 4.0, 2.8, 1.8,
)
_YEAR_START_US = int(np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64))
_DAYS_IN_YEAR = 366  # 2024 is a leap year
_US_PER_HOUR = 3_600 * 1_000_000
_US_PER_DAY = 24 * _US_PER_HOUR

TRANSACTIONS_SCHEMA = pa.schema([
    ("transaction_id", pa.int64()),
    ("ts", pa.timestamp("us")),
    ("hour", pa.int64()),
    ("customer_id", pa.int64()),
    ("customer_age", pa.int64()),
    ("account_age_days", pa.int64()),
    ("card_type", pa.string()),
    ("merchant_id", pa.string()),
    ("merchant_category", pa.string()),
    ("channel", pa.string()),
    ("country", pa.string()),
    ("is_foreign", pa.bool_()),
    ("amount", pa.float64()),
    ("distance_from_home_km", pa.float64()),
    ("velocity_24h", pa.int64()),
    ("device_score", pa.float64()),
    ("is_fraud", pa.bool_()),
])


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a fast, well-spread hash of uint64 values (wraps on overflow by design)."""
    z = x.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _unit(h: np.ndarray) -> np.ndarray:
    """Map uint64 hashes to floats in [0, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _coprime_multiplier(n: int) -> int:
    """A large multiplier coprime with ``n``, so ``(i * m) % n`` permutes 0..n-1."""
    m = 2_654_435_761  # Knuth's multiplicative-hash prime
    while math.gcd(m, n) != 1:
        m += 2
    return m


def _skewed_ids(u: np.ndarray, n: int, power: float, multiplier: int) -> np.ndarray:
    """Popularity-skewed ids in 0..n-1: low ranks are drawn most, then scattered over the id range."""
    rank = np.minimum((n * u**power).astype(np.int64), n - 1)
    return (rank * multiplier) % n


def _pick(vocabulary: pa.Array, indices: np.ndarray) -> pa.Array:
    """Strings from a small vocabulary by index, without a Python loop per row."""
    return vocabulary.take(pa.array(indices, type=pa.int32()))


def _fraud_logit(amount: np.ndarray, velocity: np.ndarray, risky: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """The ground-truth log-odds; ``distance`` has NaN where missing, which counts as 0 km."""
    return (
        FRAUD_INTERCEPT
        + FRAUD_COEF_LOG_AMOUNT * np.log(amount)
        + FRAUD_COEF_VELOCITY * velocity
        + FRAUD_COEF_RISKY_CATEGORY * risky
        + FRAUD_COEF_LOG1P_DISTANCE * np.log1p(np.nan_to_num(distance, nan=0.0))
    )


@dataclass(frozen=True)
class _Vocabularies:
    """Arrow string arrays and sampling weights, built once per file."""

    merchant_ids: pa.Array
    categories: pa.Array
    category_p: np.ndarray
    risky: np.ndarray
    channels: pa.Array
    channel_p: np.ndarray
    card_types: pa.Array
    countries: pa.Array
    country_p: np.ndarray
    foreign: np.ndarray
    hour_cdf: np.ndarray


def _vocabularies() -> _Vocabularies:
    def weights(w: tuple[float, ...]) -> np.ndarray:
        p = np.asarray(w, dtype=np.float64)
        return p / p.sum()

    numbers = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, N_MERCHANTS + 1)), pa.string()), 6, "0")
    hourly = weights(_HOURLY_WEIGHTS)
    return _Vocabularies(
        merchant_ids=pc.binary_join_element_wise("M", numbers, ""),
        categories=pa.array(MERCHANT_CATEGORIES, pa.string()),
        category_p=weights(_CATEGORY_WEIGHTS),
        risky=np.isin(np.asarray(MERCHANT_CATEGORIES), RISKY_CATEGORIES),
        channels=pa.array(CHANNELS, pa.string()),
        channel_p=weights(_CHANNEL_WEIGHTS),
        card_types=pa.array(CARD_TYPES, pa.string()),
        countries=pa.array(COUNTRIES, pa.string()),
        country_p=weights(_COUNTRY_WEIGHTS),
        foreign=np.asarray(COUNTRIES) != HOME_COUNTRY,
        hour_cdf=np.concatenate([[0.0], np.cumsum(hourly)]),
    )


ROW_GROUP_ROWS = 131_072


def _transactions_chunk(
    start: int, size: int, rows: int, seed: int, chunk_index: int, salts: np.ndarray, vocab: _Vocabularies
) -> pa.Table:
    """Rows ``start .. start+size-1`` of the file, from the chunk's own random stream."""
    rng = np.random.default_rng([seed, chunk_index])
    index = np.arange(start, start + size, dtype=np.int64)

    # Time: each row owns an equal slot of the year, so ts increases over the whole file; within a
    # day, the slot's position is warped through the hourly activity curve (monotone, keeps order).
    position = (index + rng.random(size)) * (_DAYS_IN_YEAR / rows)
    day = np.floor(position)
    hour_float = np.interp(position - day, vocab.hour_cdf, np.arange(25, dtype=np.float64))
    ts_us = _YEAR_START_US + day.astype(np.int64) * _US_PER_DAY + (hour_float * _US_PER_HOUR).astype(np.int64)
    hour = (ts_us // _US_PER_HOUR) % 24

    # Customers: skewed activity; age, account age and card type are fixed per customer (a hash of
    # the id), so a customer looks the same in every chunk without any shared state.
    n_customers = max(1, int(rows * CUSTOMERS_PER_ROW))
    customer = _skewed_ids(rng.random(size), n_customers, 1.7, _coprime_multiplier(n_customers))
    customer_id = 1_000_000 + customer
    key = customer.astype(np.uint64)
    u_age = (_unit(_mix64(key ^ salts[0])) + _unit(_mix64(key ^ salts[1]))) / 2
    customer_age = 18 + (u_age * 67).astype(np.int64)
    account_age_days = (-900.0 * np.log1p(-_unit(_mix64(key ^ salts[2])))).astype(np.int64)
    card_type = np.searchsorted(np.asarray(_CARD_TYPE_CUMULATIVE), _unit(_mix64(key ^ salts[3])), side="right")

    merchant = _skewed_ids(rng.random(size), N_MERCHANTS, 2.0, _coprime_multiplier(N_MERCHANTS))
    category = rng.choice(len(vocab.categories), size=size, p=vocab.category_p)
    channel = rng.choice(len(vocab.channels), size=size, p=vocab.channel_p)
    country = rng.choice(len(vocab.countries), size=size, p=vocab.country_p)

    amount = np.maximum(np.round(rng.lognormal(mean=3.6, sigma=1.15, size=size), 2), 0.01)
    distance = np.round(rng.lognormal(mean=2.0, sigma=1.5, size=size), 2)
    distance[rng.random(size) < DISTANCE_MISSING] = np.nan
    velocity = rng.poisson(2.0, size=size).astype(np.int64)
    device_score = np.round(rng.beta(2.0, 5.0, size=size), 4)
    device_missing = rng.random(size) < DEVICE_SCORE_MISSING
    age_missing = rng.random(size) < CUSTOMER_AGE_MISSING

    # The label sees only the stored (rounded) driver values, so the formula reproduces it exactly.
    logit = _fraud_logit(amount, velocity, vocab.risky[category], distance)
    is_fraud = rng.random(size) < 1.0 / (1.0 + np.exp(-logit))

    return pa.Table.from_arrays(
        [
            pa.array(index + 1),
            pa.array(ts_us).cast(pa.timestamp("us")),
            pa.array(hour),
            pa.array(customer_id),
            pa.array(customer_age, mask=age_missing),
            pa.array(account_age_days),
            _pick(vocab.card_types, card_type),
            _pick(vocab.merchant_ids, merchant),
            _pick(vocab.categories, category),
            _pick(vocab.channels, channel),
            _pick(vocab.countries, country),
            pa.array(vocab.foreign[country]),
            pa.array(amount),
            pa.array(distance, from_pandas=True),  # NaN -> null
            pa.array(velocity),
            pa.array(device_score, mask=device_missing),
            pa.array(is_fraud),
        ],
        schema=TRANSACTIONS_SCHEMA,
    )


def _check_count(name: str, value: object, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise QuarryError(f"'{name}' must be an integer. Got {value!r} instead.", hint)
    if value < minimum:
        raise QuarryError(f"'{name}' must be an integer >= {minimum}. Got {value} instead.", hint)
    return int(value)


def write_transactions(
    out: Path,
    rows: int,
    seed: int = 42,
    chunk_rows: int = 1_000_000,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Write a synthetic card-transactions table with a rare fraud label of known cause.

    Parameters
    ----------
    out : Path
        The Parquet file to write; its folder is created if needed. An existing file is replaced
        only once the new one is complete; on any error (or Ctrl-C) nothing is left behind.
    rows : int
        Number of transactions, at least 1. Any size works: memory is bounded by ``chunk_rows``.
    seed : int, default 42
        Seed (>= 0). The same ``(rows, seed, chunk_rows)`` always gives the same data.
    chunk_rows : int, default 1_000_000
        Rows generated at a time; each chunk becomes one Parquet row group.
    progress : callable, optional
        Called as ``progress(done_rows, total_rows)`` after each chunk is written.

    Returns
    -------
    DemoResult
        Path, row and column counts, size on disk and time taken.

    Notes
    -----
    ``is_fraud`` depends only on ``FRAUD_DRIVERS`` through ``FRAUD_FORMULA`` (rate about 0.6 %);
    all other columns are independent of it. The file's key-value metadata holds the ground truth
    (``quarry.ground_truth``) and the generator parameters (``quarry.generator``), as JSON.
    """
    started = time.perf_counter()
    out = Path(out)
    rows = _check_count("rows", rows, 1, "Ask for at least one row, e.g. rows=1_000_000.")
    seed = _check_count("seed", seed, 0, "Use a non-negative integer seed, e.g. seed=42.")
    chunk_rows = _check_count("chunk_rows", chunk_rows, 1, "Use e.g. chunk_rows=1_000_000.")

    ground_truth = {
        "target": FRAUD_TARGET,
        "drivers": list(FRAUD_DRIVERS),
        "formula": FRAUD_FORMULA,
        "intercept": FRAUD_INTERCEPT,
        "coefficients": {
            "ln(amount)": FRAUD_COEF_LOG_AMOUNT,
            "velocity_24h": FRAUD_COEF_VELOCITY,
            "merchant_category_risky": FRAUD_COEF_RISKY_CATEGORY,
            "ln(1 + coalesce(distance_from_home_km, 0))": FRAUD_COEF_LOG1P_DISTANCE,
        },
        "risky_categories": list(RISKY_CATEGORIES),
        "noise_columns": [f.name for f in TRANSACTIONS_SCHEMA if f.name not in (*FRAUD_DRIVERS, FRAUD_TARGET)],
    }
    generator = {"name": "quarry.demo.write_transactions", "rows": rows, "seed": seed, "chunk_rows": chunk_rows}
    schema = TRANSACTIONS_SCHEMA.with_metadata({
        GROUND_TRUTH_KEY: json.dumps(ground_truth).encode(),
        GENERATOR_KEY: json.dumps(generator).encode(),
    })
    vocab = _vocabularies()
    # Per-customer hash salts: from the seed only, so they are the same in every chunk.
    salts = np.random.SeedSequence(seed).generate_state(4, dtype=np.uint64)

    # Nested on purpose: the writer must close (footer written) before the file is moved into place.
    with atomic_path(out) as tmp:  # noqa: SIM117
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for chunk_index, start in enumerate(range(0, rows, chunk_rows)):
                size = min(chunk_rows, rows - start)
                chunk = _transactions_chunk(start, size, rows, seed, chunk_index, salts, vocab)
                # DuckDB scans a Parquet file in parallel by row group: 128Ki-row groups let every
                # core work even on the default 1M-row file.
                writer.write_table(chunk, row_group_size=min(size, ROW_GROUP_ROWS))
                del chunk
                if progress is not None:
                    progress(start + size, rows)
    return demo_result(out, rows, len(TRANSACTIONS_SCHEMA), started)


def read_ground_truth(path: Path) -> dict[str, object]:
    """The ground truth stored in a transactions file's metadata (drivers, formula, coefficients).

    Parameters
    ----------
    path : Path
        A file written by ``write_transactions``.

    Returns
    -------
    dict
        The decoded ``quarry.ground_truth`` JSON.
    """
    metadata = pq.read_metadata(path).metadata or {}
    if GROUND_TRUTH_KEY not in metadata:
        raise QuarryError(
            f"{Path(path).name} has no ground truth in its metadata.",
            "Only files written by write_transactions carry it; regenerate the demo data.",
        )
    return json.loads(metadata[GROUND_TRUTH_KEY])

