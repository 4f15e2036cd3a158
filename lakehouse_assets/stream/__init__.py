from lakehouse_assets.stream.assets import (
    SELF_MAINTAINED,
    inventory_micro_batch_job,
    inventory_micro_batches,
    inventory_stream,
    low_stock_now,
)

__all__ = [
    "SELF_MAINTAINED",
    "inventory_stream",
    "inventory_micro_batch_job",
    "inventory_micro_batches",
    "low_stock_now",
]
