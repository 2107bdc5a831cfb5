//! The recorder: the embedded kernel object loaded with this kernel's layout, every program
//! attached, and handles on the maps userspace fills (package managers) or reads (counters, ring
//! buffer). Dropping it detaches everything.

use std::{collections::BTreeMap, path::Path, time::Instant};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, Iter, Lsm, ProgramError},
};
use tracing::{debug, info, warn};
use verifier_common::{FileKey, LOSS_SUMMARY_SLOT, ProgramCounters, ProgramId};

use super::{
    backend::{self, ActiveBackend, BackendError, Hook, ProgramSpec},
    devno,
    kernel_layout::{self, KernelBtf, LayoutError},
    preexisting,
};
use crate::{
    config::{Backend, RecorderConfig},
    events::{FileId, PreexistingWriterEvent},
    intake::EventStream,
};

/// The kernel object, built by `build.rs` from `verifier-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/verifier"));

const EVENTS_MAP: &str = "EVENTS";
const COUNTERS_MAP: &str = "COUNTERS";
const PACKAGE_MANAGERS_MAP: &str = "PACKAGE_MANAGERS";
const OFFSETS_GLOBAL: &str = "OFFSETS";
const RING_WAKEUP_GLOBAL: &str = "RING_WAKEUP_BYTES";
/// The kernel wakes the reader when one CPU has emitted this fraction of the ring buffer, divided
/// among the CPUs, since its last wakeup; otherwise the reader drains on its own timer (`intake`),
/// so a busy host pays no wakeup per record.
const RING_WAKEUP_DIVISOR: u64 = 8;
/// The `iter/task_file` program listing files open for write.
const OPEN_WRITERS_PROGRAM: &str = "task_file_writers";

/// `RING_WAKEUP_BYTES`: the ring's size over `RING_WAKEUP_DIVISOR`, shared among the possible
/// CPUs, so all of them together wake the reader before the ring is an eighth full.
fn wakeup_bytes_per_cpu(ring_bytes: u32) -> u64 {
    let cpus = aya::util::nr_cpus().map_or(1, |n| u64::from(n.get()));
    u64::from(ring_bytes) / RING_WAKEUP_DIVISOR / cpus
}

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("ring buffer size {0} is not a power of two multiple of the page size")]
    RingBufferSize(u32),
    #[error("kernel layout: {0}")]
    Layout(#[from] LayoutError),
    #[error("loading the kernel object: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("program {program}: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("program {0} missing from the kernel object")]
    MissingProgram(&'static str),
    #[error("map {0} missing from the kernel object (or already taken)")]
    MissingMap(&'static str),
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<MapError>,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("scanning open files: {0}")]
    Scan(#[from] std::io::Error),
}

fn map_error(map: &'static str) -> impl FnOnce(MapError) -> RecorderError {
    move |source| RecorderError::Map {
        map,
        source: Box::new(source),
    }
}

/// One attached program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramInfo {
    pub name: &'static str,
    /// The BPF program type, as bpftool names it.
    pub program_type: &'static str,
    /// What it is attached to.
    pub hook: &'static str,
}

/// Counters of every program, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub per_program: BTreeMap<&'static str, ProgramCounters>,
}

impl Counters {
    /// Records lost (ring buffer full or errors) over all programs.
    pub fn lost(&self) -> u64 {
        self.per_program
            .values()
            .map(|c| c.ringbuf_full + c.errors)
            .sum()
    }

    pub fn emitted(&self) -> u64 {
        self.per_program.values().map(|c| c.emitted).sum()
    }
}

/// The loaded, attached recorder.
pub struct Recorder {
    ebpf: Ebpf,
    backend: ActiveBackend,
    attached: Vec<ProgramInfo>,
    counters: PerCpuArray<MapData, ProgramCounters>,
    counters_map_id: u32,
    package_managers: BpfHashMap<MapData, FileKey, u8>,
    events_taken: bool,
    /// The `iter/task_file` program loaded (else the /proc scan is used).
    iterator_ready: bool,
    /// When loading began: the first loss window starts here.
    loaded_at: crate::events::WallNanos,
}

/// Whether the kernel accepts tracing programs through BTF (`tp_btf`), the backend built here.
pub fn probe_program_types() -> bool {
    Path::new(kernel_layout::VMLINUX_BTF).exists()
}

impl Recorder {
    /// Loads the embedded object with this kernel's layout and attaches the programs of the
    /// configured backend (for `auto`, the best one the kernel accepts).
    pub fn load(config: &RecorderConfig) -> Result<Recorder, RecorderError> {
        let ring_bytes = config.ring_buffer_bytes;
        if !ring_bytes.is_power_of_two() || ring_bytes < page_size() {
            return Err(RecorderError::RingBufferSize(ring_bytes));
        }
        raise_memlock_limit();
        let btf = KernelBtf::from_file(Path::new(kernel_layout::VMLINUX_BTF))?;
        let support = match config.backend {
            Backend::Auto | Backend::Lsm => backend::probe(&btf),
            _ => backend::KernelSupport {
                lsm: Err("not probed".to_owned()),
            },
        };
        if let Err(reason) = &support.lsm
            && config.backend == Backend::Auto
        {
            info!(reason = %reason, "BPF LSM unavailable; using the tracepoint backend");
        }
        let chosen = backend::choose(config.backend, &support)?;
        match Self::load_backend(config, &btf, chosen) {
            Err(RecorderError::Backend(error))
                if config.backend == Backend::Auto && chosen != ActiveBackend::Tracepoint =>
            {
                warn!(%error, "falling back to the tracepoint backend");
                Self::load_backend(config, &btf, ActiveBackend::Tracepoint)
            }
            other => other,
        }
    }

    fn load_backend(
        config: &RecorderConfig,
        btf: &KernelBtf,
        chosen: ActiveBackend,
    ) -> Result<Recorder, RecorderError> {
        let started = Instant::now();
        let loaded_at = crate::intake::wall_clock_now();
        let ring_bytes = config.ring_buffer_bytes;
        let offsets = kernel_layout::kernel_offsets(btf)?;
        let mut ebpf = EbpfLoader::new()
            .override_global(OFFSETS_GLOBAL, &offsets, true)
            .override_global(RING_WAKEUP_GLOBAL, &wakeup_bytes_per_cpu(ring_bytes), true)
            .map_max_entries(EVENTS_MAP, ring_bytes)
            .load(OBJECT)
            .map_err(|e| RecorderError::Load(Box::new(e)))?;
        let kernel_btf = aya::Btf::from_sys_fs()
            .map_err(|e| RecorderError::Load(Box::new(aya::EbpfError::BtfError(e))))?;
        let mut attached = Vec::new();
        for spec in backend::PROCESS_PROGRAMS {
            attached.push(attach(&mut ebpf, spec, spec.id.name(), &kernel_btf)?);
        }
        let io_uring = kernel_layout::has_io_uring(btf);
        if chosen == ActiveBackend::Tracepoint && !io_uring {
            info!("kernel without io_uring: io_uring programs not attached");
        }
        let programs = chosen.programs();
        let mut skipped = Vec::new();
        for spec in programs {
            if matches!(spec.id, ProgramId::IoUringCreate | ProgramId::IoUringSubmit) && !io_uring {
                continue;
            }
            if let Hook::Lsm(hook) = spec.hook
                && !btf.has_function(&format!("bpf_lsm_{hook}"))
                && spec.needed_when_present
            {
                info!(
                    program = spec.id.name(),
                    hook, "kernel without this LSM hook; its operations pass other hooks"
                );
                continue;
            }
            match attach(&mut ebpf, spec, program_symbol(spec, btf), &kernel_btf) {
                Ok(info) => attached.push(info),
                Err(error) => {
                    skipped.push(spec.id);
                    let missing = backend::uncovered(programs, &skipped);
                    if missing.is_empty() && !spec.needed_when_present {
                        warn!(program = spec.id.name(), %error,
                            "program skipped; the others still report every operation");
                        continue;
                    }
                    return Err(BackendError::Uncovered {
                        backend: chosen.name(),
                        program: spec.id.name(),
                        hook: spec.hook.name(),
                        missing,
                        reason: error.to_string(),
                    }
                    .into());
                }
            }
        }
        let iterator_ready = match load_iterator(&mut ebpf, &kernel_btf) {
            Ok(()) => true,
            Err(error) => {
                warn!(%error, "iter/task_file unavailable; preexisting writers come from /proc");
                false
            }
        };
        let counters_map = ebpf
            .take_map(COUNTERS_MAP)
            .ok_or(RecorderError::MissingMap(COUNTERS_MAP))?;
        let counters: PerCpuArray<MapData, ProgramCounters> =
            PerCpuArray::try_from(counters_map).map_err(map_error(COUNTERS_MAP))?;
        let counters_map_id = aya::maps::IterableMap::map(&counters)
            .info()
            .map_err(map_error(COUNTERS_MAP))?
            .id();
        let package_managers = BpfHashMap::try_from(
            ebpf.take_map(PACKAGE_MANAGERS_MAP)
                .ok_or(RecorderError::MissingMap(PACKAGE_MANAGERS_MAP))?,
        )
        .map_err(map_error(PACKAGE_MANAGERS_MAP))?;
        info!(
            backend = chosen.name(),
            programs = %attached.iter().map(|p| p.name).collect::<Vec<_>>().join(","),
            ring_buffer_bytes = ring_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "recorder loaded"
        );
        Ok(Recorder {
            ebpf,
            backend: chosen,
            attached,
            counters,
            counters_map_id,
            package_managers,
            events_taken: false,
            iterator_ready,
            loaded_at,
        })
    }

    /// The backend that records file operations.
    pub fn backend(&self) -> ActiveBackend {
        self.backend
    }

    pub fn attached_programs(&self) -> Vec<ProgramInfo> {
        self.attached.clone()
    }

    /// Marks an executable (as `stat(2)` identifies it) as a package manager.
    pub fn trust_package_manager(&mut self, id: FileId) -> Result<(), RecorderError> {
        let key = FileKey {
            dev: devno::user_to_kernel(id.dev),
            ino: id.ino,
        };
        self.package_managers
            .insert(&key, &1, 0)
            .map_err(map_error(PACKAGE_MANAGERS_MAP))
    }

    pub fn untrust_package_manager(&mut self, id: FileId) -> Result<(), RecorderError> {
        let key = FileKey {
            dev: devno::user_to_kernel(id.dev),
            ino: id.ino,
        };
        match self.package_managers.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(map_error(PACKAGE_MANAGERS_MAP)(source)),
        }
    }

    /// Every program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, RecorderError> {
        read_counters(&self.counters)
    }

    /// The event stream. Can be taken once.
    pub fn take_events(&mut self) -> Result<EventStream, RecorderError> {
        if self.events_taken {
            return Err(RecorderError::MissingMap(EVENTS_MAP));
        }
        let ring = RingBuf::try_from(
            self.ebpf
                .take_map(EVENTS_MAP)
                .ok_or(RecorderError::MissingMap(EVENTS_MAP))?,
        )
        .map_err(map_error(EVENTS_MAP))?;
        let counters_data =
            MapData::from_id(self.counters_map_id).map_err(map_error(COUNTERS_MAP))?;
        let counters = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(counters_data))
            .map_err(map_error(COUNTERS_MAP))?;
        self.events_taken = true;
        EventStream::new(ring, counters, self.loaded_at).map_err(RecorderError::Scan)
    }

    /// Files open for write right now (before events could report their opening): from the
    /// kernel's `iter/task_file` iterator, or from `/proc/*/fdinfo` when it could not be loaded.
    pub fn scan_preexisting_writers(
        &mut self,
    ) -> Result<Vec<PreexistingWriterEvent>, RecorderError> {
        if self.iterator_ready {
            match self.run_iterator() {
                Ok(found) => return Ok(found),
                Err(error) => warn!(%error, "iter/task_file failed; scanning /proc instead"),
            }
        }
        Ok(preexisting::scan_proc(Path::new("/proc"))?)
    }

    /// Runs the `iter/task_file` program once and decodes what it wrote.
    pub fn run_iterator(&mut self) -> Result<Vec<PreexistingWriterEvent>, RecorderError> {
        let program: &mut Iter = self
            .ebpf
            .program_mut(OPEN_WRITERS_PROGRAM)
            .ok_or(RecorderError::MissingProgram(OPEN_WRITERS_PROGRAM))?
            .try_into()
            .map_err(|source| program_error(OPEN_WRITERS_PROGRAM, source))?;
        let link_id = program
            .attach()
            .map_err(|source| program_error(OPEN_WRITERS_PROGRAM, source))?;
        let link = program
            .take_link(link_id)
            .map_err(|source| program_error(OPEN_WRITERS_PROGRAM, source))?;
        let mut file = link.into_file().map_err(|source| {
            program_error(OPEN_WRITERS_PROGRAM, ProgramError::LinkError(source))
        })?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)?;
        Ok(preexisting::decode_iterator_output(
            &bytes,
            crate::intake::wall_clock_now(),
            std::process::id(),
        ))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // The programs' links are released with `ebpf`; this only says so.
        info!(programs = self.attached.len(), "detaching recorder");
    }
}

/// Sums one counters map over CPUs, per program.
pub(crate) fn read_counters(
    map: &PerCpuArray<MapData, ProgramCounters>,
) -> Result<Counters, RecorderError> {
    let mut counters = Counters::default();
    for id in ProgramId::ALL {
        let per_cpu = map.get(&(id as u32), 0).map_err(map_error(COUNTERS_MAP))?;
        let mut sum = ProgramCounters::default();
        for c in per_cpu.iter() {
            sum.total += c.total;
            sum.emitted += c.emitted;
            sum.ignored += c.ignored;
            sum.ringbuf_full += c.ringbuf_full;
            sum.path_truncated += c.path_truncated;
            sum.errors += c.errors;
        }
        counters.per_program.insert(id.name(), sum);
    }
    Ok(counters)
}

/// Records lost by any program (ring buffer full or errors), summed over CPUs: one lookup of the
/// loss summary slot, which every program bumps along with its own counters.
pub(crate) fn read_loss_summary(
    map: &PerCpuArray<MapData, ProgramCounters>,
) -> Result<u64, RecorderError> {
    let per_cpu = map
        .get(&LOSS_SUMMARY_SLOT, 0)
        .map_err(map_error(COUNTERS_MAP))?;
    Ok(per_cpu
        .iter()
        .map(|counters| counters.ringbuf_full + counters.errors)
        .sum())
}

/// Tracepoints renamed across kernel versions: (current name, older name with the same arguments).
const RENAMED_TRACEPOINTS: [(&str, &str); 1] = [
    // io_uring_submit_sqe(struct io_kiocb *req) became io_uring_submit_req in 6.4.
    ("io_uring_submit_req", "io_uring_submit_sqe"),
];

/// Loads a tp_btf program for `hook`, or for its older name; returns the hook it was loaded for.
fn load_tracepoint(
    program: &mut BtfTracePoint,
    name: &'static str,
    hook: &'static str,
    btf: &aya::Btf,
) -> Result<&'static str, RecorderError> {
    let error = match program.load(hook, btf) {
        Ok(()) => return Ok(hook),
        Err(error) => error,
    };
    for (current, older) in RENAMED_TRACEPOINTS {
        if current == hook && program.load(older, btf).is_ok() {
            info!(
                program = name,
                hook = older,
                "attaching to the older tracepoint name"
            );
            return Ok(older);
        }
    }
    Err(program_error(name, error))
}

/// The object's symbol for a program: `inode_setattr` has a variant for kernels whose hook has
/// no idmap parameter (before 6.10), as the kernel's BTF says.
fn program_symbol(spec: &ProgramSpec, btf: &KernelBtf) -> &'static str {
    if spec.id == ProgramId::LsmInodeSetattr
        && btf.parameter_index("bpf_lsm_inode_setattr", "dentry").ok() == Some(0)
    {
        return "lsm_inode_setattr_2";
    }
    spec.id.name()
}

/// Loads and attaches one program (`name`: its symbol in the object).
fn attach(
    ebpf: &mut Ebpf,
    spec: &ProgramSpec,
    name: &'static str,
    btf: &aya::Btf,
) -> Result<ProgramInfo, RecorderError> {
    let started = Instant::now();
    let program = ebpf
        .program_mut(name)
        .ok_or(RecorderError::MissingProgram(name))?;
    let hook = match spec.hook {
        Hook::TpBtf(hook) => {
            let program: &mut BtfTracePoint = program
                .try_into()
                .map_err(|source| program_error(name, source))?;
            let hook = load_tracepoint(program, name, hook, btf)?;
            program
                .attach()
                .map_err(|source| program_error(name, source))?;
            hook
        }
        Hook::Lsm(hook) => {
            let program: &mut Lsm = program
                .try_into()
                .map_err(|source| program_error(name, source))?;
            program
                .load(hook, btf)
                .map_err(|source| program_error(name, source))?;
            program
                .attach()
                .map_err(|source| program_error(name, source))?;
            hook
        }
    };
    debug!(
        program = name,
        hook,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded and attached"
    );
    Ok(ProgramInfo {
        name,
        program_type: spec.hook.program_type(),
        hook,
    })
}

fn load_iterator(ebpf: &mut Ebpf, btf: &aya::Btf) -> Result<(), RecorderError> {
    let program: &mut Iter = ebpf
        .program_mut(OPEN_WRITERS_PROGRAM)
        .ok_or(RecorderError::MissingProgram(OPEN_WRITERS_PROGRAM))?
        .try_into()
        .map_err(|source| program_error(OPEN_WRITERS_PROGRAM, source))?;
    program
        .load("task_file", btf)
        .map_err(|source| program_error(OPEN_WRITERS_PROGRAM, source))
}

fn program_error(program: &'static str, source: ProgramError) -> RecorderError {
    RecorderError::Program {
        program,
        source: Box::new(source),
    }
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}

/// Lifts RLIMIT_MEMLOCK for kernels that still charge BPF memory to it. Failure is only a
/// warning: newer kernels charge the memory cgroup instead (and CAP_SYS_RESOURCE may be missing).
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct is passed.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        warn!(
            error = %std::io::Error::last_os_error(),
            "cannot lift RLIMIT_MEMLOCK; continuing (BPF memory is charged to the memory cgroup)"
        );
    }
}
