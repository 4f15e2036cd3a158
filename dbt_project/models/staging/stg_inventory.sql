with source as (
    select * from {{ source('silver', 'inventory') }}
),

renamed as (
    select
        snapshot_date,
        product_id,
        warehouse_id,
        stock_level,
        units_sold,
        units_received
    from source
)

select * from renamed
