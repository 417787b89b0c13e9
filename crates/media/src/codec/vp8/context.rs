//! The one piece of libvpx every VP8 object holds: an initialised codec context, destroyed on
//! drop, and libvpx's error strings.

// The workspace denies unsafe code; the VP8 module is the only place that talks to libvpx over
// FFI, so it is the one exemption, and every unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::c_int;

use vpx_sys::{
    vpx_codec_control_, vpx_codec_ctx_t, vpx_codec_destroy, vpx_codec_err_t,
    vpx_codec_err_to_string, vpx_codec_error, vpx_codec_error_detail,
};

/// An initialised libvpx codec context, destroyed on drop.
///
/// Boxed so the context never moves once libvpx has initialised it: libvpx does not promise that
/// a live context may be relocated.
pub(super) struct Context(Box<vpx_codec_ctx_t>);

// SAFETY: a libvpx context has no thread affinity (no thread-locals, no callbacks registered
// here); it just must not be used from two threads at once, which `&mut self` on every method
// that touches it guarantees. It is deliberately not `Sync`.
unsafe impl Send for Context {}

impl Context {
    /// Runs one of libvpx's `*_init_ver` functions on a fresh context.
    pub(super) fn init(
        init: impl FnOnce(*mut vpx_codec_ctx_t) -> vpx_codec_err_t,
    ) -> Result<Self, vpx_codec_err_t> {
        let mut ctx = Box::new(MaybeUninit::<vpx_codec_ctx_t>::zeroed());
        let err = init(ctx.as_mut_ptr());
        if err != vpx_codec_err_t::VPX_CODEC_OK {
            // libvpx already cleaned up after a failed init; there is nothing to destroy.
            return Err(err);
        }
        // SAFETY: all-zero bytes are a valid vpx_codec_ctx_t (null pointers, integer flags and
        // `err` = VPX_CODEC_OK = 0), and the successful init call has filled in the rest.
        Ok(Context(unsafe { ctx.assume_init() }))
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut vpx_codec_ctx_t {
        &mut *self.0
    }

    /// libvpx's last error message for this context, with its detail when there is one.
    pub(super) fn error(&mut self) -> String {
        // SAFETY: the context is initialised; vpx_codec_error returns a static NUL-terminated
        // string and vpx_codec_error_detail either null or a string owned by the context, which
        // we copy before the context can change again.
        unsafe {
            let msg = CStr::from_ptr(vpx_codec_error(self.as_mut_ptr())).to_string_lossy();
            let detail = vpx_codec_error_detail(self.as_mut_ptr());
            if detail.is_null() {
                msg.into_owned()
            } else {
                format!("{msg}: {}", CStr::from_ptr(detail).to_string_lossy())
            }
        }
    }

    /// Sets an integer-valued codec control.
    pub(super) fn control(&mut self, id: c_int, value: c_int) -> Result<(), String> {
        // SAFETY: the context is initialised, and every control passed here takes a plain int as
        // its variadic argument.
        let err = unsafe { vpx_codec_control_(self.as_mut_ptr(), id, value) };
        if err == vpx_codec_err_t::VPX_CODEC_OK {
            Ok(())
        } else {
            Err(self.error())
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was successfully initialised (Context::init only returns those) and
        // is destroyed exactly once, here.
        unsafe {
            vpx_codec_destroy(self.as_mut_ptr());
        }
    }
}

/// Static description of a libvpx error code, for failures where no context exists yet.
pub(super) fn err_string(err: vpx_codec_err_t) -> String {
    // SAFETY: vpx_codec_err_to_string returns a static NUL-terminated string for any code.
    unsafe { CStr::from_ptr(vpx_codec_err_to_string(err)) }
        .to_string_lossy()
        .into_owned()
}
