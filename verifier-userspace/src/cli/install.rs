//! `verifier install --ossec DIR | --wazuh DIR`: installs the `verify-file` shim into
//! `DIR/active-response/bin/` and prints (or, with `--apply`, writes) the ossec.conf block, the
//! local rules and a minimal verifier configuration from the kit in `packaging/`.
//!
//! Every block the installer writes into a file it does not own sits between two marker
//! comments; a second run finds the block and replaces only it, so the installer is idempotent
//! and never rewrites an existing ossec.conf blindly.

use std::{
    fmt::Write as _,
    fs,
    io::{self, Write as _},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::ExitCode,
};

use crate::config::{ArFlavor, Config};

const OSSEC_CONF_BLOCK: &str = include_str!("../../../packaging/ossec/ossec.conf.xml");
const OSSEC_LOCALFILE: &str = include_str!("../../../packaging/ossec/localfile.xml");
const OSSEC_RULES_BLOCK: &str = include_str!("../../../packaging/ossec/local_rules.xml");
const WAZUH_CONF_BLOCK: &str = include_str!("../../../packaging/wazuh/ossec.conf.xml");
const WAZUH_LOCALFILE: &str = include_str!("../../../packaging/wazuh/localfile.xml");
const WAZUH_RULES_BLOCK: &str = include_str!("../../../packaging/wazuh/verifier_rules.xml");

/// First line of every block the installer manages.
pub const BEGIN_MARKER: &str = "<!-- BEGIN verifier integration";
/// Last line of every block the installer manages.
pub const END_MARKER: &str = "<!-- END verifier integration -->";
/// The group the Active Response is bound to (`rules_group`).
pub const AR_GROUP: &str = "verifier_check";
/// Name of the shim in `active-response/bin/` and of the AR command.
pub const SHIM_NAME: &str = "verify-file";
/// Mode of the installed shim.
pub const SHIM_MODE: u32 = 0o750;
/// Local rule ids the kit uses (syscheck hooks and failure alerts).
pub const RULE_IDS: [u32; 7] = [100201, 100202, 100210, 100211, 100212, 100213, 100214];

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// OSSEC installation directory (e.g. /var/ossec).
    #[arg(long, conflicts_with = "wazuh", required_unless_present = "wazuh")]
    pub ossec: Option<PathBuf>,
    /// Wazuh installation directory (e.g. /var/ossec).
    #[arg(long)]
    pub wazuh: Option<PathBuf>,
    /// The verify-file binary to install (default: the one next to this verifier executable).
    #[arg(long)]
    pub shim: Option<PathBuf>,
    /// Group owning the shim and the socket (default: wazuh or ossec, whichever exists).
    #[arg(long)]
    pub group: Option<String>,
    /// Write the rules, the ossec.conf block and the configuration instead of printing them.
    #[arg(long)]
    pub apply: bool,
}

/// A problem that stops the installation.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{dir} does not look like an OSSEC/Wazuh installation: {missing} is missing")]
    NotAnInstallation { dir: PathBuf, missing: PathBuf },
    #[error("the verify-file shim {path} cannot be used: {source}")]
    Shim {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot find the verify-file shim next to this executable: {0}")]
    ShimNotFound(String),
    #[error("group {0:?} does not exist")]
    UnknownGroup(String),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} contains a verifier BEGIN marker without its END marker; fix it by hand")]
    BrokenMarkers { path: PathBuf },
    #[error("the generated configuration does not validate: {0}")]
    GeneratedConfig(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError + use<> {
    let path = path.to_owned();
    move |source| InstallError::Io {
        action,
        path,
        source,
    }
}

/// What to install where.
#[derive(Debug, Clone)]
pub struct InstallPlan {
    pub flavor: ArFlavor,
    /// The OSSEC/Wazuh installation directory.
    pub dir: PathBuf,
    /// The verify-file binary to copy.
    pub shim_source: PathBuf,
    /// Owner group of the shim; `None` picks wazuh or ossec, whichever exists.
    pub group: Option<String>,
    /// Write files (true) or only report what to add (false). The shim is always installed.
    pub apply: bool,
    /// Where the verifier configuration goes.
    pub config_path: PathBuf,
    /// The group database (normally `/etc/group`).
    pub group_file: PathBuf,
}

/// The ready-made configuration for one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kit {
    /// The block for `etc/ossec.conf` (markers included).
    pub ossec_conf_block: String,
    /// The rules block (markers included).
    pub rules_block: String,
    /// The minimal verifier configuration.
    pub config_toml: String,
}

/// Builds the kit for `flavor` installed at `dir`. `read_ar_log` says whether ossec.conf already
/// reads `active-responses.log` (Wazuh's default), so the block adds no second `<localfile>`.
pub fn kit(flavor: ArFlavor, dir: &Path, socket_group: Option<&str>, read_ar_log: bool) -> Kit {
    let dir_text = dir.display().to_string();
    let (conf, localfile, rules) = match flavor {
        ArFlavor::Ossec => (OSSEC_CONF_BLOCK, OSSEC_LOCALFILE, OSSEC_RULES_BLOCK),
        ArFlavor::Wazuh => (WAZUH_CONF_BLOCK, WAZUH_LOCALFILE, WAZUH_RULES_BLOCK),
    };
    let conf = conf.replace(
        "  <!-- @LOCALFILE@ -->\n",
        if read_ar_log { "" } else { localfile },
    );
    Kit {
        ossec_conf_block: conf.replace("@DIR@", &xml_escape(&dir_text)),
        rules_block: rules.to_owned(),
        config_toml: config_toml(flavor, dir, socket_group),
    }
}

fn config_toml(flavor: ArFlavor, dir: &Path, socket_group: Option<&str>) -> String {
    let (flavor_name, program) = match flavor {
        ArFlavor::Ossec => ("ossec", "--ossec"),
        ArFlavor::Wazuh => ("wazuh", "--wazuh"),
    };
    let mut text = format!(
        "# Written by `verifier install {program} {}`; every other key keeps its default.\n",
        dir.display()
    );
    match socket_group {
        Some(group) => {
            let _ = writeln!(text, "socket_group = {}", toml_string(group));
        }
        None => text.push_str("# socket_group = \"ossec\"  (no ossec/wazuh group found)\n"),
    }
    let _ = write!(
        text,
        "\n[active_response]\nflavor = \"{flavor_name}\"\nlog_path = {}\nalerts_log = {}\n",
        toml_string(&dir.join("logs/active-responses.log").display().to_string()),
        toml_string(&dir.join("logs/alerts/alerts.log").display().to_string()),
    );
    text
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written (new file or new block).
    Written,
    /// Our earlier block was replaced with the current one.
    Updated,
    /// Already there as it should be.
    Unchanged,
    /// Not written (no `--apply`): the text must be added by hand.
    ToAdd,
    /// Our earlier block differs (no `--apply`): replace it by hand or run with `--apply`.
    ToUpdate,
    /// Not written because something there would clash; the reason says what.
    Conflict(String),
}

/// One file the kit concerns.
#[derive(Debug, Clone)]
pub struct Step {
    pub target: PathBuf,
    pub text: String,
    pub outcome: Outcome,
}

/// Everything the installation did or wants done.
#[derive(Debug, Clone)]
pub struct InstallReport {
    pub flavor: ArFlavor,
    pub dir: PathBuf,
    pub shim: PathBuf,
    /// Whether the shim was copied (false: it was already identical).
    pub shim_copied: bool,
    /// The shim's owner group, when one of ossec/wazuh (or `--group`) exists.
    pub shim_group: Option<String>,
    pub ossec_conf: Step,
    pub rules: Step,
    pub config: Step,
}

impl InstallReport {
    /// Whether anything still needs doing by hand.
    pub fn complete(&self) -> bool {
        [&self.ossec_conf, &self.rules, &self.config]
            .iter()
            .all(|step| {
                matches!(
                    step.outcome,
                    Outcome::Written | Outcome::Updated | Outcome::Unchanged
                )
            })
    }
}

pub fn run(config: Option<&Path>, args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let (flavor, dir) = match (&args.ossec, &args.wazuh) {
        (Some(dir), None) => (ArFlavor::Ossec, dir.clone()),
        (None, Some(dir)) => (ArFlavor::Wazuh, dir.clone()),
        _ => anyhow::bail!("name exactly one of --ossec DIR or --wazuh DIR"),
    };
    let shim_source = match &args.shim {
        Some(path) => path.clone(),
        None => shim_next_to_executable()?,
    };
    let plan = InstallPlan {
        flavor,
        dir,
        shim_source,
        group: args.group.clone(),
        apply: args.apply,
        config_path: Config::resolve_path(config).0,
        group_file: PathBuf::from("/etc/group"),
    };
    let report = install(&plan)?;
    print!("{}", render(&report));
    io::stdout().flush()?;
    Ok(if report.complete() || !plan.apply {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn shim_next_to_executable() -> Result<PathBuf, InstallError> {
    let exe =
        std::env::current_exe().map_err(|error| InstallError::ShimNotFound(error.to_string()))?;
    let dir = exe
        .parent()
        .ok_or_else(|| InstallError::ShimNotFound(format!("{} has no directory", exe.display())))?;
    Ok(dir.join(SHIM_NAME))
}

/// Installs the shim and applies (or plans) the configuration.
pub fn install(plan: &InstallPlan) -> Result<InstallReport, InstallError> {
    let bin_dir = plan.dir.join("active-response/bin");
    let conf_path = plan.dir.join("etc/ossec.conf");
    for required in [&bin_dir, &plan.dir.join("etc")] {
        if !required.is_dir() {
            return Err(InstallError::NotAnInstallation {
                dir: plan.dir.clone(),
                missing: required.clone(),
            });
        }
    }
    let (group_name, gid) = resolve_group(plan)?;
    let shim = bin_dir.join(SHIM_NAME);
    let shim_copied = install_shim(&plan.shim_source, &shim, gid)?;

    let existing_conf = read_optional(&conf_path)?;
    if plan.apply && existing_conf.is_none() {
        return Err(InstallError::NotAnInstallation {
            dir: plan.dir.clone(),
            missing: conf_path,
        });
    }
    let reads_ar_log = existing_conf
        .as_deref()
        .is_some_and(reads_ar_log_outside_block);
    let kit = kit(plan.flavor, &plan.dir, group_name.as_deref(), reads_ar_log);

    let ossec_conf = merge_block(
        &conf_path,
        existing_conf.as_deref(),
        &kit.ossec_conf_block,
        plan.apply,
        conf_conflict(existing_conf.as_deref()),
        gid,
    )?;
    let rules = match plan.flavor {
        ArFlavor::Ossec => ossec_rules_step(plan, &kit, gid)?,
        ArFlavor::Wazuh => wazuh_rules_step(plan, &kit, gid)?,
    };
    let config = config_step(plan, &kit)?;
    Ok(InstallReport {
        flavor: plan.flavor,
        dir: plan.dir.clone(),
        shim,
        shim_copied,
        shim_group: group_name,
        ossec_conf,
        rules,
        config,
    })
}

/// The group that owns the shim: `--group`, else wazuh/ossec (Wazuh) or ossec (OSSEC).
fn resolve_group(plan: &InstallPlan) -> Result<(Option<String>, u32), InstallError> {
    let groups =
        fs::read_to_string(&plan.group_file).map_err(io_error("read", &plan.group_file))?;
    if let Some(name) = &plan.group {
        let gid =
            group_id(&groups, name).ok_or_else(|| InstallError::UnknownGroup(name.clone()))?;
        return Ok((Some(name.clone()), gid));
    }
    let candidates: &[&str] = match plan.flavor {
        ArFlavor::Ossec => &["ossec"],
        ArFlavor::Wazuh => &["wazuh", "ossec"],
    };
    for name in candidates {
        if let Some(gid) = group_id(&groups, name) {
            return Ok((Some((*name).to_owned()), gid));
        }
    }
    tracing::warn!(
        candidates = ?candidates,
        "no OSSEC/Wazuh group exists; the shim stays root:root"
    );
    Ok((None, 0))
}

/// The gid of `name` in an `/etc/group` text.
fn group_id(groups: &str, name: &str) -> Option<u32> {
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        let group = fields.next()?;
        let gid = fields.nth(1)?;
        (group == name).then(|| gid.parse().ok()).flatten()
    })
}

/// Copies the shim to `target` as root:`gid` 0750 unless it is already there. Returns whether
/// it copied.
fn install_shim(source: &Path, target: &Path, gid: u32) -> Result<bool, InstallError> {
    let shim_error = |source_error| InstallError::Shim {
        path: source.to_owned(),
        source: source_error,
    };
    let metadata = fs::metadata(source).map_err(shim_error)?;
    if !metadata.is_file() {
        return Err(shim_error(io::Error::other("not a regular file")));
    }
    let content = fs::read(source).map_err(shim_error)?;
    let same_file = fs::canonicalize(source).ok() == fs::canonicalize(target).ok();
    let up_to_date = match fs::metadata(target) {
        Ok(existing) => {
            existing.mode() & 0o7777 == SHIM_MODE
                && existing.uid() == 0
                && existing.gid() == gid
                && (same_file || fs::read(target).ok().as_deref() == Some(&content[..]))
        }
        Err(_) => false,
    };
    if up_to_date {
        return Ok(false);
    }
    if same_file {
        set_owner_and_mode(target, gid, SHIM_MODE)?;
        return Ok(true);
    }
    write_atomically(target, &content, 0, gid, SHIM_MODE)?;
    Ok(true)
}

fn set_owner_and_mode(path: &Path, gid: u32, mode: u32) -> Result<(), InstallError> {
    std::os::unix::fs::chown(path, Some(0), Some(gid)).map_err(io_error("chown", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_error("chmod", path))
}

/// Writes `content` to a temporary file beside `path`, sets owner and mode, and renames it over
/// `path`, so readers never see a half-written file.
fn write_atomically(
    path: &Path,
    content: &[u8],
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<(), InstallError> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.verifier-tmp"));
    let result = (|| {
        fs::write(&temporary, content).map_err(io_error("write", &temporary))?;
        std::os::unix::fs::chown(&temporary, Some(uid), Some(gid))
            .map_err(io_error("chown", &temporary))?;
        fs::set_permissions(&temporary, fs::Permissions::from_mode(mode))
            .map_err(io_error("chmod", &temporary))?;
        fs::rename(&temporary, path).map_err(io_error("replace", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

fn read_optional(path: &Path) -> Result<Option<String>, InstallError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io_error("read", path)(error)),
    }
}

/// Our marked block in `text`: its byte range, including the END marker line.
fn find_block(text: &str, path: &Path) -> Result<Option<std::ops::Range<usize>>, InstallError> {
    let Some(start) = text.find(BEGIN_MARKER) else {
        return Ok(None);
    };
    let Some(end_offset) = text[start..].find(END_MARKER) else {
        return Err(InstallError::BrokenMarkers {
            path: path.to_owned(),
        });
    };
    let mut end = start + end_offset + END_MARKER.len();
    if text[end..].starts_with('\n') {
        end += 1;
    }
    Ok(Some(start..end))
}

/// `text` without our block (what the user wrote).
fn outside_block(text: &str) -> String {
    match text.find(BEGIN_MARKER) {
        Some(start) => {
            let end = text[start..]
                .find(END_MARKER)
                .map_or(text.len(), |offset| start + offset + END_MARKER.len());
            format!("{}{}", &text[..start], &text[end..])
        }
        None => text.to_owned(),
    }
}

fn reads_ar_log_outside_block(conf: &str) -> bool {
    let own = outside_block(conf);
    own.split("<localfile>").skip(1).any(|section| {
        section
            .split("</localfile>")
            .next()
            .is_some_and(|body| body.contains("active-responses.log"))
    })
}

/// Something in ossec.conf, outside our block, that our block would clash with.
fn conf_conflict(conf: Option<&str>) -> Option<String> {
    let own = outside_block(conf?);
    let command = format!("<name>{SHIM_NAME}</name>");
    own.contains(&command).then(|| {
        format!("ossec.conf already defines a command named {SHIM_NAME} outside the verifier block; remove it or merge by hand")
    })
}

/// Rule ids of the kit already used outside our block.
fn rule_id_conflict(text: &str, source: &Path) -> Option<String> {
    let own = outside_block(text);
    let clashing: Vec<String> = RULE_IDS
        .iter()
        .filter(|id| own.contains(&format!("id=\"{id}\"")) || own.contains(&format!("id='{id}'")))
        .map(u32::to_string)
        .collect();
    (!clashing.is_empty()).then(|| {
        format!(
            "{} already uses rule id(s) {} outside the verifier block",
            source.display(),
            clashing.join(", ")
        )
    })
}

/// Puts `block` into `path`: replaces our marked block, or appends it. With `apply` false,
/// only reports. A new file is created as root:`new_file_gid` 0640.
fn merge_block(
    path: &Path,
    existing: Option<&str>,
    block: &str,
    apply: bool,
    conflict: Option<String>,
    new_file_gid: u32,
) -> Result<Step, InstallError> {
    let step = |outcome| Step {
        target: path.to_owned(),
        text: block.to_owned(),
        outcome,
    };
    if let Some(reason) = conflict {
        return Ok(step(Outcome::Conflict(reason)));
    }
    let text = existing.unwrap_or("");
    let (merged, replaced) = match find_block(text, path)? {
        Some(range) if &text[range.clone()] == block => return Ok(step(Outcome::Unchanged)),
        Some(range) => (
            format!("{}{}{}", &text[..range.start], block, &text[range.end..]),
            true,
        ),
        None => {
            let separator = match text {
                "" => "",
                text if text.ends_with("\n\n") => "",
                text if text.ends_with('\n') => "\n",
                _ => "\n\n",
            };
            (format!("{text}{separator}{block}"), false)
        }
    };
    if !apply {
        return Ok(step(if replaced {
            Outcome::ToUpdate
        } else {
            Outcome::ToAdd
        }));
    }
    let (uid, gid, mode) = match fs::metadata(path) {
        Ok(metadata) => (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777),
        Err(_) => (0, new_file_gid, 0o640),
    };
    if existing.is_some() {
        let backup = path.with_file_name(format!(
            "{}.before-verifier",
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        if !backup.exists() {
            fs::copy(path, &backup).map_err(io_error("back up", path))?;
        }
    }
    write_atomically(path, merged.as_bytes(), uid, gid, mode)?;
    Ok(step(if replaced {
        Outcome::Updated
    } else {
        Outcome::Written
    }))
}

/// OSSEC reads `rules/local_rules.xml` (listed in ossec.conf); our block goes into it.
fn ossec_rules_step(plan: &InstallPlan, kit: &Kit, gid: u32) -> Result<Step, InstallError> {
    let rules_dir = plan.dir.join("rules");
    let path = rules_dir.join("local_rules.xml");
    let existing = read_optional(&path)?;
    let conflict = existing
        .as_deref()
        .and_then(|text| rule_id_conflict(text, &path));
    if plan.apply && !rules_dir.is_dir() {
        return Err(InstallError::NotAnInstallation {
            dir: plan.dir.clone(),
            missing: rules_dir,
        });
    }
    merge_block(
        &path,
        existing.as_deref(),
        &kit.rules_block,
        plan.apply,
        conflict,
        gid,
    )
}

/// Wazuh loads every file in `etc/rules/`; ours is `verifier_rules.xml`, whole.
fn wazuh_rules_step(plan: &InstallPlan, kit: &Kit, gid: u32) -> Result<Step, InstallError> {
    let rules_dir = plan.dir.join("etc/rules");
    let path = rules_dir.join("verifier_rules.xml");
    let step = |outcome| Step {
        target: path.clone(),
        text: kit.rules_block.clone(),
        outcome,
    };
    let existing = read_optional(&path)?;
    let local_rules = rules_dir.join("local_rules.xml");
    if let Some(reason) =
        read_optional(&local_rules)?.and_then(|text| rule_id_conflict(&text, &local_rules))
    {
        return Ok(step(Outcome::Conflict(reason)));
    }
    match existing {
        Some(text) if text == kit.rules_block => Ok(step(Outcome::Unchanged)),
        Some(text) if !text.contains(BEGIN_MARKER) => Ok(step(Outcome::Conflict(format!(
            "{} exists and was not written by verifier",
            path.display()
        )))),
        Some(_) if !plan.apply => Ok(step(Outcome::ToUpdate)),
        None if !plan.apply => Ok(step(Outcome::ToAdd)),
        Some(_) => {
            let metadata = fs::metadata(&path).map_err(io_error("inspect", &path))?;
            write_atomically(
                &path,
                kit.rules_block.as_bytes(),
                metadata.uid(),
                metadata.gid(),
                metadata.mode() & 0o7777,
            )?;
            Ok(step(Outcome::Updated))
        }
        None => {
            if !rules_dir.is_dir() {
                return Err(InstallError::NotAnInstallation {
                    dir: plan.dir.clone(),
                    missing: rules_dir,
                });
            }
            write_atomically(&path, kit.rules_block.as_bytes(), 0, gid, 0o640)?;
            Ok(step(Outcome::Written))
        }
    }
}

/// The verifier configuration: written when missing; an existing one is kept and compared.
fn config_step(plan: &InstallPlan, kit: &Kit) -> Result<Step, InstallError> {
    let path = &plan.config_path;
    let wanted = Config::from_toml(&kit.config_toml, path)
        .map_err(|error| InstallError::GeneratedConfig(error.to_string()))?;
    let step = |outcome| Step {
        target: path.clone(),
        text: kit.config_toml.clone(),
        outcome,
    };
    if let Some(existing) = read_optional(path)? {
        return Ok(match Config::from_toml(&existing, path) {
            Ok(current)
                if current.active_response.flavor == wanted.active_response.flavor
                    && current.active_response.log_path == wanted.active_response.log_path
                    && current.active_response.alerts_log == wanted.active_response.alerts_log
                    && current.socket_group == wanted.socket_group =>
            {
                step(Outcome::Unchanged)
            }
            Ok(_) => step(Outcome::Conflict(format!(
                "{} exists with other active_response/socket_group settings; merge by hand",
                path.display()
            ))),
            Err(error) => step(Outcome::Conflict(format!("{error}; fix it by hand"))),
        });
    }
    if !plan.apply {
        return Ok(step(Outcome::ToAdd));
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error("create", parent))?;
    }
    write_atomically(path, kit.config_toml.as_bytes(), 0, 0, 0o644)?;
    Ok(step(Outcome::Written))
}

/// The text `verifier install` prints.
pub fn render(report: &InstallReport) -> String {
    let mut out = String::new();
    let owner = report.shim_group.as_deref().unwrap_or("root");
    let _ = writeln!(
        out,
        "{} {} (root:{owner}, mode {SHIM_MODE:04o})",
        if report.shim_copied {
            "Installed"
        } else {
            "Up to date:"
        },
        report.shim.display()
    );
    for step in [&report.ossec_conf, &report.rules, &report.config] {
        out.push('\n');
        render_step(&mut out, step);
    }
    let restart = match report.flavor {
        ArFlavor::Ossec => format!("{}/bin/ossec-control restart", report.dir.display()),
        ArFlavor::Wazuh => "systemctl restart wazuh-manager (or wazuh-agent)".to_owned(),
    };
    let _ = writeln!(
        out,
        "\nThen start the daemon (packaging/systemd/verifier.service: systemctl enable --now verifier)\nand restart {}: {restart}",
        match report.flavor {
            ArFlavor::Ossec => "OSSEC",
            ArFlavor::Wazuh => "Wazuh",
        }
    );
    if !report.complete() {
        out.push_str("Run again with --apply to write the files marked \"add\" or \"update\".\n");
    }
    out
}

fn render_step(out: &mut String, step: &Step) {
    let target = step.target.display();
    let print_text = match &step.outcome {
        Outcome::Written => {
            let _ = writeln!(out, "Wrote {target}");
            false
        }
        Outcome::Updated => {
            let _ = writeln!(out, "Updated the verifier block in {target}");
            false
        }
        Outcome::Unchanged => {
            let _ = writeln!(out, "Already in place: {target}");
            false
        }
        Outcome::ToAdd => {
            let _ = writeln!(out, "== add to {target} ==");
            true
        }
        Outcome::ToUpdate => {
            let _ = writeln!(out, "== update the verifier block in {target} to ==");
            true
        }
        Outcome::Conflict(reason) => {
            let _ = writeln!(
                out,
                "NOT written: {reason}\n== merge into {target} by hand =="
            );
            true
        }
    };
    if print_text {
        out.push_str(&step.text);
        if !step.text.ends_with('\n') {
            out.push('\n');
        }
        let _ = writeln!(out, "== end of {target} ==");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_come_from_the_group_file() {
        let groups = "root:x:0:\nossec:x:998:\nwazuh:x:997:wazuh\n";
        assert_eq!(group_id(groups, "ossec"), Some(998));
        assert_eq!(group_id(groups, "wazuh"), Some(997));
        assert_eq!(group_id(groups, "oss"), None);
    }

    #[test]
    fn wazuh_kit_adds_localfile_only_when_missing() {
        let dir = Path::new("/var/ossec");
        let with = kit(ArFlavor::Wazuh, dir, Some("wazuh"), false);
        assert!(
            with.ossec_conf_block
                .contains("<location>/var/ossec/logs/active-responses.log</location>")
        );
        let without = kit(ArFlavor::Wazuh, dir, Some("wazuh"), true);
        assert!(!without.ossec_conf_block.contains("<localfile>"));
        assert!(!without.ossec_conf_block.contains("@LOCALFILE@"));
    }

    #[test]
    fn localfile_detection_ignores_our_own_block() {
        let ours = kit(ArFlavor::Ossec, Path::new("/var/ossec"), None, false).ossec_conf_block;
        assert!(!reads_ar_log_outside_block(&ours));
        let stock = "<ossec_config>\n<localfile>\n<location>/var/ossec/logs/active-responses.log</location>\n</localfile>\n</ossec_config>\n";
        assert!(reads_ar_log_outside_block(stock));
    }
}
