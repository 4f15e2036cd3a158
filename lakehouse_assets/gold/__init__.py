from lakehouse_assets.gold.assets import gold_current_state, gold_daily

__all__ = ["gold_current_state", "gold_daily"]
