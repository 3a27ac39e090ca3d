//! The command line (DESIGN.md, "Contracts"). Every command that prints for scripts takes
//! `--json`; errors end as one line on stderr and a non-zero exit.

/// `println!` for command output: when stdout is closed early (`deprov events list | head`)
/// the command ends quietly, as command-line tools do, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::cli::stdout_failed(e);
        }
    }};
}

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use deprov_core::{SigningAlgorithm, TenantName};
use deprov_store::Store;
use deprov_store::targets::RelyingParty;
use serde_json::json;

use crate::admin::views::{EventTrailView, RelyingPartyRequest};
use crate::app::Running;
use crate::config::{Config, Loaded};
use crate::telemetry;

/// Actor recorded in the audit log for changes made from the command line.
const CLI_ACTOR: &str = "cli";

#[derive(Debug, Parser)]
#[command(
    name = "deprov",
    version,
    about = "Turns SCIM de-provisioning into the end of every session and token.",
    propagate_version = true
)]
pub struct Cli {
    /// A TOML configuration file (settings from DEPROV_* environment variables win).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: SCIM endpoint, health endpoints and background work.
    Serve,
    /// Create or update the database schema, then exit.
    Migrate,
    /// Load and check the configuration, print it with secrets redacted.
    CheckConfig,
    /// Manage tenants and their SCIM tokens.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage relying parties that receive back-channel logouts.
    #[command(subcommand)]
    Rp(RpCommand),
    /// Manage targets at OpenID Providers: RFC 7009 revocation of held grants, Global Token
    /// Revocation, provider admin APIs.
    #[command(subcommand)]
    Op(OpCommand),
    /// Manage the keys that sign logout tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// De-provisioning events and their trails.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Deliveries of events to targets: pending, retrying, delivered, dead.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Show the whole path in a few seconds, on a throwaway database.
    ///
    /// Starts deprov and a sample application in a temporary directory, provisions a user
    /// over SCIM and deactivates it as Entra ID does; the application receives and verifies
    /// the back-channel logout. Prints the token and the event's trail, then stops
    /// everything and removes the directory.
    Demo,
    /// Exit 0 when a running deprov is ready, 1 otherwise (container health checks).
    ///
    /// GETs `/readyz` (the database answers) on the configured listen address, or `--url`.
    Healthcheck {
        /// The URL to probe. Default: `/readyz` on the configured listen address.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys (public parts only).
    List,
    /// Make a new default key for an algorithm; the old one stays published until the
    /// tokens it signed have expired.
    Rotate {
        #[arg(long, default_value = "RS256")]
        alg: String,
    },
    /// Import a private key (PKCS#8, PKCS#1 RSA or SEC1 EC PEM) to sign for another issuer.
    Import {
        /// The PEM file.
        #[arg(long, value_name = "FILE")]
        pem: PathBuf,
        /// The algorithm, when the key type allows several.
        #[arg(long)]
        alg: Option<String>,
    },
    /// Print a key's private PEM (to publish its public half in another OP's JWKS, or to
    /// move it). Handle the output as a secret.
    Export {
        /// A key id may begin with `-` (an RFC 7638 thumbprint is base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Recent events, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// One event's whole trail: the SCIM request, each delivery and each attempt.
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Deliveries, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// pending, retrying, delivered, dead or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Re-drive a dead delivery, or every dead one.
    Retry {
        /// The delivery's id.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<String>,
        #[arg(long)]
        all_dead: bool,
        /// With --all-dead: only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and print its SCIM base URL and first token (shown once).
    Create {
        /// Lower-case letters, digits and '-'.
        name: String,
    },
    /// List tenants.
    List,
    /// Issue a new SCIM token for a tenant (shown once); list its tokens with --list.
    Token {
        tenant: String,
        /// A note to tell tokens apart ("okta-prod").
        #[arg(long)]
        label: Option<String>,
        /// List the tenant's tokens instead of issuing one.
        #[arg(long, conflicts_with = "label")]
        list: bool,
    },
    /// Revoke one SCIM token of a tenant by its id (see `tenant token TENANT --list`).
    RevokeToken { tenant: String, token_id: String },
}

#[derive(Debug, Subcommand)]
pub enum RpCommand {
    /// Register a relying party.
    Add(RpAdd),
    /// List a tenant's relying parties.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Show one relying party, by id or client_id.
    Show {
        #[arg(long)]
        tenant: String,
        /// The relying party's id or client_id.
        rp: String,
    },
    /// Remove a relying party by id or client_id.
    Remove {
        #[arg(long)]
        tenant: String,
        /// The relying party's id or client_id.
        rp: String,
    },
}

#[derive(Debug, Args)]
pub struct RpAdd {
    #[arg(long)]
    pub tenant: String,
    /// The application's OAuth client_id: the `aud` of its logout tokens.
    #[arg(long)]
    pub client_id: String,
    /// Where logout tokens are POSTed: absolute https URL without fragment.
    #[arg(long)]
    pub backchannel_logout_uri: String,
    /// SCIM attribute that becomes `sub`: id, externalId, userName, emails.primary, or a path.
    #[arg(long, default_value = "externalId|id")]
    pub subject: String,
    /// A group (display name or id); removal from it also logs the user out. Repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Signing algorithm of its logout tokens: RS256, ES256 or EdDSA.
    #[arg(long, default_value = "RS256")]
    pub alg: String,
    /// The application requires `sid` in logout tokens.
    #[arg(long)]
    pub require_sid: bool,
    /// `iss` of its logout tokens, when deprov signs for the OP the application logs in with.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Sign its logout tokens with this key (see `deprov keys`), e.g. one imported from the
    /// OP the application logs in with. May begin with `-` (a base64url thumbprint).
    #[arg(long, allow_hyphen_values = true)]
    pub kid: Option<String>,
    /// Register it disabled (nothing is delivered until enabled).
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Debug, Subcommand)]
pub enum OpCommand {
    /// Register a target at an OpenID Provider or authorization server: an RFC 7009
    /// revocation client (`--kind oauth_revocation`), a Global Token Revocation endpoint
    /// (`--kind global_token_revocation`), or a provider admin API (`keycloak`, `okta`,
    /// `entra`, `auth0`, settings from `--config-file`).
    Add(Box<OpAdd>),
    /// List a tenant's OP targets.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Show one OP target, by id or client_id (secrets shown as "[sealed]").
    Show {
        #[arg(long)]
        tenant: String,
        /// The target's id or client_id.
        op: String,
    },
    /// Remove an OP target by id or client_id; the grants it holds are deleted.
    Remove {
        #[arg(long)]
        tenant: String,
        /// The target's id or client_id.
        op: String,
    },
    /// List the grants an oauth_revocation target holds (metadata only, never a token).
    Grants {
        #[arg(long)]
        tenant: String,
        /// The target's id or client_id.
        op: String,
    },
}

/// `deprov op add`. Secrets are read from files (`--*-file`), never from the command line,
/// which other users of the machine can see.
#[derive(Debug, Args)]
pub struct OpAdd {
    #[arg(long)]
    pub tenant: String,
    /// oauth_revocation, global_token_revocation, keycloak, okta, entra or auth0.
    #[arg(long, default_value = "oauth_revocation")]
    pub kind: String,
    /// The client_id at the OP (oauth_revocation), or a name for the target.
    #[arg(long)]
    pub client_id: String,
    /// A JSON object of the kind's settings (see the admin API's `config`); flags below
    /// override its members. For provider kinds, `{"$secret": "…"}` members are sealed.
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// A group (display name or id); only its members reach this target. Repeatable.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Register it disabled.
    #[arg(long)]
    pub disabled: bool,
    /// oauth_revocation: the OP's issuer identifier (its discovery document is read from it).
    #[arg(long)]
    pub issuer: Option<String>,
    /// oauth_revocation: the metadata document URL, when not discoverable from the issuer.
    #[arg(long)]
    pub metadata_url: Option<String>,
    /// oauth_revocation: the revocation endpoint, when the OP publishes no metadata.
    #[arg(long)]
    pub revocation_endpoint: Option<String>,
    /// oauth_revocation: client_secret_basic (default), client_secret_post or private_key_jwt.
    #[arg(long)]
    pub auth_method: Option<String>,
    /// oauth_revocation: a file holding the client's secret at the OP.
    #[arg(long, value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// private_key_jwt: a PEM file of the client's private key (PKCS#8).
    #[arg(long, value_name = "FILE")]
    pub private_key_file: Option<PathBuf>,
    /// private_key_jwt: its JOSE alg (RS256 default, PS256, ES256, EdDSA).
    #[arg(long)]
    pub private_key_alg: Option<String>,
    /// private_key_jwt: the `kid` to put in assertions (may begin with `-`).
    #[arg(long, allow_hyphen_values = true)]
    pub kid: Option<String>,
    /// How the application (oauth_revocation) or the endpoint (global_token_revocation)
    /// names users: id, externalId, userName, emails.primary, or an attribute path.
    #[arg(long)]
    pub subject: Option<String>,
    /// oauth_revocation: a PEM public key verifying the application's client assertions
    /// at the grants API (RFC 7523).
    #[arg(long, value_name = "FILE")]
    pub api_public_key_file: Option<PathBuf>,
    /// oauth_revocation: the alg of that key (RS256 default).
    #[arg(long)]
    pub api_public_key_alg: Option<String>,
    /// global_token_revocation: the endpoint URL.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// global_token_revocation: email (default) or iss_sub.
    #[arg(long)]
    pub subject_format: Option<String>,
    /// global_token_revocation: the `iss` of iss_sub subjects.
    #[arg(long)]
    pub subject_issuer: Option<String>,
    /// global_token_revocation: bearer (default) or private_key_jwt.
    #[arg(long = "gtr-auth")]
    pub gtr_auth: Option<String>,
    /// global_token_revocation: a file holding the bearer token.
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// global_token_revocation: the `aud` of signed JWTs (the endpoint by default).
    #[arg(long)]
    pub audience: Option<String>,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Loaded { config, warnings } = Config::load(cli.config.as_deref())?;
    let level = match cli.command {
        Command::Serve => config.log_level.clone(),
        _ => "warn".to_owned(),
    };
    telemetry::init(config.log_format, &level);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let json = cli.json;
    match cli.command {
        Command::CheckConfig => {
            if json {
                print_json(&config.redacted_json())?;
            } else {
                out!("configuration is valid");
                out!("{}", serde_json::to_string_pretty(&config.redacted_json())?);
            }
            Ok(())
        }
        Command::Migrate => {
            let store = Store::connect(&config.database()?).await?;
            let pending = store.pending_migrations().await?;
            store.migrate().await?;
            if json {
                print_json(&json!({ "applied": pending, "database": store.location() }))?;
            } else if pending.is_empty() {
                out!("{}: schema is up to date", store.location());
            } else {
                out!("{}: applied {}", store.location(), pending.join(", "));
            }
            store.close().await?;
            Ok(())
        }
        Command::Serve => serve(config).await,
        Command::Demo => crate::demo::run().await,
        Command::Healthcheck { url } => healthcheck(&config, url, json).await,
        Command::Tenant(cmd) => {
            let store = Store::open(&config.database()?).await?;
            let result = tenant(cmd, &store, &config, json).await;
            store.close().await?;
            result
        }
        Command::Rp(cmd) => {
            let store = Store::open(&config.database()?).await?;
            let result = rp(cmd, &store, &config, json).await;
            store.close().await?;
            result
        }
        Command::Op(cmd) => {
            let store = Store::open(&config.database()?).await?;
            let result = op(cmd, &store, &config, json).await;
            store.close().await?;
            result
        }
        Command::Keys(cmd) => {
            let store = Store::open(&config.database()?).await?;
            let result = keys(cmd, &store, &config, json).await;
            store.close().await?;
            result
        }
        Command::Events(cmd) => {
            let store = Store::open(&config.database()?).await?;
            let result = events(cmd, &store, json).await;
            store.close().await?;
            result
        }
        Command::Deliveries(cmd) => {
            let store = Store::open(&config.database()?).await?;
            let result = deliveries(cmd, &store, json).await;
            store.close().await?;
            result
        }
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn scim_base_url(config: &Config, tenant: &str) -> String {
    format!("{}/scim/v2/{tenant}", config.public_url())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let location = config.database()?;
    tracing::info!(database = %location.redacted(), "opening the database");
    let store = Store::open(&location).await?;
    if let Some(created) = store.ensure_first_tenant().await? {
        // Printed, not logged: the token is shown exactly once, to the operator's terminal.
        println!(
            "\nCreated tenant \"default\". Configure your identity provider with:\n  SCIM base URL: {}\n  SCIM token:    {}\nThe token is shown only now; `deprov tenant token default` issues another.\n",
            scim_base_url(&config, created.tenant.name.as_str()),
            created.token.token.expose()
        );
    }
    if config.admin_token.is_none()
        && let Some(token) = store.ensure_first_admin_token().await?
    {
        // Printed, not logged, like the SCIM token above.
        println!(
            "\nCreated an admin token for the admin API ({0}/admin/v1, OpenAPI at /admin/v1/openapi.json) and the console ({0}/console):\n  Admin token:   {1}\nThe token is shown only now.\n",
            config.public_url(),
            token.token.expose()
        );
    }
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("listen ({}): cannot bind", config.listen))?;
    let config = Arc::new(config);
    let running = Running::start(config.clone(), store, listener).await?;
    tracing::info!(
        listen = %running.local_addr(),
        public_url = %config.public_url(),
        console = config.console.enabled,
        http_workers = config.http_workers(),
        "deprov is serving"
    );
    wait_for_signal().await;
    running.shutdown().await
}

/// The readiness URL on the listen address (an unspecified address is probed on loopback).
fn readiness_url(config: &Config) -> String {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}/readyz")
}

async fn healthcheck(config: &Config, url: Option<String>, json: bool) -> anyhow::Result<()> {
    let url = url.unwrap_or_else(|| readiness_url(config));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url}: no answer"))?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("{url} answered {status}");
    }
    if json {
        print_json(&json!({ "url": url, "status": status.as_u16() }))?;
    } else {
        out!("{url} answered {status}");
    }
    Ok(())
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (container stop).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
                    _ = term.recv() => tracing::info!("received SIGTERM"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops deprov");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn tenant(
    cmd: TenantCommand,
    store: &Store,
    config: &Config,
    json: bool,
) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Create { name } => {
            let name = TenantName::parse(&name)?;
            let created = store.create_tenant(&name, CLI_ACTOR).await?;
            let base = scim_base_url(config, created.tenant.name.as_str());
            if json {
                print_json(&json!({
                    "tenant": created.tenant.name,
                    "tenant_id": created.tenant.id,
                    "scim_base_url": base,
                    "scim_token": created.token.token.expose(),
                    "scim_token_id": created.token_id,
                }))?;
            } else {
                out!("Created tenant {:?}.", created.tenant.name);
                out!("  SCIM base URL: {base}");
                out!("  SCIM token:    {}", created.token.token.expose());
                out!("The token is shown only now.");
            }
        }
        TenantCommand::List => {
            let tenants = store.list_tenants().await?;
            if json {
                let list: Vec<_> = tenants
                    .iter()
                    .map(|t| {
                        json!({
                            "tenant": t.name,
                            "tenant_id": t.id,
                            "scim_base_url": scim_base_url(config, &t.name),
                            "created_at": t.created_at,
                        })
                    })
                    .collect();
                print_json(&json!(list))?;
            } else {
                for t in &tenants {
                    out!("{}\t{}", t.name, scim_base_url(config, &t.name));
                }
            }
        }
        TenantCommand::Token {
            tenant,
            label,
            list: true,
        } => {
            let _ = label;
            let tokens = store.list_scim_tokens(&tenant).await?;
            let rows: Vec<_> = tokens
                .iter()
                .map(|t| {
                    json!({
                        "id": t.id,
                        "hint": t.hint,
                        "label": t.label,
                        "created_at": t.created_at,
                        "revoked_at": t.revoked_at,
                    })
                })
                .collect();
            if json {
                print_json(&json!(rows))?;
            } else {
                for t in &tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    out!(
                        "{}\t{}\t{}\t{}",
                        t.id,
                        t.hint,
                        state,
                        t.label.as_deref().unwrap_or("")
                    );
                }
            }
        }
        TenantCommand::Token {
            tenant,
            label,
            list: false,
        } => {
            let (model, token) = store
                .issue_scim_token(&tenant, label.as_deref(), CLI_ACTOR)
                .await?;
            if json {
                print_json(&json!({
                    "tenant": tenant,
                    "scim_base_url": scim_base_url(config, &tenant),
                    "scim_token": token.token.expose(),
                    "scim_token_id": model.id,
                }))?;
            } else {
                out!("New SCIM token for {tenant:?} (id {}):", model.id);
                out!("  {}", token.token.expose());
                out!("The token is shown only now.");
            }
        }
        TenantCommand::RevokeToken { tenant, token_id } => {
            let revoked = store
                .revoke_scim_token(&tenant, &token_id, CLI_ACTOR)
                .await?;
            if json {
                print_json(
                    &json!({ "id": revoked.id, "hint": revoked.hint, "revoked_at": revoked.revoked_at }),
                )?;
            } else {
                out!(
                    "Revoked token {} ({}) of {tenant:?}.",
                    revoked.id,
                    revoked.hint
                );
            }
        }
    }
    Ok(())
}

/// Registers a relying party with the admin API's checks (errors name the field as its
/// flag) and makes sure the key it will be signed with exists and is published.
pub(crate) async fn register_rp(
    store: &Store,
    config: &Config,
    tenant: &str,
    request: RelyingPartyRequest,
) -> anyhow::Result<RelyingParty> {
    let new = request
        .validate(config)
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.field.replace('_', "-"), e.message))?;
    let alg = new.alg;
    let rp = store.add_relying_party(tenant, new, CLI_ACTOR).await?;
    // Its key exists (and is published) before the first logout token needs it.
    let keys = crate::delivery::key_ring(config, store).await?;
    keys.ensure_key(alg).await?;
    Ok(rp)
}

fn rp_json(rp: &RelyingParty) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(rp)?)
}

async fn rp(cmd: RpCommand, store: &Store, config: &Config, json: bool) -> anyhow::Result<()> {
    match cmd {
        RpCommand::Add(add) => {
            let request = RelyingPartyRequest {
                client_id: add.client_id,
                backchannel_logout_uri: add.backchannel_logout_uri,
                subject: add.subject,
                groups: add.groups,
                alg: add.alg,
                require_sid: add.require_sid,
                issuer: add.issuer,
                kid: add.kid,
                enabled: !add.disabled,
            };
            let rp = register_rp(store, config, &add.tenant, request).await?;
            if json {
                print_json(&rp_json(&rp)?)?;
            } else {
                out!(
                    "Registered relying party {} (client_id {:?}) for tenant {:?}.",
                    rp.id,
                    rp.client_id,
                    rp.tenant
                );
            }
        }
        RpCommand::List { tenant } => {
            let rps = store.list_relying_parties(&tenant).await?;
            if json {
                let rows = rps
                    .iter()
                    .map(rp_json)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                print_json(&json!(rows))?;
            } else {
                for rp in &rps {
                    out!(
                        "{}\t{}\t{}\t{}\t{}",
                        rp.id,
                        rp.client_id,
                        rp.config.backchannel_logout_uri,
                        if rp.enabled { "enabled" } else { "disabled" },
                        if rp.groups.is_empty() {
                            "all users".to_owned()
                        } else {
                            format!("groups: {}", rp.groups.join(", "))
                        }
                    );
                }
            }
        }
        RpCommand::Show { tenant, rp } => {
            let found = store
                .list_relying_parties(&tenant)
                .await?
                .into_iter()
                .find(|x| x.id == rp || x.client_id == rp)
                .ok_or_else(|| anyhow::anyhow!("tenant {tenant} has no relying party {rp:?}"))?;
            if json {
                print_json(&rp_json(&found)?)?;
            } else {
                out!("{}", serde_json::to_string_pretty(&rp_json(&found)?)?);
            }
        }
        RpCommand::Remove { tenant, rp } => {
            let removed = store.remove_relying_party(&tenant, &rp, CLI_ACTOR).await?;
            if json {
                print_json(&rp_json(&removed)?)?;
            } else {
                out!(
                    "Removed relying party {} ({:?}).",
                    removed.id,
                    removed.client_id
                );
            }
        }
    }
    Ok(())
}

async fn keys(cmd: KeysCommand, store: &Store, config: &Config, json: bool) -> anyhow::Result<()> {
    let ring = crate::delivery::key_ring(config, store).await?;
    match cmd {
        KeysCommand::List => {
            let keys = ring.list().await?;
            if json {
                print_json(&serde_json::to_value(&keys)?)?;
            } else {
                for k in &keys {
                    out!("{}\t{}\t{}\t{}", k.kid, k.alg, k.status, k.source);
                }
            }
        }
        KeysCommand::Rotate { alg } => {
            let alg = SigningAlgorithm::parse(&alg).context("--alg")?;
            let rotation = ring.rotate(alg, CLI_ACTOR).await?;
            if json {
                print_json(&serde_json::to_value(&rotation)?)?;
            } else {
                out!("New {alg} key {}.", rotation.new.kid);
                for old in &rotation.retired {
                    out!("Retired {} (published until its tokens expire).", old.kid);
                }
            }
        }
        KeysCommand::Import { pem, alg } => {
            let alg = alg
                .map(|a| SigningAlgorithm::parse(&a))
                .transpose()
                .context("--alg")?;
            let text = std::fs::read_to_string(&pem)
                .with_context(|| format!("--pem: cannot read {}", pem.display()))?;
            let key = ring.import_pem(&text, alg, CLI_ACTOR).await?;
            if json {
                print_json(&serde_json::to_value(&key)?)?;
            } else {
                out!("Imported {} key {}.", key.alg, key.kid);
            }
        }
        KeysCommand::Export { kid } => {
            let pem = ring.export_private_pem(&kid, CLI_ACTOR).await?;
            print!("{}", pem.as_str());
        }
    }
    Ok(())
}

fn tenant_id_of(tenants: &[deprov_store::tenants::Tenant], name: &str) -> anyhow::Result<String> {
    tenants
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.id.clone())
        .ok_or_else(|| anyhow::anyhow!("no tenant named {name:?}"))
}

async fn events(cmd: EventsCommand, store: &Store, json: bool) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List { tenant, limit } => {
            let tenants = store.list_tenants().await?;
            let tenant_id = tenant
                .as_deref()
                .map(|t| tenant_id_of(&tenants, t))
                .transpose()?;
            let (_, rows) = store.events_page(tenant_id.as_deref(), limit, 0).await?;
            if json {
                print_json(&serde_json::to_value(&rows)?)?;
            } else {
                for e in &rows {
                    out!(
                        "{}\t{}\t{}\t{}\tdelivered {}/{} dead {}",
                        e.id,
                        format_time(e.occurred_at),
                        e.kind,
                        e.user_name.as_deref().unwrap_or(&e.user_id),
                        e.delivered,
                        e.deliveries,
                        e.dead
                    );
                }
            }
        }
        EventsCommand::Show { id } => {
            let trail = store
                .event_trail(&id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no event {id:?}"))?;
            let value = trail_json(&trail);
            if json {
                print_json(&value)?;
            } else {
                print_trail(&trail, "");
            }
        }
    }
    Ok(())
}

/// An event's trail as `deprov events show` prints it, for people.
pub(crate) fn print_trail(trail: &deprov_store::outbox::EventTrail, indent: &str) {
    let e = &trail.event;
    out!(
        "{indent}event {} ({}) at {}",
        e.id,
        e.kind,
        format_time(e.occurred_at)
    );
    out!(
        "{indent}  user     {} {}",
        e.user_id,
        e.user_snapshot
            .get("userName")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    );
    if let Some(g) = &e.group_display_name {
        out!(
            "{indent}  group    {g} ({})",
            e.group_id.as_deref().unwrap_or("")
        );
    }
    out!(
        "{indent}  request  {} {} (request id {})",
        e.scim_method,
        e.scim_path,
        e.request_id
    );
    for d in &trail.deliveries {
        out!(
            "{indent}  delivery {} to {} [{}] {}",
            d.delivery.id,
            d.client_id.as_deref().unwrap_or("(removed target)"),
            d.delivery.target_kind,
            d.delivery.status
        );
        for a in &d.attempts {
            out!(
                "{indent}    #{} {} {} {} ms {}{}",
                a.attempt_no,
                format_time(a.started_at),
                a.http_status
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                a.latency_ms,
                a.outcome,
                a.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
}

/// The trail as JSON: the admin API's `GET /admin/v1/events/{id}` document.
fn trail_json(trail: &deprov_store::outbox::EventTrail) -> serde_json::Value {
    serde_json::to_value(EventTrailView::from(trail)).unwrap_or_default()
}

async fn deliveries(cmd: DeliveriesCommand, store: &Store, json: bool) -> anyhow::Result<()> {
    let tenants = store.list_tenants().await?;
    match cmd {
        DeliveriesCommand::List {
            tenant,
            status,
            limit,
        } => {
            if let Some(s) = &status
                && ![
                    deprov_store::outbox::PENDING,
                    deprov_store::outbox::RETRYING,
                    deprov_store::outbox::DELIVERED,
                    deprov_store::outbox::DEAD,
                    deprov_store::outbox::CANCELLED,
                ]
                .contains(&s.as_str())
            {
                anyhow::bail!(
                    "--status: {s:?} is not one of pending, retrying, delivered, dead, cancelled"
                );
            }
            let tenant_id = tenant
                .as_deref()
                .map(|t| tenant_id_of(&tenants, t))
                .transpose()?;
            let (total, rows) = store
                .list_deliveries(tenant_id.as_deref(), status.as_deref(), limit, 0)
                .await?;
            if json {
                print_json(&json!({
                    "total": total,
                    "deliveries": rows.iter().map(|d| json!({
                        "id": d.id,
                        "event_id": d.event_id,
                        "target_id": d.target_id,
                        "target_kind": d.target_kind,
                        "status": d.status,
                        "attempt_count": d.attempt_count,
                        "next_attempt_at": d.next_attempt_at,
                        "last_error": d.last_error,
                        "created_at": d.created_at,
                        "completed_at": d.completed_at,
                    })).collect::<Vec<_>>(),
                }))?;
            } else {
                for d in &rows {
                    out!(
                        "{}\t{}\tevent {}\tattempts {}\t{}",
                        d.id,
                        d.status,
                        d.event_id,
                        d.attempt_count,
                        d.last_error.as_deref().unwrap_or("")
                    );
                }
                out!("({} of {total})", rows.len());
            }
        }
        DeliveriesCommand::Retry {
            id,
            all_dead,
            tenant,
        } => {
            let tenant_id = tenant
                .as_deref()
                .map(|t| tenant_id_of(&tenants, t))
                .transpose()?;
            let n = if all_dead {
                store.redrive(tenant_id.as_deref(), None, CLI_ACTOR).await?
            } else {
                let id = id.ok_or_else(|| anyhow::anyhow!("give a delivery id or --all-dead"))?;
                let n = store.redrive(None, Some(&id), CLI_ACTOR).await?;
                if n == 0 {
                    anyhow::bail!("delivery {id:?} is not a dead letter (or does not exist)");
                }
                n
            };
            if json {
                print_json(&json!({ "redriven": n }))?;
            } else {
                out!("Re-drove {n} deliver{}.", if n == 1 { "y" } else { "ies" });
            }
        }
    }
    Ok(())
}

/// Milliseconds since the epoch as RFC 3339 UTC.
fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

fn read_secret_file(path: &std::path::Path, flag: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--{flag} {}: cannot read", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

impl OpAdd {
    /// The admin API's request, built from the flags over `--config-file`.
    fn request(self) -> anyhow::Result<crate::ops::OpTargetRequest> {
        let mut config = match &self.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--config-file {}: cannot read", path.display()))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("--config-file {}: not JSON", path.display()))?;
                anyhow::ensure!(
                    value.is_object(),
                    "--config-file {}: must hold a JSON object",
                    path.display()
                );
                value
            }
            None => json!({}),
        };
        let mut set = |name: &str, value: Option<String>| {
            if let (Some(v), Some(obj)) = (value, config.as_object_mut()) {
                obj.insert(name.to_owned(), serde_json::Value::String(v));
            }
        };
        let file = |p: &Option<PathBuf>, flag: &str| -> anyhow::Result<Option<String>> {
            p.as_deref().map(|p| read_secret_file(p, flag)).transpose()
        };
        set("issuer", self.issuer);
        set("metadata_url", self.metadata_url);
        set("revocation_endpoint", self.revocation_endpoint);
        set("auth_method", self.auth_method);
        set(
            "client_secret",
            file(&self.client_secret_file, "client-secret-file")?,
        );
        set(
            "private_key",
            file(&self.private_key_file, "private-key-file")?,
        );
        set("private_key_alg", self.private_key_alg);
        set("kid", self.kid);
        set("subject", self.subject);
        set(
            "api_public_key",
            file(&self.api_public_key_file, "api-public-key-file")?,
        );
        set("api_public_key_alg", self.api_public_key_alg);
        set("endpoint", self.endpoint);
        set("subject_format", self.subject_format);
        set("subject_issuer", self.subject_issuer);
        set("auth", self.gtr_auth);
        set(
            "bearer_token",
            file(&self.bearer_token_file, "bearer-token-file")?,
        );
        set("audience", self.audience);
        Ok(crate::ops::OpTargetRequest {
            kind: self.kind,
            client_id: self.client_id,
            groups: self.groups,
            enabled: !self.disabled,
            config,
        })
    }
}

/// The flag for a request field (`config.client_secret` → `--client-secret-file`).
fn op_flag(field: &str) -> String {
    let name = field.strip_prefix("config.").unwrap_or(field);
    let flag = match name {
        "client_secret" | "private_key" | "api_public_key" | "bearer_token" => {
            format!("{name}_file")
        }
        "auth" => "gtr_auth".to_owned(),
        "config" => "config_file".to_owned(),
        other => other.to_owned(),
    };
    format!("--{}", flag.replace('_', "-"))
}

async fn op(cmd: OpCommand, store: &Store, config: &Config, json: bool) -> anyhow::Result<()> {
    use crate::ops::{OpContext, OpTargetView};
    use deprov_store::op_targets::{KIND_OAUTH_REVOCATION, op_kinds};
    let public_url = config.public_url();
    match cmd {
        OpCommand::Add(add) => {
            let tenant = add.tenant.clone();
            let request = add.request()?;
            let tenant_row = store.tenant(&tenant).await?;
            let keys = crate::delivery::key_ring(config, store).await?;
            let prepared = request
                .prepare(OpContext {
                    kek: keys.kek(),
                    policy: config.address_policy(),
                    tenant_id: &tenant_row.id,
                })
                .map_err(|e| anyhow::anyhow!("{}: {}", op_flag(&e.field), e.message))?;
            let target = store
                .add_target(&tenant, prepared.target, prepared.audit, CLI_ACTOR)
                .await?;
            let mut view = OpTargetView::of(target, &public_url);
            view.grants_api_secret = prepared.grants_api_secret.map(|s| s.expose().to_owned());
            if json {
                print_json(&serde_json::to_value(&view)?)?;
            } else {
                out!(
                    "Registered {} target {} (client_id {:?}) for tenant {:?}.",
                    view.kind,
                    view.id,
                    view.client_id,
                    view.tenant
                );
                if let Some(endpoint) = &view.grants_endpoint {
                    out!("  Grants endpoint:   {endpoint}");
                }
                if let Some(secret) = &view.grants_api_secret {
                    out!("  Grants API secret: {secret}");
                    out!("The secret is shown only now.");
                }
            }
        }
        OpCommand::List { tenant } => {
            let targets = store.list_targets(&tenant, &op_kinds()).await?;
            let views: Vec<OpTargetView> = targets
                .into_iter()
                .map(|t| OpTargetView::of(t, &public_url))
                .collect();
            if json {
                print_json(&serde_json::to_value(&views)?)?;
            } else {
                for v in &views {
                    out!(
                        "{}\t{}\t{}\t{}\t{}",
                        v.id,
                        v.kind,
                        v.client_id,
                        if v.enabled { "enabled" } else { "disabled" },
                        if v.groups.is_empty() {
                            "all users".to_owned()
                        } else {
                            format!("groups: {}", v.groups.join(", "))
                        }
                    );
                }
            }
        }
        OpCommand::Show { tenant, op } => {
            let target = store.find_target(&tenant, &op_kinds(), &op).await?;
            let view = serde_json::to_value(OpTargetView::of(target, &public_url))?;
            if json {
                print_json(&view)?;
            } else {
                out!("{}", serde_json::to_string_pretty(&view)?);
            }
        }
        OpCommand::Remove { tenant, op } => {
            let removed = store
                .remove_target(&tenant, &op_kinds(), &op, CLI_ACTOR)
                .await?;
            let view = OpTargetView::of(removed, &public_url);
            if json {
                print_json(&serde_json::to_value(&view)?)?;
            } else {
                out!(
                    "Removed {} target {} ({:?}).",
                    view.kind,
                    view.id,
                    view.client_id
                );
            }
        }
        OpCommand::Grants { tenant, op } => {
            let target = store
                .find_target(&tenant, &[KIND_OAUTH_REVOCATION], &op)
                .await?;
            let grants: Vec<crate::admin::ops::GrantView> = store
                .client_grants(&target.id, None)
                .await?
                .iter()
                .map(|g| deprov_store::grants::GrantInfo::of(g, &target.client_id).into())
                .collect();
            if json {
                print_json(&serde_json::to_value(&grants)?)?;
            } else {
                for g in &grants {
                    out!(
                        "{}\t{}\t{}\t{}",
                        g.id,
                        g.sub,
                        g.token_type_hint.as_deref().unwrap_or("-"),
                        g.last_error.as_deref().unwrap_or("")
                    );
                }
            }
        }
    }
    Ok(())
}

/// Where [`out!`] goes when stdout cannot be written: a reader that went away ends the
/// command without a word; any other failure is reported like every error.
pub(crate) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
    std::process::exit(0)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, KeysCommand, OpCommand, RpCommand};

    /// deprov's key ids are RFC 7638 thumbprints in base64url: one in 64 begins with `-`.
    #[test]
    fn a_key_id_beginning_with_a_hyphen_is_a_value_not_a_flag() {
        let kid = "-V3m-E8C3TRI5QLfWrHt4gS4u2Drg7rFiH9h09bvb1Y";
        let export = Cli::try_parse_from(["deprov", "keys", "export", kid]).map(|c| c.command);
        assert!(
            matches!(&export, Ok(Command::Keys(KeysCommand::Export { kid: k })) if k == kid),
            "{export:?}"
        );
        let rp = Cli::try_parse_from([
            "deprov",
            "rp",
            "add",
            "--tenant",
            "t",
            "--client-id",
            "app",
            "--backchannel-logout-uri",
            "https://app.example/bcl",
            "--kid",
            kid,
            "--json",
        ])
        .map(|c| (c.command, c.json));
        assert!(
            matches!(&rp, Ok((Command::Rp(RpCommand::Add(add)), true)) if add.kid.as_deref() == Some(kid)),
            "{rp:?}"
        );
        let op = Cli::try_parse_from([
            "deprov",
            "op",
            "add",
            "--tenant",
            "t",
            "--client-id",
            "app",
            "--kid",
            kid,
        ])
        .map(|c| c.command);
        assert!(
            matches!(&op, Ok(Command::Op(OpCommand::Add(add))) if add.kid.as_deref() == Some(kid)),
            "{op:?}"
        );
    }
}
