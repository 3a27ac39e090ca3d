//! The schema catalog: the SCIM Schema documents in the repository's `schemas/` folder
//! (RFC 7643 §7, §8.7), loaded once and used for everything that depends on an attribute's
//! definition — body normalisation, PATCH, filter and sort resolution, and
//! `attributes`/`excludedAttributes` projection.
//!
//! Attribute names and schema URNs are case-insensitive (RFC 7643 §2.1); lookups here
//! always answer with the schema's own spelling, which is what gets stored.

use std::sync::LazyLock;

use deprov_core::scim::{AttrRef, AttrType, ResourceKind};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ScimError, ScimResult};

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// The served documents, compiled in from `schemas/`.
pub mod files {
    pub const USER: &str = include_str!("../../../../schemas/User.json");
    pub const GROUP: &str = include_str!("../../../../schemas/Group.json");
    pub const ENTERPRISE_USER: &str = include_str!("../../../../schemas/EnterpriseUser.json");
    pub const RESOURCE_TYPES: &str = include_str!("../../../../schemas/ResourceTypes.json");
    pub const SERVICE_PROVIDER_CONFIG: &str =
        include_str!("../../../../schemas/ServiceProviderConfig.json");
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    #[default]
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// RFC 7643 §7 `returned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    #[default]
    Default,
    Request,
}

/// RFC 7643 §7 `uniqueness`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    #[default]
    None,
    Server,
    Global,
}

/// One attribute definition (RFC 7643 §7).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDef {
    pub name: String,
    #[serde(rename = "type", deserialize_with = "de_type")]
    pub kind: AttrType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub required: bool,
    /// RFC 7643 §2.2: defaults to false.
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default)]
    pub mutability: Mutability,
    #[serde(default)]
    pub returned: Returned,
    #[serde(default)]
    pub uniqueness: Uniqueness,
    #[serde(default)]
    pub sub_attributes: Vec<AttributeDef>,
}

impl AttributeDef {
    /// The sub-attribute named `name`, in any case.
    pub fn sub(&self, name: &str) -> Option<&AttributeDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn is_complex(&self) -> bool {
        self.kind == AttrType::Complex
    }

    fn simple(name: &str, kind: AttrType, mutability: Mutability, case_exact: bool) -> Self {
        AttributeDef {
            name: name.to_owned(),
            kind,
            multi_valued: false,
            required: false,
            case_exact,
            mutability,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            sub_attributes: Vec::new(),
        }
    }
}

fn de_type<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AttrType, D::Error> {
    let s = String::deserialize(d)?;
    Ok(match s.to_ascii_lowercase().as_str() {
        "string" => AttrType::String,
        "boolean" => AttrType::Boolean,
        "decimal" => AttrType::Decimal,
        "integer" => AttrType::Integer,
        "datetime" => AttrType::DateTime,
        "binary" => AttrType::Binary,
        "reference" => AttrType::Reference,
        "complex" => AttrType::Complex,
        other => {
            return Err(serde::de::Error::custom(format!(
                "unknown attribute type {other:?}"
            )));
        }
    })
}

/// One schema document (RFC 7643 §7).
#[derive(Debug, Clone, Deserialize)]
pub struct SchemaDef {
    pub id: String,
    pub name: Option<String>,
    pub attributes: Vec<AttributeDef>,
}

impl SchemaDef {
    pub fn attr(&self, name: &str) -> Option<&AttributeDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// A resource type with its core schema, its extensions and the common attributes of
/// RFC 7643 §3.1 (`id`, `externalId`, `meta`), which no schema document lists.
#[derive(Debug, Clone)]
pub struct ResourceSchema {
    pub kind: ResourceKind,
    /// `User` or `Group`.
    pub name: &'static str,
    /// `/Users` or `/Groups`.
    pub endpoint: &'static str,
    pub core: SchemaDef,
    pub extensions: Vec<SchemaDef>,
    pub common: Vec<AttributeDef>,
}

/// Where an attribute lives: in the core schema (or the common attributes), or in an
/// extension whose attributes are stored under the extension's URN.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// The extension schema, `None` for core and common attributes.
    pub extension: Option<&'a SchemaDef>,
    pub attr: &'a AttributeDef,
}

impl<'a> Found<'a> {
    /// The canonical JSON path of the attribute (and optionally one sub-attribute) in the
    /// stored resource, as [`AttrRef::path`] expects.
    pub fn path(&self, sub: Option<&AttributeDef>) -> Vec<String> {
        let mut path = Vec::with_capacity(3);
        if let Some(ext) = self.extension {
            path.push(ext.id.clone());
        }
        path.push(self.attr.name.clone());
        if let Some(sub) = sub {
            path.push(sub.name.clone());
        }
        path
    }

    /// The store's view of the attribute (or one of its sub-attributes).
    pub fn attr_ref(&self, sub: Option<&AttributeDef>) -> AttrRef {
        let leaf = sub.unwrap_or(self.attr);
        let offset = usize::from(self.extension.is_some());
        AttrRef {
            path: self.path(sub),
            kind: leaf.kind,
            case_exact: leaf.case_exact,
            multi_valued_at: self.attr.multi_valued.then_some(offset),
        }
    }
}

impl ResourceSchema {
    /// The extension with this URN, in any case.
    pub fn extension(&self, urn: &str) -> Option<&SchemaDef> {
        self.extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(urn))
    }

    pub fn is_core_urn(&self, urn: &str) -> bool {
        self.core.id.eq_ignore_ascii_case(urn)
    }

    /// Every schema URN a resource of this type may declare.
    pub fn urns(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.core.id.as_str()).chain(self.extensions.iter().map(|e| e.id.as_str()))
    }

    /// Looks up a top-level attribute by optional schema URN and name (RFC 7644 §3.10:
    /// the URN is optional for core attributes; an extension attribute is found without
    /// it too when its name is not also a core attribute).
    pub fn find(&self, uri: Option<&str>, name: &str) -> Option<Found<'_>> {
        let core = || {
            self.common
                .iter()
                .chain(self.core.attributes.iter())
                .find(|a| a.name.eq_ignore_ascii_case(name))
                .map(|attr| Found {
                    extension: None,
                    attr,
                })
        };
        fn in_ext<'s>(ext: &'s SchemaDef, name: &str) -> Option<Found<'s>> {
            ext.attr(name).map(|attr| Found {
                extension: Some(ext),
                attr,
            })
        }
        match uri {
            Some(u) if self.is_core_urn(u) => core(),
            Some(u) => self.extension(u).and_then(|e| in_ext(e, name)),
            None => core().or_else(|| self.extensions.iter().find_map(|e| in_ext(e, name))),
        }
    }

    /// Resolves a parsed attribute path to the attribute and sub-attribute definitions.
    pub fn resolve(
        &self,
        path: &scim_v2::filter::AttrPath,
    ) -> Option<(Found<'_>, Option<&AttributeDef>)> {
        let found = self.find(path.uri.as_deref(), &path.name)?;
        match &path.sub_attr {
            None => Some((found, None)),
            Some(sub) => found.attr.sub(sub).map(|s| (found, Some(s))),
        }
    }
}

/// Every schema deprov serves, and the two resource types.
#[derive(Debug)]
pub struct Catalog {
    pub user: ResourceSchema,
    pub group: ResourceSchema,
    /// The schema documents as served (RFC 7643 §7), without `meta`.
    pub documents: Vec<Value>,
    pub resource_types: Vec<Value>,
    pub service_provider_config: Value,
}

impl Catalog {
    pub fn resource(&self, kind: ResourceKind) -> &ResourceSchema {
        match kind {
            ResourceKind::User => &self.user,
            ResourceKind::Group => &self.group,
        }
    }

    fn load() -> Result<Catalog, String> {
        let parse = |name: &str, text: &str| -> Result<Value, String> {
            serde_json::from_str(text).map_err(|e| format!("schemas/{name}: {e}"))
        };
        let def = |name: &str, doc: &Value| -> Result<SchemaDef, String> {
            SchemaDef::deserialize(doc).map_err(|e| format!("schemas/{name}: {e}"))
        };
        let user_doc = parse("User.json", files::USER)?;
        let group_doc = parse("Group.json", files::GROUP)?;
        let enterprise_doc = parse("EnterpriseUser.json", files::ENTERPRISE_USER)?;
        let resource_types = match parse("ResourceTypes.json", files::RESOURCE_TYPES)? {
            Value::Array(items) => items,
            _ => return Err("schemas/ResourceTypes.json: expected an array".to_owned()),
        };
        let service_provider_config =
            parse("ServiceProviderConfig.json", files::SERVICE_PROVIDER_CONFIG)?;
        let user = ResourceSchema {
            kind: ResourceKind::User,
            name: "User",
            endpoint: "/Users",
            core: def("User.json", &user_doc)?,
            extensions: vec![def("EnterpriseUser.json", &enterprise_doc)?],
            common: common_attributes(),
        };
        let group = ResourceSchema {
            kind: ResourceKind::Group,
            name: "Group",
            endpoint: "/Groups",
            core: def("Group.json", &group_doc)?,
            extensions: Vec::new(),
            common: common_attributes(),
        };
        Ok(Catalog {
            user,
            group,
            documents: vec![user_doc, group_doc, enterprise_doc],
            resource_types,
            service_provider_config,
        })
    }
}

/// RFC 7643 §3.1: `id` (readOnly, caseExact), `externalId` (readWrite, caseExact) and
/// `meta` (readOnly), which every resource has and no schema document lists.
fn common_attributes() -> Vec<AttributeDef> {
    let mut id = AttributeDef::simple("id", AttrType::String, Mutability::ReadOnly, true);
    id.returned = Returned::Always;
    id.uniqueness = Uniqueness::Server;
    let external_id =
        AttributeDef::simple("externalId", AttrType::String, Mutability::ReadWrite, true);
    let mut meta = AttributeDef::simple("meta", AttrType::Complex, Mutability::ReadOnly, false);
    meta.sub_attributes = vec![
        AttributeDef::simple("resourceType", AttrType::String, Mutability::ReadOnly, true),
        AttributeDef::simple("created", AttrType::DateTime, Mutability::ReadOnly, false),
        AttributeDef::simple(
            "lastModified",
            AttrType::DateTime,
            Mutability::ReadOnly,
            false,
        ),
        AttributeDef::simple("location", AttrType::Reference, Mutability::ReadOnly, true),
        AttributeDef::simple("version", AttrType::String, Mutability::ReadOnly, true),
    ];
    vec![id, external_id, meta]
}

/// Parses an attribute path (`userName`, `name.givenName`, `urn:…:User:manager.value`)
/// with scim_v2's PATCH-path grammar; `None` for anything else (a value filter included).
pub fn parse_attr_path(s: &str) -> Option<scim_v2::filter::AttrPath> {
    match s.parse::<scim_v2::filter::PatchPath>() {
        Ok(scim_v2::filter::PatchPath::Attr(p)) => Some(p),
        _ => None,
    }
}

static CATALOG: LazyLock<Result<Catalog, String>> = LazyLock::new(Catalog::load);

/// The catalog. The documents are compiled in and checked by this crate's tests, so an
/// error here means a broken build; it is answered with a 500 rather than a panic.
pub fn catalog() -> ScimResult<&'static Catalog> {
    CATALOG.as_ref().map_err(|e| {
        tracing::error!(error = %e, "the SCIM schema documents cannot be loaded");
        ScimError::internal(&SchemaLoadError(e.clone()))
    })
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SchemaLoadError(String);

#[cfg(test)]
mod tests;
