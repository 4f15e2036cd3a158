{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['order_date'],
    tags=['daily'],
) }}

with orders as (
    select * from {{ ref('stg_orders') }}
    where {{ among_days('order_date', window_days(orders_changed_days())) }}
),

customers as (
    select * from {{ ref('stg_customers') }}
),

products as (
    select * from {{ ref('stg_products') }}
),

customer_versions as (
    select * from {{ ref('stg_customer_versions') }}
),

product_versions as (
    select * from {{ ref('stg_product_versions') }}
),

final as (
    -- Attributes as of the order's time (type 2), so re-running or backfilling a day later
    -- never restates it with today's segment or cost. A row without any version (a lakehouse
    -- whose history was started after it) takes its current attributes.
    select
        orders.order_id,
        orders.order_ts,
        orders.customer_id,
        orders.product_id,
        coalesce(customer_versions.customer_segment, customers.customer_segment)
            as customer_segment,
        coalesce(customer_versions.region, customers.region) as region,
        coalesce(product_versions.category, products.category) as category,
        orders.status,
        orders.is_sale,
        orders.quantity,
        orders.amount,
        coalesce(product_versions.unit_cost, products.unit_cost) as unit_cost,
        cast(
            coalesce(product_versions.unit_cost, products.unit_cost) * orders.quantity
            as decimal(14, 2)
        ) as cost,
        cast(
            orders.amount
            - coalesce(product_versions.unit_cost, products.unit_cost) * orders.quantity
            as decimal(14, 2)
        ) as profit,
        orders.order_date
    from orders
    inner join customers on orders.customer_id = customers.customer_id
    inner join products on orders.product_id = products.product_id
    left join customer_versions
        on orders.customer_id = customer_versions.customer_id
        and {{ valid_at('customer_versions', 'orders.order_ts') }}
    left join product_versions
        on orders.product_id = product_versions.product_id
        and {{ valid_at('product_versions', 'orders.order_ts') }}
)

select * from final
