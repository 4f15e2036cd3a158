"""Sensors on landing-zone arrivals: one run per affected day, exactly once per object version.

The landing zone is an S3 bucket (listed through dagster-aws's ``S3Resource``) or, by default,
a local folder. The cursor remembers every object's version (ETag, or mtime and size), so a
repeat is harmless and an object that arrives late, out of order, or rewritten is picked up.
"""

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetSelection,
    ConfigurableResource,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)
from dagster_aws.s3 import S3Resource

from lakehouse_assets.jobs import QUALITY_REPORT
from lakehouse_assets.partitions import daily_partitions
from spark_jobs.settings import Settings
from spark_jobs.storage import LandingZone, day_of_object

SOURCES = {"clickstream": "clickstream", "inventory": "inventory_events"}


@dataclass(frozen=True)
class LandedObject:
    key: str  # relative to the landing root: <source>/<YYYY-MM-DD>/<file>.jsonl
    version: str


class LandingResource(ConfigurableResource):
    """Lists the landing zone. S3 goes through ``S3Resource``; endpoints come from the
    environment at tick time (``LAKEHOUSE_LANDING``, ``LAKEHOUSE_S3_ENDPOINT_URL``)."""

    def zone(self) -> LandingZone:
        return LandingZone.of(Settings.from_env())

    def list(self, source: str) -> list[LandedObject]:
        zone = self.zone()
        return _list_s3(zone, source) if zone.is_s3 else _list_local(zone, source)


def _list_s3(zone: LandingZone, source: str) -> list[LandedObject]:
    s3 = S3Resource(
        endpoint_url=zone.endpoint_url or None,
        region_name=zone.region,
        aws_access_key_id=zone.access_key or None,
        aws_secret_access_key=zone.secret_key or None,
    )
    bucket, _, prefix = zone.root.partition("/")
    base = f"{prefix}/" if prefix else ""
    out = []
    pages = s3.get_client().get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=bucket, Prefix=f"{base}{source}/"):
        for item in page.get("Contents", []):
            out.append(LandedObject(item["Key"][len(base) :], item["ETag"].strip('"')))
    return out


def _list_local(zone: LandingZone, source: str) -> list[LandedObject]:
    out = []
    for folder, _, files in os.walk(os.path.join(zone.root, source)):
        for name in files:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            key = os.path.relpath(path, zone.root).replace(os.sep, "/")
            out.append(LandedObject(key, f"{stat.st_mtime_ns}-{stat.st_size}"))
    return out


def plan_runs(
    objects: list[LandedObject], seen: dict[str, str], source: str
) -> tuple[list[RunRequest], dict[str, str]]:
    """Run requests for days with new or changed objects, and the cursor after them."""
    changed: dict[str, list[LandedObject]] = defaultdict(list)
    for obj in objects:
        day = day_of_object(obj.key)
        if day is not None and seen.get(obj.key) != obj.version:
            changed[day.isoformat()].append(obj)
    requests = []
    for day, objs in sorted(changed.items()):
        versions = "|".join(sorted(f"{o.key}@{o.version}" for o in objs))
        digest = hashlib.sha256(versions.encode()).hexdigest()[:16]
        requests.append(
            RunRequest(
                run_key=f"{source}:{day}:{digest}",
                partition_key=day,
                tags={"landing/source": source, "landing/objects": str(len(objs))},
            )
        )
    cursor = {**seen, **{o.key: o.version for objs in changed.values() for o in objs}}
    return requests, cursor


def arrival_job(source: str, table: str):
    return define_asset_job(
        f"{source}_arrival",
        selection=AssetSelection.assets(AssetKey(["bronze", table])).downstream()
        - AssetSelection.assets(QUALITY_REPORT),
        partitions_def=daily_partitions,
        description=f"Bronze {table} and everything downstream, for a day whose files landed.",
    )


ARRIVAL_JOBS = {source: arrival_job(source, table) for source, table in SOURCES.items()}


def landing_sensor(source: str):
    @sensor(
        name=f"{source}_landed",
        job=ARRIVAL_JOBS[source],
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Runs the {source} assets for each day with new or changed landing files.",
    )
    def _sensor(context: SensorEvaluationContext, landing: LandingResource):
        seen = json.loads(context.cursor) if context.cursor else {}
        objects = landing.list(source)
        requests, cursor = plan_runs(objects, seen, source)
        if not requests:
            return SkipReason(f"no new {source} objects among {len(objects)}")
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return _sensor


landing_sensors = [landing_sensor(source) for source in SOURCES]
