//! A real rpm (`%config`, `%ghost`, a symlink, `%attr` modes) built with rpmbuild, installed
//! with `rpm -i --nodeps`, read from rpm's sqlite database, verified clean, modified (content,
//! mode, symlink target), verified again with the right reasons, then erased. Needs root.

mod packages_support;

use std::path::{Path, PathBuf};

use packages_support::{TempDir, run, run_locked, run_locked_unchecked, unique_name};
use verifier::{
    config::PackagesConfig,
    packages::{DbKind, FileFlags, FileKind, PackageIndex, rpm::discover_dbpath},
};

fn rpm_only() -> PackagesConfig {
    PackagesConfig {
        dpkg_admindir: None,
        rpm_dbpath: None,
        rpm_enabled: true,
    }
}

struct Cleanup {
    package: String,
    dirs: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = run_locked_unchecked("rpm", &["-e", "--nodeps", &self.package]);
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn build_rpm(name: &str, topdir: &Path) -> PathBuf {
    let spec = format!(
        r#"Name: {name}
Version: 1.0
Release: 1
Summary: throwaway package of the verifier tests
License: MIT
BuildArch: noarch
%description
throwaway package of the verifier tests
%install
mkdir -p %{{buildroot}}/etc/{name} %{{buildroot}}/usr/share/{name} %{{buildroot}}/var/log
echo 'setting = 1' > %{{buildroot}}/etc/{name}/app.conf
echo 'packaged data' > %{{buildroot}}/usr/share/{name}/data.txt
ln -s data.txt %{{buildroot}}/usr/share/{name}/link
%files
%dir /etc/{name}
%config(noreplace) /etc/{name}/app.conf
%ghost %attr(0644,root,root) /var/log/{name}.log
%dir /usr/share/{name}
%attr(0640,root,root) /usr/share/{name}/data.txt
/usr/share/{name}/link
"#
    );
    let spec_path = topdir.join(format!("{name}.spec"));
    std::fs::write(&spec_path, spec).expect("write spec");
    run(
        "rpmbuild",
        &[
            "--define",
            &format!("_topdir {}", topdir.display()),
            "-bb",
            spec_path.to_str().expect("utf-8"),
        ],
    );
    topdir.join(format!("RPMS/noarch/{name}-1.0-1.noarch.rpm"))
}

fn reasons(index: &PackageIndex, path: &str) -> Vec<&'static str> {
    index
        .verify_path(Path::new(path))
        .mismatches()
        .map(|(_, mismatch)| mismatch.reason())
        .collect()
}

#[test]
fn rpm_package_is_verified_clean_then_each_change_is_reported() {
    let dbpath = discover_dbpath(None).expect("rpm is installed and names its %_dbpath");
    assert!(dbpath.is_absolute());
    let name = unique_name("verifier-test-rpm");
    let topdir = TempDir::new("verifier-rpmbuild");
    let rpm_file = build_rpm(&name, topdir.path());
    let _cleanup = Cleanup {
        package: name.clone(),
        dirs: vec![
            PathBuf::from(format!("/etc/{name}")),
            PathBuf::from(format!("/usr/share/{name}")),
        ],
    };
    let (mut index, _) = PackageIndex::load(&rpm_only()).expect("load index");
    run_locked(
        "rpm",
        &["-i", "--nodeps", rpm_file.to_str().expect("utf-8")],
    );
    let errors = index.refresh().expect("refresh");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        index.stats().last_parsed_files,
        1,
        "only the new header is parsed"
    );

    let conf = format!("/etc/{name}/app.conf");
    let data = format!("/usr/share/{name}/data.txt");
    let link = format!("/usr/share/{name}/link");
    let ghost = format!("/var/log/{name}.log");

    let package = index
        .packages()
        .iter()
        .find(|package| package.name == name)
        .expect("package in index");
    assert_eq!(
        (package.db, package.version.as_str(), package.arch.as_str()),
        (DbKind::Rpm, "1.0-1", "noarch")
    );

    let conf_entry = index.owners(Path::new(&conf))[0];
    assert!(conf_entry.conffile && conf_entry.flags.contains(FileFlags::NOREPLACE));
    let ghost_entry = index.owners(Path::new(&ghost))[0];
    assert!(ghost_entry.flags.contains(FileFlags::GHOST));
    let data_entry = index.owners(Path::new(&data))[0];
    assert_eq!(
        (data_entry.mode, data_entry.size, data_entry.kind),
        (Some(0o640), Some(14), FileKind::Regular)
    );
    assert_eq!(data_entry.owner.as_deref(), Some("root"));
    let link_entry = index.owners(Path::new(&link))[0];
    assert_eq!(
        link_entry.link_target.as_deref(),
        Some(Path::new("data.txt"))
    );

    for path in [&conf, &data, &link] {
        let verification = index.verify_path(Path::new(path));
        assert!(verification.content_verified(), "{path}: {verification:?}");
    }
    let ghost_check = index.verify_path(Path::new(&ghost));
    assert!(
        ghost_check.all_clean(),
        "an absent %ghost file is fine: {ghost_check:?}"
    );
    assert!(
        index
            .verify_path(Path::new(&format!("/etc/{name}")))
            .all_clean()
    );

    // Modified: content, mode, symlink target.
    std::fs::write(&conf, "setting = 22\n").expect("modify conf");
    std::fs::write(&data, "packaged data, tampered\n").expect("modify data");
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    std::fs::remove_file(&link).expect("remove link");
    std::os::unix::fs::symlink("/etc/shadow", &link).expect("retarget link");
    std::fs::write(&ghost, "log line\n").expect("write ghost");

    // A size that differs already says the content does: the digest is not computed.
    assert_eq!(reasons(&index, &conf), ["size"]);
    assert!(index.verify_path(Path::new(&conf)).conffile());
    assert_eq!(reasons(&index, &data), ["mode", "size"]);
    assert_eq!(reasons(&index, &link), ["link-target"]);
    assert!(
        index.verify_path(Path::new(&ghost)).all_clean(),
        "%ghost content is never compared"
    );

    run_locked("rpm", &["-e", "--nodeps", &name]);
    index.refresh().expect("refresh after erase");
    assert!(index.owners(Path::new(&data)).is_empty());
    let _ = std::fs::remove_file(&ghost);
}
