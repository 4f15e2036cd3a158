{{ versions(
    source('silver', 'products_history'),
    'product_id',
    ['name as product_name', 'category', 'unit_price', 'unit_cost'],
) }}
