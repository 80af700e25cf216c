// The web UI is embedded from web/dist; make sure the folder exists so a build without the
// front-end (e.g. `cargo test` before `npm run build`) still compiles and says so at run time.
fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    if !dist.exists() {
        let _ = std::fs::create_dir_all(&dist);
    }
    println!("cargo:rerun-if-changed=../../web/dist");
}
