"""Demo datasets: the real NYC flights 2013 table and a synthetic card-transactions table of any size.

Both are written as zstd-compressed Parquet, atomically (a temporary file in the same folder, then
``os.replace``), so a crash or Ctrl-C never leaves a half-written file where a dataset is expected.

The transactions generator works chunk by chunk, so 100M+ rows need no more memory than one chunk.
Its fraud label depends on a few named columns only (``FRAUD_DRIVERS``); every other column is
noise with respect to the label. That ground truth is also stored in the file's key-value metadata
(key ``quarry.ground_truth``), so feature-importance and leakage checks can be tested against it.
"""
from core.data.demo.files import DEFAULT_TRANSACTION_ROWS, DEMO_DIR, FLIGHTS_FILE, TRANSACTIONS_FILE, DemoResult
from core.data.demo.flights import FLIGHTS_ROWS, FLIGHTS_SCHEMA, write_flights
from core.data.demo.transactions import (
    CHANNELS,
    CUSTOMER_AGE_MISSING,
    DEVICE_SCORE_MISSING,
    DISTANCE_MISSING,
    FRAUD_DRIVERS,
    FRAUD_FORMULA,
    FRAUD_TARGET,
    GENERATOR_KEY,
    GROUND_TRUTH_KEY,
    HOME_COUNTRY,
    MERCHANT_CATEGORIES,
    TRANSACTIONS_SCHEMA,
    read_ground_truth,
    write_transactions,
)

__all__ = [
    "CHANNELS", "CUSTOMER_AGE_MISSING", "DEFAULT_TRANSACTION_ROWS", "DEMO_DIR", "DEVICE_SCORE_MISSING",
    "DISTANCE_MISSING", "FLIGHTS_FILE", "FLIGHTS_ROWS", "FLIGHTS_SCHEMA", "FRAUD_DRIVERS", "FRAUD_FORMULA",
    "FRAUD_TARGET", "GENERATOR_KEY", "GROUND_TRUTH_KEY", "HOME_COUNTRY", "MERCHANT_CATEGORIES",
    "TRANSACTIONS_FILE", "TRANSACTIONS_SCHEMA", "DemoResult", "read_ground_truth", "write_flights",
    "write_transactions",
]
