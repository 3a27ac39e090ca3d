//! The store's contracts, on both backends.

use deprov_core::{SigningAlgorithm, SubjectMapping, TenantName};
use deprov_store::targets::NewRelyingParty;
use deprov_store::{Store, StoreError, db_test};
use sea_orm::{ConnectionTrait, Statement};

fn name(s: &str) -> anyhow::Result<TenantName> {
    Ok(TenantName::parse(s)?)
}

db_test!(tenant_names_are_unique, |store: Store, _url| async move {
    store.create_tenant(&name("acme")?, "test").await?;
    let second = store.create_tenant(&name("acme")?, "test").await;
    assert!(
        matches!(&second, Err(StoreError::Conflict(msg)) if msg.contains("acme already exists")),
        "{second:?}"
    );
    assert_eq!(store.list_tenants().await?.len(), 1);
    Ok(())
});

db_test!(
    first_start_creates_default_tenant_once,
    |store: Store, _url| async move {
        let first = store.ensure_first_tenant().await?;
        assert_eq!(first.map(|c| c.tenant.name), Some("default".to_owned()));
        assert!(store.ensure_first_tenant().await?.is_none());
        Ok(())
    }
);

db_test!(
    scim_tokens_authenticate_only_their_own_tenant,
    |store: Store, _url| async move {
        let acme = store.create_tenant(&name("acme")?, "test").await?;
        let globex = store.create_tenant(&name("globex")?, "test").await?;
        let acme_token = acme.token.token.expose();
        let authed = store.authenticate_scim("acme", acme_token).await?;
        assert_eq!(authed.map(|t| t.name), Some("acme".to_owned()));
        assert!(
            store
                .authenticate_scim("globex", acme_token)
                .await?
                .is_none()
        );
        assert!(
            store
                .authenticate_scim("acme", globex.token.token.expose())
                .await?
                .is_none()
        );
        assert!(
            store
                .authenticate_scim("acme", "deprov_scim_wrong")
                .await?
                .is_none()
        );
        assert!(store.authenticate_scim("acme", "").await?.is_none());
        // The token itself is never stored, only its hash.
        let stored = store.list_scim_tokens("acme").await?;
        assert!(
            stored
                .iter()
                .all(|t| !t.token_hash.contains(acme_token) && t.token_hash.len() == 64)
        );
        Ok(())
    }
);

db_test!(
    concurrent_writes_commit_alone_or_fail_alone,
    |store: Store, _url| async move {
        // 40 writers at once: 30 distinct tenants, and 10 that all want the name "dup".
        // On SQLite they share transactions (write_batch.rs); each still commits or fails on
        // its own.
        let before = store.write_batches();
        let fsyncs_before = store.wal_syncs();
        let mut writers = tokio::task::JoinSet::new();
        for i in 0..40 {
            let store = store.clone();
            let n = if i < 30 {
                format!("t{i}")
            } else {
                "dup".to_owned()
            };
            writers.spawn(async move {
                store
                    .create_tenant(&name(&n)?, "test")
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            });
        }
        // A write abandoned halfway, among them: it leaves nothing and blocks no one.
        let abandoned = store.begin_write().await?;
        abandoned
            .execute_unprepared(
                "INSERT INTO tenants (id, name, created_at) VALUES ('abandoned', 'abandoned', 0)",
            )
            .await?;
        drop(abandoned);
        let (mut ok, mut conflicts) = (0, 0);
        while let Some(result) = writers.join_next().await {
            match result? {
                Ok(()) => ok += 1,
                Err(e) if matches!(e.downcast_ref(), Some(StoreError::Conflict(_))) => {
                    conflicts += 1
                }
                Err(e) => return Err(e),
            }
        }
        assert_eq!((ok, conflicts), (31, 9));
        let mut names: Vec<String> = store
            .list_tenants()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.sort();
        assert_eq!(names.len(), 31);
        assert!(names.contains(&"dup".to_owned()) && !names.contains(&"abandoned".to_owned()));
        // Every tenant's first token came with it, and no token of a failed write.
        for n in &names {
            assert_eq!(store.list_scim_tokens(n).await?.len(), 1, "tokens of {n}");
        }
        if store.backend() == deprov_store::Backend::Sqlite {
            let batches = store.write_batches() - before;
            assert!(
                batches < 41,
                "41 writes in {batches} batches: no write was batched"
            );
            // Each batch is made durable by one fsync at most, not one per writer in it.
            let fsyncs = store.wal_syncs() - fsyncs_before;
            assert!(
                (1..=batches).contains(&fsyncs),
                "{batches} batches took {fsyncs} fsyncs"
            );
        }
        // And the store goes on writing.
        store.create_tenant(&name("after")?, "test").await?;
        Ok(())
    }
);

db_test!(
    revoked_tokens_stop_working_and_others_keep_working,
    |store: Store, _url| async move {
        let acme = store.create_tenant(&name("acme")?, "test").await?;
        let (second, second_token) = store
            .issue_scim_token("acme", Some("rotation"), "test")
            .await?;
        // Authenticated (and so remembered for a moment) just before the revocation: the
        // revocation still takes effect at once in this process.
        assert!(
            store
                .authenticate_scim("acme", acme.token.token.expose())
                .await?
                .is_some()
        );
        store
            .revoke_scim_token("acme", &acme.token_id, "test")
            .await?;
        assert!(
            store
                .authenticate_scim("acme", acme.token.token.expose())
                .await?
                .is_none()
        );
        assert!(
            store
                .authenticate_scim("acme", second_token.token.expose())
                .await?
                .is_some()
        );
        // Revoking twice is not an error; a token of another tenant is not found.
        store
            .revoke_scim_token("acme", &acme.token_id, "test")
            .await?;
        store.create_tenant(&name("globex")?, "test").await?;
        assert!(matches!(
            store.revoke_scim_token("globex", &second.id, "test").await,
            Err(StoreError::NotFound(_))
        ));
        Ok(())
    }
);

db_test!(
    relying_parties_round_trip_with_group_bindings,
    |store: Store, _url| async move {
        store.create_tenant(&name("acme")?, "test").await?;
        let rp = NewRelyingParty {
            client_id: "wiki".into(),
            backchannel_logout_uri: url_of("https://wiki.example.com/bcl?x=1")?,
            subject: SubjectMapping::UserName,
            alg: SigningAlgorithm::ES256,
            require_sid: false,
            issuer: None,
            kid: None,
            groups: vec!["Engineering".into(), "engineering".into(), "Ops".into()],
            enabled: true,
        };
        let added = store.add_relying_party("acme", rp.clone(), "test").await?;
        assert_eq!(
            added.groups,
            vec!["Engineering".to_owned(), "Ops".to_owned()]
        );
        assert!(matches!(
            store.add_relying_party("acme", rp, "test").await,
            Err(StoreError::Conflict(_))
        ));
        let listed = store.list_relying_parties("acme").await?;
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].config.backchannel_logout_uri,
            "https://wiki.example.com/bcl?x=1"
        );
        assert_eq!(listed[0].config.subject, "userName");
        assert_eq!(listed[0].config.alg, "ES256");
        assert_eq!(listed[0].groups.len(), 2);
        store.remove_relying_party("acme", "wiki", "test").await?;
        assert!(store.list_relying_parties("acme").await?.is_empty());
        assert!(matches!(
            store.remove_relying_party("acme", "wiki", "test").await,
            Err(StoreError::NotFound(_))
        ));
        Ok(())
    }
);

db_test!(
    changes_leave_an_audit_trail_without_secrets,
    |store: Store, _url| async move {
        let acme = store.create_tenant(&name("acme")?, "test").await?;
        let backend = store.reader().get_database_backend();
        let rows = store
            .reader()
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT action, detail FROM audit_log ORDER BY id",
            ))
            .await?;
        assert_eq!(rows.len(), 1);
        let action: String = rows[0].try_get("", "action")?;
        assert_eq!(action, "tenant.create");
        let detail: serde_json::Value = rows[0].try_get("", "detail")?;
        assert!(!detail.to_string().contains(acme.token.token.expose()));
        Ok(())
    }
);

db_test!(
    migrations_are_idempotent,
    |store: Store, url: String| async move {
        store.migrate().await?;
        let again = Store::open(&deprov_store::DatabaseLocation::parse(&url)?).await?;
        assert!(again.pending_migrations().await?.is_empty());
        again.close().await?;
        Ok(())
    }
);

fn url_of(s: &str) -> anyhow::Result<url::Url> {
    Ok(url::Url::parse(s)?)
}

#[tokio::test]
async fn sqlite_is_opened_for_durability() -> anyhow::Result<()> {
    let Some(db) =
        deprov_store::testing::TestDb::new(deprov_store::testing::Backend::Sqlite).await?
    else {
        return Ok(());
    };
    let store = db.open().await?;
    let pragma = |sql: &'static str| {
        let store = store.clone();
        async move {
            let row = store
                .writer()
                .query_one_raw(Statement::from_string(
                    sea_orm::DatabaseBackend::Sqlite,
                    sql,
                ))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no row for {sql}"))?;
            let value: sea_orm::JsonValue = row
                .try_get_by_index::<i64>(0)
                .map(Into::into)
                .or_else(|_| row.try_get_by_index::<String>(0).map(Into::into))?;
            anyhow::Ok(value)
        }
    };
    assert_eq!(
        pragma("PRAGMA journal_mode").await?,
        serde_json::json!("wal")
    );
    // 1 = NORMAL: SQLite does not sync at commit; Store::commit does, sharing one fsync of
    // the WAL between concurrent committers (group commit), before a write is answered.
    assert_eq!(pragma("PRAGMA synchronous").await?, serde_json::json!(1));
    assert_eq!(pragma("PRAGMA foreign_keys").await?, serde_json::json!(1));
    assert!(pragma("PRAGMA busy_timeout").await?.as_i64().unwrap_or(0) >= 1000);
    // Every commit went through an fsync: creating a tenant syncs at least once.
    let before = store.wal_syncs();
    store
        .create_tenant(&TenantName::parse("acme")?, "test")
        .await?;
    assert!(store.wal_syncs() > before);
    store.close().await?;
    Ok(())
}

db_test!(
    a_client_assertion_is_accepted_once_across_replicas,
    |store: Store, url: String| async move {
        // A second process on the same database (another replica).
        let other = Store::open(&deprov_store::DatabaseLocation::parse(&url)?).await?;
        let later = deprov_store::now_millis() + 300_000;
        assert!(
            store
                .first_use_of_assertion("target-1\njti-1", later)
                .await?
        );
        assert!(
            !other
                .first_use_of_assertion("target-1\njti-1", later)
                .await?
        );
        assert!(
            !store
                .first_use_of_assertion("target-1\njti-1", later)
                .await?
        );
        // Another client's jti of the same value is its own.
        assert!(
            other
                .first_use_of_assertion("target-2\njti-1", later)
                .await?
        );
        // Once expired, the record is purged (and a jti could not be replayed anyway: the
        // assertion carrying it has expired too).
        assert!(store.first_use_of_assertion("target-1\njti-old", 1).await?);
        assert_eq!(store.purge_expired_assertions().await?, 1);
        other.close().await?;
        Ok(())
    }
);

/// Rows of `table` changed since its last analysis, as far as PostgreSQL's statistics
/// system has learnt yet.
async fn changes_since_analysis(
    conn: &sea_orm::DatabaseConnection,
    table: &str,
) -> anyhow::Result<i64> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            conn.get_database_backend(),
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() AND relname = $1",
            [table.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get("", "n_mod_since_analyze")?,
        None => 0,
    })
}

/// Users `first..=last` of tenant `t`, written in one statement as an import would.
async fn import_users(
    conn: &sea_orm::DatabaseConnection,
    first: i64,
    last: i64,
) -> anyhow::Result<()> {
    conn.execute_raw(Statement::from_sql_and_values(
        conn.get_database_backend(),
        "INSERT INTO users (id, tenant_id, user_name, user_name_folded, external_id, \
         display_name, active, resource, version, created_at, updated_at) \
         SELECT 'u' || i, 't', 'n' || i, 'n' || i, 'x' || i, 'd' || i, true, '{}', 1, i, i \
         FROM generate_series($1::bigint, $2::bigint) AS i",
        [first.into(), last.into()],
    ))
    .await?;
    Ok(())
}

/// The tables the next calls of `analyze_changed_tables` analyze, once one does: the
/// statistics system learns of changes within about a second.
async fn analyzed_soon(store: &Store) -> anyhow::Result<Vec<String>> {
    for _ in 0..40 {
        let analyzed = store.analyze_changed_tables().await?;
        if !analyzed.is_empty() {
            return Ok(analyzed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Ok(Vec::new())
}

db_test!(
    tables_that_filled_are_analyzed_on_postgres,
    |store: Store, _url| async move {
        if store.backend() == deprov_store::Backend::Sqlite {
            // SQLite's planner is given no statistics to keep.
            assert!(store.analyze_changed_tables().await?.is_empty());
            return Ok(());
        }
        // An import of 3,000 users that autovacuum has not analyzed yet (and will not: it
        // would race the analyses this test expects).
        let conn = store.writer();
        conn.execute_unprepared(
            "ALTER TABLE users SET (autovacuum_enabled = false); \
             INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', 0)",
        )
        .await?;
        import_users(conn, 1, 3000).await?;
        // `tenants` changed by one row: not enough to analyze.
        assert_eq!(analyzed_soon(&store).await?, vec!["users".to_owned()]);
        // Analyzed once: nothing changed since.
        assert!(store.analyze_changed_tables().await?.is_empty());
        // The Okta re-POST lookup now takes the index made for it.
        let plan = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "EXPLAIN SELECT * FROM users WHERE tenant_id = 't' AND external_id = 'x2000' \
                 ORDER BY active ASC, created_at DESC, id LIMIT 1",
            ))
            .await?
            .iter()
            .map(|row| row.try_get::<String>("", "QUERY PLAN"))
            .collect::<Result<Vec<_>, _>>()?;
        assert!(
            plan.iter()
                .any(|step| step.contains("ix_users_tenant_external_id")),
            "{plan:#?}"
        );

        // Half the users changed, none added (a storm of deactivations): the planner's row
        // count still holds, so the table waits for the routine interval.
        conn.execute_unprepared("UPDATE users SET active = false WHERE created_at <= 1500")
            .await?;
        let mut seen = 0;
        for _ in 0..40 {
            seen = changes_since_analysis(conn, "users").await?;
            if seen >= 1_500 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert!(
            seen >= 1_500,
            "the statistics system never saw the updates: {seen}"
        );
        assert!(store.analyze_changed_tables().await?.is_empty());

        // The table more than doubled: analyzed at once.
        import_users(conn, 3001, 6500).await?;
        assert_eq!(analyzed_soon(&store).await?, vec!["users".to_owned()]);
        Ok(())
    }
);
