"""The UI's GraphQL API serves the graph, the schedule and the sensors (a real webserver)."""

from __future__ import annotations

from tools.screenshot import graphql, webserver

QUERY = """
{
  assetNodes { assetKey { path } groupName }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        location { name }
        schedules { name cronSchedule executionTimezone }
        sensors { name }
        jobs { name }
      }
    }
  }
}
"""


def test_the_ui_serves_groups_schedule_and_sensors():
    with webserver() as url:
        data = graphql(url, QUERY)
    groups = {node["groupName"] for node in data["assetNodes"] if node["groupName"]}
    assert {"bronze", "silver", "gold", "maintenance"} <= groups
    keys = {"/".join(node["assetKey"]["path"]) for node in data["assetNodes"]}
    assert {"bronze/orders", "silver/orders_quarantine", "gold/agg_daily_sales"} <= keys
    [repo] = data["repositoriesOrError"]["nodes"]
    assert repo["location"]["name"] == "lakehouse"
    assert sorted((s["name"], s["cronSchedule"]) for s in repo["schedules"]) == [
        ("daily_lakehouse_at_6", "0 6 * * *"),
        ("iceberg_maintenance_weekly", "0 3 * * 0"),  # Sunday 03:00, before the daily run
    ]
    sensors = {s["name"] for s in repo["sensors"]}
    assert {"clickstream_landed", "inventory_landed", "slack_on_run_failure"} <= sensors
    assert {"daily_lakehouse", "quality_report", "iceberg_maintenance"} <= {
        j["name"] for j in repo["jobs"]
    }
