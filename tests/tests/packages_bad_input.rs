//! Hostile package databases: a dpkg admindir copy with a status file cut mid-stanza, an
//! md5sums line without a path and a binary-garbage file list, and an rpm sqlite database
//! with a header whose offsets point outside it. Each problem is reported with its file and
//! position, everything else still loads, nothing panics.

mod packages_support;

use std::path::{Path, PathBuf};

use packages_support::{TempDir, run, write_file};
use verifier::{
    config::PackagesConfig,
    packages::{PackageIndex, Position, rpm_header},
};

const GOOD_MD5: &str = "0123456789abcdef0123456789abcdef";

fn admindir_with_damage(root: &Path) -> PathBuf {
    let admindir = root.join("dpkg");
    let status = "Package: good\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n\
         Package: badsums\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n\
         Package: garbage\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n\
         Package: cut\nVersion: 1\nArchitec";
    write_file(&admindir, "status", status, 0o644);
    write_file(
        &admindir,
        "info/good.list",
        "/.\n/usr\n/usr/share/good-file\n",
        0o644,
    );
    write_file(
        &admindir,
        "info/good.md5sums",
        &format!("{GOOD_MD5}  usr/share/good-file\n"),
        0o644,
    );
    write_file(
        &admindir,
        "info/badsums.list",
        "/usr/share/bad-a\n/usr/share/bad-b\n",
        0o644,
    );
    write_file(
        &admindir,
        "info/badsums.md5sums",
        &format!("{GOOD_MD5}  usr/share/bad-a\n{GOOD_MD5}  \n"),
        0o644,
    );
    let garbage_list = admindir.join("info/garbage.list");
    std::fs::write(
        &garbage_list,
        b"\x7fELF\x02\x01\x01\x00\xff\xfe/usr/share/after-garbage\n/usr/share/ok-line\n",
    )
    .expect("write garbage");
    admindir
}

#[test]
fn damaged_dpkg_database_loads_what_is_intact_and_names_each_problem() {
    let temp = TempDir::new("verifier-bad-dpkg");
    let admindir = admindir_with_damage(temp.path());
    let config = PackagesConfig {
        dpkg_admindir: Some(admindir.clone()),
        rpm_dbpath: None,
        rpm_enabled: false,
    };
    let (index, errors) = PackageIndex::load(&config).expect("a damaged database still loads");
    let described: Vec<String> = errors.iter().map(ToString::to_string).collect();

    let status_error = errors
        .iter()
        .find(|error| error.file == admindir.join("status") && error.message.contains("Status"))
        .unwrap_or_else(|| panic!("status error expected: {described:?}"));
    assert_eq!(status_error.position, Some(Position::Line(16)));
    assert!(status_error.message.contains("cut"), "{status_error}");

    let md5_error = errors
        .iter()
        .find(|error| error.file == admindir.join("info/badsums.md5sums"))
        .unwrap_or_else(|| panic!("md5sums error expected: {described:?}"));
    assert_eq!(md5_error.position, Some(Position::Line(2)));

    let list_error = errors
        .iter()
        .find(|error| error.file == admindir.join("info/garbage.list"))
        .unwrap_or_else(|| panic!("list error expected: {described:?}"));
    assert_eq!(list_error.position, Some(Position::Line(1)));

    let good = index.owners(Path::new("/usr/share/good-file"));
    assert_eq!(good.len(), 1);
    assert!(good[0].digest.is_some());
    assert!(
        index.owners(Path::new("/usr/share/bad-a"))[0]
            .digest
            .is_some()
    );
    assert!(
        index.owners(Path::new("/usr/share/bad-b"))[0]
            .digest
            .is_none()
    );
    assert_eq!(index.owners(Path::new("/usr/share/ok-line")).len(), 1);
    assert_eq!(
        index.stats().packages,
        3,
        "good, badsums and garbage load; cut does not"
    );
}

#[test]
fn missing_status_file_is_a_fatal_error_naming_it() {
    let temp = TempDir::new("verifier-no-status");
    let config = PackagesConfig {
        dpkg_admindir: Some(temp.path().to_owned()),
        rpm_dbpath: None,
        rpm_enabled: false,
    };
    let error = PackageIndex::load(&config).err().expect("no status file");
    assert!(error.to_string().contains("status"), "{error}");
}

fn good_header(name: &str) -> Vec<u8> {
    use rpm_header::{build_blob, tag, types};
    build_blob(&[
        (tag::NAME, types::STRING, 1, format!("{name}\0").as_bytes()),
        (tag::VERSION, types::STRING, 1, b"1\0"),
        (tag::BASENAMES, types::STRING_ARRAY, 1, b"file\0"),
        (
            tag::DIRNAMES,
            types::STRING_ARRAY,
            1,
            format!("/opt/{name}/\0").as_bytes(),
        ),
        (tag::DIRINDEXES, types::INT32, 1, &[0, 0, 0, 0]),
        (tag::FILEMODES, types::INT16, 1, &0o100644u16.to_be_bytes()),
    ])
}

fn hex(bytes: &[u8]) -> String {
    verifier::packages::to_hex(bytes)
}

#[test]
fn hostile_rpm_header_is_reported_by_row_and_byte_and_others_load() {
    let temp = TempDir::new("verifier-bad-rpmdb");
    let mut hostile = good_header("hostile");
    // The BASENAMES entry's data offset points far outside the data area.
    let entry = 8 + 2 * 16;
    hostile[entry + 8..entry + 12].copy_from_slice(&0x7fff_fff0u32.to_be_bytes());
    let script = format!(
        "import sqlite3\n\
         db = sqlite3.connect('{db}')\n\
         db.execute('CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)')\n\
         db.execute(\"INSERT INTO Packages (hnum, blob) VALUES (1, X'{good}')\")\n\
         db.execute(\"INSERT INTO Packages (hnum, blob) VALUES (2, X'{hostile}')\")\n\
         db.execute(\"INSERT INTO Packages (hnum, blob) VALUES (3, X'00ff')\")\n\
         db.commit()\n",
        db = temp.path().join("rpmdb.sqlite").display(),
        good = hex(&good_header("goodrpm")),
        hostile = hex(&hostile),
    );
    run("python3", &["-c", &script]);
    let config = PackagesConfig {
        dpkg_admindir: None,
        rpm_dbpath: Some(temp.path().to_owned()),
        rpm_enabled: true,
    };
    let (index, errors) = PackageIndex::load(&config).expect("loads");
    assert_eq!(index.owners(Path::new("/opt/goodrpm/file")).len(), 1);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0].position,
        Some(Position::RpmHeader {
            hnum: 2,
            byte: entry + 8
        })
    );
    assert!(matches!(
        errors[1].position,
        Some(Position::RpmHeader { hnum: 3, .. })
    ));
    assert!(
        errors[0].to_string().contains("rpmdb.sqlite"),
        "{}",
        errors[0]
    );
}
