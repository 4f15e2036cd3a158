{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['event_date'],
    tags=['daily'],
) }}

{#- The days whose clicks or orders changed in the window. -#}
{%- set days = window_days(clicks_changed_days() ~ ' union ' ~ orders_changed_days()) %}

with events as (
    select * from {{ ref('stg_clickstream') }}
    where product_id is not null and {{ among_days('event_date', days) }}
),

orders as (
    select * from {{ ref('fct_orders') }}
    where {{ among_days('order_date', days) }}
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
