//! The error-message suite: broken maps, each with the exact output expected
//! from `custos map check` (every diagnostic, in order).

use custos_map::check_str;

/// A small valid map; cases break one thing in it.
const BASE: &str = r#"organisation:
  controller: Shop GmbH
  contact: privacy@shop.example
purposes:
  - id: account
    title: Customer account
    legal_basis: contract
    subjects: [customer]
processors:
  - id: mailer
    name: Mailer SAS
    role: processor
    country: FR
    dpa: { status: signed, date: "2024-01-01" }
    notify: { email: dpo@mailer.example }
    purposes: [account]
systems:
  - id: app_db
    kind: postgres
    connection: { url_env: DATABASE_URL }
    datasets:
      - id: users
        table: users
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: id, category: user.unique_id, identity: user_id }
          - { name: email, category: user.contact.email }
      - id: comments
        table: comments
        subject: { via: author_id }
        purposes: [account]
        erasure: delete
        retention: { period: 3y, from_column: created_at }
        fields:
          - { name: author_id, category: user.unique_id, references: users.id }
          - { name: created_at, category: system.operations }
"#;

fn check(src: &str, expect: &str) {
    let got: Vec<String> = check_str(src, "shop.yaml")
        .iter()
        .map(ToString::to_string)
        .collect();
    let got = got.join("\n");
    if std::env::var_os("PRINT_ACTUAL").is_some() {
        println!("----\n{got}\n----");
    }
    assert_eq!(got, expect.trim(), "\nactual output:\n{got}\n");
}

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_is_valid() {
    check(
        BASE, r#"

"#,
    );
}

#[test]
fn unknown_category_with_suggestion() {
    check(
        &with(
            "category: user.contact.email",
            "category: user.contact.emial",
        ),
        r#"
shop.yaml:29:38: error[unknown-category] systems.app_db.datasets.users.fields.email.category: unknown data category "user.contact.emial"
  = hint: did you mean "user.contact.email"?
"#,
    );
}

#[test]
fn purpose_without_legal_basis() {
    check(
        &with("    legal_basis: contract\n", ""),
        r#"
shop.yaml:5:5: error[missing-legal-basis] purposes.account: the purpose has no `legal_basis`
  = hint: add `legal_basis:` with one of consent, contract, legal_obligation, vital_interest, public_task, legitimate_interest (Art. 6(1))
"#,
    );
}

#[test]
fn unknown_legal_basis_value() {
    check(
        &with("legal_basis: contract", "legal_basis: contrat"),
        r#"
shop.yaml:7:18: error[invalid-value] purposes.account.legal_basis: unknown legal basis `contrat`
  = hint: did you mean `contract`? allowed: consent, contract, legal_obligation, vital_interest, public_task, legitimate_interest
"#,
    );
}

#[test]
fn mandatory_consent_without_collection() {
    check(
        &with(
            "legal_basis: contract",
            "legal_basis: consent\n    mandatory: true",
        ),
        r#"
shop.yaml:5:5: error[consent-collection-missing] purposes.account: a consent-based purpose must say how consent is collected
  = hint: add `consent: { collected_via: "...", withdraw_via: "..." }` (Art. 7(1): the controller must be able to prove consent)
shop.yaml:8:16: error[consent-mandatory] purposes.account.mandatory: a consent-based purpose cannot be mandatory
  = hint: consent must be freely given and withdrawable (Art. 7(4)); remove `mandatory: true` or choose another legal basis such as `contract`
"#,
    );
}

#[test]
fn dangling_reference() {
    check(
        &with("references: users.id", "references: user.id"),
        r#"
shop.yaml:37:70: error[dangling-reference] systems.app_db.datasets.comments.fields.author_id.references: `user.id` refers to a dataset that does not exist
  = hint: did you mean `users.id`? system `app_db` has no dataset `user`
"#,
    );
}

#[test]
fn reference_cycle() {
    check(
        &with(
            "          - { name: id, category: user.unique_id, identity: user_id }",
            "          - { name: id, category: user.unique_id }\n          - { name: last_comment_id, category: system.operations, references: comments.author_id }",
        )
        .replace(
            "        purposes: [account]\n        erasure: delete\n        retention: { period: 30d",
            "        subject: { via: last_comment_id }\n        purposes: [account]\n        erasure: delete\n        retention: { period: 30d",
        ),
        r#"
shop.yaml:34:20: error[reference-cycle] systems.app_db.datasets.comments.subject: the way to the data subject loops: app_db.comments -> app_db.users -> app_db.comments
  = hint: one dataset of the loop must identify the subject itself: give it `subject: { identity: <field> }`
"#,
    );
}

#[test]
fn dataset_without_identity() {
    check(
        &with("identity: user_id }", "primary_key: true }"),
        r#"
shop.yaml:22:9: error[missing-subject] systems.app_db.datasets.users: dataset `users` holds personal data but no way to find a person's rows
  = hint: mark the identifying field with `identity: user_id` (or email, subject_id, ...), or add `subject: { via: <field with references> }` or `subject: { referenced_by: <dataset.field> }`
"#,
    );
}

#[test]
fn transfer_without_mechanism() {
    check(
        &with("country: FR", "country: US"),
        r#"
shop.yaml:13:14: error[transfer-without-mechanism] processors.mailer.country: US is outside the EEA but no transfer mechanism is declared
  = hint: add `transfer:` with adequacy, scc or bcr (Chapter V GDPR)
"#,
    );
}

#[test]
fn personal_data_without_retention() {
    check(
        &with(
            "        retention: { period: 30d, from_event: account_closed }\n",
            "",
        ),
        r#"
shop.yaml:22:9: error[missing-retention] systems.app_db.datasets.users: personal data without retention: id, email
  = hint: add `retention: { period: 3y, from_column: created_at }` (or `from_event: ...`) to the dataset or to each field (Art. 5(1)(e))
"#,
    );
}

#[test]
fn bad_duration_and_unknown_key_reported_together() {
    check(
        &with("period: 3y", "period: 3 years")
            .replace("    country: FR", "    country: FR\n    contry: FR"),
        r#"
shop.yaml:14:5: error[unknown-key] processors.mailer.contry: unknown key `contry` in a processor
  = hint: did you mean `country`? allowed keys: id, name, role, country, transfer, dpa, notify, purposes, categories, tenants, allow_insecure_loopback
shop.yaml:36:30: error[invalid-duration] systems.app_db.datasets.comments.retention.period: invalid duration "3 years": write a positive number followed by d, w, m or y (e.g. 30d, 12w, 6m, 3y)
  = hint: e.g. `period: 30d`, `12w`, `6m` or `3y`
"#,
    );
}

#[test]
fn yaml_syntax_error() {
    check(
        &with("  controller: Shop GmbH", "  controller: \"Shop GmbH"),
        r#"
shop.yaml:2:15: error[yaml-syntax] invalid YAML: invalid indentation in quoted scalar
  = hint: check indentation, colons and quotes around this point
"#,
    );
}

#[test]
fn secret_in_connection() {
    check(
        &with(
            "url_env: DATABASE_URL",
            "url_env: \"postgres://app:hunter2@db/app\"",
        ),
        r#"
shop.yaml:20:28: error[secret-in-map] systems.app_db.connection.url_env: connection setting `url_env` must name an environment variable, not hold a value
  = hint: put the value in an environment variable and write its name here, e.g. `url_env: APP_DATABASE_URL`
"#,
    );
}

#[test]
fn wrong_types_and_duplicate_ids() {
    check(
        &with(
            "    subjects: [customer]",
            "    subjects: customer\n    mandatory: maybe",
        )
        .replace("      - id: comments", "      - id: users"),
        r#"
shop.yaml:8:15: error[wrong-type] purposes.account.subjects: expected a list, found a scalar
  = hint: write `[a, b]` or one `- item` per line
shop.yaml:9:16: error[wrong-type] purposes.account.mandatory: `mandatory` must be true or false
  = hint: write `true` or `false` without quotes
shop.yaml:31:13: error[duplicate-id] systems.app_db.datasets[1].id: id `users` is already used in `datasets` (line 23)
  = hint: give each entry of `datasets` its own id
"#,
    );
}

#[test]
fn special_category_without_article_9_basis() {
    check(
        &with(
            "category: user.contact.email",
            "category: user.health_and_medical",
        ),
        r#"
shop.yaml:29:38: error[special-category-without-basis] systems.app_db.datasets.users.fields.email.category: field `email` holds a special category of data (Art. 9) but purpose `account` declares no Art. 9(2) exception
  = hint: add `special_category:` (e.g. explicit_consent, employment, health_care) to the purpose
"#,
    );
}

#[test]
fn empty_security_measures() {
    check(
        &with(
            "  contact: privacy@shop.example\n",
            "  contact: privacy@shop.example\n  security_measures:\n    - Staff are trained in data protection every year\n    - \"\"\n    - ~\n",
        ),
        r#"
shop.yaml:6:7: error[invalid-value] organisation.security_measures[1]: entry 2 of `security_measures` is empty
  = hint: describe the measure, e.g. `Staff are trained in data protection every year`, or remove the entry
shop.yaml:7:7: error[invalid-value] organisation.security_measures[2]: entry 3 of `security_measures` is empty
  = hint: describe the measure, e.g. `Staff are trained in data protection every year`, or remove the entry
"#,
    );
}

#[test]
fn security_measures_misnamed_or_not_a_list() {
    check(
        &with(
            "  contact: privacy@shop.example\n",
            "  contact: privacy@shop.example\n  security: [Locked server room]\n",
        ),
        r#"
shop.yaml:4:3: error[unknown-key] organisation.security: unknown key `security` in organisation
  = hint: allowed keys: controller, address, contact, dpo, eu_representative, security_measures
"#,
    );
    check(
        &with(
            "  contact: privacy@shop.example\n",
            "  contact: privacy@shop.example\n  security_measures: Locked server room\n",
        ),
        r#"
shop.yaml:4:22: error[wrong-type] organisation.security_measures: expected a list, found a scalar
  = hint: write `[a, b]` or one `- item` per line
"#,
    );
}

#[test]
fn plain_http_notice_url_is_refused() {
    check(
        &with(
            "notify: { email: dpo@mailer.example }",
            "notify: { url: \"http://127.0.0.1:8080/notices\" }",
        ),
        r#"
shop.yaml:15:15: error[insecure-url] processors.mailer.notify.url: notice URL refused: a notice URL must be https:// (plain http:// is allowed only to a loopback address with `allow_insecure_loopback: true` on the processor)
  = hint: use the processor's https:// URL; for a processor on this host in tests, add `allow_insecure_loopback: true` to the processor
"#,
    );
}

#[test]
fn plain_http_to_another_host_is_refused_even_when_allowed() {
    check(
        &with(
            "    notify: { email: dpo@mailer.example }\n",
            "    notify: { url: \"http://vendor.example/notices\" }\n    allow_insecure_loopback: true\n",
        ),
        r#"
shop.yaml:15:15: error[insecure-url] processors.mailer.notify.url: notice URL refused: a notice URL must be https://; plain http:// is allowed only to a loopback IP address (127.0.0.1, [::1]), even with `allow_insecure_loopback: true`
  = hint: point the notice at https://, or at http://127.0.0.1:<port> for a local processor
"#,
    );
}

#[test]
fn plain_http_to_loopback_is_allowed_when_the_map_says_so() {
    check(
        &with(
            "    notify: { email: dpo@mailer.example }\n",
            "    notify: { url: \"http://127.0.0.1:8080/notices\" }\n    allow_insecure_loopback: true\n",
        ),
        "",
    );
}

#[test]
fn allow_insecure_loopback_needs_a_notice_url() {
    check(
        &with(
            "    notify: { email: dpo@mailer.example }\n",
            "    notify: { email: dpo@mailer.example }\n    allow_insecure_loopback: true\n",
        ),
        r#"
shop.yaml:16:30: error[invalid-value] processors.mailer.allow_insecure_loopback: `allow_insecure_loopback` applies only to a `notify: { url: ... }`
  = hint: remove it
"#,
    );
}
