//! The `users` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub user_name: String,
    pub user_name_folded: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub resource: Json,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl crate::decode::Decode for Model {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "tenant_id",
        "user_name",
        "user_name_folded",
        "external_id",
        "display_name",
        "active",
        "resource",
        "version",
        "created_at",
        "updated_at",
    ];

    fn decode(row: &impl crate::decode::Row) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.text(0)?,
            tenant_id: row.text(1)?,
            user_name: row.text(2)?,
            user_name_folded: row.text(3)?,
            external_id: row.text_or_null(4)?,
            display_name: row.text_or_null(5)?,
            active: row.boolean(6)?,
            resource: row.json(7)?,
            version: row.int(8)?,
            created_at: row.int(9)?,
            updated_at: row.int(10)?,
        })
    }
}
