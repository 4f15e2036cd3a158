"""Command-line tools around the lakehouse, not loaded by the code location.

The data generator (``generate``), the end-to-end demo (``demo``), the table report
(``tables``), the UI screenshots (``screenshot``) and the benchmark (``benchmark``), each run
from the repo root as ``python -m tools.<name>`` (the Makefile's targets do), plus the run
launcher the Dagster instance loads (``launcher``, named by ``deployment/dagster.yaml``). They
may import ``lakehouse_assets`` and ``spark_jobs``; ``lakehouse_assets`` never imports them.
"""
