//! The `groups` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub display_name_folded: String,
    pub external_id: Option<String>,
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
        "display_name",
        "display_name_folded",
        "external_id",
        "resource",
        "version",
        "created_at",
        "updated_at",
    ];

    fn select_row() -> &'static str {
        static LIST: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| Model::select(crate::scim::filter::ROW));
        &LIST
    }

    fn decode(row: &impl crate::decode::Row) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.text(0)?,
            tenant_id: row.text(1)?,
            display_name: row.text(2)?,
            display_name_folded: row.text(3)?,
            external_id: row.text_or_null(4)?,
            resource: row.json(5)?,
            version: row.int(6)?,
            created_at: row.int(7)?,
            updated_at: row.int(8)?,
        })
    }
}
