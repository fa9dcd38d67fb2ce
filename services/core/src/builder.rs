//! The one way to build the application core, used by the binary (`serve`), the API tests
//! and the load test alike: the ports every domain needs, then the optional read models.

use std::sync::Arc;

use oc_model::aftersale::AfterSaleStore;
use oc_model::aftersale::listing::AfterSaleListing;
use oc_model::lifecycle::TransitionStore;
use oc_model::payment::PaymentStore;
use oc_model::ports::{Cache, Clock, ColdStore, OrderStore, SearchIndex, SystemClock};
use oc_model::stock::{StockGate, StockStore};
use oc_model::{DomainError, DomainResult, OrderIdGenerator};
use oc_tenant_config::ConfigHandle;

use crate::aftersales::AfterSaleService;
use crate::aftersales::list::AfterSaleLists;
use crate::orders::{OrderService, ReadModels};
use crate::payments::{PaymentProviders, PaymentService, PaymentSettings};
use crate::sealing::Sealer;
use crate::stock::{Reserver, StockService};
use crate::transitions::TransitionService;

/// The application core: one service per domain, and the tenant config and store the edge
/// needs (authentication, readiness). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Core {
    /// Orders: create, update, cancel, get, list, search.
    pub orders: OrderService,
    /// Transitions: state-machine events (cancel among them) and the status history.
    pub transitions: TransitionService,
    /// Stock: set and read a SKU's level (placement and transitions reserve and settle).
    pub stock: StockService,
    /// The live tenant config (hot-reloaded): callers are authenticated against it.
    pub config: Arc<ConfigHandle>,
    /// The order store, for health checks.
    pub store: Arc<dyn OrderStore>,
    /// Payments: records, provider callbacks, the active query. `None` when the composition
    /// root wired no payment store (tests of other domains).
    pub payments: Option<PaymentService>,
    /// After-sales: apply, review, appeal, refund. `None` unless the composition root wired
    /// an after-sale store and a payment store (refunds are recorded on payments).
    pub after_sales: Option<AfterSaleService>,
    /// After-sale lists (the index, or the shards when it is unavailable); present with
    /// after-sales and a shard listing ([`CoreBuilder::after_sale_lists`]).
    pub after_sale_lists: Option<AfterSaleLists>,
}

impl Core {
    /// Start building a core over `store`, the live tenant `config` and the `sealer`.
    pub fn builder(
        store: Arc<dyn OrderStore>,
        config: Arc<ConfigHandle>,
        sealer: Sealer,
    ) -> CoreBuilder {
        CoreBuilder {
            store,
            config,
            sealer,
            transitions: None,
            stock: None,
            payments: None,
            after_sales: None,
            after_sale_listing: None,
            stock_gate: None,
            read: ReadModels::default(),
            clock: Arc::new(SystemClock),
            node_id: 0,
        }
    }
}

/// Builder of [`Core`]; see [`Core::builder`].
#[derive(Debug)]
pub struct CoreBuilder {
    store: Arc<dyn OrderStore>,
    config: Arc<ConfigHandle>,
    sealer: Sealer,
    transitions: Option<Arc<dyn TransitionStore>>,
    stock: Option<Arc<dyn StockStore>>,
    payments: Option<(Arc<dyn PaymentStore>, PaymentProviders, PaymentSettings)>,
    after_sales: Option<Arc<dyn AfterSaleStore>>,
    after_sale_listing: Option<Arc<dyn AfterSaleListing>>,
    stock_gate: Option<Arc<dyn StockGate>>,
    read: ReadModels,
    clock: Arc<dyn Clock>,
    node_id: u8,
}

impl CoreBuilder {
    /// The store of transitions and status history (the SQL order store implements both
    /// ports). Required: without it an order could not move through its state machine.
    pub fn transitions(mut self, store: Arc<dyn TransitionStore>) -> Self {
        self.transitions = Some(store);
        self
    }

    /// The stock levels and reservations (the SQL order store implements this port too).
    /// Required: placement of orders of identities that keep stock reserves through it.
    pub fn stock(mut self, store: Arc<dyn StockStore>) -> Self {
        self.stock = Some(store);
        self
    }

    /// The payment records' store (the SQL order store implements this port too), the
    /// providers and the payment settings.
    pub fn payments(
        mut self,
        store: Arc<dyn PaymentStore>,
        providers: PaymentProviders,
        settings: PaymentSettings,
    ) -> Self {
        self.payments = Some((store, providers, settings));
        self
    }

    /// The after-sales' store (the SQL order store implements this port too); used only
    /// with a payment store, which records their refunds.
    pub fn after_sales(mut self, store: Arc<dyn AfterSaleStore>) -> Self {
        self.after_sales = Some(store);
        self
    }

    /// The admission gate in front of the stock store for hot SKUs (used for business
    /// identities with `accelerator: redis`; without it they reserve in SQL alone).
    /// The shards' after-sale listing: the degraded answer of after-sale lists.
    pub fn after_sale_lists(mut self, shards: Arc<dyn AfterSaleListing>) -> Self {
        self.after_sale_listing = Some(shards);
        self
    }

    pub fn stock_gate(mut self, gate: Option<Arc<dyn StockGate>>) -> Self {
        self.stock_gate = gate;
        self
    }

    /// The hot cache consulted first on reads and written through after every change.
    pub fn cache(mut self, cache: Option<Arc<dyn Cache>>) -> Self {
        self.read.cache = cache;
        self
    }

    /// The cold store archived orders are read from.
    pub fn cold(mut self, cold: Option<Arc<dyn ColdStore>>) -> Self {
        self.read.cold = cold;
        self
    }

    /// The search index of lists and searches (without one, buyer searches are served
    /// degraded from the shard).
    pub fn search(mut self, search: Option<Arc<dyn SearchIndex>>) -> Self {
        self.read.search = search;
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// This instance's node id in generated order ids (unique per running instance).
    pub fn node_id(mut self, node_id: u8) -> Self {
        self.node_id = node_id;
        self
    }

    /// The core; refuses a node id the id generator cannot use and a missing transition
    /// or stock store.
    pub fn build(self) -> DomainResult<Core> {
        let transitions = self.transitions.ok_or_else(|| {
            DomainError::internal("the core needs a transition store (CoreBuilder::transitions)")
        })?;
        let stock = self.stock.ok_or_else(|| {
            DomainError::internal("the core needs a stock store (CoreBuilder::stock)")
        })?;
        let ids = Arc::new(OrderIdGenerator::new(self.node_id)?);
        let orders = OrderService {
            store: Arc::clone(&self.store),
            read: self.read,
            sealer: self.sealer,
            ids,
            clock: Arc::clone(&self.clock),
            reserver: Reserver {
                store: Arc::clone(&stock),
                gate: self.stock_gate,
            },
        };
        let transitions = TransitionService {
            orders: orders.clone(),
            store: transitions,
        };
        let payments = self
            .payments
            .map(|(store, providers, settings)| PaymentService {
                transitions: transitions.clone(),
                store,
                providers,
                config: Arc::clone(&self.config),
                settings,
                stats: Arc::default(),
                refund_watcher: Arc::default(),
            });
        // after-sales refund through the payments domain, which tells them when a refund
        // settles
        let after_sales = match (self.after_sales, &payments) {
            (Some(store), Some(payments)) => {
                let after_sales = AfterSaleService::new(orders.clone(), store, payments.clone());
                payments.watch_refunds(Arc::new(after_sales.clone()));
                Some(after_sales)
            }
            _ => None,
        };
        let after_sale_lists = match (&after_sales, self.after_sale_listing) {
            (Some(after_sales), Some(shards)) => Some(AfterSaleLists::new(
                after_sales.clone(),
                orders.read.search.clone(),
                shards,
            )),
            _ => None,
        };
        Ok(Core {
            transitions,
            payments,
            after_sales,
            after_sale_lists,
            stock: StockService {
                store: stock,
                clock: self.clock,
                reserver: orders.reserver.clone(),
            },
            orders,
            config: self.config,
            store: self.store,
        })
    }
}
