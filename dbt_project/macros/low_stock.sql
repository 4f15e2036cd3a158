{#
  The as-of days low_stock_alerts rebuilds: the window's days, the days after an earlier
  order date the window changed (their sales velocity moved), and the days after an earlier
  stock snapshot the window released from a hold, up to the window's last day.
  It reads the Silver sources, not the ephemeral staging models: it also runs in a pre-hook,
  where ephemeral models cannot be inlined.
#}
{% macro low_stock_days() -%}
  {%- set start = window_bound('start_date') -%}
  {%- set end = window_bound('end_date') -%}
  {%- if start is none or end is none -%}
    select distinct snapshot_date as as_of_date from {{ source('silver', 'inventory') }}
  {%- else -%}
    select explode(sequence({{ start }}, date_sub({{ end }}, 1))) as as_of_date
    union
    select explode(sequence(
        order_date,
        least(date_add(order_date, {{ var('velocity_days') }} - 1), date_sub({{ end }}, 1))
    )) as as_of_date
    from ({{ orders_changed_days() }}) as touched
    where order_date < {{ start }}
    union
    {#- stock released from a hold for its product counts from its day on #}
    select explode(sequence(snapshot_date, date_sub({{ end }}, 1))) as as_of_date
    from (
        {{ touched_days(source('silver', 'inventory'), 'snapshot_date', in_window('_released_on')) }}
    ) as released
    where snapshot_date < {{ start }}
  {%- endif -%}
{%- endmacro %}
