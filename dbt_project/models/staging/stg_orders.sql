with source as (
    select * from {{ source('silver', 'orders') }}
),

renamed as (
    select
        order_id,
        customer_id,
        product_id,
        quantity,
        amount,
        status,
        order_ts,
        order_date,
        updated_at,
        status in ('placed', 'shipped', 'delivered') as is_sale
    from source
)

select * from renamed
