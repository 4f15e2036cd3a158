from lakehouse_assets.maintenance.assets import (
    build_maintenance_assets,
    iceberg_maintenance,
    weekly_maintenance,
)

__all__ = ["build_maintenance_assets", "iceberg_maintenance", "weekly_maintenance"]
