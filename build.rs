//! Packaged builds (scripts/package sets PMA_SONAME=1) give the shared library an ELF soname
//! with the major version, `libpsa_mail_agent.so.0`, so programs linked against it keep
//! loading it across compatible upgrades and the file can be installed as `.so.0.1.0` with the
//! usual symlinks. Only the cdylib gets it (`rustc-cdylib-link-arg`): the binary and the
//! static library are untouched. Developer builds keep the plain `libpsa_mail_agent.so`, so
//! `-L target/debug -lpsa_mail_agent` runs without symlinks.

fn main() {
    println!("cargo:rerun-if-env-changed=PMA_SONAME");
    println!("cargo:rerun-if-changed=build.rs");
    let wanted = std::env::var("PMA_SONAME").is_ok_and(|v| v == "1");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = matches!(
        os.as_str(),
        "linux" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" | "android"
    );
    if wanted && elf {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libpsa_mail_agent.so.{major}");
    }
}
