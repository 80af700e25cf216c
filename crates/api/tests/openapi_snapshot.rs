//! The web front-ends generate their TypeScript types from `web/openapi.json`
//! (`npm run gen:api` in `web/`), so the committed document must be exactly what the server
//! produces. This test fails when they drift; rewrite the file with
//! `UPDATE_OPENAPI=1 cargo test -p confab-api --test openapi_snapshot`, then run
//! `npm run gen:api` in `web/` and commit both.

use std::path::PathBuf;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json")
}

fn rendered() -> String {
    let doc = confab_api::openapi();
    let mut json = serde_json::to_string_pretty(&doc).expect("the OpenAPI document serializes");
    json.push('\n');
    json
}

#[test]
fn openapi_document_matches_the_committed_snapshot() {
    let path = snapshot_path();
    let current = rendered();
    if std::env::var_os("UPDATE_OPENAPI").is_some_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&path, &current).expect("write web/openapi.json");
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .replace("\r\n", "\n");
    if committed != current {
        let first_diff = committed
            .lines()
            .zip(current.lines())
            .position(|(a, b)| a != b)
            .map(|i| i + 1)
            .unwrap_or_else(|| committed.lines().count().min(current.lines().count()) + 1);
        panic!(
            "web/openapi.json is out of date with the server's OpenAPI document \
             (first difference at line {first_diff}).\n\
             Run `UPDATE_OPENAPI=1 cargo test -p confab-api --test openapi_snapshot` to rewrite it, \
             then `npm run gen:api` in web/ to regenerate src/shared/api.gen.ts, and commit both."
        );
    }
}
