//! deprov's configuration: one typed struct, loaded in layers:
//! built-in defaults → optional TOML file (`--config`) → `DEPROV_*` environment variables
//! (nested keys with `__`, e.g. `DEPROV_SCIM__MAX_RESULTS`).
//!
//! Unknown keys are reported as warnings (a typo must not silently fall back to a default);
//! values are checked once, here, so that a bad setting ends the process with one line that
//! names it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use deprov_core::Secret;
use deprov_revocation::outbound::AddressPolicy;
use deprov_store::DatabaseLocation;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

/// The shortest admin token accepted from the configuration.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Environment variables that start with `DEPROV_` but are not settings of `deprov serve`.
const NOT_SETTINGS: &[&str] = &["test_database_url", "test_log"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The public base URL: the issuer of logout tokens and the base of printed URLs.
    /// Defaults to `http://{listen}`.
    pub public_url: Option<String>,
    /// `sqlite://PATH` (default `sqlite://deprov.db`) or `postgres://…`.
    #[serde(serialize_with = "ser_secret")]
    pub database_url: Secret,
    /// Allow http, loopback and private-address targets (development and tests only).
    pub allow_insecure_targets: bool,
    /// `text` (default, for people) or `json` (for log shippers).
    pub log_format: LogFormat,
    /// A `tracing` filter: `info`, `deprov=debug,actix_web=info`, …
    pub log_level: String,
    /// How long shutdown waits for in-flight requests and workers, in seconds.
    pub shutdown_timeout_secs: u64,
    /// Threads serving HTTP. Unset: one per CPU on SQLite, one fewer on PostgreSQL
    /// ([`Config::http_workers`]).
    pub http_workers: Option<usize>,
    /// Base64 of 32 random bytes: encrypts signing keys at rest. When unset, a key file
    /// `deprov.key` (mode 0600) is created beside the SQLite database, with a warning.
    #[serde(serialize_with = "ser_opt_secret")]
    pub key_encryption_key: Option<Secret>,
    /// Bearer token of the admin API (at least 32 characters). When unset, `deprov serve`
    /// creates a stored `deprov_admin_…` token on first start and prints it once.
    #[serde(serialize_with = "ser_opt_secret")]
    pub admin_token: Option<Secret>,
    pub scim: ScimLimits,
    pub delivery: DeliveryConfig,
    pub console: ConsoleConfig,
    pub metrics: MetricsConfig,
}

/// The web console at `/console` (signed in with an admin token).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsoleConfig {
    /// Serve the console.
    pub enabled: bool,
    /// A session ends this long after sign-in, however busy, in seconds.
    pub session_lifetime_secs: u64,
    /// A session ends when unused this long, in seconds.
    pub idle_timeout_secs: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_lifetime_secs: 8 * 3600,
            idle_timeout_secs: 30 * 60,
        }
    }
}

/// `/metrics` (Prometheus text format).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Require the admin bearer token on `/metrics`. Off by default: the metrics carry
    /// counts only (no tenant names, user ids or paths), and scrapers are usually inside
    /// the deployment; turn it on when the listener is reachable from outside and the
    /// ingress does not block `/metrics`.
    pub require_admin_token: bool,
    /// How long one reading of the database (queue depth, dead letters, events) serves
    /// scrapes, in seconds; 0 reads it on every scrape.
    pub cache_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            require_admin_token: false,
            cache_secs: 2,
        }
    }
}

/// How deliveries are performed and retried (DESIGN.md, "Delivery semantics").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryConfig {
    /// Deliveries in flight at once in this process.
    pub concurrency: usize,
    /// Deliveries in flight at once to any one target.
    pub per_target: usize,
    /// Timeout of one HTTP attempt, in seconds.
    pub timeout_secs: u64,
    /// A delivery still failing after this many hours is dead-lettered.
    pub max_age_hours: u64,
    /// Run the delivery worker in this process (several replicas may all run one).
    pub worker: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            per_target: 8,
            timeout_secs: 10,
            max_age_hours: 72,
            worker: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Bounds on SCIM input; advertised in `ServiceProviderConfig` where SCIM allows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ScimLimits {
    /// Largest page a list or search returns (`filter.maxResults`); larger `count`s are capped.
    pub max_results: u32,
    /// Largest request body in bytes (`bulk.maxPayloadSize` is advertised from it).
    pub max_payload_bytes: usize,
    /// Most operations in one PATCH request.
    pub max_operations: usize,
    /// Longest filter expression, in bytes.
    pub max_filter_length: usize,
    /// Deepest nesting of parentheses, `not` and value paths in a filter.
    pub max_filter_depth: usize,
    /// Most members added, removed or replaced by one request.
    pub max_members_per_request: usize,
}

impl Default for ScimLimits {
    fn default() -> Self {
        Self {
            max_results: 1000,
            max_payload_bytes: 2 * 1024 * 1024,
            max_operations: 1000,
            max_filter_length: 4096,
            max_filter_depth: 16,
            max_members_per_request: 5000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            database_url: Secret::new("sqlite://deprov.db"),
            allow_insecure_targets: false,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            shutdown_timeout_secs: 30,
            http_workers: None,
            key_encryption_key: None,
            admin_token: None,
            scim: ScimLimits::default(),
            delivery: DeliveryConfig::default(),
            console: ConsoleConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

fn ser_opt_secret<S: serde::Serializer>(secret: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(v) => s.serialize_str(v.expose()),
        None => s.serialize_none(),
    }
}

fn ser_secret<S: serde::Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose())
}

/// A configuration problem, worded for the operator: which setting, from where, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

/// The loaded configuration and the warnings about it (unknown keys), to log once logging
/// is up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads from defaults, the file (when given) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Loads with an explicit environment (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("DEPROV_"))
            .collect();
        let mut warnings = Vec::new();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                ConfigError(format!(
                    "config file {} is not valid TOML: {}",
                    path.display(),
                    e.message()
                ))
            })?;
            let known = known_keys();
            let mut found = Vec::new();
            collect_toml_keys(&table, "", &mut found);
            for key in found {
                if !known.contains(&key) {
                    warnings.push(format!(
                        "unknown setting {key:?} in {} is ignored",
                        path.display()
                    ));
                }
            }
            figment = figment.merge(Toml::string(&text));
        }
        let known = known_keys();
        let mut env_pairs = Vec::new();
        for (name, value) in env {
            let key = name["DEPROV_".len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            if NOT_SETTINGS.contains(&key.as_str()) {
                continue;
            }
            if !known.contains(&key) {
                warnings.push(format!("unknown environment variable {name} is ignored"));
                continue;
            }
            env_pairs.push((name, value));
        }
        // The environment is passed in rather than read by figment, so that tests are hermetic.
        let figment = figment.merge(EnvPairs(env_pairs));
        let config: Config = figment.extract().map_err(|e| ConfigError(describe(&e)))?;
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        DatabaseLocation::parse(self.database_url.expose())
            .map_err(|e| ConfigError(format!("database_url (DEPROV_DATABASE_URL): {e}")))?;
        if let Some(raw) = &self.public_url {
            let url = url::Url::parse(raw).map_err(|e| {
                ConfigError(format!(
                    "public_url (DEPROV_PUBLIC_URL): {raw:?} is not an absolute URL: {e}"
                ))
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(ConfigError(format!(
                    "public_url (DEPROV_PUBLIC_URL): {raw:?} must be an http(s) URL with a host"
                )));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(ConfigError(format!(
                    "public_url (DEPROV_PUBLIC_URL): {raw:?} must not have a query or fragment (it is the token issuer)"
                )));
            }
        }
        if let Some(token) = &self.admin_token
            && token.expose().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(ConfigError(format!(
                "admin_token (DEPROV_ADMIN_TOKEN): must be at least {MIN_ADMIN_TOKEN_CHARS} characters (e.g. `openssl rand -base64 32`)"
            )));
        }
        let d = &self.delivery;
        for (name, value) in [
            ("http_workers", self.http_workers.unwrap_or(1) as u64),
            ("delivery.concurrency", d.concurrency as u64),
            ("delivery.per_target", d.per_target as u64),
            ("delivery.timeout_secs", d.timeout_secs),
            ("delivery.max_age_hours", d.max_age_hours),
            (
                "console.session_lifetime_secs",
                self.console.session_lifetime_secs,
            ),
            ("console.idle_timeout_secs", self.console.idle_timeout_secs),
        ] {
            if value == 0 {
                return Err(ConfigError(format!(
                    "{name} (DEPROV_{}): must be at least 1",
                    name.to_ascii_uppercase().replace('.', "__")
                )));
            }
        }
        if self.log_level.trim().is_empty()
            || tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err()
        {
            return Err(ConfigError(format!(
                "log_level (DEPROV_LOG_LEVEL): {:?} is not a tracing filter such as \"info\" or \"deprov=debug\"",
                self.log_level
            )));
        }
        let s = &self.scim;
        for (name, value) in [
            ("scim.max_results", s.max_results as usize),
            ("scim.max_payload_bytes", s.max_payload_bytes),
            ("scim.max_operations", s.max_operations),
            ("scim.max_filter_length", s.max_filter_length),
            ("scim.max_filter_depth", s.max_filter_depth),
            ("scim.max_members_per_request", s.max_members_per_request),
        ] {
            if value == 0 {
                return Err(ConfigError(format!(
                    "{name} (DEPROV_{}): must be at least 1",
                    name.to_ascii_uppercase().replace('.', "__")
                )));
            }
        }
        Ok(())
    }

    /// The threads serving HTTP: `http_workers`, or else one per CPU on SQLite and one
    /// fewer than the CPUs (at least one) on PostgreSQL.
    ///
    /// On SQLite a read runs in the HTTP worker that serves it: a worker per CPU lets reads
    /// use every core. On 2 cores shared with the load generator, two workers served
    /// SQLite reads 16–20 % faster than one (five alternating pairs of runs), and writes
    /// faster in 11 pairs of 12 (README, "Benchmarks"). On PostgreSQL each read also wakes
    /// a backend that needs a core of its own: there two workers spent more CPU per read
    /// than one and served fewer.
    pub fn http_workers(&self) -> usize {
        self.http_workers.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            match self.database() {
                Ok(DatabaseLocation::Sqlite(_)) => cpus,
                _ => cpus.saturating_sub(1).max(1),
            }
        })
    }

    pub fn database(&self) -> Result<DatabaseLocation, ConfigError> {
        DatabaseLocation::parse(self.database_url.expose())
            .map_err(|e| ConfigError(format!("database_url (DEPROV_DATABASE_URL): {e}")))
    }

    /// The public base URL without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    pub fn address_policy(&self) -> AddressPolicy {
        if self.allow_insecure_targets {
            AddressPolicy::AllowInsecure
        } else {
            AddressPolicy::Strict
        }
    }

    /// The effective configuration as JSON with secrets redacted, for `check-config`.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(obj) = value.as_object_mut() {
            let db = self
                .database()
                .map(|d| d.redacted())
                .unwrap_or_else(|_| "[invalid]".to_owned());
            obj.insert("database_url".into(), serde_json::Value::String(db));
            obj.insert("public_url".into(), self.public_url().into());
            obj.insert("http_workers".into(), self.http_workers().into());
            if self.key_encryption_key.is_some() {
                obj.insert("key_encryption_key".into(), "[redacted]".into());
            }
            if self.admin_token.is_some() {
                obj.insert("admin_token".into(), "[redacted]".into());
            }
        }
        value
    }
}

/// `DEPROV_*` variables as a figment provider: `DEPROV_SCIM__MAX_RESULTS=7` becomes
/// `scim.max_results = 7`, values typed the way figment's own `Env` types them.
struct EnvPairs(Vec<(String, String)>);

impl Provider for EnvPairs {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (name, raw) in &self.0 {
            let key = name["DEPROV_".len()..].to_ascii_lowercase();
            let parts: Vec<&str> = key.split("__").collect();
            let value: Value = raw.parse().unwrap_or_else(|_| Value::from(raw.clone()));
            insert_nested(&mut root, &parts, value);
        }
        Ok(Profile::Default.collect(root))
    }
}

fn insert_nested(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_nested(inner, rest, value);
            }
        }
    }
}

/// Every dotted key the configuration accepts, from the default's own shape.
fn known_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(Config::default()) {
        collect_json_keys(&map, "", &mut keys);
    }
    keys.insert("public_url".to_owned());
    keys
}

fn collect_json_keys(
    map: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
    out: &mut BTreeSet<String>,
) {
    for (k, v) in map {
        let key = format!("{prefix}{k}");
        if let serde_json::Value::Object(inner) = v {
            collect_json_keys(inner, &format!("{key}."), out);
        } else {
            out.insert(key);
        }
    }
}

fn collect_toml_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        if let toml::Value::Table(inner) = v {
            collect_toml_keys(inner, &format!("{key}."), out);
        } else {
            out.push(key);
        }
    }
}

/// Words a figment error as "KEY (from SOURCE): PROBLEM".
fn describe(err: &figment::Error) -> String {
    let key = err.path.join(".");
    let source = err
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(figment::Source::File(p)) => format!("config file {}", p.display()),
            _ if m.name.contains("environment") => {
                format!(
                    "environment variable DEPROV_{}",
                    key.to_ascii_uppercase().replace('.', "__")
                )
            }
            _ => m.name.to_string(),
        })
        .unwrap_or_else(|| "configuration".to_owned());
    if key.is_empty() {
        format!("{} (from {source})", err.kind)
    } else {
        format!("{key} (from {source}): {}", err.kind)
    }
}

/// Where `deprov` looks for a config file when `--config` is not given: nowhere. A file is
/// read only when named, so that an empty directory always means "all defaults".
pub fn config_path(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_configuration() -> Result<(), ConfigError> {
        let loaded = Config::load_from(None, env(&[]))?;
        assert_eq!(loaded.config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(loaded.config.public_url(), "http://127.0.0.1:8080");
        assert!(matches!(
            loaded.config.database(),
            Ok(DatabaseLocation::Sqlite(_))
        ));
        assert!(loaded.warnings.is_empty());
        Ok(())
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("deprov.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\npublic_url = \"https://deprov.example.com/\"\n[scim]\nmax_results = 50\n",
        )?;
        let loaded = Config::load_from(
            Some(&file),
            env(&[
                ("DEPROV_LISTEN", "127.0.0.1:9100"),
                ("DEPROV_SCIM__MAX_OPERATIONS", "7"),
            ]),
        )?;
        assert_eq!(loaded.config.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(loaded.config.public_url(), "https://deprov.example.com");
        assert_eq!(loaded.config.scim.max_results, 50);
        assert_eq!(loaded.config.scim.max_operations, 7);
        Ok(())
    }

    #[test]
    fn unknown_keys_are_warned_not_fatal() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("deprov.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n")?;
        let loaded = Config::load_from(
            Some(&file),
            env(&[
                ("DEPROV_DATABSE_URL", "x"),
                ("DEPROV_TEST_DATABASE_URL", "postgres://x/y"),
            ]),
        );
        // A typo is a warning, not an error, so that an older binary can read a newer file.
        let loaded = loaded?;
        assert!(
            loaded.warnings.iter().any(|w| w.contains("lisen")),
            "{:?}",
            loaded.warnings
        );
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("DEPROV_DATABSE_URL")),
            "{:?}",
            loaded.warnings
        );
        assert!(
            !loaded
                .warnings
                .iter()
                .any(|w| w.contains("TEST_DATABASE_URL"))
        );
        Ok(())
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases = [
            (
                ("DEPROV_DATABASE_URL", "mysql://localhost/x"),
                "database_url",
            ),
            (("DEPROV_DATABASE_URL", "postgres://"), "database_url"),
            (("DEPROV_PUBLIC_URL", "not a url"), "public_url"),
            (("DEPROV_LISTEN", "nowhere"), "listen"),
            (
                ("DEPROV_ALLOW_INSECURE_TARGETS", "perhaps"),
                "allow_insecure_targets",
            ),
            (("DEPROV_SCIM__MAX_RESULTS", "0"), "scim.max_results"),
            (("DEPROV_HTTP_WORKERS", "0"), "http_workers"),
            (("DEPROV_HTTP_WORKERS", "many"), "http_workers"),
            (("DEPROV_ADMIN_TOKEN", "too-short"), "admin_token"),
        ];
        for ((k, v), setting) in cases {
            let err = Config::load_from(None, env(&[(k, v)]))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(setting), "{k}={v}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn http_workers_are_set_or_follow_the_cpus_and_the_database() -> Result<(), ConfigError> {
        let loaded = Config::load_from(None, env(&[("DEPROV_HTTP_WORKERS", "3")]))?;
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(loaded.config.http_workers(), 3);
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        // SQLite (the default database): one per CPU.
        let sqlite = Config::load_from(None, env(&[]))?.config;
        assert_eq!(sqlite.http_workers(), cpus);
        // check-config shows the count in effect.
        assert_eq!(sqlite.redacted_json()["http_workers"], cpus);
        // PostgreSQL: one fewer, at least one.
        let pg = env(&[("DEPROV_DATABASE_URL", "postgres://127.0.0.1/deprov")]);
        let postgres = Config::load_from(None, pg)?.config;
        assert_eq!(postgres.http_workers(), (cpus - 1).max(1));
        Ok(())
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let err = Config::load_from(Some(Path::new("/nonexistent/deprov.toml")), env(&[]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/deprov.toml"), "{err}");
    }

    #[test]
    fn the_database_password_is_never_shown() -> Result<(), ConfigError> {
        let kek = "q2Vn0CqJk1x6w8mXb0Zp3u9YtR5sLa7dEe4fGh2iJk0=";
        let admin = "admin-token-0123456789-abcdefghijklmnop";
        let loaded = Config::load_from(
            None,
            env(&[
                ("DEPROV_DATABASE_URL", "postgres://app:s3cret@db/deprov"),
                ("DEPROV_KEY_ENCRYPTION_KEY", kek),
                ("DEPROV_ADMIN_TOKEN", admin),
            ]),
        )?;
        for shown in [
            format!("{:?}", loaded.config),
            loaded.config.redacted_json().to_string(),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(!shown.contains(kek), "{shown}");
            assert!(!shown.contains(admin), "{shown}");
        }
        Ok(())
    }
}
