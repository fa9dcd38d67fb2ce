//! The JSON Schema of the tenant config file (version 1), for editors and for the loader's
//! first, structural pass (it reports every unknown key and wrong type at once, with paths).
//!
//! The committed copy `schema/tenant-config.v1.schema.json` is checked against
//! [`json_schema`] by a test, and every example and fixture is validated against it. Rules that
//! need context (duplicate slots, enum values vs constraints, roles referenced by keys, state
//! machine checks) are the loader's, not the schema's.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::types::{DataTarget, Endpoint};

/// The `$id` of the version 1 schema.
pub const SCHEMA_ID_V1: &str = "https://ordercenter.dev/schema/tenant-config.v1.schema.json";

/// `[a-z0-9_-]`, starting with a letter or digit: tenant ids, identities, order types,
/// states, events, roles, key ids, shard groups.
const CODE_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";
const TENANT_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,31}$";
const FIELD_NAME_PATTERN: &str = "^[a-z][a-z0-9_]{0,63}$";
const SLOT_PATTERN: &str = "^((order|line)\\.ext_[0-9]{1,2}|kv:(order|product|logistics|marketing|finance|channel|party|operation)/[a-z0-9_.-]{1,64})$";
const SHA256_PATTERN: &str = "^[0-9a-fA-F]{64}$";

/// The JSON Schema (draft 2020-12) of the current format version.
pub fn json_schema() -> Value {
    json_schema_v1()
}

/// The JSON Schema (draft 2020-12) of format version 1.
pub fn json_schema_v1() -> Value {
    let endpoints: Vec<&str> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
    let data_targets: Vec<&str> = DataTarget::ALL.iter().map(|t| t.as_str()).collect();
    let after_sale_types: Vec<&str> = oc_model::aftersale::AfterSaleType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID_V1,
        "title": "Order Center tenant config, version 1",
        "description": "One file per tenant: API keys, roles, limits, business identities with their state machines, order types and extension fields.",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "tenant", "currency", "rate_limits", "shard_policy", "retention"],
        "properties": {
            "version": { "const": 1, "description": "Format version of this file." },
            "tenant": { "type": "string", "pattern": TENANT_PATTERN, "description": "Tenant id: the unit of isolation." },
            "display_name": { "type": "string", "minLength": 1 },
            "currency": { "type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code of the tenant's default currency." },
            "api_keys": { "type": "array", "items": { "$ref": "#/$defs/api_key" } },
            "roles": {
                "type": "object",
                "propertyNames": { "pattern": CODE_PATTERN },
                "additionalProperties": { "$ref": "#/$defs/role" }
            },
            "rate_limits": { "$ref": "#/$defs/rate_limits" },
            "shard_policy": { "$ref": "#/$defs/shard_policy" },
            "retention": { "$ref": "#/$defs/retention" },
            "exports": { "$ref": "#/$defs/exports" },
            "after_sales": { "$ref": "#/$defs/after_sales" },
            "business_identities": {
                "type": "object",
                "propertyNames": { "pattern": CODE_PATTERN },
                "additionalProperties": { "$ref": "#/$defs/business_identity" }
            }
        },
        "$defs": {
            "code": { "type": "string", "pattern": CODE_PATTERN },
            "slot": {
                "type": "string",
                "pattern": SLOT_PATTERN,
                "description": "order.ext_NN or line.ext_NN (a reserved column, 01..20), or kv:<domain>/<key> (a KV identifier)."
            },
            "api_key": {
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "role", "sha256"],
                "properties": {
                    "id": { "$ref": "#/$defs/code", "description": "Key id, shown in logs." },
                    "role": { "$ref": "#/$defs/code" },
                    "sha256": { "type": "string", "pattern": SHA256_PATTERN, "description": "Hex SHA-256 of the secret key; never the key itself." },
                    "merchant": { "type": "string", "pattern": "^[!-~]{1,128}$", "description": "Scope the key to one merchant: it sees and changes only that merchant's orders (others answer 404), its searches are filtered to it, and its creates are that merchant's. Its role may not grant orders.list (buyer lists span merchants)." },
                    "description": { "type": "string" }
                }
            },
            "role": {
                "type": "object",
                "additionalProperties": false,
                "required": ["endpoints", "pii"],
                "properties": {
                    "endpoints": { "type": "array", "items": { "enum": endpoints }, "uniqueItems": true },
                    "pii": { "enum": ["full", "masked", "none"], "description": "What the role sees of personal data." },
                    "pii_filters": { "type": "boolean", "default": false, "description": "Let a role whose pii is masked or none filter searches by personal data (party names and phones, encrypted extension fields). Such a filter confirms a guessed value; without this grant only pii: full roles may use one (403)." }
                }
            },
            "rate_limit": {
                "type": "object",
                "additionalProperties": false,
                "required": ["per_second", "burst"],
                "properties": {
                    "per_second": { "type": "integer", "minimum": 1, "maximum": 4294967295u64 },
                    "burst": { "type": "integer", "minimum": 1, "maximum": 4294967295u64 }
                }
            },
            "rate_limits": {
                "type": "object",
                "additionalProperties": false,
                "required": ["per_second", "burst"],
                "properties": {
                    "per_second": { "type": "integer", "minimum": 1, "maximum": 4294967295u64 },
                    "burst": { "type": "integer", "minimum": 1, "maximum": 4294967295u64 },
                    "per_key": {
                        "type": "object",
                        "propertyNames": { "pattern": CODE_PATTERN },
                        "additionalProperties": { "$ref": "#/$defs/rate_limit" }
                    }
                }
            },
            "shard_policy": {
                "type": "object",
                "additionalProperties": false,
                "required": ["key", "shard_group"],
                "properties": {
                    "key": { "enum": ["buyer_id", "merchant_id"] },
                    "shard_group": { "$ref": "#/$defs/code" }
                }
            },
            "exports": {
                "type": "object",
                "additionalProperties": false,
                "description": "Analytics exports (POST /v1/exports, ordercenter export).",
                "properties": {
                    "pii": {
                        "enum": ["dropped", "masked", "token"],
                        "description": "What an export writes for personal data unless a role with pii: full asks for plaintext: the column left out (default), the mask, or the blind-index token (equal values, equal tokens)."
                    }
                }
            },
            "after_sales": {
                "type": "object",
                "additionalProperties": false,
                "description": "After-sales (refund only, return and refund, exchange, repair): who reviews applications and each type's state machine. Absent or partial: the defaults (merchant review; the machines in AFTERSALES docs).",
                "properties": {
                    "review_routing": {
                        "type": "object",
                        "additionalProperties": false,
                        "description": "Who reviews an application from each channel. A merchant's own application is always approved at once.",
                        "properties": {
                            "user": { "enum": ["merchant", "customer_service"], "default": "merchant", "description": "Reviewer of an application the business line makes on the buyer's behalf." },
                            "customer_service": { "enum": ["merchant", "customer_service"], "default": "merchant", "description": "Reviewer of customer service's own application." }
                        }
                    },
                    "state_machines": {
                        "type": "object",
                        "description": "A machine per after-sale type, checked like an order machine and for what the core fires by name: initial `applied`; applied --approve--> approved, applied --reject--> rejected, rejected --appeal--> appealed, appealed --approve--> approved, appealed --reject--> a terminal status; a refunding type also --refund--> refunding and refunding --complete--> completed (terminal).",
                        "propertyNames": { "enum": after_sale_types },
                        "additionalProperties": { "$ref": "#/$defs/after_sale_machine" }
                    }
                }
            },
            "after_sale_machine": {
                "type": "object",
                "additionalProperties": false,
                "required": ["initial", "states", "terminal", "transitions"],
                "properties": {
                    "initial": { "$ref": "#/$defs/code" },
                    "states": { "type": "array", "items": { "$ref": "#/$defs/code" } },
                    "terminal": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/code" } },
                    "transitions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["from", "event", "to"],
                            "properties": {
                                "from": { "$ref": "#/$defs/code" },
                                "event": { "$ref": "#/$defs/code" },
                                "to": { "$ref": "#/$defs/code" }
                            }
                        }
                    }
                }
            },
            "retention": {
                "type": "object",
                "additionalProperties": false,
                "required": ["hot_days"],
                "properties": {
                    "hot_days": { "type": "integer", "minimum": 1, "maximum": 36500 }
                }
            },
            "business_identity": {
                "type": "object",
                "additionalProperties": false,
                "required": ["state_machine", "order_types"],
                "properties": {
                    "description": { "type": "string" },
                    "state_machine": { "$ref": "#/$defs/state_machine" },
                    "order_types": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": { "pattern": CODE_PATTERN },
                        "additionalProperties": { "$ref": "#/$defs/order_type" }
                    },
                    "inventory": { "$ref": "#/$defs/inventory" }
                }
            },
            "inventory": {
                "type": "object",
                "additionalProperties": false,
                "required": ["mode"],
                "description": "Stock of this identity's orders. Absent: mode none (orders hold no stock).",
                "properties": {
                    "mode": { "enum": ["none", "builtin"], "description": "builtin: placement reserves every line's stock (all or nothing), pay sells it, cancel and timeout release it." },
                    "untracked_skus": { "enum": ["refuse", "allow"], "default": "refuse", "description": "A SKU nobody set stock for: refuse the order (out of stock), or sell it without a reservation." },
                    "accelerator": { "enum": ["none", "redis"], "default": "none", "description": "redis: a Redis admission counter per SKU (rebuilt from SQL when missing) refuses buyers of a sold-out SKU before they reach SQL, several SKUs at once in one script; SQL's conditional decrement stays the truth. Needs the service's Redis." },
                    "hot_skus": { "type": "array", "items": { "type": "string", "minLength": 1, "maxLength": 128 }, "description": "The SKUs the accelerator serves (flash-sale items). Absent: every SKU of the identity." }
                }
            },
            "state_machine": {
                "type": "object",
                "additionalProperties": false,
                "required": ["initial", "states", "terminal", "transitions"],
                "properties": {
                    "initial": { "$ref": "#/$defs/code" },
                    "states": { "type": "array", "items": { "$ref": "#/$defs/code" } },
                    "terminal": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/code" } },
                    "transitions": { "type": "array", "items": { "$ref": "#/$defs/transition" } }
                }
            },
            "transition": {
                "type": "object",
                "additionalProperties": false,
                "required": ["from", "event", "to"],
                "properties": {
                    "from": { "$ref": "#/$defs/code" },
                    "event": { "$ref": "#/$defs/code" },
                    "to": { "$ref": "#/$defs/code" },
                    "event_type": { "type": "string", "pattern": FIELD_NAME_PATTERN, "description": "The CloudEvents type of its outbox event is com.ordercenter.order.<event_type>; default: the target state." },
                    "stock": { "enum": ["none", "confirm", "release"], "description": "What it does to the order's stock reservations. Default: pay confirms, cancel and timeout release, other events nothing." },
                    "data": { "type": "array", "items": { "$ref": "#/$defs/data_field" }, "description": "The data its event accepts (POST /v1/orders/{id}/transitions `data`), kept in the history and the event." }
                }
            },
            "data_field": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name", "type"],
                "properties": {
                    "name": { "type": "string", "pattern": FIELD_NAME_PATTERN },
                    "type": { "enum": ["string", "int", "decimal", "bool", "date", "enum", "json"] },
                    "required": { "type": "boolean", "default": false },
                    "values": { "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1 }, "description": "Allowed values; enum fields only." },
                    "constraints": { "type": ["object", "boolean"], "description": "A JSON Schema applied to the value's JSON form." },
                    "into": { "enum": data_targets, "description": "Also write the value into this order field (string and enum data only)." },
                    "description": { "type": "string" }
                }
            },
            "order_type": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "description": { "type": "string" },
                    "fields": { "type": "array", "items": { "$ref": "#/$defs/field" } },
                    "retired_slots": {
                        "type": "array",
                        "items": { "$ref": "#/$defs/slot" },
                        "description": "Slots that once held a removed field: reserved forever, never reusable."
                    },
                    "payment_window_seconds": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 2592000,
                        "description": "How long a new order may wait for payment; then the timeout worker fires `timeout` (which the initial state must allow). Absent: no deadline."
                    },
                    "receiver_required": {
                        "type": "boolean",
                        "default": false,
                        "description": "Whether an order of this type needs a receiver (name, phone, address) to be created: shipped goods do, a virtual good or a service does not."
                    },
                    "partial_payments": {
                        "type": "boolean",
                        "default": false,
                        "description": "Whether an order of this type may be paid in parts (a pre-sale's deposit, then the balance): `POST /v1/orders/{id}/payments` then takes an `amount` up to what is left to pay, and the order is paid when its captured payments add up to its payable amount. Default: one payment of everything left to pay."
                    },
                    "remark": {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "encrypted": { "type": "boolean", "default": false, "description": "Seal the free-text remark (it often holds phone numbers): stored, indexed and published only as ciphertext, shown by role like other personal data (full, masked, absent). Not searchable. Applies to remarks written from then on." }
                        }
                    }
                }
            },
            "field": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name", "type", "slot"],
                "properties": {
                    "name": { "type": "string", "pattern": FIELD_NAME_PATTERN },
                    "type": { "enum": ["string", "int", "decimal", "bool", "date", "enum", "json"] },
                    "slot": { "$ref": "#/$defs/slot" },
                    "required": { "type": "boolean", "default": false },
                    "searchable": { "type": "boolean", "default": false, "description": "Encrypted fields are searchable by equality only (blind index)." },
                    "encrypted": { "type": "boolean", "default": false },
                    "values": { "type": "array", "minItems": 1, "items": { "type": "string", "minLength": 1 }, "description": "Allowed values; enum fields only." },
                    "constraints": { "type": ["object", "boolean"], "description": "A JSON Schema applied to the value's JSON form (decimals and dates as strings)." },
                    "description": { "type": "string" },
                    "examples": { "type": "array", "description": "Values that must pass validation (checked at load)." }
                }
            }
        }
    })
}

/// The compiled version 1 schema, built once.
pub(crate) fn validator_v1() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        // the schema is a constant of this crate, covered by tests: failing here is a bug
        jsonschema::validator_for(&json_schema_v1()).expect("the built-in v1 schema compiles")
    })
}
