{{ config(tags=['current_state']) }}

-- Type 2: one row per version of each product (price and cost as they were).
select
    product_id,
    product_name,
    category,
    unit_price,
    unit_cost,
    valid_from,
    valid_to,
    version,
    is_current
from {{ ref('stg_product_versions') }}
