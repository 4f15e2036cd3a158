{#
  Type-2 validity from a Silver history table: one row per version of `key`, valid from its
  `updated_at` until the next version's. A version extracted on several days counts once (its
  first extraction), so the result depends only on which versions exist, never on the order
  days were loaded in or re-run.
#}
{% macro versions(relation, key, columns) -%}
  with extracted as (
    select
      *,
      row_number() over (
        partition by {{ key }}, updated_at order by _ingest_date, _run_id
      ) as extraction
    from {{ relation }}
  ),

  distinct_versions as (
    select * from extracted where extraction = 1
  )

  select
    {{ key }},
    {{ columns | join(', ') }},
    updated_at as valid_from,
    lead(updated_at) over (partition by {{ key }} order by updated_at) as valid_to,
    row_number() over (partition by {{ key }} order by updated_at) as version,
    lead(updated_at) over (partition by {{ key }} order by updated_at) is null as is_current
  from distinct_versions
{%- endmacro %}


{#
  The version of `history` (alias) valid at `ts` (an expression over the fact's row): the one
  whose [valid_from, valid_to) holds it, or the first known version for a time before it (the
  history starts with the first extraction; the row existed before).
#}
{% macro valid_at(history, ts) -%}
  {{ ts }} < coalesce({{ history }}.valid_to, timestamp'9999-12-31 00:00:00')
  and ({{ ts }} >= {{ history }}.valid_from or {{ history }}.version = 1)
{%- endmacro %}
