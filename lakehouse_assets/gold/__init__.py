from lakehouse_assets.gold.assets import gold_current_state, gold_daily, gold_schema_checks
from lakehouse_assets.gold.quality import data_quality_daily

__all__ = ["data_quality_daily", "gold_current_state", "gold_daily", "gold_schema_checks"]
