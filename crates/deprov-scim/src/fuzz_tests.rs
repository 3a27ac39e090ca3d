//! Deterministic random inputs for the filter resolver and the PATCH engine: whatever
//! comes in, the answer is a value or a 4xx `ScimError`, never a panic or a 5xx.

use serde_json::{Value, json};

use crate::filter::{FilterLimits, resolve_filter};
use crate::patch::{PatchLimits, apply, parse_request};
use crate::schema::catalog;

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const FILTER_TOKENS: &[&str] = &[
    "userName",
    "USERNAME",
    "emails",
    "emails.value",
    "name.givenName",
    "active",
    "meta.created",
    "manager",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
    "members",
    "value",
    "type",
    "nope",
    " eq ",
    " EQ ",
    " ne ",
    " co ",
    " sw ",
    " gt ",
    " pr",
    " and ",
    " or ",
    "not ",
    "(",
    ")",
    "[",
    "]",
    ".",
    "\"x\"",
    "\"True\"",
    "true",
    "null",
    "42",
    "-1.5e3",
    "\"2020-01-01T00:00:00Z\"",
    "\"\\u0000\"",
    "\"",
    " ",
    "é",
];

#[test]
fn a_kept_filter_shape_parses_as_the_parser_does() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let attrs = [
        "userName",
        "emails.value",
        "name.givenName",
        "externalId",
        "title",
    ];
    let ops = [" eq ", " co ", " sw ", " gt "];
    let values = [
        "\"a\"",
        "\"b c\"",
        "\"é\"",
        "\"\"",
        "\"x\\\"y\"",
        "\"open",
        "true",
        "42",
    ];
    let joins = [" and ", " or "];
    for _ in 0..20_000 {
        let terms = 1 + rng.next() % 4;
        let mut text = String::new();
        for i in 0..terms {
            if i > 0 {
                text.push_str(rng.pick::<&str>(&joins));
            }
            let term = match rng.next() % 4 {
                0 => format!("{} pr", rng.pick(&attrs)),
                1 => format!(
                    "emails[type eq {} and value{}{}]",
                    rng.pick(&values),
                    rng.pick(&ops),
                    rng.pick(&values)
                ),
                _ => format!(
                    "{}{}{}",
                    rng.pick(&attrs),
                    rng.pick(&ops),
                    rng.pick(&values)
                ),
            };
            if rng.next().is_multiple_of(5) {
                text.push_str(&format!("not ({term})"));
            } else {
                text.push_str(&term);
            }
        }
        let ours = crate::filter::memo::parse(&text).map_err(|e| e.to_string());
        let theirs = text
            .parse::<scim_v2::filter::Filter>()
            .map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{text}");
    }
}

#[test]
fn random_filters_never_panic_and_fail_with_4xx() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let cat = catalog().unwrap();
    let limits = FilterLimits {
        max_length: 256,
        max_depth: 8,
    };
    for _ in 0..20_000 {
        let n = 1 + rng.next() % 12;
        let text: String = (0..n).map(|_| *rng.pick(FILTER_TOKENS)).collect();
        for schema in [&cat.user, &cat.group] {
            if let Err(e) = resolve_filter(schema, &text, limits) {
                assert_eq!(e.status.as_u16(), 400, "{text:?}: {e}");
            }
        }
    }
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let leaves = [
        json!(null),
        json!(true),
        json!("False"),
        json!("x"),
        json!(1),
        json!(-2.5),
        json!([]),
        json!({}),
        json!("2020-01-01T00:00:00Z"),
        json!({"value": "u1"}),
        json!([{"value": "u2", "type": "Group"}]),
    ];
    if depth == 0 || rng.next().is_multiple_of(3) {
        return rng.pick(&leaves).clone();
    }
    let keys = [
        "value",
        "type",
        "primary",
        "givenName",
        "active",
        "userName",
        "emails",
        "name.familyName",
        "members",
        "id",
        "schemas",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        "manager",
        "nope",
    ];
    if rng.next().is_multiple_of(2) {
        Value::Array(
            (0..rng.next() % 3)
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        )
    } else {
        let mut m = serde_json::Map::new();
        for _ in 0..rng.next() % 4 {
            m.insert((*rng.pick(&keys)).to_owned(), random_value(rng, depth - 1));
        }
        Value::Object(m)
    }
}

#[test]
fn random_patches_never_panic_and_fail_with_4xx() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let cat = catalog().unwrap();
    let limits = PatchLimits {
        max_operations: 20,
        max_members: 50,
    };
    let paths = [
        None,
        Some("active"),
        Some("Active"),
        Some("userName"),
        Some("name"),
        Some("name.givenName"),
        Some("emails"),
        Some("emails[type eq \"work\"]"),
        Some("emails[type eq \"work\"].value"),
        Some("emails[value co \"x\"].primary"),
        Some("members"),
        Some("members[value eq \"u1\"]"),
        Some("members[value eq \"a\" or value eq \"b\"]"),
        Some("members.value"),
        Some("displayName"),
        Some("id"),
        Some("meta.created"),
        Some("groups"),
        Some("password"),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
        Some("nope"),
        Some("emails["),
        Some(""),
    ];
    let ops = ["add", "Add", "remove", "REPLACE", "replace", "move"];
    let user =
        json!({"userName": "u", "active": true, "emails": [{"value": "a@x", "type": "work"}]});
    let group = json!({"displayName": "g"});
    for _ in 0..5_000 {
        let n = rng.next() % 4;
        let operations: Vec<Value> = (0..n)
            .map(|_| {
                let mut op = serde_json::Map::new();
                op.insert("op".into(), json!(rng.pick(&ops)));
                if let Some(p) = rng.pick(&paths) {
                    op.insert("path".into(), json!(p));
                }
                if !rng.next().is_multiple_of(5) {
                    op.insert("value".into(), random_value(&mut rng, 3));
                }
                Value::Object(op)
            })
            .collect();
        let body = json!({"Operations": operations});
        for (schema, current) in [(&cat.user, &user), (&cat.group, &group)] {
            let result = parse_request(&body, limits).and_then(|ops| {
                let Value::Object(current) = current else {
                    unreachable!()
                };
                apply(schema, current, "id-1", &ops, limits)
            });
            if let Err(e) = result {
                assert_eq!(e.status.as_u16(), 400, "{body}: {e}");
            }
        }
    }
}
