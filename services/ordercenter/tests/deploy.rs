//! The deployment files under `deploy/` (compose stack, Kubernetes manifests, Dockerfile) are
//! checked against the binary: every `OC_*` variable they set is one the binary reads
//! (the settings table, `ordercenter::config::settings`), every process has what its role needs and agrees with the
//! others on shared settings, the tenant config they mount passes `ordercenter config
//! validate`, the Kubernetes copy of it is in sync with `tenant-config/examples`, and the
//! Dockerfile copies paths that exist.
//!
//! No container engine or cluster runs here: these checks read the files. Each check runs on
//! the real `deploy/` (no problems expected) and on a copy broken on purpose (the problem must
//! be reported), so none of them can pass vacuously.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_norway::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Problems found by a check; empty means the files are fine.
#[derive(Debug, Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.push(problem());
        }
    }

    fn assert_none(&self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{what}: {} problem(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }

    fn assert_reports(&self, needle: &str) {
        assert!(
            self.0.iter().any(|problem| problem.contains(needle)),
            "expected a problem mentioning {needle:?}, got {:#?}",
            self.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the files

/// The `OC_*` variables the binary reads: the settings table of its service config
/// (`ordercenter::config::settings`), the one place that names them.
fn env_vars(_root: &Path) -> BTreeSet<String> {
    let names: BTreeSet<String> = ordercenter::config::settings::env_vars()
        .map(str::to_owned)
        .collect();
    assert!(
        names.len() > 10 && names.iter().all(|name| name.starts_with("OC_")),
        "the settings table names odd variables: {names:?}"
    );
    names
}

/// Every document of a YAML file, with `<<` merge keys applied (compose anchors).
fn yaml_documents(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let mut value = Value::deserialize(document)
            .map_err(|e| format!("{}: not valid YAML: {e}", path.display()))?;
        // A merged mapping can itself hold `<<` (an anchor built on another anchor): merge
        // until none is left, as compose does.
        for _ in 0..8 {
            if !has_merge_key(&value) {
                break;
            }
            value
                .apply_merge()
                .map_err(|e| format!("{}: bad merge key: {e}", path.display()))?;
        }
        if has_merge_key(&value) {
            return Err(format!("{}: merge keys nested too deep", path.display()));
        }
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn has_merge_key(value: &Value) -> bool {
    match value {
        Value::Mapping(map) => map
            .iter()
            .any(|(key, value)| key.as_str() == Some("<<") || has_merge_key(value)),
        Value::Sequence(items) => items.iter().any(has_merge_key),
        Value::Tagged(tagged) => has_merge_key(&tagged.value),
        _ => false,
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out.sort();
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(*key))
}

/// A scalar as text (compose allows numbers and booleans as environment values).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn text_at(value: &Value, path: &[&str]) -> Option<String> {
    at(value, path).and_then(text)
}

fn seq(value: Option<&Value>) -> Vec<Value> {
    value
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default()
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    seq(value).iter().filter_map(text).collect()
}

// ---------------------------------------------------------------------------------------------
// What every order center process needs, wherever it runs

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Serve,
    Relay,
    Project,
    Scheduler,
    Archive,
}

impl Role {
    fn of(subcommand: &str) -> Option<Role> {
        match subcommand {
            "serve" => Some(Role::Serve),
            "relay" => Some(Role::Relay),
            "project" => Some(Role::Project),
            "scheduler" => Some(Role::Scheduler),
            "archive" => Some(Role::Archive),
            _ => None,
        }
    }

    /// The variables this role must have set (besides the master key, checked apart).
    fn required(self) -> &'static [&'static str] {
        match self {
            Role::Serve => &[
                "OC_SHARDS",
                "OC_TENANT_CONFIG_DIR",
                "OC_KEYRING_FILE",
                "OC_LISTEN",
                "OC_NODE_ID",
                "OC_REDIS_URL",
                "OC_SEARCH_URL",
                "OC_COLD_URL",
            ],
            Role::Relay => &[
                "OC_SHARDS",
                "OC_TENANT_CONFIG_DIR",
                "OC_KEYRING_FILE",
                "OC_LISTEN",
                "OC_KAFKA_URL",
            ],
            Role::Project => &[
                "OC_SHARDS",
                "OC_TENANT_CONFIG_DIR",
                "OC_KEYRING_FILE",
                "OC_LISTEN",
                "OC_KAFKA_URL",
                "OC_REDIS_URL",
                "OC_SEARCH_URL",
                "OC_COLD_URL",
                "OC_PROJECTOR_MEMBER",
            ],
            // the scheduler writes through to the shared cache after each timeout
            Role::Scheduler => &[
                "OC_SHARDS",
                "OC_TENANT_CONFIG_DIR",
                "OC_KEYRING_FILE",
                "OC_LISTEN",
                "OC_REDIS_URL",
            ],
            // the archive copies to the cold store and drops archived orders from the cache
            Role::Archive => &[
                "OC_SHARDS",
                "OC_TENANT_CONFIG_DIR",
                "OC_KEYRING_FILE",
                "OC_LISTEN",
                "OC_COLD_URL",
                "OC_REDIS_URL",
            ],
        }
    }
}

/// A value taken from a Secret: present, but not readable here.
const FROM_SECRET: &str = "<from secret>";

/// One order center process as a deployment file starts it.
#[derive(Debug, Clone)]
struct Process {
    origin: String,
    role: Role,
    /// Only non-empty values: the binary treats an empty variable as unset.
    env: BTreeMap<String, String>,
}

impl Process {
    fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }
}

/// The host names in a URL (`scheme://[user@]host:port[,host:port][/…][?…]`).
fn url_hosts(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    authority
        .split(',')
        .map(|host| host.split(':').next().unwrap_or_default().to_owned())
        .filter(|host| !host.is_empty())
        .collect()
}

fn check_processes(processes: &[Process], known: &BTreeSet<String>, problems: &mut Problems) {
    let roles: BTreeSet<Role> = processes.iter().map(|p| p.role).collect();
    for role in [
        Role::Serve,
        Role::Relay,
        Role::Project,
        Role::Scheduler,
        Role::Archive,
    ] {
        problems.check(roles.contains(&role), || {
            format!(
                "no process runs `ordercenter {role:?}` (serve, relay, project, scheduler and archive are all needed)"
            )
        });
    }
    for process in processes {
        let origin = &process.origin;
        for name in process.env.keys() {
            if name.starts_with("OC_") {
                problems.check(known.contains(name), || {
                    format!(
                        "{origin}: sets {name}, which the binary does not read (settings table)"
                    )
                });
            }
        }
        for name in process.role.required() {
            problems.check(process.var(name).is_some(), || {
                format!("{origin}: {name} is not set ({:?} needs it)", process.role)
            });
        }
        problems.check(process.var("OC_MASTER_KEY").is_none(), || {
            format!("{origin}: OC_MASTER_KEY in a deployment file puts key material in plain config; use OC_MASTER_KEY_FILE from a secret")
        });
        problems.check(process.var("OC_MASTER_KEY_FILE").is_some(), || {
            format!("{origin}: OC_MASTER_KEY_FILE is not set (cluster mode needs the master key)")
        });
        for (name, value) in &process.env {
            if value == FROM_SECRET {
                continue;
            }
            if let Err(why) = check_value(name, value) {
                problems.push(format!("{origin}: {name}={value:?}: {why}"));
            }
        }
    }
    // Settings every process must agree on.
    let agree = |names: &[&str], roles: &[Role], problems: &mut Problems| {
        for name in names {
            let values: BTreeSet<Option<&str>> = processes
                .iter()
                .filter(|p| roles.contains(&p.role))
                .map(|p| p.var(name))
                .collect();
            problems.check(values.len() <= 1, || {
                format!("processes disagree on {name}: {values:?}")
            });
        }
    };
    let all = [
        Role::Serve,
        Role::Relay,
        Role::Project,
        Role::Scheduler,
        Role::Archive,
    ];
    agree(
        &[
            "OC_SHARDS",
            "OC_TENANT_CONFIG_DIR",
            "OC_KEYRING_FILE",
            "OC_MASTER_KEY_FILE",
        ],
        &all,
        problems,
    );
    agree(&["OC_KAFKA_URL"], &[Role::Relay, Role::Project], problems);
    agree(
        &["OC_SEARCH_URL", "OC_COLD_URL", "OC_REDIS_URL"],
        &[Role::Serve, Role::Project],
        problems,
    );
    agree(
        &["OC_COLD_URL"],
        &[Role::Serve, Role::Project, Role::Archive],
        problems,
    );
    agree(
        &["OC_REDIS_URL"],
        &[Role::Serve, Role::Project, Role::Scheduler, Role::Archive],
        problems,
    );
    // Order ids embed the node id: unique per API process.
    let mut node_ids = BTreeMap::new();
    for process in processes.iter().filter(|p| p.role == Role::Serve) {
        if let Some(id) = process.var("OC_NODE_ID")
            && let Some(other) = node_ids.insert(id.to_owned(), process.origin.clone())
        {
            problems.push(format!(
                "{} and {other} both have OC_NODE_ID={id}: order ids could collide",
                process.origin
            ));
        }
    }
    // The projector members split the partitions: i/n for every i in 0..n, once each.
    let members: Vec<(u32, u32)> = processes
        .iter()
        .filter(|p| p.role == Role::Project)
        .filter_map(|p| parse_member(p.var("OC_PROJECTOR_MEMBER")?).ok())
        .collect();
    if let Some(&(_, n)) = members.first() {
        let mut seen: Vec<u32> = members.iter().map(|(i, _)| *i).collect();
        seen.sort_unstable();
        problems.check(
            members.iter().all(|(_, m)| *m == n) && seen == (0..n).collect::<Vec<_>>(),
            || {
                format!(
                    "projector members {members:?} do not cover 0..{n} exactly once: some partitions would never be projected"
                )
            },
        );
    }
}

fn parse_member(text: &str) -> Result<(u32, u32), String> {
    let (i, n) = text.split_once('/').ok_or("expected i/n")?;
    let i: u32 = i.trim().parse().map_err(|_| "i is not a number")?;
    let n: u32 = n.trim().parse().map_err(|_| "n is not a number")?;
    if n == 0 || i >= n {
        return Err("expected 0 <= i < n".into());
    }
    Ok((i, n))
}

/// Whether a value is one the binary accepts: what a deployment needs (cluster mode needs
/// shared, not per-process, read models; containers listen on 0.0.0.0; …), then the parser
/// of its setting in the binary's settings table (the very one `ordercenter` runs at start).
fn check_value(name: &str, value: &str) -> Result<(), String> {
    deployment_rule(name, value)?;
    match ordercenter::config::settings::by_env(name) {
        Some(setting) => setting.check(value),
        None => Ok(()),
    }
}

/// What a deployment needs of a value beyond the binary's parser.
fn deployment_rule(name: &str, value: &str) -> Result<(), String> {
    match name {
        "OC_SHARDS" => {
            let shards: Vec<&str> = value.split(',').map(str::trim).collect();
            if shards.iter().all(|s| s.starts_with("mysql://")) {
                Ok(())
            } else {
                Err("every shard must be a mysql:// URL in cluster mode".into())
            }
        }
        "OC_KAFKA_URL" => oc_bus::KafkaBusConfig::from_url(value)
            .map(drop)
            .map_err(|e| e.message.to_string()),
        "OC_COLD_URL" => {
            oc_cold_store::ColdStoreConfig::parse(value).map_err(|e| e.message.to_string())?;
            if value.starts_with("hbase://") {
                Ok(())
            } else {
                Err(
                    "a cluster needs the shared cold store (hbase://), not a file per process"
                        .into(),
                )
            }
        }
        "OC_SEARCH_URL" => {
            if value.starts_with("http://") {
                Ok(())
            } else {
                Err("a cluster needs the shared search index (Elasticsearch, http://)".into())
            }
        }
        "OC_REDIS_URL" => {
            if value.starts_with("redis://") {
                Ok(())
            } else {
                Err("expected redis://host:port".into())
            }
        }
        "OC_NODE_ID" => match value.parse::<u8>() {
            Ok(id) if id <= 31 => Ok(()),
            _ => Err("the node id must be 0..=31".into()),
        },
        "OC_PROJECTOR_MEMBER" => parse_member(value).map(drop),
        "OC_LISTEN" => {
            let address: SocketAddr = value.parse().map_err(|_| "not an address")?;
            if address.ip().is_unspecified() {
                Ok(())
            } else {
                Err("a container must listen on 0.0.0.0 (probes and other containers reach it from outside)".into())
            }
        }
        "OC_LOG_FORMAT" => {
            if value == "json" {
                Ok(())
            } else {
                Err("the only format is json".into())
            }
        }
        "OC_REQUEST_TIMEOUT_MS" | "OC_MAX_IN_FLIGHT" | "OC_MAX_CONNECTIONS_PER_SHARD" => {
            match value.parse::<u64>() {
                Ok(n) if n > 0 => Ok(()),
                _ => Err("expected a positive number".into()),
            }
        }
        _ => Ok(()),
    }
}

/// `ordercenter config validate <dir>`, the built binary: the exact check an operator runs.
fn validate_tenant_dir(dir: &Path, origin: &str, problems: &mut Problems) {
    let output = Command::new(env!("CARGO_BIN_EXE_ordercenter"))
        .args(["config", "validate"])
        .arg(dir)
        .output()
        .expect("the binary runs");
    problems.check(output.status.success(), || {
        format!(
            "{origin}: `ordercenter config validate {}` failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Compose

fn compose_environment(service: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match service.get("environment") {
        Some(Value::Mapping(map)) => {
            for (key, value) in map {
                if let (Some(key), Some(value)) = (text(key), text(value)) {
                    env.insert(key, value);
                }
            }
        }
        Some(Value::Sequence(items)) => {
            for item in items.iter().filter_map(text) {
                let (key, value) = item.split_once('=').unwrap_or((&item, ""));
                env.insert(key.to_owned(), value.to_owned());
            }
        }
        _ => {}
    }
    env.retain(|_, value| !value.trim().is_empty());
    env
}

fn command_of(service: &Value) -> Option<String> {
    match service.get("command") {
        Some(Value::Sequence(items)) => items.first().and_then(text),
        Some(Value::String(line)) => line.split_whitespace().next().map(str::to_owned),
        _ => None,
    }
}

/// A one-shot service running `ordercenter keys init`.
fn is_keys_init(service: &Value) -> bool {
    let command: Vec<String> = match service.get("command") {
        Some(Value::Sequence(items)) => items.iter().filter_map(text).collect(),
        Some(Value::String(line)) => line.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    command == ["keys", "init"]
}

fn check_compose(root: &Path, known: &BTreeSet<String>) -> Problems {
    let mut problems = Problems::default();
    let deploy = root.join("deploy");
    let path = deploy.join("compose.yaml");
    let documents = match yaml_documents(&path) {
        Ok(documents) => documents,
        Err(problem) => {
            problems.push(problem);
            return problems;
        }
    };
    let [compose] = documents.as_slice() else {
        problems.push("compose.yaml: expected one document".to_owned());
        return problems;
    };
    let Some(services) = compose.get("services").and_then(Value::as_mapping) else {
        problems.push("compose.yaml: no services".to_owned());
        return problems;
    };
    let services: BTreeMap<String, Value> = services
        .iter()
        .filter_map(|(name, service)| Some((text(name)?, service.clone())))
        .collect();
    let top_secrets = compose.get("secrets");
    let top_volumes = compose.get("volumes");

    let mut processes = Vec::new();
    let mut mounted_dirs = BTreeSet::new();
    let mut keyring_volumes = BTreeSet::new();
    let mut keys_init_services = Vec::new();
    for (name, service) in &services {
        let origin = format!("compose service {name}");
        problems.check(service.get("env_file").is_none(), || {
            format!("{origin}: env_file is not checked here; set environment: inline")
        });
        let one_shot = is_keys_init(service);
        if one_shot {
            keys_init_services.push(name.clone());
            problems.check(
                text_at(service, &["restart"]).as_deref() == Some("no"),
                || format!("{origin}: a one-shot `keys init` must not restart"),
            );
        }
        problems.check(
            at(service, &["healthcheck", "test"]).is_some() || one_shot,
            || format!("{origin}: no healthcheck"),
        );
        for port in seq(service.get("ports")) {
            let published = text(&port)
                .or_else(|| text_at(&port, &["host_ip"]))
                .unwrap_or_default();
            problems.check(
                published.starts_with("127.0.0.1:") || published == "127.0.0.1",
                || format!("{origin}: port {published:?} is not published on 127.0.0.1 only"),
            );
        }
        if let Some(depends) = service.get("depends_on") {
            let depends = depends.as_mapping().cloned().unwrap_or_default();
            problems.check(!depends.is_empty(), || {
                format!("{origin}: depends_on must be a map with a condition per service")
            });
            for (target, spec) in &depends {
                let target = text(target).unwrap_or_default();
                let condition = text_at(spec, &["condition"]).unwrap_or_default();
                match services.get(&target) {
                    None => problems.push(format!("{origin}: depends on unknown service {target}")),
                    Some(other) => problems.check(
                        condition != "service_healthy"
                            || at(other, &["healthcheck", "test"]).is_some(),
                        || format!("{origin}: waits for {target} to be healthy, but it has no healthcheck"),
                    ),
                }
                problems.check(
                    matches!(
                        condition.as_str(),
                        "service_healthy" | "service_completed_successfully"
                    ),
                    || format!("{origin}: depends on {target} with condition {condition:?}; use service_healthy"),
                );
            }
        }
        if one_shot {
            // it writes the key ring every process reads: the same volume
            let volumes = string_list(service.get("volumes"));
            if let Some(file) = compose_environment(service).get("OC_KEYRING_FILE") {
                let dir = Path::new(file).parent().unwrap().display().to_string();
                match volumes.iter().find_map(|volume| {
                    let parts: Vec<&str> = volume.split(':').collect();
                    (parts.get(1) == Some(&dir.as_str())).then(|| parts[0].to_owned())
                }) {
                    Some(source) => {
                        keyring_volumes.insert(source);
                    }
                    None => problems.push(format!(
                        "{origin}: the key ring {file} is not on a volume: the processes would not read what it writes"
                    )),
                }
            }
        }
        let Some(role) = command_of(service).as_deref().and_then(Role::of) else {
            continue;
        };
        let process = Process {
            origin: origin.clone(),
            role,
            env: compose_environment(service),
        };
        // Built from the Dockerfile of this repository.
        let dockerfile = text_at(service, &["build", "context"]).map(|context| {
            deploy
                .join(context)
                .join(text_at(service, &["build", "dockerfile"]).unwrap_or("Dockerfile".into()))
        });
        problems.check(dockerfile.as_ref().is_some_and(|d| d.is_file()), || {
            format!("{origin}: build does not point at an existing Dockerfile ({dockerfile:?})")
        });
        // Every service named in a URL is one this process waits for, healthy.
        let waits_for = |target: &str| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![name.clone()];
            while let Some(current) = stack.pop() {
                if !seen.insert(current.clone()) {
                    continue;
                }
                if let Some(depends) = services
                    .get(&current)
                    .and_then(|s| s.get("depends_on"))
                    .and_then(Value::as_mapping)
                {
                    for (other, spec) in depends {
                        let other = text(other).unwrap_or_default();
                        if text_at(spec, &["condition"]).as_deref() == Some("service_healthy") {
                            if other == target {
                                return true;
                            }
                            stack.push(other);
                        }
                    }
                }
            }
            false
        };
        for var in [
            "OC_SHARDS",
            "OC_KAFKA_URL",
            "OC_SEARCH_URL",
            "OC_COLD_URL",
            "OC_REDIS_URL",
        ] {
            for url in process.var(var).unwrap_or_default().split(',') {
                for host in url_hosts(url) {
                    problems.check(services.contains_key(&host), || {
                        format!(
                            "{origin}: {var} names host {host}, which is no service of the stack"
                        )
                    });
                    problems.check(waits_for(&host), || {
                        format!("{origin}: {var} names {host}, but the service does not wait for it to be healthy (depends_on)")
                    });
                }
            }
        }
        // Cluster processes never create data keys: they start after `keys init` wrote them.
        let waits_for_keys = services
            .iter()
            .filter(|(_, other)| is_keys_init(other))
            .any(|(other, _)| {
                service
                    .get("depends_on")
                    .and_then(|depends| depends.get(other.as_str()))
                    .and_then(|spec| text_at(spec, &["condition"]))
                    .as_deref()
                    == Some("service_completed_successfully")
            });
        problems.check(waits_for_keys, || {
            format!("{origin}: must wait for a `keys init` service to complete successfully: cluster processes never create the data keys they need")
        });
        let volumes = string_list(service.get("volumes"));
        let mount_of = |target: &str| {
            volumes.iter().find_map(|volume| {
                let parts: Vec<&str> = volume.split(':').collect();
                (parts.get(1) == Some(&target)).then(|| parts.clone().join(":"))
            })
        };
        if let Some(dir) = process.var("OC_TENANT_CONFIG_DIR") {
            match mount_of(dir) {
                Some(volume) => {
                    let parts: Vec<&str> = volume.split(':').collect();
                    problems.check(parts.get(2) == Some(&"ro"), || {
                        format!(
                            "{origin}: the tenant config {volume} is not mounted read-only (:ro)"
                        )
                    });
                    let source = deploy.join(parts[0]);
                    problems.check(parts[0].starts_with('.') && source.is_dir(), || {
                        format!("{origin}: the tenant config source {} is not a directory of this repository", parts[0])
                    });
                    if source.is_dir() {
                        mounted_dirs.insert(source);
                    }
                }
                None => problems.push(format!(
                    "{origin}: OC_TENANT_CONFIG_DIR={dir} is not a mounted directory"
                )),
            }
        }
        if let Some(file) = process.var("OC_KEYRING_FILE") {
            let dir = Path::new(file).parent().unwrap().display().to_string();
            match mount_of(&dir) {
                Some(volume) => {
                    let source = volume.split(':').next().unwrap().to_owned();
                    problems.check(
                        top_volumes.and_then(|v| v.get(source.as_str())).is_some(),
                        || format!("{origin}: the key ring directory {dir} is not a named volume"),
                    );
                    keyring_volumes.insert(source);
                }
                None => problems.push(format!(
                    "{origin}: the key ring {file} is not on a volume: every process must read the same key ring"
                )),
            }
        }
        if let Some(file) = process.var("OC_MASTER_KEY_FILE") {
            let secret = file.strip_prefix("/run/secrets/").unwrap_or_default();
            problems.check(
                !secret.is_empty()
                    && string_list(service.get("secrets"))
                        .iter()
                        .any(|s| s == secret),
                || {
                    format!(
                        "{origin}: OC_MASTER_KEY_FILE={file} is not one of the service's secrets"
                    )
                },
            );
            problems.check(
                top_secrets
                    .and_then(|s| s.get(secret))
                    .and_then(|s| s.get("file"))
                    .is_some(),
                || format!("{origin}: secret {secret:?} is not defined from a file"),
            );
        }
        processes.push(process);
    }
    problems.check(keyring_volumes.len() <= 1, || {
        format!("the processes keep their key ring on different volumes {keyring_volumes:?}: they would encrypt with different keys")
    });
    check_processes(&processes, known, &mut problems);
    problems.check(!mounted_dirs.is_empty(), || {
        "no tenant config directory is mounted".to_owned()
    });
    for dir in mounted_dirs {
        validate_tenant_dir(&dir, "compose tenant config", &mut problems);
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Kubernetes (deploy/k8s, as kustomize assembles it)

struct K8s {
    documents: Vec<(String, Value)>,
    /// configMapGenerator: name → (file name → path).
    generated: BTreeMap<String, BTreeMap<String, PathBuf>>,
}

impl K8s {
    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.documents.iter().map(|(_, d)| d).find(|d| {
            text_at(d, &["kind"]).as_deref() == Some(kind)
                && text_at(d, &["metadata", "name"]).as_deref() == Some(name)
        })
    }

    fn configmap_data(&self, name: &str) -> Option<BTreeMap<String, String>> {
        if let Some(files) = self.generated.get(name) {
            return Some(
                files
                    .iter()
                    .map(|(key, path)| {
                        (
                            key.clone(),
                            std::fs::read_to_string(path).unwrap_or_default(),
                        )
                    })
                    .collect(),
            );
        }
        let map = self.find("ConfigMap", name)?.get("data")?.as_mapping()?;
        Some(
            map.iter()
                .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                .collect(),
        )
    }

    fn secret_keys(&self, name: &str) -> Option<BTreeSet<String>> {
        let secret = self.find("Secret", name)?;
        let mut keys = BTreeSet::new();
        for field in ["data", "stringData"] {
            if let Some(map) = secret.get(field).and_then(Value::as_mapping) {
                keys.extend(map.keys().filter_map(text));
            }
        }
        Some(keys)
    }
}

fn load_k8s(root: &Path, problems: &mut Problems) -> K8s {
    let dir = root.join("deploy/k8s");
    let mut k8s = K8s {
        documents: Vec::new(),
        generated: BTreeMap::new(),
    };
    let kustomization = match yaml_documents(&dir.join("kustomization.yaml")) {
        Ok(mut documents) if documents.len() == 1 => documents.remove(0),
        Ok(_) => {
            problems.push("kustomization.yaml: expected one document");
            return k8s;
        }
        Err(problem) => {
            problems.push(problem);
            return k8s;
        }
    };
    let resources = string_list(kustomization.get("resources"));
    // Every manifest file is listed (a file left out would silently not be applied).
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        if file.ends_with(".yaml") && file != "kustomization.yaml" {
            problems.check(resources.contains(&file), || {
                format!("k8s/{file} is not listed in kustomization.yaml resources")
            });
        }
    }
    for resource in &resources {
        match yaml_documents(&dir.join(resource)) {
            Ok(documents) => {
                for document in documents {
                    problems.check(
                        text_at(&document, &["apiVersion"]).is_some()
                            && text_at(&document, &["kind"]).is_some()
                            && text_at(&document, &["metadata", "name"]).is_some(),
                        || format!("k8s/{resource}: a document without apiVersion, kind or metadata.name"),
                    );
                    k8s.documents.push((resource.clone(), document));
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    for generator in seq(kustomization.get("configMapGenerator")) {
        let name = text_at(&generator, &["name"]).unwrap_or_default();
        let mut files = BTreeMap::new();
        for file in string_list(generator.get("files")) {
            let (key, path) = file.split_once('=').unwrap_or((
                Path::new(&file).file_name().unwrap().to_str().unwrap(),
                &file,
            ));
            let path = dir.join(path);
            problems.check(path.is_file(), || {
                format!(
                    "configMapGenerator {name}: {} does not exist",
                    path.display()
                )
            });
            files.insert(key.to_owned(), path);
        }
        k8s.generated.insert(name, files);
    }
    k8s
}

/// The files of a ConfigMap volume as the kubelet lays them out: the data in a timestamped
/// directory, `..data` pointing at it, and each key a symlink through `..data`.
fn materialize_configmap(data: &BTreeMap<String, String>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let stamped = dir.path().join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&stamped).unwrap();
    for (key, content) in data {
        std::fs::write(stamped.join(key), content).unwrap();
    }
    std::os::unix::fs::symlink(stamped.file_name().unwrap(), dir.path().join("..data")).unwrap();
    for key in data.keys() {
        std::os::unix::fs::symlink(format!("..data/{key}"), dir.path().join(key)).unwrap();
    }
    dir
}

fn check_k8s(root: &Path, known: &BTreeSet<String>) -> Problems {
    let mut problems = Problems::default();
    let k8s = load_k8s(root, &mut problems);
    let mut processes = Vec::new();
    let mut tenant_configmaps = BTreeSet::new();

    for (file, workload) in &k8s.documents {
        let kind = text_at(workload, &["kind"]).unwrap_or_default();
        if kind != "Deployment" && kind != "StatefulSet" {
            continue;
        }
        let name = text_at(workload, &["metadata", "name"]).unwrap_or_default();
        let replicas: u32 = text_at(workload, &["spec", "replicas"])
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        // The pods that can exist: up to the HPA's maximum when one scales this workload.
        let hpa_max = k8s
            .documents
            .iter()
            .map(|(_, d)| d)
            .filter(|d| {
                text_at(d, &["kind"]).as_deref() == Some("HorizontalPodAutoscaler")
                    && text_at(d, &["spec", "scaleTargetRef", "kind"]).as_deref() == Some(&kind)
                    && text_at(d, &["spec", "scaleTargetRef", "name"]).as_deref() == Some(&name)
            })
            .filter_map(|d| text_at(d, &["spec", "maxReplicas"])?.parse::<u32>().ok())
            .max();
        let pods = hpa_max.unwrap_or(replicas).max(replicas);
        let pod_spec = at(workload, &["spec", "template", "spec"])
            .cloned()
            .unwrap_or_default();
        let template_labels = at(workload, &["spec", "template", "metadata", "labels"]);
        let selector = at(workload, &["spec", "selector", "matchLabels"]);
        problems.check(
            selector.and_then(Value::as_mapping).is_some_and(|s| {
                s.iter()
                    .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v))
            }),
            || format!("k8s/{file} {name}: the selector does not match the pod template labels"),
        );
        problems.check(
            at(&pod_spec, &["securityContext", "runAsNonRoot"]) == Some(&Value::Bool(true)),
            || {
                format!(
                    "k8s/{file} {name}: pods must run as non-root (securityContext.runAsNonRoot)"
                )
            },
        );
        let volumes = seq(pod_spec.get("volumes"));
        for container in seq(pod_spec.get("containers")) {
            let origin = format!(
                "k8s/{file} {kind} {name} container {}",
                text_at(&container, &["name"]).unwrap_or_default()
            );
            let Some(role) = string_list(container.get("args"))
                .first()
                .and_then(|a| Role::of(a))
            else {
                problems.push(format!(
                    "{origin}: args must start with serve, relay, project or scheduler"
                ));
                continue;
            };
            // The environment as the kubelet builds it: envFrom first, then env in order.
            let mut base = BTreeMap::new();
            for source in seq(container.get("envFrom")) {
                if let Some(map) = text_at(&source, &["configMapRef", "name"]) {
                    match k8s.configmap_data(&map) {
                        Some(data) => base.extend(data),
                        None => problems
                            .push(format!("{origin}: envFrom ConfigMap {map} does not exist")),
                    }
                }
                if let Some(secret) = text_at(&source, &["secretRef", "name"]) {
                    match k8s.secret_keys(&secret) {
                        Some(keys) => {
                            base.extend(keys.into_iter().map(|k| (k, FROM_SECRET.to_owned())))
                        }
                        None => problems
                            .push(format!("{origin}: envFrom Secret {secret} does not exist")),
                    }
                }
            }
            let mut uses_pod_index = false;
            let mut entries = Vec::new();
            for entry in seq(container.get("env")) {
                let var = text_at(&entry, &["name"]).unwrap_or_default();
                let value = if let Some(value) = text_at(&entry, &["value"]) {
                    value
                } else if let Some(field) = text_at(&entry, &["valueFrom", "fieldRef", "fieldPath"])
                {
                    if field == "metadata.labels['apps.kubernetes.io/pod-index']" {
                        uses_pod_index = true;
                        "$(POD_INDEX_VALUE)".to_owned()
                    } else {
                        format!("<field {field}>")
                    }
                } else if let Some(secret) = text_at(&entry, &["valueFrom", "secretKeyRef", "name"])
                {
                    let key =
                        text_at(&entry, &["valueFrom", "secretKeyRef", "key"]).unwrap_or_default();
                    problems.check(
                        k8s.secret_keys(&secret).is_some_and(|keys| keys.contains(&key)),
                        || format!("{origin}: {var} reads key {key:?} of Secret {secret}, which does not exist"),
                    );
                    FROM_SECRET.to_owned()
                } else {
                    problems.push(format!(
                        "{origin}: {var} has neither a value nor a known valueFrom"
                    ));
                    continue;
                };
                entries.push((var, value));
            }
            problems.check(!uses_pod_index || kind == "StatefulSet", || {
                format!("{origin}: only StatefulSet pods carry the pod-index label")
            });
            let pod_count = if uses_pod_index { pods } else { 1 };
            for index in 0..pod_count {
                // `$(VAR)` expands to a variable defined before it (kubelet semantics).
                let mut env = base.clone();
                for (var, value) in &entries {
                    let mut expanded = value.replace("$(POD_INDEX_VALUE)", &index.to_string());
                    for (name, earlier) in env.clone() {
                        expanded = expanded.replace(&format!("$({name})"), &earlier);
                    }
                    env.insert(var.clone(), expanded);
                }
                env.retain(|_, value| !value.trim().is_empty());
                processes.push(Process {
                    origin: if uses_pod_index {
                        format!("{origin} (pod {index})")
                    } else {
                        origin.clone()
                    },
                    role,
                    env,
                });
            }
            let env = &processes.last().unwrap().env;
            for (var, value) in env {
                problems.check(!value.contains("$("), || {
                    format!("{origin}: {var}={value:?} references a variable that is not defined before it")
                });
            }
            // Probes on the port the process listens on.
            let listen_port = env
                .get("OC_LISTEN")
                .and_then(|l| l.parse::<SocketAddr>().ok())
                .map(|a| a.port());
            let ports: BTreeMap<String, u16> = seq(container.get("ports"))
                .iter()
                .filter_map(|p| {
                    Some((
                        text_at(p, &["name"])?,
                        text_at(p, &["containerPort"])?.parse().ok()?,
                    ))
                })
                .collect();
            let probe = |kind: &str| {
                let path = text_at(&container, &[kind, "httpGet", "path"]);
                let port = text_at(&container, &[kind, "httpGet", "port"])
                    .and_then(|p| p.parse::<u16>().ok().or_else(|| ports.get(&p).copied()));
                (path, port)
            };
            let (ready_path, ready_port) = probe("readinessProbe");
            let (live_path, live_port) = probe("livenessProbe");
            let wanted_ready = if role == Role::Serve {
                "/readyz"
            } else {
                "/healthz"
            };
            problems.check(ready_path.as_deref() == Some(wanted_ready), || {
                format!("{origin}: readiness probe must GET {wanted_ready} (got {ready_path:?})")
            });
            problems.check(live_path.as_deref() == Some("/healthz"), || {
                format!("{origin}: liveness probe must GET /healthz (got {live_path:?})")
            });
            problems.check(
                listen_port.is_some() && ready_port == listen_port && live_port == listen_port,
                || format!("{origin}: probes ({ready_port:?}, {live_port:?}) are not on the OC_LISTEN port {listen_port:?}"),
            );
            for bound in ["requests", "limits"] {
                for resource in ["cpu", "memory"] {
                    problems.check(
                        at(&container, &["resources", bound, resource]).is_some(),
                        || format!("{origin}: no resources.{bound}.{resource}"),
                    );
                }
            }
            // Mounted files: the tenant config from the ConfigMap, the keys from the Secret.
            let mounts = seq(container.get("volumeMounts"));
            let volume_at = |path: &str| {
                let mount = mounts
                    .iter()
                    .find(|m| text_at(m, &["mountPath"]).as_deref() == Some(path))?;
                let volume_name = text_at(mount, &["name"])?;
                let volume = volumes
                    .iter()
                    .find(|v| text_at(v, &["name"]).as_deref() == Some(volume_name.as_str()))?;
                Some((mount.clone(), volume.clone()))
            };
            if let Some(dir) = env.get("OC_TENANT_CONFIG_DIR") {
                match volume_at(dir) {
                    Some((mount, volume)) => {
                        problems.check(
                            at(&mount, &["readOnly"]) == Some(&Value::Bool(true)),
                            || format!("{origin}: the tenant config is not mounted readOnly"),
                        );
                        match text_at(&volume, &["configMap", "name"]) {
                            Some(map) if k8s.configmap_data(&map).is_some() => {
                                tenant_configmaps.insert(map);
                            }
                            other => problems.push(format!(
                                "{origin}: OC_TENANT_CONFIG_DIR is not a ConfigMap volume of this kustomization ({other:?})"
                            )),
                        }
                    }
                    None => problems.push(format!(
                        "{origin}: OC_TENANT_CONFIG_DIR={dir} is not a mount path"
                    )),
                }
            }
            for var in ["OC_MASTER_KEY_FILE", "OC_KEYRING_FILE"] {
                let Some(file) = env.get(var) else { continue };
                let path = Path::new(file);
                let dir = path.parent().unwrap().display().to_string();
                let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
                let Some((mount, volume)) = volume_at(&dir) else {
                    problems.push(format!(
                        "{origin}: {var}={file} is not in a mounted directory"
                    ));
                    continue;
                };
                let Some(secret) = text_at(&volume, &["secret", "secretName"]) else {
                    problems.push(format!(
                        "{origin}: {var}={file} is not mounted from a Secret"
                    ));
                    continue;
                };
                problems.check(
                    at(&mount, &["readOnly"]) == Some(&Value::Bool(true)),
                    || format!("{origin}: the Secret volume for {var} is not mounted readOnly"),
                );
                let items = seq(at(&volume, &["secret", "items"]));
                let key = if items.is_empty() {
                    Some(file_name.clone())
                } else {
                    items
                        .iter()
                        .find(|i| text_at(i, &["path"]).as_deref() == Some(file_name.as_str()))
                        .and_then(|i| text_at(i, &["key"]))
                };
                problems.check(
                    key.as_ref().is_some_and(|key| {
                        k8s.secret_keys(&secret)
                            .is_some_and(|keys| keys.contains(key))
                    }),
                    || format!("{origin}: {var}={file}: no such key in Secret {secret}"),
                );
            }
        }
        // The projector members' n is the replica count (i comes from the pod index).
        if kind == "StatefulSet" {
            for process in processes
                .iter()
                .filter(|p| p.origin.contains(&format!(" {name} ")))
            {
                if let Some(Ok((_, n))) = process.var("OC_PROJECTOR_MEMBER").map(parse_member) {
                    problems.check(n == replicas && hpa_max.is_none(), || {
                        format!("{}: OC_PROJECTOR_MEMBER has n={n}, but the StatefulSet runs {replicas} replicas{}", process.origin, if hpa_max.is_some() { " and is autoscaled" } else { "" })
                    });
                }
            }
        }
    }
    check_processes(&processes, known, &mut problems);

    // Services select pods that exist and target named ports they expose.
    for (file, document) in &k8s.documents {
        match text_at(document, &["kind"]).as_deref() {
            Some("Service") => {
                let name = text_at(document, &["metadata", "name"]).unwrap_or_default();
                let selector = at(document, &["spec", "selector"]).and_then(Value::as_mapping);
                let target = k8s.documents.iter().map(|(_, d)| d).find(|d| {
                    let labels = at(d, &["spec", "template", "metadata", "labels"]);
                    selector.is_some_and(|s| {
                        s.iter()
                            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                    })
                });
                let Some(target) = target else {
                    problems.push(format!("k8s/{file} Service {name}: selects no workload"));
                    continue;
                };
                let container_ports: BTreeSet<String> =
                    seq(at(target, &["spec", "template", "spec", "containers"]))
                        .iter()
                        .flat_map(|c| seq(c.get("ports")))
                        .filter_map(|p| text_at(&p, &["name"]))
                        .collect();
                for port in seq(at(document, &["spec", "ports"])) {
                    if let Some(target_port) = text_at(&port, &["targetPort"])
                        && target_port.parse::<u16>().is_err()
                    {
                        problems.check(container_ports.contains(&target_port), || {
                            format!("k8s/{file} Service {name}: targetPort {target_port} is no container port")
                        });
                    }
                }
            }
            Some("HorizontalPodAutoscaler") => {
                let kind =
                    text_at(document, &["spec", "scaleTargetRef", "kind"]).unwrap_or_default();
                let target =
                    text_at(document, &["spec", "scaleTargetRef", "name"]).unwrap_or_default();
                problems.check(k8s.find(&kind, &target).is_some(), || {
                    format!("k8s/{file}: the HPA scales {kind} {target}, which does not exist")
                });
            }
            Some("Secret") => {
                // Placeholders only: nothing in the repository may be a usable key.
                problems.check(document.get("data").is_none(), || {
                    format!("k8s/{file}: a Secret with base64 `data` cannot be seen to hold placeholders; use stringData")
                });
                if let Some(map) = document.get("stringData").and_then(Value::as_mapping) {
                    for (key, value) in map {
                        let value = text(value).unwrap_or_default();
                        problems.check(value.contains("REPLACE-ME"), || {
                            format!(
                                "k8s/{file}: Secret value {key:?} is not a REPLACE-ME placeholder"
                            )
                        });
                        problems.check(oc_crypto::MasterKey::from_encoded(&value).is_err(), || {
                            format!("k8s/{file}: Secret value {key:?} is a usable master key")
                        });
                    }
                }
            }
            _ => {}
        }
    }

    // The mounted tenant config: what `config validate` accepts, laid out as the kubelet
    // does, and the same bytes as tenant-config/examples.
    problems.check(!tenant_configmaps.is_empty(), || {
        "no tenant config ConfigMap is mounted".to_owned()
    });
    for map in &tenant_configmaps {
        let data = k8s.configmap_data(map).unwrap();
        let mounted = materialize_configmap(&data);
        validate_tenant_dir(mounted.path(), &format!("ConfigMap {map}"), &mut problems);
        let examples = root.join("tenant-config/examples");
        let mut expected = BTreeMap::new();
        for entry in std::fs::read_dir(&examples).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                expected.insert(
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&path).unwrap(),
                );
            }
        }
        let keys: BTreeSet<&String> = data.keys().collect();
        let wanted: BTreeSet<&String> = expected.keys().collect();
        problems.check(keys == wanted, || {
            format!("ConfigMap {map} has files {keys:?}, tenant-config/examples has {wanted:?}: run deploy/k8s/sync-tenant-config.sh")
        });
        for (key, content) in &data {
            if let Some(example) = expected.get(key) {
                problems.check(content == example, || {
                    format!("ConfigMap {map}: {key} differs from tenant-config/examples/{key}: run deploy/k8s/sync-tenant-config.sh")
                });
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// A `.dockerignore` pattern match, for the pattern forms the file uses: literal paths
/// (anchored at the context root, covering what is below them), `*.ext` at the root and
/// `**/*.ext` anywhere.
fn docker_ignored(patterns: &[String], path: &str) -> bool {
    let mut ignored = false;
    for pattern in patterns {
        let (negate, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern.as_str()),
        };
        let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
        let hit = if let Some(suffix) = pattern.strip_prefix("**/*") {
            path.ends_with(suffix)
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            !path.contains('/') && path.ends_with(suffix)
        } else {
            path == pattern || path.starts_with(&format!("{pattern}/"))
        };
        if hit {
            ignored = !negate;
        }
    }
    ignored
}

fn check_dockerfile(root: &Path, known: &BTreeSet<String>) -> Problems {
    let mut problems = Problems::default();
    let text = match std::fs::read_to_string(root.join("deploy/Dockerfile")) {
        Ok(text) => text,
        Err(e) => {
            problems.push(format!("deploy/Dockerfile: {e}"));
            return problems;
        }
    };
    let ignore: Vec<String> = std::fs::read_to_string(root.join(".dockerignore"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    // Instructions with continuation lines joined.
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if (trimmed.starts_with('#') && current.is_empty()) || trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut args = BTreeMap::new();
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    let mut copied_sources = Vec::new();
    let mut runtime_files = BTreeSet::new();
    for instruction in &instructions {
        let (keyword, rest) = instruction.split_once(' ').unwrap_or((instruction, ""));
        let words: Vec<&str> = rest.split_whitespace().collect();
        match keyword.to_ascii_uppercase().as_str() {
            "ARG" if stages.is_empty() => {
                if let Some((name, value)) = rest.split_once('=') {
                    args.insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
            "FROM" => {
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                    _ => format!("stage{}", stages.len()),
                };
                let mut image = words.first().copied().unwrap_or_default().to_owned();
                for (arg, value) in &args {
                    image = image.replace(&format!("${{{arg}}}"), value);
                }
                stages.push((name, vec![image]));
            }
            "COPY" | "ADD" => {
                let options: Vec<&str> = words
                    .iter()
                    .copied()
                    .filter(|w| w.starts_with("--"))
                    .collect();
                let paths: Vec<&str> = words
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let Some((destination, sources)) = paths.split_last() else {
                    problems.push(format!("Dockerfile: {instruction}: no paths"));
                    continue;
                };
                match options.iter().find_map(|o| o.strip_prefix("--from=")) {
                    Some(from) => {
                        let stage = stages.iter().find(|(name, _)| name == from);
                        match stage {
                            None => problems.push(format!(
                                "Dockerfile: COPY --from={from}: no earlier stage of that name"
                            )),
                            Some((_, lines)) => {
                                for source in sources {
                                    problems.check(lines.iter().any(|l| l.contains(source)), || {
                                        format!("Dockerfile: COPY --from={from} {source}: stage {from} never produces it")
                                    });
                                }
                            }
                        }
                    }
                    None => {
                        for source in sources {
                            let source = source.trim_end_matches('/');
                            problems.check(root.join(source).exists(), || {
                                format!("Dockerfile: COPY {source}: no such path in the repository")
                            });
                            problems.check(!docker_ignored(&ignore, source), || {
                                format!("Dockerfile: COPY {source}: excluded by .dockerignore")
                            });
                            copied_sources.push(source.to_owned());
                        }
                    }
                }
                if sources.len() == 1 {
                    runtime_files.insert((*destination).to_owned());
                }
            }
            "ENV" => {
                for word in &words {
                    if let Some((name, value)) = word.split_once('=')
                        && name.starts_with("OC_")
                    {
                        problems.check(known.contains(name), || {
                            format!("Dockerfile: ENV {name}: the binary does not read it")
                        });
                        if let Err(why) = check_value(name, value) {
                            problems.push(format!("Dockerfile: ENV {name}={value}: {why}"));
                        }
                    }
                }
            }
            "USER" => {
                let user = words.first().copied().unwrap_or_default();
                let uid = user.split(':').next().unwrap_or_default();
                problems.check(uid != "0" && uid != "root", || {
                    "Dockerfile: the image runs as root".to_owned()
                });
            }
            _ => {}
        }
        if let Some((_, lines)) = stages.last_mut() {
            lines.push(instruction.clone());
        }
    }
    let stage = |name: &str| {
        stages
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.join("\n"))
    };
    match stage("builder") {
        Some(builder) => {
            problems.check(builder.contains("cargo build --release --locked -p ordercenter"), || {
                "Dockerfile: the builder does not build the ordercenter binary (cargo build --release --locked -p ordercenter)".to_owned()
            });
            for cache in ["/usr/local/cargo/registry", "/src/target"] {
                problems.check(
                    builder.contains("type=cache,") && builder.contains(cache),
                    || format!("Dockerfile: the builder has no cache mount for {cache}"),
                );
            }
            // The builder image carries the pinned toolchain.
            let toolchain =
                std::fs::read_to_string(root.join("rust-toolchain.toml")).unwrap_or_default();
            let channel = toolchain
                .lines()
                .find_map(|l| l.trim().strip_prefix("channel = "))
                .map(|c| c.trim_matches('"').to_owned())
                .unwrap_or_default();
            let minor = channel
                .rsplit_once('.')
                .map_or(channel.as_str(), |(m, _)| m);
            problems.check(builder.starts_with(&format!("rust:{minor}-bookworm")), || {
                format!("Dockerfile: the builder image is not rust:{minor}-bookworm (rust-toolchain.toml pins {channel})")
            });
        }
        None => problems.push("Dockerfile: no stage named builder"),
    }
    match stages.last() {
        Some((_, lines)) => {
            let runtime = lines.join("\n");
            problems.check(runtime.starts_with("debian:bookworm-slim"), || {
                "Dockerfile: the last stage is not debian:bookworm-slim".to_owned()
            });
            problems.check(runtime.contains("\nUSER "), || {
                "Dockerfile: the runtime stage sets no USER".to_owned()
            });
            for (what, needle) in [
                ("HEALTHCHECK", "HEALTHCHECK "),
                ("ENTRYPOINT", "ENTRYPOINT "),
            ] {
                let line = lines.iter().find(|l| l.starts_with(needle));
                let program = line.and_then(|l| l.split('"').nth(1).map(str::to_owned));
                problems.check(
                    program.as_ref().is_some_and(|p| runtime_files.contains(p)),
                    || format!("Dockerfile: the {what} program {program:?} is not copied into the image"),
                );
            }
        }
        None => problems.push("Dockerfile: no stages"),
    }
    // Every workspace member is in the build context copied to the builder.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_default();
    let members: Vec<&str> = members.split('"').skip(1).step_by(2).collect();
    problems.check(!members.is_empty(), || {
        "Cargo.toml: no workspace members found".to_owned()
    });
    for member in members {
        problems.check(
            copied_sources.iter().any(|s| member == s || member.starts_with(&format!("{s}/"))),
            || format!("Dockerfile: workspace member {member} is not copied into the builder (cargo would fail)"),
        );
    }
    for file in ["Cargo.toml", "Cargo.lock"] {
        problems.check(copied_sources.iter().any(|s| s == file), || {
            format!("Dockerfile: {file} is not copied into the builder")
        });
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The checks on the real files

#[test]
fn every_yaml_file_under_deploy_parses() {
    let mut files = Vec::new();
    yaml_files(&repo_root().join("deploy"), &mut files);
    let mut documents = 0;
    let mut problems = Problems::default();
    for file in &files {
        match yaml_documents(file) {
            Ok(parsed) => documents += parsed.len(),
            Err(problem) => problems.push(problem),
        }
    }
    problems.assert_none("YAML under deploy/");
    // compose, kustomization, namespace, env, secret, api (4), relay, scheduler, projector (2),
    // 2 tenants
    assert!(
        files.len() >= 10 && documents >= 14,
        "{} files, {documents} documents",
        files.len()
    );
}

#[test]
fn compose_stack_matches_the_binary() {
    let root = repo_root();
    check_compose(&root, &env_vars(&root)).assert_none("deploy/compose.yaml");
}

#[test]
fn kubernetes_manifests_match_the_binary() {
    let root = repo_root();
    check_k8s(&root, &env_vars(&root)).assert_none("deploy/k8s");
}

#[test]
fn dockerfile_copies_what_exists() {
    let root = repo_root();
    check_dockerfile(&root, &env_vars(&root)).assert_none("deploy/Dockerfile");
}

#[test]
fn sync_script_agrees_that_the_configmap_copies_are_current() {
    let output = Command::new("bash")
        .arg(repo_root().join("deploy/k8s/sync-tenant-config.sh"))
        .arg("--check")
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The same checks on copies broken on purpose: each must report the problem.

/// A scratch repository: `deploy/` and `.dockerignore` copied (to be broken), everything else
/// linked to the real one.
fn scratch_repo() -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let root = repo_root();
    let scratch = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&root).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "deploy" || name == ".dockerignore" || name == "target" || name == ".git" {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), scratch.path().join(&name)).unwrap();
    }
    copy_dir(&root.join("deploy"), &scratch.path().join("deploy"));
    std::fs::copy(
        root.join(".dockerignore"),
        scratch.path().join(".dockerignore"),
    )
    .unwrap();
    scratch
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.contains(from),
        "test setup: {from:?} not in {}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn broken(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    let scratch = scratch_repo();
    edit(&scratch.path().join(file), from, to);
    scratch
}

#[test]
fn the_checks_pass_on_an_unbroken_copy() {
    let scratch = scratch_repo();
    let known = env_vars(scratch.path());
    check_compose(scratch.path(), &known).assert_none("copy of compose");
    check_k8s(scratch.path(), &known).assert_none("copy of k8s");
    check_dockerfile(scratch.path(), &known).assert_none("copy of Dockerfile");
}

#[test]
fn compose_breakages_are_reported() {
    let cases: &[(&str, &str, &str)] = &[
        // a variable the binary does not read (a typo)
        (
            "OC_LOG_FORMAT: json",
            "OC_LOG_FORMATS: json",
            "does not read",
        ),
        // a role without what it needs
        (
            "      OC_KAFKA_URL: kafka://kafka:9092?partitions=6\n    ports: [\"127.0.0.1:9101",
            "    ports: [\"127.0.0.1:9101",
            "OC_KAFKA_URL is not set",
        ),
        // a scheduler without the shared cache: API replicas would serve a timed-out order
        // as still waiting until the projector catches up
        (
            "      OC_REDIS_URL: redis://redis:6379\n    ports: [\"127.0.0.1:9104",
            "    ports: [\"127.0.0.1:9104",
            "OC_REDIS_URL is not set",
        ),
        // no scheduler at all: unpaid orders would wait forever
        (
            "    command: [\"scheduler\"]",
            "    command: [\"relay\"]",
            "no process runs `ordercenter Scheduler`",
        ),
        // a port open beyond loopback
        (
            "\"127.0.0.1:8080:8080\"",
            "\"8080:8080\"",
            "not published on 127.0.0.1",
        ),
        // a member missing: partitions never projected
        (
            "OC_PROJECTOR_MEMBER: 1/2",
            "OC_PROJECTOR_MEMBER: 0/2",
            "do not cover",
        ),
        // a writable tenant config mount
        (
            "/etc/ordercenter/tenants:ro",
            "/etc/ordercenter/tenants",
            "read-only",
        ),
        // a bad URL
        (
            "OC_COLD_URL: hbase://hbase:9090",
            "OC_COLD_URL: hbase://hbase:9090?salt=4",
            "unknown hbase:// parameter",
        ),
        // a process starting before `keys init` wrote the key ring (the API: the first such line)
        (
            "      keys-init: {condition: service_completed_successfully}\n      mysql-0",
            "      mysql-0",
            "must wait for a `keys init` service",
        ),
        // the one-shot `keys init` restarting
        ("    restart: \"no\"\n", "", "must not restart"),
        // a dependency named in a URL but not waited for
        (
            "      mysql-1: {condition: service_healthy}\n",
            "",
            "does not wait for it",
        ),
        // a secret not defined
        (
            "    file: ./secrets/master.key",
            "    external: true",
            "not defined from a file",
        ),
        // a value the binary's own parser refuses (the settings table's, not a rule here)
        (
            "OC_SEARCH_URL: http://opensearch:9200",
            "OC_SEARCH_URL: http://opensearch:9200?replica=0",
            "unknown parameter \"replica\"",
        ),
    ];
    for (from, to, expected) in cases {
        let scratch = broken("deploy/compose.yaml", from, to);
        let problems = check_compose(scratch.path(), &env_vars(scratch.path()));
        problems.assert_reports(expected);
    }
}

#[test]
fn an_invalid_mounted_tenant_config_is_reported() {
    // compose mounts ../tenant-config/examples: point it at a directory with a broken tenant
    let scratch = scratch_repo();
    let tenants = scratch.path().join("deploy/bad-tenants");
    std::fs::create_dir(&tenants).unwrap();
    let retail =
        std::fs::read_to_string(repo_root().join("tenant-config/examples/retail.yaml")).unwrap();
    std::fs::write(
        tenants.join("retail.yaml"),
        retail.replacen("currency: CNY", "currency: 12", 1),
    )
    .unwrap();
    edit(
        &scratch.path().join("deploy/compose.yaml"),
        "../tenant-config/examples:/etc",
        "./bad-tenants:/etc",
    );
    check_compose(scratch.path(), &env_vars(scratch.path())).assert_reports("config validate");

    // the ConfigMap copy: an edited copy is out of sync and (here) invalid
    let scratch = broken(
        "deploy/k8s/tenant-config/retail.yaml",
        "currency: CNY",
        "currency: 12",
    );
    let problems = check_k8s(scratch.path(), &env_vars(scratch.path()));
    problems.assert_reports("config validate");
    problems.assert_reports("differs from tenant-config/examples/retail.yaml");
}

#[test]
fn kubernetes_breakages_are_reported() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "deploy/k8s/env.yaml",
            "OC_LOG_FORMAT: json",
            "OC_LOGFORMAT: json",
            "does not read",
        ),
        (
            "deploy/k8s/api.yaml",
            "path: /readyz",
            "path: /healthz",
            "readiness probe must GET /readyz",
        ),
        (
            "deploy/k8s/relay.yaml",
            "              memory: 512Mi\n",
            "",
            "resources.limits.memory",
        ),
        // more projector replicas than members: partitions split wrongly
        (
            "deploy/k8s/projector.yaml",
            "  replicas: 2\n",
            "  replicas: 3\n",
            "runs 3 replicas",
        ),
        // node ids beyond 31 when the HPA scales out
        (
            "deploy/k8s/api.yaml",
            "maxReplicas: 16",
            "maxReplicas: 40",
            "node id must be 0..=31",
        ),
        // a Deployment cannot give each pod an index
        (
            "deploy/k8s/api.yaml",
            "kind: StatefulSet\nmetadata:\n  name: ordercenter-api",
            "kind: Deployment\nmetadata:\n  name: ordercenter-api",
            "only StatefulSet pods",
        ),
        (
            "deploy/k8s/secret.yaml",
            "\"REPLACE-ME: not a key\"",
            "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"",
            "usable master key",
        ),
        (
            "deploy/k8s/api.yaml",
            "key: shards",
            "key: shard",
            "does not exist",
        ),
        (
            "deploy/k8s/kustomization.yaml",
            "  - relay.yaml\n",
            "",
            "not listed in kustomization.yaml",
        ),
        (
            "deploy/k8s/kustomization.yaml",
            "  - scheduler.yaml\n",
            "",
            "not listed in kustomization.yaml",
        ),
        (
            "deploy/k8s/kustomization.yaml",
            "      - tenant-config/express.yaml\n",
            "",
            "run deploy/k8s/sync-tenant-config.sh",
        ),
        (
            "deploy/k8s/projector.yaml",
            "              readOnly: true\n            - name: secrets",
            "            - name: secrets",
            "not mounted readOnly",
        ),
        (
            "deploy/k8s/env.yaml",
            "OC_SEARCH_URL: http://",
            "OC_SEARCH_URL: tantivy://",
            "shared search index",
        ),
    ];
    for (file, from, to, expected) in cases {
        let scratch = broken(file, from, to);
        let problems = check_k8s(scratch.path(), &env_vars(scratch.path()));
        problems.assert_reports(expected);
    }
}

#[test]
fn dockerfile_breakages_are_reported() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "deploy/Dockerfile",
            "COPY crypto crypto\n",
            "",
            "workspace member crypto",
        ),
        (
            "deploy/Dockerfile",
            "COPY tenant-config/examples /etc",
            "COPY tenant-config/example /etc",
            "no such path",
        ),
        (
            "deploy/Dockerfile",
            "COPY --from=builder /out/ordercenter",
            "COPY --from=build /out/ordercenter",
            "no earlier stage",
        ),
        (
            "deploy/Dockerfile",
            "USER 10001:10001",
            "USER root",
            "runs as root",
        ),
        (
            "deploy/Dockerfile",
            "OC_LISTEN=0.0.0.0:8080",
            "OC_LISTN=0.0.0.0:8080",
            "does not read",
        ),
        (
            "deploy/Dockerfile",
            "ARG RUST_VERSION=1.95",
            "ARG RUST_VERSION=1.94",
            "rust-toolchain.toml pins",
        ),
        (
            "deploy/Dockerfile",
            "COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/oc-healthcheck",
            "COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/healthcheck",
            "HEALTHCHECK program",
        ),
        (
            ".dockerignore",
            "/loadtest/results",
            "/loadtest",
            "excluded by .dockerignore",
        ),
    ];
    for (file, from, to, expected) in cases {
        let scratch = broken(file, from, to);
        let problems = check_dockerfile(scratch.path(), &env_vars(scratch.path()));
        problems.assert_reports(expected);
    }
}

// ---------------------------------------------------------------------------------------------
// The container health check script, against a loopback HTTP server

/// Serves one connection: records the request line, answers with `status_line`.
fn one_shot_server(status_line: &'static str) -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 2 {
            line.clear();
        }
        let mut stream = stream;
        let _ = stream.write_all(
            format!("{status_line}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").as_bytes(),
        );
        request_line
    });
    (port, handle)
}

fn run_healthcheck(listen: &str) -> std::process::ExitStatus {
    Command::new("bash")
        .arg(repo_root().join("deploy/healthcheck.sh"))
        .env("OC_LISTEN", listen)
        .output()
        .expect("bash runs")
        .status
}

#[test]
fn healthcheck_script_asks_for_healthz_on_the_listen_port() {
    let (port, server) = one_shot_server("HTTP/1.1 200 OK");
    assert!(run_healthcheck(&format!("0.0.0.0:{port}")).success());
    assert_eq!(server.join().unwrap().trim_end(), "GET /healthz HTTP/1.1");

    let (port, server) = one_shot_server("HTTP/1.1 503 Service Unavailable");
    assert!(!run_healthcheck(&format!("0.0.0.0:{port}")).success());
    server.join().unwrap();

    // nothing listening
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    assert!(!run_healthcheck(&format!("0.0.0.0:{port}")).success());
}
