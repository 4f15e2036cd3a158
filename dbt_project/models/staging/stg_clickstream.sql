with source as (
    select * from {{ source('silver', 'clickstream') }}
),

renamed as (
    select
        event_id,
        user_id as customer_id,
        session_id,
        event_type,
        event_ts,
        event_date,
        product_id,
        order_id
    from source
)

select * from renamed
