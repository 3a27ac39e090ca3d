//! The JSON shapes of the admin API, shared with the CLI's `--json` output so that a script
//! reads the same document from either: requests (with their validation) and responses
//! (with their OpenAPI schemas). Times are milliseconds since the Unix epoch.

use deprov_core::{SigningAlgorithm, SubjectMapping};
use deprov_revocation::keys::{KeyInfo, Rotation};
use deprov_revocation::outbound::validate_target_url;
use deprov_store::operations::{AuditEntry, Delivery};
use deprov_store::outbox::{EventSummary, EventTrail};
use deprov_store::targets::{NewRelyingParty, RelyingParty};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::config::Config;

/// Largest page of a list.
pub const MAX_LIMIT: u64 = 1000;
/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u64 = 50;

// ---- tenants and tokens ----------------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// Lower-case letters, digits and `-` (a URL path segment).
    #[schema(example = "acme")]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    pub tenant: String,
    pub tenant_id: String,
    pub scim_base_url: String,
    pub created_at: i64,
}

/// A tenant just created, with its first SCIM token: shown only in this answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedTenantView {
    pub tenant: String,
    pub tenant_id: String,
    pub scim_base_url: String,
    pub scim_token: String,
    pub scim_token_id: String,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueTokenRequest {
    /// A note to tell tokens apart (`okta-prod`).
    pub label: Option<String>,
}

/// A SCIM or admin token as listed: never its value.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    /// The prefix and first characters, to tell tokens apart.
    #[schema(example = "deprov_scim_AbC1…")]
    pub hint: String,
    pub label: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<deprov_store::tenants::ScimToken> for TokenView {
    fn from(t: deprov_store::tenants::ScimToken) -> Self {
        Self {
            id: t.id,
            hint: t.hint,
            label: t.label,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

impl From<deprov_store::admin_tokens::AdminToken> for TokenView {
    fn from(t: deprov_store::admin_tokens::AdminToken) -> Self {
        Self {
            id: t.id,
            hint: t.hint,
            label: t.label,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new SCIM token: its value is shown only in this answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedScimTokenView {
    pub tenant: String,
    pub scim_base_url: String,
    pub scim_token: String,
    pub scim_token_id: String,
}

/// A new admin token: its value is shown only in this answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedAdminTokenView {
    pub admin_token: String,
    pub id: String,
    pub hint: String,
    pub label: Option<String>,
    pub created_at: i64,
}

// ---- relying parties -------------------------------------------------------------------

fn default_subject() -> String {
    "externalId|id".to_owned()
}

fn default_alg() -> String {
    "RS256".to_owned()
}

fn yes() -> bool {
    true
}

/// A relying party to register (`deprov rp add` takes the same, as flags).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelyingPartyRequest {
    /// The application's OAuth client_id: the `aud` of its logout tokens.
    #[schema(example = "wiki")]
    pub client_id: String,
    /// Where logout tokens are POSTed: absolute https URL without fragment.
    #[schema(example = "https://wiki.example.com/backchannel-logout")]
    pub backchannel_logout_uri: String,
    /// SCIM attribute that becomes `sub`: `externalId|id` (default), `id`, `externalId`,
    /// `userName`, `emails.primary`, or an attribute path.
    #[serde(default = "default_subject")]
    #[schema(default = "externalId|id")]
    pub subject: String,
    /// Groups (display name or id); removal from one also logs the user out.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Signing algorithm of its logout tokens: RS256, ES256 or EdDSA.
    #[serde(default = "default_alg")]
    #[schema(default = "RS256")]
    pub alg: String,
    /// The application requires `sid` in logout tokens.
    #[serde(default)]
    pub require_sid: bool,
    /// `iss` of its logout tokens, when deprov signs for the OP the application logs in with.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Sign its logout tokens with this key (e.g. one imported from that OP).
    #[serde(default)]
    pub kid: Option<String>,
    /// Registered disabled when false: nothing is delivered until enabled.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub enabled: bool,
}

/// A request field that is not acceptable, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// The field's name in the API (`backchannel_logout_uri`); the CLI's flag is
    /// `--` + the name with `-` for `_`.
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl RelyingPartyRequest {
    /// Checks every field, in the order the CLI always has: the URL (against the outbound
    /// policy), the subject mapping, the algorithm, the client_id, the issuer, the groups.
    pub fn validate(self, config: &Config) -> Result<NewRelyingParty, InvalidField> {
        let uri = validate_target_url(&self.backchannel_logout_uri, config.address_policy())
            .map_err(|e| invalid("backchannel_logout_uri", e.to_string()))?;
        let subject =
            SubjectMapping::parse(&self.subject).map_err(|e| invalid("subject", e.to_string()))?;
        let alg = SigningAlgorithm::parse(&self.alg).map_err(|e| invalid("alg", e.to_string()))?;
        if self.client_id.trim().is_empty() {
            return Err(invalid("client_id", "must not be empty"));
        }
        if let Some(iss) = &self.issuer {
            let parsed = url::Url::parse(iss)
                .map_err(|e| invalid("issuer", format!("{iss:?} is not an absolute URL: {e}")))?;
            if parsed.scheme() != "https" && !config.allow_insecure_targets {
                return Err(invalid("issuer", format!("{iss:?} must be an https URL")));
            }
        }
        if let Some(i) = self.groups.iter().position(|g| g.trim().is_empty()) {
            return Err(invalid(&format!("groups[{i}]"), "must not be empty"));
        }
        Ok(NewRelyingParty {
            client_id: self.client_id,
            backchannel_logout_uri: uri,
            subject,
            alg,
            require_sid: self.require_sid,
            issuer: self.issuer,
            kid: self.kid,
            groups: self.groups,
            enabled: self.enabled,
        })
    }
}

/// What PATCH may change on a relying party.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRelyingPartyRequest {
    pub enabled: bool,
}

/// A relying party as stored (the same document as `deprov rp show --json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RelyingPartyView {
    pub id: String,
    pub tenant: String,
    pub client_id: String,
    pub backchannel_logout_uri: String,
    pub subject: String,
    pub alg: String,
    pub require_sid: bool,
    pub issuer: Option<String>,
    pub kid: Option<String>,
    pub groups: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<RelyingParty> for RelyingPartyView {
    fn from(rp: RelyingParty) -> Self {
        Self {
            id: rp.id,
            tenant: rp.tenant,
            client_id: rp.client_id,
            backchannel_logout_uri: rp.config.backchannel_logout_uri,
            subject: rp.config.subject,
            alg: rp.config.alg,
            require_sid: rp.config.require_sid,
            issuer: rp.config.issuer,
            kid: rp.config.kid,
            groups: rp.groups,
            enabled: rp.enabled,
            created_at: rp.created_at,
            updated_at: rp.updated_at,
        }
    }
}

// ---- paging ----------------------------------------------------------------------------

/// `limit` and `offset` as given, checked.
pub fn page_bounds(limit: Option<u64>, offset: Option<u64>) -> Result<(u64, u64), InvalidField> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}, not {limit}"),
        ));
    }
    Ok((limit, offset.unwrap_or(0)))
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this tenant's events (by name).
    pub tenant: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// Events to skip (default 0).
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// Only this tenant's deliveries (by name).
    pub tenant: Option<String>,
    /// pending, retrying, delivered, dead or cancelled.
    pub status: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// Deliveries to skip (default 0).
    pub offset: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantFilter {
    /// Only this tenant's (by name); every tenant's when absent.
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only records about this tenant (by name).
    pub tenant: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// Records to skip (default 0).
    pub offset: Option<u64>,
}

// ---- events ----------------------------------------------------------------------------

/// An event with the state of its deliveries.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventSummaryView {
    pub id: String,
    pub tenant_id: String,
    /// `deactivated`, `deleted` or `removed_from_group`.
    pub kind: String,
    pub user_id: String,
    pub user_name: Option<String>,
    pub group_display_name: Option<String>,
    pub request_id: String,
    pub occurred_at: i64,
    pub deliveries: u64,
    pub delivered: u64,
    pub dead: u64,
}

impl From<EventSummary> for EventSummaryView {
    fn from(e: EventSummary) -> Self {
        Self {
            id: e.id,
            tenant_id: e.tenant_id,
            kind: e.kind,
            user_id: e.user_id,
            user_name: e.user_name,
            group_display_name: e.group_display_name,
            request_id: e.request_id,
            occurred_at: e.occurred_at,
            deliveries: e.deliveries,
            delivered: e.delivered,
            dead: e.dead,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    /// Events matching the filter, in all pages.
    pub total: u64,
    pub items: Vec<EventSummaryView>,
}

/// The SCIM request that caused an event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScimRequestView {
    pub request_id: String,
    pub method: String,
    pub path: String,
}

/// One attempt to deliver.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub attempt: i32,
    pub started_at: i64,
    pub latency_ms: i32,
    pub http_status: Option<i32>,
    /// The delivery's status this attempt led to.
    pub outcome: String,
    pub error: Option<String>,
    /// The start of the response body.
    pub response_excerpt: Option<String>,
}

/// A delivery with every attempt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrailDeliveryView {
    pub id: String,
    pub target_id: String,
    /// The target's client_id; null when the target was removed since.
    pub client_id: Option<String>,
    pub target_kind: String,
    pub status: String,
    pub attempt_count: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub attempts: Vec<AttemptView>,
}

/// An event's whole trail: the SCIM request → the event → each delivery → each attempt
/// (the same document as `deprov events show ID --json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventTrailView {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub occurred_at: i64,
    pub user_id: String,
    /// The user as stored when the event happened.
    #[schema(value_type = Object)]
    pub user: Value,
    pub group_id: Option<String>,
    pub group_display_name: Option<String>,
    pub scim_request: ScimRequestView,
    pub deliveries: Vec<TrailDeliveryView>,
}

impl From<&EventTrail> for EventTrailView {
    fn from(trail: &EventTrail) -> Self {
        let e = &trail.event;
        Self {
            id: e.id.clone(),
            tenant_id: e.tenant_id.clone(),
            kind: e.kind.clone(),
            occurred_at: e.occurred_at,
            user_id: e.user_id.clone(),
            user: e.user_snapshot.clone(),
            group_id: e.group_id.clone(),
            group_display_name: e.group_display_name.clone(),
            scim_request: ScimRequestView {
                request_id: e.request_id.clone(),
                method: e.scim_method.clone(),
                path: e.scim_path.clone(),
            },
            deliveries: trail
                .deliveries
                .iter()
                .map(|d| TrailDeliveryView {
                    id: d.delivery.id.clone(),
                    target_id: d.delivery.target_id.clone(),
                    client_id: d.client_id.clone(),
                    target_kind: d.delivery.target_kind.clone(),
                    status: d.delivery.status.clone(),
                    attempt_count: narrow(d.delivery.attempt_count),
                    next_attempt_at: d.delivery.next_attempt_at,
                    last_error: d.delivery.last_error.clone(),
                    created_at: d.delivery.created_at,
                    completed_at: d.delivery.completed_at,
                    attempts: d
                        .attempts
                        .iter()
                        .map(|a| AttemptView {
                            attempt: narrow(a.attempt_no),
                            started_at: a.started_at,
                            latency_ms: narrow(a.latency_ms),
                            http_status: a.http_status.map(narrow),
                            outcome: a.outcome.clone(),
                            error: a.error.clone(),
                            response_excerpt: a.response_excerpt.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

// ---- deliveries ------------------------------------------------------------------------

/// A delivery of an event to a target (the rows of `deprov deliveries list --json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub tenant_id: String,
    pub target_id: String,
    pub target_kind: String,
    /// pending, retrying, delivered, dead or cancelled.
    pub status: String,
    pub attempt_count: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub redriven_at: Option<i64>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            tenant_id: d.tenant_id,
            target_id: d.target_id,
            target_kind: d.target_kind,
            status: d.status,
            attempt_count: narrow(d.attempt_count),
            next_attempt_at: d.next_attempt_at,
            last_error: d.last_error,
            created_at: d.created_at,
            completed_at: d.completed_at,
            redriven_at: d.redriven_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// Deliveries matching the filters, in all pages.
    pub total: u64,
    pub items: Vec<DeliveryView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedriveResult {
    /// How many dead letters were put back in the queue.
    pub redriven: u64,
}

// ---- keys ------------------------------------------------------------------------------

/// A signing key without its private half.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    /// `active` (signs, published) or `retired` (published until its tokens expired).
    pub status: String,
    /// `generated` or `imported`.
    pub source: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// The public key as a JWK.
    #[schema(value_type = Object)]
    pub public_jwk: Value,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> Self {
        Self {
            kid: k.kid,
            alg: k.alg,
            status: k.status,
            source: k.source,
            created_at: k.created_at,
            retired_at: k.retired_at,
            public_jwk: k.public_jwk,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeyRequest {
    /// RS256, ES256 or EdDSA.
    #[schema(example = "RS256")]
    pub alg: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotationView {
    pub new: KeyView,
    /// The previous default key of the algorithm, now retired.
    pub retired: Vec<KeyView>,
}

impl From<Rotation> for RotationView {
    fn from(r: Rotation) -> Self {
        Self {
            new: r.new.into(),
            retired: r.retired.into_iter().map(KeyView::from).collect(),
        }
    }
}

// ---- audit -----------------------------------------------------------------------------

/// Who changed what, when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub id: i64,
    pub occurred_at: i64,
    /// `cli`, `admin:<token hint>`, `scim:<tenant>`, `system`.
    pub actor: String,
    pub tenant_id: Option<String>,
    /// `noun.verb`: `tenant.create`, `target.add`, `delivery.redrive`…
    pub action: String,
    pub subject_type: String,
    pub subject_id: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(a: AuditEntry) -> Self {
        Self {
            id: a.id,
            occurred_at: a.occurred_at,
            actor: a.actor,
            tenant_id: a.tenant_id,
            action: a.action,
            subject_type: a.subject_type,
            subject_id: a.subject_id,
            request_id: a.request_id,
            detail: a.detail,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    pub total: u64,
    pub items: Vec<AuditEntryView>,
}

/// A count or a duration the API documents as a 32-bit integer (the store keeps every
/// integer as an `i64`); saturates, which no real count or latency reaches.
fn narrow(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}
