from lakehouse_assets.stream.assets import (
    inventory_micro_batches,
    inventory_stream,
    inventory_stream_job,
    low_stock_now,
)

__all__ = [
    "inventory_stream",
    "inventory_stream_job",
    "inventory_micro_batches",
    "low_stock_now",
]
