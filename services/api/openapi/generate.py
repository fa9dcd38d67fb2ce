#!/usr/bin/env python3
"""Writes openapi.json. The document is data; this script only keeps it readable to edit.
Run: python3 services/api/openapi/generate.py  (the snapshot test fails if the two differ)."""
import json, os

def ref(name): return {"$ref": f"#/components/schemas/{name}"}
def obj(props, required=(), additional=False, desc=None):
    o = {"type": "object", "properties": props, "additionalProperties": additional}
    if required: o["required"] = list(required)
    if desc: o["description"] = desc
    return o
S = lambda **kw: {"type": "string", **kw}
I = lambda **kw: {"type": "integer", **kw}
opt = lambda schema: {"oneOf": [schema, {"type": "null"}]}
dt = S(format="date-time")
code = S(pattern="^[a-z0-9][a-z0-9_-]{0,63}$")
party_id = S(minLength=1, maxLength=128, pattern="^[!-~]+$")
ext_input = {"type": "object", "additionalProperties": True,
             "description": "Extension fields by their configured names; values typed as the tenant config declares (decimals and dates as strings). In PATCH, null removes a field."}

schemas = {
  "DependencyStatus": obj({"status": S(enum=["up", "down", "degraded"]), "required": {"type": "boolean"},
                           "breaker": S(enum=["closed", "half_open", "open"], description="Circuit breaker state, when one guards the dependency."),
                           "last_error": S(description="The probe's error, else the last error the breaker saw.")},
                          ["status", "required"]),
  "Readiness": obj({"status": S(enum=["ready", "not_ready"]),
                    "dependencies": {"type": "object", "description": "shards (required), and cache, search, cold, bus when wired.",
                                     "additionalProperties": ref("DependencyStatus"), "required": ["shards"]},
                    "tenant_config": S()}, ["status", "dependencies", "tenant_config"]),
  "Money": obj({"minor": I(format="int64", description="Amount in the currency's minor unit (fen, cent)."),
                "currency": S(pattern="^[A-Z]{3}$")}, ["minor", "currency"]),
  "PartyInput": obj({"name": S(minLength=1, maxLength=128), "phone": S(minLength=5, maxLength=40),
                     "address": S(minLength=1, maxLength=512), "region": opt(S(maxLength=32))},
                    ["name", "phone", "address"]),
  "LineInput": obj({"sku": S(minLength=1, maxLength=128), "product_name": S(minLength=1, maxLength=512),
                    "quantity": I(minimum=1, maximum=4294967295), "unit_price_minor": I(format="int64", minimum=0),
                    "unit_weight_grams": opt(I(minimum=0, maximum=4294967295)), "promotion_type": opt(S(maxLength=64)),
                    "extension": ext_input}, ["sku", "product_name", "quantity", "unit_price_minor"]),
  "PromotionInput": obj({"code": S(minLength=1, maxLength=64), "promotion_type": S(minLength=1, maxLength=64),
                         "discount_minor": I(format="int64", minimum=0),
                         "line_nos": {"type": "array", "items": I(minimum=1)}}, ["code", "promotion_type", "discount_minor"]),
  "CouponInput": obj({"code": S(minLength=1, maxLength=64), "discount_minor": I(format="int64", minimum=0)}, ["code", "discount_minor"]),
  "LogisticsInput": obj({"service_product": opt(S(maxLength=64)), "expected_pickup_at": opt(dt),
                         "expected_delivery_at": opt(dt), "waybill_no": opt(S(maxLength=64))}),
  "ChannelInput": obj({"source": opt(S()), "customer_channel": opt(S())}),
  "CreateOrderRequest": obj({
      "business_identity": code, "order_type": code, "buyer_id": party_id,
      "merchant_id": opt(party_id), "external_ref": opt(S(minLength=1, maxLength=128)),
      "currency": opt(S(pattern="^[A-Z]{3}$", description="The tenant's currency (the default); any other is 422.")),
      "lines": {"type": "array", "minItems": 1, "maxItems": 500, "items": ref("LineInput")},
      "promotions": {"type": "array", "items": ref("PromotionInput")},
      "coupons": {"type": "array", "items": ref("CouponInput")},
      "points_used": I(minimum=0, maximum=9223372036854775807), "freight_minor": I(format="int64", minimum=0),
      "logistics": opt(ref("LogisticsInput")), "channel": opt(ref("ChannelInput")),
      "shipper": opt(ref("PartyInput")), "receiver": opt(ref("PartyInput")),
      "remark": opt(S(maxLength=512)), "extension": ext_input},
      ["business_identity", "order_type", "buyer_id", "lines"]),
  "UpdateOrderRequest": obj({
      "merchant_id": opt(party_id), "shipper": opt(ref("PartyInput")), "receiver": opt(ref("PartyInput")),
      "remark": opt(S(maxLength=512)), "logistics": opt(ref("LogisticsInput")), "extension": opt(ext_input),
      "lines": opt({"type": "array", "items": obj({"line_no": I(minimum=1), "extension": ext_input}, ["line_no", "extension"])})}),
  "CancelRequest": obj({"reason": opt(S(maxLength=512))}),
  "PartyView": obj({"name": S(), "phone": S(), "address": S(), "region": S(),
                    "pii": S(enum=["full", "masked", "none"])}, ["name", "phone", "address", "pii"],
                   desc="PII as the caller's role may see it: in clear, masked, or withheld."),
  "LineView": obj({"line_no": I(), "sku": S(), "product_name": S(), "quantity": I(), "unit_price": ref("Money"),
                   "unit_weight_grams": I(), "promotion_type": S(), "payable": ref("Money"),
                   "extension": {"type": "object", "additionalProperties": True}},
                  ["line_no", "sku", "product_name", "quantity", "unit_price", "payable", "extension"]),
  "Order": obj({
      "id": S(pattern="^[0-9]{1,20}$", description="64-bit order id as a decimal string; it embeds the shard bucket."),
      "tenant": S(), "business_identity": S(), "order_type": S(), "status": S(),
      "version": I(minimum=1, description="Also sent as the ETag; send it back in If-Match to change the order."),
      "buyer_id": S(), "merchant_id": S(), "external_ref": S(), "created_at": dt, "updated_at": dt,
      "lines": {"type": "array", "items": ref("LineView")},
      "logistics": obj({"service_product": S(), "expected_pickup_at": dt, "expected_delivery_at": dt, "waybill_no": S()}),
      "marketing": obj({"promotions": {"type": "array", "items": obj({"code": S(), "promotion_type": S(), "discount": ref("Money"),
                                                                       "line_nos": {"type": "array", "items": I()}}, ["code", "promotion_type", "discount"])},
                        "coupons": {"type": "array", "items": obj({"code": S(), "discount": ref("Money")}, ["code", "discount"])},
                        "points_used": I()}, ["points_used"]),
      "finance": obj({"currency": S(), "goods_total": ref("Money"), "discount_total": ref("Money"), "freight": ref("Money"),
                      "payable": ref("Money"),
                      "payments": {"type": "array", "items": obj({"payment_id": S(), "channel": S(), "amount": ref("Money"),
                                                                   "refunded": ref("Money"), "paid_at": dt},
                                                                  ["payment_id", "channel", "amount", "refunded", "paid_at"])}},
                     ["currency", "goods_total", "discount_total", "freight", "payable"]),
      "channel": obj({"source": S(), "customer_channel": S()}),
      "parties": obj({"shipper": ref("PartyView"), "receiver": ref("PartyView")}),
      "operation": obj({"created_by": S(), "updated_by": S(), "source_system": S(), "remark": S(), "cancel_reason": S()}),
      "extension": {"type": "object", "additionalProperties": True, "description": "Extension fields by configured name."}},
      ["id", "tenant", "business_identity", "order_type", "status", "version", "buyer_id", "created_at", "updated_at",
       "lines", "logistics", "marketing", "finance", "channel", "parties", "operation", "extension"]),
  "OrderList": obj({"items": {"type": "array", "items": ref("Order")}, "next_cursor": S()}, ["items"]),
  "SearchResult": obj({"items": {"type": "array", "items": ref("Order")}, "next_cursor": S(),
                       "total": obj({"value": I(minimum=0), "exact": {"type": "boolean"}}, ["value", "exact"]),
                       "degraded": {"type": "boolean", "description": "True when the search index was unavailable and the buyer's shard answered."}},
                      ["items", "degraded"]),
  "Problem": obj({"type": S(format="uri"), "title": S(), "status": I(minimum=400, maximum=599), "detail": S(),
                  "code": S(enum=["invalid_input", "not_found", "already_exists", "conflict", "precondition_failed",
                                  "invalid_transition", "unauthenticated", "forbidden", "rate_limited", "unavailable",
                                  "retryable", "internal"]),
                  "field": S(description="JSON Pointer to the offending member of the request (or /query/…, /header/…).")},
                 ["type", "title", "status", "detail", "code"], desc="RFC 9457 problem details."),
}

def problem(desc): return {"description": desc, "content": {"application/problem+json": {"schema": ref("Problem")}}}
errors = {"401": problem("No or unknown API key."), "403": problem("The key's role may not call this operation."),
          "422": problem("Invalid input; `field` names the offending member."),
          "429": problem("Over the tenant's or the key's rate limit; retry after `Retry-After` seconds."),
          "503": problem("Overloaded, timed out, or a dependency is down; retry after `Retry-After` seconds.")}
order_ok = lambda desc: {"description": desc, "headers": {"ETag": {"schema": S(), "description": "The order's version, quoted."}},
                         "content": {"application/json": {"schema": ref("Order")}}}
id_param = {"name": "id", "in": "path", "required": True, "schema": S(maxLength=64)}

doc = {
  "openapi": "3.1.0",
  "info": {"title": "Order Center API", "version": "1.0.0",
           "description": "Multi-tenant order center. Authenticate with `Authorization: Bearer <api key>`; every resource is scoped to the key's tenant (another tenant's order answers 404). Money is integer minor units."},
  "servers": [{"url": "http://127.0.0.1:8080"}],
  "security": [{"apiKey": []}],
  "paths": {
    "/v1/orders": {
      "post": {"operationId": "createOrder", "summary": "Create an order",
               "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                               "schema": S(minLength=1, maxLength=128, pattern="^[!-~]+$"),
                               "description": "Retries with the same key and body return the first order; the same key with another body is 409. Scoped to (tenant, buyer); for a merchant-scoped API key also to its merchant (another caller's key and body is 409, not a replay), and a replay of an order the caller can no longer see is 404, as a GET of it is."}],
               "requestBody": {"required": True, "content": {"application/json": {"schema": ref("CreateOrderRequest")}}},
               "responses": {"201": {**order_ok("Created (or the first result of an idempotent retry, with `Idempotent-Replayed: true`)."),
                                     "headers": {"ETag": {"schema": S()}, "Location": {"schema": S()},
                                                 "Idempotent-Replayed": {"schema": S(enum=["true"])}}},
                             "409": problem("Idempotency key reused with another body, or external_ref exists for the order's merchant (references are unique per merchant; orders of no merchant share one namespace)."),
                             "415": problem("Content-Type is not JSON."), **errors}},
      "get": {"operationId": "listOrdersByBuyer", "summary": "A buyer's orders, newest first (served from the buyer's shard)",
              "parameters": [{"name": "buyer_id", "in": "query", "required": True, "schema": party_id},
                             {"name": "cursor", "in": "query", "required": False, "schema": S(maxLength=256)},
                             {"name": "limit", "in": "query", "required": False, "schema": I(minimum=1, maximum=100)}],
              "responses": {"200": {"description": "A page of orders.", "content": {"application/json": {"schema": ref("OrderList")}}}, **errors}}},
    "/v1/orders/search": {
      "get": {"operationId": "searchOrders", "summary": "Search the tenant's orders (search index; buyer-scoped searches fall back to the shard when it is down)",
              "description": "Also accepts, for searchable extension fields by configured name: `ext.<name>` (equality) and `ext.<name>.min` / `ext.<name>.max` (ranges on int, decimal and date fields). Encrypted fields match by equality only, through a keyed blind index. A filter on personal data (the party name and phone parameters, an encrypted extension field) confirms a guessed value: only a role whose PII view is `full`, or one the tenant config grants `pii_filters`, may use one; any other is 403 at the parameter. Values no order of the tenant can have (a status of none of its state machines, an unconfigured business identity or order type, a value an enum field does not allow) are 422 at the parameter. Unknown parameters are refused.",
              "parameters": [
                {"name": "status", "in": "query", "required": False, "schema": S(maxLength=512), "description": "Comma-separated statuses."},
                {"name": "business_identity", "in": "query", "required": False, "schema": code},
                {"name": "order_type", "in": "query", "required": False, "schema": code},
                {"name": "buyer_id", "in": "query", "required": False, "schema": party_id},
                {"name": "merchant_id", "in": "query", "required": False, "schema": party_id},
                {"name": "sku", "in": "query", "required": False, "schema": S(maxLength=128)},
                {"name": "q", "in": "query", "required": False, "schema": S(maxLength=100), "description": "Words in product names."},
                {"name": "created_from", "in": "query", "required": False, "schema": dt},
                {"name": "created_to", "in": "query", "required": False, "schema": dt},
                {"name": "payable_min", "in": "query", "required": False, "schema": I(format="int64")},
                {"name": "payable_max", "in": "query", "required": False, "schema": I(format="int64")},
                {"name": "sort", "in": "query", "required": False, "schema": S(enum=["created_at", "-created_at", "updated_at", "-updated_at", "payable", "-payable"])},
                {"name": "cursor", "in": "query", "required": False, "schema": S(maxLength=512)},
                {"name": "limit", "in": "query", "required": False, "schema": I(minimum=1, maximum=100)},
                {"name": "receiver_phone", "in": "query", "required": False, "schema": S(maxLength=40)},
                {"name": "receiver_name", "in": "query", "required": False, "schema": S(maxLength=128)},
                {"name": "shipper_phone", "in": "query", "required": False, "schema": S(maxLength=40)},
                {"name": "shipper_name", "in": "query", "required": False, "schema": S(maxLength=128)}],
              "responses": {"200": {"description": "A page of matching orders.", "content": {"application/json": {"schema": ref("SearchResult")}}}, **errors}}},
    "/v1/orders/{id}": {
      "get": {"operationId": "getOrder", "summary": "Get an order", "parameters": [id_param],
              "responses": {"200": order_ok("The order."), "404": problem("No such order for this tenant."), **errors}},
      "patch": {"operationId": "updateOrder", "summary": "Change parties, remark, logistics or extension fields",
                "parameters": [id_param, {"name": "If-Match", "in": "header", "required": True, "schema": S(),
                                          "description": "The order's current ETag, as answered (\"3\"). Compared strongly (RFC 9110): a weak tag (W/\"3\") never matches."}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref("UpdateOrderRequest")},
                                                               "application/merge-patch+json": {"schema": ref("UpdateOrderRequest")}}},
                "responses": {"200": order_ok("The changed order."), "404": problem("No such order for this tenant."),
                              "409": problem("The order is in a final state."),
                              "400": problem("If-Match is not a well-formed entity tag (quote it: \"3\"), or names several versions."),
                              "412": problem("If-Match does not match the current version (or is a weak tag); nothing changed."),
                              "428": problem("If-Match is missing, or is * (which names no version)."), "415": problem("Content-Type is not JSON."), **errors}}},
    "/v1/orders/{id}/cancel": {
      "post": {"operationId": "cancelOrder", "summary": "Cancel an order (as the tenant's state machine allows)",
               "parameters": [id_param, {"name": "If-Match", "in": "header", "required": False, "schema": S(),
                                         "description": "Cancel only at this version (the ETag as answered, compared strongly); * or none: at any version."}],
               "requestBody": {"required": False, "content": {"application/json": {"schema": ref("CancelRequest")}}},
               "responses": {"200": order_ok("The cancelled order."), "404": problem("No such order for this tenant."),
                             "409": problem("Cancel is not allowed in the current status."),
                             "400": problem("If-Match is not a well-formed entity tag, or names several versions."),
                             "412": problem("If-Match does not match the current version (or is a weak tag)."), **errors}}},
    "/healthz": {"get": {"operationId": "healthz", "security": [], "summary": "Liveness",
                         "responses": {"200": {"description": "Alive.", "content": {"application/json": {"schema": obj({"status": S()}, ["status"])}}}}}},
    "/readyz": {"get": {"operationId": "readyz", "security": [], "summary": "Readiness, per dependency",
                        "description": "The shards are required: 503 when any shard does not answer. The cache, search index, cold store and bus are optional (the service degrades without them) and report up, down or degraded with their circuit breaker state and last error. /healthz is liveness only.",
                        "responses": {"200": {"description": "The shards answer.", "content": {"application/json": {"schema": ref("Readiness")}}},
                                      "503": {"description": "A shard is down.", "content": {"application/json": {"schema": ref("Readiness")}}}}}},
    "/metrics": {"get": {"operationId": "metrics", "security": [], "summary": "Prometheus metrics (requests and latency per tenant and route template, cache, relay lag)",
                         "responses": {"200": {"description": "Prometheus text exposition format 0.0.4.", "content": {"text/plain": {"schema": S()}}}}}},
    "/openapi.json": {"get": {"operationId": "openapi", "security": [], "summary": "This document",
                              "responses": {"200": {"description": "OpenAPI 3.1 document.", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
  },
  "components": {"schemas": schemas,
                 "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "A tenant API key from the tenant config."}}},
}
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "openapi.json"), "w") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False, sort_keys=False)
    f.write("\n")
