{{ config(tags=['current_state']) }}

with products as (
    select * from {{ ref('stg_products') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
    where is_sale
),

sold as (
    select
        product_id,
        sum(quantity) as units_sold,
        cast(sum(amount) as decimal(18, 2)) as revenue
    from orders
    group by product_id
),

final as (
    select
        products.product_id,
        products.product_name,
        products.category,
        products.unit_price,
        products.unit_cost,
        cast(
            case
                when products.unit_price = 0 then null
                else 100 * (products.unit_price - products.unit_cost) / products.unit_price
            end
            as decimal(7, 2)
        ) as list_margin_pct,
        coalesce(sold.units_sold, 0) as units_sold,
        coalesce(sold.revenue, cast(0 as decimal(18, 2))) as revenue
    from products
    left join sold on products.product_id = sold.product_id
)

select * from final
