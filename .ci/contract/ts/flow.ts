// The seed flow through a TypeScript client: types from openapi-typescript,
// requests through openapi-fetch. `tsc` type-checks it against the spec
// before it runs.
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

const [baseUrl, apiKey] = process.argv.slice(2);
if (!baseUrl || !apiKey) throw new Error("usage: flow.js BASE_URL API_KEY");
const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${apiKey}` } });

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${what}`);
}

const products = await client.POST("/api/products/sync", {
  body: { accountId: "acc_123", items: [{ externalId: "ts-sku-1", name: "TS cap", countryOfOrigin: "PT" }] },
});
check(products.data?.data[0]?.id.startsWith("prod_"), "product synced");

const order = {
  accountId: "acc_123",
  items: [
    {
      externalId: "ts-wms-order-1001",
      destinationCountry: "US",
      destinationRegion: "CA",
      destinationPostalCode: "94105",
      items: [
        { productId: "prod_hoodie_001", quantity: 2, unitValueUsd: 110 },
        { productId: "prod_cap_002", quantity: 1, unitValueUsd: 35 },
      ],
      metadata: { source: "warehouse-wms", wave: "wave-17" },
    },
  ],
};
const params = { header: { "Idempotency-Key": "ts-orders-sync-001" } };
const preview = await client.POST("/api/orders/sync/preview", { params, body: order });
check(preview.data?.idempotency === "new", `preview: ${preview.response.status}`);
check(preview.data.data[0]?.action === "create" && preview.data.data[0].id === null, "preview: create");
const first = await client.POST("/api/orders/sync", { params, body: order });
check(first.response.status === 200 && first.data, `first sync: ${first.response.status}`);
const retry = await client.POST("/api/orders/sync", { params, body: order });
check(retry.response.headers.get("idempotent-replayed") === "true", "retry replayed");
const id = first.data.data[0]?.id;
check(id && retry.data?.data[0]?.id === id, "same order id on retry");
check(first.data.data[0]?.totalValueUsd === 255, "total 255");

const read = await client.GET("/api/orders/{id}", { params: { path: { id } } });
check(read.data?.id === id && read.data.totalValueUsd === 255, "read back");
const listed = await client.GET("/api/orders", { params: { query: { externalId: "ts-wms-order-1001" } } });
check(listed.data?.data[0]?.id === id && listed.data.nextCursor === null, "listed by externalId");
const replayPreview = await client.POST("/api/orders/sync/preview", { params, body: order });
check(replayPreview.data?.idempotency === "replay" && replayPreview.data.data[0]?.id === id, "preview: replay");
let after: string | undefined;
let found = false;
for (;;) {
  const page = await client.GET("/api/orders/changes", { params: { query: { limit: 200, ...(after ? { after } : {}) } } });
  check(page.data, `changes: ${page.response.status}`);
  found ||= page.data.data.some((o) => o.id === id);
  after = page.data.nextToken;
  if (page.data.data.length === 0) break;
}
check(found, "the synced order is in the change feed");
console.log(`typescript SDK: seed flow ok (order ${id}, total ${read.data.totalValueUsd})`);
