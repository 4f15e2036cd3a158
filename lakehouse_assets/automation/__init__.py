from lakehouse_assets.automation.sensors import quality_after_failure, quality_after_success

__all__ = ["quality_after_failure", "quality_after_success"]
