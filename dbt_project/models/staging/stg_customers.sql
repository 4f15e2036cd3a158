with source as (
    select * from {{ source('silver', 'customers') }}
),

renamed as (
    select
        customer_id,
        name as customer_name,
        email,
        segment as customer_segment,
        region,
        created_at,
        updated_at
    from source
)

select * from renamed
