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
  Every row of `source_relation` whose change falls in the run's window is in the model
  (`changed_column`: an expression over the source's own columns):
  a row Silver kept must reach the facts (or have been quarantined in Silver with a reason).
#}
{% test has_every_row_of(model, source_relation, key, changed_column) %}
  select source_rows.{{ key }}
  from {{ source_relation }} as source_rows
  left anti join {{ model }} as model_rows on source_rows.{{ key }} = model_rows.{{ key }}
  where {{ in_window(changed_column) }}
{% endtest %}
