//! Signing keys on both backends: created once per algorithm even when two processes start
//! together, encrypted at rest, rotated with overlap, and published as a JWKS that an
//! implementation other than the signer's verifies tokens against.

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deprov_core::SigningAlgorithm;
use deprov_revocation::keys::{
    KEK_ENV, KeyEncryptionKey, KeyError, KeyRing, retired_key_publish_window,
};
use deprov_revocation::logout_token::{LogoutTokenRequest, TokenLifetime, mint};
use deprov_store::entity::audit_entry;
use deprov_store::{DatabaseLocation, Store, db_test};
use p256::elliptic_curve::Generate as _;
use rsa::signature::Verifier as _;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Statement};
use serde_json::Value;

fn kek() -> anyhow::Result<KeyEncryptionKey> {
    Ok(KeyEncryptionKey::generate()?)
}

async fn audit_count(store: &Store, action: &str) -> anyhow::Result<u64> {
    Ok(audit_entry::Entity::find()
        .filter(audit_entry::Column::Action.eq(action))
        .count(store.reader())
        .await?)
}

/// Raw `private_key_ciphertext` bytes of every row, read past the entity layer.
async fn raw_ciphertexts(store: &Store) -> anyhow::Result<Vec<Vec<u8>>> {
    let backend = store.reader().get_database_backend();
    let rows = store
        .reader()
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT private_key_ciphertext FROM signing_keys",
        ))
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<Vec<u8>>("", "private_key_ciphertext")?))
        .collect()
}

/// Moves a key's `retired_at` into the past, as if it had been retired `ago` earlier.
async fn backdate_retirement(store: &Store, kid: &str, ago: Duration) -> anyhow::Result<()> {
    let backend = store.writer().get_database_backend();
    let at = deprov_store::now_millis() - i64::try_from(ago.as_millis())?;
    store
        .writer()
        .execute_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm::DatabaseBackend::Postgres => {
                    "UPDATE signing_keys SET retired_at = $1 WHERE kid = $2"
                }
                _ => "UPDATE signing_keys SET retired_at = ? WHERE kid = ?",
            },
            [at.into(), kid.into()],
        ))
        .await?;
    Ok(())
}

fn published_kids(jwks: &deprov_revocation::keys::Jwks) -> Vec<String> {
    jwks.keys.iter().map(|k| k.kid.clone()).collect()
}

db_test!(
    first_start_creates_one_key_per_algorithm_even_when_two_processes_race,
    |store: Store, url: String| async move {
        // A second process: its own connection pool on the same database.
        let other = Store::open(&DatabaseLocation::parse(&url)?).await?;
        let kek = kek()?;
        let a = KeyRing::load(store.clone(), kek.clone()).await?;
        let b = KeyRing::load(other.clone(), kek).await?;
        for alg in SigningAlgorithm::ALL {
            let (ka, kb) = tokio::join!(a.ensure_key(alg), b.ensure_key(alg));
            let (ka, kb) = (ka?, kb?);
            ensure!(ka.kid() == kb.kid(), "{alg}: {} vs {}", ka.kid(), kb.kid());
            ensure!(ka.alg() == alg);
            // Asking again changes nothing.
            ensure!(a.ensure_key(alg).await?.kid() == ka.kid());
        }
        let listed = a.list().await?;
        ensure!(listed.len() == 3, "{listed:#?}");
        for alg in SigningAlgorithm::ALL {
            let of_alg: Vec<_> = listed.iter().filter(|k| k.alg == alg.as_str()).collect();
            ensure!(of_alg.len() == 1, "{alg}: {of_alg:#?}");
            ensure!(of_alg[0].status == "active" && of_alg[0].source == "generated");
        }
        ensure!(audit_count(&store, "signing_key.create").await? == 3);
        let jwks = a.jwks().await?;
        ensure!(jwks.keys.len() == 3);
        ensure!(a.published_algorithms().await? == SigningAlgorithm::ALL.to_vec());
        other.close().await?;
        Ok(())
    }
);

db_test!(
    the_store_allows_one_active_generated_key_per_algorithm,
    |store: Store, _url| async move {
        use deprov_store::StoreError;
        use deprov_store::keys::{KeySource, NewSigningKey};
        let row = |kid: &str, source| NewSigningKey {
            kid: kid.to_owned(),
            alg: SigningAlgorithm::RS256,
            source,
            public_jwk: serde_json::json!({ "kid": kid }),
            private_key_ciphertext: vec![1, 2, 3],
        };
        store
            .insert_signing_key(row("a", KeySource::Generated), "test")
            .await?;
        let second = store
            .insert_signing_key(row("b", KeySource::Generated), "test")
            .await;
        ensure!(matches!(second, Err(StoreError::Conflict(_))), "{second:?}");
        // Imported keys are chosen by kid and do not compete for the default.
        store
            .insert_signing_key(row("c", KeySource::Imported), "test")
            .await?;
        let default = store.active_signing_key(SigningAlgorithm::RS256).await?;
        ensure!(default.map(|k| k.kid) == Some("a".to_owned()));
        // Once "a" is retired, another generated key may become active.
        store.retire_signing_key("a", "test").await?;
        store
            .insert_signing_key(row("b", KeySource::Generated), "test")
            .await?;
        ensure!(audit_count(&store, "signing_key.create").await? == 2);
        ensure!(audit_count(&store, "signing_key.retire").await? == 1);
        Ok(())
    }
);

db_test!(
    rotation_keeps_the_retired_key_in_the_jwks_until_its_tokens_have_expired,
    |store: Store, _url| async move {
        let ring = KeyRing::load(store.clone(), kek()?).await?;
        let old = ring.ensure_key(SigningAlgorithm::ES256).await?;
        let rotation = ring.rotate(SigningAlgorithm::ES256, "test").await?;
        ensure!(rotation.retired.len() == 1 && rotation.retired[0].kid == old.kid());
        ensure!(rotation.retired[0].status == "retired");
        let new_kid = rotation.new.kid.clone();
        ensure!(new_kid != old.kid());

        // The new key signs; the old one no longer does, even when named.
        ensure!(ring.signer(SigningAlgorithm::ES256, None).await?.kid() == new_kid);
        let pinned_old = ring.signer(SigningAlgorithm::ES256, Some(old.kid())).await;
        ensure!(
            matches!(pinned_old, Err(KeyError::Retired(_))),
            "{pinned_old:?}"
        );

        // Both are published right after the rotation…
        let kids = published_kids(&ring.jwks().await?);
        ensure!(
            kids.contains(&new_kid) && kids.contains(&old.kid().to_owned()),
            "{kids:?}"
        );

        // …and still just before the window ends (max token lifetime + clock skew)…
        let window = retired_key_publish_window();
        ensure!(window >= Duration::from_secs(120 + 60), "{window:?}");
        backdate_retirement(&store, old.kid(), window - Duration::from_secs(10)).await?;
        let kids = published_kids(&ring.jwks().await?);
        ensure!(kids.contains(&old.kid().to_owned()), "{kids:?}");

        // …and gone once every token the old key signed has expired.
        backdate_retirement(&store, old.kid(), window + Duration::from_secs(1)).await?;
        let kids = published_kids(&ring.jwks().await?);
        ensure!(kids == vec![new_kid.clone()], "{kids:?}");

        // The history stays listed, and the rotation is audited.
        ensure!(ring.list().await?.len() == 2);
        ensure!(audit_count(&store, "signing_key.rotate").await? == 1);
        Ok(())
    }
);

db_test!(
    private_keys_are_encrypted_at_rest,
    |store: Store, _url| async move {
        let ring = KeyRing::load(store.clone(), kek()?).await?;
        ring.ensure_keys(SigningAlgorithm::ALL).await?;
        let blobs = raw_ciphertexts(&store).await?;
        ensure!(blobs.len() == 3);
        for blob in &blobs {
            ensure!(
                blob.len() > 12 + 16 + 100,
                "too short to hold a key: {}",
                blob.len()
            );
            let found = blob
                .windows(b"PRIVATE KEY".len())
                .any(|w| w == b"PRIVATE KEY");
            ensure!(!found, "a private key is stored in clear");
            ensure!(
                !blob.windows(5).any(|w| w == b"-----"),
                "PEM armour in the column"
            );
        }
        // The published JWKs carry no private member.
        for key in ring.jwks().await?.keys {
            let v = serde_json::to_value(&key)?;
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                ensure!(
                    v.get(private).is_none(),
                    "{private} published for {}",
                    key.kid
                );
            }
        }
        Ok(())
    }
);

db_test!(
    a_different_key_encryption_key_fails_clearly_at_load,
    |store: Store, _url| async move {
        let ring = KeyRing::load(store.clone(), kek()?).await?;
        let key = ring.ensure_key(SigningAlgorithm::EdDSA).await?;
        let err = match KeyRing::load(store.clone(), kek()?).await {
            Ok(_) => bail!("a ring loaded under the wrong key-encryption key"),
            Err(e) => e,
        };
        ensure!(
            matches!(&err, KeyError::DecryptKey { kid } if kid == key.kid()),
            "{err:?}"
        );
        let message = err.to_string();
        ensure!(message.contains(key.kid()), "{message}");
        ensure!(message.contains(KEK_ENV), "{message}");
        Ok(())
    }
);

db_test!(
    imported_keys_sign_only_when_pinned_and_export_is_audited,
    |store: Store, _url| async move {
        let ring = KeyRing::load(store.clone(), kek()?).await?;
        // An operator's P-256 key in SEC1 PEM, as `openssl ecparam -genkey` writes it.
        let secret = p256::SecretKey::try_generate_from_rng(&mut getrandom::SysRng)
            .map_err(|e| anyhow!("{e:?}"))?;
        let pem = secret.to_sec1_pem(p256::pkcs8::LineEnding::LF)?;
        let imported = ring.import_pem(&pem, None, "test").await?;
        ensure!(imported.alg == "ES256" && imported.source == "imported");
        ensure!(imported.status == "active");

        // Not the default key: the default is generated on first use.
        let default = ring.signer(SigningAlgorithm::ES256, None).await?;
        ensure!(default.kid() != imported.kid);
        let pinned = ring
            .signer(SigningAlgorithm::ES256, Some(&imported.kid))
            .await?;
        ensure!(pinned.kid() == imported.kid);
        let wrong_alg = ring
            .signer(SigningAlgorithm::RS256, Some(&imported.kid))
            .await;
        ensure!(
            matches!(wrong_alg, Err(KeyError::AlgorithmMismatch { .. })),
            "{wrong_alg:?}"
        );
        let unknown = ring.signer(SigningAlgorithm::ES256, Some("nope")).await;
        ensure!(
            matches!(unknown, Err(KeyError::UnknownKey(_))),
            "{unknown:?}"
        );

        // The same key twice is refused.
        let again = ring.import_pem(&pem, None, "test").await;
        ensure!(
            matches!(again, Err(KeyError::AlreadyStored(_))),
            "{again:?}"
        );

        // Export gives back the same key, and leaves an audit record.
        let exported = ring.export_private_pem(&imported.kid, "test").await?;
        ensure!(exported.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = deprov_revocation::keys::SigningKey::import_pem(&exported, None)?;
        ensure!(back.kid() == imported.kid);
        ensure!(audit_count(&store, "signing_key.import").await? == 1);
        ensure!(audit_count(&store, "signing_key.export").await? == 1);

        // Retired, it no longer signs.
        ring.retire(&imported.kid, "test").await?;
        let retired = ring
            .signer(SigningAlgorithm::ES256, Some(&imported.kid))
            .await;
        ensure!(matches!(retired, Err(KeyError::Retired(_))), "{retired:?}");
        Ok(())
    }
);

db_test!(
    logout_tokens_verify_against_the_published_jwks_with_another_implementation,
    |store: Store, _url| async move {
        let ring = KeyRing::load(store.clone(), kek()?).await?;
        ring.ensure_keys(SigningAlgorithm::ALL).await?;
        // What a relying party fetches from /.well-known/jwks.json.
        let jwks: Value = serde_json::from_str(&serde_json::to_string(&ring.jwks().await?)?)?;
        for alg in SigningAlgorithm::ALL {
            let key = ring.signer(alg, None).await?;
            let request = LogoutTokenRequest {
                issuer: "https://deprov.example.com",
                audience: "wiki",
                subject: Some("00u1"),
                session_id: None,
                require_sid: false,
                lifetime: TokenLifetime::default(),
            };
            let token = mint(&key, &request, SystemTime::now())?;
            verify_against_jwks(&token.jwt, &jwks).with_context(|| alg.to_string())?;
            // A token whose payload was altered fails the same check.
            let mut parts: Vec<String> = token.jwt.split('.').map(str::to_owned).collect();
            parts[1] =
                URL_SAFE_NO_PAD.encode(br#"{"iss":"https://deprov.example.com","aud":"other"}"#);
            ensure!(
                verify_against_jwks(&parts.join("."), &jwks).is_err(),
                "{alg}"
            );
        }
        Ok(())
    }
);

fn b64_member(jwk: &Value, name: &str) -> anyhow::Result<Vec<u8>> {
    let text = jwk[name]
        .as_str()
        .ok_or_else(|| anyhow!("JWK has no {name}"))?;
    Ok(URL_SAFE_NO_PAD.decode(text)?)
}

/// Verifies a compact JWS the way a relying party would, without jsonwebtoken: find the
/// JWK named by the header's `kid`, check its `alg` matches the header's, rebuild the
/// public key from the JWK members, and check the signature with RustCrypto directly.
fn verify_against_jwks(jwt: &str, jwks: &Value) -> anyhow::Result<()> {
    let (signing_input, signature) = jwt.rsplit_once('.').ok_or_else(|| anyhow!("not a JWS"))?;
    let header_b64 = signing_input
        .split('.')
        .next()
        .ok_or_else(|| anyhow!("no header"))?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64)?)?;
    ensure!(header["typ"] == "logout+jwt", "{header}");
    let kid = header["kid"].as_str().ok_or_else(|| anyhow!("no kid"))?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .ok_or_else(|| anyhow!("kid {kid} is not in the JWKS"))?;
    ensure!(
        jwk["alg"] == header["alg"],
        "alg {} vs {}",
        jwk["alg"],
        header["alg"]
    );
    ensure!(jwk["use"] == "sig");
    let sig = URL_SAFE_NO_PAD.decode(signature)?;
    let msg = signing_input.as_bytes();
    match header["alg"].as_str() {
        Some("RS256") => {
            ensure!(jwk["kty"] == "RSA");
            let public = rsa::PublicKey::new(
                rsa::BoxedUint::from_be_slice_vartime(&b64_member(jwk, "n")?),
                rsa::BoxedUint::from_be_slice_vartime(&b64_member(jwk, "e")?),
            )?;
            let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(public);
            let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice())?;
            verifier.verify(msg, &sig)?;
        }
        Some("ES256") => {
            ensure!(jwk["kty"] == "EC" && jwk["crv"] == "P-256");
            let mut sec1 = vec![0x04];
            sec1.extend(b64_member(jwk, "x")?);
            sec1.extend(b64_member(jwk, "y")?);
            let verifier = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)?;
            let sig = p256::ecdsa::Signature::from_slice(&sig)?;
            verifier.verify(msg, &sig)?;
        }
        Some("EdDSA") => {
            ensure!(jwk["kty"] == "OKP" && jwk["crv"] == "Ed25519");
            let x: [u8; 32] = b64_member(jwk, "x")?
                .try_into()
                .map_err(|_| anyhow!("x is not 32 bytes"))?;
            let verifier = ed25519_dalek::VerifyingKey::from_bytes(&x)?;
            let sig = ed25519_dalek::Signature::from_slice(&sig)?;
            verifier.verify(msg, &sig)?;
        }
        other => bail!("unexpected alg {other:?}"),
    }
    Ok(())
}
