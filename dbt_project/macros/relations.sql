{#
  How dbt-spark lists a schema's relations, without the statement that fails here. It asks
  `SHOW TABLE EXTENDED` first, which Spark refuses for every Iceberg v2 table (SPARK-33393),
  and falls back to `SHOW TABLES` and a `DESCRIBE` per table when the error says so. Every
  table of this lakehouse is one, so the first statement failed in every run, once per
  schema, and the Thrift server logged each as an ERROR with a stack trace in the run's log
  (a successful run read as a failing one). This answers with that error at once.
#}
{% macro spark__list_relations_without_caching(relation) %}
  {{ exceptions.raise_compiler_error("SHOW TABLE EXTENDED is not supported for v2 tables") }}
{% endmacro %}
