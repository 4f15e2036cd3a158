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
