"""Jobs: the whole graph for a day (or a range of days, as one run), and the quality report on
its own, for the days whose main run failed before its report step."""

from dagster import AssetKey, AssetSelection, define_asset_job

QUALITY_REPORT = AssetKey(["gold", "data_quality_daily"])
MAINTENANCE = "maintenance"  # the housekeeping group (lakehouse_assets/maintenance)
# The inventory stream's micro-batch assets (lakehouse_assets/stream) carry this tag: their own
# job runs them as files land, never the daily one.
MICRO_BATCH = ("cadence", "micro-batch")

daily_lakehouse = define_asset_job(
    "daily_lakehouse",
    selection=AssetSelection.all()
    - AssetSelection.groups(MAINTENANCE)
    - AssetSelection.tag(*MICRO_BATCH),
    description="Bronze, Silver and Gold for a day, or a range of days in one run, then the "
    "days' quality score.",
)

quality_report = define_asset_job(
    "quality_report",
    selection=AssetSelection.assets(QUALITY_REPORT),
    description="The daily quality score on its own: after a main run that failed before "
    "scoring its days (a sensor starts it), or to score days again.",
)
