//! The command line (DESIGN.md, "Contracts"). Every command that prints for scripts takes
//! `--json`; errors end as one line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use deprov_core::{SigningAlgorithm, SubjectMapping, TenantName};
use deprov_revocation::outbound::validate_target_url;
use deprov_store::Store;
use deprov_store::targets::{NewRelyingParty, RelyingParty};
use serde_json::json;

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
    /// Register it disabled (nothing is delivered until enabled).
    #[arg(long)]
    pub disabled: bool,
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
                println!("configuration is valid");
                println!("{}", serde_json::to_string_pretty(&config.redacted_json())?);
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
                println!("{}: schema is up to date", store.location());
            } else {
                println!("{}: applied {}", store.location(), pending.join(", "));
            }
            store.close().await?;
            Ok(())
        }
        Command::Serve => serve(config).await,
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
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
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
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("listen ({}): cannot bind", config.listen))?;
    let config = Arc::new(config);
    let running = Running::start(config.clone(), store, listener)?;
    tracing::info!(
        listen = %running.local_addr(),
        public_url = %config.public_url(),
        "deprov is serving"
    );
    wait_for_signal().await;
    running.shutdown().await
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
                println!("Created tenant {:?}.", created.tenant.name);
                println!("  SCIM base URL: {base}");
                println!("  SCIM token:    {}", created.token.token.expose());
                println!("The token is shown only now.");
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
                    println!("{}\t{}", t.name, scim_base_url(config, &t.name));
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
                    println!(
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
                println!("New SCIM token for {tenant:?} (id {}):", model.id);
                println!("  {}", token.token.expose());
                println!("The token is shown only now.");
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
                println!(
                    "Revoked token {} ({}) of {tenant:?}.",
                    revoked.id, revoked.hint
                );
            }
        }
    }
    Ok(())
}

fn rp_json(rp: &RelyingParty) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(rp)?)
}

async fn rp(cmd: RpCommand, store: &Store, config: &Config, json: bool) -> anyhow::Result<()> {
    match cmd {
        RpCommand::Add(add) => {
            let uri = validate_target_url(&add.backchannel_logout_uri, config.address_policy())
                .context("--backchannel-logout-uri")?;
            let subject = SubjectMapping::parse(&add.subject).context("--subject")?;
            let alg = SigningAlgorithm::parse(&add.alg).context("--alg")?;
            if add.client_id.trim().is_empty() {
                anyhow::bail!("--client-id: must not be empty");
            }
            if let Some(iss) = &add.issuer {
                let parsed = url::Url::parse(iss).map_err(|e| {
                    anyhow::anyhow!("--issuer: {iss:?} is not an absolute URL: {e}")
                })?;
                if parsed.scheme() != "https" && !config.allow_insecure_targets {
                    anyhow::bail!("--issuer: {iss:?} must be an https URL");
                }
            }
            let rp = store
                .add_relying_party(
                    &add.tenant,
                    NewRelyingParty {
                        client_id: add.client_id,
                        backchannel_logout_uri: uri,
                        subject,
                        alg,
                        require_sid: add.require_sid,
                        issuer: add.issuer,
                        groups: add.groups,
                        enabled: !add.disabled,
                    },
                    CLI_ACTOR,
                )
                .await?;
            if json {
                print_json(&rp_json(&rp)?)?;
            } else {
                println!(
                    "Registered relying party {} (client_id {:?}) for tenant {:?}.",
                    rp.id, rp.client_id, rp.tenant
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
                    println!(
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
        RpCommand::Remove { tenant, rp } => {
            let removed = store.remove_relying_party(&tenant, &rp, CLI_ACTOR).await?;
            if json {
                print_json(&rp_json(&removed)?)?;
            } else {
                println!(
                    "Removed relying party {} ({:?}).",
                    removed.id, removed.client_id
                );
            }
        }
    }
    Ok(())
}
