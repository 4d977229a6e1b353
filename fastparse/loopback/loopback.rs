//! A `bind` that keeps wildcard listeners on loopback, preloaded (`LD_PRELOAD`) into the processes
//! of jobs on composer's own local Ray head.
//!
//! Why: TensorFlow's gRPC server (the multi-worker strategy's, one per Ray Train worker) listens
//! on every interface whatever address `TF_CONFIG` names, and has no option to change it; its
//! distributed runtime has no authentication, so anyone on a laptop's network could reach it while
//! a job runs. Ray itself is told 127.0.0.1 (`service/client/cluster.py`).
//!
//! What: a bind to the IPv4 wildcard (0.0.0.0) binds 127.0.0.1 instead; one to the IPv6 wildcard
//! (::) binds ::ffff:127.0.0.1 (IPv4 loopback on a dual-stack socket, what gRPC opens), or ::1
//! where the socket is IPv6-only. Every other bind passes through unchanged.
//!
//! Built by `build.rs` as its own tiny library (no std, no Python symbols: a preloaded library
//! is loaded into every program the job starts, shells included) and carried inside the
//! extension's bytes; composer writes it out and names it in the job's `LD_PRELOAD`.

#![no_std]

use core::ffi::{c_char, c_int, c_void};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EINVAL: c_int = 22;
const ENOSYS: c_int = 38;

#[repr(C)]
#[derive(Clone, Copy)]
struct SockaddrIn {
    family: u16,
    port: u16,
    addr: [u8; 4],
    zero: [u8; 8],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SockaddrIn6 {
    family: u16,
    port: u16,
    flowinfo: u32,
    addr: [u8; 16],
    scope_id: u32,
}

const V4_LOOPBACK: [u8; 4] = [127, 0, 0, 1];
const V4_MAPPED_LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];
const V6_LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

type Bind = unsafe extern "C" fn(c_int, *const c_void, u32) -> c_int;

#[link(name = "c")]
extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn __errno_location() -> *mut c_int;
}

/// dlfcn.h's RTLD_NEXT: the next library's definition of a symbol (libc's `bind`).
const RTLD_NEXT: *mut c_void = -1isize as *mut c_void;

/// # Safety
/// The contract of POSIX `bind`: `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const c_void, len: u32) -> c_int {
    let next = dlsym(RTLD_NEXT, b"bind\0".as_ptr() as *const c_char);
    if next.is_null() {
        *__errno_location() = ENOSYS;
        return -1;
    }
    let real: Bind = core::mem::transmute::<*mut c_void, Bind>(next);
    if addr.is_null() || (len as usize) < 2 {
        return real(fd, addr, len);
    }
    let family = core::ptr::read_unaligned(addr as *const u16);
    if family == AF_INET && len as usize >= core::mem::size_of::<SockaddrIn>() {
        let mut a = core::ptr::read_unaligned(addr as *const SockaddrIn);
        if a.addr == [0; 4] {
            a.addr = V4_LOOPBACK;
            return real(fd, &a as *const SockaddrIn as *const c_void, len);
        }
    } else if family == AF_INET6 && len as usize >= core::mem::size_of::<SockaddrIn6>() {
        let mut a = core::ptr::read_unaligned(addr as *const SockaddrIn6);
        if a.addr == [0; 16] {
            a.addr = V4_MAPPED_LOOPBACK;
            let bound = real(fd, &a as *const SockaddrIn6 as *const c_void, len);
            if bound == 0 || *__errno_location() != EINVAL {
                return bound;
            }
            // An IPv6-only socket cannot take an IPv4 address: its own loopback then.
            a.addr = V6_LOOPBACK;
            return real(fd, &a as *const SockaddrIn6 as *const c_void, len);
        }
    }
    real(fd, addr, len)
}
