"""Schemathesis hooks: the data dependencies a schema cannot state.

A sync needs products that exist in the caller's account, the caller's own
accountId, assigned ISO country codes, externalIds unique within a batch,
and a fresh idempotency key per logical write; a list cursor must come from
a previous page. Each hook replaces a value that is already schema-valid
with another schema-valid value that also satisfies those rules, and leaves
schema-invalid values alone, so negative tests stay negative.
"""

import os
import re
import uuid

import schemathesis

ACCOUNT = os.environ["ENTRYGO_ACCOUNT_ID"]
PRODUCTS = os.environ["ENTRYGO_PRODUCT_IDS"].split(",")
CURSORS = {
    "/api/orders": os.environ.get("ENTRYGO_ORDERS_CURSOR"),
    "/api/products": os.environ.get("ENTRYGO_PRODUCTS_CURSOR"),
}
COUNTRIES = ["US", "DE", "FR", "GB", "CA", "JP", "PT", "VN", "BR", "AU", "ZW", "NL"]
TWO_LETTERS = re.compile(r"^[A-Za-z]{2}$")
KEY = re.compile(r"^[!-~]{1,255}$")


def _unique(value: str, limit: int) -> str:
    suffix = "-" + uuid.uuid4().hex[:12]
    return value[: limit - len(suffix)] + suffix


def _country(value):
    if isinstance(value, str) and TWO_LETTERS.match(value):
        code = COUNTRIES[sum(map(ord, value)) % len(COUNTRIES)]
        return code.lower() if value.islower() else code
    return value


@schemathesis.hook
def map_body(ctx, body):
    if not isinstance(body, dict):
        return body
    if isinstance(body.get("accountId"), str) and body["accountId"]:
        body["accountId"] = ACCOUNT
    if isinstance(body.get("idempotencyKey"), str) and KEY.match(body["idempotencyKey"]):
        body["idempotencyKey"] = _unique(body["idempotencyKey"], 255)
    items = body.get("items")
    if not isinstance(items, list):
        return body
    for item in items:
        if not isinstance(item, dict):
            continue
        external_id = item.get("externalId")
        if isinstance(external_id, str) and 1 <= len(external_id) <= 255:
            item["externalId"] = _unique(external_id, 255)
        for field in ("destinationCountry", "countryOfOrigin"):
            if field in item:
                item[field] = _country(item[field])
        lines = item.get("items")
        for i, line in enumerate(lines if isinstance(lines, list) else []):
            if isinstance(line, dict) and isinstance(line.get("productId"), str) and line["productId"]:
                line["productId"] = PRODUCTS[i % len(PRODUCTS)]
    return body


@schemathesis.hook
def map_headers(ctx, headers):
    if headers and isinstance(headers.get("Idempotency-Key"), str) and KEY.match(headers["Idempotency-Key"]):
        headers["Idempotency-Key"] = _unique(headers["Idempotency-Key"], 255)
    return headers


@schemathesis.hook
def map_query(ctx, query):
    cursor = CURSORS.get(ctx.operation.path)
    if query and cursor and isinstance(query.get("cursor"), str) and re.match(r"^[A-Za-z0-9_-]{1,200}$", query["cursor"]):
        query["cursor"] = cursor
    return query
