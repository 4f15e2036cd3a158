from lakehouse_assets.silver.assets import build_silver_assets, silver_assets

__all__ = ["build_silver_assets", "silver_assets"]
