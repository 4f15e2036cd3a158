"""`make tables`: every Iceberg table with its row count, latest snapshot and recent history.

Read through pyiceberg on the same catalog, so it needs no JVM and works while runs are going.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from lakehouse_assets.resources.catalog import open_catalog
from spark_jobs.settings import CATALOG, NAMESPACES, Settings


def describe(history: int) -> None:
    catalog = open_catalog(Settings.from_env())
    for namespace in NAMESPACES:
        tables = sorted(t for _, t in catalog.list_tables(namespace))
        print(f"{CATALOG}.{namespace}: {len(tables)} tables")
        for name in tables:
            table = catalog.load_table(f"{namespace}.{name}")
            snapshot = table.current_snapshot()
            rows = table.scan().count() if snapshot else 0
            spec = ", ".join(f.name for f in table.spec().fields) or "unpartitioned"
            print(f"  {name:<28} {rows:>10,} rows  partitioned by {spec}")
            snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)[-history:]
            for snap in reversed(snapshots):
                when = datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC)
                operation = snap.summary.operation.value if snap.summary else "?"
                summary = snap.summary or {}
                added = summary.get("added-records") or 0
                deleted = summary.get("deleted-records") or 0
                print(
                    f"      {snap.snapshot_id:>20}  {when:%Y-%m-%d %H:%M:%S}  "
                    f"{operation:<9} +{added} -{deleted}"
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--history", type=int, default=3, help="snapshots to show per table")
    describe(parser.parse_args(argv).history)


if __name__ == "__main__":
    main()
