from lakehouse_assets.bronze.assets import bronze_assets

__all__ = ["bronze_assets"]
