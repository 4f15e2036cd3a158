{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    partition_by=['as_of_date'],
    tags=['daily'],
    pre_hook="{% if is_incremental() %}delete from {{ this }} where as_of_date in ({{ low_stock_days() }}){% endif %}",
) }}
{#- The pre-hook empties every day this run recomputes: a day whose alerts all cleared must
    end up empty, and an insert_overwrite only replaces the days it writes rows for. -#}

-- depends_on: {{ source('silver', 'orders') }} (the window's late orders, in low_stock_days)

with days as (
    {{ low_stock_days() }}
),

inventory as (
    select * from {{ ref('stg_inventory') }}
),

latest_stock as (
    -- the last known level of every product and warehouse, as of each day
    select
        days.as_of_date,
        inventory.product_id,
        inventory.warehouse_id,
        max_by(inventory.stock_level, inventory.snapshot_date) as stock_level
    from days
    inner join inventory on inventory.snapshot_date <= days.as_of_date
    group by days.as_of_date, inventory.product_id, inventory.warehouse_id
),

stock as (
    select as_of_date, product_id, sum(stock_level) as stock_on_hand
    from latest_stock
    group by as_of_date, product_id
),

first_sale as (
    select product_id, min(order_date) as first_sale_date
    from {{ ref('fct_orders') }}
    where is_sale
    group by product_id
),

velocity as (
    -- average units per day over the last velocity_days days, or since the product's first
    -- sale when that is more recent (a new product is not diluted by days it did not exist)
    select
        days.as_of_date,
        sales.product_id,
        sum(sales.quantity) / least(
            {{ var('velocity_days') }},
            datediff(days.as_of_date, max(first_sale.first_sale_date)) + 1
        ) as units_per_day
    from days
    inner join {{ ref('fct_orders') }} as sales
        on sales.is_sale
        and sales.order_date > date_sub(days.as_of_date, {{ var('velocity_days') }})
        and sales.order_date <= days.as_of_date
    inner join first_sale on sales.product_id = first_sale.product_id
    group by days.as_of_date, sales.product_id
),

products as (
    select * from {{ ref('stg_products') }}
),

final as (
    select
        stock.product_id,
        products.product_name,
        products.category,
        stock.stock_on_hand,
        cast(velocity.units_per_day as decimal(12, 2)) as units_per_day,
        cast(stock.stock_on_hand / velocity.units_per_day as decimal(12, 1)) as days_of_cover,
        stock.as_of_date
    from stock
    inner join velocity
        on stock.as_of_date = velocity.as_of_date and stock.product_id = velocity.product_id
    inner join products on stock.product_id = products.product_id
    where stock.stock_on_hand < velocity.units_per_day * {{ var('low_stock_days') }}
)

select * from final
