{#
  The days a partitioned model rebuilds: start_date / end_date (exclusive), as vars by hand
  (`dbt build --vars '{start_date: 2026-05-04, end_date: 2026-05-05}'`) or, from Dagster,
  as LAKEHOUSE_WINDOW_START_DATE / LAKEHOUSE_WINDOW_END_DATE. The environment is
  read only when models execute, never while dbt parses: a run's window then changes nothing
  dbt hashes, so dbt reuses its parsed project (partial parsing) instead of re-parsing it all.
  So no ref() or source() may hide behind a window: a model names such a dependency in a
  `-- depends_on:` line, or dbt and Dagster's asset graph would not see it. A window touches the days whose rows changed in it:
  an order updated today belongs to the day it was placed, a late event to the day it
  happened. Those days are rebuilt whole from Silver, so rerunning a window is idempotent
  and a late change reaches the right day.
#}

{% macro window_bound(name) -%}
  {%- set value = var(name) -%}
  {%- if value is none and execute -%}
    {%- set value = env_var('LAKEHOUSE_WINDOW_' ~ name | upper, '') or none -%}
  {%- endif -%}
  {%- if value is none -%}{{ return(none) }}{%- endif -%}
  {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}$', value | string) -%}
    {{ exceptions.raise_compiler_error(name ~ ' must be YYYY-MM-DD, got ' ~ value) }}
  {%- endif -%}
  {{ return("date'" ~ value ~ "'") }}
{%- endmacro %}


{% macro in_window(column) -%}
  {%- set start = window_bound('start_date') -%}
  {%- set end = window_bound('end_date') -%}
  {%- if start is none or end is none -%}
    true
  {%- else -%}
    ({{ column }} >= {{ start }} and {{ column }} < {{ end }})
  {%- endif -%}
{%- endmacro %}


{% macro touched_days(relation, day_column, changed_column) -%}
  select distinct {{ day_column }} from {{ relation }} where {{ in_window(changed_column) }}
{%- endmacro %}
