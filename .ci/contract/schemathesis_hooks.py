"""Schemathesis hooks: the data dependencies a schema cannot state.

A sync needs the caller's own accountId, products that exist in its
account, assigned ISO country codes, externalIds unique within a batch and a
fresh idempotency key per logical write. Just before each request (in every
phase) this hook replaces values that are already schema-valid with other
schema-valid values that also satisfy those rules; schema-invalid values
stay invalid, and Schemathesis revalidates the case after the hook, so
negative tests stay negative.

No string the server stores may hold U+0000 (PostgreSQL cannot), and
metadata numbers must fit a 64-bit float. The spec says so in the request
bodies' and metadata's descriptions, not as a `pattern` on every string,
which would count as a breaking change for every client although no
PostgreSQL deployment ever stored such a string: so U+0000 is removed from
generated strings and metadata numbers are clamped, like the other values
above. A string of U+0000 alone becomes empty, which the schema judges again.

Two HTTP facts are reconciled too: a header value cannot carry surrounding
whitespace (HTTP strips it, and `requests` refuses a leading one), so such a
value is swapped for another invalid one; and when the Idempotency-Key header
is sent, the body's idempotencyKey is ignored by contract, so it is dropped.
"""

import os
import re
import uuid

import schemathesis

ACCOUNT = os.environ["ENTRYGO_ACCOUNT_ID"]
PRODUCTS = os.environ["ENTRYGO_PRODUCT_IDS"].split(",")
COUNTRIES = ["US", "DE", "FR", "GB", "CA", "JP", "PT", "VN", "BR", "AU", "ZW", "NL"]
TWO_LETTERS = re.compile(r"^[A-Za-z]{2}$")
KEY = re.compile(r"^[!-~]{1,255}$")
HEADER = "Idempotency-Key"


def _unique(value: str, limit: int) -> str:
    suffix = "-" + uuid.uuid4().hex[:12]
    return value[: limit - len(suffix)] + suffix


def _country(value):
    if isinstance(value, str) and TWO_LETTERS.match(value):
        code = COUNTRIES[sum(map(ord, value)) % len(COUNTRIES)]
        return code.lower() if value.islower() else code
    return value


def _fix_header(headers):
    key = headers.get(HEADER)
    if not isinstance(key, str):
        return
    if key != key.strip(" \t"):
        headers[HEADER] = "not a key"  # invalid either way, and sendable
    elif KEY.match(key):
        headers[HEADER] = _unique(key, 255)


def _storable(value):
    """`value` within what every backend stores."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return max(min(value, 10**300), -(10**300))
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {k.replace("\x00", ""): _storable(v) for k, v in value.items()}
    return value


def _fix_body(body, has_header):
    if not isinstance(body, dict):
        return
    if has_header:
        body.pop("idempotencyKey", None)
    elif isinstance(body.get("idempotencyKey"), str) and KEY.match(body["idempotencyKey"]):
        body["idempotencyKey"] = _unique(body["idempotencyKey"], 255)
    if isinstance(body.get("accountId"), str) and body["accountId"]:
        body["accountId"] = ACCOUNT
    items = body.get("items")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        for field, value in list(item.items()):
            if isinstance(value, str):
                item[field] = _storable(value)
        external_id = item.get("externalId")
        if isinstance(external_id, str) and 1 <= len(external_id) <= 255:
            item["externalId"] = _unique(external_id, 255)
        if isinstance(item.get("metadata"), dict):
            item["metadata"] = _storable(item["metadata"])
        for field in ("destinationCountry", "countryOfOrigin"):
            if field in item:
                item[field] = _country(item[field])
        lines = item.get("items")
        for i, line in enumerate(lines if isinstance(lines, list) else []):
            if isinstance(line, dict) and isinstance(line.get("productId"), str) and line["productId"]:
                line["productId"] = PRODUCTS[i % len(PRODUCTS)]


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if isinstance(case.query, dict) and isinstance(case.query.get("externalId"), str):
        case.query["externalId"] = _storable(case.query["externalId"])
    if case.headers:
        _fix_header(case.headers)
    _fix_body(case.body, bool(case.headers) and HEADER in case.headers)
