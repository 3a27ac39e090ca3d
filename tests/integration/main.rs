//! deprov's integration tests: one binary, modules by area. Each test gets a fresh
//! database; tests declared with `db_test!` run once on SQLite and once on PostgreSQL
//! (when `DEPROV_TEST_DATABASE_URL` is set).

mod admin;
mod console;
mod delivery;
mod durability;
mod keys;
mod metrics;
mod op_revocation;
mod scim_entra;
mod scim_harness;
mod scim_okta;
mod scim_protocol;
mod scim_store;
mod store;
