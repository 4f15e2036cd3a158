{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['order_date'],
    tags=['daily'],
) }}

{#- The days to rebuild: those whose orders changed in the window and, since a customer that
    arrived or changed in the window counts in every segment size from the day it was
    created, the days with orders from then up to the window's end. Found as literals first
    (window_days), so each read of Silver orders keeps to the files that can hold them. -#}
{%- set since = window_days('select to_date(min(created_at)) from ' ~ source('silver', 'customers')
                            ~ ' where ' ~ in_window('_ingest_date')) %}
{%- set days = window_days(orders_changed_days() ~ ' union select order_date from '
                           ~ source('silver', 'orders') ~ ' where order_date >= ' ~ since
                           ~ ' and order_date < ' ~ window_bound('end_date')) %}

with days as (
    {%- if days is none %}
    {{ orders_changed_days() }}
    {%- else %}
    select explode(array({{ days }})) as order_date
    {%- endif %}
),

customers as (
    select * from {{ ref('stg_customers') }}
),

customer_versions as (
    select * from {{ ref('stg_customer_versions') }}
),

sales as (
    -- In the segment the customer had at the end of the day, as the sizes below: a customer
    -- who changed segment after ordering counts once, in one segment (agg_daily_sales keeps
    -- each sale's segment at its order time).
    select
        facts.order_date,
        facts.order_id,
        facts.customer_id,
        facts.amount,
        coalesce(versions.customer_segment, facts.customer_segment) as customer_segment
    from {{ ref('fct_orders') }} as facts
    left join customer_versions as versions
        on facts.customer_id = versions.customer_id
        and {{ valid_at('versions', 'cast(date_add(facts.order_date, 1) as timestamp)') }}
    where facts.is_sale and {{ among_days('facts.order_date', days) }}
),

segment_sizes as (
    -- Each customer in the segment it had at the end of the day (type 2), so a later change
    -- of segment does not restate the day's sizes.
    select
        days.order_date,
        coalesce(versions.customer_segment, customers.customer_segment) as customer_segment,
        count(*) as segment_customers
    from days
    inner join customers on to_date(customers.created_at) <= days.order_date
    left join customer_versions as versions
        on customers.customer_id = versions.customer_id
        and {{ valid_at('versions', 'cast(date_add(days.order_date, 1) as timestamp)') }}
    group by
        days.order_date,
        coalesce(versions.customer_segment, customers.customer_segment)
),

activity as (
    select
        order_date,
        customer_segment,
        count(distinct customer_id) as active_customers,
        count(distinct order_id) as sales,
        cast(sum(amount) as decimal(18, 2)) as revenue
    from sales
    group by order_date, customer_segment
),

final as (
    select
        segment_sizes.customer_segment,
        segment_sizes.segment_customers,
        coalesce(activity.active_customers, 0) as active_customers,
        coalesce(activity.sales, 0) as sales,
        coalesce(activity.revenue, cast(0 as decimal(18, 2))) as revenue,
        cast(activity.revenue / activity.active_customers as decimal(18, 2))
            as revenue_per_active_customer,
        segment_sizes.order_date
    from segment_sizes
    left join activity
        on segment_sizes.order_date = activity.order_date
        and segment_sizes.customer_segment = activity.customer_segment
)

select * from final
