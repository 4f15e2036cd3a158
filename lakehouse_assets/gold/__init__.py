from lakehouse_assets.gold.assets import DAILY_KEYS, DIMENSION_KEYS, gold_marts, gold_schema_checks
from lakehouse_assets.gold.quality import data_quality_daily

__all__ = ["DAILY_KEYS", "DIMENSION_KEYS", "data_quality_daily", "gold_marts", "gold_schema_checks"]
