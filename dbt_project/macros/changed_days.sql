{#
  The days a window changed in the Silver fact sources: an order belongs to the day it was
  placed, a click to the day it happened, whenever it was ingested or released from a hold.
#}
{% macro orders_changed_days() -%}
  {{ touched_days(source('silver', 'orders'), 'order_date',
                  changed_in_window('_released_on', '_ingest_date')) }}
{%- endmacro %}


{% macro clicks_changed_days() -%}
  {{ touched_days(source('silver', 'clickstream'), 'event_date',
                  changed_in_window('_released_on', 'ingest_date')) }}
{%- endmacro %}
