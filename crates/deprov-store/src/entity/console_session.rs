//! The `console_sessions` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "console_sessions")]
pub struct Model {
    /// SHA-256 (hex) of the session id in the cookie.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id_hash: String,
    pub actor: String,
    /// `admin_token:<id>` or `configured:<hash>` (see the migration).
    pub credential: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
