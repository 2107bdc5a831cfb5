//! The kernel-layout table ([`KernelOffsets`]) computed from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`): the offset of every struct field the kernel programs read, found
//! by struct and field name (descending into anonymous structs and unions). Written into the
//! object before load, so one object runs on every kernel with BTF.
//!
//! Only the parts of BTF needed for that are parsed: the header, the type section (to step over
//! every kind, and to read struct/union members) and the string section.

use std::{collections::HashMap, path::Path};

use verifier_common::KernelOffsets;

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("cannot read kernel BTF {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel BTF is malformed: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no struct {0}")]
    MissingStruct(String),
    #[error("kernel BTF: struct {strukt} has no field {field}")]
    MissingField { strukt: String, field: String },
    #[error("kernel BTF has no function {0}")]
    MissingFunction(String),
    #[error("kernel BTF: function {function} has no parameter {parameter}")]
    MissingParameter { function: String, parameter: String },
    #[error(
        "kernel BTF: {what} is at offset {found}, the kernel programs read it at {expected} \
         (a layout this recorder does not support)"
    )]
    UnexpectedLayout {
        what: &'static str,
        found: u32,
        expected: u32,
    },
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name: String,
    type_id: u32,
    /// Offset in bits from the start of the struct.
    bit_offset: u32,
}

#[derive(Debug, Clone)]
enum Type {
    Composite {
        name: String,
        members: Vec<Member>,
    },
    /// A function: its prototype's type id.
    Func {
        proto: u32,
    },
    /// A function prototype: its parameter names in order.
    Proto {
        params: Vec<String>,
    },
    /// typedef/const/volatile/...: a name for another type (kept for anonymous-member lookups).
    Other,
}

/// The struct and union types of one BTF blob.
pub struct KernelBtf {
    types: Vec<Type>,
    by_name: HashMap<String, u32>,
    functions: HashMap<String, u32>,
}

fn u16_at(data: &[u8], at: usize) -> Result<u16, LayoutError> {
    data.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or(LayoutError::Malformed("short read"))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, LayoutError> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(LayoutError::Malformed("short read"))
}

fn string_at(strings: &[u8], at: u32) -> String {
    let rest = strings.get(at as usize..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

impl KernelBtf {
    pub fn from_file(path: &Path) -> Result<Self, LayoutError> {
        let data = std::fs::read(path).map_err(|source| LayoutError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parses a little-endian BTF blob (as the kernel exposes it).
    pub fn parse(data: &[u8]) -> Result<Self, LayoutError> {
        if u16_at(data, 0)? != BTF_MAGIC {
            return Err(LayoutError::Malformed("bad magic"));
        }
        let header_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_data = data
            .get(header_len + type_off..header_len + type_off + type_len)
            .ok_or(LayoutError::Malformed("type section out of bounds"))?;
        let strings = data
            .get(header_len + str_off..header_len + str_off + str_len)
            .ok_or(LayoutError::Malformed("string section out of bounds"))?;

        // Type id 0 is void.
        let mut types = vec![Type::Other];
        let mut by_name = HashMap::new();
        let mut functions = HashMap::new();
        let mut at = 0;
        while at < types_data.len() {
            let name_off = u32_at(types_data, at)?;
            let info = u32_at(types_data, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kflag = info >> 31 == 1;
            at += 12;
            let ty = match kind {
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let raw_offset = u32_at(types_data, m + 8)?;
                        members.push(Member {
                            name: string_at(strings, u32_at(types_data, m)?),
                            type_id: u32_at(types_data, m + 4)?,
                            bit_offset: if kflag {
                                raw_offset & 0xff_ffff
                            } else {
                                raw_offset
                            },
                        });
                    }
                    at += vlen * 12;
                    let name = string_at(strings, name_off);
                    if kind == KIND_STRUCT && !name.is_empty() {
                        by_name.entry(name.clone()).or_insert(types.len() as u32);
                    }
                    Type::Composite { name, members }
                }
                KIND_FUNC => {
                    let proto = u32_at(types_data, at - 4)?;
                    let name = string_at(strings, name_off);
                    functions.entry(name).or_insert(types.len() as u32);
                    Type::Func { proto }
                }
                KIND_FUNC_PROTO => {
                    let mut params = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        params.push(string_at(strings, u32_at(types_data, at + i * 8)?));
                    }
                    at += vlen * 8;
                    Type::Proto { params }
                }
                other => {
                    at += match other {
                        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                        KIND_ARRAY => 12,
                        KIND_ENUM => vlen * 8,
                        KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                        _ => 0,
                    };
                    Type::Other
                }
            };
            types.push(ty);
        }
        Ok(Self {
            types,
            by_name,
            functions,
        })
    }

    /// Whether the kernel has a function of that name (e.g. the `bpf_lsm_<hook>` of an LSM hook).
    pub fn has_function(&self, function: &str) -> bool {
        self.functions.contains_key(function)
    }

    /// Position (from 0) of the parameter named `parameter` of `function`.
    pub fn parameter_index(&self, function: &str, parameter: &str) -> Result<u32, LayoutError> {
        let id = *self
            .functions
            .get(function)
            .ok_or_else(|| LayoutError::MissingFunction(function.to_owned()))?;
        let params = match self.types.get(id as usize) {
            Some(Type::Func { proto }) => match self.types.get(*proto as usize) {
                Some(Type::Proto { params }) => Some(params),
                _ => None,
            },
            _ => None,
        };
        params
            .and_then(|params| params.iter().position(|p| p == parameter))
            .map(|index| index as u32)
            .ok_or_else(|| LayoutError::MissingParameter {
                function: function.to_owned(),
                parameter: parameter.to_owned(),
            })
    }

    /// Byte offset of `field` in `struct strukt`, looking through anonymous members.
    pub fn field_offset(&self, strukt: &str, field: &str) -> Result<u32, LayoutError> {
        let id = *self
            .by_name
            .get(strukt)
            .ok_or_else(|| LayoutError::MissingStruct(strukt.to_owned()))?;
        self.find_bits(id, field, 0)
            .map(|bits| bits / 8)
            .ok_or_else(|| LayoutError::MissingField {
                strukt: strukt.to_owned(),
                field: field.to_owned(),
            })
    }

    fn find_bits(&self, id: u32, field: &str, depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        let Some(Type::Composite { members, .. }) = self.types.get(id as usize) else {
            return None;
        };
        if let Some(member) = members.iter().find(|m| m.name == field) {
            return Some(member.bit_offset);
        }
        members.iter().filter(|m| m.name.is_empty()).find_map(|m| {
            let anonymous = match self.types.get(m.type_id as usize) {
                Some(Type::Composite { name, .. }) if name.is_empty() => m.type_id,
                _ => return None,
            };
            self.find_bits(anonymous, field, depth + 1)
                .map(|bits| bits + m.bit_offset)
        })
    }
}

/// Whether the kernel has io_uring (and so its tracepoints).
pub fn has_io_uring(btf: &KernelBtf) -> bool {
    btf.field_offset("io_kiocb", "opcode").is_ok()
}

/// The fields and hook parameters only the LSM backend reads: (struct or function, field or
/// parameter). Functions are the `bpf_lsm_<hook>` the hooks attach to.
const LSM_FIELDS: [(&str, &str); 6] = [
    ("file", "f_flags"),
    ("dentry", "d_sb"),
    ("super_block", "s_root"),
    ("fs_struct", "root"),
    ("vfsmount", "mnt_sb"),
    ("iattr", "ia_valid"),
];
const LSM_PARAMETERS: [(&str, &str); 4] = [
    ("bpf_lsm_inode_setattr", "dentry"),
    ("bpf_lsm_inode_setattr", "attr"),
    ("bpf_lsm_inode_setxattr", "dentry"),
    ("bpf_lsm_inode_removexattr", "dentry"),
];

/// Checks that the kernel has every field and hook parameter the LSM programs read.
pub fn lsm_layout(btf: &KernelBtf) -> Result<(), LayoutError> {
    for (strukt, field) in LSM_FIELDS {
        btf.field_offset(strukt, field)?;
    }
    for (function, parameter) in LSM_PARAMETERS {
        btf.parameter_index(function, parameter)?;
    }
    Ok(())
}

/// Layouts the kernel programs read in one block instead of field by field: `d_parent` followed by
/// `d_name` (`struct qstr`: hash, len, name), and `struct path` (mnt, dentry). Every kernel so far
/// has them; checked all the same. (Fields loaded directly from typed pointers, such as the
/// syscall entry frame's, need no check here: the BPF verifier checks each against the BTF.)
fn check_block_layouts(offsets: &KernelOffsets) -> Result<(), LayoutError> {
    let expect = |what: &'static str, found: u32, expected: u32| {
        if found == expected {
            Ok(())
        } else {
            Err(LayoutError::UnexpectedLayout {
                what,
                found,
                expected,
            })
        }
    };
    expect(
        "dentry.d_name (from d_parent)",
        offsets.dentry_name.wrapping_sub(offsets.dentry_parent),
        8,
    )?;
    expect(
        "dentry inline name (from d_parent)",
        offsets
            .dentry_inline_name
            .wrapping_sub(offsets.dentry_parent),
        32,
    )?;
    expect("qstr.len", offsets.qstr_len, 4)?;
    expect("qstr.name", offsets.qstr_name, 8)?;
    expect("path.mnt", offsets.path_mnt, 0)?;
    expect("path.dentry", offsets.path_dentry, 8)
}

/// The whole table for the running kernel. Fields only the LSM backend reads are 0 when absent
/// (that backend is then refused: see [`lsm_layout`]).
pub fn kernel_offsets(btf: &KernelBtf) -> Result<KernelOffsets, LayoutError> {
    let f = |s: &str, field: &str| btf.field_offset(s, field);
    let lsm_field = |s: &str, field: &str| btf.field_offset(s, field).unwrap_or(0);
    let lsm_param = |function: &str, p: &str| btf.parameter_index(function, p).unwrap_or(0);
    let offsets = KernelOffsets {
        valid: 1,
        task_pid: f("task_struct", "pid")?,
        task_tgid: f("task_struct", "tgid")?,
        task_real_parent: f("task_struct", "real_parent")?,
        task_group_leader: f("task_struct", "group_leader")?,
        task_start_boottime: f("task_struct", "start_boottime")?,
        task_cred: f("task_struct", "cred")?,
        task_fs: f("task_struct", "fs")?,
        task_files: f("task_struct", "files")?,
        task_mm: f("task_struct", "mm")?,
        task_exit_code: f("task_struct", "exit_code")?,
        task_signal: f("task_struct", "signal")?,
        signal_live: f("signal_struct", "live")?,
        cred_uid: f("cred", "uid")?,
        cred_euid: f("cred", "euid")?,
        fs_pwd: f("fs_struct", "pwd")?,
        path_mnt: f("path", "mnt")?,
        path_dentry: f("path", "dentry")?,
        dentry_parent: f("dentry", "d_parent")?,
        dentry_name: f("dentry", "d_name")?,
        dentry_inode: f("dentry", "d_inode")?,
        qstr_name: f("qstr", "name")?,
        qstr_len: f("qstr", "len")?,
        inode_ino: f("inode", "i_ino")?,
        inode_sb: f("inode", "i_sb")?,
        sb_dev: f("super_block", "s_dev")?,
        vfsmount_mnt_root: f("vfsmount", "mnt_root")?,
        mount_mnt: f("mount", "mnt")?,
        mount_parent: f("mount", "mnt_parent")?,
        mount_mountpoint: f("mount", "mnt_mountpoint")?,
        file_path: f("file", "f_path")?,
        file_inode: f("file", "f_inode")?,
        files_fdt: f("files_struct", "fdt")?,
        fdtable_max_fds: f("fdtable", "max_fds")?,
        fdtable_fd: f("fdtable", "fd")?,
        mm_arg_start: f("mm_struct", "arg_start")?,
        mm_arg_end: f("mm_struct", "arg_end")?,
        binprm_file: f("linux_binprm", "file")?,
        // Absent when the kernel has no io_uring: then nothing can bypass the syscall hooks that
        // way, and the io_uring programs are not attached (see `has_io_uring`).
        io_kiocb_opcode: f("io_kiocb", "opcode").unwrap_or(0),
        regs_di: f("pt_regs", "di")?,
        regs_si: f("pt_regs", "si")?,
        regs_dx: f("pt_regs", "dx")?,
        regs_r10: f("pt_regs", "r10")?,
        regs_r8: f("pt_regs", "r8")?,
        regs_r9: f("pt_regs", "r9")?,
        regs_orig_ax: f("pt_regs", "orig_ax")?,
        task_comm: f("task_struct", "comm")?,
        file_mode: f("file", "f_mode")?,
        inode_mode: f("inode", "i_mode")?,
        task_thread_info: f("task_struct", "thread_info")?,
        thread_info_status: f("thread_info", "status")?,
        regs_bx: f("pt_regs", "bx")?,
        regs_cx: f("pt_regs", "cx")?,
        regs_bp: f("pt_regs", "bp")?,
        file_flags: lsm_field("file", "f_flags"),
        dentry_sb: lsm_field("dentry", "d_sb"),
        sb_root: lsm_field("super_block", "s_root"),
        fs_root: lsm_field("fs_struct", "root"),
        vfsmount_sb: lsm_field("vfsmount", "mnt_sb"),
        iattr_valid: lsm_field("iattr", "ia_valid"),
        lsm_setattr_dentry: lsm_param("bpf_lsm_inode_setattr", "dentry"),
        lsm_setattr_attr: lsm_param("bpf_lsm_inode_setattr", "attr"),
        lsm_setxattr_dentry: lsm_param("bpf_lsm_inode_setxattr", "dentry"),
        lsm_removexattr_dentry: lsm_param("bpf_lsm_inode_removexattr", "dentry"),
        dentry_inline_name: f("dentry", "d_shortname").or_else(|_| f("dentry", "d_iname"))?,
    };
    check_block_layouts(&offsets)?;
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets of the running kernel agree with what bpftool prints for a few known fields.
    #[test]
    fn running_kernel_layout_resolves_every_field() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skipping: no {VMLINUX_BTF}");
            return;
        }
        let btf = KernelBtf::from_file(path).expect("kernel BTF parses");
        let offsets = kernel_offsets(&btf).expect("all fields found");
        // x86_64 pt_regs is ABI: di at 112, orig_ax at 120.
        assert_eq!(offsets.regs_di, 112);
        assert_eq!(offsets.regs_orig_ax, 120);
        // qstr.len lives inside an anonymous union/struct, after the 32-bit hash.
        assert_eq!(offsets.qstr_len, 4);
        assert_eq!(offsets.qstr_name, 8);
        assert_eq!(offsets.path_mnt, 0);
        assert_eq!(offsets.path_dentry, 8);
    }

    /// A layout the kernel programs would misread (a field they read in one block moved) is
    /// refused before load, naming the field.
    #[test]
    fn moved_block_fields_are_refused() {
        let supported = KernelOffsets {
            dentry_parent: 24,
            dentry_name: 32,
            dentry_inline_name: 56,
            qstr_len: 4,
            qstr_name: 8,
            path_mnt: 0,
            path_dentry: 8,
            ..KernelOffsets::ZERO
        };
        check_block_layouts(&supported).expect("the x86_64 layouts are supported");
        let moved_name = KernelOffsets {
            dentry_name: 40,
            ..supported
        };
        let error = check_block_layouts(&moved_name).unwrap_err().to_string();
        assert!(error.contains("d_name"), "{error}");
        let moved_dentry = KernelOffsets {
            path_dentry: 16,
            ..supported
        };
        let error = check_block_layouts(&moved_dentry).unwrap_err().to_string();
        assert!(error.contains("path.dentry"), "{error}");
    }

    /// Hook parameters are found by name in the `bpf_lsm_<hook>` prototypes.
    #[test]
    fn lsm_hook_parameters_resolve_by_name() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("skipping: no {VMLINUX_BTF}");
            return;
        }
        let btf = KernelBtf::from_file(path).expect("kernel BTF parses");
        if !btf.has_function("bpf_lsm_inode_setattr") {
            eprintln!("skipping: kernel without BPF LSM");
            return;
        }
        lsm_layout(&btf).expect("every LSM field and parameter found");
        // path_rename(old_dir, old_dentry, new_dir, new_dentry, flags) since 5.x.
        assert_eq!(
            btf.parameter_index("bpf_lsm_path_rename", "new_dentry")
                .ok(),
            Some(3)
        );
        assert!(
            btf.parameter_index("bpf_lsm_inode_setattr", "nonexistent")
                .is_err()
        );
    }
}
