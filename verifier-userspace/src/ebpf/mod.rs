//! Loading and attaching the kernel programs, and the maps userspace fills or reads.
//!
//! - [`Recorder`]: loads the embedded object with the running kernel's layout, attaches every
//!   program, fills the package-manager map, reads counters, hands out the event stream.
//! - [`backend`]: the tracepoint and LSM backends, what the kernel accepts, which one runs.
//! - [`kernel_layout`]: struct field offsets from the kernel's BTF (how the object stays portable).
//! - [`devno`]: the one place device numbers are converted between kernel and userspace encodings.
//! - [`preexisting`]: files already open for write when the recorder starts.

pub mod backend;
pub mod devno;
pub mod kernel_layout;
pub mod preexisting;
mod recorder;

pub use recorder::{Counters, ProgramInfo, Recorder, RecorderError, probe_program_types};
pub(crate) use recorder::{
    read_counters as recorder_counters, read_loss_summary as recorder_loss_summary,
};
