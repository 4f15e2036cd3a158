{# Generic tests kept in the project, so no `dbt deps` download is needed. #}

{% test expression_is_true(model, expression, column_name=none) %}
  select * from {{ model }} where not ({{ expression }})
{% endtest %}


{% test unique_combination_of_columns(model, combination_of_columns) %}
  select {{ combination_of_columns | join(', ') }}, count(*) as n
  from {{ model }}
  group by {{ combination_of_columns | join(', ') }}
  having count(*) > 1
{% endtest %}


{#
  Every row of `source_relation` that changed in the run's window (changed_in_window: released
  from a hold in it, or ingested in it) is in the model: a row Silver kept must reach the
  facts (or have been quarantined in Silver with a reason).
#}
{% test has_every_row_of(model, source_relation, key, released_column, ingested_column) %}
  select source_rows.{{ key }}
  from {{ source_relation }} as source_rows
  left anti join {{ model }} as model_rows on source_rows.{{ key }} = model_rows.{{ key }}
  where {{ changed_in_window(released_column, ingested_column) }}
{% endtest %}


{# A type-2 history: every key has exactly one current version. #}
{% test one_current_row_per_key(model, key) %}
  select {{ key }}, count_if(is_current) as current_rows
  from {{ model }}
  group by {{ key }}
  having count_if(is_current) != 1
{% endtest %}


{#
  A mart's figure adds up to what its facts say, per group: sum(`expression`) over the model
  equals sum(`relation_expression`) over the `relation` rows that pass `facts_where`, for every
  value of `group_by` (`relation_group_by` on the facts' side, if named differently) on
  either side; a group missing on one side counts 0 there. With `day_column`
  (`relation_day_column`), only the run's window is compared: the days it rebuilt.
#}
{% test adds_up_to(model, expression, relation, relation_expression, group_by, facts_where='true',
                   relation_group_by=none, day_column=none, relation_day_column=none) %}
  {%- set their_group = relation_group_by or group_by -%}
  {%- set their_day = relation_day_column or day_column -%}
  with here as (
    select {{ group_by }} as grp, sum({{ expression }}) as total
    from {{ model }}
    where {{ in_window(day_column) if day_column else 'true' }}
    group by {{ group_by }}
  ),
  there as (
    select {{ their_group }} as grp, sum({{ relation_expression }}) as total
    from {{ relation }}
    where ({{ facts_where }}) and {{ in_window(their_day) if their_day else 'true' }}
    group by {{ their_group }}
  )
  select coalesce(here.grp, there.grp) as grp, here.total as model_total, there.total as facts_total
  from here full outer join there on here.grp = there.grp
  where coalesce(here.total, 0) != coalesce(there.total, 0)
{% endtest %}
