//! slaw patch: the dynamic metadata of kernel launches (tensor shapes and strides) uploaded
//! through a ring buffer instead of one allocation per launch.
//!
//! Upstream uploads each launch's dynamic metadata with `Command::create_with_data`: a pinned
//! host allocation and a device allocation from CubeCL's memory pools, an asynchronous copy, and
//! the pinned buffer handed to the stream's drop queue, which waits on the GPU every 64 uploads.
//! Measured with slaw's host profiler (`bench/host_profile.sh`, H100), that path took 17–24 % of
//! the device thread's samples on small ViT steps, most of it in the memory pools' page
//! bookkeeping. Here each stream owns one device buffer and one pinned host buffer of
//! [`CAPACITY`] bytes, used as a ring of [`SEGMENTS`] segments: a launch copies its metadata to
//! the next free bytes of the host buffer and enqueues the copy to the same place of the device
//! buffer, on the stream.
//!
//! Safety of reuse: the device buffer's bytes are rewritten only by a copy enqueued on the same
//! stream, after every kernel that read them (stream order). The host buffer's bytes are
//! rewritten only after the fence recorded when the ring last left that segment has completed,
//! that is after the copies that read them; with 16 segments of 256 KiB (~1 000 launches each)
//! that fence is long past whenever it is checked.

use crate::compute::sync::Fence;
use cudarc::driver::sys::{CUdeviceptr, CUstream_st};

/// Bytes of each of the two buffers (device and pinned host).
pub const CAPACITY: usize = 4 * 1024 * 1024;
/// Segments of the ring; a fence is recorded each time the ring leaves one.
pub const SEGMENTS: usize = 16;
const SEGMENT: usize = CAPACITY / SEGMENTS;
/// Alignment of each upload (the metadata is read as 64-bit words).
const ALIGN: usize = 16;

/// The ring of one stream; allocated at its first use (the CUDA context is current then).
#[derive(Debug, Default)]
pub struct MetadataRing {
    buffers: Option<Buffers>,
    /// The segment being filled, and the bytes of it already used.
    segment: usize,
    used: usize,
    /// Per segment: recorded when the ring last left it, after the copies that read it.
    fences: [Option<Fence>; SEGMENTS],
}

#[derive(Debug)]
struct Buffers {
    device: CUdeviceptr,
    host: *mut u8,
}

// SAFETY: the buffers are only touched by the thread that owns the stream (the device thread),
// like the rest of `Stream`; the pointers are never freed (streams live as long as the process).
unsafe impl Send for MetadataRing {}

impl MetadataRing {
    /// Copies `bytes` to the device, in order on `stream`, and returns their device address;
    /// `None` when they do not fit a segment or the buffers cannot be allocated (the caller
    /// then uploads them the upstream way).
    pub fn upload(&mut self, bytes: &[u8], stream: *mut CUstream_st) -> Option<CUdeviceptr> {
        let len = bytes.len().next_multiple_of(ALIGN);
        if len == 0 || len > SEGMENT || !enabled() {
            return None;
        }
        if self.buffers.is_none() {
            self.buffers = Some(Buffers::allocate()?);
        }
        if self.used + len > SEGMENT {
            self.fences[self.segment] = Some(Fence::new(stream));
            self.segment = (self.segment + 1) % SEGMENTS;
            self.used = 0;
            if let Some(fence) = self.fences[self.segment].take() {
                fence.wait_sync().ok()?;
            }
        }
        let buffers = self.buffers.as_ref()?;
        let offset = self.segment * SEGMENT + self.used;
        // SAFETY: `offset + len <= (segment + 1) · SEGMENT <= CAPACITY`; the host bytes are
        // not read by a pending copy (the segment's fence was waited for when the ring entered
        // it); the device address is inside the device buffer.
        unsafe {
            let host = buffers.host.add(offset);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), host, bytes.len());
            let src = std::slice::from_raw_parts(host, bytes.len());
            cudarc::driver::result::memcpy_htod_async(buffers.device + offset as u64, src, stream)
                .ok()?;
        }
        self.used += len;
        Some(buffers.device + offset as u64)
    }
}

/// Whether the ring is used: `SLAW_METADATA_RING=0` keeps upstream's uploads (for benchmarks),
/// read once per process.
fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("SLAW_METADATA_RING").map_or(true, |v| v != "0"))
}

impl Buffers {
    fn allocate() -> Option<Self> {
        // SAFETY: plain allocations of the current context; never freed (see `Send` above).
        unsafe {
            let device = cudarc::driver::result::malloc_sync(CAPACITY).ok()?;
            let host = cudarc::driver::result::malloc_host(CAPACITY, 0).ok()? as *mut u8;
            Some(Buffers { device, host })
        }
    }
}
