{{ versions(
    source('silver', 'customers_history'),
    'customer_id',
    ['name as customer_name', 'email', 'segment as customer_segment', 'region', 'created_at'],
) }}
