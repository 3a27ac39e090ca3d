//! The `grants` table: tokens applications hold, sealed, to revoke at their OP.

use sea_orm::entity::prelude::*;

/// `Debug` is derived: `token_sealed` is ciphertext, never the token.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "grants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub target_id: String,
    pub user_id: String,
    pub subject: String,
    pub token_sealed: String,
    pub token_hash: String,
    pub token_type_hint: Option<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub last_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
