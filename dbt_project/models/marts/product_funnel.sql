{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['event_date'],
    tags=['daily'],
) }}

with days as (
    {{ touched_days(ref('stg_clickstream'), 'event_date', 'changed_date') }}
    union
    {{ touched_days(ref('stg_orders'), 'order_date', 'changed_date') }}
),

events as (
    select * from {{ ref('stg_clickstream') }}
    where product_id is not null and event_date in (select event_date from days)
),

orders as (
    select * from {{ ref('fct_orders') }}
    where order_date in (select event_date from days)
),

clicks as (
    select
        event_date,
        product_id,
        count_if(event_type = 'view') as views,
        count_if(event_type = 'add_to_cart') as add_to_carts,
        count_if(event_type = 'purchase') as purchase_events
    from events
    group by event_date, product_id
),

purchases as (
    select
        order_date as event_date,
        product_id,
        count(distinct order_id) as orders,
        sum(quantity) as units
    from orders
    group by order_date, product_id
),

final as (
    select
        coalesce(clicks.product_id, purchases.product_id) as product_id,
        coalesce(clicks.views, 0) as views,
        coalesce(clicks.add_to_carts, 0) as add_to_carts,
        coalesce(clicks.purchase_events, 0) as purchase_events,
        coalesce(purchases.orders, 0) as orders,
        coalesce(purchases.units, 0) as units,
        cast(clicks.add_to_carts / nullif(clicks.views, 0) as decimal(9, 4)) as view_to_cart_rate,
        -- A day with add-to-carts and no order converted at 0, not at an unknown rate: an
        -- average over days must count it.
        cast(coalesce(purchases.orders, 0) / nullif(clicks.add_to_carts, 0) as decimal(9, 4))
            as cart_to_order_rate,
        coalesce(clicks.event_date, purchases.event_date) as event_date
    from clicks
    full outer join purchases
        on clicks.event_date = purchases.event_date
        and clicks.product_id = purchases.product_id
)

select * from final
