"""What the UI shows about every asset beyond its data: owner, layer tag, code references."""

from dagster import CodeReferencesMetadataValue, LocalFileCodeReference

from spark_jobs.settings import REPO_ROOT

OWNERS = ["team:data-platform"]


def layer(name: str) -> dict[str, str]:
    """The asset's tags: its layer, which the UI can filter on (``tag:layer=silver``)."""
    return {"layer": name}


def code_reference(path: str, needle: str, label: str) -> dict:
    """Metadata linking an asset to the line of ``path`` (from the repo root) that starts
    with ``needle``: where the table's logic lives, beside the asset's own definition."""
    file = REPO_ROOT / path
    lines = file.read_text().splitlines()
    line = next((n for n, text in enumerate(lines, 1) if text.lstrip().startswith(needle)), 1)
    reference = LocalFileCodeReference(file_path=str(file), line_number=line, label=label)
    return {"dagster/code_references": CodeReferencesMetadataValue(code_references=[reference])}
