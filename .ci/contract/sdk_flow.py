"""The seed flow through the Python client openapi-python-client generated
from openapi/openapi.json: sync products, preview the docs' order, sync it,
retry it with the same idempotency key, read it back, find it in the
change feed."""

import sys

from entrygo_client import AuthenticatedClient
from entrygo_client.api.orders import get_order, list_order_changes, preview_orders_sync, sync_orders
from entrygo_client.api.products import sync_products
from entrygo_client.models import (
    LineItem,
    SyncOrderInput,
    SyncOrderInputMetadataType0,
    SyncOrdersRequest,
    SyncOrdersResult,
    SyncProductInput,
    SyncProductsRequest,
    SyncProductsResult,
    OrderView,
    OrdersPreview,
    PreviewAction,
    PreviewIdempotency,
)

base_url, api_key = sys.argv[1], sys.argv[2]
client = AuthenticatedClient(base_url=base_url, token=api_key)

products = sync_products.sync(
    client=client,
    body=SyncProductsRequest(
        account_id="acc_123",
        items=[SyncProductInput(external_id="python-sku-1", name="Python hoodie", hs_code="610220")],
    ),
)
assert isinstance(products, SyncProductsResult), products
assert products.data[0].id.startswith("prod_")

metadata = SyncOrderInputMetadataType0.from_dict({"source": "warehouse-wms", "wave": "wave-17"})
order = SyncOrdersRequest(
    account_id="acc_123",
    items=[
        SyncOrderInput(
            external_id="python-wms-order-1001",
            destination_country="US",
            destination_region="CA",
            destination_postal_code="94105",
            items=[
                LineItem(product_id="prod_hoodie_001", quantity=2, unit_value_usd=110),
                LineItem(product_id="prod_cap_002", quantity=1, unit_value_usd=35),
            ],
            metadata=metadata,
        )
    ],
)
preview = preview_orders_sync.sync(client=client, body=order, idempotency_key="python-orders-sync-001")
assert isinstance(preview, OrdersPreview), preview
assert preview.idempotency == PreviewIdempotency.NEW, preview
assert preview.data[0].action == PreviewAction.CREATE and preview.data[0].id is None, preview
assert preview.data[0].total_value_usd == 255
first = sync_orders.sync_detailed(client=client, body=order, idempotency_key="python-orders-sync-001")
assert first.status_code == 200 and isinstance(first.parsed, SyncOrdersResult), first
retry = sync_orders.sync_detailed(client=client, body=order, idempotency_key="python-orders-sync-001")
assert retry.status_code == 200 and retry.headers.get("idempotent-replayed") == "true", retry.headers
assert retry.content == first.content
order_id = first.parsed.data[0].id
assert retry.parsed.data[0].id == order_id
assert first.parsed.data[0].total_value_usd == 255

read = get_order.sync(client=client, id=order_id)
assert isinstance(read, OrderView), read
assert read.id == order_id and read.total_value_usd == 255 and read.destination_region == "CA"
again = preview_orders_sync.sync(client=client, body=order, idempotency_key="python-orders-sync-001")
assert again.idempotency == PreviewIdempotency.REPLAY and again.data[0].id == order_id, again

token, seen = None, set()
while True:
    page = list_order_changes.sync(client=client, after=token, limit=200) if token else list_order_changes.sync(client=client, limit=200)
    seen.update(o.id for o in page.data)
    token = page.next_token
    if not page.data:
        break
assert order_id in seen, "the synced order is in the change feed"
print(f"python SDK: seed flow ok (order {order_id}, total {read.total_value_usd})")
