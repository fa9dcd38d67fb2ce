//! The scenarios: what one request of each is, and the data they need first.
//!
//! The `mixed` business-line profile, per 100 requests: 20 creates, 60 GETs of hot orders
//! (Zipf over the pool, as buyers and customer service reopen the same recent orders), 15
//! searches with the business line's filters, 5 transitions (cancel of a pending order).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::json;

use crate::engine::Step;
use crate::http::Http;
use crate::orders::{Generator, TENANTS, TenantProfile, Zipf, tenant_of_request};
use crate::stats::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// POST /v1/orders with generated orders.
    Create,
    /// GET /v1/orders/{id} over a pool of orders created first (uniformly).
    Get,
    /// GET /v1/orders/search with the business line's filters over a pool created first.
    Search,
    /// The business-line profile: 20% create, 60% hot GET, 15% search, 5% transitions.
    Mixed,
    /// The mixed profile over every example tenant with its own key and order shapes
    /// (retail 65%, express 35%), reported per tenant.
    MultiTenant,
    /// Create an order (unique buyer), then poll search until it is found: the latency
    /// recorded is commit → visible in search.
    Visibility,
    /// One order through its whole forward flow: create, then `pay`, `ship` (carrier and
    /// waybill), `receive`, `complete`, each with the version just answered as `If-Match`.
    /// One step is one order completed (retail's state machine: `--profile retail`).
    Lifecycle,
    /// Place a one-unit order of one hot SKU whose stock is set first (through the admin
    /// API, enough for any run): every request reserves on the same stock row, the flash
    /// sale case (`--profile retail`, whose orders reserve stock).
    HotSku,
    /// The same one-unit orders of the hot SKU once it is sold out (its stock is set to 0
    /// first): every placement is refused (409 `out_of_stock`), which is this step's
    /// success. With the Redis stock gate (`accelerator: redis`) the refusal comes from the
    /// gate's counter without touching the SKU's row.
    SoldOut,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Create => "create",
            Scenario::Get => "get",
            Scenario::Search => "search",
            Scenario::Mixed => "mixed",
            Scenario::MultiTenant => "multi-tenant",
            Scenario::Visibility => "visibility",
            Scenario::Lifecycle => "lifecycle",
            Scenario::HotSku => "hot-sku",
            Scenario::SoldOut => "sold-out",
        }
    }

    /// Whether the scenario only runs on the retail profile (its state machine and stock).
    pub fn retail_only(self) -> bool {
        matches!(
            self,
            Scenario::Lifecycle | Scenario::HotSku | Scenario::SoldOut
        )
    }

    fn needs_pool(self) -> bool {
        matches!(
            self,
            Scenario::Get | Scenario::Search | Scenario::Mixed | Scenario::MultiTenant
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Get,
    HotGet,
    Search,
    Transition,
    Visibility,
    Lifecycle,
    HotSku,
    SoldOut,
}

/// The example tenant admin key of tenant `retail` (a public test credential): sets the hot
/// SKU's stock.
pub const RETAIL_ADMIN_KEY: &str = "oc_test_retail_admin_0001_a7c3e91f04b25d6e8f3a";

/// The SKU every `hot-sku` request reserves.
pub const HOT_SKU: &str = "HOT-SKU-1";

/// Units of the hot SKU set before a `hot-sku` run: more than any run places.
const HOT_SKU_UNITS: u64 = 1_000_000_000;

/// The events after placement that complete a retail order, with their data.
fn retail_lifecycle(n: u64) -> [(&'static str, serde_json::Value); 4] {
    [
        ("pay", json!({"event": "pay"})),
        (
            "ship",
            json!({"event": "ship", "data": {"carrier": "sf", "waybill_no": format!("SF{n:010}")}}),
        ),
        ("receive", json!({"event": "receive"})),
        ("complete", json!({"event": "complete"})),
    ]
}

/// The operation of mixed request `n`: 20 create, 60 hot GET, 15 search, 5 transition.
fn mixed_op(n: u64) -> Op {
    match (n.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) % 100 {
        0..20 => Op::Create,
        20..80 => Op::HotGet,
        80..95 => Op::Search,
        _ => Op::Transition,
    }
}

/// Orders of one tenant the scenario reads and cancels.
#[derive(Debug, Default)]
struct TenantPool {
    ids: Vec<String>,
    hot: Option<Zipf>,
}

/// The traffic of one scenario against one server.
#[derive(Debug)]
pub struct Traffic {
    http: Http,
    scenario: Scenario,
    tenants: Vec<&'static TenantProfile>,
    generator: Generator,
    pools: HashMap<&'static str, TenantPool>,
    cancelable: Mutex<HashMap<&'static str, Vec<String>>>,
    /// Ids of orders created during the run, kept when `keep_created` is set (the bench
    /// reads them back).
    created: Mutex<Vec<(&'static str, String)>>,
    keep_created: usize,
    /// Distinguishes the idempotency keys and order numbers of runs.
    run: u64,
}

impl Traffic {
    /// `tenant` is used unless the scenario is multi-tenant (then every example tenant).
    pub fn new(http: Http, scenario: Scenario, tenant: &'static TenantProfile) -> Traffic {
        let tenants = if scenario == Scenario::MultiTenant {
            TENANTS.iter().collect()
        } else {
            vec![tenant]
        };
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default();
        Traffic {
            http,
            scenario,
            tenants,
            generator: Generator::default(),
            pools: HashMap::new(),
            cancelable: Mutex::new(HashMap::new()),
            created: Mutex::new(Vec::new()),
            keep_created: 0,
            run,
        }
    }

    /// Every example tenant takes part, by traffic share (the bench's creates).
    pub fn all_tenants(mut self) -> Traffic {
        self.tenants = TENANTS.iter().collect();
        self
    }

    /// Keep up to `count` ids of orders created during the run.
    pub fn keep_created(mut self, count: usize) -> Traffic {
        self.keep_created = count;
        self
    }

    pub fn created(&self) -> Vec<(&'static str, String)> {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Use these orders as the GET pool (instead of creating one).
    pub fn with_pool(mut self, ids: &[(&'static str, String)]) -> Traffic {
        for (tenant, id) in ids {
            self.pools.entry(tenant).or_default().ids.push(id.clone());
        }
        self.finish_pools();
        self
    }

    fn finish_pools(&mut self) {
        let mut cancelable = self.cancelable.lock().unwrap_or_else(|e| e.into_inner());
        for (tenant, pool) in &mut self.pools {
            pool.hot = Some(Zipf::new(pool.ids.len(), 1.0));
            // the cold half of the pool (high ranks) may be cancelled by transitions
            let cold: Vec<String> = pool.ids[pool.ids.len() / 2..].to_vec();
            cancelable.insert(tenant, cold);
        }
    }

    fn tenant_of(&self, n: u64) -> &'static TenantProfile {
        if self.tenants.len() > 1 {
            tenant_of_request(n)
        } else {
            self.tenants[0]
        }
    }

    /// Create the pools the scenario reads (`size` orders in all, split by traffic share),
    /// 16 at a time.
    pub async fn prepare(mut self, size: usize) -> anyhow::Result<Traffic> {
        if self.scenario == Scenario::HotSku {
            self.set_hot_stock().await?;
        }
        if self.scenario == Scenario::SoldOut {
            self.set_hot_stock_to(0).await?;
        }
        if !self.scenario.needs_pool() || size == 0 {
            return Ok(self);
        }
        eprintln!("creating {size} orders for the pool");
        let next = std::sync::atomic::AtomicU64::new(0);
        let ids = Mutex::new(Vec::new());
        let failure = Mutex::new(None::<String>);
        let worker = || async {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= size as u64 {
                    break;
                }
                let number = 1_000_000_000 + i;
                let tenant = self.tenant_of(number);
                match self.create(tenant, number).await {
                    Ok(id) => ids
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((tenant.name, id)),
                    Err(error) => {
                        *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                        break;
                    }
                }
            }
        };
        let workers: Vec<_> = (0..16).map(|_| worker()).collect();
        join_all(workers).await;
        if let Some(error) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            anyhow::bail!("creating the pool: {error}");
        }
        let ids = ids.into_inner().unwrap_or_else(|e| e.into_inner());
        for (tenant, id) in ids {
            self.pools.entry(tenant).or_default().ids.push(id);
        }
        self.finish_pools();
        if matches!(
            self.scenario,
            Scenario::Search | Scenario::Mixed | Scenario::MultiTenant
        ) {
            // the single-node index commits once a second
            tokio::time::sleep(Duration::from_millis(1_500)).await;
        }
        Ok(self)
    }

    /// Set the hot SKU's stock (the units left from an earlier run are replaced).
    pub async fn set_hot_stock(&self) -> anyhow::Result<()> {
        self.set_hot_stock_to(HOT_SKU_UNITS).await
    }

    /// Set the hot SKU's stock to `units` (0: sold out).
    pub async fn set_hot_stock_to(&self, units: u64) -> anyhow::Result<()> {
        let answer = self
            .http
            .call(
                "PUT",
                &format!("/v1/stock/{HOT_SKU}"),
                RETAIL_ADMIN_KEY,
                Some(&json!({ "available": units })),
                &[],
            )
            .await?;
        if answer.status != 200 {
            anyhow::bail!(
                "setting the stock of {HOT_SKU}: {} {}",
                answer.status,
                answer.text()
            );
        }
        Ok(())
    }

    async fn create(&self, tenant: &TenantProfile, n: u64) -> Result<String, String> {
        let (order, _) = self.generator.order(tenant, n.wrapping_add(self.run));
        let idempotency = format!("lt-{}-{n}", self.run);
        let answer = self
            .http
            .call(
                "POST",
                "/v1/orders",
                tenant.key,
                Some(&order),
                &[("idempotency-key", &idempotency)],
            )
            .await
            .map_err(|e| e.to_string())?;
        if answer.status != 201 {
            return Err(format!("{} {}", answer.status, answer.text()));
        }
        answer.id().ok_or_else(|| "created without id".to_owned())
    }

    async fn op(&self, op: Op, tenant: &'static TenantProfile, n: u64) -> Outcome {
        let call = |label: &'static str, answer: anyhow::Result<crate::http::Answer>| match answer {
            Ok(answer) if (200..300).contains(&answer.status) => {
                Outcome::status(label, answer.status)
            }
            Ok(answer) => Outcome {
                detail: Some(answer.text()),
                ..Outcome::status(label, answer.status)
            },
            Err(error) => Outcome::failed(label, format!("{error:#}")),
        };
        match op {
            Op::Create => match self.create(tenant, n).await {
                Ok(id) => {
                    if let Some(list) = self
                        .cancelable
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(tenant.name)
                        && list.len() < 100_000
                    {
                        list.push(id.clone());
                    }
                    if self.keep_created > 0 {
                        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
                        if created.len() < self.keep_created {
                            created.push((tenant.name, id));
                        }
                    }
                    Outcome::status("create", 201)
                }
                Err(error) => {
                    let status = error
                        .split(' ')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    Outcome {
                        detail: Some(error),
                        ..Outcome::status("create", status)
                    }
                }
            },
            Op::Get | Op::HotGet => {
                let Some(pool) = self.pools.get(tenant.name).filter(|p| !p.ids.is_empty()) else {
                    return Outcome::failed("get", "empty pool");
                };
                let index = match (&pool.hot, op) {
                    (Some(hot), Op::HotGet) => {
                        hot.sample(&mut rand::rngs::StdRng::seed_from_u64(n ^ 0x6e7))
                    }
                    _ => (n as usize).wrapping_mul(7919) % pool.ids.len(),
                };
                let path = format!("/v1/orders/{}", pool.ids[index]);
                call(
                    "get",
                    self.http.call("GET", &path, tenant.key, None, &[]).await,
                )
            }
            Op::Search => {
                let query = self.generator.search_query(tenant, n);
                let path = format!("/v1/orders/search?{query}");
                call(
                    "search",
                    self.http.call("GET", &path, tenant.key, None, &[]).await,
                )
            }
            Op::Transition => {
                let id = self
                    .cancelable
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(tenant.name)
                    .and_then(Vec::pop);
                let Some(id) = id else {
                    return Outcome::failed("transition", "no pending order left to cancel");
                };
                let body = json!({"reason": "buyer changed their mind"});
                let path = format!("/v1/orders/{id}/cancel");
                call(
                    "transition",
                    self.http
                        .call("POST", &path, tenant.key, Some(&body), &[])
                        .await,
                )
            }
            Op::Visibility => self.visibility(tenant, n).await,
            Op::Lifecycle => self.lifecycle(tenant, n).await,
            Op::SoldOut => {
                let order = json!({
                    "business_identity": "retail", "order_type": "standard",
                    "buyer_id": format!("hot-{}", n % 10_000),
                    "lines": [{"sku": HOT_SKU, "product_name": "Flash-sale kettle",
                               "quantity": 1, "unit_price_minor": 19_900}],
                });
                let answer = self
                    .http
                    .call("POST", "/v1/orders", tenant.key, Some(&order), &[])
                    .await;
                // the refusal is what is measured: counted as the step's success (200),
                // anything else (an order placed, a 5xx) as a failure with its status
                match answer {
                    Ok(answer)
                        if answer.status == 409
                            && answer.json()["code"] == json!("out_of_stock") =>
                    {
                        Outcome::status("refuse", 200)
                    }
                    Ok(answer) => Outcome {
                        detail: Some(answer.text()),
                        ..Outcome::status(
                            "refuse",
                            if answer.status == 201 {
                                0
                            } else {
                                answer.status
                            },
                        )
                    },
                    Err(error) => Outcome::failed("refuse", format!("{error:#}")),
                }
            }
            Op::HotSku => {
                let order = json!({
                    "business_identity": "retail", "order_type": "standard",
                    "buyer_id": format!("hot-{}", n % 10_000),
                    "lines": [{"sku": HOT_SKU, "product_name": "Flash-sale kettle",
                               "quantity": 1, "unit_price_minor": 19_900}],
                });
                call(
                    "reserve",
                    self.http
                        .call("POST", "/v1/orders", tenant.key, Some(&order), &[])
                        .await,
                )
            }
        }
    }

    /// Create an order and move it to `completed`; the step fails at the first refusal,
    /// naming the event.
    async fn lifecycle(&self, tenant: &'static TenantProfile, n: u64) -> Outcome {
        let (order, _) = self.generator.order(tenant, n.wrapping_add(self.run));
        let answer = match self
            .http
            .call("POST", "/v1/orders", tenant.key, Some(&order), &[])
            .await
        {
            Ok(answer) if answer.status == 201 => answer,
            Ok(answer) => {
                return Outcome {
                    detail: Some(format!("create: {}", answer.text())),
                    ..Outcome::status("lifecycle", answer.status)
                };
            }
            Err(error) => return Outcome::failed("lifecycle", format!("create: {error:#}")),
        };
        let mut view = answer.json();
        let Some(id) = view["id"].as_str().map(str::to_owned) else {
            return Outcome::failed("lifecycle", "created without id");
        };
        let path = format!("/v1/orders/{id}/transitions");
        for (event, body) in retail_lifecycle(n) {
            let version = format!("\"{}\"", view["version"]);
            match self
                .http
                .call(
                    "POST",
                    &path,
                    tenant.key,
                    Some(&body),
                    &[("if-match", &version)],
                )
                .await
            {
                Ok(answer) if answer.status == 200 => view = answer.json(),
                Ok(answer) => {
                    return Outcome {
                        detail: Some(format!("{event}: {}", answer.text())),
                        ..Outcome::status("lifecycle", answer.status)
                    };
                }
                Err(error) => {
                    return Outcome::failed("lifecycle", format!("{event}: {error:#}"));
                }
            }
        }
        if view["status"] != "completed" {
            return Outcome::failed("lifecycle", format!("ended {}", view["status"]));
        }
        if self.keep_created > 0 {
            let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
            if created.len() < self.keep_created {
                created.push((tenant.name, id));
            }
        }
        Outcome::status("lifecycle", 200)
    }

    async fn visibility(&self, tenant: &TenantProfile, n: u64) -> Outcome {
        let (mut order, _) = self.generator.order(tenant, n.wrapping_add(self.run));
        let buyer = format!("vis-{n}-{}", self.run);
        order["buyer_id"] = json!(buyer);
        let created = match self
            .http
            .call("POST", "/v1/orders", tenant.key, Some(&order), &[])
            .await
        {
            Ok(answer) if answer.status == 201 => answer,
            Ok(answer) => {
                return Outcome {
                    detail: Some(answer.text()),
                    ..Outcome::status("visibility", answer.status)
                };
            }
            Err(error) => return Outcome::failed("visibility", error),
        };
        let id = created.id().unwrap_or_default();
        let committed = Instant::now();
        let path = format!("/v1/orders/search?buyer_id={buyer}");
        loop {
            if let Ok(answer) = self.http.call("GET", &path, tenant.key, None, &[]).await
                && String::from_utf8_lossy(&answer.body).contains(&id)
            {
                return Outcome {
                    latency: Some(committed.elapsed()),
                    ..Outcome::status("visibility", 200)
                };
            }
            if committed.elapsed() > Duration::from_secs(30) {
                return Outcome::failed("visibility", "not visible after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Step for Traffic {
    async fn step(&self, n: u64) -> Outcome {
        let tenant = self.tenant_of(n);
        let op = match self.scenario {
            Scenario::Create => Op::Create,
            Scenario::Get => Op::Get,
            Scenario::Search => Op::Search,
            Scenario::Visibility => Op::Visibility,
            Scenario::Lifecycle => Op::Lifecycle,
            Scenario::HotSku => Op::HotSku,
            Scenario::SoldOut => Op::SoldOut,
            Scenario::Mixed | Scenario::MultiTenant => mixed_op(n),
        };
        let outcome = self.op(op, tenant, n).await;
        if self.scenario == Scenario::MultiTenant {
            outcome.for_tenant(tenant.name)
        } else {
            outcome
        }
    }
}

/// Await every future (they borrow the caller's state, so no spawning).
async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixed_profile_has_the_documented_shares() {
        let mut counts = HashMap::new();
        for n in 0..100_000 {
            *counts.entry(format!("{:?}", mixed_op(n))).or_insert(0u32) += 1;
        }
        let share = |op: &str| f64::from(counts[op]) / 1_000.0;
        assert!((share("Create") - 20.0).abs() < 1.0, "{counts:?}");
        assert!((share("HotGet") - 60.0).abs() < 1.0, "{counts:?}");
        assert!((share("Search") - 15.0).abs() < 1.0, "{counts:?}");
        assert!((share("Transition") - 5.0).abs() < 0.5, "{counts:?}");
    }
}
