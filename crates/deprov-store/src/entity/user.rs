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

impl crate::sqlite::Decode for Model {
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

    fn decode(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            tenant_id: row.get(1)?,
            user_name: row.get(2)?,
            user_name_folded: row.get(3)?,
            external_id: row.get(4)?,
            display_name: row.get(5)?,
            active: row.get(6)?,
            resource: crate::sqlite::json_column(row, 7)?,
            version: row.get(8)?,
            created_at: row.get(9)?,
            updated_at: row.get(10)?,
        })
    }
}
