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


{#
  A row changed in the window: released from a hold in it, or ingested in it and never held.
  The rows of in_window('coalesce(released, ingested)'), written so Iceberg can skip files by
  it (a coalesce skips none): by each file's bounds and null counts of the two columns, a
  file whose rows were never held and were ingested before the window is not read (the
  `or` keeps it from pruning whole partitions). A day's run then reads what the window
  wrote, not every day the table holds.
#}
{% macro changed_in_window(released, ingested) -%}
  {%- if window_bound('start_date') is none or window_bound('end_date') is none -%}
    true
  {%- else -%}
    ({{ in_window(released) }} or ({{ released }} is null and {{ in_window(ingested) }}))
  {%- endif -%}
{%- endmacro %}


{# `where`: a filter over the relation's columns (changed_in_window, in_window). #}
{% macro touched_days(relation, day_column, where) -%}
  select distinct {{ day_column }} from {{ relation }} where {{ where }}
{%- endmacro %}


{#
  The days `query` returns (a column of dates), as date literals for among_days, or none
  without a window (every day is built). The query runs when the model does, on its Silver
  sources (an ephemeral model cannot be queried alone); while dbt parses, nothing runs.
#}
{% macro window_days(query) -%}
  {%- if window_bound('start_date') is none or window_bound('end_date') is none -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set days = [] -%}
  {%- if execute -%}
    {%- for value in run_query(query).columns[0].values() if value is not none -%}
      {%- do days.append(date_literal(value)) -%}
    {%- endfor -%}
  {%- endif -%}
  {{ return((days | unique | sort | join(', ')) or 'cast(null as date)') }}
{%- endmacro %}


{#
  `column` is one of `days` (window_days). Given as literals, Iceberg reads only the
  partitions and files that can hold those days (by each file's bounds of the column), where
  `column in (select ...)` read every day of the table at each run: a lakehouse's daily Gold
  grew with its history.
#}
{% macro among_days(column, days) -%}
  {{ 'true' if days is none else column ~ ' in (' ~ days ~ ')' }}
{%- endmacro %}


{# A date from a query's result as a SQL literal (agate reads Spark's dates as dates). #}
{% macro date_literal(value) -%}
  {%- set text = (value | string)[:10] -%}
  {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}$', text) -%}
    {{ exceptions.raise_compiler_error('not a date: ' ~ value) }}
  {%- endif -%}
  {{ return("date'" ~ text ~ "'") }}
{%- endmacro %}
