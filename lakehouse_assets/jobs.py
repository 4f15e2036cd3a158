"""Jobs: the whole graph for a day (or a range of days, as one run)."""

from dagster import AssetSelection, define_asset_job

from lakehouse_assets.partitions import daily_partitions

daily_lakehouse = define_asset_job(
    "daily_lakehouse",
    selection=AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Bronze, Silver and Gold for a day, or a range of days in one run.",
)
