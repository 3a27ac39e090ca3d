//! The schema, as ordered, append-only migrations: the only source of schema for the binary
//! and for every test. Never edit a migration that has shipped; add a new one.

use sea_orm_migration::prelude::*;

mod m20261129_000001_initial;
mod m20261129_000002_one_active_signing_key;
mod m20261202_000001_console_sessions;
mod m20261202_000100_op_targets;
mod m20261202_000200_assertion_jtis;
mod m20261202_000300_wide_integers;
mod m20261206_000001_waiting_by_target;
mod m20261206_000002_room_for_leases;
mod m20261207_000001_user_resource_text;

#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261129_000001_initial::Migration),
            Box::new(m20261129_000002_one_active_signing_key::Migration),
            Box::new(m20261202_000001_console_sessions::Migration),
            Box::new(m20261202_000100_op_targets::Migration),
            Box::new(m20261202_000200_assertion_jtis::Migration),
            Box::new(m20261202_000300_wide_integers::Migration),
            Box::new(m20261206_000001_waiting_by_target::Migration),
            Box::new(m20261206_000002_room_for_leases::Migration),
            Box::new(m20261207_000001_user_resource_text::Migration),
        ]
    }
}
