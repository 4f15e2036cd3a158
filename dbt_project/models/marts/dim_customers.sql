{{ config(tags=['current_state']) }}

with customers as (
    select * from {{ ref('stg_customers') }}
),

sales as (
    select * from {{ ref('fct_orders') }}
    where is_sale
),

lifetime as (
    select
        customer_id,
        min(order_date) as first_sale_date,
        max(order_date) as last_sale_date,
        count(distinct order_id) as lifetime_sales,
        cast(sum(amount) as decimal(18, 2)) as lifetime_revenue
    from sales
    group by customer_id
),

final as (
    select
        customers.customer_id,
        customers.customer_name,
        customers.email,
        customers.customer_segment,
        customers.region,
        customers.created_at,
        lifetime.first_sale_date,
        lifetime.last_sale_date,
        coalesce(lifetime.lifetime_sales, 0) as lifetime_sales,
        coalesce(lifetime.lifetime_revenue, cast(0 as decimal(18, 2))) as lifetime_revenue
    from customers
    left join lifetime on customers.customer_id = lifetime.customer_id
)

select * from final
