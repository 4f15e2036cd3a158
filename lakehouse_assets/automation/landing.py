"""Sensors on landing-zone arrivals: one run per affected day, exactly once per object version.

The landing zone is an S3 bucket (listed through dagster-aws's ``S3Resource``) or, by default,
a local folder. The cursor remembers every object's version (ETag, or mtime and size), so a
repeat is harmless and an object that arrives late, out of order, or rewritten is picked up.
"""

import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    ConfigurableResource,
    DefaultSensorStatus,
    EnvVar,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)
from dagster_aws.s3 import S3Resource
from pydantic import Field

from spark_jobs.registry import SOURCES, Source, landing_feeds
from spark_jobs.settings import Settings
from spark_jobs.storage import LandingZone, day_of_object

CLOCK_SLACK_S = 2.0


@dataclass(frozen=True)
class LandedObject:
    key: str  # relative to the landing root: <source>/<YYYY-MM-DD>/<file>.jsonl
    version: str
    modified: float = 0.0  # epoch seconds


class LandingResource(ConfigurableResource):
    """Lists the landing zone the arrival sensors watch: a local folder or an S3 prefix.

    Configured once, from the settings the code location loads with (``LAKEHOUSE_LANDING``,
    ``LAKEHOUSE_S3_ENDPOINT_URL``, the AWS region); the S3 keys are ``EnvVar``s, resolved when
    a tick runs, so the UI shows their names, never their values.
    """

    uri: str = Field(description="The landing zone: a folder, or s3://bucket/prefix.")
    s3: S3Resource = Field(
        default_factory=S3Resource, description="The S3 client, for an s3:// landing zone."
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> "LandingResource":
        def secret(name: str, value: str) -> str | None:
            return EnvVar(name) if value else None

        return cls(
            uri=settings.landing,
            s3=S3Resource(
                endpoint_url=settings.s3_endpoint_url or None,
                region_name=settings.s3_region,
                aws_access_key_id=secret("AWS_ACCESS_KEY_ID", settings.s3_access_key),
                aws_secret_access_key=secret("AWS_SECRET_ACCESS_KEY", settings.s3_secret_key),
            ),
        )

    def list(self, source: str) -> list[LandedObject]:
        zone = LandingZone(self.uri)
        if not zone.is_s3:
            return _list_local(zone, source)
        bucket, _, prefix = zone.root.partition("/")
        base = f"{prefix}/" if prefix else ""
        out = []
        pages = self.s3.get_client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=bucket, Prefix=f"{base}{source}/"):
            for item in page.get("Contents", []):
                key, etag = item["Key"][len(base) :], item["ETag"].strip('"')
                out.append(LandedObject(key, etag, item["LastModified"].timestamp()))
        return out


def _list_local(zone: LandingZone, source: str) -> list[LandedObject]:
    out = []
    for folder, _, files in os.walk(os.path.join(zone.root, source)):
        for name in files:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            key = os.path.relpath(path, zone.root).replace(os.sep, "/")
            out.append(LandedObject(key, f"{stat.st_mtime_ns}-{stat.st_size}", stat.st_mtime))
    return out


def plan_runs(
    objects: list[LandedObject],
    seen: dict[str, str],
    source: str,
    built_at: Callable[[str], float | None] = lambda day: None,
) -> tuple[list[RunRequest], dict[str, str]]:
    """Run requests for days with new or changed objects, and the cursor after them.

    ``built_at(day)`` is when the day's Bronze partition was last materialised: an object
    older than that is already in Bronze (say, `make demo` ran before the sensor ever ticked)
    and is only remembered, not run again.
    """
    changed: dict[str, list[LandedObject]] = defaultdict(list)
    remembered: dict[str, str] = {}
    for obj in objects:
        day = day_of_object(obj.key)
        if day is None or seen.get(obj.key) == obj.version:
            continue
        built = built_at(day.isoformat())
        # S3 times have one-second resolution: only an object clearly older than the build
        # is taken as already in Bronze.
        if built is not None and obj.modified + CLOCK_SLACK_S < built:
            remembered[obj.key] = obj.version
        else:
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
    cursor = {**seen, **remembered, **{o.key: o.version for objs in changed.values() for o in objs}}
    return requests, cursor


def arrival_job(source: Source):
    table = source.bronze
    return define_asset_job(
        f"{source.name}_arrival",
        selection=AssetSelection.assets(AssetKey(["bronze", table])).downstream(),
        description=f"Bronze {table} and everything downstream, the day's quality score "
        "included, for a day whose files landed.",
    )


def build_arrival_jobs(registered: tuple[Source, ...] = SOURCES) -> dict:
    """One job per landing feed of the registry: its Bronze table and all downstream of it."""
    return {s.name: arrival_job(s) for s in landing_feeds(registered)}


def landing_sensor(feed: Source, job) -> SensorDefinition:
    source = feed.name

    @sensor(
        name=f"{source}_landed",
        job=job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Runs the {source} assets for each day with new or changed landing files.",
    )
    def _sensor(context: SensorEvaluationContext, landing: LandingResource):
        seen = json.loads(context.cursor) if context.cursor else {}
        objects = landing.list(source)
        asset_key = AssetKey(["bronze", feed.bronze])

        def built_at(day: str) -> float | None:
            event = context.instance.get_latest_materialization_event(asset_key)
            if event is None:
                return None  # never built: nothing to compare with
            records = context.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=asset_key, asset_partitions=[day]), limit=1
            ).records
            return records[0].timestamp if records else None

        requests, cursor = plan_runs(objects, seen, source, built_at)
        if not requests:
            return SensorResult(
                skip_reason=SkipReason(f"no new {source} objects among {len(objects)}"),
                cursor=json.dumps(cursor, sort_keys=True),
            )
        return SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))

    return _sensor


def build_landing_sensors(jobs: dict, registered: tuple[Source, ...] = SOURCES) -> list:
    """One arrival sensor per landing feed, launching that feed's job."""
    return [landing_sensor(s, jobs[s.name]) for s in landing_feeds(registered)]


ARRIVAL_JOBS = build_arrival_jobs()
landing_sensors = build_landing_sensors(ARRIVAL_JOBS)
