//! Every map the programs share, and the kernel-layout table userspace fills before load.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use verifier_common::{
    COUNTER_SLOTS, FileKey, IoUringKey, KernelOffsets, PATH_CAP, ProgramCounters, TxnState,
};

/// Struct field offsets of the running kernel, written by userspace from its BTF at load.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets::ZERO;

/// Wake the reader when one CPU has emitted this many bytes since it last did (set by userspace
/// from the ring size and the CPU count; 0: on every record). Otherwise the reader drains on its
/// own timer, so a busy host does not pay a wakeup per record.
#[unsafe(no_mangle)]
pub static RING_WAKEUP_BYTES: u64 = 0;

/// Slot 0: bytes this CPU emitted since it last woke the reader (see `RING_WAKEUP_BYTES`).
#[map]
pub static WAKEUP_PENDING: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Records for userspace. Its size is set by userspace from the configuration.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 24, 0);

/// Per-program counters, indexed by `ProgramId`, then the loss summary (`LOSS_SUMMARY_SLOT`).
#[map]
pub static COUNTERS: PerCpuArray<ProgramCounters> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Verified package-manager executables (kernel device encoding, inode); filled by userspace.
#[map]
pub static PACKAGE_MANAGERS: HashMap<FileKey, u8> = HashMap::with_max_entries(256, 0);

/// Transaction membership per thread group id.
#[map]
pub static TRANSACTIONS: HashMap<u32, TxnState> = HashMap::with_max_entries(65_536, 0);

/// Slot 0: how many entries `TRANSACTIONS` holds, or more: incremented before an insert and
/// decremented after a removal, shared by every CPU. While it is 0, no process is in a
/// transaction and records skip the lookup (an entry counted twice, a fork overwriting a stale
/// entry, only keeps it above 0).
#[map]
pub static TRANSACTION_MEMBERS: Array<u64> = Array::with_max_entries(1, 0);

/// Slot 0: the last transaction sequence number this CPU handed out.
#[map]
pub static TRANSACTION_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// io_uring use already reported (process, opcode).
#[map]
pub static IO_URING_SEEN: LruHashMap<IoUringKey, u8> = LruHashMap::with_max_entries(16_384, 0);

/// Bytes of the per-CPU record scratch (the largest record).
pub const RECORD_SCRATCH_BYTES: usize = 8336;
/// Half of the path scratch: kernel walks write backwards ending here, user suffixes follow it.
pub const PATH_HALF: usize = PATH_CAP;

#[repr(C, align(8))]
pub struct RecordScratch(pub [u8; RECORD_SCRATCH_BYTES]);

#[repr(C, align(8))]
pub struct PathScratch(pub [u8; 2 * PATH_HALF]);

/// Where records are assembled before they are copied to the ring buffer.
#[map]
pub static RECORD_SCRATCH: PerCpuArray<RecordScratch> = PerCpuArray::with_max_entries(1, 0);

/// Where paths are assembled.
#[map]
pub static PATH_SCRATCH: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(1, 0);

/// Loop-carried state of path walks (see `path::WalkState`).
#[map]
pub static WALK_STATE: PerCpuArray<crate::path::WalkState> = PerCpuArray::with_max_entries(1, 0);
