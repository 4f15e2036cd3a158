{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['order_date'],
    tags=['daily'],
) }}

with sales as (
    select * from {{ ref('fct_orders') }}
    where is_sale
        and {{ among_days('order_date', window_days(orders_changed_days())) }}
),

aggregated as (
    select
        category,
        region,
        customer_segment,
        count(distinct order_id) as sales,
        count(distinct customer_id) as unique_customers,
        sum(quantity) as quantity,
        cast(sum(amount) as decimal(18, 2)) as revenue,
        cast(sum(profit) as decimal(18, 2)) as profit,
        order_date
    from sales
    group by order_date, category, region, customer_segment
),

final as (
    select
        category,
        region,
        customer_segment,
        sales,
        unique_customers,
        quantity,
        revenue,
        cast(revenue / sales as decimal(18, 2)) as avg_sale_value,
        profit,
        cast(case when revenue = 0 then null else 100 * profit / revenue end as decimal(7, 2))
            as margin_pct,
        order_date
    from aggregated
)

select * from final
