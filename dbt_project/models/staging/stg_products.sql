with source as (
    select * from {{ source('silver', 'products') }}
),

renamed as (
    select
        product_id,
        name as product_name,
        category,
        unit_price,
        unit_cost,
        updated_at
    from source
)

select * from renamed
