{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['order_date'],
    tags=['daily'],
) }}

with orders as (
    select * from {{ ref('stg_orders') }}
    where order_date in ({{ touched_days(ref('stg_orders'), 'order_date', 'changed_date') }})
),

customers as (
    select * from {{ ref('stg_customers') }}
),

products as (
    select * from {{ ref('stg_products') }}
),

final as (
    select
        orders.order_id,
        orders.order_ts,
        orders.customer_id,
        orders.product_id,
        customers.customer_segment,
        customers.region,
        products.category,
        orders.status,
        orders.is_sale,
        orders.quantity,
        orders.amount,
        products.unit_cost,
        cast(products.unit_cost * orders.quantity as decimal(14, 2)) as cost,
        cast(orders.amount - products.unit_cost * orders.quantity as decimal(14, 2)) as profit,
        orders.order_date
    from orders
    inner join customers on orders.customer_id = customers.customer_id
    inner join products on orders.product_id = products.product_id
)

select * from final
