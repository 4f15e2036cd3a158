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
        -- the day the order changed, or the day it was released from a hold for its customer
        coalesce(_released_on, _ingest_date) as changed_date,
        status in ('placed', 'shipped', 'delivered') as is_sale
    from source
)

select * from renamed
