//! A real .deb (conffile, symlink, usr-merge path, statoverride, local diversion) installed with
//! dpkg, verified clean through the index, modified in every way dpkg records, verified again
//! with the right reasons, then purged. Needs root.

mod packages_support;

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use packages_support::{
    TempDir, mode_of, run, run_locked, run_locked_unchecked, unique_name, write_file,
};
use verifier::{
    config::PackagesConfig,
    packages::{
        DigestAlgo, PackageIndex, PackageState,
        audit::{AuditOptions, audit},
        verify::{Mismatch, hash_reader},
    },
};

fn dpkg_only() -> PackagesConfig {
    PackagesConfig {
        dpkg_admindir: Some(PathBuf::from("/var/lib/dpkg")),
        rpm_dbpath: None,
        rpm_enabled: false,
    }
}

/// Undoes everything the test did to the system, even when it fails half-way.
struct Cleanup {
    package: String,
    statoverride: Option<String>,
    diversion: Option<String>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = run_locked_unchecked("dpkg", &["--purge", &self.package]);
        if let Some(path) = &self.statoverride {
            let _ = run_locked_unchecked("dpkg-statoverride", &["--remove", path]);
        }
        if let Some(path) = &self.diversion {
            let _ =
                run_locked_unchecked("dpkg-divert", &["--local", "--no-rename", "--remove", path]);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Files of the test package, relative to `/`.
struct Layout {
    conffile: String,
    data: String,
    divert_me: String,
    diverted: String,
    tool: String,
    merged_listed: String,
    merged_real: String,
    link: String,
}

impl Layout {
    fn new(name: &str) -> Self {
        Self {
            conffile: format!("/etc/{name}/app.conf"),
            data: format!("/usr/share/{name}/data.txt"),
            divert_me: format!("/usr/share/{name}/divert-me.txt"),
            diverted: format!("/usr/share/{name}/diverted.txt"),
            tool: format!("/usr/bin/{name}-tool"),
            merged_listed: format!("/bin/{name}-merged"),
            merged_real: format!("/usr/bin/{name}-merged"),
            link: format!("/usr/share/{name}/link"),
        }
    }
}

fn md5_hex(path: &Path) -> String {
    let file = std::fs::File::open(path).expect("open for md5");
    verifier::packages::to_hex(&hash_reader(file, DigestAlgo::Md5).expect("md5"))
}

/// Builds the .deb: a conffile, regular files, a symlink, a file under /bin (usr-merge).
fn build_deb(name: &str, layout: &Layout, dir: &Path) -> PathBuf {
    let root = dir.join("root");
    write_file(
        &root,
        "DEBIAN/control",
        &format!(
            "Package: {name}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: verifier tests <tests@example.invalid>\nDescription: throwaway package of the verifier tests\n"
        ),
        0o644,
    );
    write_file(
        &root,
        "DEBIAN/conffiles",
        &format!("{}\n", layout.conffile),
        0o644,
    );
    write_file(&root, &layout.conffile, "setting = 1\n", 0o644);
    write_file(&root, &layout.data, "packaged data\n", 0o644);
    write_file(
        &root,
        &layout.divert_me,
        "moved by a local diversion\n",
        0o644,
    );
    write_file(&root, &layout.tool, "#!/bin/sh\necho tool\n", 0o755);
    write_file(
        &root,
        &layout.merged_listed,
        "#!/bin/sh\necho merged\n",
        0o755,
    );
    std::os::unix::fs::symlink("data.txt", root.join(layout.link.trim_start_matches('/')))
        .expect("symlink");
    let md5sums: String = [
        &layout.data,
        &layout.divert_me,
        &layout.tool,
        &layout.merged_listed,
    ]
    .iter()
    .map(|path| {
        let relative = path.trim_start_matches('/');
        format!("{}  {relative}\n", md5_hex(&root.join(relative)))
    })
    .collect();
    write_file(&root, "DEBIAN/md5sums", &md5sums, 0o644);
    let deb = dir.join(format!("{name}.deb"));
    run(
        "dpkg-deb",
        &[
            "--root-owner-group",
            "--build",
            root.to_str().expect("utf-8"),
            deb.to_str().expect("utf-8"),
        ],
    );
    deb
}

fn mismatch_reasons(index: &PackageIndex, path: &str) -> Vec<&'static str> {
    index
        .verify_path(Path::new(path))
        .mismatches()
        .map(|(_, mismatch)| mismatch.reason())
        .collect()
}

#[test]
fn dpkg_package_is_verified_clean_then_each_change_is_reported() {
    assert!(
        std::fs::read_link("/bin").is_ok(),
        "this test expects a usr-merged system (/bin -> usr/bin)"
    );
    let name = unique_name("verifier-test-deb");
    let layout = Layout::new(&name);
    let build = TempDir::new("verifier-deb-build");
    let deb = build_deb(&name, &layout, build.path());
    let _cleanup = Cleanup {
        package: name.clone(),
        statoverride: Some(layout.tool.clone()),
        diversion: Some(layout.divert_me.clone()),
        dirs: vec![
            PathBuf::from(format!("/etc/{name}")),
            PathBuf::from(format!("/usr/share/{name}")),
        ],
    };
    run_locked(
        "dpkg-statoverride",
        &["--add", "root", "root", "0755", &layout.tool],
    );
    run_locked(
        "dpkg-divert",
        &[
            "--local",
            "--divert",
            &layout.diverted,
            "--add",
            &layout.divert_me,
        ],
    );

    let (mut index, errors) = PackageIndex::load(&dpkg_only()).expect("load index");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(index.owners(Path::new(&layout.data)).is_empty());

    run_locked("dpkg", &["-i", deb.to_str().expect("utf-8")]);
    let errors = index.refresh().expect("refresh");
    assert!(errors.is_empty(), "{errors:?}");
    // Status plus this package's .list and .md5sums; a few more if another test's dpkg
    // transaction ran meanwhile; never the whole database.
    let parsed = index.stats().last_parsed_files;
    assert!(
        (3..=40).contains(&parsed),
        "refresh re-read only what changed, not {parsed} files"
    );

    // Installed: everything is clean.
    let data = index.verify_path(Path::new(&layout.data));
    assert!(data.content_verified(), "{data:?}");
    assert!(data.packages_settled());
    assert_eq!(data.owners[0].package.name, name);
    assert_eq!(data.owners[0].package.state, PackageState::Installed);

    let conffile = index.verify_path(Path::new(&layout.conffile));
    assert!(
        conffile.content_verified() && conffile.conffile(),
        "{conffile:?}"
    );

    for path in [&layout.merged_listed, &layout.merged_real] {
        let merged = index.verify_path(Path::new(path));
        assert!(
            merged.content_verified(),
            "usr-merge alias {path}: {merged:?}"
        );
    }

    let diverted = index.verify_path(Path::new(&layout.diverted));
    assert!(diverted.content_verified(), "{diverted:?}");
    assert_eq!(
        diverted.owners[0].diverted_from.as_deref(),
        Some(Path::new(&layout.divert_me))
    );
    assert!(
        index.owners(Path::new(&layout.divert_me)).is_empty(),
        "a local diversion's original path belongs to no package"
    );

    let tool_entry = index.owners(Path::new(&layout.tool))[0].clone();
    assert_eq!(
        tool_entry.mode,
        Some(0o755),
        "statoverride sets the expected mode"
    );
    assert!(
        index
            .verify_path(Path::new(&layout.tool))
            .content_verified()
    );

    let link = index.verify_path(Path::new(&layout.link));
    assert!(
        link.all_clean() && !link.content_verified(),
        "dpkg records no link target: {link:?}"
    );

    let executable = index
        .verify_executable(Path::new(&layout.tool))
        .expect("verified tool");
    let metadata = std::fs::metadata(&layout.tool).expect("stat tool");
    assert_eq!(
        (executable.dev, executable.ino),
        (metadata.dev(), metadata.ino())
    );

    let report = audit(
        &index,
        &AuditOptions {
            package: Some(&name),
            ..AuditOptions::default()
        },
    );
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let listed = index
        .entries()
        .iter()
        .filter(|entry| entry.package.name == name)
        .count();
    assert_eq!(report.files_checked, listed, "every listed path is checked");

    // Modified: every change dpkg can see is reported with its reason.
    std::fs::write(&layout.data, "packaged data, then tampered\n").expect("modify data");
    std::fs::write(&layout.conffile, "setting = 2\n").expect("modify conffile");
    std::fs::set_permissions(
        &layout.tool,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    assert_eq!(mode_of(Path::new(&layout.tool)), 0o700);
    std::fs::remove_file(&layout.merged_real).expect("remove merged");
    std::os::unix::fs::symlink("/usr/bin/env", &layout.merged_real).expect("replace by symlink");
    std::fs::remove_file(&layout.diverted).expect("remove diverted");

    assert_eq!(mismatch_reasons(&index, &layout.data), ["digest"]);
    let conffile = index.verify_path(Path::new(&layout.conffile));
    assert!(conffile.conffile());
    assert!(matches!(
        conffile.mismatches().next(),
        Some((
            _,
            Mismatch::Digest {
                algo: DigestAlgo::Md5,
                ..
            }
        ))
    ));
    assert_eq!(mismatch_reasons(&index, &layout.tool), ["mode"]);
    assert_eq!(mismatch_reasons(&index, &layout.merged_listed), ["kind"]);
    assert_eq!(mismatch_reasons(&index, &layout.diverted), ["missing"]);
    assert!(index.verify_executable(Path::new(&layout.tool)).is_err());

    let report = audit(
        &index,
        &AuditOptions {
            package: Some(&name),
            ..AuditOptions::default()
        },
    );
    assert_eq!(report.findings.len(), 5, "{:?}", report.findings);

    // Purged: the index forgets the package.
    run_locked("dpkg", &["--purge", &name]);
    index.refresh().expect("refresh after purge");
    assert!(index.owners(Path::new(&layout.data)).is_empty());
    assert!(!index.packages().iter().any(|package| package.name == name));
}

#[test]
fn unpacked_package_is_reported_as_not_settled() {
    let name = unique_name("verifier-test-unpacked");
    let layout = Layout::new(&name);
    let build = TempDir::new("verifier-deb-unpacked");
    let deb = build_deb(&name, &layout, build.path());
    let _cleanup = Cleanup {
        package: name.clone(),
        statoverride: None,
        diversion: None,
        dirs: vec![
            PathBuf::from(format!("/etc/{name}")),
            PathBuf::from(format!("/usr/share/{name}")),
        ],
    };
    run_locked("dpkg", &["--unpack", deb.to_str().expect("utf-8")]);
    let (index, _) = PackageIndex::load(&dpkg_only()).expect("load index");
    let data = index.verify_path(Path::new(&layout.data));
    assert!(data.all_clean(), "{data:?}");
    assert_eq!(data.owners[0].package.state, PackageState::Unpacked);
    assert!(!data.packages_settled());
    assert!(index.verify_executable(Path::new(&layout.tool)).is_err());
    let conffile = index.verify_path(Path::new(&layout.conffile));
    assert!(
        !conffile.content_verified(),
        "an unpacked conffile has no hash yet (newconffile): {conffile:?}"
    );
}
