//! The `target_groups` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "target_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub target_id: String,
    pub group_ref: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub group_ref_folded: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
