from lakehouse_assets.bronze.assets import bronze_assets, build_bronze_assets

__all__ = ["bronze_assets", "build_bronze_assets"]
