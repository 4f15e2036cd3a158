{{ config(tags=['current_state']) }}

-- Type 2: one row per version of each customer, rebuilt whole from Silver's versions on every
-- run, so a backfill or a rerun in any order gives the same table.
select
    customer_id,
    customer_name,
    email,
    customer_segment,
    region,
    created_at,
    valid_from,
    valid_to,
    version,
    is_current
from {{ ref('stg_customer_versions') }}
