from lakehouse_assets.silver.assets import silver_assets

__all__ = ["silver_assets"]
