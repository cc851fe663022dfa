//! The wrk Lua scripts of scenarios S1 to S6 and P.

use serde_json::Value;

/// Data every script shares: the key, product and order IDs, helpers.
pub fn lua_common(
    key: &str,
    products: &[String],
    orders: &[String],
    replay_body: &Value,
) -> String {
    let quote = |v: &[String]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"
key = "{key}"
products = {{{}}}
orders = {{{}}}
replay_body = [[{}]]
counter = 0
math.randomseed(os.time())
tid = tostring(math.random(1, 1000000000))
function setup(thread)
  thread:set("tid", tostring(math.random(1, 1000000000)))
end
function product(i) return products[(i % #products) + 1] end
function order(ext, i, q)
  return string.format('{{"externalId":"%s","destinationCountry":"US","destinationRegion":"CA","items":[{{"productId":"%s","quantity":%d,"unitValueUsd":10.5}},{{"productId":"%s","quantity":2,"unitValueUsd":3}},{{"productId":"%s","quantity":3,"unitValueUsd":0.99}}]}}', ext, product(i), q, product(i + 1), product(i + 2))
end
function post(path, body, idem)
  local headers = {{["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json", ["Idempotency-Key"] = idem}}
  return wrk.format("POST", path, headers, '{{"accountId":"acc_load","items":[' .. body .. ']}}')
end
function sync(body, idem) return post("/api/orders/sync", body, idem) end
"#,
        quote(products),
        quote(orders),
        replay_body["items"][0]
    )
}

pub const S1: &str = r#"
request = function()
  counter = counter + 1
  local ext = "s1-" .. tid .. "-" .. counter
  return sync(order(ext, counter, 1), "k-" .. ext)
end
"#;

pub const S2: &str = r#"
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 1000 do
    parts[i] = order("s2-" .. tid .. "-" .. counter .. "-" .. i, i, 1)
  end
  return sync(table.concat(parts, ","), "k-s2-" .. tid .. "-" .. counter)
end
"#;

pub const S3: &str = r#"
request = function()
  counter = counter + 1
  local i = math.random(0, 9999)
  return sync(order(string.format("seed-%05d", i), i, 2 + counter), "k-s3-" .. tid .. "-" .. counter)
end
"#;

pub const S3U: &str = r#"
request = function()
  counter = counter + 1
  local i = math.random(0, 9999)
  return sync(order(string.format("seed-%05d", i), i, 1), "k-s3u-" .. tid .. "-" .. counter)
end
"#;

pub const S4: &str = r#"
request = function()
  return sync(replay_body, "bench-replay-1")
end
"#;

pub const S5: &str = r#"
request = function()
  local id = orders[math.random(1, #orders)]
  return wrk.format("GET", "/api/orders/" .. id, {["Authorization"] = "Bearer " .. key})
end
"#;

/// Previews of 1,000 orders × 3 lines, as S2's bodies: half of them seeded
/// orders with a new quantity, half new.
pub const P: &str = r#"
request = function()
  counter = counter + 1
  local parts = {}
  for i = 1, 1000 do
    if i % 2 == 0 then
      local s = (counter * 500 + i / 2) % 10000
      parts[i] = order(string.format("seed-%05d", s), s, 2 + counter)
    else
      parts[i] = order("p-" .. tid .. "-" .. counter .. "-" .. i, i, 1)
    end
  end
  return post("/api/orders/sync/preview", table.concat(parts, ","), "k-p-" .. tid .. "-" .. counter)
end
"#;

/// Listing pages of 200 (`GET /api/orders?limit=200`), each thread walking
/// the cursor over the seeded orders, then from the start again.
/// Walks the seeded orders only, as the issue that added S6 defines it:
/// they are the account's first 10,000 IDs, and a walk starts over after
/// the last of them. Earlier scenarios add orders to the same account
/// (about 300,000 after S1 and S2), so a walk of the whole account would
/// measure a larger database in a full sitting than when run alone.
/// `nextCursor` closes the page, so only the body's tail is searched: a
/// pattern scan of the whole page (about 80 KB) took wrk's Lua more CPU
/// than the server spent answering it, on the same two cores.
pub const S6: &str = r#"
cursor = nil
last_seeded = orders[#orders]
request = function()
  local path = "/api/orders?limit=200"
  if cursor then path = path .. "&cursor=" .. cursor end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. key})
end
response = function(status, headers, body)
  cursor = string.match(body, '"nextCursor":"(ord_[%w_]+)"', -200)
  if cursor and cursor >= last_seeded then cursor = nil end
end
"#;
